#!/usr/bin/env bash
# Builds the file-reader fuzz targets (checkpoints, .safetensors) with clang
# (libFuzzer, ASan, UBSan; Thrust's sequential CPP system) and runs each for
# a bounded time, both at once (one core each).
# Usage: scripts/fuzz.sh [seconds per target]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
scripts/install-deps.sh fuzz
out=build/fuzz
cuda=$(dirname "$(dirname "$(command -v nvcc)")")
pids=()
builds=()
for target in checkpoint safetensors; do  # both builds at once (one core each)
  mkdir -p "$out/corpus_$target"
  clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -DTHRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_CPP -Iinclude -isystem "$cuda/include/cccl" -isystem "$cuda/include" \
    "tests/fuzz/fuzz_$target.cpp" -o "$out/fuzz_$target" &
  builds+=($!)
done
for b in "${builds[@]}"; do wait "$b"; done
for target in checkpoint safetensors; do
  MIXPREC_FUZZ_SEED_DIR="$out/corpus_$target" "$out/fuzz_$target" -max_total_time="$seconds" -print_final_stats=1 \
    "$out/corpus_$target" >"$out/fuzz_$target.log" 2>&1 &
  pids+=($!)
done
status=0
for k in 0 1; do
  if ! wait "${pids[$k]}"; then status=1; fi
done
for target in checkpoint safetensors; do
  echo "== fuzz_$target"
  grep -E "^stat::|Done|ERROR|SUMMARY" "$out/fuzz_$target.log" || tail -n 20 "$out/fuzz_$target.log"
done
exit $status
