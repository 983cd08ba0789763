#!/usr/bin/env bash
# Smoke test of the sweep tooling: a two-config grid through configs/sweeps/run_grid.sh (two
# jobs at once), `sparsetrain report` on its output, skipping, resuming and extending runs on
# later passes, a stale completed run refused, a failing line reported, a malformed grid
# refused, a two-seed grid from grid.sh --seeds aggregated by `sparsetrain report --group-by`
# (checked against the per-run figures computed here from metrics.jsonl), and
# scripts/plot_sparsity.py when matplotlib is present.
#
#   bash tests/sweep_smoke.sh [SPARSETRAIN_BINARY]
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-$repo/build/sparsetrain}"
runner="$repo/configs/sweeps/run_grid.sh"
base="$repo/tests/configs/synthetic_tiny.json"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/sweep-smoke.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "sweep_smoke: FAIL: $*" >&2
  for f in "$tmp"/out/*/sweep.log; do
    [ -f "$f" ] && { echo "----- $f" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}
completed() { grep -Eq '"status"[[:space:]]*:[[:space:]]*"completed"' "$1/summary.json"; }
epochs_recorded() { grep -c '"epoch"' "$1/metrics.jsonl"; }

cat >"$tmp/grid.txt" <<'EOF'
# name  overrides
adam-l2  optimizer.name=adam optimizer.lr=1e-2 regularization.kind=l2 regularization.lambda=1e-2

sgd-l2   optimizer.name=sgd optimizer.lr=0.05 optimizer.momentum=0.9 regularization.kind=l2 regularization.lambda=1e-2
EOF

# 1. Both runs, two at a time.
bash "$runner" "$tmp/grid.txt" "$tmp/out" --jobs 2 --base "$base" --bin "$bin" \
  -- --set training.epochs=1 >"$tmp/pass1.txt" 2>&1 || { cat "$tmp/pass1.txt"; fail "first pass"; }
for run in adam-l2 sgd-l2; do
  completed "$tmp/out/$run" || fail "$run did not complete"
  [ "$(epochs_recorded "$tmp/out/$run")" = 1 ] || fail "$run: expected 1 epoch in metrics.jsonl"
  grep -q '"threads": 1' "$tmp/out/$run/config.json" || fail "$run: 2 jobs should use 1 thread each"
  grep -q "\"name\": \"$run\"" "$tmp/out/$run/config.json" || fail "$run: output.name not set"
done

# 2. The report tabulates both, with the optimizer telling the rows apart.
"$bin" report "$tmp/out/adam-l2" "$tmp/out/sgd-l2" >"$tmp/report.md" || fail "report failed"
# Columns: what differs (lr), not the keys that only one optimizer has (momentum, betas).
grep -q '^| optimizer | regularization | lambda | decay/step | optimizer.lr | activation source | epochs |' \
  "$tmp/report.md" || fail "report header: $(head -1 "$tmp/report.md")"
grep -q '^| adam | l2 | 0.01 | 0.01 (L2 grad) | 0.01 | [a-z_]* | 1 |' "$tmp/report.md" ||
  fail "report adam row: $(cat "$tmp/report.md")"
grep -q '^| sgd | l2 | 0.01 | 0.01 (L2 grad) | 0.05 | [a-z_]* | 1 |' "$tmp/report.md" ||
  fail "report sgd row: $(cat "$tmp/report.md")"
"$bin" report --format csv "$tmp/out"/*/ >"$tmp/report.csv" || fail "report over OUT/*/ failed"
[ "$(wc -l <"$tmp/report.csv")" = 3 ] || fail "csv report: expected a header and 2 rows"

# 3. A second pass skips the completed run and resumes the interrupted one (no summary).
rm "$tmp/out/sgd-l2/summary.json"
bash "$runner" "$tmp/grid.txt" "$tmp/out" --base "$base" --bin "$bin" \
  -- --set training.epochs=1 >"$tmp/pass2.txt" 2>&1 || { cat "$tmp/pass2.txt"; fail "second pass"; }
