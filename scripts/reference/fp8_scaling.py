"""Reference trajectories for FP8 scaling-factor recipes.

Writes tests/data/fp8_scaling_reference.txt.  Run from anywhere:

    /usr/bin/python3 scripts/reference/fp8_scaling.py

recipe delayed -- Transformer Engine's delayed-scaling recipe (TE 1.x,
transformer_engine/pytorch/fp8.py: _default_get_amax_and_update_history /
_update_amax_history / _default_sf_compute; the same update is done by the
common kernel transformer_engine/common/recipe/delayed_scaling.cu).  Written
here from the published algorithm, in torch float32 tensors:
    state: amax_history[L] (zeros), scale (1.0)
    each step, with the amax observed this step:
      history[0] <- observed
      amax_used  <- max(history)        (algo max; torch.max, NaN propagates)
                    history[0]          (algo most_recent)
      history    <- roll(history, -1); history[0] <- 0
      sf         <- (fp8_max / amax_used) / 2^margin     (float32)
      scale      <- sf, except: previous scale kept when amax_used <= 0, when
                    amax_used is not finite, and when sf is not finite
      scale_inv  <- 1 / scale                              (float32)
recipe current -- per-tensor just-in-time scaling: amax_used = observed,
    scale = (fp8_max / amax) / 2^margin with the same keep rules.

float32 divisions are correctly rounded (IEEE); / 2^margin is exact here.
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
from _refio import Writer, f32  # noqa: E402

FP8_MAX = {"e4m3": 448.0, "e5m2": 57344.0}


def amax_sequence(seed, n, lo, hi, p_zero=0.02, p_inf=0.0, p_nan=0.0, p_spike=0.01,
                  tiny=()):
    """Observed amax values (float32, >= 0 or inf/nan).

    log10(amax) follows a centre that sweeps between lo and hi (a few full
    periods over the run) plus N(0, 0.4) noise: lognormal values spanning
    many decades.  Spikes multiply by 10^U(1, 5); exact zeros, infs and nans
    are sprinkled with the given probabilities; `tiny` is a list of (step,
    value) overrides."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    period = max(n / 2.5, 50.0)
    centre = lo + (hi - lo) * 0.5 * (1.0 - np.cos(2 * math.pi * t / period))
    logv = centre + rng.normal(0.0, 0.4, n)
    spikes = rng.random(n) < p_spike
    logv = logv + spikes * rng.uniform(1.0, 5.0, n)
    vals = (10.0 ** logv).astype(np.float32)
    u = rng.random(n)
    vals[u < p_zero] = 0.0
    vals[(u >= p_zero) & (u < p_zero + p_inf)] = np.inf
    vals[(u >= p_zero + p_inf) & (u < p_zero + p_inf + p_nan)] = np.nan
    for step, v in tiny:
        vals[step] = np.float32(v)
    return vals


def keep_rules(sf, amax, scale):
    sf = torch.where(amax > 0.0, sf, scale)
    sf = torch.where(torch.isfinite(amax), sf, scale)
    sf = torch.where(torch.isfinite(sf), sf, scale)
    return sf


def run_delayed(observed, fp8_max, margin, hist_len, algo):
    hist = torch.zeros(hist_len, dtype=torch.float32)
    scale = torch.ones((), dtype=torch.float32)
    fmax = torch.tensor(fp8_max, dtype=torch.float32)
    rows = []
    for a in observed:
        hist[0] = float(a)
        if algo == "max":
            amax = torch.max(hist)
        else:
            amax = hist[0].clone()
        if hist_len > 1:
            hist = torch.roll(hist, -1, 0)
        hist[0] = 0.0
        with np.errstate(all="ignore"):
            sf = (fmax / amax) / float(2 ** margin)
        scale = keep_rules(sf, amax, scale)
        scale_inv = torch.reciprocal(scale)
        rows.append((a, amax.item(), scale.item(), scale_inv.item()))
    return rows


def run_current(observed, fp8_max, margin):
    scale = torch.ones((), dtype=torch.float32)
    fmax = torch.tensor(fp8_max, dtype=torch.float32)
    rows = []
    for a in observed:
        amax = torch.tensor(float(a), dtype=torch.float32)
        sf = (fmax / amax) / float(2 ** margin)
        scale = keep_rules(sf, amax, scale)
        rows.append((a, amax.item(), scale.item(), torch.reciprocal(scale).item()))
    return rows


def check_rows(rows, fp8_max, margin):
    """Cross-check the torch arithmetic against numpy float32 IEEE division."""
    prev = np.float32(1.0)
    for a, amax, s, si in rows:
        am = np.float32(amax)
        with np.errstate(all="ignore"):
            sf = np.float32(np.float32(fp8_max) / am) / np.float32(2.0 ** margin)
        ok = np.isfinite(am) and am > 0 and np.isfinite(sf)
        exp = sf if ok else prev
        assert np.float32(s) == exp, (a, amax, s, exp)
        assert np.float32(si) == np.float32(1.0) / exp
        prev = exp


