#!/usr/bin/env bash
# Regenerates every committed test data file: the reference vectors (Python
# scripts with PyTorch, scripts/reference/; splitmix.py's known answers,
# checked against Java's SplittableRandom when a JDK is installed) and the
# stochastic-rounding golden values (written by the host backend, compared to
# by CUDA builds), for the default generator and for Philox.
set -euo pipefail
cd "$(dirname "$0")/.."
for s in loss_scale clipping fp8_scaling optimizers splitmix adamw_blockwise; do /usr/bin/python3 "scripts/reference/$s.py"; done
cmake --preset host >/dev/null
cmake --build --preset host --target make_stochastic_golden
for g in "" philox; do
  suffix=${g:+_$g}
  ./build/host/tests/make_stochastic_golden cast $g > tests/data/stochastic_rounding$suffix.txt
  ./build/host/tests/make_stochastic_golden sgd $g > tests/data/sgd_stochastic_golden$suffix.txt
  ./build/host/tests/make_stochastic_golden adamw $g > tests/data/adamw_stochastic_golden$suffix.txt
done
