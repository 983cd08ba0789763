#!/usr/bin/env bash
# Runs every line of a grid file as one sparsetrain run in OUT_ROOT/NAME.
#
#   run_grid.sh GRID_FILE OUT_ROOT [--jobs N] [--base CONFIG] [--bin PATH] [--line K]
#               [--dry-run] [-- EXTRA_SPARSETRAIN_ARGS...]
#
# A grid line is a run name followed by config overrides (each becomes one --set):
#
#   adam-l2-5e-4  optimizer.name=adam optimizer.lr=3e-3 regularization.kind=l2 regularization.lambda=5e-4
#
# Blank lines and lines starting with # are ignored. Names use letters, digits, '-', '_', '.';
# values cannot contain spaces (write JSON arrays without them: optimizer.betas=[0.9,0.99]).
#
# Resumable: a run whose summary.json says "completed" is skipped; a run that has started
# (its config.json exists) is continued with --resume, from its last checkpoint; any other
# run starts fresh. A completed run whose saved config disagrees with its line's overrides
# fails (it is not silently reused), unless only training.epochs grew: then it is resumed
# for the extra epochs. Each run's output goes to OUT_ROOT/NAME/sweep.log.
#
# --jobs N      run N lines at once (xargs -P); unless EXTRA sets --threads, each run gets
#               max(1, cores / N) threads.
# --base CONFIG the experiment the overrides apply to (default configs/sweeps/base.json).
# --bin PATH    the sparsetrain binary (default build/sparsetrain of this checkout).
# --line K      run only the K-th grid line (1-based, counting run lines only); this is what
#               scripts/slurm_sweep.sh's array tasks call.
# --dry-run     print the commands instead of running them.
#
# Exit status: 0 when every run of the grid (or the --line) completed, 1 otherwise, with the
# failed runs and the end of their logs on stderr; 2 for bad usage or a bad grid file.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}
die() {
  echo "run_grid.sh: $*" >&2
  exit 2
}

# --- grid parsing -----------------------------------------------------------------------------

