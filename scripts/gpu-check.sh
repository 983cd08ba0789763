#!/usr/bin/env bash
# The GPU check in one call, for a machine with the NVIDIA driver, the CUDA toolkit,
# a C++ compiler, CMake, ninja, Python and PyTorch, but none of sparsetrain's Debian
# packages and no network. Its dependencies come from gpu-deps/ (made beforehand by
# scripts/prepare-gpu-deps.sh on a Debian 12 machine).
#
# Stages, each under its own `timeout`, all within GPU_CHECK_BUDGET_S (default 460 s):
#   unpack      gpu-deps/sparsetrain-gpu-deps.tar.xz into a private prefix
#   configure   CUDA on, ONNX export off (-DSPARSETRAIN_ONNX=OFF: the deps carry
#               neither Protobuf nor ONNX); the system's include and CMake package
#               folders are ignored, and the resolved paths of CLI11, nlohmann_json, Catch2, stb, OpenBLAS and zlib
#               must lie in the prefix
#   build       then the headers every object used (ninja's deps) must not be system copies
#   cuda-tests  sparsetrain_tests "[cuda]" (CUDA against the CPU for every op)
#   quickstart  configs/quickstart.json on synthetic data, 2 epochs, --device cuda
#   memcheck, racecheck, synccheck   compute-sanitizer on the CUDA tests
#   bench       `sparsetrain bench --device cuda` and scripts/bench_torch_gpu.py, batch 64
#               and 512, PyTorch in TF32 and strict FP32
# A stage that no longer fits the budget is skipped. Logs and gpu-check-summary.json
# go to $OUT (default: $BUILD_DIR/logs).
#
# Options:
#   --no-gpu-dry-run  everything a machine without a GPU can prove: unpack, configure
#                     against the prefix only, build (CUDA kernels too when nvcc is
#                     there), the CPU tests from that build (the CUDA ones must report
#                     skipped), and `--device cuda` refused with exit code 2
#   --configure-only  stop after the configure stage
#   --no-bench        leave out the benchmarks
# Environment:
#   CUDA_ARCH            CMAKE_CUDA_ARCHITECTURES (default: native; 90 in a dry run)
#   BUILD_DIR            build directory (default: build-gpu)
#   DEPS_PREFIX          where the dependencies are unpacked (default: $BUILD_DIR/deps)
#   GPU_CHECK_BUDGET_S   total seconds (default 460; 7200 in a dry run)
#   GPU_CHECK_JOBS       build jobs (default: nproc)
set -uo pipefail
set -a  # stages run in `timeout bash -c`: they see every variable set here
cd "$(dirname "$0")/.." || exit 1
repo=$(pwd)

mode=gpu
configure_only=0
run_bench=1
for arg in "$@"; do
  case "$arg" in
    --no-gpu-dry-run) mode=dry-run ;;
    --configure-only) configure_only=1 ;;
    --no-bench) run_bench=0 ;;
    *)
      echo "gpu-check: unknown option $arg (see the top of scripts/gpu-check.sh)" >&2
      exit 2
      ;;
  esac
done

