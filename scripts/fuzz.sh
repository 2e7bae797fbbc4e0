#!/usr/bin/env bash
# Runs kiln's coverage-guided fuzzers (libFuzzer from clang-19, with AddressSanitizer and
# UndefinedBehaviorSanitizer), each for a bounded time, from scripts/sanitize.sh's build (build-asan):
#   scripts/fuzz.sh                 every fuzzer for 60 s
#   scripts/fuzz.sh 1800 onnx npy   the named ones for 1800 s each
# Each grows its corpus in build-asan/corpus/NAME from the seeds in tests/fuzz/corpus/NAME; an input
# that crashes, hangs or runs out of memory is kept as build-asan/findings/NAME-* and the script fails.
# Fixed, such an input goes into tests/fuzz/regressions/NAME, which the ordinary suite replays.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(npy model_file onnx schedule)
# The fuzz targets live in scripts/sanitize.sh's build (clang-19, ASan+UBSan): one compile serves both.
dir=build-asan
if [ ! -f "$dir/build.ninja" ] || ! grep -q "KILN_BUILD_FUZZERS:BOOL=ON" "$dir/CMakeCache.txt"; then
  echo "fuzz.sh: configure and build $dir first: bash scripts/sanitize.sh" >&2
  exit 2
fi
cmake --build "$dir" --target "${names[@]/#/fuzz_}"
export ASAN_OPTIONS="detect_leaks=0" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
mkdir -p "$dir/findings"
status=0
for n in "${names[@]}"; do
  mkdir -p "$dir/corpus/$n"
  extra=()
  [ -f "tests/fuzz/$n.dict" ] && extra+=("-dict=tests/fuzz/$n.dict")
  # -timeout: an input that runs longer is a hang (unrolling 1,000 copies of a loop nest takes 12 s, 80 s under
  # ASan); -malloc_limit_mb: one allocation that large is a finding.
  if ! "$dir/tests/fuzz/fuzz_$n" -max_total_time="$secs" -timeout=120 -rss_limit_mb=6144 -malloc_limit_mb=2048 \
      -max_len=16384 -print_final_stats=1 -artifact_prefix="$dir/findings/$n-" "${extra[@]}" \
      "$dir/corpus/$n" "tests/fuzz/corpus/$n" > "$dir/fuzz_$n.log" 2>&1; then
    status=1
    echo "fuzz_$n: a finding (build-asan/findings/$n-*); the end of its log:"
    tail -n 40 "$dir/fuzz_$n.log"
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$dir/fuzz_$n.log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$dir/fuzz_$n.log" | tail -n 1 || true)
  echo "fuzz_$n: $runs inputs in ${secs} s, $cov, corpus $(ls "$dir/corpus/$n" | wc -l) files"
done
exit $status
