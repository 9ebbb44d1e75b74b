"""Reference weight trajectories for optimizers.

Writes tests/data/optimizer_reference.txt.  Run from anywhere:

    /usr/bin/python3 scripts/reference/optimizers.py

Parameters and gradients are synthetic and defined by integer hashing (see
GENERATOR below), so a C++ test recomputes them bit for bit.

sgd / adam / adamw / adagrad: the real torch 1.13 optimizers on float32 CPU
tensors, single-tensor implementation (foreach=False; capturable, fused and
differentiable off).  Hyperparameters are passed to torch as the float32
values printed in the file (widened to double), so that a reader which
parses them into float32 gets exactly the values torch used.

lamb / lion: no torch 1.13 implementation; implemented below in numpy
float32 (every intermediate rounded to float32, scalars float32; no fused
multiply-add).  Update rules are documented at the functions.
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
from _refio import Writer, as_f32, f32, torch_capability  # noqa: E402
from _synthetic import generator_text, initial_weights, gradients as synthetic_gradients  # noqa: E402

SHAPES = [(4, 5), (7,), (2, 3, 2)]
STEPS = 200
CHECKS = [1, 2, 3, 5, 10, 20, 50, 100, 150, 200]

GENERATOR = generator_text(SHAPES)


def gradients(t, grad_scale, zero_rule):
    grads = synthetic_gradients(t, grad_scale, SHAPES)
    if zero_rule == "even_steps_param 1":
        # parameter 1: all elements get gradient 0 on even steps
        if t % 2 == 0:
            grads[1][:] = 0.0
    elif zero_rule == "even_elements_or_even_steps_param 1":
        # parameter 1: element i gets gradient 0 when i is even (every step)
        # or when t is even (all elements)
        if t % 2 == 0:
            grads[1][:] = 0.0
        else:
            grads[1][0::2] = 0.0
    else:
        assert zero_rule == "none"
    return grads


# --------------------------------------------------------------------------
# torch optimizers
# --------------------------------------------------------------------------
def run_torch(opt_name, hp, grad_scale):
    params = [torch.nn.Parameter(torch.from_numpy(w.copy()).reshape(shape))
              for w, shape in zip(initial_weights(SHAPES), SHAPES)]
    if opt_name == "sgd":
        opt = torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"],
                              dampening=hp["dampening"], weight_decay=hp["weight_decay"],
                              nesterov=bool(hp["nesterov"]), maximize=bool(hp["maximize"]),
                              foreach=False)
    elif opt_name in ("adam", "adamw"):
        cls = torch.optim.Adam if opt_name == "adam" else torch.optim.AdamW
        opt = cls(params, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                  weight_decay=hp["weight_decay"], amsgrad=bool(hp["amsgrad"]),
                  maximize=bool(hp["maximize"]), foreach=False, capturable=False)
    elif opt_name == "adagrad":
        opt = torch.optim.Adagrad(params, lr=hp["lr"], lr_decay=hp["lr_decay"],
                                  weight_decay=hp["weight_decay"],
                                  initial_accumulator_value=hp["initial_accumulator_value"],
                                  eps=hp["eps"], maximize=bool(hp["maximize"]), foreach=False)
    else:
        raise ValueError(opt_name)
    checks = {}
    for t in range(1, STEPS + 1):
        for prm, g, shape in zip(params, gradients(t, grad_scale, "none"), SHAPES):
            prm.grad = torch.from_numpy(g).reshape(shape)
        opt.step()
        if t in CHECKS:
            checks[t] = [prm.detach().numpy().reshape(-1).copy() for prm in params]
    return checks


# --------------------------------------------------------------------------
# LAMB (You et al. 2019, "Large Batch Optimization for Deep Learning:
# Training BERT in 76 Minutes", arXiv:1904.00962), with the semantics of
# NVIDIA Apex FusedLAMB: bias_correction=True, grad_averaging=True,
# adam_w_mode=True (decoupled weight decay), max_grad_norm=0 (no global
# gradient clipping).  Per step t (1-based), every tensor, float32:
#   m     = b1*m + (1-b1)*g                 [(b1*m) + ((1-b1)*g)]
#   v     = b2*v + (1-b2)*g*g               [(b2*v) + (((1-b2)*g)*g)]
#   bc1   = float32(1 - b1^t)  with b1^t evaluated in double from float32 b1
#           (one rounding; Apex: 1 - std::pow(beta1, step) stored in float);
#   bc2 likewise
#   u     = (m/bc1) / (sqrt(v/bc2) + eps) + wd*w
#   wn    = ||w||, un = ||u||  (per tensor; sum of squares in float64, sqrt,
#           rounded once to float32)
#   ratio = lr * (wn/un) if wn != 0 and un != 0 else lr
#   w     = w - ratio*u
# The trust ratio is applied for every tensor, also when wd = 0 (paper /
# "NVLAMB" behaviour; plain Apex FusedLAMB skips it when weight_decay == 0).
# --------------------------------------------------------------------------
def run_lamb(hp, grad_scale, zero_rule):
    one = np.float32(1.0)
    lr, b1, b2 = np.float32(hp["lr"]), np.float32(hp["beta1"]), np.float32(hp["beta2"])
    eps, wd = np.float32(hp["eps"]), np.float32(hp["weight_decay"])
    omb1, omb2 = one - b1, one - b2
    ws = initial_weights(SHAPES)
    ms = [np.zeros_like(w) for w in ws]
    vs = [np.zeros_like(w) for w in ws]
    checks = {}
    for t in range(1, STEPS + 1):
        bc1 = np.float32(1.0 - float(b1) ** t)
        bc2 = np.float32(1.0 - float(b2) ** t)
        for k, g in enumerate(gradients(t, grad_scale, zero_rule)):
            w, m, v = ws[k], ms[k], vs[k]
            m = b1 * m + omb1 * g
            v = b2 * v + (omb2 * g) * g
            denom = np.sqrt(v / bc2) + eps
            u = (m / bc1) / denom + wd * w
            wn = np.float32(math.sqrt(float(np.sum(w.astype(np.float64) ** 2))))
            un = np.float32(math.sqrt(float(np.sum(u.astype(np.float64) ** 2))))
            ratio = lr * (wn / un) if (wn != 0 and un != 0) else lr
            w = w - ratio * u
            assert w.dtype == m.dtype == v.dtype == np.float32
            ws[k], ms[k], vs[k] = w, m, v
        if t in CHECKS:
            checks[t] = [w.copy() for w in ws]
    return checks


# --------------------------------------------------------------------------
# Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms",
# arXiv:2302.06675, Program 1).  Per step, elementwise, float32:
#   c = b1*m + (1-b1)*g                     [(b1*m) + ((1-b1)*g)]
#   w = w - lr*(sign(c) + wd*w)             [w - (lr*(sign(c) + (wd*w)))]
#   m = b2*m + (1-b2)*g                     [(b2*m) + ((1-b2)*g)]
# with sign(0) = 0 (so an element whose c is exactly 0 only decays).
# --------------------------------------------------------------------------
def run_lion(hp, grad_scale, zero_rule):
    one = np.float32(1.0)
    lr, b1, b2 = np.float32(hp["lr"]), np.float32(hp["beta1"]), np.float32(hp["beta2"])
    wd = np.float32(hp["weight_decay"])
    omb1, omb2 = one - b1, one - b2
    ws = initial_weights(SHAPES)
    ms = [np.zeros_like(w) for w in ws]
    checks = {}
    for t in range(1, STEPS + 1):
        for k, g in enumerate(gradients(t, grad_scale, zero_rule)):
            w, m = ws[k], ms[k]
            c = b1 * m + omb1 * g
            w = w - lr * (np.sign(c) + wd * w)
            m = b2 * m + omb2 * g
            assert w.dtype == m.dtype == np.float32
            ws[k], ms[k] = w, m
        if t in CHECKS:
            checks[t] = [w.copy() for w in ws]
    return checks


# --------------------------------------------------------------------------
HP_ORDER = {
    "sgd": ["lr", "momentum", "dampening", "nesterov", "weight_decay", "maximize"],
    "adam": ["lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad", "maximize"],
    "adamw": ["lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad", "maximize"],
    "adagrad": ["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize"],
    "lamb": ["lr", "beta1", "beta2", "eps", "weight_decay"],
    "lion": ["lr", "beta1", "beta2", "weight_decay"],
}
DEFAULTS = {
    "sgd": dict(momentum=0.0, dampening=0.0, nesterov=0, weight_decay=0.0, maximize=0),
    "adam": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=0, maximize=0),
    "adamw": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2, amsgrad=0, maximize=0),
    "adagrad": dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                    eps=1e-10, maximize=0),
    "lamb": dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.01),
    "lion": dict(lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0),
}
INT_KEYS = {"nesterov", "maximize", "amsgrad"}

CASES = [
    # name, optimizer, overrides, grad_scale, zero_rule
    ("sgd_lr0.1", "sgd", dict(lr=0.1), 1.0, "none"),
    ("sgd_lr0.05_momentum0.9", "sgd", dict(lr=0.05, momentum=0.9), 1.0, "none"),
    ("sgd_momentum0.9_dampening0.1", "sgd", dict(lr=0.01, momentum=0.9, dampening=0.1), 1.0, "none"),
    ("sgd_momentum0.9_nesterov", "sgd", dict(lr=0.01, momentum=0.9, nesterov=1), 1.0, "none"),
    ("sgd_momentum0.9_wd0.01_gs1e-3", "sgd", dict(lr=0.01, momentum=0.9, weight_decay=0.01), 1e-3, "none"),
    ("sgd_lr0.05_maximize_momentum0.5", "sgd", dict(lr=0.05, momentum=0.5, maximize=1), 1.0, "none"),
    ("adam_defaults", "adam", dict(), 1.0, "none"),
    ("adam_wd0.01", "adam", dict(weight_decay=0.01), 1.0, "none"),
    ("adam_amsgrad", "adam", dict(amsgrad=1), 1.0, "none"),
    ("adam_maximize", "adam", dict(maximize=1), 1.0, "none"),
    ("adam_betas0.8_0.99_eps1e-6_lr3e-3_gs1e-3", "adam",
     dict(beta1=0.8, beta2=0.99, eps=1e-6, lr=3e-3), 1e-3, "none"),
    ("adam_amsgrad_wd0.05", "adam", dict(amsgrad=1, weight_decay=0.05), 1.0, "none"),
    ("adamw_defaults", "adamw", dict(), 1.0, "none"),
    ("adamw_amsgrad", "adamw", dict(amsgrad=1), 1.0, "none"),
    ("adamw_lr5e-3_wd0.1_betas0.9_0.95", "adamw",
     dict(lr=5e-3, weight_decay=0.1, beta1=0.9, beta2=0.95), 1.0, "none"),
    ("adagrad_defaults", "adagrad", dict(), 1.0, "none"),
    ("adagrad_lr_decay0.01", "adagrad", dict(lr_decay=0.01), 1.0, "none"),
    ("adagrad_init_acc0.1", "adagrad", dict(initial_accumulator_value=0.1), 1.0, "none"),
    ("adagrad_wd0.01_eps1e-8_lr0.05", "adagrad", dict(weight_decay=0.01, eps=1e-8, lr=0.05), 1.0, "none"),
    ("lamb_lr1e-3_wd0.01", "lamb", dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.01),
     1.0, "none"),
    ("lamb_lr5e-3_wd0", "lamb", dict(lr=5e-3, weight_decay=0.0), 1.0, "none"),
    ("lion_lr1e-4", "lion", dict(lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0), 1.0, "none"),
    ("lion_lr3e-4_wd0.1", "lion", dict(lr=3e-4, weight_decay=0.1), 1.0, "none"),
    ("lion_lr1e-3_wd0.05_zero_grads_even_steps", "lion", dict(lr=1e-3, weight_decay=0.05), 1.0,
     "even_steps_param 1"),
    ("lion_lr1e-3_wd0.05_sign_zero", "lion", dict(lr=1e-3, weight_decay=0.05), 1.0,
     "even_elements_or_even_steps_param 1"),
]

HEADER = """\
Optimizer reference trajectories. Generated by scripts/reference/optimizers.py
-- do not edit by hand. Regenerate: /usr/bin/python3 scripts/reference/optimizers.py

