#!/usr/bin/python3
"""Plots of a sweep's sparsity (matplotlib), from sparsetrain run directories.

    plot_sparsity.py RUN_DIR... --out DIR [--format png svg] [--report REPORT_JSON]
                     [--aggregate GROUPED_JSON] [--epoch-runs NAME...]
                     [--selectivity-runs NAME...]

Writes, in each format:
  dead_vs_epoch      % dead filters per layer against epoch, one panel per run (the
                     train_pass criterion every epoch; exact_eval, the paper's, as points
                     where it was measured)
  selectivity        histograms of per-filter selectivity (stats/filters_final.json) of
                     runs to compare, by default the Adam and SGD runs with the same
                     regularization and the strongest lambda both have
  dead_vs_error      total % dead against test error % across the sweep, one point per run,
                     from `sparsetrain report --format json` (given with --report, or run
                     with --bin); with --aggregate, one point per group of seeds
                     with error bars (standard deviation) in both directions
  lr_curves          with --aggregate grouped by a setting that includes optimizer.lr:
                     % dead filters and validation error against the learning rate, one
                     curve per optimizer, mean over seeds with a band of +- one standard
                     deviation and the min-max range as error bars

GROUPED_JSON is `sparsetrain report --group-by ... --format json` over the same runs (for
example --group-by auto: runs that differ only in training.seed form one group).

Run names are the run directories' base names; --epoch-runs and --selectivity-runs pick
runs by name (default: every run, at most 12 panels, for dead_vs_epoch).
"""

import argparse
import json
import math
import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


class RunError(RuntimeError):
    pass


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError as e:
        raise RunError(f"{path}: cannot read ({e.strerror})")
    except json.JSONDecodeError as e:
        raise RunError(f"{path}: not valid JSON ({e})")


