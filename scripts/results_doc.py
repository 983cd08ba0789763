#!/usr/bin/python3
"""Writes docs/results.md from the seeded study's reports (scripts/make_results.sh calls it).

    results_doc.py --report REPORT_JSON --grouped GROUPED_JSON --lr-grouped LR_GROUPED_JSON
                   --runs RUNS_ROOT --grids GRID... --base BASE_CONFIG --wall-log WALL_LOG
                   --plots PLOT_DIR --out DOC --seeds "1 2 3"

    results_doc.py --regimes RUN_DIR... --doc docs/sparsity-regimes.md

The second form rewrites the quickstart table of docs/sparsity-regimes.md (between its
regimes-table markers) from the quickstart run and its SGD twin (make_results.sh --regimes).

REPORT_JSON is `sparsetrain report --format json` over every run; GROUPED_JSON and
LR_GROUPED_JSON are `sparsetrain report --group-by auto --format json` over every run and
over the learning-rate study's runs: each group is one setting, its figures the mean, sample
standard deviation, min and max over the seeds. Every number in the document comes from
these, or from the runs' own metrics (time per run); each verdict is computed from them by the
rule stated in the document.
"""

import argparse
import glob
import json
import math
import os
import platform
import re
import sys

OPTIMIZER_ORDER = ["sgd", "adam", "adamw", "adagrad", "rmsprop", "adadelta", "adamax"]
ADAPTIVE = ["adam", "adagrad", "rmsprop", "adadelta", "adamax"]


def read_json(path):
    with open(path) as f:
        return json.load(f)


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def same_value(have, want):
    a, b = num(have), num(want)
    if a is not None and b is not None:
        return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-300)
    return str(have) == str(want)


class Groups:
    """The groups of a --group-by report, found by the settings they must have."""

    def __init__(self, grouped, base):
        self.groups = grouped["groups"] if grouped else []
        self.last_k = grouped.get("last_k", 3) if grouped else 3
        self.base = base  # settings a group takes when it does not list them

    def find(self, **want):
        """The one group whose settings agree with `want` (dotted keys spelled with '__',
        `lambda_` for lambda) and, for the keys `want` does not name, with the base. Settings
        neither names (decay/step, optimizer.momentum, ...) follow from these."""
        named = {k.replace("__", ".").rstrip("_"): v for k, v in want.items()}
        target = dict(self.base)
        target.update(named)
        # A key that is not a group setting did not vary: every run has the base's value.
        if not self.groups:
            return None
        for k, v in named.items():
            if k not in self.groups[0]["settings"]:
                if k not in self.base or not same_value(v, self.base[k]):
                    return None
        hits = [g for g in self.groups
                if all(same_value(g["settings"][k], v) for k, v in target.items()
                       if k in g["settings"])]
        return hits[0] if len(hits) == 1 else None


def fig(g, name):
    f = g["figures"].get(name, {"n": 0}) if g else {"n": 0}
    return f if f.get("n", 0) > 0 else None


def ms(f, digits=1, unit=""):
    """mean +- std (min-max), n."""
    if f is None:
        return "-"
    s = f"{f['mean']:.{digits}f} ± {f['std']:.{digits}f}{unit}"
    if f["n"] > 1:
        s += f" ({f['min']:.{digits}f}–{f['max']:.{digits}f})"
    return s


def compare(a, b):
    """The rule: A > B holds when A's range over seeds lies above B's (min A > max B); it fails
    when it lies below; otherwise the difference is within the seed noise."""
    if a is None or b is None:
        return "not measured"
    if a["n"] < 2 or b["n"] < 2:
        return "one seed only"
    if a["min"] > b["max"]:
        return "more"
    if a["max"] < b["min"]:
        return "less"
    return "within noise"


# A setting whose mean validation error is this close to chance (90 % for 10 classes) did not
# train: its dead filters are a collapse, not implicit sparsity.
COLLAPSED_VAL_ERROR = 80.0


def collapsed(g):
    f = fig(g, "val_error_pct")
    return f is not None and f["mean"] > COLLAPSED_VAL_ERROR


def short_of_seeds(cmps):
    return any(c in ("one seed only", "not measured") for c in cmps)


def verdict(word):
    return f"**{word}**"


