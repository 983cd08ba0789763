#!/usr/bin/python3
"""Writes docs/results.md from the reduced grid's report (scripts/make_results.sh calls it).

    results_doc.py --report REPORT_JSON --table REPORT_MD --runs RUNS_ROOT --grid GRID
                   --base BASE_CONFIG --wall-log WALL_LOG --plots PLOT_DIR --out DOC

Every number in the document comes from `sparsetrain report` (REPORT_JSON, REPORT_MD) over
the run directories, or from the runs' own metrics (time per run); the verdict on each of the
paper's directions is computed from those numbers by the rules stated next to it.
"""

import argparse
import json
import os
import platform
import sys


def read_json(path):
    with open(path) as f:
        return json.load(f)


def run_name(row):
    return os.path.basename(row["run"].rstrip("/"))


class Results:
    def __init__(self, report):
        self.rows = {run_name(r): r for r in report["rows"]}
        self.skipped = report.get("skipped", [])

    def has(self, *names):
        return all(n in self.rows for n in names)

    def dead(self, name):
        return self.rows[name]["total_dead_activation_pct"]

    def dead_gamma(self, name):
        return self.rows[name]["total_dead_gamma_pct"]

    def error(self, name):
        return self.rows[name]["test_error_pct"]

    def selectivity(self, name):
        return self.rows[name]["mean_selectivity"]


def pct(v):
    return f"{v:.1f} %"


def verdict(word):
    return f"**{word}**"


NOT_MEASURED = (verdict("not measured"), "the runs it needs are missing from the sweep")
NO_SPARSITY = "not testable here"


def none_dead(res, names):
    """True when none of the runs has a dead filter: a comparison of sparsity says nothing."""
    return all(res.dead(n) == 0 for n in names)


def adaptive_vs_sgd(res, lam):
    sgd = f"sgd-l2-{lam}"
    adaptive = [n for n in (f"{o}-l2-{lam}" for o in
                            ("adam", "adagrad", "rmsprop", "adamax", "adadelta")) if n in res.rows]
    if sgd not in res.rows or not adaptive:
        return NOT_MEASURED
    more = [n for n in adaptive if res.dead(n) > res.dead(sgd)]
    parts = ", ".join(f"{n.split('-')[0]} {pct(res.dead(n))}" for n in adaptive)
    text = (f"L2 {lam}: SGD {pct(res.dead(sgd))} dead; {parts}. "
            f"{len(more)} of {len(adaptive)} adaptive optimizers end with more dead filters "
            "than SGD.")
    if none_dead(res, adaptive + [sgd]):
        return verdict(NO_SPARSITY), text + " No run has a dead filter."
    if len(more) == len(adaptive):
        return verdict("holds"), text
    if more:
        return verdict("holds in part"), text
    return verdict("does not hold"), text


def no_sparsity_without_reg(res, lam):
    unreg = [n for n in ("adam-none", "sgd-none") if n in res.rows]
    if not unreg or f"adam-l2-{lam}" not in res.rows:
        return NOT_MEASURED
    parts = "; ".join(f"{n}: {pct(res.dead(n))} (BN scale {pct(res.dead_gamma(n))})"
                      for n in unreg)
    text = (f"Without regularization {parts}; Adam with L2 {lam}: "
            f"{pct(res.dead(f'adam-l2-{lam}'))}. Rule: holds when no unregularized run has a "
            "dead filter while the regularized Adam run has some.")
    if res.dead(f"adam-l2-{lam}") == 0 and none_dead(res, unreg):
        return verdict(NO_SPARSITY), text + " The regularized run has none either."
    ok = all(res.dead(n) == 0 for n in unreg) and res.dead(f"adam-l2-{lam}") > 0
    return verdict("holds" if ok else "does not hold"), text


def l2_vs_decoupled(res, lam):
    a, w = f"adam-l2-{lam}", f"adamw-decoupled-{lam}"
    if not res.has(a, w):
        return NOT_MEASURED
    text = (f"Adam + L2 {lam}: {pct(res.dead(a))} dead, test error {res.error(a):.2f} %; "
            f"AdamW (decoupled) {lam}: {pct(res.dead(w))}, test error {res.error(w):.2f} %.")
    if none_dead(res, [a, w]):
        return verdict(NO_SPARSITY), text + " Neither has a dead filter."
    return verdict("holds" if res.dead(a) > res.dead(w) else "does not hold"), text


def stronger_reg(res, strengths, optimizer="adam"):
    names = [f"{optimizer}-l2-{s}" for s in strengths if f"{optimizer}-l2-{s}" in res.rows]
    if len(names) < 2:
        return NOT_MEASURED
    values = [res.dead(n) for n in names]
    parts = ", ".join(f"{n.split('-l2-')[1]}: {pct(v)}" for n, v in zip(names, values))
    text = (f"{ {'sgd': 'SGD', 'adam': 'Adam'}.get(optimizer, optimizer)} + L2, % dead by strength: {parts}. Rule: holds when the "
            "dead fraction never decreases as lambda grows and the strongest has more than the "
            "weakest.")
    if none_dead(res, names):
        return verdict(NO_SPARSITY), text + " No run has a dead filter."
    monotone = all(b >= a for a, b in zip(values, values[1:])) and values[-1] > values[0]
    if monotone:
        return verdict("holds"), text
    if values[-1] > values[0]:
        return verdict("holds in part"), text + " (not monotone)"
    return verdict("does not hold"), text


