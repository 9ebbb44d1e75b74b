#!/usr/bin/env bash
# The README's main command: builds the examples on the host backend, trains
# the digits MLP under every precision configuration (table on stdout), and
# plots the curves. Arguments are passed to train_digits (e.g. --json).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh example
# MIXPREC_EXAMPLE_BUILD_DIR: an existing build tree with the examples (CI
# passes build/host, which scripts/test.sh has built) instead of the
# examples preset's build/example.
build=${MIXPREC_EXAMPLE_BUILD_DIR:-}
if [ -n "$build" ]; then
  cmake --build "$build" --target train_digits >/dev/null
else
  build=build/example
  cmake --workflow --preset example >/dev/null
fi
out=build/example/digits
mkdir -p "$out"
"$build/examples/train_digits" --out "$out" "$@"
if [[ " $* " != *" --json "* && " $* " != *" --no-csv "* ]]; then
  /usr/bin/python3 examples/train_digits/plot.py --dir "$out"
fi
