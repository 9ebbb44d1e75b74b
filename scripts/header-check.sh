#!/usr/bin/env bash
# Every public header compiles on its own, as the first line of a user's
# translation unit: g++ -fsyntax-only with the README's vendoring flags only
# (no THRUST_DEVICE_SYSTEM from CMake, so core/config.hpp must choose Thrust's
# device system before any Thrust header is seen), with and without OpenMP.
# dist/mpi_communicator.hpp gets MPI's include flags; dist/nccl_communicator.hpp
# needs the CUDA backend and is compiled by the nvcc build instead.
#
#   scripts/header-check.sh [-j N]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=2
[ "${1:-}" = "-j" ] && jobs=$2
cuda=$(dirname "$(dirname "$(command -v nvcc)")")
cccl="$cuda/include/cccl"
[ -d "$cccl" ] || cccl="$cuda/targets/x86_64-linux/include/cccl"
mpi_flags=$(mpicxx --showme:compile 2>/dev/null || true)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

check() {  # check <header> <openmp flag or empty>: compiles it alone, prints the first error on failure
  local h=$1 omp=$2 extra=()
  [ "$h" = mixprec/dist/mpi_communicator.hpp ] && read -r -a extra <<< "$mpi_flags"
  local tag
  tag=$(echo "$h$omp" | tr '/.-' '___')
  echo "#include <$h>" > "$work/$tag.cpp"
  if ! g++ -std=c++17 $omp -Iinclude -I"$cccl" -I"$cuda/include" "${extra[@]}" -fsyntax-only "$work/$tag.cpp" \
       2> "$work/$tag.err"; then
    echo "FAIL: <$h> ${omp:-(no OpenMP)}: $(grep -m1 -E 'error' "$work/$tag.err")"
    return 1
  fi
}
export -f check
export cccl cuda mpi_flags work

headers=$(cd include && find mixprec -name '*.hpp' ! -path '*/nccl_communicator.hpp' | sort)
count=$(echo "$headers" | wc -l)
status=0
# With OpenMP (Thrust's OMP system) every header; without it (the CPP system) the umbrella headers.
{
  for h in $headers; do echo "$h -fopenmp"; done
  for h in $headers; do case "$h" in */all.hpp | mixprec/mixprec.hpp) echo "$h" ;; esac; done
} | xargs -P "$jobs" -L 1 bash -c 'check "$0" "${1:-}"' || status=1
if [ $status = 0 ]; then
  echo "header-check: $count headers compile on their own"
else
  echo "header-check: some headers do not compile on their own (above)" >&2
fi
exit $status
