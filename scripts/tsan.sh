#!/usr/bin/env bash
# Runs the thread-safety test (tests/train/test_threads.cpp) under
# ThreadSanitizer. Thrust's sequential CPP system: GCC's OpenMP runtime is
# not instrumented, so OpenMP teams would be reported falsely.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
out=build/tsan
mkdir -p "$out"
cuda=$(dirname "$(dirname "$(command -v nvcc)")")
g++ -std=c++17 -O1 -g -fsanitize=thread -DTHRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_CPP -Iinclude \
  -isystem "$cuda/include/cccl" -isystem "$cuda/include" tests/main.cpp tests/train/test_threads.cpp \
  -o "$out/test_threads"
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" "$out/test_threads"
