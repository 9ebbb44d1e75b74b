#!/usr/bin/env bash
# Builds tests/consumer from another project every way the README offers and
# checks that each build trains to the same bits (the "bits:" lines: hashes
# of the checkpoints of ten AdamW and ten SGD steps):
#   - find_package after cmake --install build/host, with g++ (and with nvcc:
#     built, not run, unless a GPU is present);
#   - add_subdirectory of the source tree;
#   - vendored: include/mixprec copied, compiled with the README's flags only
#     (the CUDA toolkit's include and include/cccl directories, -fopenmp):
#     g++ in GNU mode (contraction on: -ffp-contract=fast), g++ in ISO mode
#     with -ffp-contract=off, and clang++ (its default, -ffp-contract=on)
#     when it is installed; the GNU and clang builds with -Wall -Wextra
#     -Wshadow -Werror, the nvcc build with --Werror=all-warnings.
# Every host build uses -O3 -march=native (the README's speed flags): with
# FMA in the instruction set, so that contraction is possible at all.
# Usage: scripts/consumer-check.sh [--no-cuda]   (after cmake --preset host)
set -euo pipefail
cd "$(dirname "$0")/.."
cuda=1
[ "${1:-}" = "--no-cuda" ] && cuda=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -f build/host/CMakeCache.txt ] || cmake --preset host >/dev/null

run() {  # run <label> <exe>: its bits lines, labelled, into $work/bits
  local label=$1 exe=$2
  (cd "$work" && "$exe") > "$work/out_$label"
  grep " bits: " "$work/out_$label" | sed "s/^/$label: /" >> "$work/bits"
  cat "$work/out_$label"
}

# The builds two at a time (each is one translation unit on one core),
# then the runs.
both() {  # both <cmd1> -- <cmd2>: runs the two commands at once, fails if either fails
  local a=() b=() seen=0
  for x in "$@"; do
    if [ "$x" = "--" ] && [ $seen = 0 ]; then seen=1; continue; fi
    if [ $seen = 0 ]; then a+=("$x"); else b+=("$x"); fi
  done
  "${a[@]}" & local pa=$!
  if [ ${#b[@]} -gt 0 ]; then "${b[@]}" & local pb=$!; fi
  local ok=0
  wait "$pa" || ok=1
  if [ ${#b[@]} -gt 0 ]; then wait "$pb" || ok=1; fi
  return $ok
}
cmake --install build/host --prefix "$work/prefix" >/dev/null
release=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-march=native)
cmake -S tests/consumer -B "$work/gxx" -DCMAKE_PREFIX_PATH="$work/prefix" "${release[@]}" >/dev/null
cmake -S tests/consumer -B "$work/subdir" -DMIXPREC_SOURCE_DIR="$PWD" "${release[@]}" >/dev/null
both cmake --build "$work/gxx" -- cmake --build "$work/subdir" >/dev/null

mkdir -p "$work/vendored/include"
cp -r include/mixprec "$work/vendored/include/"
cuda_root=$(dirname "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")
flags=(-O3 -march=native -I"$work/vendored/include" -I"$cuda_root/include" -I"$cuda_root/include/cccl")
# Users' warning flags: the library's headers (and its detection of the
# consumer's own component) must add no warning to a -Werror build. Clang
# without -Wpedantic: the toolkit's cuda_fp16.h, included with -I as here,
# trips its GNU-extension warnings.
warn=(-Wall -Wextra -Wshadow -Werror)
both g++ "${flags[@]}" "${warn[@]}" -Wpedantic -fopenmp tests/consumer/main.cpp -o "$work/vendored_gnu" -- \
  g++ "${flags[@]}" -std=c++17 -ffp-contract=off -fopenmp tests/consumer/main.cpp -o "$work/vendored_iso"

clang=()
if command -v clang++ >/dev/null; then
  omp=-fopenmp
  printf 'int main() { return 0; }\n' > "$work/omp.cpp"
  clang++ -fopenmp "$work/omp.cpp" -o "$work/omp" 2>/dev/null || omp=""  # no OpenMP runtime: the CPP system
  clang=(clang++ "${flags[@]}" "${warn[@]}" -std=c++17 $omp tests/consumer/main.cpp -o "$work/vendored_clang")
fi
nvcc_build=()
if [ "$cuda" = 1 ] && command -v nvcc >/dev/null; then
  cmake -S tests/consumer -B "$work/nvcc" -DCMAKE_PREFIX_PATH="$work/prefix" -DCONSUMER_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
  nvcc_build=(cmake --build "$work/nvcc")
fi
if [ ${#clang[@]} -gt 0 ] && [ ${#nvcc_build[@]} -gt 0 ]; then
  both "${clang[@]}" -- "${nvcc_build[@]}" >/dev/null
elif [ ${#clang[@]} -gt 0 ]; then
  "${clang[@]}"
elif [ ${#nvcc_build[@]} -gt 0 ]; then
  "${nvcc_build[@]}" >/dev/null
fi

echo "--- find_package, g++"
run find_package "$work/gxx/consumer"
echo "--- add_subdirectory"
run add_subdirectory "$work/subdir/consumer"
echo "--- vendored headers, the README's flags"
run "vendored g++ (GNU mode)" "$work/vendored_gnu"
run "vendored g++ -std=c++17 -ffp-contract=off" "$work/vendored_iso"
if [ ${#clang[@]} -gt 0 ]; then
  run "vendored clang++ -std=c++17 ${omp:-(no OpenMP)}" "$work/vendored_clang"
else
  echo "(no clang++: its vendored build is skipped)"
fi
if [ ${#nvcc_build[@]} -gt 0 ]; then
  echo "--- find_package, nvcc: built"
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    (cd "$work" && "$work/nvcc/consumer")  # GPU bits differ from the host's (other reduction order): not compared
  fi
fi

echo "--- bits"
cat "$work/bits"
for what in adamw sgd; do
  distinct=$(grep ": $what bits: " "$work/bits" | sed 's/.*bits: //' | sort -u | wc -l)
  if [ "$distinct" != 1 ]; then
    echo "consumer-check: FAILED: the builds give $distinct different $what results" >&2
    exit 1
  fi
done
echo "consumer-check: every build gives the same bits"
