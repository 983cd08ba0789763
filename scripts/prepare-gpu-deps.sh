#!/usr/bin/env bash
# Downloads (without installing) the Debian packages sparsetrain's build needs
# into ./gpu-deps/, so that scripts/gpu-check.sh can build on a GPU machine that
# has CUDA, CMake and ninja but neither these packages nor internet access.
# Run it on a Debian 12 machine with network access, then copy the repository
# (gpu-deps/ included) to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  libcli11-dev nlohmann-json3-dev catch2       # header-only, with CMake configs
  libstb-dev libstb0                           # stb_image headers (+ the library they ship with)
  libopenblas-pthread-dev libopenblas0-pthread # cblas.h, libopenblas.so
  libgfortran5 libquadmath0                    # OpenBLAS's runtime dependencies
  zlib1g-dev zlib1g
)

rm -rf gpu-deps
mkdir -p gpu-deps
cd gpu-deps
apt-get download "${packages[@]}"
echo "prepare-gpu-deps: $(find . -name "*.deb" | wc -l) packages in gpu-deps/ ($(du -sh . | cut -f1))"