Synthetic data (Python, arbitrary-precision ints):
%s

sgd/adam/adamw/adagrad: torch %s optimizers, float32 CPU, foreach=False
  (single-tensor path), capturable/fused off; p.grad set each step to the
  synthetic gradient. Hyperparameters were passed to torch as the float32
  values printed here (widened to double).
lamb: Apex FusedLAMB semantics (bias correction, grad averaging, decoupled
  weight decay, no global clipping), trust ratio ||w||/||u|| applied to every
  tensor (also with weight_decay 0), see scripts/reference/optimizers.py.
lion: Chen et al. 2023, sign(0) = 0, decoupled decay w - lr*(sign(c) + wd*w).
  lamb/lion are numpy float32 with every intermediate rounded to float32.
zero_grad_rule even_steps_param 1: the gradient of parameter 1 is zero (all
  elements) on even steps t. (The momentum is then non-zero, so c = b1*m is
  non-zero and sign(0) is not reached.)
zero_grad_rule even_elements_or_even_steps_param 1: the gradient of
  parameter 1 is zero for all its elements on even steps t, and for its
  even-index elements on every step (those elements keep a zero momentum,
  so sign(c) = sign(0) = 0 for them).
torch CPU kernels: ATEN_CPU_CAPABILITY=default (capability reported: %s), so
  no torch kernel fuses a multiply-add here.
