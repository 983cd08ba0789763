#!/usr/bin/env bash
# Prints the grid lines of one study (input for run_grid.sh and scripts/slurm_sweep.sh).
#
#   grid.sh STUDY [--optimizers "LIST"] [--regs "LIST"] [--strengths "LIST"]
#                 [--lr OPT=VALUE]... [--values "LIST"] [--seeds "LIST"]
#
# Studies:
#   paper       optimizer x regularization x strength (the paper's main grid)
#   batch       batch size          (--values, default "16 32 64 128")
#   lr          learning rate, as factors of each optimizer's lr (--values, default "0.3 1 3")
#   lrgrid      learning rate, absolute: each optimizer over its own grid of --lr-grid OPT="LIST"
#               (defaults span each optimizer's usual range, 4 rates each; names end -lrVALUE)
#   width       network width       (--values, default "0.125 0.25 0.5")
#   difficulty  task difficulty: the base data, then the same images with a fraction --values
#               (default "0.2 0.4") of the training labels made wrong (data.label_noise;
#               validation and test labels stay true), a harder task
#
# Defaults: --optimizers "sgd adam adamw adagrad rmsprop adadelta adamax",
# --regs "none l2 decoupled", --strengths "1e-4 5e-4 1e-3" for the paper study; the side
# studies vary one key around "adam sgd" with l2 at "5e-4".
#
# --seeds "1 2 3" repeats every line once per seed (training.seed=S, name suffix -sS); the
# runs of one setting then differ only in the seed, which `sparsetrain report --group-by auto`
# aggregates (mean, std, min-max, n).
#
# AdamW is Adam with decoupled weight decay (docs/config.md), so the grid does not run the
# same thing twice: Adam covers none and l2, AdamW covers decoupled. For the other
# optimizers "decoupled" is theta <- theta * (1 - lr * lambda) applied after their own step.
#
# Each optimizer runs at its own learning rate (override with --lr OPT=VALUE); see
# configs/sweeps/README.md for why these values.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
die() {
  echo "grid.sh: $*" >&2
  exit 2
}

declare -A lr=(
  [sgd]=0.05 [adam]=3e-3 [adamw]=3e-3 [adagrad]=1e-2 [rmsprop]=1e-3 [adadelta]=1.0 [adamax]=2e-3
)
declare -A extra_hyper=([sgd]="optimizer.momentum=0.9")
# Learning-rate grids of the lrgrid study: 4 rates around each optimizer's usual range.
declare -A lr_grid=(
  [sgd]="0.01 0.03 0.1 0.3" [adam]="3e-4 1e-3 3e-3 1e-2" [adamw]="3e-4 1e-3 3e-3 1e-2"
  [adagrad]="3e-3 1e-2 3e-2 1e-1" [rmsprop]="1e-4 3e-4 1e-3 3e-3" [adadelta]="0.1 0.3 1 3"
  [adamax]="6e-4 2e-3 6e-3 2e-2"
)
seeds=""

[ $# -ge 1 ] || usage
study="$1"
shift
case "$study" in
paper)
  optimizers="sgd adam adamw adagrad rmsprop adadelta adamax"
  regs="none l2 decoupled"
  strengths="1e-4 5e-4 1e-3"
  values=""
  ;;
lrgrid)
  optimizers="sgd adam adamw adagrad rmsprop adadelta adamax"
  regs="l2"
  strengths="5e-4"
  values=""
  ;;
batch | lr | width | difficulty)
  optimizers="adam sgd"
  regs="l2"
  strengths="5e-4"
  case "$study" in
  batch) values="16 32 64 128" ;;
  lr) values="0.3 1 3" ;;
  width) values="0.125 0.25 0.5" ;;
  difficulty) values="0.2 0.4" ;;
  esac
  ;;
-h | --help) usage ;;
*) die "unknown study '$study' (paper, batch, lr, lrgrid, width, difficulty)" ;;
esac

