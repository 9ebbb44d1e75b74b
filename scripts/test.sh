#!/usr/bin/env bash
# The README's test command: installs doctest if missing, then configures,
# builds and runs every test on the host backend (cmake --workflow --preset host).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
cmake --workflow --preset host
