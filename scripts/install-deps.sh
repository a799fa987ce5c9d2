#!/usr/bin/env bash
# Installs the Debian 12 packages nla needs, idempotently: `apt-get update`
# runs once, and only when something is missing.
#   scripts/install-deps.sh            build + test dependencies
#   scripts/install-deps.sh --torch    also PyTorch (CPU) for the side-by-side benchmarks
#   scripts/install-deps.sh --clang    also clang 14 and its OpenMP runtime (libomp), for
#                                      CC=clang-14 CXX=clang++-14 builds
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libeigen3-dev libxtensor-dev libcereal-dev catch2 libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libfmt-dev
  libopenmpi-dev openmpi-bin gnuplot-nox python3
  fortunes-min doxygen
)
for arg in "$@"; do
  case "$arg" in
    --torch) packages+=(python3-torch python3-numpy python3-regex libopenblas0-pthread) ;;
    --clang) packages+=(clang-14 libomp-14-dev) ;;
    *) echo "install-deps.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
