#pragma once
// Pass: loop partitioning. A loop whose body holds a guard `likely(a*v + rest < bound)` on its own
// variable v is cut in two: a main loop over the iterations where the guard provably holds (the
// guard removed) and a tail loop that keeps it. A bound `min(a, b)` (a tile clipped at the edge of
// its tensor) splits where the first of the two may fail. Vectorized loops are left whole: their
// guards become predicated lanes instead. Parallel loops are left whole too: halves of a parallel
// loop run one after the other, so a tail of one iteration would run alone on one thread; the loops
// inside split instead, at a point computed from the parallel variable.
#include <set>

#include "kiln/arith/interval.hpp"

namespace kiln::passes {

namespace detail {

// The ranges of the loops inside a statement, so the guard's other terms can be swept.
inline arith::RelaxMap inner_loop_ranges(const Stmt& s) {
    arith::RelaxMap out;
    struct V : IRVisitor {
        arith::RelaxMap& out;
        explicit V(arith::RelaxMap& o) : out(o) {}
        using IRVisitor::visit;
        void visit_for(const For* n) override {
            out[n->var.get()] = {n->min, n->min + n->extent - 1};
            IRVisitor::visit_for(n);
        }
    } v(out);
    v.visit(s);
    return out;
}

inline void collect_likely(const Stmt& s, std::vector<Expr>& out) {
    post_order_visit(s, [&](const Expr& e) {
        if (auto* c = e.as<Call>(); c && c->op == Intrinsic::Likely) out.push_back(e);
    });
}

class ReplaceExpr : public IRMutator {
public:
    ReplaceExpr(const ExprNode* target, Expr with) : target_(target), with_(std::move(with)) {}
    using IRMutator::mutate;
    Expr mutate(const Expr& e) override { return e.get() == target_ ? with_ : IRMutator::mutate(e); }

private:
    const ExprNode* target_;
    Expr with_;
};

class LoopPartitioner : public IRMutator {
public:
    using IRMutator::mutate;

protected:
    Stmt mutate_for(const For* n, const Stmt& s) override {
        if (n->for_kind != ForKind::Vectorized && n->for_kind != ForKind::Parallel) {
            std::vector<Expr> guards;
            collect_likely(n->body, guards);
            for (const Expr& g : guards) {
                if (done_.count({g.get(), n->var.get()})) continue;
                Expr split = split_point(n, g.as<Call>()->args[0], inner_loop_ranges(n->body));
                if (!split.defined()) continue;
                Expr lo = n->min, hi = n->min + n->extent;
                split = arith::simplify(kiln::max(lo, kiln::min(split, hi)));
                Stmt main_body = ReplaceExpr(g.get(), make_int(boolean, 1)).mutate(n->body);
                // The tail keeps the guard; loops inside it may still split on it, this loop may not.
                Stmt tail_body = n->body;
                done_.insert({g.get(), n->var.get()});
                Stmt main = make_stmt<For>(n->var, lo, arith::simplify(split - lo), n->for_kind, main_body, n->annotations);
                Stmt tail = make_stmt<For>(n->var, split, arith::simplify(hi - split), n->for_kind, tail_body, n->annotations);
                return make_block({mutate(main), mutate(tail)});
            }
        }
        return IRMutator::mutate_for(n, s);
    }

private:
    std::set<std::pair<const ExprNode*, const VarNode*>> done_;

    // The first iteration of n at which `cond` may fail; undefined if cond is not of a usable form.
    Expr split_point(const For* n, const Expr& cond, const arith::RelaxMap& inner) {
        const BinaryNode* cmp = cond.as<LT>() ? static_cast<const BinaryNode*>(cond.as<LT>()) : nullptr;
        if (!cmp || !cond.type().is_scalar() || !cmp->a.type().is_integer()) return Expr();
        if (auto* m = cmp->b.as<Min>()) {
            Expr x = split_point(n, cmp->a < m->a, inner), y = split_point(n, cmp->a < m->b, inner);
            return x.defined() && y.defined() ? arith::simplify(kiln::min(x, y)) : Expr();
        }
        const VarNode* v = n->var.get();
        arith::LinearForm f = arith::to_linear(cmp->a - cmp->b);
        if (!f.ok) return Expr();
        int64_t a = 0;
        arith::LinearForm rest;
        rest.constant = f.constant;
        for (auto& [t, k] : f.terms) {
            if (t.get() == v) a = k;
            else if (uses_var(t, v)) return Expr();
            else rest.add_term(t, k);
        }
        if (a <= 0) return Expr();
        // a*v + rest < 0 for every inner value  <=>  v < ceil(-max(rest) / a)  <=>  v <= floor((-max(rest) - 1) / a)
        auto r = arith::eval_interval(arith::from_linear(rest, cmp->a.type()), inner);
        if (!r.max.defined()) return Expr();
        Expr hi = arith::simplify(r.max);
        bool inner_free = true;
        post_order_visit(hi, [&](const Expr& x) { if (auto* vn = x.as<VarNode>(); vn && (inner.count(vn) || vn == v)) inner_free = false; });
        if (!inner_free) return Expr();
        return arith::simplify((make_int(hi.type(), 0) - hi - 1) / make_int(hi.type(), a) + 1);
    }
};

}  // namespace detail

inline Stmt loop_partition(const Stmt& s) { return detail::LoopPartitioner().mutate(s); }

}  // namespace kiln::passes
