#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds sparsetrain and runs every test: the suite, the
# export checks, the suite again under ASan+UBSan, and a short fuzz run of every file reader
# (docs/reliability.md). FUZZ_SECONDS (default 120) caps the fuzz time per reader; 0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
# Exports loaded in PyTorch (strict) and onnxruntime must match sparsetrain's outputs.
bash scripts/check_export.sh
# The same suite built with ASan+UBSan (CPU only; any report aborts the test that hit it).
# Left out there, for time only: the SIGKILL-resume test (minutes of training even unsanitized)
# and the Slurm array (a whole cluster); both run in the plain suite above.
bash scripts/sanitize.sh -E 'SIGKILL|slurm_sweep'
# Every reader under libFuzzer (clang, ASan+UBSan) from its seed corpus: a fixed sequence of
# 200000 inputs per reader (seed 1, fresh work corpus), so that the same tree gets the same
# verdict on any machine; FUZZ_SECONDS (default 120) caps each reader on a slow one. Longer,
# exploratory runs: scripts/fuzz.sh 600 (a new random seed each time).
fuzz_seconds=${FUZZ_SECONDS:-120}
if [ "$fuzz_seconds" -gt 0 ]; then
  rm -rf build-fuzz/corpus
  SPARSETRAIN_FUZZ_SEED=${SPARSETRAIN_FUZZ_SEED:-1} SPARSETRAIN_FUZZ_RUNS=${SPARSETRAIN_FUZZ_RUNS:-200000} \
    bash scripts/fuzz.sh "$fuzz_seconds"
fi
