#!/usr/bin/env bash
# Builds and runs the whole test suite, then the suite again under sanitizers and each fuzzer for a minute,
# and says how long each phase took.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
phase() { printf '\n== %s (%ds so far)\n' "$1" $((SECONDS - start)); }
phase "dependencies"
bash scripts/deps.sh
py=$(bash scripts/pyenv.sh)
phase "configure"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_PYTHON="$py"
phase "build"
cmake --build build --target kiln_tests kiln_autotune_tests kiln_graph_tests kiln_onnx_conformance kiln_cli kiln_fuzz_targets
phase "test"
ctest --test-dir build --output-on-failure -j "$(nproc)"
phase "the suite under AddressSanitizer + UndefinedBehaviorSanitizer (clang-19)"
bash scripts/sanitize.sh
phase "each fuzzer for 60 s"
bash scripts/fuzz.sh 60
phase "done"

# The ONNX conformance summary (every failure and why: build/tests/onnx_conformance.txt), when it ran.
if [ -f build/tests/onnx_conformance.txt ]; then tail -n 1 build/tests/onnx_conformance.txt; fi
