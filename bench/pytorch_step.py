"""The standard PyTorch mixed-precision step, timed, for comparison with
mixprec's bench_step (same sizes, same tensor layout, same dtypes).

Per step, with the fastest implementation the installed PyTorch offers:
  1. unscale the gradients and check them for inf/NaN (GradScaler's
     _amp_foreach_non_finite_check_and_unscale_ where the installed PyTorch
     has it for the device: CUDA, and the CPU in recent releases; else a
     foreach multiply, the check then taken from the clip's norm);
  2. clip_grad_norm_(max_norm=1.0), with foreach=True where available;
  3. bf16 only: master.grad = model.grad.float();
  4. AdamW(lr=1e-3, weight_decay=1e-2) on the fp32 master weights,
     fused=True where it runs on the device (CUDA; the CPU in PyTorch >= 2.4),
     else foreach=True;
  5. bf16 only: model.copy_(master).
The step is skipped when a gradient is not finite, as GradScaler does.

With --recipe adamw, the optimizer alone on fp32 weights and gradients:
AdamW(lr=1e-3, weight_decay=1e-2, fused=True where it runs) and nothing
else (no scale, no check, no clip). With --recipe deepspeed, the same with
DeepSpeedCPUAdam(adamw_mode=True) (PyPI deepspeed; it JIT-builds its AVX
kernel on first use; CPU only).

Usage: pytorch_step.py --sizes 1e6 1e7 --dtype bf16 [--recipe amp|adamw|deepspeed] [--device cpu|cuda] [--steps 5]
Prints one JSON object per (size, dtype) line.
"""
import argparse
import inspect
import json
import os
import time

import torch


def tensor_sizes(n, tensors=200):
    """The parameter sizes of bench/arena_fixture.hpp's build_arena."""
    sizes, total, k = [], 0, 0
    base = n // tensors
    while total < n:
        size = max(base // 64, 1) if k % 4 == 3 else base + (k % 7) * (base // 16)
        size = min(size, n - total)
        sizes.append(size)
        total += size
        k += 1
    return sizes


def accepts(fn, name):
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def works(fn):
    """Whether the installed PyTorch runs fn on this device (fused CPU AdamW
    and the CPU unscale kernel exist in newer releases only)."""
    try:
        fn()
        return True
    except (RuntimeError, TypeError, ValueError, NotImplementedError, AttributeError):
        return False


def fused_adamw_works(device):
    def probe():
        p = torch.nn.Parameter(torch.zeros(4, device=device))
        p.grad = torch.ones(4, device=device)
        torch.optim.AdamW([p], fused=True).step()
    return accepts(torch.optim.AdamW.__init__, "fused") and works(probe)


def device_unscale_works(device):
    def probe():
        g = [torch.ones(4, device=device)]
        torch._amp_foreach_non_finite_check_and_unscale_(g, torch.zeros(1, device=device), torch.ones(1, device=device))
    return hasattr(torch, "_amp_foreach_non_finite_check_and_unscale_") and works(probe)


def make_step(n, dtype, device):
    gen = torch.Generator(device="cpu").manual_seed(1)
    sizes = tensor_sizes(n)
    master = [torch.nn.Parameter((torch.rand(s, generator=gen) - 0.5).to(device)) for s in sizes]
    fused = fused_adamw_works(device)
    opt_kwargs = {"fused": True} if fused else {"foreach": True}
    opt = torch.optim.AdamW(master, lr=1e-3, weight_decay=1e-2, **opt_kwargs)
    if dtype == "bf16":
        model = [m.detach().to(torch.bfloat16) for m in master]
        for p in model:
            p.grad = ((torch.rand(p.numel(), generator=gen) - 0.5) * 2e-2).to(device=device, dtype=torch.bfloat16)
        grad_owners = model
    else:
        model = None
        for p in master:
            p.grad = (torch.rand(p.numel(), generator=gen) - 0.5).to(device) * 2e-2
        grad_owners = master
    grads = [p.grad for p in grad_owners]
    inv_scale = torch.ones(1, device=device)
    found_inf = torch.zeros(1, device=device)
    device_unscale = device_unscale_works(device)
    clip_foreach = accepts(torch.nn.utils.clip_grad_norm_, "foreach")
    clip_kwargs = {"foreach": True} if clip_foreach else {}
    has_foreach_copy = hasattr(torch, "_foreach_copy_")

    def step():
        if device_unscale:
            found_inf.zero_()
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found_inf, inv_scale)
        else:
            # No device-side unscale kernel here: the scale goes through the host.
            torch._foreach_mul_(grads, inv_scale.item())
        norm = torch.nn.utils.clip_grad_norm_(grad_owners, max_norm=1.0, **clip_kwargs)
        skip = found_inf.item() != 0 if device_unscale else not torch.isfinite(norm).item()
        if skip:
            return
        if dtype == "bf16":
            master_grads = [m.grad if m.grad is not None else torch.empty_like(m) for m in master]
            if has_foreach_copy:
                torch._foreach_copy_(master_grads, grads)
            else:
                for mg, g in zip(master_grads, grads):
                    mg.copy_(g)
            for m, mg in zip(master, master_grads):
                m.grad = mg
        opt.step()
        if dtype == "bf16":
            with torch.no_grad():
                if has_foreach_copy:
                    torch._foreach_copy_(model, master)
                else:
                    for p, m in zip(model, master):
                        p.copy_(m)

    impl = ("fused" if fused else "foreach") + (" device-unscale" if device_unscale else " foreach-unscale") + (
        " clip-foreach" if clip_foreach else " clip-loop")
    return step, impl, sum(sizes)


