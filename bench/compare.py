"""Runs mixprec's fused step (bench_step) and PyTorch's standard
mixed-precision step (pytorch_step.py) on the same sizes and dtypes, in one
go, and prints one table: time per step, the speedup of mixprec over
PyTorch, and bandwidth as a fraction of the machine's copy and triad
bandwidth measured in the same bench_step run.

Both sides are charged mixprec's byte model for the step (docs/performance.md):
30 bytes per parameter with bf16 gradients and model copy, 32 with fp32.
The dtype bf16m is mixprec's step with bf16 gradients, model copy and
moments (22 bytes: fp32 master weights, bf16 moments written with
stochastic rounding) next to PyTorch's fp32 step: what keeping the moments
in bf16 buys against the standard recipe, which has no such option.

With --baselines, each mixprec step is also set against the optimizer
alone on fp32 state, without scaling, checking or clipping (28 bytes per
parameter): adamw is torch's AdamW(fused=True), deepspeed DeepSpeedCPUAdam
(PyPI deepspeed, CPU only). The default is amp alone, the standard recipe.

Each mixprec step is the median of --repetitions runs of bench_step (3 by
default; a single run of a step on this project's 2-core machine can be
1.5x its neighbours), each PyTorch step the median of pytorch_step.py's 5.

Usage: compare.py [--bench build/bench/bench/bench_step] [--sizes 1e6 1e7 1e8 2.5e8]
                  [--dtypes bf16 fp32] [--baselines amp adamw deepspeed]
                  [--repetitions 3] [--device cpu|cuda] [--json out.json]
"""
import argparse
import json
import os
import subprocess
import sys

BYTES = {"bf16": 30.0, "fp32": 32.0, "bf16m": 22.0}
TORCH_DTYPE = {"bf16": "bf16", "fp32": "fp32", "bf16m": "fp32"}  # the PyTorch AMP step each is compared with
OPTIMIZER_BYTES = 28.0  # the optimizer alone on fp32 state: read weight, gradient, moments; write weight, moments


def run_bench(bench, sizes, dtypes, repetitions):
    pattern = "ceiling|step/adamw_(%s)/(%s)/" % ("|".join(dtypes), "|".join(str(int(s)) for s in sizes))
    cmd = [bench, "--benchmark_filter=" + pattern, "--benchmark_format=json"]
    if repetitions > 1:  # each step's median over the repetitions, as pytorch_step.py's median over its steps
        cmd += ["--benchmark_repetitions=%d" % repetitions, "--benchmark_report_aggregates_only=true"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    results = json.loads(out)["benchmarks"]
    ceilings = {}
    steps = {}
    for b in results:
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b.get("run_name", b["name"]).split("/")
        seconds = b["real_time"] / {"ms": 1e3, "us": 1e6, "ns": 1e9, "s": 1.0}[b["time_unit"]]
        if name[0] == "ceiling":
            ceilings[name[1]] = b["bytes_per_second"]
        else:
            dtype = name[1].split("_")[1]
            steps[(dtype, int(name[2]))] = seconds
    return ceilings, steps


def run_pytorch(python, here, sizes, dtype, device, recipe="amp"):
    cmd = [python, os.path.join(here, "pytorch_step.py"), "--dtype", dtype, "--recipe", recipe, "--device", device,
           "--sizes"]
    cmd += [str(s) for s in sizes]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {r["size"]: r for r in rows}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default=os.path.join(here, "..", "build", "bench", "bench", "bench_step"))
    # The project's torch venv when it exists (scripts/ and .ci/run make it):
    # the system's python3 may carry another PyTorch.
    venv = os.path.join(here, "..", "build", "torch-venv", "bin", "python")
    ap.add_argument("--python", default=venv if os.path.exists(venv) else sys.executable,
                    help="the Python that has torch")
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7, 1e8, 2.5e8])
    ap.add_argument("--dtypes", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32", "bf16m"])
    ap.add_argument("--baselines", nargs="+", default=["amp"], choices=["amp", "adamw", "deepspeed"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repetitions", type=int, default=3,
                    help="bench_step repetitions; each mixprec step is their median (1: a single run)")
    ap.add_argument("--json", help="also write the table as JSON here")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes]

    ceilings, steps = run_bench(args.bench, sizes, args.dtypes, args.repetitions)
    # The PyTorch runs, by (recipe, dtype): the AMP step in each dtype's
    # PyTorch counterpart, the optimizer alone on fp32 state.
    torch_runs = {}
    for b in args.baselines:
        for d in args.dtypes:
            key = (b, TORCH_DTYPE[d] if b == "amp" else "fp32")
            if key not in torch_runs:
                torch_runs[key] = run_pytorch(args.python, here, sizes, key[1], args.device, b)
    copy, triad = ceilings.get("copy"), ceilings.get("triad")

    table = []
    print("copy bandwidth %.1f GB/s, triad %.1f GB/s (bench_step, same run)" % (copy / 1e9, triad / 1e9))
    for (b, td), rows in torch_runs.items():
        first = next(iter(rows.values()))
        print("  %s on %s: torch %s, %s" % (b, td, first["torch"], first["impl"]))
    header = "%-6s %12s %-10s %12s %12s %9s %10s %10s %10s" % (
        "dtype", "params", "baseline", "mixprec ms", "theirs ms", "speedup", "mixprec/cp", "mixprec/tr", "theirs/cp")
    print(header)
    for d in args.dtypes:
        for b in args.baselines:
            td = TORCH_DTYPE[d] if b == "amp" else "fp32"
            for n in sizes:
                ours = steps.get((d, n))
                theirs = torch_runs[(b, td)].get(n)
                if ours is None or theirs is None:
                    continue
                t_ms = theirs["ms_per_step"]
                bw = BYTES[d] * n / ours
                their_bytes = BYTES[td] if b == "amp" else OPTIMIZER_BYTES
                row = {"dtype": d, "params": n, "baseline": b, "mixprec_ms": ours * 1e3, "pytorch_ms": t_ms,
                       "speedup": t_ms / (ours * 1e3), "mixprec_frac_copy": bw / copy,
                       "mixprec_frac_triad": bw / triad, "pytorch_frac_copy": their_bytes * n / (t_ms / 1e3) / copy}
                table.append(row)
                print("%-6s %12d %-10s %12.2f %12.2f %8.2fx %10.2f %10.2f %10.2f" % (
                    d, n, b, row["mixprec_ms"], t_ms, row["speedup"], row["mixprec_frac_copy"],
                    row["mixprec_frac_triad"], row["pytorch_frac_copy"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"copy_bytes_per_s": copy, "triad_bytes_per_s": triad, "rows": table}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
