#pragma once
// How kiln's compiling functions (kiln::build, graph::compile, graph::save / load_executable /
// export_library, onnx::load: everything behind LLVM and protobuf) reach a program.
//
// By default, header-only: every file that includes them compiles them, so nothing needs setting up, but
// each such file also parses LLVM's headers (tens of seconds, a gigabyte of compiler memory).
//
// Compiled once instead, as doctest and stb do it: define KILN_SEPARATE_IMPLEMENTATION for every file of
// the program, and in exactly one file also define KILN_IMPLEMENTATION before including <kiln/build.hpp>
// (with <kiln/onnx.hpp> as well where the ONNX frontend is used). Every other file then sees declarations
// only: no LLVM or protobuf header. The CMake target kiln::jit is that one file, compiled by kiln's build:
// link it and the definition comes with it.
//
// KILN_SEPARABLE marks those functions: inline in header-only use, one external definition otherwise.
#if defined(KILN_SEPARATE_IMPLEMENTATION) || defined(KILN_IMPLEMENTATION)
#define KILN_SEPARABLE
#else
#define KILN_SEPARABLE inline
#endif

// Marks a function that calls machine code kiln generated (a kernel from LLVM's JIT or from an exported
// library, or a parallel loop body outlined from one). clang's -fsanitize=function checks, before an
// indirect call, a type signature it stores in front of every function it compiled; generated code has
// none, so a program built with clang's -fsanitize=undefined would crash on the check itself.
#if defined(__clang__)
#define KILN_CALLS_GENERATED_CODE __attribute__((no_sanitize("function")))
#else
#define KILN_CALLS_GENERATED_CODE
#endif
