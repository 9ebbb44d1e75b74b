#!/usr/bin/env bash
# The README's test command: installs doctest if missing, then configures,
# builds and runs every test on the host backend (cmake --workflow --preset host),
# then builds the Python package and runs its tests (scripts/python-test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test python
scripts/check-test-names.sh
cmake --workflow --preset host
# Every discovered test carries a label (its TEST_SUITE).
all=$(ctest --test-dir build/host -N | sed -n 's/^Total Tests: //p')
labelled=$(ctest --test-dir build/host -N -L . | sed -n 's/^Total Tests: //p')
if [ "$all" != "$labelled" ]; then
  echo "test.sh: $((all - labelled)) of $all tests have no label" >&2
  exit 1
fi
# The Python package (python/): its host module and its pytest suite.
scripts/python-test.sh