build_dir=${BUILD_DIR:-build-gpu}
case "$build_dir" in /*) ;; *) build_dir=$repo/$build_dir ;; esac
prefix=${DEPS_PREFIX:-$build_dir/deps}
log_dir=${OUT:-$build_dir/logs}
mkdir -p "$build_dir" "$log_dir"
summary=$log_dir/gpu-check-summary.json
jobs=${GPU_CHECK_JOBS:-$(nproc)}
if [ "$mode" = dry-run ]; then budget=${GPU_CHECK_BUDGET_S:-7200}; else budget=${GPU_CHECK_BUDGET_S:-460}; fi
started=$SECONDS
multiarch=x86_64-linux-gnu
failed=0

if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi

# --- the summary: one JSON object per stage, rewritten after each -------------
stage_json=()
json_str() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1" 2>/dev/null ||
  printf '"%s"' "$(printf '%s' "$1" | tr -d "\"\\\\")"; }
write_summary() {
  {
    echo "{"
    echo "  \"mode\": \"$mode\","
    echo "  \"seconds\": $((SECONDS - started)),"
    echo "  \"budget_seconds\": $budget,"
    echo "  \"failed\": $([ $failed -eq 0 ] && echo false || echo true),"
    echo "  \"environment\": $env_json,"
    echo "  \"stages\": ["
    local i
    for i in "${!stage_json[@]}"; do
      [ "$i" -gt 0 ] && echo ","
      printf '    %s' "${stage_json[$i]}"
    done
    echo
    echo "  ]"
    echo "}"
  } >"$summary"
}
record() {  # name status seconds note
  stage_json+=("{\"name\": \"$1\", \"status\": \"$2\", \"seconds\": $3, \"log\": \"$1.log\", \"note\": $(json_str "$4")}")
  [ "$2" = failed ] || [ "$2" = timeout ] && failed=1
  write_summary
}

# run_stage NAME LIMIT_S CMD...: runs CMD under `timeout`, output to $log_dir/NAME.log.
# Returns CMD's status; 124 when it ran out of time, 125 when it was skipped.
run_stage() {
  local name=$1 limit=$2
  shift 2
  local left=$((budget - (SECONDS - started)))
  if [ "$left" -lt 20 ]; then
    echo "=== gpu-check: $name skipped (budget of $budget s spent)"
    record "$name" skipped 0 "the budget of $budget s was spent"
    return 125
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== gpu-check [$((SECONDS - started)) s]: $name (limit $limit s)"
  local t0=$SECONDS rc
  local defs=""
  # A shell function runs in a child bash that gets its definition.
  declare -F "$1" >/dev/null && defs=$(declare -f "$1")
  timeout --kill-after=10 "$limit" bash -c "$defs"$'\n''"$@"' gpu-check "$@" \
    >"$log_dir/$name.log" 2>&1
  rc=$?
  tail -n 15 "$log_dir/$name.log"
  local secs=$((SECONDS - t0))
  if [ $rc -eq 0 ]; then
    record "$name" passed "$secs" ""
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    record "$name" timeout "$secs" "ran past $limit s"
  else
    record "$name" failed "$secs" "exit status $rc"
  fi
  return $rc
}
skip_stage() {  # name why
  echo "=== gpu-check: $1 skipped ($2)"
  record "$1" skipped 0 "$2"
}
finish() {
  write_summary
  echo "=== gpu-check: $([ $failed -eq 0 ] && echo PASSED || echo FAILED) in" \
    "$((SECONDS - started)) s ($mode); summary: $summary"
  [ $failed -eq 0 ]
  exit $?
}

gpu_line=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null |
  head -n 1)
nvcc_line=$(nvcc --version 2>/dev/null | grep -o "release [0-9.]*" | head -n 1)
torch_line=$(timeout 60 python3 -c 'import torch; print(torch.__version__, torch.version.cuda)' \
  2>/dev/null)
env_json="{\"gpu\": $(json_str "$gpu_line"), \"nvcc\": $(json_str "$nvcc_line"),"
env_json+=" \"cmake\": $(json_str "$(cmake --version | head -n 1)"),"
env_json+=" \"torch\": $(json_str "$torch_line"), \"cpus\": $(nproc)}"
write_summary

# --- unpack -----------------------------------------------------------------
archive=gpu-deps/sparsetrain-gpu-deps.tar.xz
if [ ! -f "$archive" ]; then
  echo "gpu-check: $archive is missing; run scripts/prepare-gpu-deps.sh on a Debian 12" \
    "machine first" >&2
  record unpack failed 0 "$archive is missing"
  finish
fi
unpack() {
  rm -rf "$prefix" && mkdir -p "$prefix" && tar -xJf "$archive" -C "$prefix" || return 1
  # Absolute links (libfoo.so -> /lib/...) must point into the prefix.
  local link target
  while IFS= read -r link; do
    target=$(readlink "$link")
    case "$target" in
      /*) if [ -e "$prefix$target" ]; then ln -sfn "$prefix$target" "$link"; fi ;;
    esac
  done < <(find "$prefix" -type l)
  cat gpu-deps/MANIFEST 2>/dev/null
  du -sh "$prefix"
}
run_stage unpack 120 unpack || finish

libdirs="$prefix/usr/lib/$multiarch/openblas-pthread:$prefix/usr/lib/$multiarch:$prefix/lib/$multiarch"
export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# --- configure --------------------------------------------------------------
cuda=ON
arch=${CUDA_ARCH:-native}
if [ "$mode" = dry-run ]; then
  arch=${CUDA_ARCH:-90}  # "native" needs a GPU
  command -v nvcc >/dev/null 2>&1 || cuda=OFF
fi
# Where a system copy of a dependency would be found; the compiler's own runtime
# (libgomp, libpthread) stays reachable.
ignored="/usr/include;/usr/include/$multiarch/openblas-pthread;/usr/lib/$multiarch/openblas-pthread"
ignored+=";/usr/lib/cmake;/usr/share/cmake;/usr/lib/$multiarch/cmake;/usr/local/include"
ignored+=";/usr/local/lib/cmake;/usr/local/share/cmake"
configure() {
  rm -f "$build_dir/CMakeCache.txt"
  cmake -S "$repo" -B "$build_dir" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DSPARSETRAIN_CUDA=$cuda \
    -DSPARSETRAIN_ONNX=OFF \
    -DCMAKE_CUDA_ARCHITECTURES="$arch" \
    -DCMAKE_PREFIX_PATH="$prefix/usr" \
    -DCMAKE_INCLUDE_PATH="$prefix/usr/include;$prefix/usr/include/$multiarch" \
    -DCMAKE_LIBRARY_PATH="$prefix/usr/lib/$multiarch/openblas-pthread;$prefix/usr/lib/$multiarch;$prefix/lib/$multiarch" \
    -DCMAKE_IGNORE_PATH="$ignored" \
    -DZLIB_ROOT="$prefix/usr" || return 1
  grep -q "sparsetrain: CUDA backend $cuda" "$log_dir/configure.log" || {
    echo "gpu-check: CMake did not set the CUDA backend to $cuda (is nvcc on PATH?)"
    return 1
  }
  # Every dependency must resolve into the prefix.
  local cache=$build_dir/CMakeCache.txt outside=0 var value real
  for var in CLI11_DIR nlohmann_json_DIR Catch2_DIR STB_INCLUDE_DIR CBLAS_INCLUDE_DIR \
    ZLIB_INCLUDE_DIR ZLIB_LIBRARY_RELEASE BLAS_openblas_LIBRARY; do
    value=$(grep -E "^$var:" "$cache" | head -n 1 | cut -d= -f2-)
    real=$(realpath -m "$value" 2>/dev/null)
    case "$real" in
      "$prefix"/*) echo "  $var = $real" ;;
      *)
        echo "  $var = '$value' is NOT in $prefix"
        outside=1
        ;;
    esac
  done
  for var in ONNX_DIR Protobuf_INCLUDE_DIR; do
    value=$(grep -E "^$var:" "$cache" | head -n 1 | cut -d= -f2-)
    case "$value" in
      "" | *NOTFOUND) ;;
      *)
        echo "  $var = '$value' although ONNX is off"
        outside=1
        ;;
    esac
  done
  [ $outside -eq 0 ] || echo "gpu-check: dependencies resolved outside $prefix"
  return $outside
}
run_stage configure 180 configure || finish
[ $configure_only -eq 1 ] && finish

# --- build ------------------------------------------------------------------
build() {
  cmake --build "$build_dir" -j "$jobs" || return 1
  # The headers each object was compiled with: none may be a system copy of a dependency.
  local leaks
  leaks=$(ninja -C "$build_dir" -t deps 2>/dev/null |
    grep -E "^ +/usr/(local/)?include/(nlohmann|CLI|catch2|stb|zlib\.h|zconf\.h|$multiarch/openblas|$multiarch/cblas|openblas|cblas)" |
    sort -u)
  if [ -n "$leaks" ]; then
    echo "gpu-check: objects were compiled with system headers:"
    echo "$leaks"
    return 1
  fi
  echo "gpu-check: no system header of a dependency was used"
  if command -v ldd >/dev/null 2>&1; then
    ldd "$build_dir/sparsetrain" | grep -E "openblas|libz\.|gfortran" || true
  fi
}
build_limit=420
[ "$mode" = dry-run ] && build_limit=5400
run_stage build "$build_limit" build || finish
tests=$build_dir/sparsetrain_tests
bin=$build_dir/sparsetrain

if [ "$mode" = dry-run ]; then
  # The CPU tests from this build; without a device the CUDA ones must report skipped.
  cpu_tests() {
    ctest --test-dir "$build_dir" -j "$jobs" --output-on-failure || return 1
    grep -qE "[0-9]+ skipped|tests skipped" "$build_dir/Testing/Temporary/LastTest.log" ||
      grep -q "Not Run" "$build_dir/Testing/Temporary/LastTest.log" || true
  }
  run_stage cpu-tests 5400 cpu_tests
  # No device: the CUDA tests exit 77 (skipped) and --device cuda is a usage error.
  no_device() {
    local rc
    "$tests" "[cuda]" >/dev/null 2>&1
    rc=$?
    echo "sparsetrain_tests \"[cuda]\" without a device: exit $rc (expected 77, skipped)"
    [ $rc -eq 77 ] || return 1
    "$bin" bench --device cuda --steps 1 --warmup 0
    rc=$?
    echo "sparsetrain bench --device cuda without a device: exit $rc (expected 2)"
    [ $rc -eq 2 ] || return 1
  }
  run_stage no-device 120 no_device
  for s in cuda-tests quickstart memcheck racecheck synccheck bench; do
    skip_stage "$s" "dry run: no GPU"
  done
  finish
fi

# --- GPU stages -------------------------------------------------------------
# Synchronizing after every kernel makes a fault name the op that caused it.
cuda_tests() {
  SPARSETRAIN_CUDA_SYNC=1 "$tests" "[cuda]"
  local rc=$?
  [ $rc -eq 77 ] && echo "gpu-check: the CUDA tests found no device (exit 77)"
  return $rc
}
run_stage cuda-tests 150 cuda_tests

quickstart() {
  rm -rf "$build_dir/quickstart-run"
  "$bin" --config configs/quickstart.json --device cuda --out "$build_dir/quickstart-run" \
    --set data.kind=synthetic --set data.train_subset=0 --set training.epochs=2 &&
    cp "$build_dir/quickstart-run/summary.json" "$log_dir/quickstart-summary.json"
}
run_stage quickstart 90 quickstart

if command -v compute-sanitizer >/dev/null 2>&1; then
  # The cases that cover the kernels with shared memory and reductions; memcheck
  # takes them all.
  sanitize() {  # tool test-spec
    compute-sanitizer --tool "$1" --error-exitcode 99 --print-limit 20 "$tests" "$2"
  }
  run_stage memcheck 120 sanitize memcheck "[cuda]"
  run_stage racecheck 75 sanitize racecheck \
    "cuda conv2d forward and backward match the CPU (exact FP32),cuda batchnorm train - eval and backward match the CPU,cuda softmax cross-entropy and count_correct match the CPU"
  run_stage synccheck 60 sanitize synccheck \
    "cuda conv2d forward and backward match the CPU (exact FP32),cuda batchnorm train - eval and backward match the CPU,cuda channel_absmax matches the CPU"
else
  for s in memcheck racecheck synccheck; do skip_stage "$s" "compute-sanitizer is not installed"; done
fi

if [ $run_bench -eq 1 ]; then
  # sparsetrain's step includes the loader and the upload; PyTorch's data stays on
  # the GPU, and sparsetrain runs exact FP32 unless SPARSETRAIN_CUDA_TF32=1.
  bench() {
    local b rc=0
    for b in 64 512; do
      echo "--- sparsetrain bench --device cuda --batch $b (exact FP32)"
      "$bin" bench --device cuda --batch "$b" --warmup 5 --steps 20 --json || rc=1
      echo "--- sparsetrain bench --device cuda --batch $b (TF32)"
      SPARSETRAIN_CUDA_TF32=1 "$bin" bench --device cuda --batch "$b" --warmup 5 --steps 20 \
        --json || rc=1
      echo "--- PyTorch batch $b (TF32)"
      python3 scripts/bench_torch_gpu.py --batch "$b" --warmup 10 --iters 30 || rc=1
      echo "--- PyTorch batch $b (strict FP32)"
      python3 scripts/bench_torch_gpu.py --batch "$b" --warmup 10 --iters 30 --no-tf32 || rc=1
    done
    return $rc
  }
  run_stage bench 150 bench
else
  skip_stage bench "--no-bench"
fi
finish
