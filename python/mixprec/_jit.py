"""Recipes compiled on first use, cached on disk.

The package precompiles a few recipes (mixprec._recipes.PRECOMPILED). Any
other is compiled here, once, into a small shared library that the module
loads with dlopen: the same headers, compiler and flags as the package's
own build (mixprec/_build_info.py), so it runs the same code. Libraries
are cached under $MIXPREC_CACHE_DIR (default ~/.cache/mixprec), keyed by
the recipe, the backend, the compiler, the flags and a digest of the
headers, so a changed header or flag builds anew. Concurrent processes
building the same recipe wait for one another (a lock file).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

from . import _build_info as info
from ._recipes import Recipe

_HERE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    root = os.environ.get("MIXPREC_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "mixprec"


@lru_cache(maxsize=None)
def _headers_digest() -> str:
    h = hashlib.sha256()
    for root in (_HERE / "include", _HERE / "jit"):
        for p in sorted(root.rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(_HERE)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()


def _command(backend: str, source: Path, output: Path) -> list[str]:
    includes = [f"-I{_HERE / 'include'}", f"-I{_HERE / 'jit'}"]
    includes += [f"-I{d}" for d in info.CCCL_DIRS + info.JSON_DIRS]
    defines = ["-DMIXPREC_PYTHON_SAFETENSORS"] if info.SAFETENSORS else []
    if backend == "cuda":
        if not info.CUDA_COMPILER:
            raise RuntimeError("mixprec: this installation was built without a CUDA compiler; cannot build CUDA recipes")
        archs = []
        for a in info.CUDA_ARCHITECTURES.split(";"):
            num = a.split("-")[0]
            archs.append(f"-gencode=arch=compute_{num},code=sm_{num}")
            if not a.endswith("-real"):
                archs.append(f"-gencode=arch=compute_{num},code=compute_{num}")
        return [info.CUDA_COMPILER, "-std=c++17", "-O3", "-shared", "-Xcompiler=-fPIC", "--expt-relaxed-constexpr",
                *archs, *defines, *includes, "-x", "cu",
                str(source), "-o", str(output), f"-L{info.CUDA_LIBRARY_DIR}", "-lcudart"]
    return [info.CXX, "-std=c++17", "-O3", "-shared", "-fPIC", *info.HOST_FLAGS, *info.OPENMP_FLAGS, *defines,
            *includes, str(source), "-o", str(output)]


def library_path(backend: str, recipe: Recipe) -> Path:
    h = hashlib.sha256()
    for part in (recipe.key, backend, " ".join(_command(backend, Path("x"), Path("y"))), _headers_digest()):
        h.update(part.encode())
        h.update(b"\0")
    return cache_dir() / f"{backend}-{recipe.key}-{h.hexdigest()[:16]}.so"


def ensure(module, recipe: Recipe) -> None:
    """Makes `recipe` available in `module` (precompiled, already loaded, cached, or compiled now)."""
    key = recipe.key
    if module.is_available(key):
        return
    backend = module.backend
    path = library_path(backend, recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it
        if not path.exists():
            _compile(backend, recipe, path)
    module.load_recipe(key, str(path))


def _compile(backend: str, recipe: Recipe, path: Path) -> None:
    print(f"mixprec: compiling recipe {recipe.key} for the {backend} backend (first use; about a minute on a "
          f"few cores; cached in {path.parent})", file=sys.stderr, flush=True)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        source = Path(tmp) / ("recipe.cu" if backend == "cuda" else "recipe.cpp")
        source.write_text(recipe.source(export=True))
        out = Path(tmp) / "recipe.so"
        result = subprocess.run(_command(backend, source, out), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"mixprec: compiling recipe {recipe.key} failed:\n{result.stderr[-8000:]}")
        os.replace(out, path)  # atomic: readers see a whole library or none
    print(f"mixprec: recipe {recipe.key} compiled in {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