# Prints the run lines of a grid file (comments and blank lines dropped, whitespace squeezed),
# checking names and tokens.
grid_lines() {
  local file="$1" lineno=0 raw name tok
  local -A seen=()
  while IFS= read -r raw || [ -n "$raw" ]; do
    lineno=$((lineno + 1))
    raw="${raw%%$'\r'}"
    local -a toks=()
    read -r -a toks <<<"$raw" || true
    [ ${#toks[@]} -eq 0 ] && continue
    [[ "${toks[0]}" == \#* ]] && continue
    name="${toks[0]}"
    [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] ||
      die "$file:$lineno: run name '$name' may only use letters, digits, '-', '_' and '.'"
    [[ "$name" == "." || "$name" == ".." ]] && die "$file:$lineno: '$name' is not a run name"
    [ -n "${seen[$name]:-}" ] &&
      die "$file:$lineno: run name '$name' repeats line ${seen[$name]}"
    seen[$name]=$lineno
    for tok in "${toks[@]:1}"; do
      [[ "$tok" == *=* && "$tok" != =* ]] ||
        die "$file:$lineno: '$tok' is not a KEY=VALUE override (run '$name')"
    done
    echo "${toks[*]}"
  done <"$file"
}

# --- one run ------------------------------------------------------------------------------------

is_completed() {
  local summary="$1/summary.json"
  [ -f "$summary" ] && grep -Eq '"status"[[:space:]]*:[[:space:]]*"completed"' "$summary"
}

# stale_overrides CONFIG_JSON TOKENS...: succeeds when every KEY=VALUE override (and every
# "--set KEY=VALUE" among the tokens) agrees with the run's saved config, numbers compared as
# numbers; else prints the keys that differ and returns 3 when training.epochs is the only
# one (the run is extended by resuming it), 1 otherwise. Without python3 nothing is checked.
stale_overrides() {
  command -v /usr/bin/python3 >/dev/null 2>&1 || return 0
  /usr/bin/python3 - "$@" <<'PY'
import json, re, sys
config = json.load(open(sys.argv[1]))
args, tokens = sys.argv[2:], []
for i, a in enumerate(args):
    if a.startswith("--"):
        continue
    if "=" in a and (i == 0 or not args[i - 1].startswith("--") or args[i - 1] == "--set"):
        tokens.append(a)
def lookup(node, path):
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            i = int(part[1:-1])
            if not isinstance(node, list) or i >= len(node):
                return None, False
            node = node[i]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None, False
    return node, True
def same(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-12 * max(abs(a), abs(b), 1e-300)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b
bad = []
for t in tokens:
    key, text = t.split("=", 1)
    if key.startswith("output.") or key.startswith("statistics.") or key == "description":
        continue
    try:
        want = json.loads(text)
    except ValueError:
        want = text
    if want is None:
        continue
    have, found = lookup(config, key)
    if isinstance(want, dict) and found and isinstance(have, dict):
        if all(k in have and same(have[k], v) for k, v in want.items()):
            continue
    elif found and same(have, want):
        continue
    bad.append(f"{key}: saved {json.dumps(have) if found else 'absent'}, grid {text}")
print("; ".join(bad))
sys.exit(0 if not bad else 3 if all(b.startswith("training.epochs:") for b in bad) else 1)
PY
}

# run_one LINE: trains (or resumes, or skips) one grid line; returns sparsetrain's status.
run_one() {
  local -a toks
  read -r -a toks <<<"$1"
  local name="${toks[0]}" dir="$out_root/${toks[0]}"
  local -a cmd=("$bin" --config "$base")
  local tok
  for tok in "${toks[@]:1}"; do cmd+=(--set "$tok"); done
  cmd+=(--set "output.name=$name")
  local stale="" stale_rc=0
  if is_completed "$dir"; then
    stale="$(stale_overrides "$dir/config.json" "${toks[@]:1}" "${extra[@]}")" || stale_rc=$?
    if [ "$stale_rc" = 0 ]; then
      echo "[skip]   $name (completed)"
      return 0
    elif [ "$stale_rc" != 3 ]; then
      echo "[FAILED] $name: completed with another config ($stale); remove $dir to redo it"
      echo "# completed run does not match the grid: $stale" >>"$dir/sweep.log"
      return 1
    fi
  fi
  if [ -f "$dir/config.json" ]; then
    cmd+=(--resume "$dir")
    echo "[resume] $name${stale:+ ($stale)}"
  else
    cmd+=(--out "$dir")
    echo "[start]  $name"
  fi
  cmd+=("${extra[@]}")
  if [ "$dry_run" = 1 ]; then
    printf '%q ' "${cmd[@]}"
    echo
    return 0
  fi
  mkdir -p "$dir"
  local rc=0
  {
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
    printf '#'
    printf ' %q' "${cmd[@]}"
    echo
  } >>"$dir/sweep.log"
  "${cmd[@]}" >>"$dir/sweep.log" 2>&1 </dev/null || rc=$?
  if [ "$rc" = 0 ]; then
    echo "[done]   $name"
  else
    echo "[FAILED] $name (exit $rc, log $dir/sweep.log)"
  fi
  return "$rc"
}

report_failures() {
  local -a failed=()
  local line name
  for line in "$@"; do
    name="${line%% *}"
    is_completed "$out_root/$name" || failed+=("$name")
  done
  [ "$dry_run" = 1 ] && return 0
  if [ ${#failed[@]} -eq 0 ]; then
    echo "run_grid.sh: all $# runs completed in $out_root"
    return 0
  fi
  echo "run_grid.sh: ${#failed[@]} of $# runs did not complete:" >&2
  for name in "${failed[@]}"; do
    echo "  $name   (log: $out_root/$name/sweep.log)" >&2
    if [ -f "$out_root/$name/sweep.log" ]; then
      tail -n 3 "$out_root/$name/sweep.log" | sed 's/^/      | /' >&2
    fi
  done
  return 1
}

# --- arguments ----------------------------------------------------------------------------------

# Internal: the xargs workers call this script back with one grid line.
if [ "${1:-}" = "--worker" ]; then
  shift
  out_root="$1" base="$2" bin="$3" dry_run="$4" n_extra="$5"
  shift 5
  extra=("${@:1:$n_extra}")
  shift "$n_extra"
  run_one "$1" || exit 1 # xargs stops on 255 only; any failure is 1 here
  exit 0
fi

[ $# -ge 2 ] || usage
grid_file="$1" out_root="$2"
shift 2
jobs=1 base="$repo/configs/sweeps/base.json" bin="$repo/build/sparsetrain" line_no="" dry_run=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
  --jobs) jobs="${2:?--jobs needs a number}" && shift 2 ;;
  --base) base="${2:?--base needs a config file}" && shift 2 ;;
  --bin) bin="${2:?--bin needs a path}" && shift 2 ;;
  --line) line_no="${2:?--line needs a number}" && shift 2 ;;
  --dry-run) dry_run=1 && shift ;;
  --) shift && extra=("$@") && break ;;
  -h | --help) usage ;;
  *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "--jobs: expected a positive integer, got '$jobs'"
[ -r "$grid_file" ] || die "grid file '$grid_file' cannot be read"
[ -f "$base" ] || die "base config '$base' does not exist"
[ -x "$bin" ] || die "sparsetrain binary '$bin' not found (build with scripts/build.sh, or --bin)"

grid_text="$(grid_lines "$grid_file")" || exit 2
lines=()
[ -n "$grid_text" ] && mapfile -t lines <<<"$grid_text"
[ ${#lines[@]} -gt 0 ] || die "grid file '$grid_file' has no run lines"

if [ -n "$line_no" ]; then
  [[ "$line_no" =~ ^[1-9][0-9]*$ ]] && [ "$line_no" -le ${#lines[@]} ] ||
    die "--line $line_no: the grid has ${#lines[@]} run lines"
  lines=("${lines[$((line_no - 1))]}")
  jobs=1
fi

has_threads=0
for a in "${extra[@]}"; do
  [[ "$a" == --threads || "$a" == --threads=* || "$a" == training.threads=* ]] && has_threads=1
done
if [ "$has_threads" = 0 ]; then
  cores="$(nproc)"
  threads=$((cores / jobs))
  [ "$threads" -ge 1 ] || threads=1
  extra+=(--threads "$threads")
fi

[ "$dry_run" = 1 ] || mkdir -p "$out_root"
# Runs sharing the cores: OpenMP threads that spin while waiting steal time from
# the other runs (docs/performance.md), so they sleep instead unless told otherwise.
if [ "$jobs" -gt 1 ]; then
  export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
fi
echo "run_grid.sh: ${#lines[@]} runs from $grid_file into $out_root, $jobs at a time"
status=0
if [ "$jobs" = 1 ]; then
  for line in "${lines[@]}"; do run_one "$line" || status=1; done
else
  printf '%s\0' "${lines[@]}" |
    xargs -0 -n 1 -P "$jobs" bash "${BASH_SOURCE[0]}" --worker "$out_root" "$base" "$bin" \
      "$dry_run" "${#extra[@]}" "${extra[@]}" || status=1
fi
report_failures "${lines[@]}" || status=1
exit "$status"
