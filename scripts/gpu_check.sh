#!/usr/bin/env bash
# Where an NVIDIA GPU is: builds kiln and runs every GPU test on CUDA as well as on OpenCL (each test runs its
# kernels on every GPU kind present and holds them to the same reference), then the shared-memory matmul
# example on the GPU. Record what it prints in docs/performance.md. Elsewhere the CUDA kernels are only compiled
# to PTX (by the ordinary suite, where NVRTC is installed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target kiln_tests gpu_matmul
nvidia-smi -L || echo "nvidia-smi: not found"
./build/tests/kiln_tests -tc="gpu*" -s 2>&1 | grep -E "CUDA|cuda|test cases|assertions|Status" || true
./build/tests/kiln_tests -tc="gpu*"
./build/examples/gpu_matmul cuda
