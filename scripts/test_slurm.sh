#!/usr/bin/env bash
# End-to-end test of scripts/slurm_sweep.sh on a real, single-node Slurm cluster that this
# script starts on localhost and stops afterwards (Debian's slurm-wlm and munge; as root; no
# systemd, no cgroups). It submits a two-line grid as a job array, waits for it and checks that
# both run directories completed and that `sparsetrain report` tabulates them.
#
#   bash scripts/test_slurm.sh [--bin build/sparsetrain] [--keep]
#
# Everything lives in a fresh temporary directory (its own munge key and socket, Slurm config,
# state and spool, on free ports); nothing under /etc is touched. --keep leaves it in place.
# Exit status: 0 pass, 1 fail, 77 skipped (not root, or Slurm/munge missing or not starting).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
bin="$repo/build/sparsetrain"
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
  --bin) bin="${2:?}" && shift 2 ;;
  --keep) keep=1 && shift ;;
  *) echo "test_slurm.sh: unknown argument '$1'" >&2 && exit 2 ;;
  esac
done

skip() {
  echo "test_slurm.sh: SKIP: $*"
  exit 77
}
fail() {
  echo "test_slurm.sh: FAIL: $*" >&2
  show_logs
  exit 1
}
log() { echo "test_slurm.sh: $*"; }

[ "$(id -u)" -eq 0 ] || skip "needs root to run the Slurm daemons"
[ -x "$bin" ] || fail "sparsetrain binary '$bin' not found (build with scripts/build.sh)"

# Install Slurm and munge when missing (they are in scripts/setup.sh's list).
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends slurm-wlm munge; } >/dev/null 2>&1 ||
    skip "slurm-wlm and munge are not installed and could not be installed"
fi
for tool in munged slurmctld slurmd sbatch squeue sinfo scontrol; do
  command -v "$tool" >/dev/null || skip "'$tool' not found"
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/sparsetrain-slurm.XXXXXX")"
chmod 700 "$tmp"
pids=()

show_logs() {
  local f
  for f in "$tmp"/log/* "$tmp"/runs/slurm-logs/* "$tmp"/runs/*/sweep.log; do
    [ -f "$f" ] || continue
    echo "----- ${f#"$tmp"/}" >&2
    tail -n 25 "$f" >&2
  done
}

cleanup() {
  local pid
  set +e
  [ -n "${SLURM_CONF:-}" ] && scancel --quiet --user=root >/dev/null 2>&1
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ "$keep" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# A TCP port nobody listens on, from a range away from Slurm's defaults.
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  return 1
}

wait_for() { # wait_for SECONDS COMMAND...: polls COMMAND until it succeeds
  local limit="$1"
  shift
  for _ in $(seq $((limit * 4))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  return 1
}

mkdir -p "$tmp"/{munge,log,state,spool,runs}
chmod 700 "$tmp/munge"
node="$(hostname -s)"

# --- munge ---------------------------------------------------------------------------------------
sock="$tmp/munge/munge.socket"
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
chmod 600 "$tmp/munge/munge.key"
munged --foreground --force --socket="$sock" --key-file="$tmp/munge/munge.key" \
  --pid-file="$tmp/munge/munged.pid" --seed-file="$tmp/munge/munged.seed" \
  --log-file="$tmp/log/munged.log" >>"$tmp/log/munged.log" 2>&1 &
pids+=($!)
wait_for 10 test -S "$sock" || { show_logs; skip "munged did not start"; }

# --- Slurm ---------------------------------------------------------------------------------------
ctld_port="$(free_port)" || skip "no free port"
slurmd_port="$(free_port)" || skip "no free port"
cpus="$(nproc)"
export SLURM_CONF="$tmp/slurm.conf"
cat >"$SLURM_CONF" <<EOF
ClusterName=sparsetrain-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
InactiveLimit=0
KillWait=5
MinJobAge=600
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=500 State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

slurmctld -D -i -f "$SLURM_CONF" >>"$tmp/log/slurmctld.out" 2>&1 &
pids+=($!)
wait_for 30 scontrol ping || { show_logs; skip "slurmctld did not start"; }
slurmd -D -N "$node" -f "$SLURM_CONF" >>"$tmp/log/slurmd.out" 2>&1 &
pids+=($!)
node_idle() { sinfo -h -n "$node" -o %T | grep -q '^idle'; }
if ! wait_for 30 node_idle; then
  scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
  wait_for 15 node_idle || { show_logs; skip "the Slurm node did not become idle"; }
fi
log "Slurm is up on $node (ports $ctld_port, $slurmd_port, $cpus CPUs)"

# --- the sweep -----------------------------------------------------------------------------------
grid="$tmp/grid.txt"
cat >"$grid" <<'EOF'
# two tiny runs on synthetic data
adam-l2 optimizer.name=adam optimizer.lr=1e-2 regularization.kind=l2 regularization.lambda=1e-2
sgd-l2 optimizer.name=sgd optimizer.lr=0.05 optimizer.momentum=0.9 regularization.kind=l2 regularization.lambda=1e-2
EOF
job="$(bash "$repo/scripts/slurm_sweep.sh" "$grid" "$tmp/runs" --bin "$bin" \
  --base "$repo/tests/configs/synthetic_tiny.json" -- --set training.epochs=1 --quiet)" ||
  fail "slurm_sweep.sh did not submit"
log "submitted job array $job"

job_active() { [ -n "$(squeue -h -j "$job" -o %i 2>/dev/null)" ]; }
for _ in $(seq 600); do job_active || break; sleep 0.5; done
job_active && fail "job array $job still queued or running after 300 s"

for run in adam-l2 sgd-l2; do
  summary="$tmp/runs/$run/summary.json"
  [ -f "$summary" ] || fail "$run: no summary.json"
  grep -Eq '"status"[[:space:]]*:[[:space:]]*"completed"' "$summary" ||
    fail "$run: summary.json does not say completed"
done
[ "$(find "$tmp/runs/slurm-logs" -name "${job}_*.out" | wc -l)" -eq 2 ] ||
  fail "expected one Slurm log per array task"
report="$("$bin" report "$tmp/runs/adam-l2" "$tmp/runs/sgd-l2")" || fail "report failed"
echo "$report" | grep -q '^| adam |' || fail "report has no adam row"
echo "$report" | grep -q '^| sgd |' || fail "report has no sgd row"

# Resubmitting the same grid skips the finished runs.
job1="$job"
job2="$(bash "$repo/scripts/slurm_sweep.sh" "$grid" "$tmp/runs" --bin "$bin" \
  --base "$repo/tests/configs/synthetic_tiny.json" -- --set training.epochs=1 --quiet)"
job="$job2"
for _ in $(seq 600); do job_active || break; sleep 0.5; done
grep -q '\[skip\]   adam-l2' "$tmp/runs/slurm-logs/${job2}_1.out" ||
  fail "the resubmitted task 1 did not skip its completed run"

log "PASS: job arrays $job1 and $job2 ran 2 tasks each into run directories that completed"
