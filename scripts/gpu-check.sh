#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU, CUDA (nvcc), CMake, ninja and
# PyTorch but no internet and none of sparsetrain's Debian packages:
#   1. unpacks gpu-deps/*.deb (made by scripts/prepare-gpu-deps.sh) into a private
#      prefix and points CMake at it;
#   2. configures and builds build-gpu/ with CUDA for the local GPU;
#   3. runs the CUDA tests (sparsetrain_tests "[cuda]": CUDA vs CPU for every op);
#   4. runs the GPU benchmarks: sparsetrain's own (when the `bench` command
#      exists) and PyTorch/cuDNN's on the same network (scripts/bench_torch_gpu.py).
# Logs go to $OUT when it is set, else to build-gpu/logs/. Takes a few minutes.
#
# Options:
#   --configure-only  stop after step 1 and the configure step, and check that
#                     every dependency CMake found comes from the private prefix
#                     (works on a machine without a GPU: set CUDA_ARCH then)
#   --no-bench        skip step 4
# Environment:
#   CUDA_ARCH         CMAKE_CUDA_ARCHITECTURES (default: native, the local GPU)
#   BUILD_DIR         build directory (default: build-gpu)
#   DEPS_PREFIX       where the packages are unpacked (default: $BUILD_DIR/deps)
#   SPARSETRAIN_BENCH_ARGS  extra arguments for `sparsetrain bench`
#   GPU_CHECK_SANITIZE=1    also run the CUDA tests under compute-sanitizer
#                           (memcheck: out-of-bounds reads too; slower)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

configure_only=0
run_bench=1
for arg in "$@"; do
  case "$arg" in
    --configure-only) configure_only=1 ;;
    --no-bench) run_bench=0 ;;
    *) echo "gpu-check: unknown option $arg" >&2; exit 2 ;;
  esac
done

build_dir=${BUILD_DIR:-build-gpu}
prefix=${DEPS_PREFIX:-$repo/$build_dir/deps}
log_dir=${OUT:-$repo/$build_dir/logs}
mkdir -p "$build_dir" "$log_dir"
started=$SECONDS

step() { echo; echo "=== gpu-check [$((SECONDS - started)) s]: $*"; }

if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi

