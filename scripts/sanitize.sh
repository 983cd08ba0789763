#!/usr/bin/env bash
# Builds sparsetrain and its tests with AddressSanitizer + UndefinedBehaviorSanitizer into
# build-asan/ (CPU only) and runs the test suite there. Extra arguments go to ctest, e.g.
#   scripts/sanitize.sh -R '\[bad_inputs\]'
set -euo pipefail
cd "$(dirname "$0")/.."
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
cmake -S . -B build-asan "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DSPARSETRAIN_CUDA=OFF \
  -DSPARSETRAIN_SANITIZE=address,undefined
cmake --build build-asan -j "$(nproc)"
# Leak checking stays off: OpenMP and OpenBLAS keep thread pools alive past exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir build-asan --output-on-failure -j "$(nproc)" "$@"
