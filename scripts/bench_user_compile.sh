#!/usr/bin/env bash
# How long a user's file takes to compile, and the compiler's peak memory (docs/performance.md):
#   a file that describes, schedules and lowers kernels (kiln/kiln.hpp, kiln/nn.hpp: tests/consumer/dsl_only.cpp);
#   a file that calls kiln::build, graph::compile and onnx::load (tests/consumer/jit_compiled_once.cpp),
#     header-only (the default) and in a program that compiles kiln's backend once (KILN_SEPARATE_IMPLEMENTATION).
# Usage: scripts/bench_user_compile.sh [compiler]   (default c++; no ccache, -fsyntax-only not used)
set -euo pipefail
cd "$(dirname "$0")/.."
cxx=${1:-c++}
inc="-Iinclude -Ifrontends/onnx/include -isystem /usr/lib/llvm-19/include -DONNX_ML=1 -DONNX_NAMESPACE=onnx"
printf '%-58s %6s %8s %8s\n' "file" "flags" "seconds" "peak MB"
run() {
  local name=$1 opt=$2; shift 2
  local out
  out=$( { /usr/bin/time -f '%e %M' "$cxx" -std=c++20 $opt $inc "$@" -c -o /dev/null; } 2>&1 | tail -n 1)
  printf '%-58s %6s %8s %8d\n' "$name" "$opt" "${out% *}" "$(( ${out#* } / 1024 ))"
}
for opt in -O0 -O2; do
  run "describes and lowers kernels (dsl_only.cpp), header-only" $opt tests/consumer/dsl_only.cpp
  run "describes and lowers kernels, KILN_SEPARATE_IMPLEMENTATION" $opt -DKILN_SEPARATE_IMPLEMENTATION tests/consumer/dsl_only.cpp
  run "calls graph::compile, header-only" $opt tests/consumer/jit_compiled_once.cpp
  run "calls graph::compile, KILN_SEPARATE_IMPLEMENTATION" $opt -DKILN_SEPARATE_IMPLEMENTATION tests/consumer/jit_compiled_once.cpp
done
