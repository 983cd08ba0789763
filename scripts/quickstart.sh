#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds sparsetrain and runs the quickstart
# experiment (BasicNet on Fashion-MNIST with Adam + L2), printing one line per
# epoch with the dead filters per layer. The run lands in runs/quickstart.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
exec ./build/sparsetrain --config configs/quickstart.json --out runs/quickstart --force "$@"
