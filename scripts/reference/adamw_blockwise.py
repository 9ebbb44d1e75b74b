"""Reference trajectories of AdamW with block-quantized moments.

Writes tests/data/adamw_blockwise_reference.txt.  Run from anywhere:

    /usr/bin/python3 scripts/reference/adamw_blockwise.py

An independent transcription, in numpy float32, of AdamW whose two moments
are stored between steps as 8-bit codes with one float32 scale per block of
B consecutive elements.  Every intermediate is a float32 operation
(correctly rounded; numpy never fuses a multiply-add); the scalars that are
computed in float64 say so.  No torch is needed.

Two block policies:

  dynamic8  the 8-bit "dynamic" maps of Dettmers et al. ("8-bit Optimizers
            via Block-wise Quantization", arXiv:2110.02861; the construction
            of bitsandbytes' create_dynamic_map with max_exponent_bits=7,
            total_bits=8), a signed map for the first moment and an unsigned
            map for the second.  The maps are built here in float64 and each
            entry is rounded once to float32 (bitsandbytes and torchao build
            theirs with float32 torch.linspace and a float32 multiply, so a
            few entries differ by an ulp; see tests/data/README.md).
            A block's scale is its max |x|; an element's code is the index of
            the map entry nearest to x / scale, a tie going to the lower
            index (bitsandbytes/torchao round ties up).
  e4m3      scale = max |x| / 448; code = the OCP fp8 E4M3FN bit pattern of
            x / scale rounded to nearest, ties to even, saturating at 448.

Zero point excluded for the second moment (after Li et al., "Memory
Efficient Optimizers with 4-bit States", 2023): the codes of the second
moment v (the non-negative field: unsigned map, "unsigned" e4m3) never
stand for zero.  A v element whose code would be 0 (dynamic8: map entry
0.0, code 0) or +-0 (e4m3: code & 0x7f == 0) gets code 1 instead, the
smallest non-zero entry (dynamic8: 3.25e-7; e4m3: 0x01, 2^-9); only a block
whose scale is 0 (all zeros, or an e4m3 amax / 448 that underflows) keeps
code 0 and scale 0.  The first moment (signed map, signed e4m3) and the
decoding are unchanged.  Why: with the maps as bitsandbytes has them, a v
far below its block's largest decodes to 0, and on a later step whose
gradient is 0 while m is not, the update divides that m by eps alone.  On
this project's digits example 8-bit moments reached 90.8% test accuracy
after 4 epochs against fp32's 94.2% and e4m3 moments diverged; with the
zero point excluded both train like fp32 (8-bit 98.33% after 20 epochs,
fp32 98.06%).  bitsandbytes and torchao keep code 0 for v.

Besides the six AdamW cases, the file holds both dynamic maps and a
`codec` case of hand-picked blocks; the script asserts that each of those
blocks really exercises what its name says (a tie, a saturation, a second
moment value that would round to zero, ...).

The first four AdamW cases (CASES) take the synthetic gradients as they
are; none of their v codes ever reaches the zero point.  The last two
(SPARSE_CASES, header key `grad_rule small_every_8th_zero_every_3rd_step`)
make every 8th element's gradient 1e-4 times smaller and 0 on every 3rd
step (see sparse_gradients), so that those elements' v falls far below
their block's largest and is then read back on a step without gradient:
the script asserts, and prints, that the zero-point rule changes v codes
in both, over the 200 steps and at the check steps.

Optional cross-check (does not change the output):
    build/torch-venv/bin/python scripts/reference/adamw_blockwise.py --crosscheck
compares the e4m3 rounding with ml_dtypes.float8_e4m3fn on every float32
quotient the cases produce and on a sweep of the e4m3 range.
"""

import math
import os
import sys
from fractions import Fraction

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _refio import Writer, as_f32, f32  # noqa: E402
from _synthetic import generator_text, initial_weights, gradients as synthetic_gradients  # noqa: E402

F32 = np.float32
F64 = np.float64

SHAPES = [(2, 300), (7,), (16, 16), (5, 13)]
STEPS = 200
CHECKS = [1, 2, 3, 5, 10, 20, 50, 100, 150, 200]
GRAD_SCALE = 1.0
CODEC_BLOCK = 16

GENERATOR = generator_text(SHAPES)


# --------------------------------------------------------------------------
# The dynamic maps.
# --------------------------------------------------------------------------
def dynamic_map(signed):
    """256 float32 entries, ascending.  Level i = 0..6 has n = 2^i + 1
    (signed) or 2^(i+1) + 1 (unsigned) boundaries b_k = 0.1 + k*(0.9/(n-1))
    over [0.1, 1]; the means of adjacent boundaries, times 10.0**(i-6), are
    entries (and their negatives for the signed map); 0.0 and 1.0 are added.
    Everything in float64, each entry rounded once to float32."""
    values = [0.0, 1.0]
    for i in range(7):
        n = (2 ** i if signed else 2 ** (i + 1)) + 1
        step = 0.9 / (n - 1)
        bounds = [0.1 + k * step for k in range(n)]
        mag = 10.0 ** (i - 6)
        for k in range(n - 1):
            mean = (bounds[k] + bounds[k + 1]) / 2
            values.append(mag * mean)
            if signed:
                values.append(-(mag * mean))
    assert len(values) == 256
    values.sort()
    out = np.array(values, dtype=F64).astype(F32)
    assert np.all(out[1:] > out[:-1]), "dynamic map entries must be distinct after rounding"
    return out


SIGNED_MAP = dynamic_map(True)
UNSIGNED_MAP = dynamic_map(False)
MAPS = {"signed": SIGNED_MAP, "unsigned": UNSIGNED_MAP}
ZERO_CODE = {name: int(np.nonzero(q == 0.0)[0][0]) for name, q in MAPS.items()}
assert ZERO_CODE == {"signed": 127, "unsigned": 0}, ZERO_CODE


def _midpoints(qmap):
    """Midpoints of adjacent entries in float64, asserted exact."""
    lo, hi = qmap[:-1].astype(F64), qmap[1:].astype(F64)
    mids = (lo + hi) / 2
    for a, b, m in zip(lo, hi, mids):
        assert Fraction(float(m)) == (Fraction(float(a)) + Fraction(float(b))) / 2
    return mids


