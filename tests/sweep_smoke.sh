#!/usr/bin/env bash
# Smoke test of the sweep tooling: a two-config grid through configs/sweeps/run_grid.sh (two
# jobs at once), `sparsetrain report` on its output, skipping, resuming and extending runs on
# later passes, a stale completed run refused, a failing line reported, a malformed grid
# refused, and scripts/plot_sparsity.py when matplotlib is present.
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
grep -q '^| optimizer | regularization | lambda | optimizer.lr | epochs |' "$tmp/report.md" ||
  fail "report header: $(head -1 "$tmp/report.md")"
grep -q '^| adam | l2 | 0.01 | 0.01 | 1 |' "$tmp/report.md" || fail "report adam row: $(cat "$tmp/report.md")"
grep -q '^| sgd | l2 | 0.01 | 0.05 | 1 |' "$tmp/report.md" || fail "report sgd row: $(cat "$tmp/report.md")"
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

# 8. Plots, when matplotlib is there.
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
else
  echo "sweep_smoke: matplotlib missing, plots not checked"
fi

echo "sweep_smoke: PASS"
