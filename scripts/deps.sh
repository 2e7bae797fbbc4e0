#!/usr/bin/env bash
# Installs the Debian 12 packages kiln builds with, when they are missing.
#   deps.sh          what the library, its tests and the demo need
#   deps.sh --zoo    also PyTorch and torchvision, which scripts/make_zoo.py exports the model zoo with
set -euo pipefail
pkgs=(cmake ninja-build ccache g++ gcc make llvm-19-dev libeigen3-dev libdlpack-dev libcli11-dev doctest-dev libbenchmark-dev clang-19 libclang-rt-19-dev libonnx-dev libprotobuf-dev nlohmann-json3-dev libxgboost-dev ocl-icd-libopencl1 pocl-opencl-icd python3-venv)
if [ "${1:-}" = "--zoo" ]; then pkgs+=(python3-torchvision); fi
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi
