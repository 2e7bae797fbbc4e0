#!/usr/bin/env bash
# Builds and runs the main demo: the lesson's matmul (loop IR, check against Eigen, GFLOP/s), then the
# conv2d + bias + ReLU pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build --target matmul conv_bias_relu
./build/examples/matmul
./build/examples/conv_bias_relu
