#!/usr/bin/env bash
# Cross-checks `sparsetrain export` in PyTorch and onnxruntime (scripts/check_export.py).
# Makes .venv (with Debian's packages visible, for torch and numpy) and installs onnxruntime
# into it when missing. Expects a built build/sparsetrain (scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
binary="${SPARSETRAIN_BIN:-build/sparsetrain}"
if [ ! -x "$binary" ]; then
  echo "check_export.sh: $binary not found; run scripts/build.sh first" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
if ! .venv/bin/python -c "import onnxruntime" >/dev/null 2>&1; then
  .venv/bin/pip install --quiet onnxruntime
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
.venv/bin/python scripts/check_export.py --sparsetrain "$binary" --work "$work" "$@"