MIDPOINTS = {name: _midpoints(q) for name, q in MAPS.items()}


def nearest_codes(nrm, map_name):
    """Index of the entry nearest to each float32 nrm; ties to the lower index.
    Computed as argmin |n - entry| in float64 (argmin returns the first, i.e.
    lower, index of equal distances) and checked against the exact count of
    adjacent-entry midpoints strictly below n."""
    qmap = MAPS[map_name].astype(F64)
    n64 = nrm.astype(F64)
    codes = np.argmin(np.abs(n64[:, None] - qmap[None, :]), axis=1)
    alt = np.searchsorted(MIDPOINTS[map_name], n64, side="left")
    assert np.array_equal(codes, alt), "nearest-entry search disagrees with the midpoint rule"
    return codes.astype(np.int64)


# --------------------------------------------------------------------------
# fp8 E4M3FN (OCP): bias 7, 3 mantissa bits, max 448, no infinities,
# 0x7F/0xFF NaN, subnormals m * 2^-9.
# --------------------------------------------------------------------------
E4M3_MAX = 448.0


def e4m3_decode_table():
    out = np.empty(256, dtype=F64)
    for c in range(256):
        s, e, m = c >> 7, (c >> 3) & 15, c & 7
        if e == 15 and m == 7:
            v = math.nan
        elif e == 0:
            v = m * 2.0 ** -9
        else:
            v = (1 + m / 8) * 2.0 ** (e - 7)
        out[c] = -v if s else v
    return out


E4M3_VALUES = e4m3_decode_table()  # float64, exact; all are float32 values too


def e4m3_encode(y):
    """Bit patterns of the float32 values y rounded to nearest E4M3FN, ties to
    even, |y| beyond 448 saturating to 448.  The sign is kept (-0 -> 0x80)."""
    y64 = np.asarray(y, dtype=F32).astype(F64)
    assert np.all(np.isfinite(y64))
    neg = np.signbit(y64)
    a = np.abs(y64)
    _, e = np.frexp(a)                         # a = f * 2^e, f in [0.5, 1)
    expo = np.maximum(e - 1, -6)               # binade; subnormal range below 2^-6
    quantum = np.ldexp(1.0, expo - 3)
    r = np.rint(a / quantum) * quantum         # exact scaling; rint ties to even
    r = np.minimum(r, E4M3_MAX)
    _, e2 = np.frexp(r)
    normal = r >= 2.0 ** -6
    ef = np.where(normal, e2 - 1 + 7, 0)
    mant = np.where(normal, r / np.ldexp(1.0, e2 - 1) * 8 - 8, r / 2.0 ** -9)
    assert np.all(mant == np.floor(mant)) and np.all((mant >= 0) & (mant < 8))
    code = (neg.astype(np.int64) << 7) | (ef.astype(np.int64) << 3) | mant.astype(np.int64)
    assert np.all(np.abs(E4M3_VALUES[code]) == r)
    return code


def _self_check_e4m3():
    finite = [c for c in range(256) if not math.isnan(E4M3_VALUES[c])]
    vals = E4M3_VALUES[finite].astype(F32)
    assert np.array_equal(e4m3_encode(vals), np.array(finite)), "E4M3 round trip"
    pos = np.array(sorted(set(E4M3_VALUES[c] for c in finite if E4M3_VALUES[c] >= 0)))
    mids = ((pos[:-1] + pos[1:]) / 2).astype(F32)
    assert np.array_equal(mids.astype(F64), (pos[:-1] + pos[1:]) / 2)
    got = E4M3_VALUES[e4m3_encode(mids)]
    for lo, hi, g in zip(pos[:-1], pos[1:], got):
        even = lo if int(e4m3_encode(np.array([lo]))[0]) % 2 == 0 else hi
        assert g == even, (lo, hi, g)
    assert list(e4m3_encode(np.array([448.0, 460.0, 464.0, 500.0, 1e30, -1e30], dtype=F32))) == \
        [0x7E, 0x7E, 0x7E, 0x7E, 0x7E, 0xFE]


_self_check_e4m3()


# --------------------------------------------------------------------------
# Block quantization of one parameter's flattened float32 vector.
# --------------------------------------------------------------------------
def block_ranges(n, bsize):
    return [(lo, min(lo + bsize, n)) for lo in range(0, n, bsize)]


def exclude_zero_point(codes, policy):
    """The second moment's codes never stand for zero (a block of scale 0
    aside, which the caller leaves alone): a code of 0.0 (dynamic8 unsigned:
    code 0) or of +-0 (e4m3: code & 0x7f == 0) becomes code 1, the smallest
    non-zero entry (dynamic8: UNSIGNED_MAP[1]; e4m3: 0x01 = 2^-9)."""
    if policy == "dynamic8":
        zero = codes == ZERO_CODE["unsigned"]
    else:
        zero = (codes & 0x7F) == 0
    return np.where(zero, 1, codes)


def quantize(x, bsize, policy, map_name, quotients=None, zero_point=None):
    """(codes int64[n], scales float32[nblocks]).  map_name says which moment:
    signed (first moment: signed dynamic map, signed e4m3) or unsigned
    (second moment, non-negative: unsigned dynamic map, and under both
    policies the zero point excluded, see exclude_zero_point).  zero_point,
    if given (bool[n]), is set where that rule changed the code (a diagnostic
    for adamw_8bit_anchors.py; it changes nothing)."""
    if zero_point is not None:
        zero_point[:] = False
    assert x.dtype == F32 and np.all(np.isfinite(x))
    assert map_name in MAPS
    unsigned = map_name == "unsigned"
    codes = np.empty(x.size, dtype=np.int64)
    scales = []
    for lo, hi in block_ranges(x.size, bsize):
        blk = x[lo:hi]
        amax = np.max(np.abs(blk))
        if policy == "dynamic8":
            scale = amax
            if scale == 0:
                codes[lo:hi] = ZERO_CODE[map_name]
            else:
                nrm = blk / scale
                assert nrm.dtype == F32
                c = nearest_codes(nrm, map_name)
                codes[lo:hi] = exclude_zero_point(c, policy) if unsigned else c
                if zero_point is not None:
                    zero_point[lo:hi] = codes[lo:hi] != c
        else:
            assert policy == "e4m3"
            scale = amax / F32(E4M3_MAX)
            if scale == 0:
                codes[lo:hi] = 0
            else:
                q = blk / scale
                assert q.dtype == F32
                if quotients is not None:
                    quotients.append(q.copy())
                c = e4m3_encode(q)
                codes[lo:hi] = exclude_zero_point(c, policy) if unsigned else c
                if zero_point is not None:
                    zero_point[lo:hi] = codes[lo:hi] != c
        assert isinstance(scale, F32)
        if unsigned and scale != 0:
            zero_bits = 0xFF if policy == "dynamic8" else 0x7F
            assert np.all((codes[lo:hi] & zero_bits) != 0), "a second-moment code stands for zero"
        scales.append(F32(0.0) if scale == 0 else scale)
    return codes, np.array(scales, dtype=F32)


