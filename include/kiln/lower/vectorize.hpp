#pragma once
// Pass: vectorization. A vectorized loop of constant extent n becomes one body in which the loop
// variable is ramp(min, 1, n): loads and stores turn into vector (or gather/scatter) accesses and a
// guard on the lane becomes a predicate on the stores and loads it protects. A body that cannot be
// expressed in vectors (a nested vector loop, an allocation per lane, a loop bound that depends
// on the lane) stays a scalar loop, and the pass says which loop and why (LoweredFunc::warnings).
#include "kiln/ir/analysis.hpp"

namespace kiln::passes {

namespace detail {

struct VectorizeFailed {
    const char* why;
};

// Adds a lane predicate to every load and store underneath.
class Predicator : public IRMutator {
public:
    explicit Predicator(Expr pred) : pred_(std::move(pred)) {}
    using IRMutator::mutate;

protected:
    Expr join(const Expr& p, int lanes) const {
        Expr mine = pred_.type().lanes == lanes ? pred_ : broadcast(pred_, lanes);
        return p.defined() ? (p && mine) : mine;
    }
    Expr mutate_load(const Load* n, const Expr& e) override {
        Expr idx = mutate(n->index);
        if (n->type.is_scalar()) return make_expr<Load>(n->type, n->buffer, idx, n->predicate);
        return make_expr<Load>(n->type, n->buffer, idx, join(n->predicate, n->type.lanes));
        (void)e;
    }
    Stmt mutate_store(const Store* n, const Stmt&) override {
        Expr v = mutate(n->value), idx = mutate(n->index);
        if (idx.type().is_scalar())
            throw VectorizeFailed{
                    "every lane would store to one address (a value that does not depend on the loop); compute it "
                    "outside the loop"};
        return make_stmt<Store>(n->buffer, v, idx, join(n->predicate, idx.type().lanes));
    }
    Stmt mutate_for(const For*, const Stmt&) override { throw VectorizeFailed{}; }
    Stmt mutate_allocate(const Allocate*, const Stmt&) override {
        throw VectorizeFailed{
                "a stage is computed inside it (compute_at), which would need a buffer per lane; compute it at an "
                "outer loop"};
    }

private:
    Expr pred_;
};

class LaneVectorizer : public IRMutator {
public:
    LaneVectorizer(const VarNode* var, Expr ramp) : var_(var), ramp_(std::move(ramp)), lanes_(ramp_.type().lanes) {}
    using IRMutator::mutate;

protected:
    Expr mutate_var(const Expr& e) override {
        if (e.get() == var_) return ramp_;
        auto it = retyped_.find(static_cast<const VarNode*>(e.get()));
        return it == retyped_.end() ? e : it->second;
    }
    Expr mutate_ramp(const Ramp*, const Expr&) override { throw VectorizeFailed{"it holds a vector already"}; }
    Expr mutate_broadcast(const Broadcast*, const Expr&) override {
        throw VectorizeFailed{"it holds a vector already"};
    }
    Expr mutate_load(const Load* n, const Expr& e) override {
        Expr idx = mutate(n->index), pred = mutate(n->predicate);
        if (idx.same_as(n->index) && pred.same_as(n->predicate)) return e;
        int lanes = std::max<int>(idx.type().lanes, pred.defined() ? pred.type().lanes : 1);
        if (idx.type().lanes != lanes) idx = broadcast(idx, lanes);
        if (pred.defined() && pred.type().lanes != lanes) pred = broadcast(pred, lanes);
        return make_expr<Load>(n->type.element_of().with_lanes(lanes), n->buffer, idx, pred);
    }
    Expr mutate_let(const Let* n, const Expr& e) override {
        Expr v = mutate(n->value);
        if (v.type().is_vector()) {
            Var nv(n->var.name(), v.type());
            retyped_[n->var.get()] = nv;
            return make_expr<Let>(nv, v, mutate(n->body));
        }
        return IRMutator::mutate_let(n, e);
    }
    Expr mutate_call(const Call* n, const Expr& e) override {
        std::vector<Expr> args;
        int lanes = 1;
        for (auto& a : n->args) {
            args.push_back(mutate(a));
            lanes = std::max<int>(lanes, args.back().type().lanes);
        }
        if (lanes == 1) return IRMutator::mutate_call(n, e);
        for (auto& a : args)
            if (a.type().lanes != lanes) a = broadcast(a, lanes);
        if (n->op == Intrinsic::IfThenElse) {
            // Both arms run as vectors; each arm's loads read only the lanes that take it.
            Expr t = Predicator(args[0]).mutate(args[1]);
            Expr f = Predicator(!args[0]).mutate(args[2]);
            return select(args[0], t, f);
        }
        if (n->op == Intrinsic::Likely) return args[0];
        return make_expr<Call>(n->type.element_of().with_lanes(lanes), n->op, std::move(args), n->producer);
    }
    Expr mutate_reduce(const Reduce*, const Expr&) override {
        throw VectorizeFailed{"it holds a reduction that lowering left whole"};
    }

