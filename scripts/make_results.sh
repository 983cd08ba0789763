#!/usr/bin/env bash
# Regenerates docs/results.md and its plots (docs/results/): runs, or resumes, the seeded study
# into runs/study/, then `sparsetrain report` (per run, and aggregated over seeds with
# --group-by auto), scripts/plot_sparsity.py and scripts/results_doc.py over its run directories.
#
#   bash scripts/make_results.sh [--jobs N] [--out DIR] [--doc-only] [--seeds "1 2 3"]
#                                [--studies "lr directions"]
#
# --jobs N     runs at once (default 2, one thread each on 2 cores)
# --out DIR    where the run directories go (default runs/study)
# --doc-only   do not train: report on the runs that exist (missing ones are named)
# --seeds L    seeds of every setting (default "1 2 3")
# --regimes    instead: run (or resume) configs/quickstart.json and its SGD twin into
#              runs/quickstart/ and regenerate the quickstart table of docs/sparsity-regimes.md
# --studies L  which grids to run (default both, in this order):
#   lr          the learning-rate study: SGD (momentum 0.9) and the adaptive optimizers that
#               take L2 through the gradient (Adam, AdaGrad, RMSProp, AdaDelta, AdaMax), each
#               over 4 rates of its usual range, L2 2e-2 (configs/sweeps/grid.sh lrgrid)
#   parity      accuracy parity with PyTorch: configs/quickstart.json in both frameworks over
#               seeds 1-5 (scripts/parity.sh, into OUT/parity), and again with both on the
#               first 10000 images (OUT/parity-first); not in the default list
#   directions  the other directions around Adam lr 3e-3 / SGD lr 0.03 with L2 2e-2:
#               regularization none / L2 / decoupled at a ladder of per-step decays, strength,
#               batch 32 at equal epochs and at equal steps, width, and a harder task (20 % and
#               40 % of the training labels made wrong, data.label_noise)
#
# Every grid runs seed by seed (all settings at seed 1, then seed 2, ...), so a sweep cut
# short still covers every setting. All runs share configs/sweeps/study_base.json.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=2 out=runs/study doc_only=0 seeds="1 2 3" studies="lr directions" regimes=0
while [ $# -gt 0 ]; do
  case "$1" in
  --jobs) jobs="${2:?}" && shift 2 ;;
  --out) out="${2:?}" && shift 2 ;;
  --doc-only) doc_only=1 && shift ;;
  --seeds) seeds="${2:?}" && shift 2 ;;
  --studies) studies="${2:?}" && shift 2 ;;
  --regimes) regimes=1 && shift ;;
  *) echo "make_results.sh: unknown argument '$1'" >&2 && exit 2 ;;
  esac
done

base=configs/sweeps/study_base.json
g=configs/sweeps/grid.sh
lambda=2e-2
plots=docs/results

# Lines of a grid ordered by seed (stable within a seed).
by_seed() {
  awk '{ s = $NF; sub(/.*=/, "", s); print s "\t" NR "\t" $0 }' | sort -k1,1n -k2,2n | cut -f3-
}

lr_grid() {
  bash $g lrgrid --optimizers "sgd adam adagrad rmsprop adadelta adamax" --strengths $lambda \
    --seeds "$seeds" | by_seed
}

# Adam at 3e-3 and SGD at 0.03 with L2 2e-2 are lines of the lr grid; these are the rest.
directions_grid() {
  {
    # Regularization: none; decoupled (AdamW) at per-step decays lr x lambda of 6e-5, 6e-4,
    # 6e-3; SGD decoupled at 6e-4, the per-step decay lr x lambda its L2 2e-2 applies.
    bash $g paper --optimizers "adam sgd" --regs none --lr adam=3e-3 --lr sgd=0.03 --seeds "$seeds"
    bash $g paper --optimizers adamw --regs decoupled --strengths "2e-2 2e-1 2" --lr adamw=3e-3 \
      --seeds "$seeds"
    bash $g paper --optimizers sgd --regs decoupled --strengths $lambda --lr sgd=0.03 --seeds "$seeds"
    # Strength.
    bash $g paper --optimizers "adam sgd" --regs l2 --strengths "5e-3 1e-2" --lr adam=3e-3 \
      --lr sgd=0.03 --seeds "$seeds"
    # Batch 32: equal epochs (6, a quarter of the steps), equal steps (24 epochs = 1200 steps).
    bash $g batch --optimizers adam --strengths $lambda --values 32 --lr adam=3e-3 --seeds "$seeds"
    # Width: half and twice the base's eighth width.
    bash $g width --optimizers adam --strengths $lambda --values "0.0625 0.25" --lr adam=3e-3 \
      --seeds "$seeds"
    # A harder task: the same images with 20 % and 40 % of the training labels made wrong
    # (the clean task is the lr grid's line).
    bash $g difficulty --optimizers "adam sgd" --strengths $lambda --values "0.2 0.4" \
      --lr adam=3e-3 --lr sgd=0.03 --seeds "$seeds" | grep -v -- '-clean-s'
    bash $g batch --optimizers adam --strengths $lambda --values 32 --lr adam=3e-3 --seeds "$seeds" |
      sed -E 's/^([^ ]*)-bs32-s([0-9]+) /\1-bs32-steps-s\2 /; s/ training.seed=/ training.epochs=24 training.seed=/'
  } | by_seed
}

