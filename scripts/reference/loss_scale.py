"""Reference trajectories for dynamic loss scaling.

Writes tests/data/loss_scale_reference.txt.  Run from anywhere:

    /usr/bin/python3 scripts/reference/loss_scale.py

Two reference algorithms are transcribed here (written from the published
algorithms, not copied):

(a) PyTorch GradScaler, i.e. the kernel behind torch._amp_update_scale_
    (aten/src/ATen/native/cpu/AmpGradScalerKernels.cpp and
    aten/src/ATen/native/cuda/AmpKernels.cu; torch 1.13 has no CPU kernel
    for this op, so it cannot be called here).  State: a float32 scale and
    an int growth tracker; the factors are doubles.  Per step:
      overflow:   scale <- float32(double(scale) * backoff); tracker <- 0
      otherwise:  n <- tracker + 1
                  if n == growth_interval:
                      grown <- float32(double(scale) * growth)
                      if grown is finite: scale <- grown
                      tracker <- 0
                  else: tracker <- n
    mixprec extensions (cases named ext_*): after a backoff the scale is
    raised to min_scale if below it; after a finite growth it is lowered to
    max_scale if above it.  Plain PyTorch cases use mixprec's default floor,
    min_scale = 2^-126 (the smallest normal float32; GradScaler has none and
    lets the scale underflow to 0), and max inf: their trajectories are
    GradScaler's exactly until the scale would drop below 2^-126.

(b) DeepSpeed DynamicLossScaler.update_scale(overflow)
    (deepspeed/runtime/fp16/loss_scaler.py), raise_error_at_min_scale off.
    State: cur_scale, cur_iter (0), last_overflow_iter (-1), cur_hysteresis
    (= delayed_shift).  Per step:
      overflow:   if delayed_shift == 1 or cur_hysteresis == 1:
                      cur_scale <- max(cur_scale / scale_factor, min_scale)
                  else: cur_hysteresis -= 1
                  last_overflow_iter <- cur_iter
      otherwise:  if consecutive_hysteresis: cur_hysteresis <- delayed_shift
                  if (cur_iter - last_overflow_iter) % scale_window == 0:
                      if not consecutive_hysteresis:
                          cur_hysteresis <- delayed_shift
                      cur_scale *= scale_factor
      cur_iter += 1
    Only scale_factor 2 and power-of-two scales are used, so DeepSpeed's
    double arithmetic is exact in float32 (checked below: every scale stays a
    normal float32 power of two).

Factors are Python doubles, as GradScaler passes them to its kernel (growth
1.7 means the double 1.7, not float32(1.7)); the file prints them with
'%.17g' so that a reader parsing them into doubles gets the same values.
"""

import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _refio import Writer, f32, f64  # noqa: E402

FLOOR = 2.0 ** -126  # mixprec's default min_scale: the smallest normal float32


# --------------------------------------------------------------------------
# (a) PyTorch _amp_update_scale_ (+ mixprec min/max extension)
# --------------------------------------------------------------------------
class TorchScaler:
    def __init__(self, init_scale, growth_factor, backoff_factor, growth_interval,
                 min_scale=0.0, max_scale=math.inf):
        self.scale = np.float32(init_scale)
        self.tracker = 0
        self.growth = float(growth_factor)  # double, as the kernel receives it
        self.backoff = float(backoff_factor)
        self.interval = int(growth_interval)
        self.min_scale = np.float32(min_scale)
        self.max_scale = np.float32(max_scale)

    def update(self, found_inf):
        if found_inf:
            backed = np.float32(float(self.scale) * self.backoff)
            if backed < self.min_scale:
                backed = self.min_scale
            self.scale = backed
            self.tracker = 0
        else:
            successful = self.tracker + 1
            if successful == self.interval:
                with np.errstate(over="ignore"):
                    grown = np.float32(float(self.scale) * self.growth)
                if np.isfinite(grown):
                    if grown > self.max_scale:
                        grown = self.max_scale
                    self.scale = grown
                self.tracker = 0
            else:
                self.tracker = successful


