#!/usr/bin/env bash
# A rank that exits mid-run without a word. mpirun's default (abort the job
# when a rank exits badly) must end the run within the bound; with that off
# (Open MPI: orte_abort_on_non_zero_status 0) the surviving ranks must each
# raise mixprec's timeout error themselves. A rank that dies while the
# others save leaves the previous checkpoint as the one the manifest names,
# and it loads on another rank count.
#
# usage: rank_exit.sh DIST_TRAIN "MPIRUN ... NUMPROC-FLAG" WORKDIR
set -uo pipefail
train=$1
mpirun=$2
work=$3
rm -rf "$work"
mkdir -p "$work"
export OMP_NUM_THREADS=1
fail() {
  echo "FAIL: $*"
  exit 1
}
# run LOG RANKS ARGS...: the exit code, and the seconds it took in $elapsed.
run() {
  local log=$1 n=$2
  shift 2
  echo "+ $n ranks: $*"
  local start=$SECONDS
  timeout 300 $mpirun "$n" "$@" >"$log" 2>&1
  local rc=$?
  elapsed=$((SECONDS - start))
  sed 's/^/  | /' "$log" | head -20
  return $rc
}
abort_off=""
if ${mpirun%% *} --version 2>&1 | grep -Eq "Open MPI|OpenRTE"; then abort_off="--mca orte_abort_on_non_zero_status 0"; fi
bound=60  # seconds: the 5 s timeout, the save and mpirun's start, with room

run "$work/default.log" 3 "$train" --stage 1 --from 0 --to 60 --save "$work/a" --save-every 10 \
  --die-rank 1 --die-at 25 --timeout 5
rc=$?
[ "$rc" -ne 0 ] || fail "the run with a dead rank succeeded"
[ "$rc" -ne 124 ] || fail "the run with a dead rank hung until timeout(1) killed it"
[ "$elapsed" -le "$bound" ] || fail "the run took $elapsed s to fail (bound $bound s)"
grep -q "^step 20$" "$work/a/manifest" || fail "the manifest does not name the save of step 20"

if [ -n "$abort_off" ]; then
  run "$work/survivors.log" 3 $abort_off "$train" --stage 2 --from 0 --to 60 \
    --save "$work/b" --save-every 10 --die-rank 1 --die-at 25 --timeout 5
  rc=$?
  # mpirun asked not to abort on a non-zero exit may itself exit with 0:
  # what counts is that no rank hung and every survivor said why it stopped.
  [ "$rc" -ne 124 ] || fail "the survivors hung until timeout(1) killed them"
  [ "$elapsed" -le "$bound" ] || fail "the survivors took $elapsed s to fail (bound $bound s)"
  for r in 0 2; do
    grep -q "^rank $r: mixprec: mpi_communicator: .* did not complete within 5 s on rank $r of 3: another rank has failed" \
      "$work/survivors.log" || fail "rank $r did not report the dead rank"
  done
fi

# Rank 2 dies just before the save of step 30: the others write their
# parts, wait for it and fail; the manifest still names step 20.
run "$work/mid_save.log" 3 $abort_off "$train" --stage 1 --from 0 --to 40 \
  --save "$work/c" --save-every 10 --die-rank 2 --die-at 30 --die-before-save --timeout 5
rc=$?
[ "$rc" -ne 124 ] || fail "the run with a rank dead in a save hung until timeout(1) killed it"
[ -n "$abort_off" ] || [ "$rc" -ne 0 ] || fail "the run with a rank dead in a save succeeded"
[ "$elapsed" -le "$bound" ] || fail "the run took $elapsed s to fail (bound $bound s)"
grep -q "^step 20$" "$work/c/manifest" || fail "the manifest moved past the incomplete save"
if [ -n "$abort_off" ]; then
  grep -q "an agreement between the ranks (init, save or load) did not complete within 5 s" "$work/mid_save.log" ||
    fail "the saving ranks did not report the dead rank"
fi

# The last checkpoints load, on other rank counts, and training continues.
run "$work/resume_a.log" 2 "$train" --stage 2 --from 20 --to 30 --load "$work/a" || fail "resume from a"
grep -q "loaded $work/a at step 20" "$work/resume_a.log" || fail "did not load step 20"
run "$work/resume_c.log" 1 "$train" --stage 1 --from 20 --to 30 --load "$work/c" || fail "resume from c"
echo "rank_exit: all checks passed"
