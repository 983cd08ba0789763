#!/usr/bin/env bash
# Prepares the private dependencies of scripts/gpu-check.sh: the headers and
# libraries sparsetrain's build takes from Debian packages, for a GPU machine that
# has the NVIDIA driver, the CUDA toolkit, a C++ compiler, CMake, ninja and Python
# but none of these packages and no network.
#
# Run it on a Debian 12 (amd64) machine. Each package comes from the local apt
# cache, else `apt-get download`. The packages are unpacked, trimmed (docs,
# static libraries) and packed into one archive:
#   gpu-deps/sparsetrain-gpu-deps.tar.xz   the files, rooted at usr/
#   gpu-deps/MANIFEST                      package versions and the archive's sha256
# The archive plus the repository's tracked files must stay under 64 MiB (checked).
#
# ONNX export (Protobuf, ONNX) is left out: gpu-check builds with -DSPARSETRAIN_ONNX=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

packages=(
  libcli11-dev nlohmann-json3-dev catch2       # header-only, with CMake configs
  libstb-dev                                   # stb_image.h
  libopenblas-pthread-dev libopenblas0-pthread # cblas.h, libopenblas.so
  libgfortran5 libquadmath0                    # OpenBLAS's runtime dependencies
  zlib1g-dev zlib1g
)
limit_mib=64

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs" "$work/root"

for p in "${packages[@]}"; do
  cached=$(find /var/cache/apt/archives -maxdepth 1 \( -name "${p}_*_amd64.deb" -o \
    -name "${p}_*_all.deb" \) 2>/dev/null | sort | tail -n 1)
  if [ -n "$cached" ]; then
    cp "$cached" "$work/debs/"
  else
    (cd "$work/debs" && apt-get download "$p" 2>&1 | grep -v "unsandboxed" || true)
    ls "$work/debs/${p}"_*.deb >/dev/null 2>&1 || {
      echo "prepare-gpu-deps: cannot get the package $p (no apt cache entry, no network?)" >&2
      exit 1
    }
  fi
done

manifest="$work/MANIFEST"
echo "# sparsetrain GPU-check dependencies (scripts/prepare-gpu-deps.sh)" >"$manifest"
for deb in "$work"/debs/*.deb; do
  dpkg-deb -x "$deb" "$work/root"
  echo "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)" >>"$manifest"
done

# Only what a build and its tests need (Catch2's CMake config checks that its static
# library exists).
rm -rf "$work/root/usr/share/doc" "$work/root/usr/share/man" "$work/root/usr/share/lintian" \
  "$work/root/usr/share/bug"
find "$work/root" -name "*.a" ! -name "libCatch2*" -delete

rm -rf gpu-deps
mkdir -p gpu-deps
tar -C "$work/root" --owner=0 --group=0 --numeric-owner -cJf gpu-deps/sparsetrain-gpu-deps.tar.xz .
sha=$(sha256sum gpu-deps/sparsetrain-gpu-deps.tar.xz | cut -d' ' -f1)
echo "sha256 $sha sparsetrain-gpu-deps.tar.xz" >>"$manifest"
cp "$manifest" gpu-deps/MANIFEST

archive_bytes=$(stat -c %s gpu-deps/sparsetrain-gpu-deps.tar.xz)
tree_bytes=$(git -C "$repo" ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
total_mib=$(((archive_bytes + tree_bytes + 1048575) / 1048576))
echo "prepare-gpu-deps: ${#packages[@]} packages -> gpu-deps/sparsetrain-gpu-deps.tar.xz" \
  "($((archive_bytes / 1024)) KiB); with the tracked tree ($((tree_bytes / 1024)) KiB):" \
  "${total_mib} MiB of ${limit_mib}"
if [ "$total_mib" -gt "$limit_mib" ]; then
  echo "prepare-gpu-deps: over the ${limit_mib} MiB that can be carried to the GPU machine" >&2
  exit 1
fi
