#pragma once
// Building expressions: type promotion, constant folding at construction, operators and intrinsics.
//
// Promotion: a float operand makes the operation float; f16 computes in f32; the wider integer
// wins; a constant takes the type of the other side; a scalar meets a vector as a broadcast.
// Integer / and % round towards negative infinity (floor semantics): -7 / 2 == -4, -7 % 2 == 1.
#include <cmath>
#include <initializer_list>

#include "kiln/ir/expr.hpp"

namespace kiln {

namespace detail {

inline int64_t wrap_int(Type t, int64_t v) {
    if (t.is_bool()) return v != 0;
    if (t.bits >= 64) return v;
    const uint64_t mask = (uint64_t{1} << t.bits) - 1;
    uint64_t u = static_cast<uint64_t>(v) & mask;
    if (t.is_int() && (u >> (t.bits - 1))) u |= ~mask;
    return static_cast<int64_t>(u);
}

inline int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
    return q;
}
inline int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }

inline Type promote_scalar(Type a, Type b) {
    if (a.is_handle() || b.is_handle()) fail("pointers cannot take part in arithmetic");
    if (a.is_float() || b.is_float()) {
        int bits = std::max(a.is_float() ? a.bits : 0, b.is_float() ? b.bits : 0);
        return bits <= 32 ? f32 : f64;
    }
    if (a.is_bool() && b.is_bool()) return boolean;
    if (a.is_bool()) return b;
    if (b.is_bool()) return a;
    if (a.bits != b.bits) return a.bits > b.bits ? a : b;
    return a.is_int() ? a : b;
}

}  // namespace detail

Expr cast(Type t, const Expr& v);
Expr broadcast(const Expr& v, int lanes);

