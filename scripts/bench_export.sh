#!/usr/bin/env bash
# The export benchmark (docs/export.md): compacts a trained network with real dead filters and
# prints the measured CPU inference speed-up next to the FLOP reduction.
#   bash scripts/bench_export.sh [RUN_DIR]
# Without RUN_DIR, trains configs/quickstart.json into runs/quickstart first (a few minutes).
# Extra environment: THREADS (OpenMP/OpenBLAS threads, default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
binary="${SPARSETRAIN_BIN:-build/sparsetrain}"
run="${1:-runs/quickstart}"
if [ -n "${THREADS:-}" ]; then
  export OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"
fi
if [ ! -f "$run/checkpoints/last.safetensors" ]; then
  if [ $# -gt 0 ]; then
    echo "bench_export.sh: no checkpoint in $run" >&2
    exit 1
  fi
  "$binary" --config configs/quickstart.json --out "$run" --quiet
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for flags in "" "--fuse-bn"; do
  echo "== export --bench $flags"
  # shellcheck disable=SC2086
  "$binary" export --run "$run" --out "$out/model" --bench $flags
done
