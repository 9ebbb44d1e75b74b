"""Turns a Google Benchmark JSON report of bench_step or bench_reduce into a
Markdown table: per benchmark, time, bandwidth over the minimal bytes, and
that bandwidth as a fraction of the copy, triad (and, where measured, update)
ceilings of the same run.

With repetitions (--benchmark_repetitions=N, ideally with
--benchmark_enable_random_interleaving=true so that the ceilings are sampled
between the other benchmarks), the medians are used for both sides of every
ratio. Without them, the single runs are used.

Usage: summarize.py report.json
"""
import json
import sys

UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def main(path):
    with open(path) as f:
        report = json.load(f)
    rows = {}
    for b in report["benchmarks"]:
        aggregate = b.get("aggregate_name")
        if aggregate not in (None, "median"):
            continue
        name = b.get("run_name", b["name"]).replace("/manual_time", "")
        if aggregate is None and name in rows and rows[name].get("aggregate_name") == "median":
            continue
        rows[name] = b
    copy = rows["ceiling/copy"]["bytes_per_second"]
    triad = rows["ceiling/triad"]["bytes_per_second"]
    update = rows["ceiling/update"]["bytes_per_second"] if "ceiling/update" in rows else None
    context = report["context"]
    print("%d CPUs at %.0f MHz, %s; copy %.1f GB/s, triad %.1f GB/s (%s)" % (
        context.get("num_cpus", 0), context.get("mhz_per_cpu", 0), context.get("date", "?"), copy / 1e9,
        triad / 1e9, "medians" if any("aggregate_name" in b for b in rows.values()) else "single runs"))
    print()
    print("| benchmark | time (ms) | GB/s | of copy | of triad |" + (" of update |" if update else ""))
    print("|---|---:|---:|---:|---:|" + ("---:|" if update else ""))
    def order(name):  # ceilings first, then by name, sizes in numeric order
        parts = name.split("/")
        return (parts[0] != "ceiling", [(0, int(x), "") if x.isdigit() else (1, 0, x) for x in parts])

    for name, b in sorted(rows.items(), key=lambda kv: order(kv[0])):
        ms = b["real_time"] * UNIT[b["time_unit"]] * 1e3
        bw = b["bytes_per_second"]
        line = "| %s | %.2f | %.1f | %.2f | %.2f |" % (name, ms, bw / 1e9, bw / copy, bw / triad)
        print(line + (" %.2f |" % (bw / update) if update else ""))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
