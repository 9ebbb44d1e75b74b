#!/usr/bin/env bash
# Builds the checkpoint-reader fuzz target with clang (libFuzzer, ASan, UBSan;
# Thrust's sequential CPP system) and runs it for a bounded time.
# Usage: scripts/fuzz.sh [seconds]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
scripts/install-deps.sh fuzz
out=build/fuzz
mkdir -p "$out/corpus"
cuda=$(dirname "$(dirname "$(command -v nvcc)")")
clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -DTHRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_CPP -Iinclude -isystem "$cuda/include/cccl" -isystem "$cuda/include" \
  tests/fuzz/fuzz_checkpoint.cpp -o "$out/fuzz_checkpoint"
MIXPREC_FUZZ_SEED_DIR="$out/corpus" "$out/fuzz_checkpoint" -max_total_time="$seconds" -print_final_stats=1 "$out/corpus"