def smaller_batch(res, lam, base_batch, big_batch):
    small, big = f"adam-l2-{lam}", f"adam-l2-{lam}-bs{big_batch}"
    if not res.has(small, big):
        return NOT_MEASURED
    text = (f"Adam + L2 {lam}: batch {base_batch} {pct(res.dead(small))} dead, batch "
            f"{big_batch} {pct(res.dead(big))} (same epochs, so the larger batch also takes "
            f"{big_batch // base_batch}x fewer steps).")
    if none_dead(res, [small, big]):
        return verdict(NO_SPARSITY), text + " Neither has a dead filter."
    return verdict("holds" if res.dead(small) > res.dead(big) else "does not hold"), text


def adam_more_selective(res, lam):
    pairs = [(a, s) for a, s in ((f"adam-l2-{lam}", f"sgd-l2-{lam}"), ("adam-none", "sgd-none"))
             if res.has(a, s) and res.selectivity(a) >= 0 and res.selectivity(s) >= 0]
    if not pairs:
        return NOT_MEASURED
    parts = "; ".join(f"{a} {res.selectivity(a):.3f} vs {s} {res.selectivity(s):.3f}"
                      for a, s in pairs)
    text = (f"Mean selectivity of the live filters (fraction of training images a filter is "
            f"off for): {parts}. Rule: holds when Adam's is higher in every pair.")
    more = [p for p in pairs if res.selectivity(p[0]) > res.selectivity(p[1])]
    if len(more) == len(pairs):
        return verdict("holds"), text
    return verdict("holds in part" if more else "does not hold"), text


def run_seconds(runs_root, name):
    path = os.path.join(runs_root, name, "summary.json")
    if not os.path.exists(path):
        return None
    final = read_json(path).get("final") or {}
    return final.get("elapsed_s")


