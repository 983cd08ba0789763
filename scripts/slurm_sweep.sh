#!/usr/bin/env bash
# Submits a grid (see configs/sweeps/run_grid.sh) as one Slurm job array: one array task per
# grid line, each writing the same run directory OUT_ROOT/NAME that run_grid.sh would.
#
#   slurm_sweep.sh GRID_FILE OUT_ROOT [--base CONFIG] [--bin PATH] [--cpus N] [--max-running M]
#                  [--job-name NAME] [--sbatch ARG]... [--dry-run] [-- EXTRA_SPARSETRAIN_ARGS...]
#
# --cpus N         CPUs per array task, and sparsetrain's --threads (default 1)
# --max-running M  at most M array tasks at once (sbatch --array=1-N%M)
# --sbatch ARG     passed to sbatch as is (repeatable), e.g. --sbatch --partition=cpu
#                  --sbatch --time=02:00:00
# --dry-run        print the sbatch command instead of submitting
#
# The grid is copied to OUT_ROOT/grid.txt, so the array tasks read a file that does not change
# under them; their Slurm logs go to OUT_ROOT/slurm-logs/. Resubmitting the same grid skips
# the runs that completed and resumes the others from their checkpoints. Prints the job id.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
runner="$repo/configs/sweeps/run_grid.sh"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
die() {
  echo "slurm_sweep.sh: $*" >&2
  exit 2
}
absolute() { (cd "$(dirname "$1")" && echo "$(pwd)/$(basename "$1")"); }

[ $# -ge 2 ] || usage
grid_file="$1" out_root="$2"
shift 2
base="$repo/configs/sweeps/base.json" bin="$repo/build/sparsetrain" cpus=1 max_running=""
job_name="sparsetrain-sweep" dry_run=0
sbatch_args=() extra=()
while [ $# -gt 0 ]; do
  case "$1" in
  --base) base="${2:?}" && shift 2 ;;
  --bin) bin="${2:?}" && shift 2 ;;
  --cpus) cpus="${2:?}" && shift 2 ;;
  --max-running) max_running="${2:?}" && shift 2 ;;
  --job-name) job_name="${2:?}" && shift 2 ;;
  --sbatch) sbatch_args+=("${2:?}") && shift 2 ;;
  --dry-run) dry_run=1 && shift ;;
  --) shift && extra=("$@") && break ;;
  -h | --help) usage ;;
  *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ "$cpus" =~ ^[1-9][0-9]*$ ]] || die "--cpus: expected a positive integer, got '$cpus'"
[ -z "$max_running" ] || [[ "$max_running" =~ ^[1-9][0-9]*$ ]] ||
  die "--max-running: expected a positive integer, got '$max_running'"
[ -r "$grid_file" ] || die "grid file '$grid_file' cannot be read"
[ -f "$base" ] || die "base config '$base' does not exist"
[ -x "$bin" ] || die "sparsetrain binary '$bin' not found (build with scripts/build.sh, or --bin)"
command -v sbatch >/dev/null 2>&1 || [ "$dry_run" = 1 ] || die "sbatch not found"

mkdir -p "$out_root/slurm-logs"
out_root="$(cd "$out_root" && pwd)"
base="$(absolute "$base")"
bin="$(absolute "$bin")"
grid_copy="$out_root/grid.txt"
if [ "$(absolute "$grid_file")" != "$grid_copy" ]; then cp "$grid_file" "$grid_copy"; fi

# The runner checks the grid and counts its run lines (the array size).
n="$(bash "$runner" "$grid_copy" "$out_root" --base "$base" --bin "$bin" --dry-run |
  grep -c '^\[\(start\|resume\|skip\)')"
[ "$n" -ge 1 ] || die "grid file '$grid_file' has no run lines"

# One array task: the grid line with the task's index, through the same runner.
task=(bash "$runner" "$grid_copy" "$out_root" --line '$SLURM_ARRAY_TASK_ID' --base "$base"
  --bin "$bin" -- --threads "$cpus" "${extra[@]}")
wrap=""
for a in "${task[@]}"; do
  if [ "$a" = '$SLURM_ARRAY_TASK_ID' ]; then wrap+=' "$SLURM_ARRAY_TASK_ID"'; else wrap+=" $(printf '%q' "$a")"; fi
done

array="1-$n"
[ -z "$max_running" ] || array+="%$max_running"
cmd=(sbatch --parsable --job-name="$job_name" --array="$array" --cpus-per-task="$cpus"
  --chdir="$(pwd)" --output="$out_root/slurm-logs/%A_%a.out" "${sbatch_args[@]}"
  --wrap="${wrap# }")
if [ "$dry_run" = 1 ]; then
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi
job="$("${cmd[@]}")"
echo "$job"
echo "slurm_sweep.sh: submitted job array $job ($n tasks) for $grid_file into $out_root" >&2
