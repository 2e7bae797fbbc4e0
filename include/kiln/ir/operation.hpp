#pragma once
// The operation behind a tensor: a placeholder (an input) or a compute (a body over its axes).
#include "kiln/ir/expr.hpp"

namespace kiln {

enum class OpKind : std::uint8_t { Placeholder, Compute };

struct OperationNode {
    std::string name;
    OpKind kind = OpKind::Placeholder;
    Type dtype = f32;
    std::vector<Expr> shape;
    // Compute only:
    std::vector<IterVar> axis;         // one per output dimension
    std::vector<IterVar> reduce_axis;  // from the body's Reduce, if any
    Expr body;
    // What kind of operator made it ("matmul", "matmul_pack", "conv2d", ...), for schedules that look for
    // the stages of a pattern, as TOPI's tags do. Empty for computes a user writes.
    std::string tag;
};

using OpPtr = std::shared_ptr<const OperationNode>;

}  // namespace kiln
