#!/usr/bin/env bash
# Builds and runs the main demo: the lesson's matmul, its loop IR, a check against Eigen, GFLOP/s.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build --target matmul
./build/examples/matmul
