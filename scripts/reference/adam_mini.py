"""Reference weight trajectories for Adam-mini.

Writes tests/data/adam_mini_reference.txt.  Run from anywhere (numpy only,
no torch needed):

    build/torch-venv/bin/python scripts/reference/adam_mini.py

Adam-mini (Zhang et al. 2024, "Adam-mini: Use Fewer Learning Rates To Gain
More", arXiv:2406.16793) keeps Adam's first moment per element but only one
second moment per parameter block: an exponential moving average of the
mean squared gradient over the block.  This script transcribes the update
of the authors' reference implementation (Adam_mini, version 1.1.1 of the
adam-mini package) into float64 numpy; see adam_mini_run below for the
exact formulas and their order.  The parameters and gradients are the
float32 values of the same synthetic generator as optimizers.py (GENERATOR
below), widened to float64; hyperparameters are the float32 values printed
in the file, widened to float64.  The weights are written as float64
('%.17g'), so a float32 implementation compares against them with a
tolerance.

Block partition used here (the `partition` key of each case):
  rows   -- one block per index of the first dimension (per row of a
            matrix), as the reference implementation does for embedding and
            output layers ("one learning rate per token") and for
            value / attention-output / MLP weights ("per neuron");
  tensor -- the whole tensor is one block (the reference implementation's
            default for every other parameter).
"""

import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _refio import Writer, as_f32, f32, f64  # noqa: E402
from _synthetic import generator_text, initial_weights, gradients as synthetic_gradients  # noqa: E402

SHAPES = [(4, 5), (7,), (2, 3, 2), (6, 3)]
PARTITION = ["rows", "tensor", "tensor", "tensor"]
STEPS = 200
CHECKS = [1, 2, 3, 5, 10, 20, 50, 100, 150, 200]

GENERATOR = generator_text(SHAPES)


def gradients(t, grad_scale):
    """The synthetic float32 gradients of step t (flattened)."""
    return synthetic_gradients(t, grad_scale, SHAPES)


def blocks_of(k):
    """Flattened index ranges [begin, end) of parameter k's blocks."""
    n = int(np.prod(SHAPES[k]))
    if PARTITION[k] == "tensor":
        return [(0, n)]
    assert PARTITION[k] == "rows"
    rows = SHAPES[k][0]
    width = n // rows
    return [(r * width, (r + 1) * width) for r in range(rows)]


def lerp(start, end, weight):
    """torch.lerp's formula (the form depends on |weight| < 0.5), float64."""
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


# --------------------------------------------------------------------------
# Adam-mini, float64.  Per step t (1-based), for every parameter w (with its
# float32 gradient g widened to float64), in this order:
#   for each block b:  s_b = (sum of g_i*g_i over the block, left to right)
#                            / (number of elements in the block)
#                      v_b = v_b*b2 + (1 - b2)*s_b
#   if wd > 0:         w   = w * (1 - lr*wd)            (decoupled decay)
#   elementwise:       m   = lerp(m, g, 1 - b1)          (= b1*m + (1-b1)*g)
#   bc1 = 1 - b1**t,  bc2 = 1 - b2**t                    (double pow)
#   for each block b:  h_b = sqrt(v_b) / sqrt(bc2) + eps
#                      c_b = (1 / bc1) / h_b
#   elementwise:       w   = w - (m * c_b) * lr
# m and v start at 0.  This is the order of operations of the reference
# implementation's per-row and whole-tensor branches.
# --------------------------------------------------------------------------
def adam_mini_run(hp, grad_scale):
    lr, b1, b2 = hp["lr"], hp["beta1"], hp["beta2"]
    eps, wd = hp["eps"], hp["weight_decay"]
    ws = [w.astype(np.float64) for w in initial_weights(SHAPES)]
    ms = [np.zeros_like(w) for w in ws]
    vs = [np.zeros(len(blocks_of(k)), dtype=np.float64) for k in range(len(SHAPES))]
    checks = {}
    for t in range(1, STEPS + 1):
        grads = gradients(t, grad_scale)
        for k, g32 in enumerate(grads):
            g = g32.astype(np.float64)
            w, m, v = ws[k], ms[k], vs[k]
            blocks = blocks_of(k)
            for b, (lo, hi) in enumerate(blocks):
                s = 0.0
                for x in g[lo:hi]:
                    s += float(x) * float(x)
                s = s / (hi - lo)
                v[b] = v[b] * b2 + (1.0 - b2) * s
            if wd > 0.0:
                w = w * (1.0 - lr * wd)
            m = lerp(m, g, 1.0 - b1)
            bc1 = 1.0 - b1 ** t
            bc2 = 1.0 - b2 ** t
            coef = np.empty_like(w)
            for b, (lo, hi) in enumerate(blocks):
                h = math.sqrt(v[b]) / math.sqrt(bc2) + eps
                coef[lo:hi] = (1.0 / bc1) / h
            w = w - (m * coef) * lr
            assert w.dtype == m.dtype == np.float64
            ws[k], ms[k] = w, m
        if t in CHECKS:
            checks[t] = [w.copy() for w in ws]
    return checks


