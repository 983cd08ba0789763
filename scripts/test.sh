#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds sparsetrain and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
# Exports loaded in PyTorch (strict) and onnxruntime must match sparsetrain's outputs.
bash scripts/check_export.sh
