"""The synthetic parameters and gradients shared by the optimizer reference
generators (optimizers.py, adafactor.py, adam_mini.py, ema.py) and by the
C++ tests that replay them (tests/support/synthetic.hpp): a splitmix64
finalizer turned into float32 values in [-1, 1) with exactly 24 bits."""

import functools

import numpy as np

MASK = 2 ** 64 - 1

_GENERATOR = """\
MASK = 2**64 - 1
def mix(a):  # splitmix64 finalizer on a 64-bit integer a
    z = (a + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)
def unit(a):  # float32 in [-1, 1), exactly 24 bits
    return np.float32((mix(a) >> 40) * 2.0**-23 - 1.0)
initial weight of parameter k, element i:  np.float32(0.5) * unit(1000003 * (k + 1) + i)
gradient at step t (1-based), parameter k, element i:
    grad_scale * unit(((t * 7919 + k) * 1000003 + i + 0x5151) & MASK)   (float32 multiply)
Parameters: k = %s with shapes %s; i = flattened row-major index."""


def generator_text(shapes):
    """The description of the generator written into each data file."""
    ks = ", ".join(str(k) for k in range(len(shapes)))
    dims = ", ".join("[" + ",".join(str(d) for d in s) + "]" for s in shapes)
    return _GENERATOR % (ks, dims)


def mix(a):
    z = (a + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def unit(a):
    return np.float32((mix(a) >> 40) * 2.0 ** -23 - 1.0)


def initial_weights(shapes):
    """The initial float32 weights of every parameter (flattened)."""
    out = []
    for k, shape in enumerate(shapes):
        n = int(np.prod(shape))
        out.append(np.array([np.float32(0.5) * unit(1000003 * (k + 1) + i) for i in range(n)], dtype=np.float32))
    return out


@functools.lru_cache(maxsize=None)
def _gradients(t, grad_scale, shapes):
    gs = np.float32(grad_scale)
    out = []
    for k, shape in enumerate(shapes):
        n = int(np.prod(shape))
        out.append(np.array([gs * unit(((t * 7919 + k) * 1000003 + i + 0x5151) & MASK) for i in range(n)],
                            dtype=np.float32))
    return out


def gradients(t, grad_scale, shapes):
    """The float32 gradients of step t (1-based) of every parameter (flattened), fresh copies."""
    return [g.copy() for g in _gradients(t, grad_scale, tuple(tuple(s) for s in shapes))]
