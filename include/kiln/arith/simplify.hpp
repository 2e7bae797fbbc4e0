#pragma once
// The arithmetic simplifier. It folds constants, cancels linear terms, and uses the constant
// bounds of loop variables to decide comparisons, min/max and div/mod, so guards that always
// hold disappear.
#include "kiln/arith/const_bound.hpp"
#include "kiln/arith/linear.hpp"

namespace kiln::arith {

class Simplifier : public IRMutator {
public:
    explicit Simplifier(BoundScope scope = {}) : scope_(std::move(scope)) {}
    using IRMutator::mutate;

    Expr mutate(const Expr& e) override {
        if (!e.defined()) return e;
        Expr r = IRMutator::mutate(e);
        if (r.type().is_scalar() && r.type().is_integer() && !r.as<IntImm>()) {
            auto b = const_bound(r, scope_);
            if (b.is_point()) return make_int(r.type(), *b.min);
        }
        return r;
    }

    BoundScope& scope() { return scope_; }

protected:
    Expr mutate_binary(const BinaryNode* n, const Expr& e) override {
        Expr a = mutate(n->a), b = mutate(n->b);
        const Type t = a.type();
        const bool scalar_int = t.is_scalar() && t.is_integer();
        switch (n->kind) {
            case ExprKind::Add:
            case ExprKind::Sub:
            case ExprKind::Mul:
                if (scalar_int) {
                    Expr x = make_binary(n->kind, a, b);
                    if (x.kind() != ExprKind::Add && x.kind() != ExprKind::Sub && x.kind() != ExprKind::Mul) return x;
                    return canonical(x);
                }
                if (n->kind == ExprKind::Add || n->kind == ExprKind::Sub) {
                    // ramp(b1, s1) + ramp(b2, s2) == ramp(b1 + b2, s1 + s2), and with broadcasts.
                    const Ramp *ra = a.as<Ramp>(), *rb = b.as<Ramp>();
                    const Broadcast *ba = a.as<Broadcast>(), *bb = b.as<Broadcast>();
                    if (ra && bb)
                        return make_expr<Ramp>(mutate(make_binary(n->kind, ra->base, bb->value)), ra->stride,
                                               ra->lanes);
                    if (ba && rb && n->kind == ExprKind::Add)
                        return make_expr<Ramp>(mutate(ba->value + rb->base), rb->stride, rb->lanes);
                    if (ra && rb)
                        return make_expr<Ramp>(mutate(make_binary(n->kind, ra->base, rb->base)),
                                               mutate(make_binary(n->kind, ra->stride, rb->stride)), ra->lanes);
                    if (ba && bb) return broadcast(mutate(make_binary(n->kind, ba->value, bb->value)), ba->lanes);
                }
                if (n->kind == ExprKind::Mul) {
                    const Ramp* ra = a.as<Ramp>();
                    const Broadcast* bb = b.as<Broadcast>();
                    const Broadcast* ba = a.as<Broadcast>();
                    if (ra && bb && is_const(bb->value))
                        return make_expr<Ramp>(mutate(ra->base * bb->value), mutate(ra->stride * bb->value), ra->lanes);
                    if (ba && bb) return broadcast(mutate(ba->value * bb->value), ba->lanes);
                }
                return rebuild(n, e, a, b);
            case ExprKind::Div:
            case ExprKind::Mod:
                if (scalar_int) return div_mod(n->kind, a, b);
                if (t.is_integer())
                    if (Expr v = vector_div_mod(n->kind, a, b); v.defined()) return v;
                return rebuild(n, e, a, b);
            case ExprKind::Min:
            case ExprKind::Max: {
                if (scalar_int) {
                    auto d = const_bound(mutate(a - b), scope_);
                    const bool is_min = n->kind == ExprKind::Min;
                    if (d.max && *d.max <= 0) return is_min ? a : b;
                    if (d.min && *d.min >= 0) return is_min ? b : a;
                }
                return rebuild(n, e, a, b);
            }
            case ExprKind::EQ:
            case ExprKind::NE:
            case ExprKind::LT:
            case ExprKind::LE:
            case ExprKind::GT:
            case ExprKind::GE: {
                if (scalar_int) {
                    Expr diff = mutate(a - b);
                    auto d = const_bound(diff, scope_);
                    std::optional<bool> known;
                    switch (n->kind) {
                        case ExprKind::LT:
                            if (d.max && *d.max < 0)
                                known = true;
                            else if (d.min && *d.min >= 0)
                                known = false;
                            break;
                        case ExprKind::LE:
                            if (d.max && *d.max <= 0)
                                known = true;
                            else if (d.min && *d.min > 0)
                                known = false;
                            break;
                        case ExprKind::GT:
                            if (d.min && *d.min > 0)
                                known = true;
                            else if (d.max && *d.max <= 0)
                                known = false;
                            break;
                        case ExprKind::GE:
                            if (d.min && *d.min >= 0)
                                known = true;
                            else if (d.max && *d.max < 0)
                                known = false;
                            break;
                        case ExprKind::EQ:
                            if (d.is_point())
                                known = *d.min == 0;
                            else if ((d.min && *d.min > 0) || (d.max && *d.max < 0))
                                known = false;
                            break;
                        case ExprKind::NE:
                            if (d.is_point())
                                known = *d.min != 0;
                            else if ((d.min && *d.min > 0) || (d.max && *d.max < 0))
                                known = true;
                            break;
                        default: break;
                    }
                    if (known) return make_int(boolean, *known ? 1 : 0);
                }
                return rebuild(n, e, a, b);
            }
            default: return rebuild(n, e, a, b);
        }
    }