HEADER = """\
FP8 scaling-factor reference trajectories. Generated by
scripts/reference/fp8_scaling.py -- do not edit by hand.
Regenerate: /usr/bin/python3 scripts/reference/fp8_scaling.py

recipe delayed: Transformer Engine delayed scaling (TE 1.x pytorch fp8.py
  algorithm), float32: history[0] <- observed; amax_used = max(history)
  (algo max) or history[0] (algo most_recent); history rolled by -1 and
  history[0] <- 0; scale = (fp8_max / amax_used) / 2^margin; the previous
  scale is kept when amax_used is 0, inf or nan, or the new scale is not
  finite; scale_inv = 1/scale. Initial scale 1, initial history zeros.
recipe current: amax_used = observed, same scale rule and keep rules.
NaN policy for algo max: torch.max semantics, a NaN anywhere in the
  history makes amax_used NaN (scale kept) until it leaves the window. Only
  the case named *_nan_in_history has NaNs with algo max (TE's CUDA kernel
  uses fmaxf and would ignore them instead).
Non-finite sf policy (case *_tiny_amax and current_*_tiny_amax): amax so
  small that fp8_max/amax overflows float32; per the mixprec spec the
  previous scale is kept (TE >= 1.x clamps such a scale to FLT_MAX instead).
Divisions are IEEE float32 (correctly rounded).

step <amax_observed> <amax_used> <scale_after> <scale_inv_after>"""


def main():
    torch.set_num_threads(1)
    assert torch.__config__.show().count("CPU capability usage: NO AVX") == 1
    w = Writer("fp8_scaling_reference.txt")
    w.comment(HEADER)

    tiny = [(101, 1e-37), (102, 3e-40), (150, 1e-45), (151, 2e-36), (200, 1.4e-36),
            (260, 1.2e-36), (261, 1e-38)]
    # name, recipe, fmt, margin, history_len, algo, steps, sequence kwargs
    specs = [
        ("delayed_e4m3_len1_max_m0", "delayed", "e4m3", 0, 1, "max", 600,
         dict(seed=11, lo=-6, hi=6, p_inf=0.01)),
        ("delayed_e4m3_len16_max_m0", "delayed", "e4m3", 0, 16, "max", 1500,
         dict(seed=12, lo=-20, hi=20, p_inf=0.005)),
        ("delayed_e4m3_len1024_max_m0", "delayed", "e4m3", 0, 1024, "max", 2000,
         dict(seed=13, lo=-10, hi=10, p_inf=0.0005, p_spike=0.002)),
        ("delayed_e5m2_len16_max_m2", "delayed", "e5m2", 2, 16, "max", 1500,
         dict(seed=14, lo=-15, hi=25, p_inf=0.005)),
        ("delayed_e5m2_len1024_max_m2", "delayed", "e5m2", 2, 1024, "max", 2000,
         dict(seed=15, lo=-25, hi=5, p_inf=0.0005, p_spike=0.002)),
        ("delayed_e4m3_len16_most_recent_m0", "delayed", "e4m3", 0, 16, "most_recent", 1500,
         dict(seed=16, lo=-20, hi=20, p_inf=0.01, p_nan=0.01)),
        ("delayed_e4m3_len1024_most_recent_m2", "delayed", "e4m3", 2, 1024, "most_recent", 2000,
         dict(seed=17, lo=-12, hi=12, p_inf=0.005, p_nan=0.005)),
        ("delayed_e5m2_len1_most_recent_m0", "delayed", "e5m2", 0, 1, "most_recent", 600,
         dict(seed=18, lo=-8, hi=8, p_inf=0.01, p_nan=0.01)),
        ("delayed_e5m2_len1024_most_recent_m0", "delayed", "e5m2", 0, 1024, "most_recent", 1200,
         dict(seed=19, lo=-30, hi=30, p_inf=0.005, p_nan=0.005)),
        ("delayed_e4m3_len16_max_m2_nan_in_history", "delayed", "e4m3", 2, 16, "max", 800,
         dict(seed=20, lo=-5, hi=5, p_inf=0.005, p_nan=0.01)),
        ("delayed_e4m3_len1_most_recent_m0_tiny_amax", "delayed", "e4m3", 0, 1, "most_recent", 300,
         dict(seed=21, lo=-30, hi=-20, tiny=tiny)),
        ("current_e4m3_m0", "current", "e4m3", 0, 1, "most_recent", 1000,
         dict(seed=22, lo=-15, hi=15, p_inf=0.01, p_nan=0.01)),
        ("current_e5m2_m2", "current", "e5m2", 2, 1, "most_recent", 1000,
         dict(seed=23, lo=-20, hi=10, p_inf=0.01, p_nan=0.01)),
        ("current_e5m2_m0_tiny_amax", "current", "e5m2", 0, 1, "most_recent", 300,
         dict(seed=24, lo=-30, hi=-20, p_zero=0.05, tiny=tiny + [(20, 1.7e-34), (21, 1.8e-34)])),
    ]

    for name, recipe, fmt, margin, hl, algo, n, kw in specs:
        kw = dict(kw)
        obs = amax_sequence(kw.pop("seed"), n, kw.pop("lo"), kw.pop("hi"), **kw)
        if algo == "max" and hl > 1 and "nan_in_history" not in name:
            assert not np.isnan(obs).any()
        fp8_max = FP8_MAX[fmt]
        if recipe == "delayed":
            rows = run_delayed(obs, fp8_max, margin, hl, algo)
        else:
            rows = run_current(obs, fp8_max, margin)
        if algo == "most_recent":
            check_rows(rows, fp8_max, margin)
        w.begin(name)
        w.kv("recipe", recipe)
        w.kv("fp8_max", int(fp8_max))
        w.kv("margin", margin)
        w.kv("history_len", hl)
        w.kv("algo", algo)
        w.kv("steps", n)
        for a, amax, s, si in rows:
            w.kv("step", f32(a), f32(amax), f32(s), f32(si))
        w.end()

    w.write()


if __name__ == "__main__":
    main()
