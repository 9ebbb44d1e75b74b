#!/usr/bin/python3
"""Plots the curves written by train_digits.

Reads DIR/digits_curves.csv (one row per configuration and epoch) and
DIR/digits_steps.csv (what mixprec::record_statistics saw at every step of
the fp16 runs) and writes a PNG with three panels: the training loss of
every configuration, the loss-scale trace of the fp16 run, and that run's
unscaled gradient norm with the fractions of its stored fp16 gradients that
were exactly zero and that were fp16 subnormals.

Usage: python3 examples/train_digits/plot.py [--dir DIR] [--output PNG]
(defaults: DIR = ., PNG = DIR/digits_curves.png). Needs matplotlib (Debian:
python3-matplotlib); only the standard library otherwise.
"""
import argparse
import csv
import os
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".", help="where train_digits wrote its CSV files (its --out)")
    parser.add_argument("--output", help="the PNG to write (default DIR/digits_curves.png)")
    args = parser.parse_args()
    curves_path = os.path.join(args.dir, "digits_curves.csv")
    steps_path = os.path.join(args.dir, "digits_steps.csv")
    output = args.output or os.path.join(args.dir, "digits_curves.png")
    if not os.path.exists(curves_path):
        sys.exit(f"plot.py: {curves_path} not found; run train_digits --out {args.dir} first")

    losses = OrderedDict()  # config -> (epochs, train losses, test accuracies)
    for r in read_rows(curves_path):
        e, l, a = losses.setdefault(r["config"], ([], [], []))
        e.append(int(r["epoch"]))
        l.append(float(r["train_loss"]))
        a.append(100.0 * float(r["test_accuracy"]))

    scales = OrderedDict()  # config -> (steps, scales)
    stats = OrderedDict()   # config -> (steps, gradient norms, zero %, subnormal %)
    if os.path.exists(steps_path):
        for r in read_rows(steps_path):
            s, v = scales.setdefault(r["config"], ([], []))
            s.append(int(r["step"]))
            v.append(float(r["loss_scale"]))
            if r["skipped"] == "0":
                t, n, z, u = stats.setdefault(r["config"], ([], [], [], []))
                t.append(int(r["step"]))
                n.append(float(r["gradient_norm"]))
                z.append(100.0 * float(r["zero_fraction"]))
                u.append(100.0 * float(r["subnormal_fraction"]))

    fig, (ax_loss, ax_scale, ax_stats) = plt.subplots(1, 3, figsize=(18, 4.8))
    for config, (epochs, loss, acc) in losses.items():
        ax_loss.plot(epochs, loss, marker=".", markersize=3, linewidth=1.2,
                     label=f"{config} (test {acc[-1]:.1f}%)")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.set_ylabel("training loss (cross-entropy, whole training set)")
    ax_loss.set_title("Training loss")
    ax_loss.grid(True, which="both", alpha=0.3)
    ax_loss.legend(fontsize=8)

    fp16 = [c for c in scales if c.startswith("fp16")] or list(scales)
    if fp16:
        for config in fp16:
            steps, values = scales[config]
            ax_scale.step(steps, values, where="post", linewidth=1.2, label=config)
            # A drop in the scale marks a step that overflowed and was skipped.
            drops = [s for s, a, b in zip(steps[1:], values, values[1:]) if b < a]
            if drops:
                ax_scale.plot([d - 1 for d in drops], [values[steps.index(d) - 1] for d in drops], "v",
                              color="tab:red", markersize=6, label="overflow: step skipped, scale halved")
        ax_scale.set_yscale("log", base=2)
        ax_scale.legend(fontsize=8)
    else:
        ax_scale.text(0.5, 0.5, "no run with a loss scaler", ha="center", va="center", transform=ax_scale.transAxes)
    ax_scale.set_xlabel("step")
    ax_scale.set_ylabel("loss scale used by the step")
    ax_scale.set_title("Dynamic loss scale (fp16 run)")
    ax_scale.grid(True, which="both", alpha=0.3)

    if stats:
        config = next(iter(stats))
        steps, norms, zeros, subnormals = stats[config]
        ax_stats.plot(steps, norms, linewidth=1.0, color="tab:blue", label="unscaled gradient norm")
        ax_stats.set_yscale("log")
        ax_stats.set_ylabel("gradient norm (L2, all parameters)")
        twin = ax_stats.twinx()
        twin.plot(steps, zeros, linewidth=1.0, color="tab:gray", label="stored gradients exactly zero")
        twin.plot(steps, subnormals, linewidth=1.0, color="tab:orange", label="stored gradients fp16 subnormal")
        for other in stats:
            if other != config and "no-scaling" in other:  # --controls: the same run without a loss scale
                twin.plot(stats[other][0], stats[other][3], linewidth=0.8, color="tab:red", linestyle="--",
                          label=f"fp16 subnormal, {other}")
        twin.set_ylabel("% of stored fp16 gradients")
        lines = ax_stats.get_lines() + twin.get_lines()
        ax_stats.legend(lines, [l.get_label() for l in lines], fontsize=8)
        ax_stats.set_title(f"record_statistics ({config})")
    else:
        ax_stats.text(0.5, 0.5, "no statistics recorded", ha="center", va="center", transform=ax_stats.transAxes)
    ax_stats.set_xlabel("step")
    ax_stats.grid(True, which="both", alpha=0.3)

    fig.suptitle("train_digits: MLP 64-128-10 on the UCI digits")
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
