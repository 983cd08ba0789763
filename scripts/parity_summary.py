#!/usr/bin/env python3
"""Summarizes scripts/parity.sh's runs: per framework, mean, std and range over seeds of the final
test accuracy and of the dead filters (exact criterion), as a markdown table on stdout and as
OUT_DIR/parity.json (read by scripts/results_doc.py).

    /usr/bin/python3 scripts/parity_summary.py OUT_DIR SEEDS   (SEEDS: 1,2,3,4,5)
"""

import json
import statistics
import sys


def stats(values):
    return {"mean": statistics.mean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values), "values": values}


def cell(s, digits):
    """mean ± std (min–max) of a stats() result."""
    return (f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f} "
            f"({s['min']:.{digits}f}–{s['max']:.{digits}f})")


def main(out, seeds):
    seeds = [int(s) for s in seeds.split(",")]
    acc = {"sparsetrain": [], "pytorch": []}
    dead = {"sparsetrain": [], "pytorch": []}
    config, torch_version = None, None
    for s in seeds:
        summary = json.load(open(f"{out}/sparsetrain-seed{s}/summary.json"))
        if summary.get("status") != "completed":
            sys.exit(f"parity_summary.py: {out}/sparsetrain-seed{s} did not complete")
        acc["sparsetrain"].append(100 * summary["final"]["test_acc"])
        dead["sparsetrain"].append(summary["final"]["dead_total"]["exact_eval"])
        t = json.load(open(f"{out}/pytorch-seed{s}.json"))
        acc["pytorch"].append(100 * t["test_accuracy"])
        dead["pytorch"].append(t["dead_total"])
        torch_version = t["framework"]
    # parity.sh writes the config both trained; the subset mode tells the two rows apart.
    try:
        data = json.load(open(f"{out}/config.json")).get("data", {})
    except FileNotFoundError:
        data = {}
    result = {"seeds": seeds, "pytorch": torch_version,
              "subset_mode": data.get("subset_mode", "stratified"),
              "train_subset": data.get("train_subset", 0),
              "test_accuracy_percent": {k: stats(v) for k, v in acc.items()},
              "dead_filters": {k: stats(v) for k, v in dead.items()}}
    with open(f"{out}/parity.json", "w") as f:
        json.dump(result, f, indent=1)

    print(f"seeds {seeds}, {torch_version}")
    print("| framework | test accuracy % | dead filters (exact) |")
    print("|---|---|---|")
    for k in acc:
        print(f"| {k} | {cell(result['test_accuracy_percent'][k], 2)} | "
              f"{cell(result['dead_filters'][k], 1)} |")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