def read_metrics(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    records = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    pass  # a torn last line of a killed run
    except OSError as e:
        raise RunError(f"{path}: cannot read ({e.strerror}); is {run_dir} a run directory?")
    if not records:
        raise RunError(f"{path}: no finished epoch")
    return records


class Run:
    def __init__(self, run_dir):
        self.dir = run_dir.rstrip("/")
        self.name = os.path.basename(self.dir)
        self.config = read_json(os.path.join(self.dir, "config.json"))
        self.metrics = read_metrics(self.dir)
        self.layers = layer_order(self.metrics[-1])

    def setting(self, *path, default=None):
        node = self.config
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node

    def filters_final(self):
        path = os.path.join(self.dir, "stats", "filters_final.json")
        return read_json(path) if os.path.exists(path) else None


def natural_key(name):
    """conv2 before conv10."""
    head = name.rstrip("0123456789")
    tail = name[len(head):]
    return (head, int(tail) if tail else -1)


def layer_order(record):
    return sorted(record.get("channels", {}), key=natural_key)


def dead_series(run, source, layer):
    """(epochs, % dead) of one layer under one criterion, where recorded."""
    xs, ys = [], []
    for r in run.metrics:
        per_layer = r.get("dead", {}).get(source)
        channels = r.get("channels", {}).get(layer)
        if per_layer is None or layer not in per_layer or not channels:
            continue
        xs.append(r["epoch"])
        ys.append(100.0 * per_layer[layer] / channels)
    return xs, ys


def save(fig, out_dir, stem, formats):
    paths = []
    for fmt in formats:
        path = os.path.join(out_dir, f"{stem}.{fmt}")
        fig.savefig(path, dpi=90, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths


def plot_dead_vs_epoch(runs, out_dir, formats):
    n = len(runs)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False,
                             sharey=True)
    colors = plt.get_cmap("viridis")
    for i, run in enumerate(runs):
        ax = axes[i // cols][i % cols]
        for j, layer in enumerate(run.layers):
            color = colors(j / max(1, len(run.layers) - 1))
            xs, ys = dead_series(run, "train_pass", layer)
            if xs:
                ax.plot(xs, ys, color=color, label=layer, lw=1.5)
            xs, ys = dead_series(run, "exact_eval", layer)
            if xs:
                ax.plot(xs, ys, "o", color=color, ms=5, mec="black", mew=0.5)
        ax.set_title(run.name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
        if i % cols == 0:
            ax.set_ylabel("% dead filters")
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(8, max(1, len(labels))),
               fontsize=8, bbox_to_anchor=(0.5, 1.0 + 0.04 / rows))
    fig.suptitle("dead filters per layer (lines: train_pass each epoch; "
                 "points: exact_eval)", fontsize=10, y=1.0 + 0.1 / rows)
    fig.tight_layout()
    return save(fig, out_dir, "dead_vs_epoch", formats)


def reg_signature(run):
    kind = run.setting("regularization", "kind", default="none")
    lam = run.setting("regularization", "lambda", default=0)
    return kind, lam


def other_settings(run):
    """Everything but the optimizer and its hyper-parameters, to pair comparable runs."""
    c = json.loads(json.dumps(run.config))
    for key in ("optimizer", "output", "description", "statistics"):
        c.pop(key, None)
    for section, keys in (("training", ("threads", "device", "eval_every")),
                          ("data", ("path", "loader"))):
        for key in keys:
            c.get(section, {}).pop(key, None)
    return json.dumps(c, sort_keys=True)


def default_selectivity_runs(runs):
    """The Adam and SGD runs with identical settings but the optimizer, strongest lambda."""
    best = None
    for a in runs:
        if a.setting("optimizer", "name") != "adam" or a.filters_final() is None:
            continue
        for s in runs:
            if s.setting("optimizer", "name") != "sgd" or s.filters_final() is None:
                continue
            if other_settings(a) != other_settings(s):
                continue
            key = (reg_signature(a)[0] == "l2", reg_signature(a)[1])
            if best is None or key > best[0]:
                best = (key, [a, s])
    return best[1] if best else []


def selectivities(run):
    """Live filters' selectivities and the number of dead filters, over all layers."""
    ff = run.filters_final()
    values, dead = [], 0
    for layer in ff["layers"]:
        for f in layer["filters"]:
            if f["dead_activation"] or f["selectivity"] < 0:
                dead += 1
            else:
                values.append(f["selectivity"])
    return values, dead, ff.get("source", "?")


def plot_selectivity(runs, out_dir, formats):
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bins = [i / 20 for i in range(21)]
    for run in runs:
        values, dead, source = selectivities(run)
        total = len(values) + dead
        mean = sum(values) / len(values) if values else float("nan")
        ax.hist(values, bins=bins, alpha=0.55, weights=[100.0 / total] * len(values),
                label=f"{run.name}: {len(values)} live, mean {mean:.2f}; {dead} dead")
    ax.set_xlabel("selectivity (fraction of training images the filter is off for)")
    ax.set_ylabel("% of all filters")
    ax.set_title("per-filter selectivity of the live filters (after training)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, out_dir, "selectivity", formats)


MARKERS = {"none": "o", "l2": "s", "decoupled": "^"}


def plot_dead_vs_error(report, out_dir, formats):
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    optimizers = sorted({r["settings"].get("optimizer", "?") for r in report["rows"]})
    colors = plt.get_cmap("tab10")
    seen = set()
    for r in report["rows"]:
        if r["test_error_pct"] < 0 or r["total_dead_activation_pct"] < 0:
            continue
        opt = r["settings"].get("optimizer", "?")
        reg = r["settings"].get("regularization", "?")
        label = f"{opt}, {reg}"
        ax.scatter(r["test_error_pct"], r["total_dead_activation_pct"],
                   color=colors(optimizers.index(opt) % 10), marker=MARKERS.get(reg, "x"),
                   s=40, edgecolor="black", linewidth=0.5,
                   label=None if label in seen else label)
        seen.add(label)
        ax.annotate(os.path.basename(r["run"].rstrip("/")),
                    (r["test_error_pct"], r["total_dead_activation_pct"]),
                    fontsize=6, xytext=(3, 3), textcoords="offset points", alpha=0.7)
    ax.set_xlabel("test error %")
    ax.set_ylabel("% dead filters (activation criterion)")
    ax.set_title("sparsity against test error across the sweep", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save(fig, out_dir, "dead_vs_error", formats)


def figure(group, name):
    f = group["figures"].get(name, {"n": 0})
    return (f["mean"], f["std"], f["min"], f["max"]) if f.get("n", 0) > 0 else None


def plot_dead_vs_error_grouped(agg, out_dir, formats):
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    optimizers = sorted({g["settings"].get("optimizer", "?") for g in agg["groups"]})
    colors = plt.get_cmap("tab10")
    seen = set()
    for g in agg["groups"]:
        err, dead = figure(g, "test_error_pct"), figure(g, "total_dead_activation_pct")
        if err is None or dead is None:
            continue
        opt = g["settings"].get("optimizer", "?")
        reg = g["settings"].get("regularization", "?")
        label = f"{opt}, {reg}"
        ax.errorbar(err[0], dead[0], xerr=err[1], yerr=dead[1], fmt=MARKERS.get(reg, "x"),
                    color=colors(optimizers.index(opt) % 10), ms=5, mec="black", mew=0.5,
                    elinewidth=0.8, capsize=2, label=None if label in seen else label)
        seen.add(label)
    ax.set_xlabel("test error % (mean over seeds)")
    ax.set_ylabel("% dead filters (activation criterion)")
    ax.set_title("sparsity against test error, mean +- std over seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save(fig, out_dir, "dead_vs_error", formats)


def plot_lr_curves(agg, out_dir, formats):
    if "optimizer.lr" not in agg["group_by"]:
        raise RunError("lr_curves: --aggregate must be grouped by a list that includes "
                       "optimizer.lr (--group-by auto does when the rate varies)")
    curves = {}
    for g in agg["groups"]:
        opt = g["settings"].get("optimizer", "?")
        try:
            lr = float(g["settings"]["optimizer.lr"])
        except ValueError:
            continue
        curves.setdefault(opt, []).append((lr, g))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colors = plt.get_cmap("tab10")
    panels = [("total_dead_activation_pct", "% dead filters (activation criterion)"),
              ("val_error_pct", "validation error %")]
    for i, opt in enumerate(sorted(curves)):
        pts = sorted(curves[opt], key=lambda t: t[0])
        for ax, (name, ylabel) in zip(axes, panels):
            xs, ms, lo, hi, emin, emax = [], [], [], [], [], []
            for lr, g in pts:
                f = figure(g, name)
                if f is None:
                    continue
                xs.append(lr)
                ms.append(f[0])
                lo.append(f[0] - f[1])
                hi.append(f[0] + f[1])
                emin.append(f[0] - f[2])
                emax.append(f[3] - f[0])
            if not xs:
                continue
            c = colors(i % 10)
            ax.errorbar(xs, ms, yerr=[emin, emax], color=c, marker="o", ms=4, capsize=2,
                        elinewidth=0.7, label=opt)
            ax.fill_between(xs, lo, hi, color=c, alpha=0.15, linewidth=0)
            ax.set_xscale("log")
            ax.set_xlabel("learning rate")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3, which="both")
    axes[0].set_title("dead filters against learning rate", fontsize=10)
    axes[1].set_title("validation error against learning rate", fontsize=10)
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle("mean over seeds; band: +- std, bars: min-max", fontsize=9)
    fig.tight_layout()
    return save(fig, out_dir, "lr_curves", formats)


def load_report(args, runs):
    if args.report:
        return read_json(args.report)
    cmd = [args.bin, "report", "--format", "json"] + [r.dir for r in runs]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RunError(f"{' '.join(cmd[:4])} ...: {done.stderr.strip()}")
    return json.loads(done.stdout)


def pick(runs, names, what):
    if not names:
        return None
    by_name = {r.name: r for r in runs}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise RunError(f"{what}: no run named {', '.join(missing)} among the run directories "
                       f"({', '.join(sorted(by_name))})")
    return [by_name[n] for n in names]


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--format", nargs="+", default=["png"], choices=["png", "svg"])
    p.add_argument("--report", help="output of `sparsetrain report --format json` for the runs")
    p.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                 "sparsetrain"),
                   help="sparsetrain binary, to make the report when --report is not given")
    p.add_argument("--aggregate", help="output of `sparsetrain report --group-by ... --format "
                   "json` for the runs: error bars over seeds, and lr_curves")
    p.add_argument("--epoch-runs", nargs="+", help="runs (by name) for dead_vs_epoch")
    p.add_argument("--selectivity-runs", nargs="+", help="runs (by name) for selectivity")
    args = p.parse_args(argv)
    try:
        runs = [Run(d) for d in args.runs]
        os.makedirs(args.out, exist_ok=True)
        written = []
        epoch_runs = pick(runs, args.epoch_runs, "--epoch-runs") or runs[:12]
        written += plot_dead_vs_epoch(epoch_runs, args.out, args.format)
        sel_runs = pick(runs, args.selectivity_runs, "--selectivity-runs")
        if sel_runs is None:
            sel_runs = default_selectivity_runs(runs)
        missing = [r.name for r in sel_runs if r.filters_final() is None]
        if missing:
            raise RunError(f"--selectivity-runs: {', '.join(missing)} has no "
                           "stats/filters_final.json")
        if sel_runs:
            written += plot_selectivity(sel_runs, args.out, args.format)
        else:
            print("plot_sparsity.py: no Adam/SGD pair with equal settings; no selectivity plot "
                  "(name runs with --selectivity-runs)", file=sys.stderr)
        if args.aggregate:
            agg = read_json(args.aggregate)
            written += plot_dead_vs_error_grouped(agg, args.out, args.format)
            if "optimizer.lr" in agg["group_by"]:
                written += plot_lr_curves(agg, args.out, args.format)
        else:
            written += plot_dead_vs_error(load_report(args, runs), args.out, args.format)
    except RunError as e:
        print(f"plot_sparsity.py: {e}", file=sys.stderr)
        return 1
    for w in written:
        print(w)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
