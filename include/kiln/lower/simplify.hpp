#pragma once
// Pass: simplify every expression and statement, using loop bounds to remove guards that always hold.
#include "kiln/arith/simplify.hpp"

namespace kiln::passes {

inline Stmt simplify(const Stmt& s) { return arith::Simplifier().mutate(s); }

}  // namespace kiln::passes