def dequantize(codes, scales, bsize, policy, map_name):
    out = np.empty(codes.size, dtype=F32)
    for j, (lo, hi) in enumerate(block_ranges(codes.size, bsize)):
        if policy == "dynamic8":
            vals = MAPS[map_name][codes[lo:hi]]
        else:
            vals = E4M3_VALUES[codes[lo:hi]].astype(F32)
        out[lo:hi] = vals * scales[j]
    return out


# --------------------------------------------------------------------------
# AdamW with block-quantized moments.
# --------------------------------------------------------------------------
SMALL = F32(1e-4)


def sparse_gradients(t):
    """The gradients of step t under small_every_8th_zero_every_3rd_step:
    the synthetic gradients (grad_scale 1), then for every parameter's
    flattened elements i with i % 8 == 0: g = float32(g * float32(1e-4)), and
    on steps t with t % 3 == 0 those elements' g = +0 instead.  Elements
    with i % 8 != 0 are unchanged."""
    gs = synthetic_gradients(t, GRAD_SCALE, SHAPES)
    for g in gs:
        every8 = np.arange(g.size) % 8 == 0
        g[every8] = g[every8] * SMALL
        if t % 3 == 0:
            g[every8] = F32(0.0)
        assert g.dtype == F32
    return gs


def step_gradients(t, grad_rule):
    if grad_rule is None:
        return synthetic_gradients(t, GRAD_SCALE, SHAPES)
    assert grad_rule == GRAD_RULE, grad_rule
    return sparse_gradients(t)


def run_adamw(hp, policy, bsize, quotients=None, zero_points=None, grad_rule=None, zero_point_counts=None):
    """{t: [(w, m codes, m scales, v codes, v scales) per parameter]} for t in
    CHECKS.  grad_rule: None (the synthetic gradients) or GRAD_RULE
    (sparse_gradients).  quotients (a list) collects the e4m3 quotients;
    zero_points (a dict), if given, gets {t: [bool mask per parameter]} of
    the v codes that the zero-point rule changed at check step t;
    zero_point_counts (a list), if given, gets for every step 1..STEPS the
    number of v codes (all parameters) that the rule changed.  None of these
    changes the run."""
    lr, b1, b2 = F32(hp["lr"]), F32(hp["beta1"]), F32(hp["beta2"])
    eps, wd = F32(hp["eps"]), F32(hp["weight_decay"])
    one = F32(1.0)
    omb1, omb2 = one - b1, one - b2
    neg_lr = -lr
    decay = F32(1.0 - float(lr) * float(wd))
    ws = initial_weights(SHAPES)
    zero_m = ZERO_CODE["signed"] if policy == "dynamic8" else 0
    zero_v = ZERO_CODE["unsigned"] if policy == "dynamic8" else 0
    state = []
    for w in ws:
        nb = len(block_ranges(w.size, bsize))
        state.append([np.full(w.size, zero_m, dtype=np.int64), np.zeros(nb, dtype=F32),
                      np.full(w.size, zero_v, dtype=np.int64), np.zeros(nb, dtype=F32)])
    checks = {}
    for t in range(1, STEPS + 1):
        bc1 = F32(1.0 - float(b1) ** t)
        bc2s = F32(math.sqrt(1.0 - float(b2) ** t))
        changed = 0
        for k, g in enumerate(step_gradients(t, grad_rule)):
            mc, ms, vc, vs = state[k]
            m_old = dequantize(mc, ms, bsize, policy, "signed")
            v_old = dequantize(vc, vs, bsize, policy, "unsigned")
            if t == 1:
                assert not np.any(m_old) and not np.any(v_old)
            m = m_old * b1 + g * omb1
            v = v_old * b2 + (g * g) * omb2
            denom = np.sqrt(v) / bc2s + eps
            a = (m / bc1) / denom
            u = neg_lr * a
            w = ws[k] * decay + u
            assert w.dtype == m.dtype == v.dtype == a.dtype == F32
            assert np.all(np.isfinite(w))
            ws[k] = w
            zp = np.zeros(v.size, dtype=bool)
            state[k] = [*quantize(m, bsize, policy, "signed", quotients),
                        *quantize(v, bsize, policy, "unsigned", quotients, zp)]
            if zero_points is not None and t in CHECKS:
                zero_points.setdefault(t, []).append(zp)
            changed += int(np.count_nonzero(zp))
        if zero_point_counts is not None:
            zero_point_counts.append(changed)
        if t in CHECKS:
            checks[t] = [(ws[k].copy(), *[s.copy() for s in state[k]]) for k in range(len(SHAPES))]
    return checks


HP_ORDER = ["lr", "beta1", "beta2", "eps", "weight_decay"]
CASES = [
    # name, policy, block size, hyperparameters
    ("dynamic8_b256_lr1e-3_betas0.9_0.999_wd1e-2", "dynamic8", 256,
     dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2)),
    ("dynamic8_b64_lr5e-3_betas0.9_0.95_wd0.1", "dynamic8", 64,
     dict(lr=5e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)),
    ("e4m3_b256_lr1e-3_betas0.9_0.999_wd1e-2", "e4m3", 256,
     dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2)),
    ("e4m3_b32_lr5e-3_betas0.9_0.95_wd0.1", "e4m3", 32,
     dict(lr=5e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)),
]

