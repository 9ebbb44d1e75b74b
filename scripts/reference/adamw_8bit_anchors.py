"""Compare the AdamW-with-8-bit-moments transcription with library optimizers.

A comparison, not a generator: it prints a report and writes nothing (in
particular nothing under tests/data).  Run from anywhere, with the torch of
the reference virtual environment and bitsandbytes on PYTHONPATH:

    PYTHONPATH=/tmp/bnbpkg build/torch-venv/bin/python scripts/reference/adamw_8bit_anchors.py

(bitsandbytes was installed with `pip install --target /tmp/bnbpkg
bitsandbytes==0.50.2`; without it the bitsandbytes rows say "not run".)

What it compares, on the synthetic problem of adamw_blockwise.py (its
SHAPES, STEPS, CHECKS, GRAD_SCALE and CASES, imported from that module, and
its run_adamw / quantize, which are the code the C++ implementation matches
bit for bit):

  tr     the numpy float32 transcription, adamw_blockwise.run_adamw
  fp32   torch.optim.AdamW with float32 moments (foreach=False, CPU)
  lib    torchao AdamW8bit (dynamic8 cases), torchao AdamWFp8 (e4m3 cases),
         bitsandbytes AdamW8bit (dynamic8 with block 256 only: bitsandbytes
         fixes the block size at 256), all on CPU float32 tensors.

For each case, library run and check step: max |w_lib - w_tr|,
max |w_lib - w_fp32|, max |w_tr - w_fp32| over all elements of the four
parameters, and the fraction of first-/second-moment codes that differ
from the transcription's (code = index into the ascending 256-entry map
for the dynamic maps, raw E4M3FN bit pattern for fp8; all three libraries
use these conventions, so codes are compared as they are stored).  Every
step is recorded (run_adamw's CHECKS is widened to all steps while it
runs); a line per run says at how many steps any code differed.

The transcription excludes the zero point for the second moment (after Li
et al., "Memory Efficient Optimizers with 4-bit States", 2023: a v code that
would be 0.0, dynamic8 code 0 or e4m3 +-0, is stored as code 1, the
smallest non-zero entry; see adamw_blockwise.py).  torchao and bitsandbytes
keep code 0 there, so v codes can differ for that reason alone: the column
"vzp" counts the v codes that differ only because of it (the transcription's
rule changed the code, and the library stored the code of zero), and they
are also counted in "v".  The quantizer-only diagnostics count them
likewise ("zp").

Size rules of the libraries, and what is run instead:
  torchao   quantizes a moment only if the parameter has >= 4096 elements
            AND its element count is a multiple of block_size; otherwise the
            moment silently stays float32.  None of the four parameters
            (600, 7, 256, 65 elements) has 4096 elements, so "as shipped"
            every moment is float32.  The "forced" runs therefore (a) give
            torchao each parameter flattened and zero-padded to a multiple
            of the block size (zero weight, zero gradient: those elements
            stay exactly 0, and zeros do not change a block's absmax or the
            other elements' codes, so this is the transcription's short last
            block), and (b) lift the 4096 threshold by overriding
            `_new_buffer` so every moment is an OptimState8bit/OptimStateFp8.
            The padding is excluded from every reported number.
  bnb       block size fixed at 256; partial last blocks are supported, so
            the original shapes run unpadded; min_8bit_size (default 4096)
            is set to 1 in the "forced" run.  Case dynamic8_b64 cannot run.
torchao wraps its per-parameter step in torch.compile; here
TORCHDYNAMO_DISABLE=1 makes that a no-op, so torchao's Python code runs in
eager mode on ATen's portable kernels (ATEN_CPU_CAPABILITY=default, as in
the other reference scripts; no C++ compiler is invoked).  A compiled run
(inductor C++ on CPU, Triton on GPU) may round differently by an ulp here
and there.

Two quantizer-only diagnostics isolate the codecs from the trajectories:
the codec blocks of adamw_blockwise.py (ties, tiny values, saturation,
float32-subnormal inputs, ...) and all synthetic gradients g (signed map /
e4m3) and g*g (unsigned map / e4m3) of the 200 steps, each quantized by the
transcription's quantize() and by the library's own quantizer.
"""