def lr_table(lrg, optimizers):
    by_opt = {}
    for g in lrg.groups:
        opt = g["settings"].get("optimizer")
        lr = num(g["settings"].get("optimizer.lr"))
        if opt is None or lr is None:
            continue
        by_opt.setdefault(opt, []).append((lr, g))
    for v in by_opt.values():
        v.sort(key=lambda t: t[0])
    return {o: by_opt[o] for o in optimizers if o in by_opt}


def chosen_rate(points):
    """The rate with the lowest mean validation error (ties: the smaller rate)."""
    best = None
    for lr, g in points:
        f = fig(g, "val_error_pct")
        if f is None:
            continue
        if best is None or f["mean"] < best[2]["mean"]:
            best = (lr, g, f)
    return best


def run_times(report, runs_root):
    secs = []
    for r in report["rows"]:
        path = os.path.join(r["run"], "metrics.jsonl")
        last = None
        if os.path.exists(path):
            with open(path) as f:
                for line in f:
                    if line.strip():
                        last = json.loads(line)
        if last and "elapsed_s" in last:
            secs.append(last["elapsed_s"])
    return secs


def kernel_sets(runs_root):
    """The CPU kernel sets the runs' logs name ("cpu (kernels avx2 (...))"), sorted."""
    found = set()
    for log in glob.glob(os.path.join(runs_root, "*", "*", "sweep.log")):
        with open(log, errors="replace") as f:
            for line in f:
                m = re.search(r"cpu \(kernels (\S+)", line)
                if m:
                    found.add(m.group(1))
                    break
    return sorted(found)


def cpu_family_model():
    """ "family 25 model 1" from /proc/cpuinfo, or "" where it is not there."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("cpu family", "model") and key.strip() not in fields:
                    fields[key.strip()] = value.strip()
                if not line.strip():
                    break
    except OSError:
        pass
    if len(fields) < 2:
        return ""
    return f"family {fields['cpu family']} model {fields['model']}"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def per_layer(record, source):
    counts = record["dead"].get(source)
    if counts is None:
        return "-"
    layers = sorted(counts, key=lambda n: (len(n), n))
    return (" ".join(str(counts[l]) for l in layers) +
            f" = {record['dead_total'][source]}/{record['filters_total']}")


def regimes(argv):
    p = argparse.ArgumentParser(description="the quickstart table of sparsity-regimes.md")
    p.add_argument("--regimes", nargs="+", required=True, help="run directories")
    p.add_argument("--doc", required=True)
    a = p.parse_args(argv)
    rows = ["| run | epochs | test acc (last) | dead, exact pass (C1..C7) | dead, train passes "
            "| dead, \\|gamma\\| < 1e-3 | first epoch with a dead filter (train pass) |",
            "|---|---|---|---|---|---|---|"]
    for run in a.regimes:
        cfg = read_json(os.path.join(run, "config.json"))
        ms_ = metrics(run)
        last = ms_[-1]
        o, r = cfg["optimizer"], cfg["regularization"]
        extra = f", momentum {o['momentum']}" if "momentum" in o else ""
        name = f"{o['name']} lr {o['lr']:g}{extra}, {r['kind']} {r.get('lambda', 0):g}"
        first = next((m["epoch"] for m in ms_ if m["dead_total"].get("train_pass", 0) > 0), None)
        acc = f"{100 * last['test_acc']:.2f} %" if "test_acc" in last else "-"
        rows.append(f"| {name} | {last['epoch']} | {acc} | {per_layer(last, 'exact_eval')} "
                    f"| {per_layer(last, 'train_pass')} | {per_layer(last, 'gamma')} "
                    f"| {first if first else 'none'} |")
    with open(a.doc) as f:
        text = f.read()
    begin, end = "<!-- regimes-table:begin -->", "<!-- regimes-table:end -->"
    if begin not in text or end not in text:
        print(f"results_doc.py: {a.doc}: no {begin} ... {end} block", file=sys.stderr)
        return 1
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(a.doc, "w") as f:
        f.write(head + begin + "\n" + "\n".join(rows) + "\n" + end + tail)
    return 0


def parity_row(parity):
    """The parity line of the directions table, from scripts/parity_summary.py's parity.json."""
    name = "Accuracy parity with PyTorch"
    if parity is None:
        return (f"| {name} | **not measured** | `scripts/parity.sh` trains the quickstart config "
                "in both frameworks over seeds; it was not run for this page. |")
    acc, dead = parity["test_accuracy_percent"], parity["dead_filters"]
    ours, ref = acc["sparsetrain"], acc["pytorch"]
    from parity_summary import cell  # the same cells as parity.sh prints

    n = len(parity["seeds"])
    lower = sum(o < r for o, r in zip(ours["values"], ref["values"]))
    if ours["mean"] < ref["min"]:
        verdict = "**fails**"
    elif lower == n:
        # Unpaired runs: were the frameworks alike, each seed's comparison would be a fair coin.
        verdict = f"**within spread, but lower in all {n} seeds** (chance {0.5 ** n:.2g})"
    else:
        verdict = f"**holds** (lower in {lower} of {n} seeds)"
    if parity.get("subset_mode") == "first":
        name += f", both on the first {parity['train_subset']} training images"
        how = ("Same config with data.subset_mode \"first\": both frameworks train on the same "
               "images; each draws its own initialization and batch order per seed.")
    else:
        how = "Same config; each framework draws its own subset and initialization per seed."
    return (f"| {name} ({len(parity['seeds'])} seeds, configs/quickstart.json) | {verdict} | "
            f"test accuracy %: sparsetrain {cell(ours, 2)}, {parity['pytorch']} {cell(ref, 2)}; "
            f"dead filters: sparsetrain {cell(dead['sparsetrain'], 1)}, PyTorch "
            f"{cell(dead['pytorch'], 1)}. Per seed, sparsetrain / PyTorch accuracy: "
            + ", ".join(f"{o:.2f} / {r:.2f}" for o, r in zip(ours["values"], ref["values"]))
            + ". Rule: fails when sparsetrain's mean accuracy is below PyTorch's lowest seed. "
            + how + " |")


