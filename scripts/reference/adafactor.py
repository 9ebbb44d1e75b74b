"""Reference weight trajectories for Adafactor.

Writes tests/data/adafactor_reference.txt.  Run from anywhere, with the
newer torch of the reference virtual environment (not Debian's torch 1.13,
which has no Adafactor):

    build/torch-venv/bin/python scripts/reference/adafactor.py

The reference is the real torch.optim.Adafactor (torch 2.x) on float32 CPU
tensors, single-tensor implementation (foreach=False).  Parameters and
gradients are synthetic and defined by integer hashing (see GENERATOR
below; the same generator as optimizers.py, with a fourth parameter), so a
C++ test recomputes them bit for bit.  Hyperparameters are passed to torch
as the float32 values printed in the file, widened to double.  eps1 = None
(torch's default) is recorded as the value torch substitutes for it,
torch.finfo(torch.float32).eps = 2^-23, with `eps1_arg none`.

The parameters cover a rank-2, a rank-1 (unfactored), a rank-3 (factored
over its last two dimensions, per leading index) and a second rank-2
tensor whose row count (6) makes torch's float32 sum over the rows group
its terms differently from a left-to-right sum.
"""

import os
import sys

import numpy as np

# Pin torch's CPU kernels to the portable (non-SIMD) dispatch before torch
# is imported: results then do not depend on the machine's AVX2/AVX512
# support, and no kernel fuses a multiply-add.  See tests/data/README.md.
os.environ["ATEN_CPU_CAPABILITY"] = "default"
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _refio import Writer, as_f32, f32, torch_capability  # noqa: E402
from _synthetic import generator_text, initial_weights, gradients as synthetic_gradients  # noqa: E402

SHAPES = [(4, 5), (7,), (2, 3, 2), (6, 3)]
STEPS = 200
CHECKS = [1, 2, 3, 5, 10, 20, 50, 100, 150, 200]
EPS1_NONE = float(torch.finfo(torch.float32).eps)  # what torch uses for eps1=None

GENERATOR = generator_text(SHAPES)


def gradients(t, grad_scale, zero_rule):
    """The synthetic float32 gradients of step t (flattened), after zero_rule."""
    grads = synthetic_gradients(t, grad_scale, SHAPES)
    if zero_rule == "rows_cols":
        # see ZERO_RULE_TEXT
        p0 = grads[0].reshape(4, 5)
        p0[3, :] = 0.0
        if t % 2 == 0:
            p0[1, :] = 0.0
        grads[1][[0, 3]] = 0.0
        p2 = grads[2].reshape(2, 3, 2)
        if t % 2 == 1:
            p2[1, :, :] = 0.0
        p2[0, 2, :] = 0.0
        p3 = grads[3].reshape(6, 3)
        p3[:, 0] = 0.0
        if t % 4 == 1:
            p3[5, :] = 0.0
    else:
        assert zero_rule == "none"
    return grads


ZERO_RULE_TEXT = """\
zero_grad_rule rows_cols (indices 0-based, t 1-based; the zeros are exact +0):
  parameter 0 [4,5]: row 3 is zero on every step, row 1 on even t
  parameter 1 [7]: elements 0 and 3 are zero on every step
  parameter 2 [2,3,2]: the whole slice [1,:,:] is zero on odd t (so at t = 1
    all of its row factors are 0 and their mean is raised to eps1); row
    [0,2,:] is zero on every step
  parameter 3 [6,3]: column 0 is zero on every step; row 5 is zero when
    t % 4 == 1"""


def run_torch(hp, grad_scale, zero_rule):
    params = [torch.nn.Parameter(torch.from_numpy(w.copy()).reshape(shape))
              for w, shape in zip(initial_weights(SHAPES), SHAPES)]
    eps1 = None if hp["eps1_arg"] == "none" else hp["eps1"]
    opt = torch.optim.Adafactor(params, lr=hp["lr"], beta2_decay=hp["beta2_decay"],
                                eps=(eps1, hp["eps2"]), d=hp["d"],
                                weight_decay=hp["weight_decay"], foreach=False,
                                maximize=bool(hp["maximize"]))
    checks = {}
    for t in range(1, STEPS + 1):
        for prm, g, shape in zip(params, gradients(t, grad_scale, zero_rule), SHAPES):
            prm.grad = torch.from_numpy(g).reshape(shape)
        opt.step()
        if t in CHECKS:
            checks[t] = [prm.detach().numpy().reshape(-1).copy() for prm in params]
    return checks


