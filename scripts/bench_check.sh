#!/usr/bin/env bash
# The guard against slipping back, in a few minutes: the GEMM shapes of bench_gemm and the ResNet-18
# convolution layers against oneDNN, and three zoo models against ONNX Runtime and OpenVINO, each ratio
# compared with bench/baseline_ratios.txt. A case that fell by more than 10% is measured once more; one that
# fell both times is printed and makes the script exit 1. Run it before a submission that touches lowering,
# codegen, schedules or kiln::nn. Not a test: timing has no place in the test suite.
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
"$py" scripts/bench_zoo.py --kiln build/tools/kiln --zoo build/zoo --models resnet18,squeezenet1_1,transformer_small \
  --rounds 6 --runs 10 --json "$out/zoo.json"
runs=(--gemm "$out/gemm.txt" --conv "$out/conv.txt" --zoo "$out/zoo.json")
if "$py" scripts/bench_check.py bench/baseline_ratios.txt "${runs[@]}" --fell-out "$out/fell.txt" "$@"; then exit 0; fi
# The VM drifts by 10% for seconds at a time: a case that fell is measured once more, and counts with its
# better run, so only a case that falls both times is reported.
echo; echo "measuring the $(wc -l < "$out/fell.txt") case(s) that fell once more"
filter() {  # the benchmark names of the fallen cases of one suite, every library's, as one regex
  grep "^$1/" "$out/fell.txt" | cut -d' ' -f1 | sed -E "s#^$1/([^/]+)/([0-9]+t)\$#^$1/[a-z]+/\1/\2/#" | paste -sd'|' || true
}
gemm=$(filter gemm)
if [ -n "$gemm" ]; then ./build/bench/bench_gemm "${reps[@]}" --benchmark_filter="$gemm" | tee "$out/gemm.again.txt"; runs+=(--gemm "$out/gemm.again.txt"); fi
conv=$(filter conv2d)
if [ -n "$conv" ]; then ./build/bench/bench_conv "${reps[@]}" --benchmark_filter="$conv" | tee "$out/conv.again.txt"; runs+=(--conv "$out/conv.again.txt"); fi
models=$(grep '^zoo/' "$out/fell.txt" | cut -d/ -f2 | sort -u | paste -sd, || true)
if [ -n "$models" ]; then
  threads=$(grep '^zoo/' "$out/fell.txt" | cut -d/ -f3 | cut -d' ' -f1 | tr -d t | sort -u | paste -sd,)
  "$py" scripts/bench_zoo.py --kiln build/tools/kiln --zoo build/zoo --models "$models" --threads "$threads" \
    --rounds 6 --runs 10 --json "$out/zoo.again.json"
  runs+=(--zoo "$out/zoo.again.json")
fi
echo
"$py" scripts/bench_check.py bench/baseline_ratios.txt "${runs[@]}" "$@"
