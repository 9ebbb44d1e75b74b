"""mixprec: a fused mixed-precision optimizer step for PyTorch (and any DLPack framework).

The step itself is mixprec's C++ library (header-only, CUDA and the host's
OpenMP), compiled into one module per backend; tensors cross by DLPack, so
the module links no libtorch and one build serves any torch version.

    import mixprec.torch
    opt = mixprec.torch.Optimizer(model.named_parameters(), "adamw", lr=1e-3,
                                  model_dtype=torch.bfloat16, clip_grad_norm=1.0)
"""

from __future__ import annotations

import importlib

from ._errors import Error
from ._recipes import PRECOMPILED, Recipe

__version__ = "0.1.0"
__all__ = ["Error", "Recipe", "PRECOMPILED", "backend", "__version__"]


def backend(device_type: str):
    """The compiled module for a device type: 'cpu' (the host, OpenMP) or 'cuda'."""
    name = {"cpu": "_host", "cuda": "_cuda"}.get(device_type)
    if name is None:
        raise ValueError(f"mixprec: tensors on {device_type!r} are not supported (cpu or cuda)")
    try:
        return importlib.import_module(f"mixprec.{name}")
    except ImportError as e:
        if name == "_cuda":
            raise ImportError("mixprec: this installation has no CUDA module (it was built without a CUDA "
                              "compiler): reinstall with the CUDA toolkit's nvcc on PATH") from e
        raise