# Cases whose gradients follow GRAD_RULE (sparse_gradients), written after
# CASES with a `grad_rule` key.  Kept apart from CASES, which
# adamw_8bit_anchors.py imports and runs with the plain synthetic gradients.
GRAD_RULE = "small_every_8th_zero_every_3rd_step"
SPARSE_CASES = [
    ("dynamic8_b64_sparse_lr5e-3_betas0.9_0.95_wd0.1", "dynamic8", 64,
     dict(lr=5e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)),
    ("e4m3_b64_sparse_lr5e-3_betas0.9_0.95_wd0.1", "e4m3", 64,
     dict(lr=5e-3, beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1)),
]


def all_cases():
    """(name, policy, block size, hyperparameters, grad_rule) of the AdamW
    cases in file order: CASES (grad_rule None), then SPARSE_CASES."""
    return [c + (None,) for c in CASES] + [c + (GRAD_RULE,) for c in SPARSE_CASES]


# --------------------------------------------------------------------------
# The codec case: hand-picked blocks, each with an assertion of what it
# exercises.
# --------------------------------------------------------------------------
def _tie_values(map_name, scale, count, negative):
    """`count` inputs x = scale * midpoint with the midpoint of two adjacent
    entries exactly a float32 value and x / scale == midpoint exactly, spread
    over the map (positive or negative side)."""
    qmap, mids = MAPS[map_name], MIDPOINTS[map_name]
    idx = [j for j in range(255)
           if float(F32(mids[j])) == mids[j] and (mids[j] < 0) == negative
           and qmap[j] != 0 and qmap[j + 1] != 0
           and float(F32(F32(mids[j]) * scale) / scale) == mids[j]
           and float(F32(mids[j]) * scale) == mids[j] * float(scale)]
    assert len(idx) >= count, (map_name, negative, len(idx))
    pick = [idx[round(s * (len(idx) - 1) / (count - 1))] for s in range(count)]
    return [F32(mids[j]) * scale for j in pick], pick


def codec_blocks():
    """(name, map, values) of the hand-picked blocks."""
    blocks = []
    s_small = SIGNED_MAP[128]       # smallest positive signed entry
    u_small = UNSIGNED_MAP[1]       # smallest positive unsigned entry

    blocks.append(("all_zero", "signed", [0.0] * 16))
    blocks.append(("all_zero_unsigned", "unsigned", [0.0] * 16))
    blocks.append(("signed_zero_and_zeros", "signed",
                   [0.0, -0.0, 0.5, -0.25, 0.0, -0.0, 1.5, -1.5, 0.0, 0.125, -0.0, 3.0, 0.0, -3.0, 0.0, 0.75]))
    blocks.append(("negative_max", "signed",
                   [-3.0, 2.5, -0.001, 1.0, 0.0, -2.99999976, 2.99999976, 0.3, -0.3, 1e-6, -1e-6, 0.01,
                    -0.01, 2.0, -2.0, 0.5]))
    blocks.append(("all_negative_equal", "signed", [-0.7] * 16))
    # ties, signed map, scale 1 (1.0 in the block): 7 positive, 6 negative
    # midpoints, and the ties between 0 and the smallest entries
    pos, _ = _tie_values("signed", F32(1.0), 7, False)
    neg, _ = _tie_values("signed", F32(1.0), 6, True)
    blocks.append(("ties_signed_scale1", "signed",
                   [1.0] + pos[:4] + [float(s_small) / 2] + neg[:3] + [-float(s_small) / 2] + pos[4:] + neg[3:]))
    # ties, signed map, scale -4 (a power of two, negative maximum)
    pos, _ = _tie_values("signed", F32(4.0), 7, False)
    neg, _ = _tie_values("signed", F32(4.0), 7, True)
    blocks.append(("ties_signed_scale4_negative_max", "signed", [-4.0] + pos + neg + [-2.0 * float(s_small)]))
    # ties, unsigned map, scale 2
    pos, _ = _tie_values("unsigned", F32(2.0), 14, False)
    blocks.append(("ties_unsigned_scale2", "unsigned", [2.0] + pos + [float(u_small)]))
    # values around the smallest entries, scale 1
    blocks.append(("tiny_against_max_signed", "signed",
                   [1.0, 1e-7, -1e-7, 2.7e-7, -2.7e-7, 2.8e-7, -2.8e-7, float(s_small), -float(s_small),
                    1e-12, -1e-12, 1e-30, -1e-30, 1e-38, 1e-45, -1e-45]))
    blocks.append(("tiny_against_max_unsigned", "unsigned",
                   [1.0, 1e-7, 1.5e-7, 1.7e-7, 1.63e-7, 1.62e-7, float(u_small), 3e-7, 1e-12, 1e-30,
                    1e-38, 1e-45, 0.0, 0.5, 0.999, 0.9975]))
    # e4m3 ties (448 in the block: scale exactly 1), normal and subnormal range
    blocks.append(("ties_e4m3_scale1", "signed",
                   [448.0, 17.0, 19.0, -17.0, -19.0, 432.0, -432.0, 0.53125, 0.59375, 2.0 ** -10,
                    -(2.0 ** -10), 3 * 2.0 ** -10, 7.5 * 2.0 ** -9, 4.5 * 2.0 ** -9, 240.0, 1.0625]))
    blocks.append(("subnormal_quotients_e4m3", "unsigned",
                   [448.0, 2.0 ** -9, 2.0 ** -10 * 1.0000001, 2.0 ** -11, 3 * 2.0 ** -9, 2.0 ** -6 - 2.0 ** -12,
                    2.0 ** -6, 5 * 2.0 ** -9, 6.25 * 2.0 ** -9, 2.0 ** -7, 1e-5, 2.0 ** -10, 433.0, 447.0, 0.001,
                    1.0]))
    # float32-subnormal inputs: e4m3 scale amax/448 underflows to 0
    blocks.append(("float32_subnormal_inputs", "signed",
                   [k * 2.0 ** -149 for k in (100, -99, 50, -1, 1, 0, 3, 7, -64, 33, 2, -2, 99, 10, -10, 25)]))
    # e4m3: a float32-subnormal scale makes x / scale exceed 448 (saturation)
    blocks.append(("e4m3_saturation_subnormal_scale", "signed",
                   [2.0 ** -140, -(2.0 ** -140), 2.0 ** -141, 2.0 ** -147, 2.0 ** -149, 0.0, 3 * 2.0 ** -145,
                    2.0 ** -142, -(2.0 ** -143), 2.0 ** -144, 2.0 ** -146, 5 * 2.0 ** -149, 2.0 ** -148,
                    -(2.0 ** -141), 2.0 ** -140, 2.0 ** -140 * 0.75]))
    # e4m3: a normal amax whose quotient amax / float32(amax / 448) is above 448
    amax_hi = _find_amax(lambda q: q > E4M3_MAX)
    amax_lo = _find_amax(lambda q: q < E4M3_MAX)
    blocks.append(("e4m3_quotient_above_448", "signed",
                   [float(-amax_hi), float(amax_hi), float(amax_hi) / 2, float(amax_hi) / 3, 0.0,
                    float(amax_hi) * 0.96, float(amax_hi) * 0.9, float(amax_hi) / 448, float(amax_hi) / 1e6,
                    -float(amax_hi) * 0.97, 1.0, -1.0, float(amax_hi) / 7, float(amax_hi) / 64,
                    float(amax_hi) / 100000, float(amax_hi) / 229376]))
    blocks.append(("e4m3_quotient_below_448", "signed",
                   [float(amax_lo), -float(amax_lo), float(amax_lo) * 0.5, 0.0, float(amax_lo) * 0.01]))
    blocks.append(("partial_block_of_5", "unsigned", [0.25, 1e-3, 0.0, 3.0, 2.9]))
    # the zero point excluded for the second moment: unsigned blocks whose
    # values would round to code 0 (dynamic8) or +0 (e4m3) and get code 1
    u_tie = float(u_small) / 2      # exactly between 0.0 and u_small
    blocks.append(("zero_point_excluded_dynamic8_unsigned", "unsigned",
                   [1.0, 0.0, u_tie, 1e-7, 1e-45, 1e-30, 1.6e-7, 1.63e-7, float(u_small),
                    float(UNSIGNED_MAP[2]), 0.5, 0.0, 1e-12, 3e-7, 0.25, 2e-38]))
    zp_e4m3 = [448.0, 0.0, 2.0 ** -10, 2.0 ** -11, 1e-6, 1e-45, 2.0 ** -10 * 1.0000001, 2.0 ** -9,
               3 * 2.0 ** -10, 2.0 ** -8, 0.0, 5 * 2.0 ** -10, 1.0, 2.0 ** -12, 100.0, 7 * 2.0 ** -9]
    blocks.append(("zero_point_excluded_e4m3_unsigned", "unsigned", zp_e4m3))
    # the same values as a first moment, with negatives: zeros stay zeros
    blocks.append(("zero_point_kept_signed", "signed",
                   [v if j % 4 != 3 else -v for j, v in enumerate(zp_e4m3)]))
    # float32-subnormal second moment: the dynamic8 scale is subnormal (zeros
    # get code 1), the e4m3 scale underflows to 0 (every code stays 0)
    blocks.append(("float32_subnormal_inputs_unsigned", "unsigned",
                   [k * 2.0 ** -149 for k in (100, 0, 1, 50, 3, 0, 7, 64, 33, 2, 99, 10, 25, 1, 0, 5)]))
    return blocks


