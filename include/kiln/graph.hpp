#pragma once
// The graph layer: a typed dataflow graph (import one with kiln::onnx::load), its passes, and
// graph::compile, which lowers every fused group to kiln kernels and returns an Executable, and
// graph::save / graph::load_executable, which store one and start from it without compiling.
#include "kiln/graph/compile.hpp"
#include "kiln/graph/executable_file.hpp"