import functools
import os
import sys
import time

# Portable CPU kernels (no AVX2/AVX512 dispatch, no fused multiply-add) and
# no torch.compile (torchao's optimizers call it on every step).
os.environ["ATEN_CPU_CAPABILITY"] = "default"
os.environ["TORCHDYNAMO_DISABLE"] = "1"

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import adamw_blockwise as tr  # noqa: E402  (the transcription the C++ matches)
from _refio import as_f32, torch_capability  # noqa: E402
from _synthetic import initial_weights, gradients  # noqa: E402

F32 = np.float32

try:
    import torchao
    from torchao.optim import AdamW8bit as TorchaoAdamW8bit, AdamWFp8 as TorchaoAdamWFp8
    from torchao.optim.subclass_8bit import OptimState8bit, get_qmap_signed, get_qmap_unsigned
    from torchao.optim.subclass_fp8 import OptimStateFp8, quantize_fp8
    from torchao.optim.quant_utils import scale_tensor, quantize_8bit_with_qmap
    TORCHAO_ERROR = None
except Exception as exc:  # reported, not fatal
    torchao = None
    TORCHAO_ERROR = "%s: %s" % (type(exc).__name__, exc)

try:
    import bitsandbytes as bnb
    import bitsandbytes.functional as bnb_F
    BNB_ERROR = None
except Exception as exc:  # reported, not fatal
    bnb = None
    BNB_ERROR = "%s: %s" % (type(exc).__name__, exc)

BNB_BLOCK = 256  # hard-coded in bitsandbytes' 8-bit optimizers