# --------------------------------------------------------------------------
# (b) DeepSpeed DynamicLossScaler.update_scale
# --------------------------------------------------------------------------
class DeepSpeedScaler:
    def __init__(self, init_scale, scale_factor, scale_window, min_scale,
                 delayed_shift, consecutive_hysteresis):
        self.cur_scale = float(init_scale)
        self.cur_iter = 0
        self.last_overflow_iter = -1
        self.scale_factor = float(scale_factor)
        self.scale_window = int(scale_window)
        self.min_scale = float(min_scale)
        self.delayed_shift = int(delayed_shift)
        self.cur_hysteresis = int(delayed_shift)
        self.consecutive_hysteresis = bool(consecutive_hysteresis)

    def update(self, overflow):
        if overflow:
            if self.delayed_shift == 1 or self.cur_hysteresis == 1:
                self.cur_scale = max(self.cur_scale / self.scale_factor, self.min_scale)
            else:
                self.cur_hysteresis -= 1
            self.last_overflow_iter = self.cur_iter
        else:
            if self.consecutive_hysteresis:
                self.cur_hysteresis = self.delayed_shift
            if (self.cur_iter - self.last_overflow_iter) % self.scale_window == 0:
                if not self.consecutive_hysteresis:
                    self.cur_hysteresis = self.delayed_shift
                self.cur_scale *= self.scale_factor
        self.cur_iter += 1


# --------------------------------------------------------------------------
# overflow patterns (all from seeded numpy generators)
# --------------------------------------------------------------------------
def bernoulli(seed, n, p):
    rng = np.random.default_rng(seed)
    return [int(x) for x in (rng.random(n) < p)]


def bursts(seed, n, burst=(1, 8), gap=(0, 30)):
    """Alternating runs: gap of good steps (uniform in gap), then a burst of
    consecutive overflows (uniform in burst), until n steps."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        out += [0] * int(rng.integers(gap[0], gap[1] + 1))
        out += [1] * int(rng.integers(burst[0], burst[1] + 1))
    return out[:n]


def constant(n, value):
    return [int(value)] * n


def ceiling_model(seed, n, p, log2_ceiling, wobble):
    """State-dependent pattern (the scale model of a real fp16 run): step t
    overflows when a spurious event fires (probability p) or when the scale
    in effect for that step exceeds a slowly moving ceiling
    2**(log2_ceiling + wobble*sin(2*pi*t/900) + N(0, 0.5)).  Returned as a
    function of the scale; the realised pattern is recorded step by step in
    the file, so readers never need this model."""
    rng = np.random.default_rng(seed)
    spurious = rng.random(n) < p
    noise = rng.normal(0.0, 0.5, n)

    def decide(t, scale):
        ceiling = 2.0 ** (log2_ceiling + wobble * math.sin(2 * math.pi * t / 900.0) + noise[t])
        return int(spurious[t] or float(scale) > ceiling)

    return decide


# --------------------------------------------------------------------------
# case emission
# --------------------------------------------------------------------------
def emit_torch(w, name, pattern, init_scale, growth, backoff, interval,
               min_scale=FLOOR, max_scale=math.inf, n=None, note=None):
    sc = TorchScaler(init_scale, growth, backoff, interval, min_scale, max_scale)
    if n is None:
        n = len(pattern)
    rows = []
    for t in range(n):
        fi = pattern(t, sc.scale) if callable(pattern) else pattern[t]
        sc.update(fi)
        rows.append("step %d %s %d -1 %d" % (fi, f32(sc.scale), sc.tracker, fi))
    if note:
        w.comment(note)
    w.begin(name)
    w.kv("algorithm", "pytorch")
    w.kv("init_scale", f32(init_scale))
    w.kv("growth_factor", f64(growth))
    w.kv("backoff_factor", f64(backoff))
    w.kv("growth_interval", interval)
    w.kv("hysteresis", 1)
    w.kv("consecutive_hysteresis", 0)
    w.kv("min_scale", f32(min_scale))
    w.kv("max_scale", f32(max_scale))
    w.kv("steps", n)
    w.lines.extend(rows)
    w.end()
    return sc


def emit_deepspeed(w, name, pattern, init_scale, window, min_scale, delayed_shift,
                   consecutive, n=None, note=None):
    ds = DeepSpeedScaler(init_scale, 2.0, window, min_scale, delayed_shift, consecutive)
    if n is None:
        n = len(pattern)
    rows = []
    for t in range(n):
        fi = pattern(t, ds.cur_scale) if callable(pattern) else pattern[t]
        ds.update(fi)
        s = ds.cur_scale
        # exactness guard: a normal float32 power of two
        m, e = math.frexp(s)
        assert m == 0.5 and -125 <= e <= 128, (name, t, s)
        assert float(np.float32(s)) == s
        rows.append("step %d %s -1 %d %d" % (fi, f32(s), ds.cur_hysteresis, fi))
    if note:
        w.comment(note)
    w.begin(name)
    w.kv("algorithm", "deepspeed")
    w.kv("init_scale", f32(init_scale))
    w.kv("growth_factor", f32(2.0))
    w.kv("backoff_factor", f32(0.5))
    w.kv("growth_interval", window)
    w.kv("hysteresis", delayed_shift)
    w.kv("consecutive_hysteresis", int(bool(consecutive)))
    w.kv("min_scale", f32(min_scale))
    w.kv("max_scale", "inf")
    w.kv("steps", n)
    w.lines.extend(rows)
    w.end()
    return ds


HEADER = """\
Dynamic loss-scale reference trajectories. Generated by
scripts/reference/loss_scale.py -- do not edit by hand.
Regenerate: /usr/bin/python3 scripts/reference/loss_scale.py

