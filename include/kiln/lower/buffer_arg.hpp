#pragma once
#include "kiln/ir/operation.hpp"

namespace kiln::passes {

// A tensor argument of the kernel: the op it stands for and the flat buffer that holds it.
struct BufferArg {
    OpPtr op;
    Var buffer;
};

}  // namespace kiln::passes
