#pragma once
// IRVisitor walks a tree; IRMutator rebuilds it. Both dispatch on the node kind, and each
// node type has one overridable method whose default recurses into the children.
#include "kiln/ir/stmt.hpp"

namespace kiln {

class IRVisitor {
public:
    virtual ~IRVisitor() = default;

    virtual void visit(const Expr& e) {
        if (!e.defined()) return;
        switch (e.kind()) {
            case ExprKind::IntImm:
            case ExprKind::FloatImm: return;
            case ExprKind::Var: return visit_var(e.as<VarNode>());
            case ExprKind::Not: return visit(e.as<Not>()->a);
            case ExprKind::Select: return visit_select(e.as<Select>());
            case ExprKind::Cast: return visit(e.as<Cast>()->value);
            case ExprKind::Ramp: {
                auto* r = e.as<Ramp>();
                visit(r->base);
                visit(r->stride);
                return;
            }
            case ExprKind::Broadcast: return visit(e.as<Broadcast>()->value);
            case ExprKind::Load: return visit_load(e.as<Load>());
            case ExprKind::Let: return visit_let(e.as<Let>());
            case ExprKind::Call: return visit_call(e.as<Call>());
            case ExprKind::Reduce: return visit_reduce(e.as<Reduce>());
            case ExprKind::Shuffle:
                for (auto& v : e.as<Shuffle>()->vectors) visit(v);
                return;
            default: return visit_binary(static_cast<const BinaryNode*>(e.get()));
        }
    }

    virtual void visit(const Stmt& s) {
        if (!s.defined()) return;
        switch (s.kind()) {
            case StmtKind::LetStmt: return visit_let_stmt(s.as<LetStmt>());
            case StmtKind::For: return visit_for(s.as<For>());
            case StmtKind::Store: return visit_store(s.as<Store>());
            case StmtKind::Provide: return visit_provide(s.as<Provide>());
            case StmtKind::Realize: return visit_realize(s.as<Realize>());
            case StmtKind::Allocate: return visit_allocate(s.as<Allocate>());
            case StmtKind::IfThenElse: return visit_if(s.as<IfThenElse>());
            case StmtKind::Block:
                for (auto& c : s.as<Block>()->stmts) visit(c);
                return;
            case StmtKind::Evaluate: return visit(s.as<Evaluate>()->value);
        }
    }

protected:
    virtual void visit_var(const VarNode*) {}
    virtual void visit_binary(const BinaryNode* n) {
        visit(n->a);
        visit(n->b);
    }
    virtual void visit_select(const Select* n) {
        visit(n->cond);
        visit(n->t);
        visit(n->f);
    }
    virtual void visit_load(const Load* n) {
        visit(n->buffer.expr());
        visit(n->index);
        visit(n->predicate);
    }
    virtual void visit_let(const Let* n) {
        visit(n->value);
        visit(n->body);
    }
    virtual void visit_call(const Call* n) {
        for (auto& a : n->args) visit(a);
    }
    virtual void visit_reduce(const Reduce* n) {
        visit(n->source);
        visit(n->condition);
    }
    virtual void visit_let_stmt(const LetStmt* n) {
        visit(n->value);
        visit(n->body);
    }
    virtual void visit_for(const For* n) {
        visit(n->min);
        visit(n->extent);
        visit(n->body);
    }
    virtual void visit_store(const Store* n) {
        visit(n->buffer.expr());
        visit(n->value);
        visit(n->index);
        visit(n->predicate);
    }
    virtual void visit_provide(const Provide* n) {
        visit(n->value);
        for (auto& a : n->args) visit(a);
    }
    virtual void visit_realize(const Realize* n) {
        for (auto& r : n->bounds) {
            visit(r.min);
            visit(r.extent);
        }
        visit(n->body);
    }
    virtual void visit_allocate(const Allocate* n) {
        for (auto& e : n->extents) visit(e);
        visit(n->body);
    }
    virtual void visit_if(const IfThenElse* n) {
        visit(n->cond);
        visit(n->then_case);
        visit(n->else_case);
    }
};

class IRMutator {
public:
    virtual ~IRMutator() = default;