    Expr mutate_select(const Select* n, const Expr& e) override {
        Expr c = mutate(n->cond);
        if (auto* k = kiln::detail::const_scalar(c).as<IntImm>()) return mutate(k->value ? n->t : n->f);
        Expr t = mutate(n->t), f = mutate(n->f);
        if (c.same_as(n->cond) && t.same_as(n->t) && f.same_as(n->f)) return e;
        return select(c, t, f);
    }

    Expr mutate_call(const Call* n, const Expr& e) override {
        if (n->op == Intrinsic::IfThenElse) {
            Expr c = mutate(n->args[0]);
            if (auto* k = kiln::detail::const_scalar(c).as<IntImm>()) return mutate(k->value ? n->args[1] : n->args[2]);
            return make_expr<Call>(n->type, n->op, std::vector<Expr>{c, mutate(n->args[1]), mutate(n->args[2])});
        }
        Expr r = IRMutator::mutate_call(n, e);
        if (auto* c = r.as<Call>(); c && c->op == Intrinsic::Likely && is_const(kiln::detail::const_scalar(c->args[0])))
            return c->args[0];
        return r;
    }

    Expr mutate_let(const Let* n, const Expr& e) override {
        Expr v = mutate(n->value);
        if (is_const(v) || v.as<VarNode>()) return mutate(substitute(n->body, n->var, v));
        Expr b = mutate(n->body);
        if (v.same_as(n->value) && b.same_as(n->body)) return e;
        return make_expr<Let>(n->var, v, b);
    }

    Stmt mutate_for(const For* n, const Stmt& s) override {
        Expr mn = mutate(n->min), ext = mutate(n->extent);
        auto eb = const_bound(ext, scope_);
        if (eb.max && *eb.max <= 0) return make_stmt<Evaluate>(Expr(0));
        if (eb.is_point() && *eb.min == 1 && !runs_concurrently(n->for_kind))
            return mutate(substitute(n->body, n->var, mn));
        auto mb = const_bound(mn, scope_);
        ConstBound vb{mb.min, (mb.max && eb.max) ? std::optional<int64_t>(*mb.max + *eb.max - 1) : std::nullopt};
        auto saved = scope_.find(n->var.get()) != scope_.end();
        scope_[n->var.get()] = vb;
        Stmt b = mutate(n->body);
        if (!saved) scope_.erase(n->var.get());
        if (is_no_op(b)) return make_stmt<Evaluate>(Expr(0));
        if (mn.same_as(n->min) && ext.same_as(n->extent) && b.same_as(n->body)) return s;
        return make_stmt<For>(n->var, mn, ext, n->for_kind, b, n->annotations);
    }

