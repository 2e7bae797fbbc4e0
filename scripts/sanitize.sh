#!/usr/bin/env bash
# The test suite under sanitizers, built with clang-19, each in a build directory of its own:
#   scripts/sanitize.sh            AddressSanitizer + UndefinedBehaviorSanitizer, every test (build-asan);
#                                  the same build holds the libFuzzer targets scripts/fuzz.sh runs
#   scripts/sanitize.sh --thread   ThreadSanitizer, the tests that run threads against each other (build-tsan)
# JIT-compiled kernels are not instrumented (LLVM emits them); everything around them is. Leak checking is
# off: the process-wide JIT, thread pool and caches are meant to live until exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
py=$(bash scripts/pyenv.sh)
if [ "${1:-}" = "--thread" ]; then
  dir=build-tsan
  flags="-fsanitize=thread"
  select=(-R "stress|several threads|two executables|thread pool|parallel")
  fuzz=OFF
  export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
else
  dir=build-asan
  flags="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined"
  select=()
  fuzz=ON
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
# A directory configured with another compiler (an older version of this script used gcc) starts afresh.
if [ -f "$dir/CMakeCache.txt" ] && ! grep -q "^CMAKE_CXX_COMPILER:.*clang++-19" "$dir/CMakeCache.txt"; then rm -rf "$dir"; fi
# Line tables only: enough for the sanitizers' reports, and much less to compile than full debug info.
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKILN_PYTHON="$py" -DKILN_BUILD_BENCH=OFF \
  -DKILN_BUILD_EXAMPLES=OFF -DKILN_BUILD_FUZZERS=$fuzz -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 \
  -DCMAKE_C_FLAGS="$flags -gline-tables-only -fno-omit-frame-pointer" \
  -DCMAKE_CXX_FLAGS="$flags -gline-tables-only -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS="${flags/,fuzzer-no-link/}" \
  -DCMAKE_SHARED_LINKER_FLAGS="${flags/,fuzzer-no-link/}" >/dev/null
cmake --build "$dir" --target kiln_tests kiln_autotune_tests kiln_graph_tests kiln_onnx_conformance kiln_cli kiln_fuzz_targets
# The consumer and format checks build or read files and run no kiln code of this build.
ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" -E "find_package_consumer|^format$|headers_without_llvm" "${select[@]}"