    virtual Expr mutate(const Expr& e) {
        if (!e.defined()) return e;
        switch (e.kind()) {
            case ExprKind::IntImm:
            case ExprKind::FloatImm: return e;
            case ExprKind::Var: return mutate_var(e);
            case ExprKind::Not: return mutate_not(e.as<Not>(), e);
            case ExprKind::Select: return mutate_select(e.as<Select>(), e);
            case ExprKind::Cast: return mutate_cast(e.as<Cast>(), e);
            case ExprKind::Ramp: return mutate_ramp(e.as<Ramp>(), e);
            case ExprKind::Broadcast: return mutate_broadcast(e.as<Broadcast>(), e);
            case ExprKind::Load: return mutate_load(e.as<Load>(), e);
            case ExprKind::Let: return mutate_let(e.as<Let>(), e);
            case ExprKind::Call: return mutate_call(e.as<Call>(), e);
            case ExprKind::Reduce: return mutate_reduce(e.as<Reduce>(), e);
            case ExprKind::Shuffle: return mutate_shuffle(e.as<Shuffle>(), e);
            default: return mutate_binary(static_cast<const BinaryNode*>(e.get()), e);
        }
    }

    virtual Stmt mutate(const Stmt& s) {
        if (!s.defined()) return s;
        switch (s.kind()) {
            case StmtKind::LetStmt: return mutate_let_stmt(s.as<LetStmt>(), s);
            case StmtKind::For: return mutate_for(s.as<For>(), s);
            case StmtKind::Store: return mutate_store(s.as<Store>(), s);
            case StmtKind::Provide: return mutate_provide(s.as<Provide>(), s);
            case StmtKind::Realize: return mutate_realize(s.as<Realize>(), s);
            case StmtKind::Allocate: return mutate_allocate(s.as<Allocate>(), s);
            case StmtKind::IfThenElse: return mutate_if(s.as<IfThenElse>(), s);
            case StmtKind::Block: return mutate_block(s.as<Block>(), s);
            case StmtKind::Evaluate: return mutate_evaluate(s.as<Evaluate>(), s);
        }
        return s;
    }

protected:
    virtual Expr mutate_var(const Expr& e) { return e; }
    virtual Expr mutate_binary(const BinaryNode* n, const Expr& e);
    virtual Expr mutate_not(const Not* n, const Expr& e);
    virtual Expr mutate_select(const Select* n, const Expr& e);
    virtual Expr mutate_cast(const Cast* n, const Expr& e);
    virtual Expr mutate_ramp(const Ramp* n, const Expr& e) {
        Expr b = mutate(n->base), s = mutate(n->stride);
        if (b.same_as(n->base) && s.same_as(n->stride)) return e;
        return make_expr<Ramp>(b, s, n->lanes);
    }
    virtual Expr mutate_shuffle(const Shuffle* n, const Expr& e) {
        std::vector<Expr> vs;
        bool same = true;
        for (auto& v : n->vectors) {
            vs.push_back(mutate(v));
            same &= vs.back().same_as(v);
        }
        if (same) return e;
        return make_expr<Shuffle>(std::move(vs), n->indices);
    }
    virtual Expr mutate_broadcast(const Broadcast* n, const Expr& e) {
        Expr v = mutate(n->value);
        if (v.same_as(n->value)) return e;
        return make_expr<Broadcast>(v, n->lanes);
    }
    virtual Expr mutate_load(const Load* n, const Expr& e) {
        Expr i = mutate(n->index), p = mutate(n->predicate);
        if (i.same_as(n->index) && p.same_as(n->predicate)) return e;
        return make_expr<Load>(n->type.element_of().with_lanes(i.type().lanes), n->buffer, i, p);
    }
    virtual Expr mutate_let(const Let* n, const Expr& e) {
        Expr v = mutate(n->value), b = mutate(n->body);
        if (v.same_as(n->value) && b.same_as(n->body)) return e;
        return make_expr<Let>(n->var, v, b);
    }
    virtual Expr mutate_call(const Call* n, const Expr& e) {
        std::vector<Expr> args;
        bool changed = false;
        for (auto& a : n->args) {
            args.push_back(mutate(a));
            changed |= !args.back().same_as(a);
        }
        if (!changed) return e;
        return make_expr<Call>(n->type, n->op, std::move(args), n->producer);
    }
    virtual Expr mutate_reduce(const Reduce* n, const Expr& e) {
        Expr s = mutate(n->source), c = mutate(n->condition);
        if (s.same_as(n->source) && c.same_as(n->condition)) return e;
        return make_expr<Reduce>(n->type, n->combiner, s, n->axis, c);
    }

