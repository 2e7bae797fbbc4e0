#pragma once
// Constant bounds of integer expressions, given constant ranges of the variables in scope.
// The simplifier uses them to drop guards that are provably true.
#include <limits>
#include <optional>

#include "kiln/ir/analysis.hpp"

namespace kiln::arith {

struct ConstBound {
    std::optional<int64_t> min, max;
    bool is_point() const { return min && max && *min == *max; }
};

using BoundScope = std::unordered_map<const VarNode*, ConstBound>;

namespace detail {
inline std::optional<int64_t> add(std::optional<int64_t> a, std::optional<int64_t> b) {
    if (!a || !b) return std::nullopt;
    int64_t r;
    if (__builtin_add_overflow(*a, *b, &r)) return std::nullopt;
    return r;
}
inline std::optional<int64_t> mul(std::optional<int64_t> a, int64_t c) {
    if (!a) return std::nullopt;
    int64_t r;
    if (__builtin_mul_overflow(*a, c, &r)) return std::nullopt;
    return r;
}
inline std::optional<int64_t> neg(std::optional<int64_t> a) { return a ? std::optional<int64_t>(-*a) : std::nullopt; }
}  // namespace detail

inline ConstBound const_bound(const Expr& e, const BoundScope& scope) {
    using detail::add;
    using detail::mul;
    using detail::neg;
    if (!e.defined()) return {};
    if (auto* i = e.as<IntImm>()) return {i->value, i->value};
    Type t = e.type();
    if (!t.element_of().is_integer() && !t.element_of().is_bool()) return {};
    switch (e.kind()) {
        case ExprKind::Var: {
            auto it = scope.find(static_cast<const VarNode*>(e.get()));
            if (it != scope.end()) return it->second;
            if (t.is_uint()) return {0, std::nullopt};
            return {};
        }
        case ExprKind::Add: {
            auto* n = e.as<Add>();
            auto a = const_bound(n->a, scope), b = const_bound(n->b, scope);
            return {add(a.min, b.min), add(a.max, b.max)};
        }
        case ExprKind::Sub: {
            auto* n = e.as<Sub>();
            auto a = const_bound(n->a, scope), b = const_bound(n->b, scope);
            return {add(a.min, neg(b.max)), add(a.max, neg(b.min))};
        }
        case ExprKind::Mul: {
            auto* n = e.as<Mul>();
            auto a = const_bound(n->a, scope), b = const_bound(n->b, scope);
            if (b.is_point()) {
                int64_t c = *b.min;
                return c >= 0 ? ConstBound{mul(a.min, c), mul(a.max, c)} : ConstBound{mul(a.max, c), mul(a.min, c)};
            }
            if (a.is_point()) {
                int64_t c = *a.min;
                return c >= 0 ? ConstBound{mul(b.min, c), mul(b.max, c)} : ConstBound{mul(b.max, c), mul(b.min, c)};
            }
            if (a.min && a.max && b.min && b.max) {
                int64_t c[4];
                const bool o0 = __builtin_mul_overflow(*a.min, *b.min, &c[0]),
                           o1 = __builtin_mul_overflow(*a.min, *b.max, &c[1]),
                           o2 = __builtin_mul_overflow(*a.max, *b.min, &c[2]),
                           o3 = __builtin_mul_overflow(*a.max, *b.max, &c[3]);
                if (!(o0 || o1 || o2 || o3))
                    return {std::min({c[0], c[1], c[2], c[3]}), std::max({c[0], c[1], c[2], c[3]})};
            }
            return {};
        }
        case ExprKind::Div: {
            auto* n = e.as<Div>();
            auto a = const_bound(n->a, scope), b = const_bound(n->b, scope);
            if (b.is_point() && *b.min > 0) {
                int64_t c = *b.min;
                return {a.min ? std::optional<int64_t>(kiln::detail::floor_div(*a.min, c)) : std::nullopt,
                        a.max ? std::optional<int64_t>(kiln::detail::floor_div(*a.max, c)) : std::nullopt};
            }
            if (b.min && *b.min > 0 && a.min && *a.min >= 0) return {0, a.max};
            return {};
        }
        case ExprKind::Mod: {
            auto* n = e.as<Mod>();
            auto a = const_bound(n->a, scope), b = const_bound(n->b, scope);
            if (b.min && *b.min > 0) {
                if (b.is_point() && a.min && a.max && *a.min >= 0 && *a.max < *b.min) return a;
                return {0, b.max ? std::optional<int64_t>(*b.max - 1) : std::nullopt};
            }
            return {};
        }
        case ExprKind::Min: {
            auto* n = e.as<Min>();
            auto a = const_bound(n->a, scope), b = const_bound(n->b, scope);
            ConstBound r;
            if (a.min && b.min) r.min = std::min(*a.min, *b.min);
            if (a.max && b.max)
                r.max = std::min(*a.max, *b.max);
            else
                r.max = a.max ? a.max : b.max;
            return r;
        }
        case ExprKind::Max: {
            auto* n = e.as<Max>();
            auto a = const_bound(n->a, scope), b = const_bound(n->b, scope);
            ConstBound r;
            if (a.max && b.max) r.max = std::max(*a.max, *b.max);
            if (a.min && b.min)
                r.min = std::max(*a.min, *b.min);
            else
                r.min = a.min ? a.min : b.min;
            return r;
        }
        case ExprKind::Select: {
            auto* n = e.as<Select>();
            auto a = const_bound(n->t, scope), b = const_bound(n->f, scope);
            ConstBound r;
            if (a.min && b.min) r.min = std::min(*a.min, *b.min);
            if (a.max && b.max) r.max = std::max(*a.max, *b.max);
            return r;
        }
        case ExprKind::Cast: {
            auto* n = e.as<Cast>();
            if (n->value.type().element_of().is_integer() && n->type.bits >= n->value.type().bits &&
                n->type.is_int() == n->value.type().is_int())
                return const_bound(n->value, scope);
            return {};
        }
        case ExprKind::Ramp: {
            auto* n = e.as<Ramp>();
            auto b = const_bound(n->base, scope), s = const_bound(n->stride, scope);
            if (!s.is_point()) return {};
            int64_t span = *s.min * (n->lanes - 1);
            return span >= 0 ? ConstBound{b.min, add(b.max, span)} : ConstBound{add(b.min, span), b.max};
        }
        case ExprKind::Broadcast: return const_bound(e.as<Broadcast>()->value, scope);
        case ExprKind::Call: {
            auto* n = e.as<Call>();
            if (n->op == Intrinsic::Likely) return const_bound(n->args[0], scope);
            return {};
        }
        default:
            if (t.element_of().is_bool()) return {0, 1};
            return {};
    }
}

// True when the boolean e holds for every value of the variables in scope.
inline bool can_prove(const Expr& e, const BoundScope& scope) {
    auto b = const_bound(e, scope);
    return b.min && *b.min == 1;
}

}  // namespace kiln::arith
