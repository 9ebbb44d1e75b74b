#!/usr/bin/env bash
# Regenerates every committed test data file: the reference vectors (Python
# scripts with PyTorch, scripts/reference/) and the stochastic-rounding golden
# values (written by the host backend, compared to by CUDA builds).
set -euo pipefail
cd "$(dirname "$0")/.."
for s in loss_scale clipping fp8_scaling optimizers; do /usr/bin/python3 "scripts/reference/$s.py"; done
cmake --preset host >/dev/null
cmake --build --preset host --target make_stochastic_golden
./build/host/tests/make_stochastic_golden cast > tests/data/stochastic_rounding.txt
./build/host/tests/make_stochastic_golden sgd > tests/data/sgd_stochastic_golden.txt
./build/host/tests/make_stochastic_golden adamw > tests/data/adamw_stochastic_golden.txt
