#!/usr/bin/env bash
# Builds and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
py=$(bash scripts/pyenv.sh)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_PYTHON="$py"
cmake --build build --target kiln_tests kiln_graph_tests kiln_onnx_conformance kiln_cli
ctest --test-dir build --output-on-failure

# The ONNX conformance summary (every failure and why: build/tests/onnx_conformance.txt).
tail -n 1 build/tests/onnx_conformance.txt
