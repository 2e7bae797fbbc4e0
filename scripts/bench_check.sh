#!/usr/bin/env bash
# The guard against slipping back, in a few minutes: the GEMM shapes of bench_gemm and the ResNet-18
# convolution layers against oneDNN, and three zoo models against ONNX Runtime and OpenVINO, each ratio
# compared with bench/baseline_ratios.txt. Prints every case that fell by more than 10% and exits 1 if any
# did. Run it before a submission that touches lowering, codegen, schedules or kiln::nn. Not a test:
# timing has no place in the test suite.
#   bash scripts/bench_check.sh            compare
#   bash scripts/bench_check.sh --update   rewrite the baseline (only with a note saying why)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh --zoo
if ! dpkg -s libdnnl-dev >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q libdnnl-dev
fi
py=$(bash scripts/pyenv.sh --peers)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_BENCH=ON >/dev/null
cmake --build build --target bench_gemm bench_conv kiln_cli
[ -f build/zoo/resnet18.onnx ] || /usr/bin/python3 scripts/make_zoo.py build/zoo
out=build/bench_check
mkdir -p "$out"
reps=(--benchmark_repetitions=3 --benchmark_report_aggregates_only=true)
./build/bench/bench_gemm "${reps[@]}" | tee "$out/gemm.txt"
./build/bench/bench_conv "${reps[@]}" --benchmark_filter='_s[12]/' | tee "$out/conv.txt"
"$py" scripts/bench_zoo.py --kiln build/runtime/kiln --zoo build/zoo --models resnet18,squeezenet1_1,transformer_small \
  --rounds 6 --runs 10 --json "$out/zoo.json"
"$py" scripts/bench_check.py bench/baseline_ratios.txt --gemm "$out/gemm.txt" --conv "$out/conv.txt" --zoo "$out/zoo.json" "$@"
