#!/usr/bin/env bash
# What a user's translation unit pays to compile mixprec: CPU seconds (user
# + system) and peak memory of g++ on the quick start and the digits
# example, with the host flags the project's own builds use, for this tree
# and for another commit (default 993b8b2, the last before the engine
# redesign), alternating the two trees, medians of the runs. Also one
# chain against two in one translation unit (the cost of a second chain).
#
#   scripts/compile-time.sh [--runs N] [--against COMMIT] [--gc-expand P]
#
# Peak memory is where g++'s garbage collections fall: it collects when its
# heap has grown by ggc-min-expand percent since the last collection (100
# on a machine with 1 GB or more), so the peak lies anywhere between the
# live memory and about twice it, and a small change to the headers can
# move it by 90 MB either way (docs/performance.md). --gc-expand 20 passes
# --param ggc-min-expand=20 to both trees: peaks within 20% of the live
# memory, comparable between trees (the CPU time is then not a user's).
# Needs the CUDA toolkit's headers (CCCL) and zlib's for the digits example.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=3
against=993b8b2
gc_expand=
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --against) against=$2; shift 2 ;;
    --gc-expand) gc_expand=$2; shift 2 ;;
    *) echo "usage: scripts/compile-time.sh [--runs N] [--against COMMIT] [--gc-expand P]" >&2; exit 2 ;;
  esac
done
cuda=$(dirname "$(dirname "$(command -v nvcc)")")
cccl="$cuda/include/cccl"
[ -d "$cccl" ] || cccl="$cuda/targets/x86_64-linux/include/cccl"
flags=(-std=c++17 -O3 -DNDEBUG -march=native -fopenmp -fno-math-errno -ffp-contract=off -I"$cccl" -I"$cuda/include")
[ -n "$gc_expand" ] && flags+=(--param "ggc-min-expand=$gc_expand")
work=$(mktemp -d)
trap 'rm -rf "$work"; git worktree remove --force "$work/old" >/dev/null 2>&1 || true' EXIT
git worktree add --detach "$work/old" "$against" >/dev/null 2>&1

# The cost of chains in one translation unit: one AdamW chain, then a second one beside it.
write_chains() {  # $1: number of chains (1 or 2), $2: output file
  {
    echo '#include <mixprec/mixprec.hpp>'
    echo 'int main() {'
    echo '  mixprec::parameters<mixprec::bfloat16> p; p.add("w", {64, 64}); p.finalize();'
    echo '  const auto a = mixprec::chain(mixprec::dynamic_loss_scale{}, mixprec::clip_by_global_norm{1.0f},'
    echo '                                mixprec::adamw(mixprec::adamw_options{}));'
    echo '  auto sa = a.init(p); a.apply(p, sa);'
    if [ "$1" = 2 ]; then
      echo '  const auto b = mixprec::chain(mixprec::lion(mixprec::lion_options{}));'
      echo '  auto sb = b.init(p); b.apply(p, sb);'
    fi
    echo '}'
  } > "$2"
}
write_chains 1 "$work/one_chain.cpp"
write_chains 2 "$work/two_chains.cpp"

measure() {  # $1 tree, $2 source, extra args...: prints "cpu_seconds peak_MB"
  local tree=$1 src=$2
  shift 2
  /usr/bin/time -f "%U %S %M" -o "$work/time" g++ "${flags[@]}" -I"$tree/include" "$@" -c "$src" -o "$work/out.o"
  awk '{printf "%.2f %.0f\n", $1 + $2, $3 / 1024}' "$work/time"
}
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

declare -A cpu mem
cases=(quickstart digits one_chain two_chains)
for ((r = 0; r < runs; r++)); do
  for tree in new old; do
    root=$PWD
    [ "$tree" = old ] && root="$work/old"
    for c in "${cases[@]}"; do
      case $c in
        quickstart) res=$(measure "$root" "$root/examples/quickstart/main.cpp") ;;
        digits) res=$(measure "$root" "$root/examples/train_digits/main.cpp" \
                       -DMIXPREC_DIGITS_CSV="\"$root/examples/data/digits/digits.csv.gz\"") ;;
        *) res=$(measure "$root" "$work/$c.cpp") ;;
      esac
      cpu[$tree.$c]+="${res% *} "
      mem[$tree.$c]+="${res#* } "
    done
  done
done

printf '%-12s %14s %14s %12s %12s\n' "unit" "CPU s (this)" "CPU s ($against)" "MB (this)" "MB ($against)"
for c in "${cases[@]}"; do
  nc=$(tr ' ' '\n' <<< "${cpu[new.$c]}" | grep . | median)
  oc=$(tr ' ' '\n' <<< "${cpu[old.$c]}" | grep . | median)
  nm=$(tr ' ' '\n' <<< "${mem[new.$c]}" | grep . | median)
  om=$(tr ' ' '\n' <<< "${mem[old.$c]}" | grep . | median)
  printf '%-12s %14s %14s %12s %12s\n' "$c" "$nc" "$oc" "$nm" "$om"
done
echo "(medians of $runs alternating runs; g++ $(g++ -dumpversion), ${flags[*]})"
