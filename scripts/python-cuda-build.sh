#!/usr/bin/env bash
# Builds the Python package's CUDA module (_cuda: the precompiled recipes
# under nvcc for sm_80 and sm_90, PTX for newer GPUs) without installing
# it, so CI checks that the CUDA path of the package compiles. On a machine
# with a GPU, `pip install ./python` builds and installs it with the host
# module. Needs build/torch-venv (scripts/install-deps.sh torch).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh torch
py=build/torch-venv/bin/python
start=$(date +%s)
cmake -S python -B build/python-cuda -G Ninja -DCMAKE_MAKE_PROGRAM="$PWD/build/torch-venv/bin/ninja" \
  -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$PWD/$py" -DMIXPREC_PYTHON_CUDA=ON >/dev/null
cmake --build build/python-cuda --target _cuda
echo "python-cuda-build: _cuda built in $(( $(date +%s) - start )) s: $(ls build/python-cuda/_cuda*.so)"
