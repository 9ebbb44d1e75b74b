"""Reference vectors for gradient clipping.

Writes tests/data/clip_reference.txt.  Run from anywhere:

    /usr/bin/python3 scripts/reference/clipping.py

kind norm  -- torch.nn.utils.clip_grad_norm_ semantics:
    total = (sum over all tensors and elements of |g|^p)^(1/p)   (p = inf: max |g|)
    coef  = max_norm / (total + 1e-6), clamped to at most 1
    g    <- g * coef            (applied also when coef is clamped to 1)
  f32 cases: torch 1.13 clip_grad_norm_ is run for real on float32 CPU
    parameters; norm is the float32 total norm it returns, coef is the
    clamped float32 coefficient evaluated with the very expression torch
    uses (max_norm / (total_norm + 1e-6), then torch.clamp(max=1.0); note
    that torch evaluates python_scalar / tensor as tensor.reciprocal() *
    scalar), clipped are the float32 gradients torch leaves.
  bf16 / f16 cases: the inputs are exactly representable in the format; the
    reference is exact-as-possible float64 arithmetic on those values
    (math.fsum for the sum, float64 pow/sqrt), coef and clipped in float64.
kind value -- torch.nn.utils.clip_grad_value_: g <- clamp(g, -c, c).
  f32 cases run torch for real; bf16 / f16 clamp in float64 (clip values
  are exactly representable in every format, so this is exact).
"""

import math
import os
import sys

import numpy as np

# Pin torch's CPU kernels to the portable (non-SIMD) dispatch before torch
# is imported: results then do not depend on the machine's AVX2/AVX512
# support, and no kernel fuses a multiply-add (the AVX2 kernels of
# add(alpha=), addcmul and addcdiv use FMA).  See tests/data/README.md.
os.environ["ATEN_CPU_CAPABILITY"] = "default"
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _refio import Writer, as_f32, f32, f64, torch_capability  # noqa: E402

SHAPES = [(7, 13), (64,), (3, 3, 5), (1,)]
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
P_VALUES = [1.0, 2.0, 3.5, math.inf]


def make_inputs(seed, fmt, scales):
    """4 tensors of N(0,1) * scale, rounded to the format (float32 arrays)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for shape, scale in zip(SHAPES, scales):
        if scale == 0.0:
            t = torch.zeros(shape, dtype=torch.float32)
        else:
            t = torch.randn(shape, generator=gen, dtype=torch.float32) * float(scale)
        t = t.to(DTYPES[fmt]).to(torch.float32)
        out.append(t.numpy().reshape(-1).copy())
    return out


def norm64(arrays, p):
    vals = np.concatenate([a.astype(np.float64) for a in arrays])
    a = np.abs(vals)
    if math.isinf(p):
        return float(a.max())
    if p == 1.0:
        return math.fsum(a.tolist())
    if p == 2.0:
        return math.sqrt(math.fsum((a * a).tolist()))
    return math.fsum([math.pow(x, p) for x in a.tolist()]) ** (1.0 / p)


def nice(x):
    """x rounded to 3 significant digits, then to float32 (returned as double)."""
    if x == 0.0:
        return 1.0
    e = math.floor(math.log10(abs(x)))
    return as_f32(round(x / 10.0 ** (e - 2)) * 10.0 ** (e - 2))


def ptext(p):
    return "inf" if math.isinf(p) else "%.9g" % p


def emit_inputs(w, arrays):
    w.kv("tensors", len(arrays))
    for k, a in enumerate(arrays):
        w.kv("input", k, a.size, *[f32(v) for v in a])


def params_with_grads(arrays):
    """fp32 parameters of SHAPES whose .grad holds a copy of each array."""
    params = []
    for a, shape in zip(arrays, SHAPES):
        prm = torch.nn.Parameter(torch.zeros(shape, dtype=torch.float32))
        prm.grad = torch.from_numpy(a.copy()).reshape(shape)
        params.append(prm)
    return params


def norm_case(w, name, fmt, p, arrays, max_norm):
    max_norm = as_f32(max_norm)
    w.begin(name)
    w.kv("kind", "norm")
    w.kv("format", fmt)
    w.kv("p", ptext(p))
    w.kv("max_norm", f32(max_norm))
    emit_inputs(w, arrays)
    if fmt == "f32":
        params = params_with_grads(arrays)
        total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=p)
        assert total.dtype == torch.float32
        # the coefficient, exactly as torch 1.13 evaluates it
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        assert coef.dtype == torch.float32
        clipped = [prm.grad.detach().numpy().reshape(-1) for prm in params]
        for a, c in zip(arrays, clipped):  # sanity: torch applied g * coef
            assert np.array_equal((a * coef.numpy()).astype(np.float32), c)
        w.kv("norm", f32(total.item()))
        w.kv("coef", f32(coef.item()))
        for k, c in enumerate(clipped):
            w.kv("clipped", k, c.size, *[f32(v) for v in c])
        total_v, coef_v = total.item(), coef.item()
    else:
        total_v = norm64(arrays, p)
        coef_v = min(1.0, max_norm / (total_v + 1e-6))
        w.kv("norm", f64(total_v))
        w.kv("coef", f64(coef_v))
        for k, a in enumerate(arrays):
            c = a.astype(np.float64) * coef_v
            w.kv("clipped", k, c.size, *[f64(v) for v in c])
    w.end()
    return total_v, coef_v


def value_case(w, name, fmt, arrays, clip_value):
    clip_value = as_f32(clip_value)
    for dt in DTYPES.values():  # exactly representable in every format
        assert torch.tensor(clip_value).to(dt).item() == clip_value
    w.begin(name)
    w.kv("kind", "value")
    w.kv("format", fmt)
    w.kv("clip_value", f32(clip_value))
    emit_inputs(w, arrays)
    if fmt == "f32":
        params = params_with_grads(arrays)
        torch.nn.utils.clip_grad_value_(params, clip_value)
        for k, prm in enumerate(params):
            c = prm.grad.detach().numpy().reshape(-1)
            w.kv("clipped", k, c.size, *[f32(v) for v in c])
    else:
        for k, a in enumerate(arrays):
            c = np.clip(a.astype(np.float64), -clip_value, clip_value)
            w.kv("clipped", k, c.size, *[f64(v) for v in c])
    w.end()


HEADER = """\
Gradient clipping reference vectors. Generated by scripts/reference/clipping.py
-- do not edit by hand. Regenerate: /usr/bin/python3 scripts/reference/clipping.py

