#!/usr/bin/env bash
# Accuracy parity with PyTorch: one config trained by sparsetrain and by PyTorch
# (scripts/parity_torch.py, the reference BasicNet) for each seed, the two frameworks side by side
# on one thread each; then scripts/parity_summary.py: mean, std and range of test accuracy and
# dead filters per framework (a markdown table, and OUT_DIR/parity.json for results_doc.py).
# Finished runs are kept and not redone, an interrupted sparsetrain run is resumed.
#   usage: scripts/parity.sh [CONFIG] [SEEDS] [OUT_DIR]
#   defaults: configs/quickstart.json 1,2,3,4,5 runs/parity
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/quickstart.json}
seeds=${2:-1,2,3,4,5}
out=${3:-runs/parity}
mkdir -p "$out"
for s in ${seeds//,/ }; do
  run="$out/sparsetrain-seed$s"
  torch_json="$out/pytorch-seed$s.json"
  if [ ! -f "$run/summary.json" ]; then
    if [ -d "$run" ]; then
      build/sparsetrain --resume "$run" --threads 1 --quiet >>"$run.log" 2>&1 &
    else
      build/sparsetrain --config "$config" --set "training.seed=$s" --set "data.subset_seed=$s" \
        --out "$run" --threads 1 --quiet >"$run.log" 2>&1 &
    fi
  fi
  if [ ! -s "$torch_json" ]; then
    /usr/bin/python3 scripts/parity_torch.py "$config" "$s" --threads 1 >"$torch_json.tmp"
    mv "$torch_json.tmp" "$torch_json"
  fi
  wait
done
/usr/bin/python3 scripts/parity_summary.py "$out" "$seeds"