check <t> <k> <n> <weights of parameter k after step t, float32>""" % (
    GENERATOR, torch.__version__, torch_capability(torch))


def main():
    torch.set_num_threads(1)
    assert torch_capability(torch) == "NO AVX", torch_capability(torch)
    w = Writer("optimizer_reference.txt")
    w.comment(HEADER)
    for name, opt, over, gscale, zrule in CASES:
        hp = dict(DEFAULTS[opt])
        hp.update(over)
        for key in list(hp):
            hp[key] = int(hp[key]) if key in INT_KEYS else as_f32(hp[key])
        assert "lr" in hp
        if opt == "lamb":
            checks = run_lamb(hp, gscale, zrule)
        elif opt == "lion":
            checks = run_lion(hp, gscale, zrule)
        else:
            assert zrule == "none"
            checks = run_torch(opt, hp, gscale)
        w.begin(name)
        w.kv("optimizer", opt)
        for key in HP_ORDER[opt]:
            w.kv(key, hp[key] if key in INT_KEYS else f32(hp[key]))
        w.kv("grad_scale", f32(gscale))
        w.kv("zero_grad_rule", zrule)
        w.kv("shapes", len(SHAPES), *["x".join(str(d) for d in s) for s in SHAPES])
        w.kv("steps", STEPS)
        for t in CHECKS:
            for k, arr in enumerate(checks[t]):
                w.kv("check", t, k, arr.size, *[f32(x) for x in arr])
        w.end()
    w.write()


if __name__ == "__main__":
    main()
