#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz (clang, ASan+UBSan, in build-fuzz/) and runs
# each for SECONDS (default 60) from its committed seed corpus. Exits non-zero at the first
# finding; the input is left as build-fuzz/<reader>-{crash,oom,timeout,leak}-*. Any finding becomes a
# regression test (tests/test_bad_inputs.cpp) and, minimized, a seed in tests/fuzz/corpus/.
#   scripts/fuzz.sh [SECONDS] [READER ...]      e.g. scripts/fuzz.sh 20 idx safetensors
# SPARSETRAIN_FUZZ_SEED (libFuzzer -seed; default 0: a new random seed per run) and
# SPARSETRAIN_FUZZ_RUNS (-runs: inputs per reader, default unlimited) make a run a fixed
# sequence of inputs: with both set and a fresh build-fuzz/corpus, every machine tries the same
# inputs (SECONDS then only caps a slow machine), which is how scripts/test.sh runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
readers=("$@")
[ ${#readers[@]} -gt 0 ] || readers=(idx safetensors cifar image checkpoint_meta config)
build=${SPARSETRAIN_FUZZ_BUILD:-build-fuzz}
cxx=${SPARSETRAIN_FUZZ_CXX:-}
if [ -z "$cxx" ]; then
  for c in clang++-14 clang++; do
    if command -v "$c" >/dev/null 2>&1; then cxx=$c; break; fi
  done
fi
[ -n "$cxx" ] || { echo "fuzz.sh: clang++ is needed (apt-get install clang-14 libomp-14-dev)" >&2; exit 1; }
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O1 \
  -DCMAKE_CXX_COMPILER="$cxx" -DSPARSETRAIN_CUDA=OFF -DSPARSETRAIN_TESTS=OFF \
  -DSPARSETRAIN_FUZZ=ON -DSPARSETRAIN_SANITIZE=address,undefined >/dev/null
fuzz_seed=${SPARSETRAIN_FUZZ_SEED:-0}
fuzz_runs=${SPARSETRAIN_FUZZ_RUNS:--1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
for r in "${readers[@]}"; do
  seeds=tests/fuzz/corpus/$r
  work=$build/corpus/$r  # new inputs go here; the committed seeds stay as they are
  mkdir -p "$work"
  # Only the harness and the reader code it links (not the whole engine).
  cmake --build "$build" -j "$(nproc)" --target "fuzz_$r"
  echo "fuzz.sh: $r for ${seconds}s"
  # -rss_limit_mb / -malloc_limit_mb: an allocation the readers should have refused is a finding.
  "$build/fuzz_$r" -max_total_time="$seconds" -seed="$fuzz_seed" -runs="$fuzz_runs" \
    -timeout=10 -rss_limit_mb=2560 \
    -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$build/$r-" \
    "$work" "$seeds" 2>&1 | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==|SUMMARY|.*ERROR)" || true
  if compgen -G "$build/$r-*" >/dev/null; then
    echo "fuzz.sh: $r found a problem: $(ls "$build/$r"-* | tr '\n' ' ')" >&2
    exit 1
  fi
done
echo "fuzz.sh: ${#readers[@]} readers, ${seconds}s each at most (seed $fuzz_seed, runs $fuzz_runs), no findings"