[ -x build/sparsetrain ] || bash scripts/build.sh

if [ "$regimes" = 1 ]; then
  q=runs/quickstart
  mkdir -p "$q"
  printf '%s\n' "adam" "sgd optimizer.name=sgd optimizer.lr=0.05 optimizer.momentum=0.9" >"$q/grid.txt"
  if [ "$doc_only" = 0 ]; then
    nice -n 10 bash configs/sweeps/run_grid.sh "$q/grid.txt" "$q" --jobs "$jobs" \
      --base configs/quickstart.json || exit 1
  fi
  exec /usr/bin/python3 scripts/results_doc.py --regimes "$q/adam" "$q/sgd" \
    --doc docs/sparsity-regimes.md
fi

mkdir -p "$out" "$plots"
all_dirs=()
for study in $studies; do
  case "$study" in
  lr) lr_grid >"$out/lr.txt" ;;
  directions) directions_grid >"$out/directions.txt" ;;
  parity) ;; # scripts/parity.sh: its own config and seeds
  *) echo "make_results.sh: unknown study '$study' (lr, directions, parity)" >&2 && exit 2 ;;
  esac
done

if [ "$doc_only" = 0 ]; then
  # The sweep runs a copy of the binary, so that rebuilding meanwhile cannot break it.
  mkdir -p "$out/.bin"
  cp build/sparsetrain "$out/.bin/sparsetrain.new" && mv "$out/.bin/sparsetrain.new" "$out/.bin/sparsetrain"
  status=0
  for study in $studies; do
    start=$(date +%s)
    s=0
    if [ "$study" = parity ]; then
      nice -n 10 bash scripts/parity.sh configs/quickstart.json 1,2,3,4,5 "$out/parity" || s=$?
      # The same, both frameworks on the same images: the file's first 10000.
      nice -n 10 bash scripts/parity.sh configs/quickstart.json 1,2,3,4,5 "$out/parity-first" \
        data.subset_mode=first || s=$?
    else
      nice -n 10 bash configs/sweeps/run_grid.sh "$out/$study.txt" "$out/$study" --jobs "$jobs" \
        --base "$base" --bin "$out/.bin/sparsetrain" -- --threads 1 || s=$?
    fi
    echo "$study $(($(date +%s) - start)) seconds, $(date -u +%Y-%m-%dT%H:%M:%SZ), jobs $jobs, exit $s" \
      >>"$out/wall_time.log"
    [ "$s" = 0 ] || status=$s
  done
  [ "$status" = 0 ] || echo "make_results.sh: some runs failed or are missing; the document names them" >&2
fi

for study in lr directions; do
  [ -f "$out/$study.txt" ] || continue
  while read -r name _; do
    [ -n "$name" ] && all_dirs+=("$out/$study/$name")
  done <"$out/$study.txt"
done
# Completed runs only: a run still going has no exact pass or test error yet.
existing=()
for d in "${all_dirs[@]}"; do
  grep -Eqs '"status"[[:space:]]*:[[:space:]]*"completed"' "$d/summary.json" && existing+=("$d")
done
[ ${#existing[@]} -gt 0 ] || { echo "make_results.sh: no runs under $out" >&2 && exit 1; }

st=./build/sparsetrain
rm -f "$plots"/*.png "$plots"/*.svg "$plots"/report.md  # only what this run writes stays
$st report --format json "${existing[@]}" >"$plots/report.json"
$st report --format csv "${existing[@]}" >"$plots/report.csv"
$st report --group-by auto --format json "${existing[@]}" >"$plots/grouped.json"
$st report --group-by auto --format csv "${existing[@]}" >"$plots/grouped.csv"
$st report --group-by auto "${existing[@]}" >"$plots/grouped.md"
lr_dirs=()
for d in "${existing[@]}"; do [[ "$d" == "$out/lr/"* ]] && lr_dirs+=("$d"); done
if [ ${#lr_dirs[@]} -gt 0 ]; then
  $st report --group-by auto --format json "${lr_dirs[@]}" >"$plots/lr_grouped.json"
  mapfile -t lr_done < <(/usr/bin/python3 -c 'import json,sys; [print(r["run"]) for r in json.load(open(sys.argv[1]))["rows"]]' "$plots/report.json" | grep "^$out/lr/")
  /usr/bin/python3 scripts/plot_sparsity.py "${lr_done[@]}" --out "$plots" \
    --aggregate "$plots/lr_grouped.json" --epoch-runs $(for o in sgd adam adagrad rmsprop adadelta adamax; do
      n=$(ls "$out/lr" | grep "^$o-l2-$lambda-lr.*-s1$" | head -1 || true)
      [ -n "$n" ] && [ -f "$out/lr/$n/summary.json" ] && echo "$n"
    done)
fi
/usr/bin/python3 scripts/results_doc.py --report "$plots/report.json" --grouped "$plots/grouped.json" \
  --lr-grouped "$plots/lr_grouped.json" --runs "$out" --grids "$out"/*.txt --base "$base" \
  --wall-log "$out/wall_time.log" --plots "$plots" --out docs/results.md --seeds "$seeds" \
  --parity "$out/parity/parity.json" "$out/parity-first/parity.json"
