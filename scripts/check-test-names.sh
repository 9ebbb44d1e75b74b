#!/usr/bin/env bash
# Fails when a doctest case name contains a character that doctest's CTest
# discovery mishandles (',' ';' '[' ']'): such tests lose their labels or
# are split into several. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=$(grep -rn -E 'TEST_CASE(_TEMPLATE)?\("[^"]*[],;[][^"]*"' tests || true)
if [ -n "$bad" ]; then
  echo "check-test-names: test names must not contain , ; [ ]:" >&2
  echo "$bad" >&2
  exit 1
fi