algorithm pytorch: torch GradScaler's _amp_update_scale_ kernel, transcribed
  (scale float32, factors double: scale = float32(double(scale) * factor);
  a growth whose float32 result is not finite leaves the scale unchanged but
  still resets the tracker). mixprec's bounds: a backoff result is raised
  to min_scale, a finite growth result lowered to max_scale. Plain cases
  have mixprec's default floor min_scale = 2^-126 (GradScaler has none: its
  scale underflows to 0) and max_scale inf; *ext_* cases set other bounds.
algorithm deepspeed: DeepSpeed DynamicLossScaler.update_scale with
  hysteresis (delayed_shift) and consecutive_hysteresis, scale_factor 2,
  raise_error_at_min_scale off; growth_interval holds scale_window.
  In DeepSpeed every overflow (also one absorbed by hysteresis) restarts the
  growth window, like the PyTorch tracker reset.
Factors are doubles, printed with %.17g, as GradScaler receives them.

step <found_inf> <scale_after_update> <growth_tracker_after> <hysteresis_after> <skipped>
  growth_tracker_after: pytorch tracker, -1 for deepspeed
  hysteresis_after: deepspeed cur_hysteresis, -1 for pytorch
  skipped = found_inf (the optimizer step is skipped on overflow)
The scale in effect for step t is the scale_after of step t-1 (init_scale
for the first step)."""


def main():
    w = Writer("loss_scale_reference.txt")
    w.comment(HEADER)

    # ---- PyTorch ---------------------------------------------------------
    emit_torch(w, "pt_defaults_p0.0005", bernoulli(101, 6000, 0.0005),
               65536.0, 2.0, 0.5, 2000)
    emit_torch(w, "pt_interval5_p0.01", bernoulli(102, 3000, 0.01),
               65536.0, 2.0, 0.5, 5,
               note="p=0.01: the scale climbs to 2^127 and every later growth "
                    "(to inf) is rejected with a tracker reset")
    emit_torch(w, "pt_interval5_p0.2", bernoulli(103, 3000, 0.2),
               65536.0, 2.0, 0.5, 5,
               note="p=0.2: backoffs dominate; the scale decays to the floor 2^-126 "
                    "(GradScaler's would continue through the subnormals to 0)")
    emit_torch(w, "pt_interval5_p0.5", bernoulli(104, 3000, 0.5),
               65536.0, 2.0, 0.5, 5)
    emit_torch(w, "pt_bursts_interval3", bursts(105, 3000),
               65536.0, 2.0, 0.5, 3,
               note="bursts of 1..8 consecutive overflows separated by 0..30 good steps")
    emit_torch(w, "pt_ceiling_interval100", ceiling_model(106, 4000, 0.001, 20.0, 3.0),
               65536.0, 2.0, 0.5, 100, n=4000,
               note="overflow when the scale passes a moving ceiling near 2^20 "
                    "(plus spurious p=0.001); bounded, realistic trajectory")
    emit_torch(w, "pt_nonpow2_g1.7_b0.3_interval3",
               ceiling_model(107, 3000, 0.05, 18.0, 4.0),
               65536.0, 1.7, 0.3, 3, n=3000,
               note="non-power-of-two factors: every product is rounded to float32; "
                    "overflows from a moving ceiling near 2^18 plus spurious p=0.05")
    emit_torch(w, "pt_nonpow2_g1.7_b0.3_interval3_p0.1", bernoulli(108, 3000, 0.1),
               65536.0, 1.7, 0.3, 3)
    emit_torch(w, "pt_growth_overflows_f32", constant(1000, 0),
               2.0 ** 126, 4.0, 0.5, 2,
               note="growth to 2^128 = inf is rejected: the scale stays 2^126, "
                    "the tracker still resets to 0")
    emit_torch(w, "pt_growth_to_f32_max_exponent", constant(1000, 0),
               2.0 ** 120, 2.0, 0.5, 3,
               note="growth 2^120 -> 2^127, then growth to inf rejected")
    emit_torch(w, "pt_backoff_underflow", constant(200, 1),
               2.0 ** -100, 2.0, 0.5, 2000,
               note="all overflows: 2^-100 halves down to the floor 2^-126 and stays "
                    "there (GradScaler's would underflow through the subnormals to 0)")
    emit_torch(w, "pt_ext_min_scale1_interval5_p0.5", bernoulli(109, 3000, 0.5),
               65536.0, 2.0, 0.5, 5, min_scale=1.0,
               note="mixprec extension: backoff clamped at min_scale 1")
    emit_torch(w, "pt_ext_max_scale_2pow20_interval5_p0.01", bernoulli(110, 3000, 0.01),
               65536.0, 2.0, 0.5, 5, max_scale=2.0 ** 20,
               note="mixprec extension: growth clamped at max_scale 2^20")
    emit_torch(w, "pt_ext_min1_max2pow20_g1.7_b0.3_bursts", bursts(111, 3000, (1, 8), (0, 60)),
               1000.0, 1.7, 0.3, 4, min_scale=1.0, max_scale=2.0 ** 20,
               note="mixprec extension: both bounds, non-power-of-two factors; "
                    "clamped values are exactly min_scale / max_scale")

    # ---- DeepSpeed -------------------------------------------------------
    emit_deepspeed(w, "ds_shift2_cons0_window5_p0.3", bernoulli(201, 3000, 0.3),
                   2.0 ** 16, 5, 1.0, 2, False)
    emit_deepspeed(w, "ds_shift2_cons1_window5_p0.3", bernoulli(202, 3000, 0.3),
                   2.0 ** 16, 5, 1.0, 2, True)
    emit_deepspeed(w, "ds_shift4_cons0_window20_p0.1",
                   ceiling_model(203, 3000, 0.1, 24.0, 4.0),
                   2.0 ** 16, 20, 1.0, 4, False, n=3000,
                   note="spurious overflows p=0.1 plus a moving ceiling near 2^24 "
                        "(keeps the scale inside float32)")
    emit_deepspeed(w, "ds_shift4_cons1_window20_p0.1",
                   ceiling_model(204, 3000, 0.1, 24.0, 4.0),
                   2.0 ** 16, 20, 1.0, 4, True, n=3000,
                   note="spurious overflows p=0.1 plus a moving ceiling near 2^24")
    emit_deepspeed(w, "ds_shift2_cons0_window5_p0.1",
                   ceiling_model(205, 3000, 0.1, 22.0, 4.0),
                   2.0 ** 16, 5, 1.0, 2, False, n=3000,
                   note="spurious overflows p=0.1 plus a moving ceiling near 2^22")
    emit_deepspeed(w, "ds_shift4_cons0_window20_p0.3", bernoulli(206, 3000, 0.3),
                   2.0 ** 16, 20, 1.0, 4, False)
    emit_deepspeed(w, "ds_shift2_cons1_window20_bursts", bursts(207, 3000),
                   2.0 ** 16, 20, 1.0, 2, True)
    emit_deepspeed(w, "ds_shift4_cons1_window5_bursts", bursts(208, 3000),
                   2.0 ** 16, 5, 1.0, 4, True)

    w.write()


if __name__ == "__main__":
    main()