def _find_amax(pred):
    """The first float32 amax >= 1 (stepping up by ulps) with pred(quotient),
    quotient = amax / float32(amax / 448)."""
    a = F32(1.0)
    for _ in range(1 << 20):
        q = a / (a / F32(E4M3_MAX))
        if pred(float(q)):
            return a
        a = np.nextafter(a, F32(np.inf))
    raise AssertionError("no amax found")


def codec_results(values, map_name):
    x = np.array(values, dtype=F32)
    out = {}
    for policy in ("dynamic8", "e4m3"):
        codes, scales = quantize(x, CODEC_BLOCK, policy, map_name)
        assert scales.size == 1
        out[policy] = (codes, scales[0], dequantize(codes, scales, CODEC_BLOCK, policy, map_name))
    return x, out


def check_codec_block(name, map_name, x, res):
    """Assert that the block exercises what its name says."""
    dc, ds, dd = res["dynamic8"]
    ec, es, ed = res["e4m3"]
    mids = MIDPOINTS[map_name]
    # the codes before the zero point is excluded (what a signed block, and
    # bitsandbytes / torchao for both moments, store)
    raw_dc = ZERO_CODE[map_name] + 0 * dc if ds == 0 else nearest_codes(x / ds, map_name)
    raw_ec = 0 * ec if es == 0 else e4m3_encode(x / es)
    if map_name == "signed":
        assert np.array_equal(dc, raw_dc) and np.array_equal(ec, raw_ec)
    else:
        # a second moment: non-negative; no code stands for zero unless the
        # block's scale is 0
        assert np.all(x >= 0) and not np.any(np.signbit(x))
        assert np.array_equal(dc, np.where(raw_dc == 0, 1, raw_dc) if ds != 0 else raw_dc)
        assert np.array_equal(ec, np.where((raw_ec & 0x7F) == 0, 1, raw_ec) if es != 0 else raw_ec)
        assert ds == 0 or np.all(dc != 0)
        assert es == 0 or np.all((ec & 0x7F) != 0)
        # (the decoded value of code 1 is map[1] * scale or 2^-9 * scale,
        # which only a float32-subnormal scale can round to 0)
        assert ds < F32(2.0 ** -126) or np.all(dd > 0)
        assert es < F32(2.0 ** -126) or np.all(ed > 0)
    if name.startswith("all_zero"):
        assert ds == 0 and es == 0 and np.all(dc == ZERO_CODE[map_name]) and np.all(ec == 0)
    elif name == "signed_zero_and_zeros":
        negz = (x == 0) & np.signbit(x)
        assert np.all(dc[x == 0] == 127) and np.all(ec[negz] == 0x80) and np.all(ec[(x == 0) & ~negz] == 0)
    elif name == "negative_max":
        # n = -1 has no entry: it goes to -0.99296875 (code 0), while n just
        # below +1 goes to 1.0 (code 255)
        assert ds == 3.0 and dc[0] == 0 and dc[5] == 0 and dc[6] == 255 and ec[0] == 0xFE
    elif name == "all_negative_equal":
        assert np.all(dc == 0) and np.all(ec == 0xFE)
    elif name.startswith("ties_signed") or name.startswith("ties_unsigned"):
        nrm = (x / ds).astype(F64)
        ties = [j for j in range(x.size) if nrm[j] in set(mids.tolist())]
        assert len(ties) == x.size - 1, (name, len(ties))
        for j in ties:
            lower = int(np.searchsorted(mids, nrm[j], side="left"))
            assert mids[lower] == nrm[j] and raw_dc[j] == lower
        if name == "ties_unsigned_scale2":
            # the last element is the tie between 0.0 and the smallest entry:
            # the lower index is 0.0, excluded for a second moment: code 1
            assert raw_dc[-1] == 0 and dc[-1] == 1
    elif name == "tiny_against_max_signed":
        assert ds == 1.0
        assert dc[1] == 127 and dc[3] == 127 and dc[5] == 128 and dc[6] == 126 and dc[7] == 128
    elif name == "tiny_against_max_unsigned":
        # 1e-7, 1.5e-7, 1.62e-7 (below the tie at 1.625e-7), 1e-12 ... and
        # 0.0 would be code 0; all are code 1, like 1.63e-7 and 1.7e-7
        assert ds == 1.0 and dc[6] == 1
        assert list(raw_dc[1:6]) == [0, 0, 1, 1, 0] and list(dc[1:6]) == [1] * 5
        assert list(raw_dc[8:13]) == [0] * 5 and list(dc[8:13]) == [1] * 5
    elif name == "ties_e4m3_scale1":
        assert es == 1.0
        got = E4M3_VALUES[ec]
        assert list(got[1:7]) == [16.0, 20.0, -16.0, -20.0, 448.0, -448.0]
        assert list(got[7:14]) == [0.5, 0.625, 0.0, -0.0, 2 * 2.0 ** -9, 2.0 ** -6, 4 * 2.0 ** -9]
        assert ec[10] == 0x80
    elif name == "subnormal_quotients_e4m3":
        assert es == 1.0 and np.any((ec & 0x78) == 0) and np.any((ec > 0) & ((ec & 0x78) == 0))
        # 2^-11, 1e-5 and 2^-10 (a tie, to even: 0) round to +0: code 1
        assert raw_ec[3] == raw_ec[10] == raw_ec[11] == 0 and ec[3] == ec[10] == ec[11] == 1
    elif name == "float32_subnormal_inputs":
        assert ds == F32(100 * 2.0 ** -149) and es == 0 and np.all(ec == 0)
    elif name == "e4m3_saturation_subnormal_scale":
        q = x / es
        assert es > 0 and es < F32(2.0 ** -126) and np.max(np.abs(q)) > E4M3_MAX
        assert ec[0] == 0x7E and ec[1] == 0xFE
    elif name == "e4m3_quotient_above_448":
        q = x / es
        assert q[1] > E4M3_MAX and q[0] < -E4M3_MAX and ec[1] == 0x7E and ec[0] == 0xFE
    elif name == "e4m3_quotient_below_448":
        q = x / es
        assert q[0] < E4M3_MAX and ec[0] == 0x7E and ec[1] == 0xFE
    elif name == "partial_block_of_5":
        assert x.size == 5 and ds == 3.0 and raw_dc[2] == 0 and dc[2] == 1 and ec[2] == 1
    elif name == "zero_point_excluded_dynamic8_unsigned":
        assert ds == 1.0
        zeros = [1, 2, 3, 4, 5, 6, 11, 12, 15]
        assert list(raw_dc[zeros]) == [0] * len(zeros) and list(dc[zeros]) == [1] * len(zeros)
        assert x[2] * 2 == UNSIGNED_MAP[1] and raw_dc[2] == 0     # the tie 0.0 | smallest: lower, 0.0
        assert list(dc[[7, 8, 9]]) == [1, 1, 2] and dd[1] == UNSIGNED_MAP[1]
        assert raw_ec[1] == 0 and ec[1] == 1 and np.count_nonzero((raw_ec & 0x7F) == 0) > 2
    elif name == "zero_point_excluded_e4m3_unsigned":
        assert es == 1.0
        zeros = [1, 2, 3, 4, 5, 10, 13]
        assert list(raw_ec[zeros]) == [0] * len(zeros) and list(ec[zeros]) == [1] * len(zeros)
        # 2^-10 is the tie between +0 and 2^-9 (to even: +0, then code 1);
        # 3 * 2^-10 and 5 * 2^-10 are ties to even between non-zero codes
        assert list(ec[[6, 7, 8, 9, 11]]) == [1, 1, 2, 2, 2] and ed[1] == 2.0 ** -9
        assert raw_dc[1] == 0 and dc[1] == 1
    elif name == "zero_point_kept_signed":
        assert es == 1.0 and ds == 448.0
        assert list(ec[[1, 2, 3, 4, 5, 10, 13]]) == [0, 0, 0x80, 0, 0, 0, 0] and ed[1] == 0
        assert list(dc[[1, 4, 5, 10]]) == [127] * 4 and dd[1] == 0
    elif name == "float32_subnormal_inputs_unsigned":
        assert ds == F32(100 * 2.0 ** -149) and es == 0 and np.all(ec == 0)
        assert list(raw_dc[[1, 5, 14]]) == [0] * 3 and list(dc[[1, 5, 14]]) == [1] * 3 and raw_dc[2] != 0
    else:
        raise AssertionError(name)