4 gradient tensors per case, shapes [7,13] [64] [3,3,5] [1], flattened row-major.
kind norm: torch.nn.utils.clip_grad_norm_ (torch %s) semantics,
  coef = min(1, max_norm / (total_norm + 1e-6)), g <- g * coef.
  format f32: produced by torch's clip_grad_norm_ on float32 CPU tensors;
    norm, coef and clipped are float32 (%%.9g). torch evaluates the
    coefficient as float32(1/(norm + 1e-6f)) * max_norm (Tensor.__rtruediv__
    is reciprocal-then-multiply), so it may differ from a true division by
    an ulp.
  format bf16 / f16: inputs exactly representable in the format; norm, coef
    and clipped are the float64 reference (%%.17g) computed from those inputs.
kind value: torch.nn.utils.clip_grad_value_, g <- clamp(g, -clip_value, clip_value)
  (f32: torch, float32 output; bf16/f16: float64 output, exact).
Inputs are always printed as float32 (%%.9g).
torch CPU kernels: ATEN_CPU_CAPABILITY=default (capability reported: %s).""" % (
    torch.__version__, torch_capability(torch))


def main():
    torch.set_num_threads(1)
    assert torch_capability(torch) == "NO AVX", torch_capability(torch)
    w = Writer("clip_reference.txt")
    w.comment(HEADER)
    rng = np.random.default_rng(2024)
    seed = 1000
    fmts = ["f32", "bf16", "f16"]

    # all formats x all p, one clipping and one non-clipping case each
    for fmt in fmts:
        for p in P_VALUES:
            for mode in ("clip", "noclip"):
                seed += 1
                scales = [float(10.0 ** rng.uniform(-3, 1)) for _ in SHAPES]
                arrays = make_inputs(seed, fmt, scales)
                n = norm64(arrays, p)
                factor = rng.uniform(0.05, 0.7) if mode == "clip" else rng.uniform(1.5, 4.0)
                name = "%s_p%s_%s" % (fmt, ptext(p), mode)
                total, coef = norm_case(w, name, fmt, p, arrays, nice(n * factor))
                assert (coef < 1.0) == (mode == "clip"), (name, coef)

    # one tensor with a huge norm dominating the others
    for fmt, big in (("f32", 1.0e4), ("bf16", 1.0e4), ("f16", 1.0e3)):
        for p in (2.0, 3.5):
            seed += 1
            arrays = make_inputs(seed, fmt, [1e-3, 1e-3, big, 1e-3])
            n = norm64(arrays, p)
            norm_case(w, "%s_p%s_huge_dominates" % (fmt, ptext(p)), fmt, p, arrays, nice(n * 0.01))

    # all-zero gradients: norm 0, coef = max_norm / 1e-6 clamped to 1
    for fmt in fmts:
        for p in (2.0, math.inf):
            arrays = make_inputs(0, fmt, [0.0, 0.0, 0.0, 0.0])
            total, coef = norm_case(w, "%s_p%s_all_zero" % (fmt, ptext(p)), fmt, p, arrays, 1.0)
            assert total == 0.0 and coef == 1.0

    # boundary: max_norm equal to the (float32) total norm, coef just below 1
    seed += 1
    arrays = make_inputs(seed, "f32", [1.0, 0.5, 2.0, 1.0])
    n = as_f32(norm64(arrays, 2.0))
    total, coef = norm_case(w, "f32_p2_max_norm_equals_norm", "f32", 2.0, arrays, n)
    assert coef < 1.0

    # value clipping
    for fmt, cv in (("f32", 0.75), ("bf16", 1.5), ("f16", 0.5)):
        seed += 1
        arrays = make_inputs(seed, fmt, [1.0, 2.0, 0.5, 4.0])
        value_case(w, "%s_value_clip" % fmt, fmt, arrays, cv)

    w.write()


if __name__ == "__main__":
    main()
