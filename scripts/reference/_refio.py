"""Shared helpers for the reference-vector generators in scripts/reference/.

Every generator writes a plain-text file under tests/data/ in the common
record format:

    # comment
    case <name>
    <key> <value> [<value> ...]
    end

float32 values are printed with '%.9g' (round-trips float32 exactly),
float64 values with '%.17g'; the specials are written inf, -inf and nan.
"""

import math
import os

import numpy as np

REPO_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DATA_DIR = os.path.join(REPO_ROOT, "tests", "data")


def _special(x):
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return None


def f32(x):
    """Format a value as float32 ('%.9g' of the float32 rounding of x)."""
    v = float(np.float32(x))
    s = _special(v)
    return s if s is not None else "%.9g" % v


def f64(x):
    """Format a value as float64 ('%.17g')."""
    v = float(x)
    s = _special(v)
    return s if s is not None else "%.17g" % v


def as_f32(x):
    """The float32 rounding of x, returned as a Python float (a double)."""
    return float(np.float32(x))


class Writer:
    """Accumulates lines and writes them with '\\n' line endings."""

    def __init__(self, filename):
        self.path = os.path.join(DATA_DIR, filename)
        self.lines = []
        self.ncases = 0

    def comment(self, text=""):
        for line in text.splitlines() or [""]:
            self.lines.append(("# " + line).rstrip())

    def begin(self, name):
        assert " " not in name, name
        self.lines.append("case " + name)
        self.ncases += 1

    def kv(self, key, *values):
        self.lines.append(" ".join([key] + [str(v) for v in values]))

    def end(self):
        self.lines.append("end")

    def write(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        data = "\n".join(self.lines) + "\n"
        with open(self.path, "w", encoding="ascii", newline="\n") as fh:
            fh.write(data)
        rel = os.path.relpath(self.path, REPO_ROOT)
        print("wrote %s: %d cases, %d bytes" % (rel, self.ncases, len(data)))


def torch_capability(torch):
    """The CPU kernel capability torch dispatches to (from torch.__config__)."""
    for line in torch.__config__.show().splitlines():
        if "CPU capability usage:" in line:
            return line.split(":", 1)[1].strip()
    return "unknown"
