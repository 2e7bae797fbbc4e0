#pragma once
// Symbolic intervals: the range an index expression covers when some variables sweep their
// ranges while the others stay fixed. Bound inference is built on this.
#include "kiln/arith/simplify.hpp"

namespace kiln::arith {

struct Interval {
    Expr min, max;  // inclusive; undefined means unbounded on that side
    bool bounded() const { return min.defined() && max.defined(); }
    static Interval point(const Expr& e) { return {e, e}; }
};

using RelaxMap = std::unordered_map<const VarNode*, Interval>;

namespace detail {
inline Expr opt(ExprKind k, const Expr& a, const Expr& b) {
    if (!a.defined() || !b.defined()) return Expr();
    return make_binary(k, a, b);
}
}  // namespace detail

inline Interval eval_interval(const Expr& e, const RelaxMap& relax) {
    using detail::opt;
    if (!e.defined()) return {};
    if (is_const(e)) return Interval::point(e);
    if (auto* v = e.as<VarNode>()) {
        auto it = relax.find(v);
        return it == relax.end() ? Interval::point(e) : it->second;
    }
    auto touches_relaxed = [&](const Expr& x) {
        bool found = false;
        post_order_visit(x, [&](const Expr& s) {
            found |= s.kind() == ExprKind::Var && relax.count(static_cast<const VarNode*>(s.get()));
        });
        return found;
    };
    if (!touches_relaxed(e)) return Interval::point(e);
    switch (e.kind()) {
        case ExprKind::Add: {
            auto* n = e.as<Add>();
            auto a = eval_interval(n->a, relax), b = eval_interval(n->b, relax);
            return {opt(ExprKind::Add, a.min, b.min), opt(ExprKind::Add, a.max, b.max)};
        }
        case ExprKind::Sub: {
            auto* n = e.as<Sub>();
            auto a = eval_interval(n->a, relax), b = eval_interval(n->b, relax);
            return {opt(ExprKind::Sub, a.min, b.max), opt(ExprKind::Sub, a.max, b.min)};
        }
        case ExprKind::Mul: {
            auto* n = e.as<Mul>();
            const Expr *var_side = &n->a, *c_side = &n->b;
            if (touches_relaxed(n->b)) std::swap(var_side, c_side);
            if (touches_relaxed(*c_side)) return {};
            auto a = eval_interval(*var_side, relax);
            auto* c = c_side->as<IntImm>();
            auto* cf = c_side->as<FloatImm>();
            if ((c && c->value >= 0) || (cf && cf->value >= 0))
                return {opt(ExprKind::Mul, a.min, *c_side), opt(ExprKind::Mul, a.max, *c_side)};
            if (c || cf) return {opt(ExprKind::Mul, a.max, *c_side), opt(ExprKind::Mul, a.min, *c_side)};
            return {};  // the sign of the factor is unknown
        }
        case ExprKind::Div: {
            auto* n = e.as<Div>();
            auto* c = n->b.as<IntImm>();
            if (!c || c->value <= 0) return {};
            auto a = eval_interval(n->a, relax);
            return {opt(ExprKind::Div, a.min, n->b), opt(ExprKind::Div, a.max, n->b)};
        }
        case ExprKind::Mod: {
            auto* n = e.as<Mod>();
            auto* c = n->b.as<IntImm>();
            if (!c || c->value <= 0) return {};
            return {make_int(e.type(), 0), make_int(e.type(), c->value - 1)};
        }
        case ExprKind::Min: {
            auto* n = e.as<Min>();
            auto a = eval_interval(n->a, relax), b = eval_interval(n->b, relax);
            return {opt(ExprKind::Min, a.min, b.min),
                    a.max.defined() && b.max.defined() ? min(a.max, b.max) : (a.max.defined() ? a.max : b.max)};
        }
        case ExprKind::Max: {
            auto* n = e.as<Max>();
            auto a = eval_interval(n->a, relax), b = eval_interval(n->b, relax);
            return {a.min.defined() && b.min.defined() ? max(a.min, b.min) : (a.min.defined() ? a.min : b.min),
                    opt(ExprKind::Max, a.max, b.max)};
        }
        case ExprKind::Select: {
            auto* n = e.as<Select>();
            auto a = eval_interval(n->t, relax), b = eval_interval(n->f, relax);
            return {opt(ExprKind::Min, a.min, b.min), opt(ExprKind::Max, a.max, b.max)};
        }
        case ExprKind::Call: {
            auto* n = e.as<Call>();
            if (n->op == Intrinsic::IfThenElse) {
                auto a = eval_interval(n->args[1], relax), b = eval_interval(n->args[2], relax);
                return {opt(ExprKind::Min, a.min, b.min), opt(ExprKind::Max, a.max, b.max)};
            }
            return {};
        }
        case ExprKind::Cast: {
            auto* n = e.as<Cast>();
            if (!n->type.is_integer() || !n->value.type().is_integer()) return {};
            auto a = eval_interval(n->value, relax);
            return {a.min.defined() ? cast(n->type, a.min) : Expr(), a.max.defined() ? cast(n->type, a.max) : Expr()};
        }
        default: return {};
    }
}

inline Interval union_of(const Interval& a, const Interval& b) {
    return {detail::opt(ExprKind::Min, a.min, b.min), detail::opt(ExprKind::Max, a.max, b.max)};
}

}  // namespace kiln::arith
