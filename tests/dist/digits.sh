#!/usr/bin/env bash
# The digits example data parallel: on 2 ranks, in data parallel and ZeRO-1,
# it prints the table one process prints (the same configurations, test
# accuracies within a point, training losses within 2%: the runs differ by
# the rounding of the gradient sums only).
#
# usage: digits.sh TRAIN_DIGITS TRAIN_DIGITS_MPI "MPIRUN ... NUMPROC-FLAG"
set -euo pipefail
one=$1
mpi=$2
mpirun=$3
export OMP_NUM_THREADS=1
args=(--epochs 4 --no-csv --json)
"$one" "${args[@]}" >/tmp/mixprec_digits_1.json
$mpirun 2 "$mpi" "${args[@]}" --zero 0 >/tmp/mixprec_digits_dp.json
$mpirun 2 "$mpi" "${args[@]}" --zero 1 >/tmp/mixprec_digits_z1.json
$mpirun 2 "$mpi" --epochs 1 --no-csv --no-fp8 --zero 1 | head -12  # the table, as printed
/usr/bin/python3 - /tmp/mixprec_digits_1.json /tmp/mixprec_digits_dp.json /tmp/mixprec_digits_z1.json <<'PY'
import json, sys
one = json.load(open(sys.argv[1]))
ok = True
for path in sys.argv[2:]:
    other = json.load(open(path))
    assert [r["config"] for r in other] == [r["config"] for r in one], "different configurations"
    for a, b in zip(one, other):
        acc = abs(a["test_accuracy_pct"] - b["test_accuracy_pct"])
        loss = abs(a["train_loss"] - b["train_loss"]) / a["train_loss"]
        print(f"{path}: {b['config']:26s} test accuracy {b['test_accuracy_pct']:.2f} vs {a['test_accuracy_pct']:.2f}, "
              f"train loss {b['train_loss']:.4f} vs {a['train_loss']:.4f}")
        ok = ok and acc <= 1.0 and loss <= 0.02
sys.exit(0 if ok else 1)
PY
