#pragma once
// Pass: bounds check, as Halide's code does before a pipeline runs. Every read of a tensor, over the
// region of each stage that bound inference found, must stay inside that tensor's shape. Where the
// shapes are constants the answer is known now, and a read outside is an error at lowering. Where they
// are symbolic, what is left is a comparison between sizes, kept as a requirement that the kernel's
// caller checks once per call with the actual sizes, before anything runs.
//
// A read under if_then_else (or a reduction's condition) only happens where the condition holds, so
// the condition narrows its range: if_then_else(x >= 1, A(x - 1), 0) reads A from 0. select evaluates
// both arms, so it narrows nothing.
#include <optional>

#include "kiln/lower/infer_bound.hpp"

namespace kiln::passes {

namespace detail {

// A read of a tensor, and the if_then_else conditions that must hold for it to happen.
struct GuardedRead {
    const Call* call;
    std::vector<Expr> conditions;
    VarMap lets;
};

inline void split_conjunction(const Expr& e, std::vector<Expr>& out) {
    if (auto* a = e.as<And>()) {
        split_conjunction(a->a, out);
        split_conjunction(a->b, out);
    } else if (auto* c = e.as<Call>(); c && c->op == Intrinsic::Likely) {
        split_conjunction(c->args[0], out);
    } else {
        out.push_back(e);
    }
}

inline std::vector<GuardedRead> guarded_reads(const Expr& body) {
    struct V : IRVisitor {
        std::vector<GuardedRead> reads;
        std::vector<Expr> conds;
        VarMap lets;
        using IRVisitor::visit;
        void visit_call(const Call* n) override {
            if (n->op == Intrinsic::TensorAccess) reads.push_back({n, conds, lets});
            if (n->op != Intrinsic::IfThenElse) return IRVisitor::visit_call(n);
            visit(n->args[0]);
            const size_t depth = conds.size();
            split_conjunction(n->args[0], conds);
            visit(n->args[1]);
            conds.resize(depth);
            visit(n->args[2]);
        }
        void visit_reduce(const Reduce* n) override {
            visit(n->condition);
            const size_t depth = conds.size();
            if (n->condition.defined()) split_conjunction(n->condition, conds);
            visit(n->source);
            conds.resize(depth);
        }
        void visit_let(const Let* n) override {
            visit(n->value);
            lets[n->var.get()] = substitute(n->value, lets);
            visit(n->body);
        }
    } v;
    v.visit(body);
    return v.reads;
}

// Whether e mentions only the given variables (the kernel's sizes).
inline bool only_vars_in(const Expr& e, const std::unordered_set<const VarNode*>& allowed) {
    bool ok = true;
    post_order_visit(e, [&](const Expr& x) {
        if (auto* v = x.as<VarNode>(); v && !allowed.count(v)) ok = false;
        if (auto* c = x.as<Call>(); c && c->op == Intrinsic::TensorAccess) ok = false;
    });
    return ok;
}

// Narrows the range of `index` with a condition `l op r` where index = (l - r) + k or index = (r - l) + k
// for some k fixed by the sizes alone.
inline void narrow(arith::Interval& iv, const Expr& index, const Expr& cond,
                   const std::unordered_set<const VarNode*>& sizes) {
    const auto* b = dynamic_cast<const BinaryNode*>(cond.get());
    if (!b) return;
    const ExprKind k = cond.kind();
    if (k != ExprKind::LT && k != ExprKind::LE && k != ExprKind::GT && k != ExprKind::GE && k != ExprKind::EQ) return;
    if (!b->a.type().is_integer() || !b->b.type().is_integer()) return;
    auto lower_to = [&](const Expr& v) { iv.min = iv.min.defined() ? arith::simplify(kiln::max(iv.min, v)) : v; };
    auto upper_to = [&](const Expr& v) { iv.max = iv.max.defined() ? arith::simplify(kiln::min(iv.max, v)) : v; };
    // index - (a - b): a < b means index < offset, and so on.
    Expr off = arith::simplify(index - (b->a - b->b));
    if (only_vars_in(off, sizes)) {
        if (k == ExprKind::LT) upper_to(arith::simplify(off - 1));
        if (k == ExprKind::LE || k == ExprKind::EQ) upper_to(off);
        if (k == ExprKind::GT) lower_to(arith::simplify(off + 1));
        if (k == ExprKind::GE || k == ExprKind::EQ) lower_to(off);
        return;
    }
    // index - (b - a): a < b means index > offset.
    off = arith::simplify(index - (b->b - b->a));
    if (only_vars_in(off, sizes)) {
        if (k == ExprKind::LT) lower_to(arith::simplify(off + 1));
        if (k == ExprKind::LE || k == ExprKind::EQ) lower_to(off);
        if (k == ExprKind::GT) upper_to(arith::simplify(off - 1));
        if (k == ExprKind::GE || k == ExprKind::EQ) upper_to(off);
    }
}

inline std::string read_text(const Call* c) {
    std::string s = c->producer->name + "(";
    for (size_t i = 0; i < c->args.size(); ++i) s += (i ? ", " : "") + to_plain_string(c->args[i]);
    return s + ")";
}

}  // namespace detail

// Throws for a read proved out of range, or one whose range cannot be bounded; returns what is left to
// check when the kernel is called.
inline std::vector<BoundsRequirement> check_bounds(const std::vector<StageInfo>& stages, const Bounds& b,
                                                   const std::vector<Var>& size_vars) {
    std::unordered_set<const VarNode*> sizes;
    arith::BoundScope scope = b.scope;
    for (auto& v : size_vars) {
        sizes.insert(v.get());
        scope[v.get()] = arith::ConstBound{1, INT32_MAX - 1};
    }
    std::unordered_map<const VarNode*, Range> loop_range;
    for (auto& s : stages)
        for (auto& l : s.node->leaf_iter_vars) loop_range[l.var().get()] = b.range.at(l.get());
    std::vector<BoundsRequirement> out;
    for (const StageInfo& c : stages) {
        const OperationNode* cop = c.op.get();
        // Each root axis over the part of it this stage computes.
        arith::RelaxMap root;
        auto add_root = [&](const IterVar& iv) {
            const Range& r = b.range.at(iv.get());
            auto g = b.guard_extent.find(iv.get());
            const Expr ext = g != b.guard_extent.end() ? g->second : r.extent;
            root[iv.var().get()] = {r.min, arith::simplify(r.min + ext - 1, scope)};
        };
        for (auto& a : cop->axis) add_root(a);
        for (auto& a : cop->reduce_axis) add_root(a);
        for (const detail::GuardedRead& rd : detail::guarded_reads(cop->body)) {
            const OperationNode* p = rd.call->producer.get();
            for (size_t d = 0; d < rd.call->args.size() && d < p->shape.size(); ++d) {
                const Expr index = arith::simplify(substitute(rd.call->args[d], rd.lets));
                arith::Interval iv = arith::eval_interval(index, root);
                for (auto& cond : rd.conditions) detail::narrow(iv, index, substitute(cond, rd.lets), sizes);
                iv = detail::sweep_loops(iv, loop_range);
                const Expr extent = p->shape[d];
                const std::string where = "stage '" + c.node->name() + "' reads " + detail::read_text(rd.call);
                const std::string dim = "dimension " + std::to_string(d) +
                                        (p->kind == OpKind::Compute ? " (axis '" + p->axis[d].name() + "')" : "");
                const std::string fix =
                        "; shrink '" + c.node->name() + "' to the part that is defined, clamp the index into [0, " +
                        to_plain_string(extent) + ") with kiln::max and kiln::min, or guard the read with if_then_else";
                if (!iv.bounded() || !detail::only_vars_in(iv.min, sizes) || !detail::only_vars_in(iv.max, sizes))
                    kiln::detail::fail(where, ": kiln cannot bound the index ", to_plain_string(index), " in ", dim,
                                       " of '", p->name,
                                       "' (it depends on data or on arithmetic bound inference does not follow), so "
                                       "the read could fall outside the tensor",
                                       fix);
                const Expr lo = arith::simplify(iv.min, scope), hi = arith::simplify(iv.max, scope);
                const Expr lo_ok = arith::simplify(lo >= 0, scope), hi_ok = arith::simplify(hi < extent, scope);
                if (is_zero(lo_ok) || is_zero(hi_ok))
                    kiln::detail::fail(where, ", whose index in ", dim, " covers [", to_plain_string(lo), ", ",
                                       to_plain_string(hi), "], but '", p->name, "' has [0, ", to_plain_string(extent),
                                       ") there", fix);
                if (!is_one(lo_ok))
                    out.push_back({p->name, c.node->name(), static_cast<int>(d), lo, extent, false,
                                   detail::read_text(rd.call)});
                if (!is_one(hi_ok))
                    out.push_back({p->name, c.node->name(), static_cast<int>(d), hi, extent, true,
                                   detail::read_text(rd.call)});
            }
        }
    }
    return out;
}

}  // namespace kiln::passes