def make_optimizer_step(n, recipe, device):
    """The optimizer alone on fp32 weights and gradients (--recipe adamw or deepspeed)."""
    gen = torch.Generator(device="cpu").manual_seed(1)
    sizes = tensor_sizes(n)
    weights = [torch.nn.Parameter((torch.rand(s, generator=gen) - 0.5).to(device)) for s in sizes]
    for p in weights:
        p.grad = (torch.rand(p.numel(), generator=gen) - 0.5).to(device) * 2e-2
    if recipe == "deepspeed":
        if device != "cpu":
            raise SystemExit("pytorch_step.py: --recipe deepspeed runs on the CPU only")
        from deepspeed.ops.adam import DeepSpeedCPUAdam  # imported here: only this recipe needs it
        import deepspeed
        opt = DeepSpeedCPUAdam(weights, lr=1e-3, weight_decay=1e-2, adamw_mode=True)
        impl = "DeepSpeedCPUAdam %s" % deepspeed.__version__
    else:
        fused = fused_adamw_works(device)
        opt = torch.optim.AdamW(weights, lr=1e-3, weight_decay=1e-2, **({"fused": True} if fused else {"foreach": True}))
        impl = "AdamW " + ("fused" if fused else "foreach")
    return opt.step, impl, sum(sizes)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7, 1e8])
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--recipe", choices=["amp", "adamw", "deepspeed"], default="amp")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all cores)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    for n in args.sizes:
        if args.recipe == "amp":
            step, impl, params = make_step(int(n), args.dtype, args.device)
        else:
            if args.dtype != "fp32":
                raise SystemExit("pytorch_step.py: --recipe %s is the optimizer on fp32 state: --dtype fp32" % args.recipe)
            step, impl, params = make_optimizer_step(int(n), args.recipe, args.device)
        with torch.no_grad():
            step()
            step()
            times = []
            for _ in range(args.steps):
                sync()
                t0 = time.perf_counter()
                step()
                sync()
                times.append(time.perf_counter() - t0)
        times.sort()
        print(json.dumps({"size": int(n), "params": params, "dtype": args.dtype, "recipe": args.recipe,
                          "device": args.device,
                          "ms_per_step": 1e3 * times[len(times) // 2], "torch": torch.__version__,
                          "threads": torch.get_num_threads(), "impl": impl}), flush=True)
        del step


if __name__ == "__main__":
    main()
