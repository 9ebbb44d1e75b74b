#!/usr/bin/python3
"""Plots the curves written by train_digits.

Reads DIR/digits_curves.csv (one row per configuration and epoch) and
DIR/digits_loss_scale.csv (the loss scale of every step of the runs with a
loss scaler) and writes a PNG with two panels: the training loss of every
configuration, and the loss-scale trace of the fp16 run.

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
    scale_path = os.path.join(args.dir, "digits_loss_scale.csv")
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
    if os.path.exists(scale_path):
        for r in read_rows(scale_path):
            s, v = scales.setdefault(r["config"], ([], []))
            s.append(int(r["step"]))
            v.append(float(r["loss_scale"]))

    fig, (ax_loss, ax_scale) = plt.subplots(1, 2, figsize=(13, 4.8))
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

    fig.suptitle("train_digits: MLP 64-128-10 on the UCI digits")
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