    virtual Stmt mutate_let_stmt(const LetStmt* n, const Stmt& s) {
        Expr v = mutate(n->value);
        Stmt b = mutate(n->body);
        if (v.same_as(n->value) && b.same_as(n->body)) return s;
        return make_stmt<LetStmt>(n->var, v, b);
    }
    virtual Stmt mutate_for(const For* n, const Stmt& s) {
        Expr mn = mutate(n->min), ext = mutate(n->extent);
        Stmt b = mutate(n->body);
        if (mn.same_as(n->min) && ext.same_as(n->extent) && b.same_as(n->body)) return s;
        return make_stmt<For>(n->var, mn, ext, n->for_kind, b, n->annotations);
    }
    virtual Stmt mutate_store(const Store* n, const Stmt& s) {
        Expr v = mutate(n->value), i = mutate(n->index), p = mutate(n->predicate);
        if (v.same_as(n->value) && i.same_as(n->index) && p.same_as(n->predicate)) return s;
        return make_stmt<Store>(n->buffer, v, i, p);
    }
    virtual Stmt mutate_provide(const Provide* n, const Stmt& s) {
        Expr v = mutate(n->value);
        bool changed = !v.same_as(n->value);
        std::vector<Expr> args;
        for (auto& a : n->args) {
            args.push_back(mutate(a));
            changed |= !args.back().same_as(a);
        }
        if (!changed) return s;
        return make_stmt<Provide>(n->producer, v, std::move(args));
    }
    virtual Stmt mutate_realize(const Realize* n, const Stmt& s) {
        bool changed = false;
        std::vector<Range> bounds;
        for (auto& r : n->bounds) {
            Range m{mutate(r.min), mutate(r.extent)};
            changed |= !m.min.same_as(r.min) || !m.extent.same_as(r.extent);
            bounds.push_back(m);
        }
        Stmt b = mutate(n->body);
        if (!changed && b.same_as(n->body)) return s;
        return make_stmt<Realize>(n->producer, std::move(bounds), b);
    }
    virtual Stmt mutate_allocate(const Allocate* n, const Stmt& s) {
        bool changed = false;
        std::vector<Expr> ext;
        for (auto& e : n->extents) {
            ext.push_back(mutate(e));
            changed |= !ext.back().same_as(e);
        }
        Stmt b = mutate(n->body);
        if (!changed && b.same_as(n->body)) return s;
        return make_stmt<Allocate>(n->buffer, n->dtype, std::move(ext), b, n->scope);
    }
    virtual Stmt mutate_if(const IfThenElse* n, const Stmt& s) {
        Expr c = mutate(n->cond);
        Stmt t = mutate(n->then_case), f = mutate(n->else_case);
        if (c.same_as(n->cond) && t.same_as(n->then_case) && f.same_as(n->else_case)) return s;
        return make_stmt<IfThenElse>(c, t, f);
    }
    virtual Stmt mutate_block(const Block* n, const Stmt& s) {
        bool changed = false;
        std::vector<Stmt> out;
        for (auto& c : n->stmts) {
            out.push_back(mutate(c));
            changed |= !out.back().same_as(c);
        }
        if (!changed) return s;
        return make_block(out);
    }
    virtual Stmt mutate_evaluate(const Evaluate* n, const Stmt& s) {
        Expr v = mutate(n->value);
        if (v.same_as(n->value)) return s;
        return make_stmt<Evaluate>(v);
    }
};

}  // namespace kiln

// The node-rebuilding defaults need the typed constructors of ops.hpp.
#include "kiln/ir/ops.hpp"

namespace kiln {

inline Expr IRMutator::mutate_binary(const BinaryNode* n, const Expr& e) {
    Expr a = mutate(n->a), b = mutate(n->b);
    if (a.same_as(n->a) && b.same_as(n->b)) return e;
    return make_binary(n->kind, a, b);
}
inline Expr IRMutator::mutate_not(const Not* n, const Expr& e) {
    Expr a = mutate(n->a);
    if (a.same_as(n->a)) return e;
    return !a;
}
inline Expr IRMutator::mutate_select(const Select* n, const Expr& e) {
    Expr c = mutate(n->cond), t = mutate(n->t), f = mutate(n->f);
    if (c.same_as(n->cond) && t.same_as(n->t) && f.same_as(n->f)) return e;
    return select(c, t, f);
}
inline Expr IRMutator::mutate_cast(const Cast* n, const Expr& e) {
    Expr v = mutate(n->value);
    if (v.same_as(n->value)) return e;
    return cast(n->type.element_of().with_lanes(v.type().lanes), v);
}

}  // namespace kiln