namespace detail {

// Brings two operands to one type; constants adapt to the other side without widening it.
inline void match_types(Expr& a, Expr& b) {
    const int lanes = std::max(a.type().lanes, b.type().lanes);
    if (a.type().lanes != b.type().lanes && std::min(a.type().lanes, b.type().lanes) != 1)
        fail("cannot combine vectors of ", a.type().lanes, " and ", b.type().lanes, " lanes");
    Type ea = a.type().element_of(), eb = b.type().element_of();
    if (ea.is_float() && ea.bits == 16) ea = f32;
    if (eb.is_float() && eb.bits == 16) eb = f32;
    Type t;
    const bool ca = is_const(a), cb = is_const(b);
    if (ea == eb)
        t = ea;
    else if (ca && !cb && !(ea.is_float() && !eb.is_float()))
        t = eb;
    else if (cb && !ca && !(eb.is_float() && !ea.is_float()))
        t = ea;
    else
        t = promote_scalar(ea, eb);
    if (a.type().element_of() != t) a = cast(t.with_lanes(a.type().lanes), a);
    if (b.type().element_of() != t) b = cast(t.with_lanes(b.type().lanes), b);
    if (a.type().lanes != lanes) a = broadcast(a, lanes);
    if (b.type().lanes != lanes) b = broadcast(b, lanes);
}

inline const Expr& const_scalar(const Expr& e) {
    if (auto* b = e.as<Broadcast>()) return const_scalar(b->value);
    return e;
}

inline Expr fold_binary(ExprKind k, const Expr& a, const Expr& b, Type t) {
    const Expr& sa = const_scalar(a);
    const Expr& sb = const_scalar(b);
    Type rt = is_comparison(k) || k == ExprKind::And || k == ExprKind::Or ? boolean.with_lanes(t.lanes) : t;
    auto wrap = [&](Expr scalar) { return t.lanes > 1 ? make_expr<Broadcast>(scalar, t.lanes) : scalar; };
    if (auto* x = sa.as<IntImm>(), *y = sb.as<IntImm>(); x && y) {
        int64_t u = x->value, v = y->value, r = 0;
        Type et = t.element_of();
        switch (k) {
            case ExprKind::Add: r = u + v; break;
            case ExprKind::Sub: r = u - v; break;
            case ExprKind::Mul: r = u * v; break;
            case ExprKind::Div:
                if (v == 0) fail("integer division by the constant zero");
                r = floor_div(u, v);
                break;
            case ExprKind::Mod:
                if (v == 0) fail("integer modulo by the constant zero");
                r = floor_mod(u, v);
                break;
            case ExprKind::Min: r = std::min(u, v); break;
            case ExprKind::Max: r = std::max(u, v); break;
            case ExprKind::EQ: return wrap(make_expr<IntImm>(boolean, u == v));
            case ExprKind::NE: return wrap(make_expr<IntImm>(boolean, u != v));
            case ExprKind::LT: return wrap(make_expr<IntImm>(boolean, u < v));
            case ExprKind::LE: return wrap(make_expr<IntImm>(boolean, u <= v));
            case ExprKind::GT: return wrap(make_expr<IntImm>(boolean, u > v));
            case ExprKind::GE: return wrap(make_expr<IntImm>(boolean, u >= v));
            case ExprKind::And: return wrap(make_expr<IntImm>(boolean, u && v));
            case ExprKind::Or: return wrap(make_expr<IntImm>(boolean, u || v));
            default: return Expr();
        }
        if (et.is_uint() && (k == ExprKind::Div || k == ExprKind::Mod || k == ExprKind::Min || k == ExprKind::Max)) {
            uint64_t uu = static_cast<uint64_t>(u), vv = static_cast<uint64_t>(v);
            r = k == ExprKind::Div   ? static_cast<int64_t>(uu / vv)
                : k == ExprKind::Mod ? static_cast<int64_t>(uu % vv)
                : k == ExprKind::Min ? static_cast<int64_t>(std::min(uu, vv))
                                     : static_cast<int64_t>(std::max(uu, vv));
        }
        return wrap(make_expr<IntImm>(et, wrap_int(et, r)));
    }
    if (auto* x = sa.as<FloatImm>(), *y = sb.as<FloatImm>(); x && y) {
        double u = x->value, v = y->value, r = 0;
        switch (k) {
            case ExprKind::Add: r = u + v; break;
            case ExprKind::Sub: r = u - v; break;
            case ExprKind::Mul: r = u * v; break;
            case ExprKind::Div: r = u / v; break;
            case ExprKind::Mod: r = u - std::floor(u / v) * v; break;
            case ExprKind::Min: r = std::min(u, v); break;
            case ExprKind::Max: r = std::max(u, v); break;
            case ExprKind::EQ: return wrap(make_expr<IntImm>(boolean, u == v));
            case ExprKind::NE: return wrap(make_expr<IntImm>(boolean, u != v));
            case ExprKind::LT: return wrap(make_expr<IntImm>(boolean, u < v));
            case ExprKind::LE: return wrap(make_expr<IntImm>(boolean, u <= v));
            case ExprKind::GT: return wrap(make_expr<IntImm>(boolean, u > v));
            case ExprKind::GE: return wrap(make_expr<IntImm>(boolean, u >= v));
            default: return Expr();
        }
        if (t.element_of() == f32) r = static_cast<float>(r);
        return wrap(make_expr<FloatImm>(t.element_of(), r));
    }
    (void)rt;
    return Expr();
}

}  // namespace detail

inline Expr broadcast(const Expr& v, int lanes) {
    if (v.type().lanes == lanes) return v;
    if (v.type().is_vector()) detail::internal_fail("broadcast of a vector");
    return make_expr<Broadcast>(v, lanes);
}

inline Expr cast(Type t, const Expr& v) {
    if (!v.defined()) detail::fail("cast of an undefined expression");
    if (v.type() == t) return v;
    if (t.lanes != v.type().lanes) {
        if (v.type().is_scalar()) return broadcast(cast(t.element_of(), v), t.lanes);
        detail::fail("cannot cast ", v.type().str(), " to ", t.str(), ": lane counts differ");
    }
    if (auto* b = v.as<Broadcast>()) return broadcast(cast(t.element_of(), b->value), t.lanes);
    if (auto* i = v.as<IntImm>()) {
        if (t.is_float())
            return make_const(t, v.type().is_uint() ? static_cast<double>(static_cast<uint64_t>(i->value))
                                                    : static_cast<double>(i->value));
        return make_expr<IntImm>(t, detail::wrap_int(t, i->value));
    }
    if (auto* f = v.as<FloatImm>()) {
        if (t.is_float()) return make_expr<FloatImm>(t, t.bits == 32 ? static_cast<float>(f->value) : f->value);
        if (t.is_bool()) return make_expr<IntImm>(t, f->value != 0);
        return make_expr<IntImm>(t, detail::wrap_int(t, static_cast<int64_t>(std::trunc(f->value))));
    }
    return make_expr<Cast>(t, v);
}

