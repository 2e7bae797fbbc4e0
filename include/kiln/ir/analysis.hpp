#pragma once
// Small queries and rewrites over IR trees that many passes share.
#include <functional>
#include <unordered_map>
#include <unordered_set>

#include "kiln/ir/visitor.hpp"

namespace kiln {

using VarMap = std::unordered_map<const VarNode*, Expr>;

// Replaces variables by expressions; everything else is kept (and shared).
class Substituter : public IRMutator {
public:
    explicit Substituter(const VarMap& m) : map_(m) {}
    using IRMutator::mutate;

protected:
    Expr mutate_var(const Expr& e) override {
        auto it = map_.find(static_cast<const VarNode*>(e.get()));
        return it == map_.end() ? e : it->second;
    }
    const VarMap& map_;
};

inline Expr substitute(const Expr& e, const VarMap& m) { return m.empty() ? e : Substituter(m).mutate(e); }
inline Stmt substitute(const Stmt& s, const VarMap& m) { return m.empty() ? s : Substituter(m).mutate(s); }
inline Expr substitute(const Expr& e, const Var& v, const Expr& value) {
    return substitute(e, VarMap{{v.get(), value}});
}
inline Stmt substitute(const Stmt& s, const Var& v, const Expr& value) {
    return substitute(s, VarMap{{v.get(), value}});
}

// Calls f on every expression node, children first.
inline void post_order_visit(const Expr& e, const std::function<void(const Expr&)>& f) {
    struct V : IRVisitor {
        const std::function<void(const Expr&)>& f;
        explicit V(const std::function<void(const Expr&)>& fn) : f(fn) {}
        using IRVisitor::visit;
        void visit(const Expr& x) override {
            if (!x.defined()) return;
            IRVisitor::visit(x);
            f(x);
        }
    } v(f);
    v.visit(e);
}
inline void post_order_visit(const Stmt& s, const std::function<void(const Expr&)>& f) {
    struct V : IRVisitor {
        const std::function<void(const Expr&)>& f;
        explicit V(const std::function<void(const Expr&)>& fn) : f(fn) {}
        using IRVisitor::visit;
        void visit(const Expr& x) override {
            if (!x.defined()) return;
            IRVisitor::visit(x);
            f(x);
        }
    } v(f);
    v.visit(s);
}

template <typename Node> bool uses_var(const Node& n, const VarNode* var) {
    bool found = false;
    post_order_visit(n, [&](const Expr& e) { found |= e.get() == var; });
    return found;
}
// `vars`: any container of `const VarNode*` keys with count(), a set or a map from the variables.
template <typename Node, typename Vars> bool uses_any_var(const Node& n, const Vars& vars) {
    bool found = false;
    post_order_visit(n, [&](const Expr& e) {
        found |= e.kind() == ExprKind::Var && vars.count(static_cast<const VarNode*>(e.get()));
    });
    return found;
}

// Structural equality: the same tree shape with the same variables (by identity).
inline bool equal(const Expr& a, const Expr& b) {
    if (a.same_as(b)) return true;
    if (!a.defined() || !b.defined()) return false;
    if (a.kind() != b.kind() || a.type() != b.type()) return false;
    switch (a.kind()) {
        case ExprKind::IntImm: return a.as<IntImm>()->value == b.as<IntImm>()->value;
        case ExprKind::FloatImm: return a.as<FloatImm>()->value == b.as<FloatImm>()->value;
        case ExprKind::Var: return false;
        case ExprKind::Not: return equal(a.as<Not>()->a, b.as<Not>()->a);
        case ExprKind::Select: {
            auto *x = a.as<Select>(), *y = b.as<Select>();
            return equal(x->cond, y->cond) && equal(x->t, y->t) && equal(x->f, y->f);
        }
        case ExprKind::Cast: return equal(a.as<Cast>()->value, b.as<Cast>()->value);
        case ExprKind::Ramp: {
            auto *x = a.as<Ramp>(), *y = b.as<Ramp>();
            return x->lanes == y->lanes && equal(x->base, y->base) && equal(x->stride, y->stride);
        }
        case ExprKind::Broadcast: return equal(a.as<Broadcast>()->value, b.as<Broadcast>()->value);
        case ExprKind::Load: {
            auto *x = a.as<Load>(), *y = b.as<Load>();
            return x->buffer.same_as(y->buffer) && equal(x->index, y->index) &&
                   x->predicate.defined() == y->predicate.defined() &&
                   (!x->predicate.defined() || equal(x->predicate, y->predicate));
        }
        case ExprKind::Let: return false;
        case ExprKind::Call: {
            auto *x = a.as<Call>(), *y = b.as<Call>();
            if (x->op != y->op || x->producer != y->producer || x->args.size() != y->args.size()) return false;
            for (size_t i = 0; i < x->args.size(); ++i)
                if (!equal(x->args[i], y->args[i])) return false;
            return true;
        }
        case ExprKind::Reduce: return false;
        case ExprKind::Shuffle: {
            auto *x = a.as<Shuffle>(), *y = b.as<Shuffle>();
            if (x->indices != y->indices || x->vectors.size() != y->vectors.size()) return false;
            for (size_t i = 0; i < x->vectors.size(); ++i)
                if (!equal(x->vectors[i], y->vectors[i])) return false;
            return true;
        }
        default: {
            auto *x = static_cast<const BinaryNode*>(a.get()), *y = static_cast<const BinaryNode*>(b.get());
            return equal(x->a, y->a) && equal(x->b, y->b);
        }
    }
}

}  // namespace kiln
