#!/usr/bin/env bash
# Regenerates docs/results.md and its plots (docs/results/): runs, or resumes, the reduced
# grid of the CPU reproduction into runs/results/, then `sparsetrain report`,
# scripts/plot_sparsity.py and scripts/results_doc.py over its run directories.
#
#   bash scripts/make_results.sh [--jobs N] [--out DIR] [--doc-only]
#
# --jobs N    runs at once (default 2, one thread each on 2 cores)
# --out DIR   where the run directories go (default runs/results)
# --doc-only  do not train: report on the runs that exist
#
# The grid, in the order it runs (the runs that answer the paper's six directions first):
# Adam and SGD with L2 at the strongest lambda, both without regularization, AdamW, the weaker
# strengths, a 4x larger batch, the other adaptive optimizers, SGD's weaker strengths.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=2 out=runs/results doc_only=0
while [ $# -gt 0 ]; do
  case "$1" in
  --jobs) jobs="${2:?}" && shift 2 ;;
  --out) out="${2:?}" && shift 2 ;;
  --doc-only) doc_only=1 && shift ;;
  *) echo "make_results.sh: unknown argument '$1'" >&2 && exit 2 ;;
  esac
done

base=configs/sweeps/results_base.json
strengths="2e-3 5e-3 1e-2"
strongest=1e-2
big_batch=64
plots=docs/results

results_grid() {
  local g=configs/sweeps/grid.sh
  bash $g paper --optimizers "adam sgd" --regs l2 --strengths "$strongest"
  bash $g paper --optimizers "adam sgd" --regs none
  bash $g paper --optimizers adamw --regs decoupled --strengths "$strongest"
  bash $g paper --optimizers adam --regs l2 --strengths "${strengths% $strongest}"
  bash $g batch --optimizers adam --strengths "$strongest" --values "$big_batch"
  bash $g paper --optimizers "adagrad rmsprop adamax adadelta" --regs l2 --strengths "$strongest"
  bash $g paper --optimizers sgd --regs l2 --strengths "${strengths% $strongest}"
}

[ -x build/sparsetrain ] || bash scripts/build.sh
mkdir -p "$out" "$plots"
results_grid >"$out/grid.txt"

if [ "$doc_only" = 0 ]; then
  # The sweep runs a copy of the binary, so that rebuilding meanwhile cannot break it.
  mkdir -p "$out/.bin"
  cp build/sparsetrain "$out/.bin/sparsetrain.new" && mv "$out/.bin/sparsetrain.new" "$out/.bin/sparsetrain"
  start=$(date +%s)
  status=0
  bash configs/sweeps/run_grid.sh "$out/grid.txt" "$out" --jobs "$jobs" --base "$base" \
    --bin "$out/.bin/sparsetrain" || status=$?
  echo "$(($(date +%s) - start)) seconds, $(date -u +%Y-%m-%dT%H:%M:%SZ), jobs $jobs, exit $status" \
    >>"$out/wall_time.log"
  [ "$status" = 0 ] || echo "make_results.sh: some runs failed; the document names them" >&2
fi

mapfile -t dirs < <(awk 'NF && $1 !~ /^#/ { print d "/" $1 }' d="$out" "$out/grid.txt")
./build/sparsetrain report --skip-incomplete "${dirs[@]}" >"$plots/report.md"
./build/sparsetrain report --skip-incomplete --format json "${dirs[@]}" >"$plots/report.json"
./build/sparsetrain report --skip-incomplete --format csv "${dirs[@]}" >"$plots/report.csv"
mapfile -t done_dirs < <(/usr/bin/python3 -c 'import json,sys; [print(r["run"]) for r in json.load(open(sys.argv[1]))["rows"]]' "$plots/report.json")
epoch_runs=()
for n in adam-l2-$strongest sgd-l2-$strongest adam-none adamw-decoupled-$strongest \
  adam-l2-${strengths%% *} adam-l2-$strongest-bs$big_batch; do
  [ -f "$out/$n/summary.json" ] && epoch_runs+=("$n")
done
sel_runs=()
[ -f "$out/adam-l2-$strongest/summary.json" ] && [ -f "$out/sgd-l2-$strongest/summary.json" ] &&
  sel_runs=(--selectivity-runs "adam-l2-$strongest" "sgd-l2-$strongest")
/usr/bin/python3 scripts/plot_sparsity.py "${done_dirs[@]}" --out "$plots" \
  --report "$plots/report.json" --epoch-runs "${epoch_runs[@]}" "${sel_runs[@]}"
/usr/bin/python3 scripts/results_doc.py --report "$plots/report.json" --table "$plots/report.md" \
  --runs "$out" --grid "$out/grid.txt" --base "$base" --wall-log "$out/wall_time.log" \
  --plots "$plots" --out docs/results.md --strengths "$strengths" --big-batch "$big_batch"
