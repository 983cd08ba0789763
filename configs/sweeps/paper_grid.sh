#!/usr/bin/env bash
# The paper's main grid: 7 optimizers x {none, L2, decoupled} x lambda {1e-4, 5e-4, 1e-3}
# (42 runs, see grid.sh), on configs/sweeps/base.json, into OUT_ROOT/NAME.
#
#   paper_grid.sh OUT_ROOT [run_grid.sh options: --jobs N, --base CONFIG, ... -- EXTRA]
#
# The grid is written to OUT_ROOT/grid.txt first; rerunning skips the completed runs and
# resumes the others. The same grid on a Slurm cluster:
#   configs/sweeps/grid.sh paper > grid.txt && scripts/slurm_sweep.sh grid.txt OUT_ROOT
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ $# -ge 1 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
out_root="$1"
shift
mkdir -p "$out_root"
bash "$here/grid.sh" paper >"$out_root/grid.txt"
exec bash "$here/run_grid.sh" "$out_root/grid.txt" "$out_root" "$@"
