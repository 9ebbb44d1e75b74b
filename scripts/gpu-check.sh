#!/usr/bin/env bash
# One-shot check on a machine with an NVIDIA GPU and no network access:
# builds the tests and benchmarks with nvcc for the GPU present (against the
# real doctest and Google Benchmark that scripts/carry-deps.sh unpacked into
# .deps/root, or the system's), runs the whole test suite on the GPU (the
# exhaustive conversion checks included), runs compute-sanitizer memcheck
# on the three executables whose kernels matter, checks that a whole step
# is captured and replayed in a CUDA graph, runs the step benchmarks at
# 2.5e8 parameters and, with --pytorch, PyTorch's fused AdamW side by side.
# A summary line is printed and appended to LOGDIR/summary.txt after each
# stage, so a run cut short still says how far it got.
#
# Usage: scripts/carry-deps.sh            (here, with network access)
#        scripts/gpu-check.sh LOGDIR [--pytorch]   (on the GPU machine)
set -uo pipefail
cd "$(dirname "$0")/.."
logs=${1:?usage: scripts/gpu-check.sh LOGDIR [--pytorch]}
pytorch=0
[ "${2:-}" = "--pytorch" ] && pytorch=1
mkdir -p "$logs"
logs=$(cd "$logs" && pwd)
: >"$logs/summary.txt"
start=$(date +%s)
note() {
  printf '%-34s %s\n' "$1" "$2" >>"$logs/summary.txt"
  printf '== %-31s %s\n' "$1" "$2"
}
elapsed() { echo $(( $(date +%s) - $1 ))s; }
finish() {
  note "total time" "$(elapsed "$start")"
  echo "===================== gpu-check summary ($logs/summary.txt) ====================="
  cat "$logs/summary.txt"
  exit "$1"
}

# 1. A GPU, or stop here.
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >"$logs/gpu.txt" 2>&1; then
  echo "gpu-check: no NVIDIA GPU found (nvidia-smi -L failed); this script needs one." >&2
  exit 2
fi
command -v nvcc >/dev/null 2>&1 || { echo "gpu-check: nvcc not found" >&2; exit 2; }
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d '.')
note "GPU" "$gpu (sm_$cap), $(nproc) cores"
prefix=()
if [ -d .deps/root/usr ]; then
  prefix=(-DCMAKE_PREFIX_PATH="$PWD/.deps/root/usr")
  export LD_LIBRARY_PATH="$PWD/.deps/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)

# 2. Build: tests and benchmarks, no examples.
t=$(date +%s)
build=build/gpu-check
cmake -S . -B "$build" "${generator[@]}" "${prefix[@]}" -DCMAKE_BUILD_TYPE=Release -DMIXPREC_DEVICE_SYSTEM=CUDA \
  -DCMAKE_CUDA_ARCHITECTURES="$cap" -DMIXPREC_BUILD_TESTS=ON -DMIXPREC_BUILD_EXAMPLES=OFF \
  -DMIXPREC_BUILD_BENCHMARKS=ON >"$logs/configure.log" 2>&1 &&
  cmake --build "$build" -j "$(nproc)" >"$logs/build.log" 2>&1
if [ $? -ne 0 ]; then
  note "build" "FAILED after $(elapsed "$t") (configure.log, build.log)"
  finish 1
fi
note "build (nvcc, sm_$cap)" "ok in $(elapsed "$t")"

# 3. The test suite on the GPU, one CTest test per doctest case.
t=$(date +%s)
ctest --test-dir "$build" -j 8 --output-on-failure --timeout 300 >"$logs/tests.log" 2>&1
tests_rc=$?
counts=$(grep -E "tests passed|tests failed" "$logs/tests.log" | tail -n 1)
note "tests on the GPU" "${counts:-no summary} ($(elapsed "$t"))"

# 4. A whole step captured in a CUDA graph and replayed: that one test case,
# run on its own; it must have run (a filter that matches nothing passes).
"$build/tests/test_train" "--test-case=a whole step is captured in a CUDA graph*" >"$logs/graph.log" 2>&1
if [ $? -eq 0 ] && grep -qE "test cases: *1 *\| *1 passed" "$logs/graph.log"; then
  note "CUDA graph capture + replay" "passed"
else
  note "CUDA graph capture + replay" "FAILED (graph.log)"
  tests_rc=1
fi

# 5. compute-sanitizer memcheck on the executables whose kernels matter (the
# step's passes, the reductions and workspace, the fp8 scaler), in parallel,
# each under a cap. The tests' deliberate allocation failures are API errors
# by design, so API errors are not reported (--report-api-errors no).
t=$(date +%s)
memcheck="ok"
if command -v compute-sanitizer >/dev/null 2>&1; then
  pids=() names=()
  for name in test_train test_detail test_scaling; do
    timeout 150 compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 99 \
      "$build/tests/$name" >"$logs/memcheck_$name.log" 2>&1 &
    pids+=($!) names+=("$name")
  done
  errors=() slow=()
  for k in "${!pids[@]}"; do
    wait "${pids[$k]}"
    case $? in
      0) ;;
      124) slow+=("${names[$k]}") ;;
      *) errors+=("${names[$k]}") ;;
    esac
  done
  [ ${#slow[@]} -gt 0 ] && memcheck="ok where finished; timed out after 150 s: ${slow[*]}"
  [ ${#errors[@]} -gt 0 ] && memcheck="FAILED: ${errors[*]} (memcheck_*.log)"
else
  memcheck="compute-sanitizer not found"
fi
note "compute-sanitizer memcheck" "$memcheck ($(elapsed "$t"))"

# 6. Benchmarks: the ceilings and every step variant at 2.5e8 parameters.
t=$(date +%s)
"$build/bench/bench_step" --benchmark_filter="ceiling|/250000000$" >"$logs/bench_step.log" 2>&1
copy=$(awk '/^ceiling\/copy/ {for (i=1;i<=NF;i++) if ($i ~ /^bytes_per_second=/) {sub("bytes_per_second=","",$i); print $i}}' "$logs/bench_step.log")
note "benchmarks at 2.5e8" "done in $(elapsed "$t"), device copy bandwidth ${copy:-?} (bench_step.log)"
while read -r line; do
  name=$(echo "$line" | awk '{print $1}')
  ms=$(echo "$line" | awk '{print $2" "$3}')
  frac=$(echo "$line" | grep -oE "frac_copy=[0-9.]+" | cut -d= -f2)
  note "$name" "$ms per step, ${frac:-?} of copy bandwidth"
done < <(grep -E "^(step|unfused)/.*/250000000" "$logs/bench_step.log")

# 7. PyTorch side by side (fused AdamW + GradScaler), when asked for.
if [ $pytorch -eq 1 ]; then
  python=${PYTHON:-python3}
  if "$python" -c "import torch; assert torch.cuda.is_available()" >/dev/null 2>&1; then
    "$python" bench/compare.py --bench "$build/bench/bench_step" --python "$python" --device cuda \
      --sizes 2.5e8 --json "$logs/compare.json" >"$logs/compare.log" 2>&1
    if [ $? -eq 0 ]; then
      while read -r line; do note "vs PyTorch" "$line"; done < <(grep -E "^(bf16|fp32) " "$logs/compare.log")
    else
      note "vs PyTorch" "FAILED (compare.log)"
    fi
  else
    note "vs PyTorch" "skipped: $python has no CUDA-enabled torch"
  fi
fi

ok=1
[ $tests_rc -eq 0 ] || ok=0
case "$memcheck" in ok*) ;; *) ok=0 ;; esac
[ $ok -eq 1 ] && finish 0 || finish 1
