#!/usr/bin/env bash
# Builds and runs the main demo: the lesson's matmul (loop IR, check against Eigen, GFLOP/s), the
# conv2d + bias + ReLU pipeline, then a ResNet-18 ONNX model compiled by kiln, checked against ONNX
# Runtime and timed next to it in the same run, saved and loaded back.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
py=$(bash scripts/pyenv.sh)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_PYTHON="$py"
cmake --build build --target matmul conv_bias_relu resnet18
./build/examples/matmul
./build/examples/conv_bias_relu
echo
"$py" tests/graph/make_models.py build/demo --only resnet18 > /dev/null
"$py" scripts/ort_latency.py build/demo/model_resnet18 30 > build/demo/ort_latency.txt
./build/examples/resnet18 build/demo/model_resnet18 build/demo/ort_latency.txt
