#!/usr/bin/env bash
# Times the CPU training step of BasicNet in sparsetrain and in PyTorch on the
# same threads, interleaving the repeats so that both see the same machine load,
# and prints ms per step for each, the ratio sparsetrain / torch and the CPU
# kernel set sparsetrain used.
#
#   scripts/bench_cpu_vs_torch.sh [--threads N] [--repeats R] [--steps S] [--width W] [--batch B]
#                                 [--wait-policy passive|active]
#
# Builds build/sparsetrain first when it is missing. Each repeat runs both
# benchmarks once (warm-up steps, then S timed steps) and the summary takes the
# median over the repeats of each run's median step time. The load average is
# printed before and after: other work on the machine slows both sides, and the
# ratio is only meaningful when the load stays low. --wait-policy sets
# OMP_WAIT_POLICY for both (both use GCC's libgomp): on a machine busy with
# other work, passive waiting (threads sleep at barriers instead of spinning)
# is much faster for both.
set -euo pipefail
cd "$(dirname "$0")/.."

threads=2
repeats=3
steps=5
width=1.0
batch=64
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --width) width="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --wait-policy) export OMP_WAIT_POLICY="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench_cpu_vs_torch: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

python=/usr/bin/python3
binary=build/sparsetrain
if [ ! -x "$binary" ]; then
  echo "== building ($binary is missing)"
  bash scripts/build.sh >/dev/null
fi
if ! "$binary" bench --help >/dev/null 2>&1; then
  echo "bench_cpu_vs_torch: $binary has no bench command" >&2
  exit 1
fi

common=(--threads "$threads" --steps "$steps" --width "$width" --batch "$batch" --warmup 2 --json)
results=$(mktemp)
trap 'rm -f "$results"' EXIT

echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg), OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}"
kernels=unknown
for r in $(seq 1 "$repeats"); do
  st_json=$("$binary" bench "${common[@]}")
  kernels=$(echo "$st_json" | "$python" -c 'import json,sys; print(json.load(sys.stdin).get("cpu_kernels", "unknown"))')
  st=$(echo "$st_json" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["ms_per_step_median"])')
  pt=$("$python" scripts/bench_torch_cpu.py "${common[@]}" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["ms_per_step_median"])')
  printf 'repeat %d: sparsetrain %8.1f ms/step   torch %8.1f ms/step   (load %s)\n' \
    "$r" "$st" "$pt" "$(cut -d' ' -f1 /proc/loadavg)"
  echo "$st $pt" >>"$results"
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== sparsetrain cpu kernels: $kernels"
"$python" - "$results" "$threads" "$batch" "$width" <<'EOF'
import statistics, sys
rows = [tuple(map(float, line.split())) for line in open(sys.argv[1])]
st = statistics.median(r[0] for r in rows)
pt = statistics.median(r[1] for r in rows)
print(f"BasicNet width {sys.argv[4]}, batch {sys.argv[3]}, 3x32x32, {sys.argv[2]} threads, "
      f"median of {len(rows)} repeats:")
print(f"  sparsetrain {st:8.1f} ms/step")
print(f"  torch       {pt:8.1f} ms/step")
print(f"  ratio sparsetrain/torch {st / pt:.2f}")
EOF