    Stmt mutate_let_stmt(const LetStmt* n, const Stmt& s) override {
        Expr v = mutate(n->value);
        if (is_const(v) || v.as<VarNode>()) return mutate(substitute(n->body, n->var, v));
        scope_[n->var.get()] = const_bound(v, scope_);
        Stmt b = mutate(n->body);
        scope_.erase(n->var.get());
        if (v.same_as(n->value) && b.same_as(n->body)) return s;
        return make_stmt<LetStmt>(n->var, v, b);
    }

    Stmt mutate_if(const IfThenElse* n, const Stmt& s) override {
        Expr c = mutate(n->cond);
        Expr plain = c;
        if (auto* call = c.as<Call>(); call && call->op == Intrinsic::Likely) plain = call->args[0];
        if (auto* k = kiln::detail::const_scalar(plain).as<IntImm>()) {
            if (k->value) return mutate(n->then_case);
            return n->else_case.defined() ? mutate(n->else_case) : make_stmt<Evaluate>(Expr(0));
        }
        Stmt t = mutate(n->then_case), f = mutate(n->else_case);
        if (is_no_op(t) && (!f.defined() || is_no_op(f))) return make_stmt<Evaluate>(Expr(0));
        if (f.defined() && is_no_op(f)) f = Stmt();
        if (c.same_as(n->cond) && t.same_as(n->then_case) && f.same_as(n->else_case)) return s;
        return make_stmt<IfThenElse>(c, t, f);
    }

    Stmt mutate_block(const Block* n, const Stmt& s) override {
        std::vector<Stmt> out;
        bool changed = false;
        for (auto& c : n->stmts) {
            Stmt m = mutate(c);
            changed |= !m.same_as(c);
            if (is_no_op(m)) {
                changed = true;
                continue;
            }
            out.push_back(m);
        }
        if (!changed) return s;
        return make_block(out);
    }

private:
    Expr rebuild(const BinaryNode* n, const Expr& e, const Expr& a, const Expr& b) {
        if (a.same_as(n->a) && b.same_as(n->b)) return e;
        return make_binary(n->kind, a, b);
    }

    Expr canonical(const Expr& x) {
        LinearForm f = to_linear(x);
        if (!f.ok) return x;
        // k*c*(a / c) + k*(a % c) == k*a: an index split by a fuse and put back together (the division and
        // remainder round the same way, so this holds for negative a too).
        for (size_t i = 0; i < f.terms.size(); ++i) {
            auto* d = f.terms[i].first.as<Div>();
            auto* c = d ? d->b.as<IntImm>() : nullptr;
            if (!c || c->value == 0 || f.terms[i].second % c->value != 0) continue;
            const int64_t k = f.terms[i].second / c->value;
            for (size_t j = 0; j < f.terms.size(); ++j) {
                auto* m = f.terms[j].first.as<Mod>();
                if (!m || f.terms[j].second != k || !equal(m->a, d->a) || !equal(m->b, d->b)) continue;
                LinearForm g = f;
                g.terms.erase(g.terms.begin() + static_cast<long>(std::max(i, j)));
                g.terms.erase(g.terms.begin() + static_cast<long>(std::min(i, j)));
                g.add(to_linear(d->a), k);
                if (g.ok) return mutate(from_linear(g, x.type()));
            }
        }
        // min(a, b) + rest == min(a + rest, b + rest): lets (min(M, x*32 + 32) - x*32) become min(M - x*32, 32).
        // Only a constant, or where a term cancels: a min kept whole (a tile shifted inwards,
        // min(x*16, n - 16) + row) keeps its bounds, so a division of the sum by the row length still resolves.
        for (size_t i = 0; i < f.terms.size(); ++i) {
            auto [t, k] = f.terms[i];
            auto* mm = t.as<Min>() ? static_cast<const BinaryNode*>(t.as<Min>())
                                   : static_cast<const BinaryNode*>(t.as<Max>());
            if (!mm || k != 1 || (f.terms.size() == 1 && f.constant == 0)) continue;
            LinearForm rest = f;
            rest.terms.erase(rest.terms.begin() + static_cast<long>(i));
            if (!rest.terms.empty() && !cancels_a_term(mm->a, rest) && !cancels_a_term(mm->b, rest)) continue;
            Expr r = from_linear(rest, x.type());
            return mutate(make_binary(t.kind(), mm->a + r, mm->b + r));
        }
        return from_linear(f, x.type());
    }