inline Expr make_binary(ExprKind k, Expr a, Expr b) {
    if (!a.defined() || !b.defined()) detail::fail("an operand of ", "an arithmetic expression is undefined");
    if (k == ExprKind::And || k == ExprKind::Or) {
        if (!a.type().element_of().is_bool())
            a = a.type().is_float() ? make_binary(ExprKind::NE, a, make_const(a.type(), 0))
                                    : make_binary(ExprKind::NE, a, make_int(a.type(), 0));
        if (!b.type().element_of().is_bool())
            b = b.type().is_float() ? make_binary(ExprKind::NE, b, make_const(b.type(), 0))
                                    : make_binary(ExprKind::NE, b, make_int(b.type(), 0));
    }
    detail::match_types(a, b);
    Type t = a.type();
    if (Expr folded = detail::fold_binary(k, a, b, t); folded.defined()) return folded;
    const bool integer = t.element_of().is_integer();
    switch (k) {
        case ExprKind::Add:
            if (is_zero(b)) return a;
            if (is_zero(a)) return b;
            return make_expr<kiln::Add>(t, a, b);
        case ExprKind::Sub:
            if (is_zero(b)) return a;
            if (integer && a.same_as(b)) return make_int(t, 0);
            return make_expr<kiln::Sub>(t, a, b);
        case ExprKind::Mul:
            if (is_one(b)) return a;
            if (is_one(a)) return b;
            if (integer && (is_zero(a) || is_zero(b))) return make_int(t, 0);
            return make_expr<kiln::Mul>(t, a, b);
        case ExprKind::Div:
            if (is_one(b)) return a;
            if (integer && is_zero(b)) detail::fail("integer division by the constant zero");
            return make_expr<kiln::Div>(t, a, b);
        case ExprKind::Mod:
            if (integer && is_one(b)) return make_int(t, 0);
            if (integer && is_zero(b)) detail::fail("integer modulo by the constant zero");
            return make_expr<kiln::Mod>(t, a, b);
        case ExprKind::Min:
            if (a.same_as(b)) return a;
            return make_expr<kiln::Min>(t, a, b);
        case ExprKind::Max:
            if (a.same_as(b)) return a;
            return make_expr<kiln::Max>(t, a, b);
        case ExprKind::EQ: return make_expr<kiln::EQ>(boolean.with_lanes(t.lanes), a, b);
        case ExprKind::NE: return make_expr<kiln::NE>(boolean.with_lanes(t.lanes), a, b);
        case ExprKind::LT: return make_expr<kiln::LT>(boolean.with_lanes(t.lanes), a, b);
        case ExprKind::LE: return make_expr<kiln::LE>(boolean.with_lanes(t.lanes), a, b);
        case ExprKind::GT: return make_expr<kiln::GT>(boolean.with_lanes(t.lanes), a, b);
        case ExprKind::GE: return make_expr<kiln::GE>(boolean.with_lanes(t.lanes), a, b);
        case ExprKind::And:
            if (is_one(a)) return b;
            if (is_one(b)) return a;
            if (is_zero(a) || is_zero(b)) return make_int(t, 0);
            return make_expr<kiln::And>(t, a, b);
        case ExprKind::Or:
            if (is_zero(a)) return b;
            if (is_zero(b)) return a;
            if (is_one(a) || is_one(b)) return make_int(t, 1);
            return make_expr<kiln::Or>(t, a, b);
        default: detail::internal_fail("make_binary of a non-binary kind");
    }
}

