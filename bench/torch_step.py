"""Optimizer step time from Python, mixprec.torch.Optimizer next to PyTorch's and DeepSpeed's, in one run.

Parameter sets: the character-level GPT of examples/torch_gpt (0.8M parameters) and GPT-2 small's
real shapes (124M: 12 layers of 768, vocabulary 50257, context 1024; the output layer tied to the
embedding). Gradients are random and fixed; each variant's step is timed over repeated calls (median,
in ms), all variants interleaved in rounds so that the machine's state affects them alike.

Rows:
  amp fp32     fp32 weights and gradients, dynamic loss scale, clip at 1.0, AdamW:
               mixprec's fused step  vs  torch GradScaler.unscale_ + clip_grad_norm_(foreach) + fused AdamW + update
  bf16+master  bf16 model and gradients, fp32 master weights, clip, AdamW (mixprec) vs the torch AMP step above;
               also with bf16 moments (stochastically rounded), dynamic loss scale and clip, against the
               optimizers alone below (torch's fused AdamW, DeepSpeedCPUAdam on fp32 state)
  adamw fp32   plain AdamW: mixprec  vs  torch AdamW(fused=True)  vs  DeepSpeedCPUAdam (when deepspeed imports)
  bf16 SR      pure bf16 weights, stochastic rounding, AdamW: mixprec vs torchao _AdamW(bf16_stochastic_round=True)
  overhead     mixprec step() at 1e4 parameters from Python, and the same step called on the compiled core

    python bench/torch_step.py [--sets gpt gpt2] [--rounds 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

import mixprec.torch as mt


def gpt2_shapes(layers=12, dim=768, vocab=50257, ctx=1024):
    shapes = [("wte", (vocab, dim)), ("wpe", (ctx, dim))]
    for i in range(layers):
        p = f"h.{i}."
        shapes += [(p + "ln_1.weight", (dim,)), (p + "ln_1.bias", (dim,)),
                   (p + "attn.c_attn.weight", (3 * dim, dim)), (p + "attn.c_attn.bias", (3 * dim,)),
                   (p + "attn.c_proj.weight", (dim, dim)), (p + "attn.c_proj.bias", (dim,)),
                   (p + "ln_2.weight", (dim,)), (p + "ln_2.bias", (dim,)),
                   (p + "mlp.c_fc.weight", (4 * dim, dim)), (p + "mlp.c_fc.bias", (4 * dim,)),
                   (p + "mlp.c_proj.weight", (dim, 4 * dim)), (p + "mlp.c_proj.bias", (dim,))]
    return shapes + [("ln_f.weight", (dim,)), ("ln_f.bias", (dim,))]


def char_gpt_shapes(layers=4, dim=128, vocab=96, ctx=64):
    shapes = [("wte", (vocab, dim)), ("wpe", (ctx, dim))]
    for i in range(layers):
        p = f"b.{i}."
        shapes += [(p + "ln1.weight", (dim,)), (p + "ln1.bias", (dim,)), (p + "qkv.weight", (3 * dim, dim)),
                   (p + "proj.weight", (dim, dim)), (p + "ln2.weight", (dim,)), (p + "ln2.bias", (dim,)),
                   (p + "up.weight", (4 * dim, dim)), (p + "down.weight", (dim, 4 * dim))]
    return shapes + [("ln_f.weight", (dim,)), ("ln_f.bias", (dim,))]


def small_shapes(n=10_000):
    return [("w", (n // 100, 100))]


SETS = {"gpt": char_gpt_shapes, "gpt2": gpt2_shapes}


def make_params(shapes, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for name, s in shapes:
        p = torch.nn.Parameter((torch.randn(s, generator=g) * 0.02).to(dtype))
        p.grad = (torch.randn(s, generator=g) * 1e-3).to(dtype)
        out.append((name, p))
    return out


def refill_grads(params, grads):
    # mixprec's zero_grad clears the arena: put the same gradients back (not timed)
    with torch.no_grad():
        for (_, p), g in zip(params, grads):
            p.grad.copy_(g)


class Variant:
    def __init__(self, name, setup, step):
        self.name, self.setup, self.step = name, setup, step
        self.times = []


def mixprec_variant(label, shapes, dtype, **options):
    params = make_params(shapes, dtype)
    grads = [p.grad.detach().clone() for _, p in params]
    opt = mt.Optimizer(params, "adamw", lr=1e-4, weight_decay=0.01, **options)
    refill_grads(params, grads)
    return Variant(label, lambda: None, lambda: opt.step())


def torch_amp_variant(label, shapes):
    params = [p for _, p in make_params(shapes, torch.float32)]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, fused=True)
    scaler = torch.amp.GradScaler("cpu", init_scale=1.0)

    def step():
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        scaler.step(opt)
        scaler.update()
    # GradScaler needs a scale() call before unscale_ to set itself up
    scaler.scale(torch.ones(()))
    return Variant(label, lambda: scaler.scale(torch.ones(())), step)


def torch_fused_variant(label, shapes):
    params = [p for _, p in make_params(shapes, torch.float32)]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, fused=True)
    return Variant(label, lambda: None, opt.step)


def deepspeed_variant(label, shapes):
    try:
        from deepspeed.ops.adam import DeepSpeedCPUAdam
    except Exception as e:  # noqa: BLE001
        print(f"  (DeepSpeedCPUAdam not available: {type(e).__name__}: {str(e)[:120]})", file=sys.stderr)
        return None
    params = [p for _, p in make_params(shapes, torch.float32)]
    try:
        opt = DeepSpeedCPUAdam(params, lr=1e-4, weight_decay=0.01, adamw_mode=True)
    except Exception as e:  # noqa: BLE001
        print(f"  (DeepSpeedCPUAdam failed to build: {type(e).__name__}: {str(e)[:200]})", file=sys.stderr)
        return None
    return Variant(label, lambda: None, opt.step)


def torchao_sr_variant(label, shapes):
    try:
        from torchao.optim import _AdamW
    except Exception as e:  # noqa: BLE001
        print(f"  (torchao not available: {type(e).__name__}: {str(e)[:120]})", file=sys.stderr)
        return None
    params = [p for _, p in make_params(shapes, torch.bfloat16)]
    opt = _AdamW(params, lr=1e-4, weight_decay=0.01, bf16_stochastic_round=True)
    return Variant(label, lambda: None, opt.step)


def measure(variants, rounds, reps):
    for _ in range(rounds):
        for v in variants:
            v.setup()
            v.step()  # warm
            t0 = time.perf_counter()
            for _ in range(reps):
                v.setup()
                v.step()
            v.times.append(1e3 * (time.perf_counter() - t0) / reps)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="*", default=["gpt", "gpt2"], choices=list(SETS))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--json")
    ap.add_argument("--no-deepspeed", action="store_true")
    ap.add_argument("--no-torchao", action="store_true")
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    report = {"torch": torch.__version__, "threads": torch.get_num_threads(), "sets": {}}
    for name in args.sets:
        shapes = SETS[name]()
        n = sum(torch.Size(s).numel() for _, s in shapes)
        reps = 50 if n < 1e7 else 2
        vs = [mixprec_variant("mixprec amp fp32", shapes, torch.float32, loss_scale="dynamic", clip_grad_norm=1.0,
                              statistics=False),
              torch_amp_variant("torch amp fp32 (GradScaler + clip + fused AdamW)", shapes),
              mixprec_variant("mixprec bf16+master (clip)", shapes, torch.bfloat16, clip_grad_norm=1.0),
              mixprec_variant("mixprec bf16+master, bf16 moments (amp)", shapes, torch.bfloat16,
                              moments_dtype=torch.bfloat16, loss_scale="dynamic", clip_grad_norm=1.0,
                              statistics=False),
              mixprec_variant("mixprec adamw fp32", shapes, torch.float32),
              torch_fused_variant("torch AdamW(fused=True)", shapes)]
        if not args.no_deepspeed:
            vs.append(deepspeed_variant("DeepSpeedCPUAdam", shapes))
        vs.append(mixprec_variant("mixprec bf16 SR (no master)", shapes, torch.bfloat16, master_weights=False,
                                  writer="stochastic", clip_grad_norm=1e9))
        if not args.no_torchao:
            vs.append(torchao_sr_variant("torchao _AdamW(bf16_stochastic_round=True)", shapes))
        vs = [v for v in vs if v is not None]
        measure(vs, args.rounds, reps)
        rows = {v.name: statistics.median(v.times) for v in vs}
        print(f"\n{name}: {n / 1e6:.2f}M parameters, {len(shapes)} tensors; median ms per step over "
              f"{args.rounds} rounds of {reps}")
        for v in vs:
            print(f"  {v.name:48s} {rows[v.name]:9.3f} ms  (min {min(v.times):.3f}, max {max(v.times):.3f})")
        amp = rows["torch amp fp32 (GradScaler + clip + fused AdamW)"]
        print(f"  ratio torch amp fp32 / mixprec amp fp32:      {amp / rows['mixprec amp fp32']:.2f}x")
        print(f"  ratio torch amp fp32 / mixprec bf16+master:   {amp / rows['mixprec bf16+master (clip)']:.2f}x")
        print(f"  ratio torch fused AdamW / mixprec adamw fp32: "
              f"{rows['torch AdamW(fused=True)'] / rows['mixprec adamw fp32']:.2f}x")
        if "DeepSpeedCPUAdam" in rows:
            print(f"  ratio DeepSpeedCPUAdam / mixprec adamw fp32:  "
                  f"{rows['DeepSpeedCPUAdam'] / rows['mixprec adamw fp32']:.2f}x")
        lean = rows["mixprec bf16+master, bf16 moments (amp)"]
        print(f"  ratio torch fused AdamW / mixprec bf16 moments amp: {rows['torch AdamW(fused=True)'] / lean:.2f}x")
        if "DeepSpeedCPUAdam" in rows:
            print(f"  ratio DeepSpeedCPUAdam / mixprec bf16 moments amp: {rows['DeepSpeedCPUAdam'] / lean:.2f}x")
        report["sets"][name] = {"parameters": n, "ms": rows}

    # Python overhead at 1e4 parameters: step() against the compiled step alone.
    params = make_params(small_shapes(), torch.float32)
    opt = mt.Optimizer(params, "adamw", lr=1e-4)
    h = opt._refresh_hyper()
    full, core = [], []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for _ in range(2000):
            opt.step()
        full.append(1e6 * (time.perf_counter() - t0) / 2000)
        t0 = time.perf_counter()
        for _ in range(2000):
            opt._core.step(h, 0)
        core.append(1e6 * (time.perf_counter() - t0) / 2000)
    f, c = statistics.median(full), statistics.median(core)
    print(f"\noverhead at 1e4 parameters: step() {f:.1f} us, the compiled step alone {c:.1f} us, "
          f"Python's share {f - c:.1f} us")
    report["overhead_us"] = {"step": f, "core": c, "python": f - c}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