while [ $# -gt 0 ]; do
  case "$1" in
  --optimizers) optimizers="${2:?}" && shift 2 ;;
  --regs) regs="${2:?}" && shift 2 ;;
  --strengths) strengths="${2:?}" && shift 2 ;;
  --values) values="${2:?}" && shift 2 ;;
  --seeds) seeds="${2:?}" && shift 2 ;;
  --lr-grid)
    [[ "${2:-}" == *=* ]] || die "--lr-grid expects OPT=\"LIST\", got '${2:-}'"
    lr_grid[${2%%=*}]="${2#*=}"
    shift 2
    ;;
  --lr)
    [[ "${2:-}" == *=* ]] || die "--lr expects OPT=VALUE, got '${2:-}'"
    lr[${2%%=*}]="${2#*=}"
    shift 2
    ;;
  -h | --help) usage ;;
  *) die "unknown argument '$1' (see --help)" ;;
  esac
done

for opt in $optimizers; do
  [ -n "${lr[$opt]:-}" ] || die "unknown optimizer '$opt' (${!lr[*]})"
done
for reg in $regs; do
  case "$reg" in none | l2 | decoupled) ;; *) die "unknown regularization '$reg'" ;; esac
done
for s in $seeds; do
  [[ "$s" =~ ^[0-9]+$ ]] || die "--seeds: '$s' is not a non-negative integer"
done

# The optimizer part of a line: name, learning rate (times a factor) and fixed hyper-parameters.
optimizer_overrides() {
  local opt="$1" factor="${2:-1}" rate
  rate="$(awk -v a="${lr[$opt]}" -v f="$factor" 'BEGIN { printf "%.4g", a * f }')"
  echo "optimizer.name=$opt optimizer.lr=$rate ${extra_hyper[$opt]:-}"
}

# Whether the grid runs optimizer $1 with regularization $2 (see AdamW above).
runs_combination() {
  case "$1:$2" in
  adam:decoupled | adamw:none | adamw:l2) return 1 ;;
  *) return 0 ;;
  esac
}

# Prints "NAME-SUFFIX overrides" for every optimizer x regularization x strength.
emit() {
  local suffix="$1" more="$2" factor="${3:-1}" opt reg s
  for opt in $optimizers; do
    for reg in $regs; do
      runs_combination "$opt" "$reg" || continue
      if [ "$reg" = none ]; then
        echo "$opt-none$suffix $(optimizer_overrides "$opt" "$factor") regularization.kind=none" \
          "regularization.lambda=0 $more"
        continue
      fi
      for s in $strengths; do
        echo "$opt-$reg-$s$suffix $(optimizer_overrides "$opt" "$factor")" \
          "regularization.kind=$reg regularization.lambda=$s $more"
      done
    done
  done
}

emit_study() {
  local v
  case "$study" in
  paper) emit "" "" ;;
  batch) for v in $values; do emit "-bs$v" "training.batch_size=$v"; done ;;
  lr) for v in $values; do emit "-lrx$v" "" "$v"; done ;;
  lrgrid)
    local all="$optimizers" o
    for o in $all; do
      [ -n "${lr_grid[$o]:-}" ] || die "no --lr-grid for optimizer '$o'"
      for v in ${lr_grid[$o]}; do
        optimizers="$o"
        lr[$o]="$v"
        emit "-lr$v" ""
      done
    done
    optimizers="$all"
    ;;
  width) for v in $values; do emit "-w$v" "model.width=$v"; done ;;
  difficulty)
    emit "-clean" ""
    for v in $values; do emit "-labelnoise$v" "data.label_noise=$v"; done
    ;;
  esac
}

# One copy of each line per seed, when seeds are given.
with_seeds() {
  local name rest s
  if [ -z "$seeds" ]; then
    cat
    return
  fi
  while read -r name rest; do
    for s in $seeds; do echo "$name-s$s $rest training.seed=$s"; done
  done
}

# Squeeze the spaces left by empty parts.
emit_study | tr -s ' ' | sed 's/ $//' | with_seeds
