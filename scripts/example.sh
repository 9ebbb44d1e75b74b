#!/usr/bin/env bash
# The README's main command: builds the examples on the host backend, trains
# the digits MLP under every precision configuration (table on stdout), and
# plots the curves. Arguments are passed to train_digits (e.g. --json).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh example
cmake --workflow --preset example >/dev/null
out=build/example/digits
mkdir -p "$out"
./build/example/examples/train_digits --out "$out" "$@"
if [[ " $* " != *" --json "* && " $* " != *" --no-csv "* ]]; then
  /usr/bin/python3 examples/train_digits/plot.py --dir "$out"
fi