# --------------------------------------------------------------------------
HEADER = """\
AdamW with block-quantized moments: reference trajectories. Generated by
scripts/reference/adamw_blockwise.py -- do not edit by hand.
Regenerate: /usr/bin/python3 scripts/reference/adamw_blockwise.py

Synthetic data (Python, arbitrary-precision ints):
%s

Independent numpy float32 transcription (no torch); every operation below is
a float32 IEEE operation, correctly rounded, no fused multiply-add, unless it
says float64.

Dynamic maps (cases map_signed, map_unsigned; Dettmers' dynamic 8-bit type,
bitsandbytes create_dynamic_map(max_exponent_bits=7, total_bits=8)), built in
float64 (Python floats) with each entry rounded ONCE to float32 at the end:
  signed:   for i in 0..6: n = 2**i + 1 boundaries b_k = 0.1 + k*(0.9/(n-1)),
            k = 0..n-1; means (b_k + b_{k+1})/2 (2**i of them); entries
            10.0**(i-6) * mean and -(10.0**(i-6) * mean); plus 0.0 and 1.0
            (no -1.0). 256 entries, sorted ascending; code = index. 0.0 is
            code 127.
  unsigned: the same with n = 2**(i+1) + 1 boundaries (2**(i+1) means) and
            no negatives; plus 0.0 and 1.0. 0.0 is code 0.
  (10.0**(i-6) is Python's float power. bitsandbytes/torchao build theirs
  with float32 torch.linspace and a float32 multiply; some entries differ
  from these by an ulp.)

Block quantization of a parameter's flattened (row-major) float32 vector x
with block size B: blocks of B consecutive elements starting at the
parameter's first element; the parameter's last block may be shorter. Per
block:
  dynamic8 (first moment: signed map, second moment: unsigned map):
    scale = max |x| over the block. scale == 0: every code is the code of 0.0
    and the stored scale is 0. Else n = x / scale (float32 division) and code
    = index of the map entry nearest to n, |n - entry| compared in float64 (a
    tie goes to the lower index; the script checks this against the exact
    midpoints of adjacent entries). Dequantize: map[code] * scale.
  e4m3 (both moments):
    scale = max |x| / 448 (float32 division). scale == 0 (also when the
    division underflows): every code 0, stored scale 0. Else code = x / scale
    (float32 division) rounded to the nearest OCP fp8 E4M3FN value (bias 7,
    3 mantissa bits, max 448, no infinities, subnormals m * 2**-9; ties to
    even; beyond 448 saturates to 448, never NaN), written as its raw 8-bit
    pattern (sign bit 7, exponent bits 6-3, mantissa bits 2-0): 448 is 126,
    -448 is 254, and a negative quotient that rounds to zero (or -0) is 128
    (-0). Dequantize: float32(value of code) * scale.
  Zero point excluded for the second moment (Li et al., "Memory Efficient
  Optimizers with 4-bit States", 2023): the codes of v (unsigned map;
  "unsigned" e4m3) never stand for zero. In a block whose scale is not 0, a
  v element whose code by the rules above is 0 (dynamic8: the entry 0.0,
  whether x is 0 or rounds to it, ties included) or +-0 (e4m3: code & 127
  == 0) gets code 1 instead, the smallest non-zero entry (dynamic8:
  map_unsigned[1] = 3.25e-7; e4m3: 2**-9). A block whose scale is 0 keeps
  codes 0 and scale 0. The first moment (signed map, signed e4m3) keeps its
  zeros (code 127; e4m3 0 and 128). Decoding is unchanged. (Why: with
  bitsandbytes' maps as they are, a v far below its block's largest decodes
  to 0, and on a later step whose gradient is 0 while m is not, the update
  divides m by eps alone.) bitsandbytes and torchao keep code 0 for v.

AdamW, step t = 1, 2, ..., hyperparameters lr, beta1 (b1), beta2 (b2), eps,
weight_decay (wd) the float32 values printed; per element with gradient g and
fp32 master weight w:
  bc1   = float32(1 - b1**t)        power and subtraction in float64
  bc2s  = float32(sqrt(1 - b2**t))  power, subtraction and sqrt in float64
  decay = float32(1.0 - float64(lr) * float64(wd))
  m_old = dequantize(m codes, m scales)   signed map for dynamic8
  v_old = dequantize(v codes, v scales)   unsigned map for dynamic8
          (both 0 at t = 1: initial codes are the code of 0.0, scales 0)
  m     = m_old*b1 + g*(1-b1)       [(m_old*b1) + (g*(1-b1))], 1-b1 float32
  v     = v_old*b2 + (g*g)*(1-b2)   [(v_old*b2) + ((g*g)*(1-b2))]
  denom = sqrt(v)/bc2s + eps        [(sqrt(v)/bc2s) + eps], sqrt correctly rounded
  a     = (m/bc1)/denom
  u     = (-lr)*a
  w     = w*decay + u               [(w*decay) + u]
  The weight uses the new m and v unquantized; then m and v are
  block-quantized (new scales from the new values) and stored as codes and
  one float32 scale per block. No amsgrad, no maximize.

Gradients: the synthetic gradients above with grad_scale 1, except in the
cases with a grad_rule key (the two *_sparse_* cases, after the other
four), where it says how they are changed:
  grad_rule small_every_8th_zero_every_3rd_step: start from the synthetic
  gradient g of parameter k, flattened element i, step t; if i %% 8 == 0:
  g = float32(g * float32(1e-4)) (a float32 multiply), and if also
  t %% 3 == 0: g = 0 (+0.0). Elements with i %% 8 != 0 are unchanged.
  (Those elements' v is then 1e-8 of its block's largest or less, so it
  would be coded as zero, and every 3rd step reads it back with g = 0 while
  m is not 0. Under the zero-point rule they get code 1 at steps 1 and 2,
  and nearest rounding keeps them there afterwards; without it their v
  would decode to 0 at every step. The script asserts that the rule changes
  v codes in both sparse cases, over the 200 steps and at the check steps,
  and that it changes none in the other four.)

Records of the AdamW cases (t = a check step, k = parameter):
  optimizer adamw_blockwise, policy <dynamic8|e4m3>, block_size <B>, lr,
  beta1, beta2, eps, weight_decay (float32), amsgrad 0, maximize 0,
  grad_scale, grad_rule <rule> (only in the cases that have one),
  shapes <count> <shape...>, blocks <count> <number of blocks of
  each parameter>, steps,
  then for each check step t and parameter k, in this order:
  check <t> <k> <n> <weights after step t, float32>
  m_codes <t> <k> <n> <codes 0..255>
  m_scales <t> <k> <blocks> <scales, float32>
  v_codes <t> <k> <n> <codes 0..255>
  v_scales <t> <k> <blocks> <scales, float32>
Cases map_signed / map_unsigned: map <signed|unsigned>, zero_code <code of
  0.0>, entries 256 <entries ascending, float32>.
Case codec (block_size 16; each block quantized on its own under both
  policies; the block's name says what it exercises, and the script asserts
  that it does), per block j:
  block <j> <name> <signed|unsigned> <n> <x, float32>
      signed: coded as a first moment (signed map; e4m3 keeps +-0);
      unsigned: as a second moment (unsigned map; under both policies the
      zero point excluded)
  dynamic8 <j> <scale> <n> <codes>
  dynamic8_decoded <j> <n> <dequantized values>
  e4m3 <j> <scale> <n> <codes>
  e4m3_decoded <j> <n> <dequantized values>""" % GENERATOR