# --- 1. dependencies --------------------------------------------------------
step "unpacking gpu-deps/*.deb into $prefix"
shopt -s nullglob
debs=(gpu-deps/*.deb)
if [ ${#debs[@]} -eq 0 ]; then
  echo "gpu-check: gpu-deps/ holds no .deb files; run scripts/prepare-gpu-deps.sh on a" \
    "Debian 12 machine with network access first" >&2
  exit 1
fi
rm -rf "$prefix"
mkdir -p "$prefix"
extract_deb() {
  if command -v dpkg-deb >/dev/null 2>&1; then
    dpkg-deb -x "$1" "$prefix"
  else  # no dpkg: a .deb is an ar archive holding data.tar.*
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && ar x "$repo/$1")
    tar -xf "$tmp"/data.tar.* -C "$prefix"
    rm -rf "$tmp"
  fi
}
for deb in "${debs[@]}"; do extract_deb "$deb"; done
# Absolute links (libz.so -> /lib/...) must point into the prefix.
while IFS= read -r link; do
  target=$(readlink "$link")
  case "$target" in
    /*) if [ -e "$prefix$target" ]; then ln -sfn "$prefix$target" "$link"; fi ;;
  esac
done < <(find "$prefix" -type l)

multiarch=x86_64-linux-gnu
libdirs="$prefix/usr/lib/$multiarch/openblas-pthread:$prefix/usr/lib/$multiarch:$prefix/lib/$multiarch"
# The system's libraries first; the prefix supplies what is missing (libgfortran).
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$libdirs"

# --- 2. configure and build -------------------------------------------------
step "configuring $build_dir (CUDA architectures: ${CUDA_ARCH:-native})"
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
cmake -S . -B "$build_dir" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DSPARSETRAIN_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-native}" \
  -DCMAKE_PREFIX_PATH="$prefix/usr" \
  -DCMAKE_INCLUDE_PATH="$prefix/usr/include;$prefix/usr/include/$multiarch" \
  -DCMAKE_LIBRARY_PATH="$prefix/usr/lib/$multiarch/openblas-pthread;$prefix/usr/lib/$multiarch" \
  -DZLIB_ROOT="$prefix/usr" \
  2>&1 | tee "$log_dir/gpu-check-configure.log"

# Every package dependency must come from the prefix, not from the system.
cache="$build_dir/CMakeCache.txt"
grep -q "sparsetrain: CUDA backend ON" "$log_dir/gpu-check-configure.log" || {
  echo "gpu-check: CMake did not enable the CUDA backend (is nvcc on PATH?)" >&2
  exit 1
}
outside=0
for var in CLI11_DIR nlohmann_json_DIR Catch2_DIR STB_INCLUDE_DIR CBLAS_INCLUDE_DIR \
  ZLIB_INCLUDE_DIR ZLIB_LIBRARY_RELEASE BLAS_openblas_LIBRARY; do
  value=$(grep -E "^$var:" "$cache" | head -1 | cut -d= -f2- || true)
  case "$value" in
    "$prefix"/*) echo "  $var = $value" ;;
    *) echo "  $var = '$value' is NOT in the prefix" >&2; outside=1 ;;
  esac
done
[ $outside -eq 0 ] || { echo "gpu-check: dependencies found outside $prefix" >&2; exit 1; }
if [ $configure_only -eq 1 ]; then
  step "configure-only: done"
  exit 0
fi

step "building"
if ! cmake --build "$build_dir" -j "$(nproc)" >"$log_dir/gpu-check-build.log" 2>&1; then
  tail -n 60 "$log_dir/gpu-check-build.log"
  echo "gpu-check: build failed (full log: $log_dir/gpu-check-build.log)" >&2
  exit 1
fi
tail -n 2 "$log_dir/gpu-check-build.log"

# --- 3. CUDA tests ----------------------------------------------------------
step "CUDA tests"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
tests_ok=1
# Synchronizing after every kernel makes a fault name the op that caused it.
SPARSETRAIN_CUDA_SYNC=1 "$build_dir/sparsetrain_tests" "[cuda]" 2>&1 |
  tee "$log_dir/gpu-check-tests.log" || tests_ok=0
if grep -q "no CUDA device: skipped" "$log_dir/gpu-check-tests.log"; then
  echo "gpu-check: the tests found no CUDA device" >&2
  tests_ok=0
fi

if [ "${GPU_CHECK_SANITIZE:-0}" = 1 ] && command -v compute-sanitizer >/dev/null 2>&1; then
  step "CUDA tests under compute-sanitizer (memcheck)"
  compute-sanitizer --tool memcheck --error-exitcode 99 "$build_dir/sparsetrain_tests" "[cuda]" \
    2>&1 | tee "$log_dir/gpu-check-sanitizer.log" | tail -n 20 || tests_ok=0
fi

# --- 4. benchmarks ----------------------------------------------------------
if [ $run_bench -eq 1 ]; then
  # sparsetrain's own GPU benchmark, once the `bench` command exists.
  if "$build_dir/sparsetrain" bench --help >/dev/null 2>&1; then
    step "sparsetrain bench --device cuda"
    # shellcheck disable=SC2086
    timeout 180 "$build_dir/sparsetrain" bench --device cuda ${SPARSETRAIN_BENCH_ARGS:-} 2>&1 |
      tee "$log_dir/gpu-check-bench-sparsetrain.log" || echo "gpu-check: sparsetrain bench failed"
    step "sparsetrain bench --device cuda --dead-sweep (sparsity-aware training on the GPU)"
    timeout 180 "$build_dir/sparsetrain" bench --device cuda --dead-sweep 0,0.5,0.75 --rounds 2 \
      --steps 20 2>&1 | tee "$log_dir/gpu-check-bench-dead-sweep.log" ||
      echo "gpu-check: sparsetrain dead-sweep bench failed"
  else
    step "sparsetrain has no bench command yet: skipped"
  fi
  step "PyTorch/cuDNN reference benchmark"
  python=python3
  command -v "$python" >/dev/null 2>&1 || python=python
  for precision in "" --no-tf32; do
    # shellcheck disable=SC2086
    timeout 120 "$python" scripts/bench_torch_gpu.py $precision 2>&1 |
      tee -a "$log_dir/gpu-check-bench-torch.log" || echo "gpu-check: PyTorch benchmark failed"
  done
fi

step "all done in $((SECONDS - started)) s; logs in $log_dir"
if [ $tests_ok -eq 0 ]; then
  echo "gpu-check: CUDA TESTS FAILED (see $log_dir/gpu-check-tests.log)" >&2
  exit 1
fi
echo "gpu-check: CUDA tests passed"