inline Expr operator+(const Expr& a, const Expr& b) { return make_binary(ExprKind::Add, a, b); }
inline Expr operator-(const Expr& a, const Expr& b) { return make_binary(ExprKind::Sub, a, b); }
inline Expr operator*(const Expr& a, const Expr& b) { return make_binary(ExprKind::Mul, a, b); }
inline Expr operator/(const Expr& a, const Expr& b) { return make_binary(ExprKind::Div, a, b); }
inline Expr operator%(const Expr& a, const Expr& b) { return make_binary(ExprKind::Mod, a, b); }
inline Expr operator-(const Expr& a) { return make_int(a.type(), 0) - a; }
inline Expr operator==(const Expr& a, const Expr& b) { return make_binary(ExprKind::EQ, a, b); }
inline Expr operator!=(const Expr& a, const Expr& b) { return make_binary(ExprKind::NE, a, b); }
inline Expr operator<(const Expr& a, const Expr& b) { return make_binary(ExprKind::LT, a, b); }
inline Expr operator<=(const Expr& a, const Expr& b) { return make_binary(ExprKind::LE, a, b); }
inline Expr operator>(const Expr& a, const Expr& b) { return make_binary(ExprKind::GT, a, b); }
inline Expr operator>=(const Expr& a, const Expr& b) { return make_binary(ExprKind::GE, a, b); }
inline Expr operator&&(const Expr& a, const Expr& b) { return make_binary(ExprKind::And, a, b); }
inline Expr operator||(const Expr& a, const Expr& b) { return make_binary(ExprKind::Or, a, b); }
inline Expr operator!(const Expr& a) {
    Expr c = a.type().element_of().is_bool() ? a : a != make_int(a.type(), 0);
    if (auto* i = detail::const_scalar(c).as<IntImm>()) return make_int(c.type(), i->value ? 0 : 1);
    if (auto* n = c.as<Not>()) return n->a;
    return make_expr<Not>(c.type(), c);
}
inline Expr& operator+=(Expr& a, const Expr& b) { return a = a + b; }
inline Expr& operator-=(Expr& a, const Expr& b) { return a = a - b; }
inline Expr& operator*=(Expr& a, const Expr& b) { return a = a * b; }

// Floor division and modulo under their explicit names (the same as / and % on integers).
inline Expr floordiv(const Expr& a, const Expr& b) { return a / b; }
inline Expr floormod(const Expr& a, const Expr& b) { return a % b; }
inline Expr min(const Expr& a, const Expr& b) { return make_binary(ExprKind::Min, a, b); }
inline Expr max(const Expr& a, const Expr& b) { return make_binary(ExprKind::Max, a, b); }

inline Expr select(Expr cond, Expr t, Expr f) {
    if (!cond.type().element_of().is_bool()) cond = cond != make_int(cond.type(), 0);
    detail::match_types(t, f);
    if (cond.type().lanes != t.type().lanes) {
        if (cond.type().is_scalar())
            cond = broadcast(cond, t.type().lanes);
        else {
            t = broadcast(t, cond.type().lanes);
            f = broadcast(f, cond.type().lanes);
        }
    }
    if (auto* c = detail::const_scalar(cond).as<IntImm>()) return c->value ? t : f;
    if (t.same_as(f)) return t;
    return make_expr<Select>(t.type(), cond, t, f);
}

