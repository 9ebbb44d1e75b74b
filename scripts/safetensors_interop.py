"""Checks mixprec's .safetensors files against Python's safetensors library,
numpy and ml_dtypes, in both directions (run by CTest, label interop).

    python scripts/safetensors_interop.py write DIR   # python.safetensors for mixprec to read
    python scripts/safetensors_interop.py check DIR   # reads mixprec_<DTYPE>.safetensors
    python scripts/safetensors_interop.py limit DIR   # header_<N>.safetensors at the header-length limit

Every tensor's values follow one formula (VALUES below), rounded to the
tensor's dtype by numpy / ml_dtypes (round to nearest even); the C++ side
(tests/tools/safetensors_interop.cpp) computes the same formula and rounds
with mixprec's converters, so agreement checks the file format and the two
libraries' roundings against each other.
"""

import os
import sys

import ml_dtypes
import numpy as np
import safetensors
from safetensors.numpy import load_file, save_file

# safetensors' numpy backend looks the fp8 dtypes up as attributes of the
# numpy module, which has none; ml_dtypes provides them (bfloat16 it finds
# through numpy's dtype registry once ml_dtypes is imported).
for _name in ("float8_e4m3fn", "float8_e5m2"):
    if not hasattr(np, _name):
        setattr(np, _name, getattr(ml_dtypes, _name))

# name, shape, parameter index k
TENSORS = [("layer.weight", (3, 5), 0), ("layer.bias", (5,), 1), ("block.scale", (2, 3, 4), 2),
           ("empty", (0, 3), 3), ("scalar", (1,), 4)]
DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
          "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2}
VALUES = "value(k, i) = ((i * 7919 + k * 104729) % 2001 - 1000) / 64  (float64, then rounded to the dtype)"


def values(k, shape):
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.int64)
    return (((i * 7919 + k * 104729) % 2001 - 1000) / 64.0).reshape(shape)


def write(directory):
    # One tensor per dtype (mixprec reads each into the arena of its test).
    out = {}
    for (name, shape, k), (dtype, np_type) in zip(TENSORS, DTYPES.items()):
        out[name] = values(k, shape).astype(np_type)
    path = os.path.join(directory, "python.safetensors")
    save_file(out, path, metadata={"producer": "python", "values": VALUES})
    print("wrote", path, {n: str(v.dtype) for n, v in out.items()})


def check(directory):
    failures = 0
    for dtype, np_type in DTYPES.items():
        path = os.path.join(directory, "mixprec_%s.safetensors" % dtype)
        loaded = load_file(path)
        if sorted(loaded) != sorted(n for n, _, _ in TENSORS):
            print("FAIL %s: tensors %s" % (path, sorted(loaded)))
            failures += 1
            continue
        for name, shape, k in TENSORS:
            got = loaded[name]
            want = values(k, shape).astype(np_type)
            if got.dtype != np.dtype(np_type) or got.shape != shape:
                print("FAIL %s %s: dtype %s shape %s, expected %s %s" % (path, name, got.dtype, got.shape,
                                                                       np.dtype(np_type), shape))
                failures += 1
            elif got.tobytes() != want.tobytes():
                bad = np.flatnonzero(got.view(np.uint8) != want.view(np.uint8))
                print("FAIL %s %s: %d bytes differ, first at %d" % (path, name, len(bad), bad[0]))
                failures += 1
        print("checked", path)
    if failures:
        sys.exit(1)
    print("all mixprec files match numpy/ml_dtypes")


# The longest header Python's safetensors reads; mixprec refuses longer ones too.
HEADER_LIMIT = 100_000_000


def limit(directory):
    # Headers of 100,000,000 and 100,000,001 bytes (a valid header padded
    # with spaces): Python's safetensors must read the first and refuse the
    # second; mixprec reads both files next (safetensors_interop limit).
    head = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    failures = 0
    for n in (HEADER_LIMIT, HEADER_LIMIT + 1):
        path = os.path.join(directory, "header_%d.safetensors" % n)
        with open(path, "wb") as f:
            f.write(n.to_bytes(8, "little"))
            f.write(head + b" " * (n - len(head)))
            f.write(np.array([1.5, -2.0], dtype=np.float32).tobytes())
        try:
            got = load_file(path)["w"].tolist()
            outcome = "reads %s" % got
            failures += n > HEADER_LIMIT or got != [1.5, -2.0]
        except Exception as e:  # safetensors_rust.SafetensorError
            outcome = "refuses it: %s" % e
            failures += n <= HEADER_LIMIT
        print("safetensors %s, header of %d bytes: %s" % (safetensors.__version__, n, outcome))
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check", "limit"):
        sys.exit(__doc__)
    {"write": write, "check": check, "limit": limit}[sys.argv[1]](sys.argv[2])
