#!/usr/bin/env python3
"""Reads the sm_90 machine code of an nvcc-built executable and prints, for
the step's hot kernels (the update pass, the statistics pass, the tile
reductions and the combine of tile partials), the width of every global
load and store, the registers, and the local-memory (spill) bytes. Exits 1
when no update pass has a 128-bit global load (LDG.E.128): the update
pass is meant to read its streams 16 bytes at a time; when an update pass
of a chain with block-quantized (8-bit) state lacks 128-bit loads or
stores (its warp lanes move their elements 16 bytes at a time); and when any of
those kernels contains a trap (BPT.TRAP): nvcc compiles a path it proves
undefined to one, and the kernel would abort on the GPU. Update passes
without 128-bit loads are listed by name (those of chains whose tiles have
positions, Adafactor's say, run element by element).

With --pinned FMAD_DEFAULT FMAD_OFF (two objects of tests/core/
pinned_probe.cpp, built by the CUDA preset with nvcc's default -fmad=true
and with -fmad=false): checks that the consumer's kernel
(consumer_multiply_add_kernel, a * b + c) uses FFMA only in the first, and
that every other kernel, the library's, has the same floating-point
arithmetic in both (per kernel, the count of each multiply, add and fused
multiply-add opcode: FFMA, FMUL, FADD, DFMA, DMUL, DADD and the half2
forms; registers and branch targets may differ): the library's device
arithmetic does not depend on the consumer's -fmad. Exits 1 otherwise,
naming the kernels and their counts. Double-precision counts outside the
update passes are reported, not failed: CUDA's own cos and pow (cosine
schedules, general power sums) compile with the consumer's -fmad.

Needs cuobjdump and c++filt: cuobjdump from the CUDA toolkit, or from PyPI
(pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm: cuobjdump needs
nvdisasm for -sass; --cuobjdump names its path; scripts/install-deps.sh
sass makes build/sass-venv with both).

Usage: scripts/sass-check.py [EXE] [--cuobjdump PATH] [--match TEXT]
       scripts/sass-check.py --pinned FMAD_DEFAULT FMAD_OFF [--cuobjdump PATH]
  EXE      default build/cuda/bench/bench_step (cmake --workflow --preset cuda-build)
  --match  report only kernels whose demangled name contains TEXT
  --pinned the two objects of tests/core/pinned_probe.cpp, e.g.
           build/cuda/tests/CMakeFiles/pinned_probe_fmad_{default,off}.dir/core/pinned_probe.cpp.o
"""
import argparse
import collections
import os
import re
import shutil
import subprocess
import sys

KINDS = [("update_kernel", "update pass"), ("measure_kernel", "statistics pass"),
         ("reduce_tiles_kernel", "tile reduction"), ("combine_kernel", "combine partials")]
ACCESS = re.compile(r"\b(LDG|STG)((?:\.[A-Z0-9]+)*)\b")


def find_cuobjdump(given):
    if given:
        return given
    for name in ("cuobjdump",):
        path = shutil.which(name)
        if path:
            return path
    try:  # the PyPI wheel nvidia-cuda-cuobjdump
        import nvidia  # noqa: F401
        for base in nvidia.__path__:
            for sub in ("cu13", "cuda_cuobjdump", "cu12"):
                path = os.path.join(base, sub, "bin", "cuobjdump")
                if os.path.exists(path):
                    return path
    except ImportError:
        pass
    sys.exit("sass-check: cuobjdump not found (CUDA toolkit, or pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm)")


def width(suffix):
    """Bits moved by one LDG/STG with these modifiers."""
    parts = suffix.split(".")
    for bits in ("128", "64"):
        if bits in parts:
            return int(bits)
    for p in parts:
        if p in ("U8", "S8"):
            return 8
        if p in ("U16", "S16"):
            return 16
    return 32


