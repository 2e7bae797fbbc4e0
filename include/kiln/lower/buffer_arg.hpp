#pragma once
// What a kernel takes: its tensor arguments, and what their sizes must satisfy when it is called.
#include <string>

#include "kiln/ir/operation.hpp"

namespace kiln::passes {

// A tensor argument of the kernel: the op it stands for and the flat buffer that holds it.
struct BufferArg {
    OpPtr op;
    Var buffer;
};

// One read whose range depends on the sizes the kernel is called with: `index` must lie in
// [0, extent) for the call to be in range.
struct BoundsRequirement {
    std::string tensor, stage;  // the tensor read, and the stage that reads it
    int dim = 0;
    Expr index;         // the lowest or the highest index read, over the size variables
    Expr extent;        // the tensor's size in that dimension
    bool upper = true;  // index <= extent - 1 (else index >= 0)
    std::string read;   // the read as written, e.g. A(i + 1)
};

}  // namespace kiln::passes
