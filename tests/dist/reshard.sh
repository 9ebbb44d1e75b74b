#!/usr/bin/env bash
# Checkpoints across rank counts: a run saved on 2 ranks continues on 3,
# then 1, then 2 (ZeRO stage 2 at the end), and matches an uninterrupted
# 2-rank run to fp32 rounding (fp32 weights and gradients: the ranks' batch
# means are rounded differently, nothing else differs). A run resumed on
# the same ranks and stage is bit-identical to the uninterrupted one, with
# fp16 gradients, sharded fp32 master weights and a stochastically rounded
# bf16 model copy.
#
# usage: reshard.sh DIST_TRAIN "MPIRUN ... NUMPROC-FLAG" WORKDIR
set -euo pipefail
train=$1
mpirun=$2
work=$3
rm -rf "$work"
mkdir -p "$work"
export OMP_NUM_THREADS=1
run() { # ranks, arguments...
  local n=$1
  shift
  echo "+ $n rank(s): $*"
  $mpirun "$n" "$train" "$@"
}

# fp32: 2 -> 3 -> 1 -> 2 ranks against 2 ranks throughout.
run 2 --format fp32 --stage 1 --from 0 --to 30 --save "$work/a"
run 3 --format fp32 --stage 1 --from 30 --to 60 --load "$work/a" --save "$work/b"
run 1 --format fp32 --stage 1 --from 60 --to 90 --load "$work/b" --save "$work/c"
run 2 --format fp32 --stage 2 --from 90 --to 120 --load "$work/c" --save "$work/d"
run 2 --format fp32 --stage 1 --from 0 --to 120 --save "$work/e"
# Tolerance: per step, an update of AdamW (lr 5e-3) differs by a few fp32
# roundings of its inputs, and a weight (|w| < 2) by an ulp (2^-22):
# 120 steps x (2^-22 + 5e-3 x 8 x 2^-24).
"$train" --format fp32 --compare "$work/d" "$work/e" --tolerance 3.0e-5

# fp16, same ranks and stage: bit for bit.
run 2 --stage 1 --from 0 --to 120 --save "$work/f"
run 2 --stage 1 --from 0 --to 60 --save "$work/g"
run 2 --stage 1 --from 60 --to 120 --load "$work/g" --save "$work/h"
"$train" --compare "$work/f" "$work/h" --identical
# fp16 across rank counts: loads and continues (3 -> 2 ranks).
run 3 --stage 2 --from 0 --to 60 --save "$work/i"
run 2 --stage 1 --from 60 --to 90 --load "$work/i" --save "$work/j"
echo "reshard: all checks passed"