def wall_seconds(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return sum(float(line.split()[0]) for line in f if line.strip())


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def summary_table(res, names):
    lines = ["| run | % dead (activation, exact_eval) | % dead (BN scale) | test error % | "
             "mean selectivity | time (s) |", "|---|---|---|---|---|---|"]
    for n in names:
        if n not in res.rows:
            lines.append(f"| {n} | not run | | | | |")
            continue
        r = res.rows[n]
        sel = f"{r['mean_selectivity']:.3f}" if r["mean_selectivity"] >= 0 else "-"
        lines.append(f"| {n} | {r['total_dead_activation_pct']:.1f} | "
                     f"{r['total_dead_gamma_pct']:.1f} | {r['test_error_pct']:.2f} | {sel} | "
                     f"{r.get('_seconds', '-')} |")
    return "\n".join(lines)


def main(argv):
    p = argparse.ArgumentParser()
    for flag in ("report", "table", "runs", "grid", "base", "wall-log", "plots", "out"):
        p.add_argument(f"--{flag}", required=True)
    p.add_argument("--strengths", default="1e-3 3e-3 1e-2")
    p.add_argument("--big-batch", type=int, default=128)
    args = p.parse_args(argv)

    report = read_json(args.report)
    res = Results(report)
    base = read_json(args.base)
    with open(args.table) as f:
        table = f.read().strip()
    with open(args.grid) as f:
        names = [line.split()[0] for line in f if line.strip() and not line.startswith("#")]
    strengths = args.strengths.split()
    lam = strengths[-1]
    seconds = {}
    for n in names:
        s = run_seconds(args.runs, n)
        if s is not None and n in res.rows:
            seconds[n] = s
            res.rows[n]["_seconds"] = f"{s:.0f}"
    wall = wall_seconds(args.wall_log)
    batch = base["training"]["batch_size"]
    epochs = base["training"]["epochs"]
    subset = base["data"]["train_subset"]
    width = base["model"]["width"]
    steps = epochs * -(-subset // batch)
    plots = os.path.relpath(args.plots, os.path.dirname(os.path.abspath(args.out)))

    directions = [
        ("Adaptive optimizers give more sparsity than SGD", adaptive_vs_sgd(res, lam)),
        ("No sparsity without regularization", no_sparsity_without_reg(res, lam)),
        ("L2 gives more sparsity than decoupled weight decay under Adam",
         l2_vs_decoupled(res, lam)),
        ("Stronger regularization gives more sparsity (Adam)", stronger_reg(res, strengths)),
        ("Stronger regularization gives more sparsity (SGD)",
         stronger_reg(res, strengths, "sgd")),
        ("A smaller batch gives more sparsity", smaller_batch(res, lam, batch, args.big_batch)),
        ("Adam's features are more selective than SGD's", adam_more_selective(res, lam)),
    ]
    missing = [n for n in names if n not in res.rows]

    out = []
    w = out.append
    w("# Results: implicit filter sparsity on Fashion-MNIST, on the CPU\n")
    w("<!-- Generated by scripts/make_results.sh; edit scripts/results_doc.py instead. -->\n")
    w("A reduced version of the paper's grid (Mehta et al., CVPR 2019; see "
      "[sparsity.md](sparsity.md) for the definitions), small enough for a 2-core machine. "
      "Every number below comes from `sparsetrain report` over the run directories; "
      "`bash scripts/make_results.sh` reruns (or resumes) the sweep and regenerates this page "
      "and its plots.\n")
    w("## Budget\n")
    w(f"- Network: BasicNet (our reconstruction, docs/config.md) at width {width} "
      f"(a quarter of the paper's channels: 464 filters in 7 conv-BN-ReLU blocks).")
    w(f"- Data: {subset} Fashion-MNIST training images (a fixed subset, seed "
      f"{base['data']['subset_seed']}), the full 10000-image test set.")
    w(f"- Training: batch {batch}, {epochs} epochs = {steps} steps per run, constant learning "
      "rate, one seed. Test error after the last epoch; dead filters counted every epoch from "
      "the training passes (`train_pass`) and after the last epoch exactly (`exact_eval`: BN "
      "in inference mode over the whole training subset, the paper's definition, used in "
      "every table below).")
    total = sum(seconds.values())
    w(f"- Machine: {os.cpu_count()} cores ({cpu_model()}), shared with other work while the "
      f"sweep ran. {len(res.rows)} runs, two at a time with one thread each; their own "
      f"run times add up to {total / 60:.0f} min"
      + (f", the sweep took {wall / 60:.0f} min of wall time." if wall else "."))
    w("- Sizing: a first attempt at 3000 images, batch 32, 5 epochs (470 steps) left every "
      "Adam run without a single dead filter, so the budget went to more, smaller steps.")
    w("- Regularization strengths are "
      + ", ".join(strengths)
      + ", larger than the paper's 1e-4 to 1e-3: with a few hundred steps instead of tens of "
      "thousands, the paper's strengths leave too little time for the regularizer to win "
      "(`configs/sweeps/grid.sh paper` runs the paper's values).")
    w("- Learning rates per optimizer (configs/sweeps/README.md): SGD 0.05 with momentum 0.9, "
      "Adam/AdamW 3e-3, AdaGrad 1e-2, RMSProp 1e-3, AdaMax 2e-3, AdaDelta 1.0.\n")
    if missing or res.skipped:
        w("**Incomplete sweep.** Missing runs: " + ", ".join(missing) + ". The directions "
          "that need them say so.\n")

    w("## The paper's directions, here\n")
    w("| direction | here | numbers |")
    w("|---|---|---|")
    for title, (word, text) in directions:
        w(f"| {title} | {word} | {text} |")
    w("")
    w("Each optimizer ran at one learning rate chosen beforehand (configs/sweeps/README.md), "
      "not tuned on this task, and the learning-rate side study (`grid.sh lr`) is not part of "
      "this budget: an adaptive optimizer without dead filters here may have them at another "
      "rate or after more steps. Sparsity counts the filters dead by the activation "
      "criterion (`exact_eval`); the BN-scale criterion is in the tables below.\n")
    w("These are single-seed runs at a small budget: differences of a few percent are "
      "within the noise of one seed, and the verdicts are about this set-up, not about the "
      "paper's (CIFAR, 7 full-width layers, 40+ epochs).\n")

    w("## Summary\n")
    w(summary_table(res, names))
    w("")
    w("## The report\n")
    w("`sparsetrain report` over the run directories (per layer: % dead filters by the "
      "activation criterion, then by the BN-scale criterion |gamma| < 1e-3):\n")
    w(table)
    w("")
    w("## Plots\n")
    w("Dead filters per layer against epoch (lines: training-pass criterion each epoch; "
      "points: the exact pass after the last epoch):\n")
    w(f"![dead filters per layer against epoch]({plots}/dead_vs_epoch.png)\n")
    w("Per-filter selectivity after training, Adam against SGD (same L2 strength):\n")
    w(f"![selectivity histograms]({plots}/selectivity.png)\n")
    w("Dead filters against test error across the sweep:\n")
    w(f"![dead filters against test error]({plots}/dead_vs_error.png)\n")
    w("## Reproducing\n")
    w("```")
    w("bash scripts/make_results.sh            # runs/results/, resumable; then this page")
    w("bash scripts/make_results.sh --jobs 1   # one run at a time")
    w("```")
    w("The grid it runs is `runs/results/grid.txt`, written from `configs/sweeps/grid.sh` "
      f"calls on top of `configs/sweeps/results_base.json`.")

    with open(args.out, "w") as f:
        f.write("\n".join(out) + "\n")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
