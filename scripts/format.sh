#!/usr/bin/env bash
# Formats every C++ file of the project with clang-format (.clang-format at
# the root), in place; with --check, lists the files that would change and
# fails if there are any.
#   scripts/format.sh [--check]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh format
fmt=$(command -v clang-format || command -v clang-format-14)
mapfile -t files < <(git ls-files '*.hpp' '*.cpp' '*.h' '*.cu')
if [ "${1:-}" = "--check" ]; then
  bad=0
  for f in "${files[@]}"; do
    if ! "$fmt" "$f" | cmp -s - "$f"; then
      echo "$f"
      bad=1
    fi
  done
  exit $bad
fi
"$fmt" -i "${files[@]}"