grep -q '^\[skip\]   adam-l2' "$tmp/pass2.txt" || fail "adam-l2 was not skipped: $(cat "$tmp/pass2.txt")"
grep -q '^\[resume\] sgd-l2' "$tmp/pass2.txt" || fail "sgd-l2 was not resumed: $(cat "$tmp/pass2.txt")"
grep -q 'resuming after epoch 1' "$tmp/out/sgd-l2/sweep.log" || fail "sgd-l2 did not resume from its checkpoint"
completed "$tmp/out/sgd-l2" || fail "sgd-l2 did not complete after resuming"
[ "$(epochs_recorded "$tmp/out/sgd-l2")" = 1 ] || fail "sgd-l2 was retrained"

# 4. More epochs extend completed runs (training.epochs is not part of the fingerprint).
bash "$runner" "$tmp/grid.txt" "$tmp/out" --base "$base" --bin "$bin" \
  -- --set training.epochs=2 >"$tmp/pass3.txt" 2>&1 || { cat "$tmp/pass3.txt"; fail "third pass"; }
for run in adam-l2 sgd-l2; do
  grep -q "^\[resume\] $run (training.epochs: saved 1, grid 2)" "$tmp/pass3.txt" ||
    fail "$run was not extended: $(cat "$tmp/pass3.txt")"
  [ "$(epochs_recorded "$tmp/out/$run")" = 2 ] || fail "$run: expected 2 epochs after extending"
  completed "$tmp/out/$run" || fail "$run did not complete after extending"
done

# 5. A completed run whose config no longer matches its line is not reused.
sed 's/regularization.lambda=1e-2$/regularization.lambda=2e-2/' "$tmp/grid.txt" >"$tmp/changed.txt"
if bash "$runner" "$tmp/changed.txt" "$tmp/out" --base "$base" --bin "$bin" \
  -- --set training.epochs=2 >"$tmp/pass4.txt" 2>&1; then
  fail "a completed run with another lambda was accepted: $(cat "$tmp/pass4.txt")"
fi
grep -q 'FAILED\] adam-l2: completed with another config (regularization.lambda: saved 0.01, grid 2e-2)' \
  "$tmp/pass4.txt" || fail "stale run not named: $(cat "$tmp/pass4.txt")"
[ "$(epochs_recorded "$tmp/out/adam-l2")" = 2 ] || fail "the stale run was touched"

# 6. A failing line: non-zero exit, and the failure named with its log.
echo "bad-lr optimizer.name=sgd optimizer.lr=-1" >>"$tmp/grid.txt"
if bash "$runner" "$tmp/grid.txt" "$tmp/out" --base "$base" --bin "$bin" \
  -- --set training.epochs=2 >"$tmp/pass5.txt" 2>&1; then
  fail "a sweep with a failing run exited 0"
fi
grep -q '1 of 3 runs did not complete' "$tmp/pass5.txt" || fail "no failure summary: $(cat "$tmp/pass5.txt")"
grep -q 'bad-lr   (log: ' "$tmp/pass5.txt" || fail "the failed run is not named"
grep -q 'optimizer.lr' "$tmp/pass5.txt" || fail "the failure's log tail is not shown"

# 7. A malformed grid is refused before anything runs.
printf 'dup optimizer.lr=1\ndup optimizer.lr=2\n' >"$tmp/dup.txt"
if bash "$runner" "$tmp/dup.txt" "$tmp/out2" --base "$base" --bin "$bin" 2>"$tmp/dup.err"; then
  fail "a grid with a repeated name was accepted"
fi
grep -q "run name 'dup' repeats line 1" "$tmp/dup.err" || fail "repeated name: $(cat "$tmp/dup.err")"
[ ! -e "$tmp/out2" ] || fail "a refused grid created its output directory"

# 8. Seeds: a two-seed grid, aggregated per setting; mean, std, min-max and n checked against
# the figures computed here from each run's last metrics line.
bash "$repo/configs/sweeps/grid.sh" paper --optimizers "adam sgd" --regs l2 --strengths 1e-2 \
  --seeds "1 2" >"$tmp/seeds.txt"
[ "$(wc -l <"$tmp/seeds.txt")" = 4 ] || fail "grid.sh --seeds: $(cat "$tmp/seeds.txt")"
grep -q '^adam-l2-1e-2-s2 .* training.seed=2$' "$tmp/seeds.txt" || fail "grid.sh --seeds: $(cat "$tmp/seeds.txt")"
bash "$runner" "$tmp/seeds.txt" "$tmp/seeds" --jobs 2 --base "$base" --bin "$bin" \
  -- --set training.epochs=1 >"$tmp/pass6.txt" 2>&1 || { cat "$tmp/pass6.txt"; fail "seed grid"; }