HP_ORDER = ["lr", "beta2_decay", "eps1", "eps2", "d", "weight_decay", "maximize"]
DEFAULTS = dict(lr=1e-2, beta2_decay=-0.8, eps1=None, eps2=1e-3, d=1.0, weight_decay=0.0,
                maximize=0)

# torch rejects d < 1, so the clipping-threshold case uses d = 1.25 (with
# d = 1 the update is clipped in about half of the steps here, with 1.25 in
# a few).  The grad_scale 1e-3 cases put the row-mean clamp (eps1 3e-7:
# sometimes; eps1 5e-5: always) and the variance clamp (eps1 5e-5: mostly)
# into play; the zero_rule case meets both with exact zeros.
CASES = [
    # name, overrides, grad_scale, zero_rule
    ("adafactor_defaults", dict(), 1.0, "none"),
    ("adafactor_wd0.1", dict(weight_decay=0.1), 1.0, "none"),
    ("adafactor_lr3e-3_d1.25_eps1e-30", dict(lr=3e-3, d=1.25, eps1=1e-30), 1.0, "none"),
    ("adafactor_maximize", dict(maximize=1), 1.0, "none"),
    ("adafactor_defaults_gs1e-3", dict(), 1e-3, "none"),
    ("adafactor_eps3e-7_gs1e-3", dict(eps1=3e-7), 1e-3, "none"),
    ("adafactor_eps5e-5_gs1e-3", dict(eps1=5e-5), 1e-3, "none"),
    ("adafactor_wd0.05_zero_rows_cols", dict(weight_decay=0.05), 1.0, "rows_cols"),
]

HEADER = """\
Adafactor reference trajectories. Generated by scripts/reference/adafactor.py
-- do not edit by hand. Regenerate: build/torch-venv/bin/python scripts/reference/adafactor.py

Synthetic data (Python, arbitrary-precision ints):
%s

torch.optim.Adafactor of torch %s, float32 CPU tensors,
  foreach=False (single-tensor path); p.grad set each step to the
  synthetic gradient. Hyperparameters were passed to torch as the float32
  values printed here (widened to double). eps1_arg none: torch was given
  eps1=None and used torch.finfo(float32).eps = 2^-23 (the eps1 value
  printed); eps1_arg value: torch was given the printed eps1.
Rank >= 2 parameters are factored over their last two dimensions (rank 3:
  independently for each index of the first dimension); rank 1 keeps a full
  second-moment vector.
%s
torch CPU kernels: ATEN_CPU_CAPABILITY=default (capability reported: %s), so
  no torch kernel fuses a multiply-add here.
check <t> <k> <n> <weights of parameter k after step t, float32>""" % (
    GENERATOR, torch.__version__, ZERO_RULE_TEXT, torch_capability(torch))


def main():
    assert hasattr(torch.optim, "Adafactor"), "torch %s has no Adafactor" % torch.__version__
    torch.set_num_threads(1)
    assert torch_capability(torch) in ("DEFAULT", "NO AVX"), torch_capability(torch)
    w = Writer("adafactor_reference.txt")
    w.comment(HEADER)
    for name, over, gscale, zrule in CASES:
        hp = dict(DEFAULTS)
        hp.update(over)
        hp["eps1_arg"] = "none" if hp["eps1"] is None else "value"
        if hp["eps1"] is None:
            hp["eps1"] = EPS1_NONE
        for key in HP_ORDER:
            hp[key] = int(hp[key]) if key == "maximize" else as_f32(hp[key])
        assert hp["eps1"] > 0.0
        checks = run_torch(hp, gscale, zrule)
        w.begin(name)
        w.kv("optimizer", "adafactor")
        for key in HP_ORDER:
            w.kv(key, hp[key] if key == "maximize" else f32(hp[key]))
        w.kv("eps1_arg", hp["eps1_arg"])
        w.kv("grad_scale", f32(gscale))
        w.kv("zero_grad_rule", zrule)
        w.kv("shapes", len(SHAPES), *["x".join(str(d) for d in s) for s in SHAPES])
        w.kv("steps", STEPS)
        for t in CHECKS:
            for k, arr in enumerate(checks[t]):
                assert np.all(np.isfinite(arr)), (name, t, k)
                w.kv("check", t, k, arr.size, *[f32(x) for x in arr])
        w.end()
    w.write()


if __name__ == "__main__":
    main()