def binomial_tail(k, n):
    """P(X >= k) for X ~ Binomial(n, 1/2): the chance of k or more of n fair coin flips."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n


def parity_pooled(parities):
    """One paragraph over every parity row: how often each framework came out ahead per seed."""
    pairs = {"accuracy": [], "dead": []}
    for p in parities:
        acc, dead = p["test_accuracy_percent"], p["dead_filters"]
        pairs["accuracy"] += zip(acc["sparsetrain"]["values"], acc["pytorch"]["values"])
        pairs["dead"] += zip(dead["sparsetrain"]["values"], dead["pytorch"]["values"])
    n = len(pairs["accuracy"])
    lower = sum(o < r for o, r in pairs["accuracy"])
    more_dead = sum(o > r for o, r in pairs["dead"])
    mean_gap = sum(o - r for o, r in pairs["accuracy"]) / n
    dead_gap = sum(o - r for o, r in pairs["dead"]) / n
    return (f"Over the {len(parities)} parity rows together ({n} seeds a framework): sparsetrain's "
            f"test accuracy is lower in {lower} of {n} seeds (mean difference {mean_gap:+.2f} "
            f"points; {lower} or more of {n} happens with chance {binomial_tail(lower, n):.2g} "
            f"when the frameworks train alike), and it counts more dead filters in "
            f"{more_dead} of {n} (mean difference {dead_gap:+.1f} filters; chance "
            f"{binomial_tail(more_dead, n):.2g}). The last epoch's test accuracy swings by "
            "several points from seed to seed at this constant learning rate, so only such "
            "counts over many seeds can show a gap of a point.")


def main(argv):
    if "--regimes" in argv:
        return regimes(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--report", required=True)
    p.add_argument("--grouped", required=True)
    p.add_argument("--lr-grouped", required=True)
    p.add_argument("--runs", required=True)
    p.add_argument("--grids", nargs="+", required=True)
    p.add_argument("--base", required=True)
    p.add_argument("--wall-log", required=True)
    p.add_argument("--plots", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", default="1 2 3")
    p.add_argument("--parity", nargs="*", default=[],
                   help="parity.json files of scripts/parity.sh (optional; one row each)")
    a = p.parse_args(argv)

    report = read_json(a.report)
    base_cfg = read_json(a.base)
    grouped = read_json(a.grouped)
    lr_grouped = read_json(a.lr_grouped) if os.path.exists(a.lr_grouped) else None
    seeds = a.seeds.split()
    lam = str(base_cfg["regularization"]["lambda"])
    base = {"regularization": "l2", "lambda": lam, "training.batch_size":
            str(base_cfg["training"]["batch_size"]), "training.epochs":
            str(base_cfg["training"]["epochs"]), "model.width": str(base_cfg["model"]["width"]),
            "data.label_noise": str(base_cfg["data"].get("label_noise", 0))}
    G = Groups(grouped, base)
    LR = Groups(lr_grouped, base)
    planned = {}
    for grid in a.grids:
        with open(grid) as f:
            planned[os.path.basename(grid)] = [ln.split()[0] for ln in f
                                               if ln.strip() and not ln.startswith("#")]
    done = {os.path.basename(r["run"].rstrip("/")) for r in report["rows"]}
    missing = {g: [n for n in names if n not in done] for g, names in planned.items()}

    out = []
    w = out.append
    w("# Results: implicit filter sparsity on Fashion-MNIST, on the CPU, over seeds")
    w("")
    w("<!-- Generated by scripts/make_results.sh; edit scripts/results_doc.py instead. -->")
    w("")
    w("A reduced version of the paper's study (Mehta et al., CVPR 2019; definitions in "
      "[sparsity.md](sparsity.md)), sized for a 2-core machine, with every setting run over "
      f"{len(seeds)} seeds. Every number below comes from `sparsetrain report` over the run "
      "directories, per run or aggregated over seeds with `--group-by auto` (every setting "
      "that varies except `training.seed`); `bash scripts/make_results.sh` reruns (or "
      "resumes) the sweep and regenerates this page and its plots.")
    w("")

    # --- budget ---------------------------------------------------------------------------
    d, m, t = base_cfg["data"], base_cfg["model"], base_cfg["training"]
    n_train = int(d["train_subset"] * (1 - d.get("validation_split", 0)))
    n_val = d["train_subset"] - n_train
    steps = t["epochs"] * math.ceil(n_train / t["batch_size"])
    secs = run_times(report, a.runs)
    walls = []
    if os.path.exists(a.wall_log):
        with open(a.wall_log) as f:
            walls = [ln.strip() for ln in f if ln.strip()]
    w("## Scale and budget")
    w("")
    w(f"- Network: BasicNet (our reconstruction, docs/config.md) at width {m['width']} "
      "(an eighth of the paper's channels: 232 filters in 7 conv-BN-ReLU blocks).")
    w(f"- Data: {d['train_subset']} Fashion-MNIST training images (a stratified draw, seed "
      f"{d['subset_seed']}): {n_train} train, {n_val} are held out as the validation split "
      "that picks learning rates; the full 10000-image test set is only reported.")
    w(f"- Training: batch {t['batch_size']}, {t['epochs']} epochs = {steps} steps, constant "
      f"learning rate, L2 {lam} unless a direction varies it, seeds {', '.join(seeds)}. "
      "Validation and test error after the last epoch; dead filters by the exact pass after "
      "the last epoch (`exact_eval`: BN in inference mode over the training images, the "
      "paper's definition), used in every table.")
    sets = kernel_sets(a.runs)
    fm = cpu_family_model()
    w(f"- Machine: {cpu_model()}{f' ({fm})' if fm else ''}, 2 cores, CPU kernel set "
      f"{', '.join(sets) if sets else 'not recorded'} (from the runs' logs), shared with other "
      "work (builds and test suites) while the sweep ran; runs at most two at a time (jobs per "
      "grid below), one thread each, under `nice -n 10`. A run is bit-reproducible for one "
      "kernel set and thread count; on another kernel set the float sums differ and each seed "
      "ends elsewhere, so compare spreads, not single runs, across machines.")
    if secs:
        w(f"- Compute: {len(secs)} runs finished; their own run times add up to "
          f"{sum(secs) / 3600:.1f} h (median {sorted(secs)[len(secs) // 2]:.0f} s per run)."
          + (" Wall time per grid: " + "; ".join(walls) + "." if walls else ""))
    w("- Scale: every figure on this page comes from this reduced scale. The paper's scale "
      "(CIFAR-10/100, full width, 40+ epochs) has ready configs in `configs/` "
      "(configs/README.md gives the measured CPU time per epoch); GPU time is unmeasured.")
    for grid, names in missing.items():
        if not names:
            continue
        listed = ", ".join(names) if len(names) <= 24 else (
            ", ".join(names[:24]) + f" and {len(names) - 24} more")
        w(f"- **Not finished within this budget:** {len(names)} of {len(planned[grid])} runs of "
          f"`{grid}`: {listed}. What needs them says \"not measured\", and cells with fewer "
          "seeds show their n.")
    w("")
    w("**The rule used to call a direction.** With 3 seeds per setting, setting A gives more "
      "dead filters than B when A's range over seeds lies entirely above B's (min of A > max "
      "of B); less when entirely below; otherwise the difference is *within noise*. For 3 "
      "against 3 seeds, complete separation happens by chance with probability 2/20 = 0.1 "
      "when the two settings do not differ (a permutation test, two-sided; 2/6 = 0.33 for 2 "
      "against 2 seeds, where a cell is still short of its third seed), so \"holds\" "
      "here is a modest bar and \"within noise\" is a real answer, not a failure to run. "
      "Figures are mean ± sample standard deviation (min–max) over the seeds.")
    w("")

    # --- learning-rate study --------------------------------------------------------------
    w("## Adaptive optimizers against SGD, learning rate by learning rate")
    w("")
    table = lr_table(LR, OPTIMIZER_ORDER)
    verdict_rows = []
    across = ""
    if not table:
        w("Not measured: no run of the learning-rate study finished.")
    else:
        w("Each optimizer over 4 learning rates of its usual range (`configs/sweeps/grid.sh "
          "lrgrid`), with the same data, width, batch, epochs, L2 strength and seeds. SGD "
          "uses momentum 0.9. AdamW is Adam with decoupled decay, so it is not in this L2 "
          "study; it is in the regularization direction below.")
        w("")
        w("| optimizer | lr | n | % dead (exact) | val error % | test error % | mean selectivity |")
        w("|---|---|---|---|---|---|---|")
        chosen = {}
        for opt, pts in table.items():
            c = chosen_rate(pts)
            if c:
                chosen[opt] = c
            for lr, g in pts:
                edge = c and c[0] == lr and lr in (pts[0][0], pts[-1][0])
                mark = (" (chosen, grid edge)" if edge else " (chosen)") if c and c[0] == lr else (
                    " (collapsed)" if collapsed(g) else "")
                w(f"| {opt} | {lr:g}{mark} | {g['n']} | {ms(fig(g, 'total_dead_activation_pct'))} "
                  f"| {ms(fig(g, 'val_error_pct'), 2)} | {ms(fig(g, 'test_error_pct'), 2)} "
                  f"| {ms(fig(g, 'mean_selectivity'), 3)} |")
        w("")
        w("Each optimizer's rate is the one with the lowest mean **validation** error (marked "
          "chosen); the test set plays no part in the choice. A rate marked collapsed did not "
          f"train (mean validation error above {COLLAPSED_VAL_ERROR:.0f} %, chance is 90 %): "
          "its dead filters come with a network that predicts one class, not with implicit "
          "sparsity, and it is left out of the comparisons across the grid. A rate chosen at "
          "the edge of its grid may not be the optimizer's best: the grid did not bracket it.")
        w("")
        w("![dead filters and validation error against learning rate](results/lr_curves.png)")
        w("")
        sgd = chosen.get("sgd")
        w("### At each optimizer's chosen rate")
        w("")
        w("| optimizer | chosen lr | % dead (exact) | against SGD | val error % | test error % |")
        w("|---|---|---|---|---|---|")
        more = []
        for opt, (lr, g, _) in chosen.items():
            dead = fig(g, "total_dead_activation_pct")
            cmp_ = "-" if opt == "sgd" or not sgd else compare(dead, fig(sgd[1], "total_dead_activation_pct"))
            if opt in ADAPTIVE and sgd:
                verdict_rows.append((opt, cmp_))
                if cmp_ == "more":
                    more.append(opt)
            w(f"| {opt} | {lr:g} | {ms(dead)} | {cmp_} | {ms(fig(g, 'val_error_pct'), 2)} "
              f"| {ms(fig(g, 'test_error_pct'), 2)} |")
        w("")
        top = max(((fig(g, "total_dead_activation_pct") or {"mean": 0})["mean"], o)
                  for o, (_, g, _) in chosen.items())
        w(f"At the chosen rates the largest mean dead fraction is {top[0]:.1f} % ({top[1]}). "
          "Where the validation-best rates leave few or no dead filters, the comparison at "
          "chosen rates says little about sparsity; the grid below shows where filters die.")
        w("")
        # Across the grid: does any rate of SGD reach the adaptive optimizers' sparsity?
        sgd_ok = [g for _, g in table.get("sgd", []) if not collapsed(g)
                  and fig(g, "total_dead_activation_pct")]
        if sgd_ok:
            sgd_top = max(fig(g, "total_dead_activation_pct")["max"] for g in sgd_ok)
            lines = []
            for opt in ADAPTIVE:
                if opt not in table:
                    continue
                trained = [(lr, g) for lr, g in table[opt] if not collapsed(g)]
                above = [lr for lr, g in trained if fig(g, "total_dead_activation_pct") and
                         fig(g, "total_dead_activation_pct")["min"] > sgd_top]
                lines.append(f"{opt} {len(above)} of {len(trained)}" +
                             (f" ({', '.join(f'{x:g}' for x in above)})" if above else ""))
            across = ("Across the grid (collapsed rates left out), rates whose dead fraction "
                      f"lies above SGD's highest trained seed ({sgd_top:.1f} %): "
                      + ", ".join(lines) + ".")
            w("Across the whole grid (collapsed rates left out): at how many of its rates an "
              "adaptive optimizer's dead fraction lies above every seed of SGD at every rate "
              f"that trained (min over seeds > {sgd_top:.1f} %, SGD's highest): "
              + ", ".join(lines) + ".")
            w("")
        # Layers.
        layers = [f[:-len("_dead_activation_pct")] for f in (lr_grouped or grouped)["figures"]
                  if f.endswith("_dead_activation_pct") and not f.startswith("total")]
        w("### Which layers die, per optimizer (chosen rate, % dead by layer, mean over seeds)")
        w("")
        w("| optimizer | " + " | ".join(layers) + " |")
        w("|---|" + "---|" * len(layers))
        for opt, (lr, g, _) in chosen.items():
            cells = []
            for l in layers:
                f = fig(g, f"{l}_dead_activation_pct")
                cells.append("-" if f is None else f"{f['mean']:.0f}")
            w(f"| {opt} | " + " | ".join(cells) + " |")
        w("")
        w("The same at each optimizer's lowest rate with at least 10 % of its filters dead "
          "(mean) that still trained (not collapsed):")
        w("")
        w("| optimizer | lr | " + " | ".join(layers) + " |")
        w("|---|---|" + "---|" * len(layers))
        for opt, pts in table.items():
            sparse = [(lr, g) for lr, g in pts if not collapsed(g) and
                      (fig(g, "total_dead_activation_pct") or {"mean": 0})["mean"] >= 10]
            if not sparse:
                w(f"| {opt} | none | " + " | ".join("-" for _ in layers) + " |")
                continue
            lr, g = sparse[0]
            cells = [f"{(fig(g, f'{l}_dead_activation_pct') or {'mean': 0})['mean']:.0f}"
                     for l in layers]
            w(f"| {opt} | {lr:g} | " + " | ".join(cells) + " |")
        w("")

    # --- the directions -------------------------------------------------------------------
    w("## The paper's directions, here")
    w("")
    w("| direction | here | numbers (mean ± std (min–max) % dead, exact pass) |")
    w("|---|---|---|")

    def dead(**kw):
        return fig(G.find(**kw), "total_dead_activation_pct")

    # 1. adaptive vs SGD.
    if verdict_rows:
        n_more = sum(1 for _, c in verdict_rows if c == "more")
        n_less = sum(1 for _, c in verdict_rows if c == "less")
        word = ("too few seeds" if any(c not in ("more", "less", "within noise")
                                        for _, c in verdict_rows) else
                "holds" if n_more == len(verdict_rows) else
                "fails" if n_less == len(verdict_rows) else
                "within noise" if n_more == 0 and n_less == 0 else "holds in part")
        w(f"| Adaptive optimizers give more sparsity than SGD (each at its validation-chosen "
          f"rate) | {verdict(word)} | " + "; ".join(f"{o}: {c}" for o, c in verdict_rows) +
          f" than SGD. {n_more} of {len(verdict_rows)} above SGD's range, {n_less} below. "
          "Rule: holds when every adaptive optimizer's range over seeds lies above SGD's. "
          + across + " |")
    else:
        w("| Adaptive optimizers give more sparsity than SGD | **not measured** | |")

    adam = dict(optimizer="adam", optimizer__lr="0.003")
    sgdk = dict(optimizer="sgd", optimizer__lr="0.03")
    # 2. no sparsity without regularization.
    an, sn = dead(regularization="none", lambda_="0", **adam), dead(regularization="none", lambda_="0", **sgdk)
    al = dead(**adam)
    if an and sn and al:
        ok = an["max"] == 0 and sn["max"] == 0 and al["min"] > 0
        w(f"| No sparsity without regularization | {verdict('holds' if ok else 'fails')} | "
          f"Adam none {ms(an)}, SGD none {ms(sn)}; Adam L2 {lam} {ms(al)}. Rule: holds when "
          "no unregularized seed has a dead filter and every Adam + L2 seed has some. |")
    else:
        w("| No sparsity without regularization | **not measured** | |")
    # 3. L2 vs decoupled at matched per-step decay.
    dec = [(lmb, dead(optimizer="adamw", optimizer__lr="0.003", regularization="decoupled",
                      lambda_=lmb)) for lmb in ("0.02", "0.2", "2.0")]
    if al and all(f for _, f in dec):
        parts = ", ".join(f"λ {float(l):g} (decay/step {float(l) * 3e-3:.0e}) {ms(f)}" for l, f in dec)
        cmps = [compare(al, f) for _, f in dec]
        word = ("too few seeds" if short_of_seeds(cmps) else
                "holds" if all(c == "more" for c in cmps) else
                "fails" if all(c == "less" for c in cmps) else "holds in part")
        sd = dead(optimizer="sgd", optimizer__lr="0.03", regularization="decoupled", lambda_="0.02")
        sl = dead(**sgdk)
        sgd_part = (f" SGD at matched per-step decay lr·λ = 6e-4: L2 {ms(sl)} vs decoupled "
                    f"{ms(sd)} ({compare(sl, sd)})." if sd and sl else "")
        w(f"| L2 gives more sparsity than decoupled weight decay | {verdict(word)} | Adam + L2 "
          f"{lam} {ms(al)} against AdamW at a ladder of per-step decays: {parts}; L2 is "
          + ", ".join(cmps) + " respectively." + sgd_part + " |")
    else:
        w("| L2 gives more sparsity than decoupled weight decay | **not measured** | |")
    # 4/5. strength.
    for name, k in (("Adam", adam), ("SGD", sgdk)):
        fs = [(s, dead(lambda_=s, **k)) for s in ("0.005", "0.01", lam)]
        if all(f for _, f in fs):
            cmps = [compare(fs[i + 1][1], fs[i][1]) for i in range(len(fs) - 1)]
            word = ("too few seeds" if short_of_seeds(cmps) else
                    "holds" if all(c == "more" for c in cmps) else
                    "fails" if any(c == "less" for c in cmps) else
                    "holds in part" if any(c == "more" for c in cmps) else "within noise")
            w(f"| Stronger regularization gives more sparsity ({name}) | {verdict(word)} | "
              + ", ".join(f"L2 {float(s):g}: {ms(f)}" for s, f in fs) +
              ". Each step up: " + ", ".join(cmps) + ". |")
        else:
            w(f"| Stronger regularization gives more sparsity ({name}) | **not measured** | |")
    # 6. batch.
    b32 = dead(training__batch_size="32", **adam)
    b32s = dead(training__batch_size="32", training__epochs="24", **adam)
    if al and b32:
        txt = (f"Adam + L2: batch {base['training.batch_size']} {ms(al)}; batch 32 at equal "
               f"epochs (a quarter of the steps) {ms(b32)} ({compare(al, b32)})")
        if b32s:
            txt += f"; batch 32 at equal steps {ms(b32s)} ({compare(al, b32s)})"
            word = ("too few seeds" if short_of_seeds([compare(al, b32s), compare(al, b32)]) else
                    "holds" if compare(al, b32s) == "more" else
                    "step-count effect" if compare(al, b32) == "more" else "within noise")
        else:
            txt += "; equal steps not measured"
            word = "too few seeds" if short_of_seeds([compare(al, b32)]) else "equal epochs only"
        w(f"| A smaller batch gives more sparsity | {verdict(word)} | {txt}. Rule: holds only "
          "when it holds at equal steps; a difference at equal epochs only is a step-count "
          "effect. |")
    else:
        w("| A smaller batch gives more sparsity | **not measured** | |")
    # 7. width.
    ws = [(x, dead(model__width=x, **adam)) for x in ("0.0625", base["model.width"], "0.25")]
    if all(f for _, f in ws):
        cmps = [compare(ws[0][1], ws[1][1]), compare(ws[1][1], ws[2][1])]
        w(f"| Width (the paper: wider nets have more dead filters in absolute terms; a smaller "
          f"net, fewer) | {verdict('too few seeds' if short_of_seeds(cmps) else 'see numbers')}"
          " | Adam + L2, % dead by width: "
          + ", ".join(f"{float(x):g}: {ms(f)}" for x, f in ws) +
          f". Narrower against the next wider: {', '.join(cmps)}. |")
    else:
        w("| Width | **not measured** | |")
    # 8. task difficulty: the same images with a fraction of the training labels made wrong.
    noise = ("0", "0.2", "0.4")
    parts, cmps = [], []
    for name, k in (("Adam", adam), ("SGD", sgdk)):
        gs = [(p, G.find(data__label_noise=p, **k)) for p in noise]
        fs = [(p, fig(g, "total_dead_activation_pct")) for p, g in gs]
        if not all(f for _, f in fs):
            continue
        cs = [compare(fs[i][1], fs[i + 1][1]) for i in range(len(fs) - 1)]
        cmps += cs
        errors = [fig(g, "test_error_pct") for _, g in gs]
        # A seed at chance (90 % test error for 10 classes) did not train: its dead filters
        # are a collapse, not implicit sparsity.
        at_chance = [f"{float(p) * 100:g} %" for (p, _), e in zip(fs, errors)
                     if e and e["max"] >= 0.98 * 90]
        parts.append(f"{name} + L2 {lam}, % dead at " + ", ".join(
            f"{float(p) * 100:g} % wrong labels {ms(f)} (test error {ms(e)} %)"
            for (p, f), e in zip(fs, errors))
            + ". Each easier step against the next harder: " + ", ".join(cs)
            + (f" (at {', '.join(at_chance)} wrong labels a seed stayed at chance, so part of "
               "that count is a collapse)" if at_chance else ""))
    if parts:
        word = ("too few seeds" if short_of_seeds(cmps) else
                "holds" if all(c == "more" for c in cmps) else
                "within noise" if all(c == "within noise" for c in cmps) else
                "fails" if "more" not in cmps else
                "holds in part" if "less" not in cmps else "mixed")
        w(f"| Easier task gives more sparsity (harder here: the same images and steps, with 20 % "
          f"or 40 % of the training labels made wrong, `data.label_noise`; validation and test "
          f"labels true) | {verdict(word)} | " + "; ".join(parts) + ". Rule: holds when each "
          "cleaner task's range lies above the next noisier one's, for both optimizers; fails "
          "when none does and some lie below. Wrong labels make the labels harder to fit, not "
          "the images harder to tell apart; the paper's own pair (CIFAR-10 against CIFAR-100, "
          "finer classes) is not installed, so this is a different kind of difficulty. |")
    else:
        w("| Easier task gives more sparsity | **not measured** | `grid.sh difficulty` makes the "
          "harder tasks (data.label_noise); they were not run for this page. |")
    parities = [read_json(p) for p in a.parity if os.path.exists(p)]
    for parity in parities or [None]:
        w(parity_row(parity))
    w("")
    if len(parities) > 1:
        w(parity_pooled(parities))
        w("")

    # --- the full aggregate ---------------------------------------------------------------
    w("## Every setting, aggregated over seeds")
    w("")
    w("`sparsetrain report --group-by auto` over all runs (markdown also in "
      "[results/grouped.md](results/grouped.md), csv and json next to it; the per-run "
      "table is [results/report.csv](results/report.csv)):")
    w("")
    with open(os.path.join(a.plots, "grouped.md")) as f:
        w(f.read().rstrip())
    w("")
    w("## Plots")
    w("")
    w("Dead filters per layer against epoch, seed 1 of each optimizer at one rate (lines: "
      "training-pass criterion each epoch; points: the exact pass after the last epoch):")
    w("")
    w("![dead filters per layer against epoch](results/dead_vs_epoch.png)")
    w("")
    w("Dead filters against test error, learning-rate study, mean ± std over seeds:")
    w("")
    w("![dead filters against test error](results/dead_vs_error.png)")
    w("")
    w("## Reproducing")
    w("")
    w("```")
    w("bash scripts/make_results.sh              # runs/study/, resumable; then this page")
    w("bash scripts/make_results.sh --doc-only   # this page from the runs that exist")
    w("bash scripts/make_results.sh --studies \"lr directions parity\"   # with the PyTorch "
      "parity runs (runs/study/parity*, about 10 min a seed on 2 cores)")
    w("```")
    w("The grids are `runs/study/lr.txt` and `runs/study/directions.txt`, written from "
      "`configs/sweeps/grid.sh` calls on top of `configs/sweeps/study_base.json`.")
    w("")
    with open(a.out, "w") as f:
        f.write("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