def demangle(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def short(name):
    """The kernel's body and component list, without namespaces and padding."""
    name = re.sub(r"\b(mixprec|detail|thrust|cub)::", "", name)
    name = name.split("(")[0] if name.startswith("void ") else name
    name = name.replace("void ", "", 1)
    return name[:150] + ("..." if len(name) > 150 else "")


INSTRUCTION = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;")


def functions(tool, path):
    """{mangled kernel name: [instruction text, ...]} of an object or executable."""
    sass = subprocess.run([tool, "-sass", path], capture_output=True, text=True, check=True).stdout
    out, current = {}, None
    for line in sass.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            current = m.group(1)
            out[current] = []
            continue
        m = INSTRUCTION.search(line)
        if current and m:
            out[current].append(re.sub(r"\s+", " ", m.group(1)))
    return out


ARITHMETIC = ("FFMA", "FMUL", "FADD", "DFMA", "DMUL", "DADD", "HFMA2", "HMUL2", "HADD2")


def arithmetic(code):
    """Counts of the multiply / add / fused multiply-add opcodes of a kernel."""
    counts = collections.Counter()
    for i in code:
        op = re.sub(r"^@!?U?P\w+ ", "", i).split(" ")[0].split(".")[0]
        if op in ARITHMETIC:
            counts[op] += 1
    return counts


def pinned(tool, fmad_default, fmad_off):
    """The library's kernels do the same arithmetic under -fmad=true and -fmad=false."""
    a, b = functions(tool, fmad_default), functions(tool, fmad_off)
    consumer = [n for n in a if "consumer_multiply_add_kernel" in n]
    if not consumer:
        print("sass-check: FAILED: no consumer_multiply_add_kernel in %s" % fmad_default)
        return 1
    status = 0
    name = consumer[0]
    fused, unfused = arithmetic(a[name])["FFMA"], arithmetic(b.get(name, []))["FFMA"]
    print("consumer_multiply_add_kernel: %d FFMA with nvcc's default -fmad, %d with -fmad=false" % (fused, unfused))
    if fused == 0 or unfused != 0:
        print("sass-check: FAILED: the consumer's a * b + c should be an FFMA under -fmad=true only")
        status = 1
    library = sorted(n for n in a if n != name)
    # CUDA's own double-precision math (cos in cosine_decay's decide kernel,
    # pow in the measuring passes' general power sums) is compiled into the
    # kernels with the consumer's -fmad: its DFMA/DADD counts may differ and
    # are reported, not failed. The library's float arithmetic, and every
    # operation of the update passes (the element rules), must not differ.
    single = ("FFMA", "FMUL", "FADD", "HFMA2", "HMUL2", "HADD2")

    def strict(n):
        return "update_kernel" in n or "update_body" in n

    def same(n):
        x, y = arithmetic(a[n]), arithmetic(b.get(n, []))
        if strict(n):
            return x == y
        return all(x[k] == y[k] for k in single)
    differ = [n for n in library if not same(n)]
    math_only = [n for n in library if same(n) and arithmetic(a[n]) != arithmetic(b.get(n, []))]
    if math_only:
        names = dict(zip(math_only, demangle(math_only)))
        print("double-precision counts that differ outside the update passes (reported, not failed: CUDA's own "
              "cos and pow compile with the consumer's -fmad, and nvcc may schedule double code differently):")
        for n in math_only:
            print("  %s\n    -fmad=true: %s  -fmad=false: %s" % (short(names[n]), dict(arithmetic(a[n])),
                                                               dict(arithmetic(b.get(n, [])))))
    total = collections.Counter()
    for n in library:
        total += arithmetic(a[n])
    print("library: %d kernels, arithmetic %s; %d kernels differ under -fmad=false"
          % (len(library), ", ".join("%s %d" % (k, total[k]) for k in ARITHMETIC if total[k]), len(differ)))
    if not library:
        print("sass-check: FAILED: no library kernels in %s" % fmad_default)
        status = 1
    if differ:
        names = dict(zip(differ, demangle(differ)))
        for n in differ:
            print("  %s\n    -fmad=true: %s\n    -fmad=false: %s" % (short(names[n]), dict(arithmetic(a[n])),
                                                                   dict(arithmetic(b.get(n, [])))))
        print("sass-check: FAILED: the library's device arithmetic depends on the consumer's -fmad")
        status = 1
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("exe", nargs="?", default="build/cuda/bench/bench_step")
    ap.add_argument("--cuobjdump")
    ap.add_argument("--match", default="")
    ap.add_argument("--pinned", nargs=2, metavar=("FMAD_DEFAULT", "FMAD_OFF"))
    args = ap.parse_args()
    if args.pinned:
        for path in args.pinned:
            if not os.path.exists(path):
                sys.exit("sass-check: %s not found (build it: cmake --workflow --preset cuda-build)" % path)
        return pinned(find_cuobjdump(args.cuobjdump), *args.pinned)
    if not os.path.exists(args.exe):
        sys.exit("sass-check: %s not found (build it: cmake --workflow --preset cuda-build)" % args.exe)
    tool = find_cuobjdump(args.cuobjdump)

    sass = subprocess.run([tool, "-sass", args.exe], capture_output=True, text=True, check=True).stdout
    usage = subprocess.run([tool, "-res-usage", args.exe], capture_output=True, text=True, check=True).stdout

    # Global loads and stores per kernel, by width.
    access = collections.defaultdict(collections.Counter)
    current = None
    for line in sass.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            current = m.group(1)
            continue
        if current:
            for op, suffix in ACCESS.findall(line):
                access[current]["%s%d" % (op[0], width(suffix))] += 1
            if "BPT.TRAP" in line:
                access[current]["trap"] += 1
    resources = {}
    for m in re.finditer(r"Function (\S+):\s*\n\s*REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", usage):
        resources[m.group(1)] = (int(m.group(2)), int(m.group(3)), int(m.group(5)))

    hot = [n for n in access if any(k in n for k, _ in KINDS)]
    if not hot:
        sys.exit("sass-check: no mixprec pass kernels in %s" % args.exe)
    names = dict(zip(hot, demangle(hot)))
    rows = []
    for mangled in hot:
        kind = next(label for k, label in KINDS if k in mangled)
        if args.match and args.match not in names[mangled]:
            continue
        regs, stack, local = resources.get(mangled, (-1, -1, -1))
        rows.append((kind, short(names[mangled]), regs, stack, local, access[mangled], names[mangled]))

    widths = ["8", "16", "32", "64", "128"]
    print("%-17s %4s %6s %6s  %-29s %-29s  kernel" % ("pass", "regs", "stack", "local", "global loads 8/16/32/64/128",
                                                    "global stores 8/16/32/64/128"))
    for kind, name, regs, stack, local, c, _ in sorted(rows):
        loads = "/".join(str(c["L" + w]) for w in widths)
        stores = "/".join(str(c["S" + w]) for w in widths)
        print("%-17s %4d %6d %6d  %-29s %-29s  %s" % (kind, regs, stack, local, loads, stores, name))

    updates = [r for r in rows if r[0] == "update pass"]
    spills = [r for r in rows if r[4] > 0]
    wide = [r for r in updates if r[5]["L128"] > 0]
    print("\n%d kernels; %d update passes, %d of them with 128-bit global loads; %d kernels with local memory (spills)"
          % (len(rows), len(updates), len(wide), len(spills)))
    traps = [r for r in rows if r[5]["trap"] > 0]
    narrow = [r for r in updates if r[5]["L128"] == 0]
    if narrow:
        print("update passes without 128-bit loads:")
        for r in narrow:
            print("  " + r[6])
    if traps:
        # nvcc compiles a path it proves undefined (a run-time read of a
        # host constexpr table in device code, say) to a trap.
        print("sass-check: FAILED: %d kernels trap (undefined behaviour compiled away):" % len(traps))
        for r in traps:
            print("  " + r[6])
        return 1
    if updates and not wide:
        print("sass-check: FAILED: no update pass loads 16 bytes at a time (no LDG.E.128)")
        return 1
    # Chains with block-quantized (8-bit) state run a warp per block, each
    # thread a lane of consecutive elements moved in pieces of up to 16
    # bytes (train/coded_blocks.hpp): their update passes must load and
    # store 16 bytes at a time too.
    coded = [r for r in updates if "block_quantized" in r[6]]
    coded_narrow = [r for r in coded if r[5]["L128"] == 0 or r[5]["S128"] == 0]
    if coded:
        print("%d update passes of chains with block-quantized state, %d of them with 128-bit loads and stores"
              % (len(coded), len(coded) - len(coded_narrow)))
    if coded_narrow:
        print("sass-check: FAILED: update passes of block-quantized chains without 128-bit loads or stores:")
        for r in coded_narrow:
            print("  " + r[6])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