def write_file():
    w = Writer("adamw_blockwise_reference.txt")
    w.comment(HEADER)

    for name, qmap in MAPS.items():
        w.begin("map_" + name)
        w.kv("map", name)
        w.kv("zero_code", ZERO_CODE[name])
        w.kv("entries", qmap.size, *[f32(v) for v in qmap])
        w.end()

    w.begin("codec")
    w.kv("block_size", CODEC_BLOCK)
    for j, (name, map_name, values) in enumerate(codec_blocks()):
        x, res = codec_results(values, map_name)
        assert x.size <= CODEC_BLOCK
        check_codec_block(name, map_name, x, res)
        w.kv("block", j, name, map_name, x.size, *[f32(v) for v in x])
        for policy in ("dynamic8", "e4m3"):
            codes, scale, dec = res[policy]
            w.kv(policy, j, f32(scale), codes.size, *[int(c) for c in codes])
            w.kv(policy + "_decoded", j, dec.size, *[f32(v) for v in dec])
    w.end()

    zero_point_report = []
    for name, policy, bsize, hp, grad_rule in all_cases():
        hp = {key: as_f32(v) for key, v in hp.items()}
        zero_points, counts = {}, []
        checks = run_adamw(hp, policy, bsize, zero_points=zero_points, grad_rule=grad_rule,
                           zero_point_counts=counts)
        assert len(counts) == STEPS
        at_checks = sum(int(np.count_nonzero(zp)) for t in CHECKS for zp in zero_points[t])
        assert at_checks == sum(counts[t - 1] for t in CHECKS)
        if grad_rule is None:
            # the plain synthetic gradients never bring a v code to the zero point
            assert sum(counts) == 0, (name, sum(counts))
        else:
            # these cases exist to exercise the rule: it must change v codes,
            # over the run and in the recorded (check-step) codes
            assert sum(counts) > 0 and at_checks > 0, (name, sum(counts), at_checks)
        zero_point_report.append("  %-48s %6d over the %d steps (at %d of them), %5d at the check steps"
                                 % (name, sum(counts), STEPS, sum(1 for c in counts if c), at_checks))
        w.begin(name)
        w.kv("optimizer", "adamw_blockwise")
        w.kv("policy", policy)
        w.kv("block_size", bsize)
        for key in HP_ORDER:
            w.kv(key, f32(hp[key]))
        w.kv("amsgrad", 0)
        w.kv("maximize", 0)
        w.kv("grad_scale", f32(GRAD_SCALE))
        if grad_rule is not None:
            w.kv("grad_rule", grad_rule)
        w.kv("shapes", len(SHAPES), *["x".join(str(d) for d in s) for s in SHAPES])
        w.kv("blocks", len(SHAPES), *[len(block_ranges(int(np.prod(s)), bsize)) for s in SHAPES])
        w.kv("steps", STEPS)
        for t in CHECKS:
            for k, (wt, mc, ms, vc, vs) in enumerate(checks[t]):
                w.kv("check", t, k, wt.size, *[f32(v) for v in wt])
                w.kv("m_codes", t, k, mc.size, *[int(c) for c in mc])
                w.kv("m_scales", t, k, ms.size, *[f32(v) for v in ms])
                w.kv("v_codes", t, k, vc.size, *[int(c) for c in vc])
                w.kv("v_scales", t, k, vs.size, *[f32(v) for v in vs])
        w.end()
    w.write()
    print("zero point excluded: second-moment codes the rule changed (from the code of 0 to code 1)")
    for line in zero_point_report:
        print(line)


