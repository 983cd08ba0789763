#!/usr/bin/env bash
# Installs every Debian package that sparsetrain's build, tests, fixture and
# cross-check scripts need. Idempotent; works as root or through sudo.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git clang-14 libomp-14-dev
  libcli11-dev nlohmann-json3-dev catch2 libstb-dev
  libopenblas-pthread-dev zlib1g-dev libonnx-dev libprotobuf-dev
  dataset-fashion-mnist
  python3 python3-numpy python3-torch python3-matplotlib python3-onnx
  python3-venv python3-pip
  slurm-wlm munge
)

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "setup.sh: need root or sudo to install packages" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup.sh: all packages present"
fi
