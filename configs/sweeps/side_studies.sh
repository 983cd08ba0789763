#!/usr/bin/env bash
# The side studies around Adam and SGD with L2 5e-4 (see grid.sh): batch size, learning rate,
# network width and task difficulty, each into OUT_ROOT/STUDY/NAME.
#
#   side_studies.sh OUT_ROOT [--studies "batch lr width difficulty"] [run_grid.sh options]
#
# Every study is resumable on its own; the exit status is non-zero if any run of any study
# failed (the failures are listed per study).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -ge 1 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
out_root="$1"
shift
studies="batch lr width difficulty"
if [ "${1:-}" = "--studies" ]; then
  studies="${2:?--studies needs a list}"
  shift 2
fi
status=0
for study in $studies; do
  mkdir -p "$out_root/$study"
  bash "$here/grid.sh" "$study" >"$out_root/$study/grid.txt"
  bash "$here/run_grid.sh" "$out_root/$study/grid.txt" "$out_root/$study" "$@" || status=1
done
exit "$status"