HP_ORDER = ["lr", "beta1", "beta2", "eps", "weight_decay"]
DEFAULTS = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0)

CASES = [
    # name, overrides, grad_scale
    ("adam_mini_defaults", dict(), 1.0),
    ("adam_mini_wd0.1", dict(weight_decay=0.1), 1.0),
    ("adam_mini_defaults_gs1e-3", dict(), 1e-3),
]

HEADER = """\
Adam-mini reference trajectories. Generated by scripts/reference/adam_mini.py
-- do not edit by hand. Regenerate: build/torch-venv/bin/python scripts/reference/adam_mini.py

Synthetic data (Python, arbitrary-precision ints):
%s

Adam-mini (Zhang et al. 2024, arXiv:2406.16793) as in the authors' reference
  implementation, version 1.1.1: first moment per element, one second moment
  per block (EMA of the block's mean squared gradient), bias corrections,
  eps added to the bias-corrected sqrt(v), decoupled weight decay
  w *= 1 - lr*wd applied before the update. float64 arithmetic from the
  float32 weights, gradients and hyperparameters (the float32 values printed
  here, widened). Order per step: v_b = v_b*b2 + (1-b2)*mean_b(g*g);
  w *= 1 - lr*wd (if wd > 0); m = lerp(m, g, 1-b1); bc1 = 1-b1^t,
  bc2 = 1-b2^t; h_b = sqrt(v_b)/sqrt(bc2) + eps; w -= (m * ((1/bc1)/h_b)) * lr.
partition <one word per parameter>: rows = one block per index of the first
  dimension; tensor = the whole tensor is one block.
check <t> <k> <n> <weights of parameter k after step t, float64 '%%.17g'>""" % GENERATOR


def main():
    w = Writer("adam_mini_reference.txt")
    w.comment(HEADER)
    for name, over, gscale in CASES:
        hp = dict(DEFAULTS)
        hp.update(over)
        for key in HP_ORDER:
            hp[key] = as_f32(hp[key])
        checks = adam_mini_run(hp, gscale)
        w.begin(name)
        w.kv("optimizer", "adam_mini")
        for key in HP_ORDER:
            w.kv(key, f32(hp[key]))
        w.kv("grad_scale", f32(gscale))
        w.kv("shapes", len(SHAPES), *["x".join(str(d) for d in s) for s in SHAPES])
        w.kv("partition", len(PARTITION), *PARTITION)
        w.kv("steps", STEPS)
        for t in CHECKS:
            for k, arr in enumerate(checks[t]):
                assert np.all(np.isfinite(arr)), (name, t, k)
                w.kv("check", t, k, arr.size, *[f64(x) for x in arr])
        w.end()
    w.write()


if __name__ == "__main__":
    main()
