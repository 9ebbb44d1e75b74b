#!/usr/bin/env bash
# The README's main command: builds the examples on the host backend and runs
# the main example. Arguments are passed to the example.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh example
cmake --workflow --preset example >/dev/null
./build/example/examples/formats "$@"
