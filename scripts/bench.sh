#!/usr/bin/env bash
# Builds and runs the benchmark suite with the peers in the same binaries, then prints the tables:
#   bash scripts/bench.sh                 every suite
#   bash scripts/bench.sh gemm            one suite (bench_gemm); extra arguments go to Google Benchmark
#                                         (instead of the default: 3 repetitions, medians reported)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# oneDNN is the peer the suites compare with; they still build without it.
if ! dpkg -s libdnnl-dev >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q libdnnl-dev || echo "libdnnl-dev unavailable: comparing with Eigen only"
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_BENCH=ON
suites=(matmul gemm conv)
if [ $# -gt 0 ]; then suites=("$1"); shift; fi
# Three repetitions per case, the tables showing the median: two shared cores are noisy.
if [ $# -eq 0 ]; then set -- --benchmark_repetitions=3 --benchmark_report_aggregates_only=true; fi
for s in "${suites[@]}"; do
  cmake --build build --target "bench_$s"
  "./build/bench/bench_$s" "$@"
done