def padded_size(n, block):
    return n if block is None else -(-n // block) * block


# --------------------------------------------------------------------------
# Optimizer runs.  Each returns {t: [(w, m_codes or None, v_codes or None)
# for each parameter k]} for every step t, trimmed to the real elements.
# --------------------------------------------------------------------------
if torchao is not None:
    class ForcedTorchaoAdamW8bit(TorchaoAdamW8bit):
        """torchao AdamW8bit with its 4096-element threshold lifted: every
        moment is block-quantized (the element count must still be a multiple
        of block_size, which the padding guarantees)."""

        def _new_buffer(self, p, signed):
            assert p.numel() % self.block_size == 0, (p.numel(), self.block_size)
            return self._subclass_zeros(p, signed, self.block_size)

    class ForcedTorchaoAdamWFp8(TorchaoAdamWFp8):
        """torchao AdamWFp8 with its 4096-element threshold lifted."""

        def _new_buffer(self, p, signed):
            assert p.numel() % self.block_size == 0, (p.numel(), self.block_size)
            return self._subclass_zeros(p, signed, self.block_size)


def _codes_torchao(state):
    if isinstance(state, OptimState8bit):
        return state.codes.reshape(-1).numpy().astype(np.int64)
    if isinstance(state, OptimStateFp8):
        return state.codes.reshape(-1).view(torch.uint8).numpy().astype(np.int64)
    return None


def _codes_bnb(opt_state, key):
    s = opt_state[key]
    return s.reshape(-1).numpy().astype(np.int64) if s.dtype == torch.uint8 else None


def run_torch(make_opt, codes_of, pad_block):
    """Run a torch optimizer over the synthetic problem.  pad_block: flatten
    every parameter and zero-pad it to a multiple of pad_block (None: keep
    the original shapes)."""
    sizes = [int(np.prod(s)) for s in tr.SHAPES]
    params = []
    for w, shape, n in zip(initial_weights(tr.SHAPES), tr.SHAPES, sizes):
        if pad_block is None:
            x = w.reshape(shape)
        else:
            x = np.zeros(padded_size(n, pad_block), dtype=F32)
            x[:n] = w
        params.append(torch.nn.Parameter(torch.from_numpy(x.copy())))
    opt = make_opt(params)
    checks = {}
    for t in range(1, tr.STEPS + 1):
        for p, g, n in zip(params, gradients(t, tr.GRAD_SCALE, tr.SHAPES), sizes):
            if pad_block is None:
                p.grad = torch.from_numpy(g).reshape(p.shape)
            else:
                gp = np.zeros(p.numel(), dtype=F32)
                gp[:n] = g
                p.grad = torch.from_numpy(gp)
        opt.step()
        rows = []  # recorded at every step; the check steps are a subset
        for p, n in zip(params, sizes):
            w = p.detach().reshape(-1).numpy()[:n].copy()
            mc, vc = codes_of(opt, p)
            rows.append((w, None if mc is None else mc[:n].copy(), None if vc is None else vc[:n].copy()))
        checks[t] = rows
    if pad_block is not None:  # the padding must have stayed exactly zero
        for p, n in zip(params, sizes):
            assert not torch.any(p.detach().reshape(-1)[n:]), "padding moved"
    return checks, opt, params


def torchao_codes_of(opt, p):
    st = opt.state[p]
    return _codes_torchao(st["exp_avg"]), _codes_torchao(st["exp_avg_sq"])


def bnb_codes_of(opt, p):
    st = opt.state[p]
    return _codes_bnb(st, "state1"), _codes_bnb(st, "state2")


def no_codes(opt, p):
    return None, None


def transcription(hp, policy, bsize):
    """adamw_blockwise.run_adamw, recording every step instead of only its
    CHECKS (run_adamw reads the module global; it is restored afterwards).
    Returns (checks, zero_points): zero_points[t][k] marks the v codes that
    the zero-point rule changed at step t."""
    saved = tr.CHECKS
    tr.CHECKS = list(range(1, tr.STEPS + 1))
    zero_points = {}
    try:
        return tr.run_adamw(hp, policy, bsize, zero_points=zero_points), zero_points
    finally:
        tr.CHECKS = saved


def fp32_adamw(hp):
    def make(params):
        return torch.optim.AdamW(params, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"],
                                 weight_decay=hp["weight_decay"], foreach=False, fused=False)
    return run_torch(make, no_codes, None)[0]


def lib_runs(policy, bsize, hp):
    """(label, callable returning (checks, opt, params) or raising, note) for
    the library runs that apply to a case."""
    kw = dict(lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"], weight_decay=hp["weight_decay"])
    runs = []
    if policy == "dynamic8":
        if torchao is None:
            runs.append(("torchao AdamW8bit", None, "not run: torchao import failed: " + TORCHAO_ERROR))
        else:
            runs.append(("torchao AdamW8bit forced",
                         lambda: run_torch(lambda ps: ForcedTorchaoAdamW8bit(ps, block_size=bsize, **kw),
                                           torchao_codes_of, bsize),
                         "block %d, params flattened and zero-padded to a multiple of %d, 4096 threshold lifted"
                         % (bsize, bsize)))
            runs.append(("torchao AdamW8bit as shipped",
                         lambda: run_torch(lambda ps: TorchaoAdamW8bit(ps, block_size=bsize, **kw),
                                           torchao_codes_of, None),
                         "block %d, original shapes: every parameter < 4096 elements, so fp32 moments" % bsize))
        if bsize != BNB_BLOCK:
            runs.append(("bnb AdamW8bit", None,
                         "not run: bitsandbytes' 8-bit optimizers fix the block size at %d" % BNB_BLOCK))
        elif bnb is None:
            runs.append(("bnb AdamW8bit", None, "not run: bitsandbytes import failed: " + BNB_ERROR))
        else:
            runs.append(("bnb AdamW8bit forced",
                         lambda: run_torch(lambda ps: bnb.optim.AdamW8bit(ps, min_8bit_size=1, **kw),
                                           bnb_codes_of, None),
                         "block 256 (fixed), original shapes (partial last blocks), min_8bit_size=1"))
            runs.append(("bnb AdamW8bit as shipped",
                         lambda: run_torch(lambda ps: bnb.optim.AdamW8bit(ps, **kw), bnb_codes_of, None),
                         "min_8bit_size=4096 (default): every parameter smaller, so fp32 moments"))
    else:
        if torchao is None:
            runs.append(("torchao AdamWFp8", None, "not run: torchao import failed: " + TORCHAO_ERROR))
        else:
            runs.append(("torchao AdamWFp8 forced",
                         lambda: run_torch(lambda ps: ForcedTorchaoAdamWFp8(ps, block_size=bsize, **kw),
                                           torchao_codes_of, bsize),
                         "block %d, params flattened and zero-padded to a multiple of %d, 4096 threshold lifted"
                         % (bsize, bsize)))
            runs.append(("torchao AdamWFp8 as shipped",
                         lambda: run_torch(lambda ps: TorchaoAdamWFp8(ps, block_size=bsize, **kw),
                                           torchao_codes_of, None),
                         "block %d, original shapes: every parameter < 4096 elements, so fp32 moments" % bsize))
        runs.append(("bnb", None, "no bitsandbytes optimizer with fp8 e4m3 moments"))
    return runs


# --------------------------------------------------------------------------
# Numbers.
# --------------------------------------------------------------------------
def max_abs_diff(a_rows, b_rows):
    return max(float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) for a, b in zip(a_rows, b_rows))


def code_diff_fraction(lib_rows, ref_codes):
    """Fraction of codes (over all real elements of all parameters) that
    differ; None if the library kept this moment in float32 anywhere."""
    if any(c is None for c in lib_rows):
        return None
    diff = sum(int(np.count_nonzero(c != r)) for c, r in zip(lib_rows, ref_codes))
    return diff / sum(r.size for r in ref_codes)


def fmt_frac(x):
    if x is None:
        return "fp32"
    return "0" if x == 0 else "%.4f" % x


def fmt_count(x):
    return "-" if x is None else "%d" % x


def is_zero_code(codes, policy):
    """Where a code stands for zero: dynamic8 unsigned map code 0, e4m3 +-0."""
    return codes == tr.ZERO_CODE["unsigned"] if policy == "dynamic8" else (codes & 0x7F) == 0


def zero_point_diffs(lib_rows, zp_rows, policy):
    """v codes that differ only because of the transcription's zero-point
    rule: the rule changed the transcription's code (the code by nearest
    rounding was that of zero) and the library stored the code of zero.
    None if the library kept float32 moments anywhere."""
    if any(c is None for c in lib_rows):
        return None
    return sum(int(np.count_nonzero(zp & is_zero_code(c, policy))) for c, zp in zip(lib_rows, zp_rows))


def all_steps_line(rows):
    """One line about every step, not only the check steps."""
    worst = max(rows, key=lambda r: r["lib_tr"])
    out = "all %d steps: max |lib-tr| %.3e (step %d)" % (len(rows), worst["lib_tr"], worst["t"])
    for key in ("m", "v"):
        if rows[0][key] is None:
            continue
        bad = [r for r in rows if r[key]]
        if bad:
            top = max(bad, key=lambda r: r[key])
            out += "; %s codes differ at %d steps (first %d, max %.4f at step %d)" % (
                key, len(bad), bad[0]["t"], top[key], top["t"])
        else:
            out += "; %s codes identical at every step" % key
    if rows[0]["v"] is not None:
        out += ("; zero-point rule: changed %d v codes of the transcription over all steps, %d of them "
                "differ from the library's code of zero (max %d at one step)"
                % (sum(r["zp_rule"] for r in rows), sum(r["vzp"] for r in rows), max(r["vzp"] for r in rows)))
    return out


def compare_case(ref_checks, ref_zp, fp32_checks, checks, policy):
    """Per-step numbers (every step) of one library run."""
    rows = []
    for t in range(1, tr.STEPS + 1):
        w_tr = [r[0] for r in ref_checks[t]]
        w_lib = [r[0] for r in checks[t]]
        w_fp = fp32_checks[t]
        rows.append(dict(
            t=t,
            lib_tr=max_abs_diff(w_lib, w_tr),
            lib_fp32=max_abs_diff(w_lib, [r[0] for r in w_fp]),
            tr_fp32=max_abs_diff(w_tr, [r[0] for r in w_fp]),
            m=code_diff_fraction([r[1] for r in checks[t]], [r[1] for r in ref_checks[t]]),
            v=code_diff_fraction([r[2] for r in checks[t]], [r[3] for r in ref_checks[t]]),
            vzp=zero_point_diffs([r[2] for r in checks[t]], ref_zp[t], policy),
            zp_rule=sum(int(np.count_nonzero(zp)) for zp in ref_zp[t]),
        ))
    return rows


# --------------------------------------------------------------------------
# Quantizer-only diagnostics.
# --------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _torchao_qmap(map_name):
    return torch.tensor(get_qmap_signed() if map_name == "signed" else get_qmap_unsigned(), dtype=torch.float32)


@functools.lru_cache(maxsize=None)
def _bnb_qmap(map_name):
    return bnb_F.create_dynamic_map(signed=(map_name == "signed"))


def lib_quantize(lib, policy, x, bsize, map_name):
    """Codes of the float32 vector x under the library's own quantizer, block
    size bsize (torchao: x zero-padded to a multiple of bsize)."""
    n = x.size
    if lib == "torchao":
        xp = np.zeros(padded_size(n, bsize), dtype=F32)
        xp[:n] = x
        xt = torch.from_numpy(xp)
        if policy == "dynamic8":
            qmap = _torchao_qmap(map_name)
            scaled, _ = scale_tensor(xt, bsize)
            codes = quantize_8bit_with_qmap(scaled, qmap)
        else:
            codes, _ = quantize_fp8(xt, bsize)
            codes = codes.view(torch.uint8)
        return codes.numpy().astype(np.int64)[:n]
    assert lib == "bnb" and policy == "dynamic8"
    qmap = _bnb_qmap(map_name)
    codes, _ = torch.ops.bitsandbytes.quantize_blockwise(torch.from_numpy(x.copy()), qmap, bsize)
    return codes.numpy().astype(np.int64)


def map_report():
    lines = []
    libs = []
    if torchao is not None:
        libs.append(("torchao", lambda s: np.array(get_qmap_signed() if s else get_qmap_unsigned(), dtype=F32)))
    if bnb is not None:
        libs.append(("bnb", lambda s: bnb_F.create_dynamic_map(signed=s).numpy()))
    for lib, make in libs:
        for signed, name in ((True, "signed"), (False, "unsigned")):
            theirs = make(signed)
            ours = tr.MAPS[name]
            diff = theirs != ours
            ulps = np.abs(theirs.view(np.int32).astype(np.int64) - ours.view(np.int32).astype(np.int64))
            lines.append("  %-8s %-8s map: %3d of 256 entries differ from the transcription's (max %d ulp); "
                         "zero at code %d"
                         % (lib, name, int(np.count_nonzero(diff)), int(ulps.max()),
                            int(np.nonzero(theirs == 0)[0][0])))
    if torchao is not None and bnb is not None:
        same = all(np.array_equal(np.array(get_qmap_signed() if s else get_qmap_unsigned(), dtype=F32),
                                  bnb_F.create_dynamic_map(signed=s).numpy()) for s in (True, False))
        lines.append("  bnb's maps are %s torchao's" % ("identical to" if same else "NOT identical to"))
    return lines


def codec_block_report():
    lines = []
    header = "  %-37s %-8s %3s | %-25s | %-25s | %-25s" % (
        "block", "map", "n", "torchao 8bit vs dyn8", "bnb vs dyn8 (B=256)", "torchao fp8 vs e4m3")
    lines.append(header)
    for name, map_name, values in tr.codec_blocks():
        x = np.array(values, dtype=F32)
        cells = []
        for lib, policy in (("torchao", "dynamic8"), ("bnb", "dynamic8"), ("torchao", "e4m3")):
            if (lib == "torchao" and torchao is None) or (lib == "bnb" and bnb is None):
                cells.append("not run")
                continue
            zp = np.zeros(x.size, dtype=bool)
            ref_codes, _ = tr.quantize(x, tr.CODEC_BLOCK, policy, map_name, zero_point=zp)
            bs = tr.CODEC_BLOCK if lib == "torchao" else BNB_BLOCK
            got = lib_quantize(lib, policy, x, bs, map_name)
            diff = got != ref_codes
            by_zp = diff & zp & is_zero_code(got, policy)
            bad = np.nonzero(diff & ~by_zp)[0]
            cell = "%2d differ" % np.count_nonzero(diff)
            if by_zp.any():
                cell += ", %d zp" % np.count_nonzero(by_zp)
            if bad.size:
                cell += " (%s)" % ",".join("%d:%d>%d" % (j, ref_codes[j], got[j]) for j in bad[:2])
                if bad.size > 2:
                    cell += ".."
            cells.append(cell)
        lines.append("  %-37s %-8s %3d | %-25s | %-25s | %-25s" % (name, map_name, x.size, *cells))
    lines.append("  (zp = differ only by the zero-point rule: the transcription's code 1 where the code by")
    lines.append("  nearest rounding, and the library's, is that of zero; j:a>b = element j: transcription")
    lines.append("  code a, library code b, for the other differences, first two shown)")
    return lines


def gradient_quantizer_report():
    """Quantize every synthetic gradient g and g*g of the 200 steps, per
    parameter, with the transcription and with the library quantizer."""
    grads = [gradients(t, tr.GRAD_SCALE, tr.SHAPES) for t in range(1, tr.STEPS + 1)]
    lines = []
    combos = []
    if torchao is not None:
        combos += [("torchao", "dynamic8", 256), ("torchao", "dynamic8", 64),
                   ("torchao", "e4m3", 256), ("torchao", "e4m3", 32)]
    if bnb is not None:
        combos += [("bnb", "dynamic8", 256), ("bnb", "dynamic8", 64)]
    for lib, policy, bsize in combos:
        parts = []
        for what, map_name in (("g", "signed"), ("g*g", "unsigned")):
            total = bad = bad_zp = 0
            max_step = 0
            for gs in grads:
                for g in gs:
                    x = g if what == "g" else (g * g).astype(F32)
                    zp = np.zeros(x.size, dtype=bool)
                    ref_codes, _ = tr.quantize(x, bsize, policy, map_name, zero_point=zp)
                    got = lib_quantize(lib, policy, x, bsize, map_name)
                    d = got != ref_codes
                    total += x.size
                    bad += int(np.count_nonzero(d))
                    bad_zp += int(np.count_nonzero(d & zp & is_zero_code(got, policy)))
                    if policy == "dynamic8" and d.any():
                        max_step = max(max_step, int(np.max(np.abs(got[d] - ref_codes[d]))))
            cell = "%s: %d of %d differ (%.5f)" % (what, bad, total, bad / total)
            if map_name == "unsigned":
                cell += " [%d zp]" % bad_zp
            if policy == "dynamic8" and bad:
                cell += ", max |code diff| %d" % max_step
            parts.append(cell)
        note = " (bnb's optimizer itself uses 256 only)" if lib == "bnb" and bsize != BNB_BLOCK else ""
        lines.append("  %-7s %-8s B=%-3d %s; %s%s" % (lib, policy, bsize, parts[0], parts[1], note))
    return lines


# --------------------------------------------------------------------------
def main():
    t_start = time.time()
    torch.set_num_threads(1)
    cap = torch_capability(torch)
    assert cap in ("DEFAULT", "NO AVX"), cap
    probe = torch.compile(lambda x: x + 1)
    assert probe(torch.zeros(1)).item() == 1.0  # runs eagerly: TORCHDYNAMO_DISABLE=1
    print("adamw_8bit_anchors: a comparison; writes nothing.")
    print("python %s, numpy %s, torch %s (CPU capability %s, TORCHDYNAMO_DISABLE=1: torch.compile is a no-op)"
          % (sys.version.split()[0], np.__version__, torch.__version__, cap))
    print("torchao %s" % (torchao.__version__ if torchao is not None else "not importable: " + TORCHAO_ERROR))
    print("bitsandbytes %s" % (bnb.__version__ if bnb is not None else "not importable: " + BNB_ERROR))
    print("problem: shapes %s, %d steps, grad_scale %g, checks at %s (from adamw_blockwise.py)"
          % (tr.SHAPES, tr.STEPS, tr.GRAD_SCALE, tr.CHECKS))
    print()
    print("Dynamic maps (transcription: float64 then rounded once to float32):")
    for line in map_report():
        print(line)
    print()

    summary = []
    fp32_cache = {}
    for name, policy, bsize, hp_raw in tr.CASES:
        hp = {key: as_f32(v) for key, v in hp_raw.items()}
        ref_checks, ref_zp = transcription(hp, policy, bsize)
        key = tuple(sorted(hp.items()))
        if key not in fp32_cache:
            fp32_cache[key] = fp32_adamw(hp)
        fp32_checks = fp32_cache[key]
        print("=" * 100)
        print("case %s  (policy %s, block %d, lr %g, betas %g/%g, eps %g, wd %g)"
              % (name, policy, bsize, hp["lr"], hp["beta1"], hp["beta2"], hp["eps"], hp["weight_decay"]))
        for label, fn, note in lib_runs(policy, bsize, hp):
            print("-- %s: %s" % (label, note))
            if fn is None:
                summary.append((name, label, None, note))
                continue
            t0 = time.time()
            try:
                run = fn()
            except Exception as exc:  # report and go on
                msg = "FAILED: %s: %s" % (type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
                print("   " + msg)
                summary.append((name, label, None, msg))
                continue
            rows = compare_case(ref_checks, ref_zp, fp32_checks, run[0], policy)
            print("   %4s  %14s  %14s  %14s  %8s  %8s  %6s   (%.1f s)"
                  % ("t", "|lib-tr|", "|lib-fp32|", "|tr-fp32|", "m codes", "v codes", "v zp", time.time() - t0))
            for r in (r for r in rows if r["t"] in tr.CHECKS):
                print("   %4d  %14.6e  %14.6e  %14.6e  %8s  %8s  %6s"
                      % (r["t"], r["lib_tr"], r["lib_fp32"], r["tr_fp32"], fmt_frac(r["m"]), fmt_frac(r["v"]),
                         fmt_count(r["vzp"])))
            print("   " + all_steps_line(rows))
            summary.append((name, label, [r for r in rows if r["t"] in tr.CHECKS], note))
        print()

    print("=" * 100)
    print("Summary: max |weight difference| over all elements; code columns = fraction of moment codes that")
    print("differ from the transcription's (fp32: the library kept float32 moments). 'final' = step %d,"
          % tr.STEPS)
    print("'max' = largest over the check steps %s. vzp = number of v codes that differ only because"
          % tr.CHECKS)
    print("of the transcription's zero-point rule (included in v).")
    head = "%-44s %-28s | %9s %9s %9s %6s %6s %4s | %9s %9s %9s %6s %6s %4s" % (
        "case", "run", "lib-tr", "lib-fp32", "tr-fp32", "m", "v", "vzp",
        "lib-tr", "lib-fp32", "tr-fp32", "m", "v", "vzp")
    print("%-44s %-28s | %-50s | %-50s" % ("", "", "final", "max over check steps"))
    print(head)
    for name, label, rows, note in summary:
        if rows is None:
            print("%-44s %-28s | %s" % (name, label, note))
            continue
        f = rows[-1]

        def mx(key):
            vals = [r[key] for r in rows]
            return None if any(v is None for v in vals) else max(vals)

        print("%-44s %-28s | %9.3e %9.3e %9.3e %6s %6s %4s | %9.3e %9.3e %9.3e %6s %6s %4s" % (
            name, label, f["lib_tr"], f["lib_fp32"], f["tr_fp32"], fmt_frac(f["m"]), fmt_frac(f["v"]),
            fmt_count(f["vzp"]), mx("lib_tr"), mx("lib_fp32"), mx("tr_fp32"), fmt_frac(mx("m")),
            fmt_frac(mx("v")), fmt_count(mx("vzp"))))
    print()

    print("Quantizer alone on the codec blocks of adamw_blockwise.py (transcription block 16; torchao block 16,")
    print("short blocks zero-padded; bnb's CPU quantizer with block 256, i.e. one partial block):")
    for line in codec_block_report():
        print(line)
    print()
    print("Quantizer alone on the synthetic gradients of all %d steps (g: signed map / e4m3; g*g: unsigned"
          % tr.STEPS)
    print("map / e4m3), quantized per parameter:")
    for line in gradient_quantizer_report():
        print(line)
    print()
    print("total %.1f s" % (time.time() - t_start))


if __name__ == "__main__":
    assert not sys.argv[1:], "usage: adamw_8bit_anchors.py (no arguments)"
    main()