    static bool cancels_a_term(const Expr& a, const LinearForm& rest) {
        LinearForm la = to_linear(a);
        for (auto& [t, k] : la.terms)
            for (auto& [u, j] : rest.terms)
                if (k == -j && equal(t, u)) return true;
        return false;
    }

    // f as c*q + r: q the terms whose coefficients c divides and floor(constant / c), r the rest.
    static std::pair<LinearForm, LinearForm> split_by(const LinearForm& f, int64_t c) {
        LinearForm q, r;
        for (auto& [term, coef] : f.terms) {
            if (coef % c == 0)
                q.add_term(term, coef / c);
            else
                r.add_term(term, coef);
        }
        q.constant = kiln::detail::floor_div(f.constant, c);
        r.constant = kiln::detail::floor_mod(f.constant, c);
        return {q, r};
    }

    // (c*q + r) / c == q and (c*q + r) % c == r when 0 <= r < c; otherwise (c*q + r) / c == q + r / c and
    // (c*q + r) % c == r % c (floor division), so what is known of r alone can still resolve them.
    Expr div_mod(ExprKind k, const Expr& a, const Expr& b) {
        auto* cb = b.as<IntImm>();
        if (!cb || cb->value <= 0) return make_binary(k, a, b);
        const int64_t c = cb->value;
        LinearForm f = to_linear(a);
        if (!f.ok) return make_binary(k, a, b);
        auto [q, r] = split_by(f, c);
        Type t = a.type();
        Expr re = from_linear(r, t);
        auto rb = const_bound(re, scope_);
        if (rb.min && rb.max && *rb.min >= 0 && *rb.max < c)
            return k == ExprKind::Div ? mutate_quiet(from_linear(q, t)) : re;
        const bool splits = (!q.terms.empty() || q.constant != 0) && (!r.terms.empty() || r.constant != 0);
        if (!splits) return make_binary(k, a, b);
        if (k == ExprKind::Mod) return make_binary(k, re, b);
        return from_linear(q, t) + make_binary(ExprKind::Div, re, b);
    }
    Expr mutate_quiet(const Expr& e) { return e; }

    // Lanes that all divide to the same quotient: ramp(c*q + r, s) / c == q and ramp(c*q + r, s) % c ==
    // ramp(r, s) when every lane's r + s*i stays in [0, c) (a vector inside one row of a flattened index).
    Expr vector_div_mod(ExprKind k, const Expr& a, const Expr& b) {
        auto* bb = b.as<Broadcast>();
        auto* cb = bb ? bb->value.as<IntImm>() : nullptr;
        if (!cb || cb->value <= 0) return {};
        if (auto* ba = a.as<Broadcast>()) return broadcast(mutate(make_binary(k, ba->value, bb->value)), ba->lanes);
        auto* ra = a.as<Ramp>();
        auto* stride = ra ? ra->stride.as<IntImm>() : nullptr;
        if (!stride || stride->value < 0) return {};
        const int64_t c = cb->value;
        LinearForm f = to_linear(ra->base);
        if (!f.ok) return {};
        auto [q, r] = split_by(f, c);
        const Type t = ra->base.type();
        Expr re = from_linear(r, t);
        auto rb = const_bound(re, scope_);
        if (!rb.min || !rb.max || *rb.min < 0 || *rb.max + stride->value * (ra->lanes - 1) >= c) return {};
        if (k == ExprKind::Div) return broadcast(mutate(from_linear(q, t)), ra->lanes);
        return make_expr<Ramp>(re, ra->stride, ra->lanes);
    }

    BoundScope scope_;
};

inline Expr simplify(const Expr& e, const BoundScope& scope = {}) { return Simplifier(scope).mutate(e); }

}  // namespace kiln::arith
