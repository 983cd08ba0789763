#!/usr/bin/env bash
# Accuracy parity with PyTorch: one config trained by sparsetrain and by PyTorch
# (scripts/parity_torch.py, the reference BasicNet) for each seed, the two frameworks side by side
# on one thread each; then scripts/parity_summary.py: mean, std and range of test accuracy and
# dead filters per framework (a markdown table, and OUT_DIR/parity.json for results_doc.py).
# Finished runs are kept and not redone, an interrupted sparsetrain run is resumed.
#   usage: scripts/parity.sh [CONFIG] [SEEDS] [OUT_DIR] [KEY=VALUE ...]
#   defaults: configs/quickstart.json 1,2,3,4,5 runs/parity
# KEY=VALUE pairs (a dotted config key, a JSON value or a bare string, e.g.
# data.subset_mode=first) change the config for both frameworks. The config both train is
# written to OUT_DIR/config.json; an OUT_DIR made with another config is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/quickstart.json}
seeds=${2:-1,2,3,4,5}
out=${3:-runs/parity}
shift $(($# < 3 ? $# : 3))
mkdir -p "$out"
/usr/bin/python3 - "$config" "$out/config.json" "$@" <<'PY'
import json, os, sys
src, dst, sets = sys.argv[1], sys.argv[2], sys.argv[3:]
cfg = json.load(open(src))
for kv in sets:
    key, eq, raw = kv.partition("=")
    if not eq or not key:
        sys.exit(f"parity.sh: expected KEY=VALUE, got '{kv}'")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    node = cfg
    for k in key.split(".")[:-1]:
        node = node.setdefault(k, {})
    node[key.split(".")[-1]] = value
if os.path.exists(dst) and json.load(open(dst)) != cfg:
    sys.exit(f"parity.sh: {dst} holds another config; choose another OUT_DIR")
with open(dst, "w") as f:
    json.dump(cfg, f, indent=1)
PY
config="$out/config.json"
# Runs use a copy of the binary, so that rebuilding meanwhile cannot break them.
mkdir -p "$out/.bin"
cp build/sparsetrain "$out/.bin/sparsetrain.new" && mv "$out/.bin/sparsetrain.new" "$out/.bin/sparsetrain"
bin="$out/.bin/sparsetrain"
for s in ${seeds//,/ }; do
  run="$out/sparsetrain-seed$s"
  torch_json="$out/pytorch-seed$s.json"
  if [ ! -f "$run/summary.json" ]; then
    if [ -d "$run" ]; then
      "$bin" --resume "$run" --threads 1 --quiet >>"$run.log" 2>&1 &
    else
      "$bin" --config "$config" --set "training.seed=$s" --set "data.subset_seed=$s" \
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
