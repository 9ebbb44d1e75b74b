"""A character-level GPT trained under ten precision arms: PyTorch's own and mixprec's.

The model and its training follow nanoGPT's CPU configuration of its character-level example:
4 layers, 4 heads, 128-dimensional embeddings, context 64, batches of 12, no dropout, AdamW
(lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on matrices only), gradient clipping at 1.0, 100
warm-up iterations then a cosine decay to 1e-4. The text is the Python standard library's own
top-level .py sources (every machine with Python has them), ASCII only, split 90/10; its sha256 is
printed so runs on other Pythons can be told apart.

Arms (one seed, one sequence of batches, one initialisation):
  torch fp32             fp32 parameters, torch.optim.AdamW(fused=True)
  torch bf16 autocast    fp32 parameters, bf16 autocast, fused AdamW
  torch bf16 no master   bf16 parameters, plain AdamW: no fp32 master weights
  torch fp16 no scaler   fp32 parameters, fp16 autocast, no loss scaling
  torch fp16 GradScaler  fp32 parameters, fp16 autocast, torch.amp.GradScaler
  mixprec bf16+master    bf16 parameters (autocast), fp32 master weights in the arena
  mixprec bf16 SR        bf16 parameters, no master, stochastic rounding
  mixprec bf16 Kahan     bf16 parameters, no master, Kahan summation
  mixprec fp16 dynamic   fp16 parameters (autocast), fp32 master weights, dynamic loss scaling
  mixprec bf16 8-bit moments  bf16 parameters (autocast), fp32 master weights, AdamW's moments as
                         8-bit codes with a scale per 256 elements (moments_dtype="8bit")

    python examples/torch_gpt/train.py                  # the full run (2000 iterations per arm)
    python examples/torch_gpt/train.py --iters 30 --check   # the short run CI makes

It prints a table (validation loss at fixed iterations, optimizer-step and whole-iteration
milliseconds, optimizer-state bytes) and writes gpt_curves.csv, gpt_summary.json and gpt_curves.png.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import sys
import sysconfig
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import mixprec.torch as mt

# ---- data -----------------------------------------------------------------------------------------


def stdlib_text() -> tuple[str, str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    parts = []
    for p in sorted(root.glob("*.py")):
        parts.append(p.read_bytes().decode("utf-8", errors="ignore"))
    text = "".join(ch for ch in "\n".join(parts) if ch == "\n" or ch == "\t" or 32 <= ord(ch) < 127)
    return text, hashlib.sha256(text.encode()).hexdigest()


class Data:
    def __init__(self, block: int, batch: int):
        text, self.sha256 = stdlib_text()
        chars = sorted(set(text))
        self.vocab = len(chars)
        index = {c: i for i, c in enumerate(chars)}
        ids = torch.tensor([index[c] for c in text], dtype=torch.long)
        cut = int(0.9 * len(ids))
        self.train, self.val = ids[:cut], ids[cut:]
        self.block, self.batch = block, batch
        self.chars = len(text)

    def batches(self, split: str, count: int, seed: int):
        src = self.train if split == "train" else self.val
        g = torch.Generator().manual_seed(seed)
        for _ in range(count):
            ix = torch.randint(len(src) - self.block - 1, (self.batch,), generator=g)
            x = torch.stack([src[i:i + self.block] for i in ix])
            y = torch.stack([src[i + 1:i + 1 + self.block] for i in ix])
            yield x, y


# ---- the model ------------------------------------------------------------------------------------


class Block(torch.nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1 = torch.nn.LayerNorm(dim)
        self.qkv = torch.nn.Linear(dim, 3 * dim, bias=False)
        self.proj = torch.nn.Linear(dim, dim, bias=False)
        self.ln2 = torch.nn.LayerNorm(dim)
        self.up = torch.nn.Linear(dim, 4 * dim, bias=False)
        self.down = torch.nn.Linear(4 * dim, dim, bias=False)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        shape = (b, t, self.heads, c // self.heads)
        q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, c))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class GPT(torch.nn.Module):
    def __init__(self, vocab: int, block: int, layers: int = 4, heads: int = 4, dim: int = 128):
        super().__init__()
        self.wte = torch.nn.Embedding(vocab, dim)
        self.wpe = torch.nn.Embedding(block, dim)
        self.blocks = torch.nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.ln_f = torch.nn.LayerNorm(dim)
        self.lm_head = torch.nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as GPT-2
        for name, p in self.named_parameters():
            if p.ndim >= 2:
                # GPT-2's initialisation: N(0, 0.02), residual projections scaled by depth
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "down.weight")) else 0.02
                torch.nn.init.normal_(p, 0.0, std)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))


# ---- the arms -------------------------------------------------------------------------------------

LR, MIN_LR, WARMUP, BETAS, WD, CLIP = 1e-3, 1e-4, 100, (0.9, 0.99), 0.1, 1.0


def lr_factor(it: int, total: int) -> float:
    if it < WARMUP:
        return (it + 1) / WARMUP
    progress = min(1.0, (it - WARMUP) / max(1, total - WARMUP))
    return (MIN_LR + 0.5 * (1 + math.cos(math.pi * progress)) * (LR - MIN_LR)) / LR


def torch_groups(model):
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay, "weight_decay": WD}, {"params": rest, "weight_decay": 0.0}]


def no_decay(name, p):
    return p.ndim < 2


class Arm:
    """One way to train: builds its model and optimizer, runs a step, evaluates."""

    def __init__(self, name, kind, *, params=torch.float32, autocast=None, scaler=False, fused=True,
                 mixprec=None):
        self.name, self.kind = name, kind
        self.params, self.autocast, self.scaler_on, self.fused, self.mixprec = params, autocast, scaler, fused, mixprec

    def build(self, model: GPT, total: int):
        self.model = model.to(self.params)
        if self.kind == "torch":
            self.opt = torch.optim.AdamW(torch_groups(self.model), lr=LR, betas=BETAS, fused=self.fused)
            self.scaler = torch.amp.GradScaler("cpu") if self.scaler_on else None
        else:
            self.opt = mt.Optimizer(self.model.named_parameters(), "adamw", lr=LR, betas=BETAS, weight_decay=WD,
                                    no_decay=no_decay, clip_grad_norm=CLIP, **self.mixprec)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda it: lr_factor(it, total))

    def ctx(self):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast("cpu", dtype=self.autocast)

    def step(self, x, y):
        with self.ctx():
            loss = self.model(x, y)
        t0 = time.perf_counter()
        if self.kind == "torch":
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                t0 = time.perf_counter()
                self.scaler.unscale_(self.opt)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP, foreach=True)
                self.scaler.step(self.opt)
                self.scaler.update()
            else:
                loss.backward()
                t0 = time.perf_counter()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP, foreach=True)
                self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        else:
            self.opt.scale(loss).backward()
            t0 = time.perf_counter()
            self.opt.step()
            self.opt.zero_grad()
        step_s = time.perf_counter() - t0
        self.sched.step()
        return loss.item(), step_s

    @torch.no_grad()
    def evaluate(self, batches):
        losses = []
        for x, y in batches:
            with self.ctx():
                losses.append(self.model(x, y).item())
        return sum(losses) / len(losses)

    def state_bytes(self) -> int:
        """Optimizer state: moments and counters, plus fp32 master weights kept apart from the model."""
        if self.kind == "mixprec":
            return self.opt.state_bytes()
        n = 0
        for st in self.opt.state.values():
            for v in st.values():
                if torch.is_tensor(v):
                    n += v.numel() * v.element_size()
        return n


ARMS = [
    Arm("torch fp32", "torch"),
    Arm("torch bf16 autocast", "torch", autocast=torch.bfloat16),
    Arm("torch bf16 no master", "torch", params=torch.bfloat16, autocast=torch.bfloat16, fused=False),
    Arm("torch fp16 no scaler", "torch", autocast=torch.float16),
    Arm("torch fp16 GradScaler", "torch", autocast=torch.float16, scaler=True),
    Arm("mixprec bf16+master", "mixprec", params=torch.bfloat16, autocast=torch.bfloat16, mixprec=dict()),
    Arm("mixprec bf16 SR", "mixprec", params=torch.bfloat16, autocast=torch.bfloat16,
        mixprec=dict(master_weights=False, writer="stochastic")),
    Arm("mixprec bf16 Kahan", "mixprec", params=torch.bfloat16, autocast=torch.bfloat16,
        mixprec=dict(master_weights=False, writer="kahan")),
    Arm("mixprec fp16 dynamic", "mixprec", params=torch.float16, autocast=torch.float16,
        mixprec=dict(loss_scale="dynamic")),
    Arm("mixprec bf16 8-bit moments", "mixprec", params=torch.bfloat16, autocast=torch.bfloat16,
        mixprec=dict(moments_dtype="8bit")),
]


def plot(results, path) -> bool:
    """Validation curves (left) and each arm's difference from torch fp32 (right)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fp32 = next((r for r in results if r["arm"] == "torch fp32"), None)
    fig, (ax, dx) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = plt.get_cmap("tab10")
    for n, r in enumerate(results):
        its = [int(i) for i in r["val"].keys()]
        vals = list(r["val"].values())
        style = dict(linestyle="-" if r["arm"].startswith("mixprec") else "--", color=colors(n % 10))
        ax.plot(its, vals, label=r["arm"], **style)
        if fp32 is not None and r is not fp32:
            base = [fp32["val"][k] for k in r["val"].keys()]
            dx.plot(its[1:], [v - b for v, b in zip(vals, base)][1:], marker=".", label=r["arm"], **style)
    ax.set_xlabel("iteration")
    ax.set_ylabel("validation loss (nats per character)")
    ax.set_title("validation loss")
    ax.legend(fontsize=8)
    dx.axhline(0.0, color="black", linewidth=0.8)
    dx.axhspan(-0.02, 0.02, color="0.9", label="within 0.02 nats")
    dx.set_xlabel("iteration")
    dx.set_ylabel("validation loss minus torch fp32's (nats)")
    dx.set_title("difference from torch fp32")
    fig.suptitle("character-level GPT (0.8M parameters) under ten precision arms")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def median(v):
    v = sorted(v)
    return v[len(v) // 2] if v else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--eval-interval", type=int, default=250)
    ap.add_argument("--eval-iters", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--arms", nargs="*", help="names of the arms to run (default: all)")
    ap.add_argument("--out", default="build/example/torch_gpt")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--replot", metavar="SUMMARY_JSON", help="only redraw the plot of a finished run's gpt_summary.json")
    ap.add_argument("--check", action="store_true",
                    help="exit non-zero unless every arm is finite and decreasing and all agree at the start")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.replot:
        summary = json.loads(Path(args.replot).read_text())
        target = Path(args.replot).with_name("gpt_curves.png")
        return 0 if plot(summary["results"], target) else 1

    data = Data(block=64, batch=12)
    print(f"text: Python {sys.version.split()[0]} standard library, {data.chars} ASCII characters, vocabulary "
          f"{data.vocab}, sha256 {data.sha256}")
    torch.manual_seed(args.seed)
    init = GPT(data.vocab, 64).state_dict()
    nparams = sum(p.numel() for p in GPT(data.vocab, 64).parameters())
    print(f"model: {nparams} parameters; {args.iters} iterations per arm, threads {torch.get_num_threads()}")
    evals = sorted(set(list(range(0, args.iters, args.eval_interval)) + [args.iters]))
    val_batches = list(data.batches("val", args.eval_iters, seed=args.seed + 1))
    arms = [a for a in ARMS if not args.arms or a.name in args.arms]
    results = []
    for arm in arms:
        model = GPT(data.vocab, 64)
        model.load_state_dict(init)
        arm.build(model, args.iters)
        curve, train_losses, step_ms, iter_ms = {}, [], [], []
        train = data.batches("train", args.iters, seed=args.seed)
        for it in range(args.iters + 1):
            if it in evals:
                curve[it] = arm.evaluate(val_batches)
            if it == args.iters:
                break
            x, y = next(train)
            t0 = time.perf_counter()
            loss, step_s = arm.step(x, y)
            iter_ms.append(1e3 * (time.perf_counter() - t0))
            step_ms.append(1e3 * step_s)
            train_losses.append(loss)
        warm = min(10, len(step_ms) // 2)
        r = dict(arm=arm.name, val=curve, train_first=train_losses[0], train_last=train_losses[-1],
                 step_ms=median(step_ms[warm:]), iter_ms=median(iter_ms[warm:]), state_bytes=arm.state_bytes(),
                 params=nparams)
        if arm.kind == "mixprec":
            r["skipped_steps"] = arm.opt.stats()["skipped_steps"]
        results.append(r)
        print(f"  {arm.name:24s} val {curve[args.iters]:.4f}  step {r['step_ms']:.2f} ms  "
              f"iteration {r['iter_ms']:.1f} ms", flush=True)

    fp32 = next((r for r in results if r["arm"] == "torch fp32"), None)
    header = f"{'arm':24s}" + "".join(f"{'val@' + str(i):>10s}" for i in evals) + \
        f"{'vs fp32':>9s}{'step ms':>9s}{'iter ms':>9s}{'state B/param':>15s}"
    print("\n" + header)
    for r in results:
        delta = r["val"][args.iters] - fp32["val"][args.iters] if fp32 else float("nan")
        print(f"{r['arm']:24s}" + "".join(f"{r['val'][i]:10.4f}" for i in evals) +
              f"{delta:+9.4f}{r['step_ms']:9.2f}{r['iter_ms']:9.1f}{r['state_bytes'] / r['params']:15.1f}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "gpt_curves.csv", "w") as f:
        f.write("arm,iteration,val_loss\n")
        for r in results:
            for i, v in r["val"].items():
                f.write(f"{r['arm']},{i},{v:.6f}\n")
    (out / "gpt_summary.json").write_text(json.dumps(dict(
        text_sha256=data.sha256, python=sys.version.split()[0], torch=torch.__version__, iters=args.iters,
        parameters=nparams, results=results), indent=1))
    if plot(results, out / "gpt_curves.png"):
        print(f"\nwrote {out / 'gpt_curves.png'}, {out / 'gpt_curves.csv'}, {out / 'gpt_summary.json'}")
    else:
        print(f"\nwrote {out / 'gpt_curves.csv'}, {out / 'gpt_summary.json'} (no matplotlib: no plot)")

    if args.check:
        problems = []
        start = [r["val"][0] for r in results]
        if max(start) - min(start) > 0.05:
            problems.append(f"the arms disagree at the start: {start}")
        for r in results:
            vals = list(r["val"].values())
            if not all(math.isfinite(v) for v in vals):
                problems.append(f"{r['arm']}: non-finite validation loss")
            elif "no scaler" not in r["arm"] and not r["val"][args.iters] < r["val"][0]:
                problems.append(f"{r['arm']}: validation loss did not decrease ({vals})")
        for p in problems:
            print("check failed:", p, file=sys.stderr)
        if problems:
            return 1
        print("check passed: every arm finite and decreasing, all agree at the start")
    return 0


if __name__ == "__main__":
    sys.exit(main())
