"""Known answers of the SplitMix64 generator policy (splitmix_generator).

Writes tests/data/splitmix_reference.txt.  Run from anywhere:

    /usr/bin/python3 scripts/reference/splitmix.py

SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014) is implemented here from its published definition,
in Python integers reduced mod 2^64:

    mix64(z):     z = (z ^ z >> 30) * 0xbf58476d1ce4e5b9
                  z = (z ^ z >> 27) * 0x94d049bb133111eb
                  return z ^ z >> 31
    mix_gamma(z): z = (z ^ z >> 33) * 0xff51afd7ed558ccd
                  z = (z ^ z >> 33) * 0xc4ceb9fe1a85ec53
                  z = (z ^ z >> 33) | 1
                  flip every other bit (xor 0xaaaaaaaaaaaaaaaa) when
                  z ^ (z >> 1) has fewer than 24 one bits

mixprec keys it on (seed, stream) as the stream-th split of a generator
started at `seed` with the golden gamma 0x9e3779b97f4a7c15, i.e.

    base  = seed + (2 * stream + 1) * golden
    state = mix64(base), gamma = mix_gamma(base + golden)

and call c of the stream is the split's c-th output,
mix64(state + (c + 1) * gamma).  That is what Java's
java.util.SplittableRandom computes: new SplittableRandom(seed), `stream`
calls of split(), then split() once more and c + 1 calls of nextLong() on
the result.  When a JDK is installed (javac and java on PATH), the script
compiles SplitMixJava.java next to it into a temporary directory, runs it on
every case whose stream and call are small enough to iterate, and stops if
any value differs; the file records whether that check ran.

Records per case: `seed`, `stream`, `key <state> <gamma>` and
`call <c> <64-bit output>` lines, all in hexadecimal.  The C++ test
(tests/cast/test_splitmix.cpp) checks splitmix_generator::key, ::call and
::calls against them, and the draw layout (stochastic_draw) of the outputs'
16- and 32-bit slices.
"""

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _refio  # noqa: E402

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def mix_gamma(z):
    z = ((z ^ (z >> 33)) * 0xFF51AFD7ED558CCD) & M64
    z = ((z ^ (z >> 33)) * 0xC4CEB9FE1A85EC53) & M64
    z = (z ^ (z >> 33)) | 1
    if bin(z ^ (z >> 1)).count("1") < 24:
        z ^= 0xAAAAAAAAAAAAAAAA
    return z


def key(seed, stream):
    base = (seed + (2 * stream + 1) * GOLDEN) & M64
    return mix64(base), mix_gamma((base + GOLDEN) & M64)


def call(k, c):
    state, gamma = k
    return mix64((state + (c + 1) * gamma) & M64)


SEEDS = [0, 1, 7, 17, 0x6D69787072656300, 0x123456789ABCDEF0, M64]
STREAMS = [0, 1, 2, 3, 50, 1 << 32, 1 << 40, (1 << 63) - 1, M64]
CALLS = [0, 1, 2, 3, 4, 5, 63, 64, 1000, (1 << 32) - 1, 1 << 32, (1 << 32) + 1, 1 << 40, M64 - 1, M64]
# Java iterates split() and nextLong(): only these fit.
JAVA_MAX_STREAM = 100
JAVA_MAX_CALL = 5000


def java_check(cases):
    """Runs SplitMixJava on the iterable cases; returns (checked, message)."""
    javac, java = shutil.which("javac"), shutil.which("java")
    if javac is None or java is None:
        return 0, "not run (no JDK on PATH)"
    here = os.path.dirname(os.path.abspath(__file__))
    queries = [(s, t, c) for (s, t, calls) in cases if t <= JAVA_MAX_STREAM for c in calls if c <= JAVA_MAX_CALL]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([javac, "-d", tmp, os.path.join(here, "SplitMixJava.java")], check=True)
        lines = "".join("%d %d %d\n" % (s - (1 << 64) if s >= 1 << 63 else s, t, c) for s, t, c in queries)
        out = subprocess.run([java, "-cp", tmp, "SplitMixJava"], input=lines, capture_output=True, text=True,
                             check=True).stdout.split()
        version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    assert len(out) == len(queries), (len(out), len(queries))
    for (s, t, c), got in zip(queries, out):
        want = call(key(s, t), c)
        if int(got, 16) != want:
            raise SystemExit("SplitMixJava disagrees: seed %#x stream %d call %d: java %s, python %016x"
                             % (s, t, c, got, want))
    return len(queries), "%d outputs equal to java.util.SplittableRandom's (%s)" % (len(queries), version)


def main():
    cases = [(s, t, CALLS) for s in SEEDS for t in STREAMS]
    checked, message = java_check(cases)
    w = _refio.Writer("splitmix_reference.txt")
    w.comment(__doc__.strip().splitlines()[0])
    w.comment("")
    w.comment("Written by scripts/reference/splitmix.py from SplitMix64's definition (see its docstring):")
    w.comment("  key(seed, stream) = (mix64(b), mix_gamma(b + golden)), b = seed + (2 * stream + 1) * golden")
    w.comment("  call(key, c) = mix64(state + (c + 1) * gamma)   (mod 2^64, golden = 0x9e3779b97f4a7c15)")
    w.comment("Cross-check with the JDK: " + message + ".")
    w.comment("Records: seed <hex>, stream <hex>, key <state hex> <gamma hex>, call <c hex> <output hex>.")
    for s, t, calls in cases:
        w.begin("seed_%x_stream_%x" % (s, t))
        k = key(s, t)
        w.kv("seed", "%x" % s)
        w.kv("stream", "%x" % t)
        w.kv("key", "%016x" % k[0], "%016x" % k[1])
        for c in calls:
            w.kv("call", "%x" % c, "%016x" % call(k, c))
        w.end()
    w.write()
    if checked == 0:
        print("warning: the JDK cross-check did not run", file=sys.stderr)


if __name__ == "__main__":
    main()
