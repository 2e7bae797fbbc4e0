#pragma once
// The graph layer: a typed dataflow graph (import one with kiln::onnx::load), its passes, and
// graph::compile, which lowers every fused group to kiln kernels and returns an Executable.
#include "kiln/graph/compile.hpp"