for fmt in json csv markdown; do
  "$bin" report --group-by auto --format "$fmt" "$tmp/seeds"/*/ >"$tmp/agg.$fmt" ||
    fail "report --group-by auto --format $fmt failed"
done
/usr/bin/python3 - "$tmp/seeds" "$tmp/agg.json" "$tmp/agg.csv" <<'PY' || fail "aggregate disagrees with the runs"
import csv, json, os, statistics, sys
root, agg, table = sys.argv[1], json.load(open(sys.argv[2])), list(csv.DictReader(open(sys.argv[3])))
def last(run):
    lines = [json.loads(l) for l in open(os.path.join(root, run, "metrics.jsonl")) if l.strip()]
    return lines[-1]
def figures(run):
    m = last(run)
    src = "exact_eval" if "exact_eval" in m["dead"] else "train_pass"
    return {"total_dead_activation_pct": 100.0 * m["dead_total"][src] / m["filters_total"],
            "test_error_pct": 100.0 * (1.0 - m["test_acc"])}
assert "training.seed" not in agg["group_by"], agg["group_by"]
assert len(agg["groups"]) == 2, [g["settings"] for g in agg["groups"]]
for g, row in zip(agg["groups"], table):
    opt = g["settings"]["optimizer"]
    runs = sorted(os.path.basename(r.rstrip("/")) for r in g["runs"])
    assert runs == [f"{opt}-l2-1e-2-s1", f"{opt}-l2-1e-2-s2"], runs
    assert g["n"] == 2 and row["n"] == "2", (g["n"], row["n"])
    for name in ("total_dead_activation_pct", "test_error_pct"):
        v = [figures(r)[name] for r in runs]
        want = {"mean": statistics.mean(v), "std": statistics.stdev(v), "min": min(v), "max": max(v)}
        got = g["figures"][name]
        for k, w in want.items():
            assert abs(got[k] - w) < 1e-9 * max(1, abs(w)), (opt, name, k, got[k], w)
            assert abs(float(row[f"{name}_{k}"]) - w) < 1e-4 * max(1, abs(w)), (opt, name, k, row)
        assert got["n"] == 2
print("aggregate ok")
PY
grep -q '^| optimizer | regularization | lambda | decay/step | optimizer.lr | activation source | n | total %dead act |' \
  "$tmp/agg.markdown" || fail "grouped markdown header: $(head -1 "$tmp/agg.markdown")"
if "$bin" report --group-by training.sed "$tmp/seeds"/*/ 2>"$tmp/agg.err"; then
  fail "an unknown --group-by key was accepted"
else
  [ $? = 2 ] || fail "an unknown --group-by key should exit 2"
fi
grep -q 'training.sed' "$tmp/agg.err" || fail "unknown key not named: $(cat "$tmp/agg.err")"

# 9. Plots, when matplotlib is there.
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  /usr/bin/python3 "$repo/scripts/plot_sparsity.py" "$tmp/out/adam-l2" "$tmp/out/sgd-l2" \
    --out "$tmp/plots" --bin "$bin" --format png svg --selectivity-runs adam-l2 sgd-l2 \
    >"$tmp/plots.txt" 2>&1 ||
    { cat "$tmp/plots.txt"; fail "plot_sparsity.py failed"; }
  for p in dead_vs_epoch selectivity dead_vs_error; do
    for ext in png svg; do
      [ -s "$tmp/plots/$p.$ext" ] || fail "plot $p.$ext not written"
    done
  done
  /usr/bin/python3 "$repo/scripts/plot_sparsity.py" "$tmp/seeds"/*/ --out "$tmp/plots-seeds" \
    --aggregate "$tmp/agg.json" >"$tmp/plots2.txt" 2>&1 ||
    { cat "$tmp/plots2.txt"; fail "plot_sparsity.py --aggregate failed"; }
  [ -s "$tmp/plots-seeds/dead_vs_error.png" ] || fail "plot with error bars not written"
else
  echo "sweep_smoke: matplotlib missing, plots not checked"
fi

echo "sweep_smoke: PASS"