def crosscheck():
    """Compare e4m3_encode with ml_dtypes on all quotients of the cases and a
    sweep of float32 values; print a summary."""
    import ml_dtypes
    fp8 = ml_dtypes.float8_e4m3fn

    def theirs(q):
        return q.astype(fp8).view(np.uint8).astype(np.int64)

    sweep = np.concatenate([np.linspace(-448.0, 448.0, 2000001, dtype=F32),
                            np.ldexp(np.linspace(-1.0, 1.0, 200001, dtype=F32), -5).astype(F32),
                            np.ldexp(np.arange(0, 4096, dtype=F32), -21).astype(F32)])
    n, bad = sweep.size, int(np.count_nonzero(e4m3_encode(sweep) != theirs(sweep)))
    quotients = []
    for name, policy, bsize, hp, grad_rule in all_cases():
        if policy == "e4m3":
            run_adamw({key: as_f32(v) for key, v in hp.items()}, policy, bsize, quotients, grad_rule=grad_rule)
    for _, map_name, values in codec_blocks():
        x = np.array(values, dtype=F32)
        quantize(x, CODEC_BLOCK, "e4m3", map_name, quotients)
    q = np.concatenate(quotients)
    # ml_dtypes (non-saturating) gives NaN from 464 up; below that it
    # rounds to 448 like the saturating rule.
    inrange = np.abs(q) < 464.0
    above = int(np.count_nonzero(np.abs(q) > E4M3_MAX))
    bad_q = int(np.count_nonzero(e4m3_encode(q[inrange]) != theirs(q[inrange])))
    print("ml_dtypes %s: sweep %d values, %d differ; case quotients %d (%d above 448 in magnitude, "
          "%d at or above 464, not compared), %d differ"
          % (ml_dtypes.__version__, n, bad, q.size, above, int(np.count_nonzero(~inrange)), bad_q))
    assert bad == 0 and bad_q == 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--crosscheck"]:
        crosscheck()
    else:
        assert not sys.argv[1:], "usage: adamw_blockwise.py [--crosscheck]"
        write_file()
