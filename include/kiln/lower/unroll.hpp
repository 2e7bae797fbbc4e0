#pragma once
// Pass: unrolling. An unrolled loop of constant extent becomes that many copies of its body.
#include "kiln/ir/analysis.hpp"

namespace kiln::passes {

namespace detail {
class Unroller : public IRMutator {
public:
    using IRMutator::mutate;

protected:
    Stmt mutate_for(const For* n, const Stmt& s) override {
        Stmt body = mutate(n->body);
        auto* ext = as_const_int(n->extent);
        if (n->for_kind != ForKind::Unrolled || !ext) {
            if (body.same_as(n->body) && n->for_kind != ForKind::Unrolled) return s;
            return make_stmt<For>(n->var, n->min, n->extent,
                                  n->for_kind == ForKind::Unrolled ? ForKind::Serial : n->for_kind, body,
                                  n->annotations);
        }
        std::vector<Stmt> copies;
        for (int64_t i = 0; i < *ext; ++i)
            copies.push_back(substitute(body, n->var, n->min + make_int(n->min.type(), i)));
        return make_block(copies);
    }
};
}  // namespace detail

inline Stmt unroll(const Stmt& s) { return detail::Unroller().mutate(s); }

}  // namespace kiln::passes