inline Expr call_intrinsic(Intrinsic op, std::vector<Expr> args) {
    Type t = args.at(0).type();
    if (op == Intrinsic::IfThenElse) {
        Expr c = args[0], a = args[1], b = args[2];
        if (!c.type().element_of().is_bool()) c = c != make_int(c.type(), 0);
        detail::match_types(a, b);
        if (auto* k = detail::const_scalar(c).as<IntImm>()) return k->value ? a : b;
        return make_expr<Call>(a.type(), op, std::vector<Expr>{c, a, b});
    }
    if (op == Intrinsic::Likely) return make_expr<Call>(t, op, std::move(args));
    if (op == Intrinsic::Abs && t.element_of().is_integer()) return select(args[0] < 0, -args[0], args[0]);
    // Float math: integers and f16 compute in float.
    Type ft = t.element_of().is_float() && t.bits == 64 ? t : f32.with_lanes(t.lanes);
    for (auto& a : args) a = cast(ft.element_of().with_lanes(a.type().lanes), a);
    if (op == Intrinsic::Pow || op == Intrinsic::Fma)
        for (size_t i = 1; i < args.size(); ++i) detail::match_types(args[0], args[i]);
    bool all_const = true;
    std::vector<double> v;
    for (auto& a : args) {
        auto* f = a.as<FloatImm>();
        all_const &= f != nullptr;
        if (f) v.push_back(f->value);
    }
    if (all_const) {
        double r = 0;
        switch (op) {
            case Intrinsic::Exp: r = std::exp(v[0]); break;
            case Intrinsic::Log: r = std::log(v[0]); break;
            case Intrinsic::Sqrt: r = std::sqrt(v[0]); break;
            case Intrinsic::Rsqrt: r = 1.0 / std::sqrt(v[0]); break;
            case Intrinsic::Tanh: r = std::tanh(v[0]); break;
            case Intrinsic::Sigmoid: r = 1.0 / (1.0 + std::exp(-v[0])); break;
            case Intrinsic::Erf: r = std::erf(v[0]); break;
            case Intrinsic::Pow: r = std::pow(v[0], v[1]); break;
            case Intrinsic::Abs: r = std::fabs(v[0]); break;
            case Intrinsic::Floor: r = std::floor(v[0]); break;
            case Intrinsic::Ceil: r = std::ceil(v[0]); break;
            case Intrinsic::Round: r = std::nearbyint(v[0]); break;
            case Intrinsic::Fma: r = v[0] * v[1] + v[2]; break;
            default: break;
        }
        return make_const(ft, r);
    }
    return make_expr<Call>(args[0].type(), op, std::move(args));
}

inline Expr exp(const Expr& x) { return call_intrinsic(Intrinsic::Exp, {x}); }
inline Expr log(const Expr& x) { return call_intrinsic(Intrinsic::Log, {x}); }
inline Expr sqrt(const Expr& x) { return call_intrinsic(Intrinsic::Sqrt, {x}); }
inline Expr rsqrt(const Expr& x) { return call_intrinsic(Intrinsic::Rsqrt, {x}); }
inline Expr tanh(const Expr& x) { return call_intrinsic(Intrinsic::Tanh, {x}); }
inline Expr sigmoid(const Expr& x) { return call_intrinsic(Intrinsic::Sigmoid, {x}); }
inline Expr erf(const Expr& x) { return call_intrinsic(Intrinsic::Erf, {x}); }
inline Expr pow(const Expr& x, const Expr& y) { return call_intrinsic(Intrinsic::Pow, {x, y}); }
inline Expr abs(const Expr& x) { return call_intrinsic(Intrinsic::Abs, {x}); }
inline Expr floor(const Expr& x) { return call_intrinsic(Intrinsic::Floor, {x}); }
inline Expr ceil(const Expr& x) { return call_intrinsic(Intrinsic::Ceil, {x}); }
// Rounds half to even, like nearbyint in the default rounding mode.
inline Expr round(const Expr& x) { return call_intrinsic(Intrinsic::Round, {x}); }
inline Expr fma(const Expr& a, const Expr& b, const Expr& c) { return call_intrinsic(Intrinsic::Fma, {a, b, c}); }
// Evaluates only the arm that is chosen, so an arm may read out of bounds where cond is false.
// The bits of `x` read as `t`, which has as many bits per lane.
inline Expr reinterpret(Type t, const Expr& x) {
    t = t.with_lanes(x.type().lanes);
    if (t.bits != x.type().bits)
        detail::fail("reinterpret of ", x.type().str(), " as ", t.str(), ": the widths differ");
    if (t == x.type()) return x;
    return make_expr<Call>(t, Intrinsic::Reinterpret, std::vector<Expr>{x});
}
inline Expr if_then_else(const Expr& c, const Expr& t, const Expr& f) {
    return call_intrinsic(Intrinsic::IfThenElse, {c, t, f});
}
inline Expr likely(const Expr& c) { return is_const(c) ? c : call_intrinsic(Intrinsic::Likely, {c}); }

// A symbolic dimension (a batch size, say), bound from the buffers when the kernel is called.
inline Var var(const std::string& name, Type t = i32) { return Var(name, t); }
inline Expr constant(double v, Type t = f32) { return make_const(t, v); }

}  // namespace kiln
