#pragma once
// The graph layer: a typed dataflow graph (import one with kiln::onnx::load), its passes, and
// graph::compile, which lowers every fused group to kiln kernels and returns an Executable;
// graph::save / graph::load_executable, which store one and start from it without compiling; and
// graph::export_library, which writes one as a shared library for the LLVM-free runtime (kiln/runtime.h).
#include "kiln/graph/compile.hpp"
#include "kiln/graph/executable_file.hpp"
#include "kiln/graph/export.hpp"
#include "kiln/graph/printer.hpp"
