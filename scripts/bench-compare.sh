#!/usr/bin/env bash
# Builds the benchmarks and runs mixprec's step and PyTorch's side by side
# (bench/compare.py). Arguments go to compare.py, e.g. --sizes 1e6 1e7.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh bench compare
cmake --preset bench >/dev/null
cmake --build --preset bench
/usr/bin/python3 bench/compare.py "$@"