    Stmt mutate_store(const Store* n, const Stmt& s) override {
        Expr v = mutate(n->value), idx = mutate(n->index), pred = mutate(n->predicate);
        if (v.same_as(n->value) && idx.same_as(n->index) && pred.same_as(n->predicate)) return s;
        // A scalar address written from several lanes has no single meaning.
        if (idx.type().is_scalar())
            throw VectorizeFailed{
                    "every lane would store to one address (a value that does not depend on the loop); compute it "
                    "outside the loop"};
        if (v.type().is_scalar()) v = broadcast(v, idx.type().lanes);
        if (pred.defined() && pred.type().is_scalar()) pred = broadcast(pred, idx.type().lanes);
        return make_stmt<Store>(n->buffer, v, idx, pred);
    }
    Stmt mutate_for(const For* n, const Stmt& s) override {
        if (n->for_kind == ForKind::Vectorized || runs_concurrently(n->for_kind))
            throw VectorizeFailed{"it encloses another vectorized or a parallel loop; vectorize only the innermost"};
        Expr mn = mutate(n->min), ext = mutate(n->extent);
        if (mn.type().is_vector() || ext.type().is_vector())
            throw VectorizeFailed{"a loop inside it has bounds that differ from lane to lane"};
        return IRMutator::mutate_for(n, s);
    }
    Stmt mutate_allocate(const Allocate*, const Stmt&) override {
        throw VectorizeFailed{
                "a stage is computed inside it (compute_at), which would need a buffer per lane; compute it at an "
                "outer loop"};
    }
    Stmt mutate_let_stmt(const LetStmt* n, const Stmt& s) override {
        Expr v = mutate(n->value);
        if (v.type().is_vector()) {
            Var nv(n->var.name(), v.type());
            retyped_[n->var.get()] = nv;
            return make_stmt<LetStmt>(nv, v, mutate(n->body));
        }
        return IRMutator::mutate_let_stmt(n, s);
    }
    Stmt mutate_if(const IfThenElse* n, const Stmt& s) override {
        Expr c = mutate(n->cond);
        if (auto* call = c.as<Call>(); call && call->op == Intrinsic::Likely) c = call->args[0];
        if (c.type().is_scalar()) return IRMutator::mutate_if(n, s);
        Stmt t = Predicator(c).mutate(mutate(n->then_case));
        Stmt f = n->else_case.defined() ? Predicator(!c).mutate(mutate(n->else_case)) : Stmt();
        return make_block({t, f});
    }

private:
    const VarNode* var_;
    Expr ramp_;
    int lanes_;
    std::unordered_map<const VarNode*, Expr> retyped_;
};

class VectorizeLoops : public IRMutator {
public:
    explicit VectorizeLoops(std::vector<std::string>* warnings) : warnings_(warnings) {}

public:
    using IRMutator::mutate;

protected:
    Stmt mutate_for(const For* n, const Stmt& s) override {
        if (n->for_kind != ForKind::Vectorized) return IRMutator::mutate_for(n, s);
        Stmt body = mutate(n->body);
        auto* lanes = as_const_int(n->extent);
        if (lanes && *lanes == 1) return substitute(body, n->var, n->min);
        const char* why = "its extent is not a constant from 2 to 1024";
        if (lanes && *lanes > 1 && *lanes <= 1024) {
            try {
                Expr ramp = make_expr<Ramp>(n->min, make_int(n->min.type(), 1), static_cast<int>(*lanes));
                return LaneVectorizer(n->var.get(), ramp).mutate(body);
            } catch (const VectorizeFailed& e) { why = e.why; }
        }
        if (warnings_) warnings_->push_back("vectorize: loop '" + n->var.name() + "' stays serial: " + why);
        return make_stmt<For>(n->var, n->min, n->extent, ForKind::Serial, body, n->annotations);
    }

private:
    std::vector<std::string>* warnings_;
};

}  // namespace detail

// A vectorized loop that cannot become vector code stays serial; `warnings`, if given, gets a line naming it and why.
inline Stmt vectorize(const Stmt& s, std::vector<std::string>* warnings = nullptr) {
    return detail::VectorizeLoops(warnings).mutate(s);
}

}  // namespace kiln::passes
