#pragma once
// Pass: bound inference. For every stage, from the outputs back to the inputs, find the region
// of it that its consumers read, in terms of the loops that are in scope where it is computed
// (compute_at keeps the consumer's outer loops symbolic and sweeps the inner ones). Then derive
// the extents of every split and fused loop.
#include "kiln/arith/interval.hpp"
#include "kiln/lower/inline_compute.hpp"

namespace kiln::passes {

struct Bounds {
    // Every iteration variable of every stage: root axes [min, extent), derived loops [0, extent).
    std::unordered_map<const IterVarNode*, Range> range;
    // Root axes whose loop runs to a constant upper bound: the true extent, to guard against.
    std::unordered_map<const IterVarNode*, Expr> guard_extent;
    // The region each intermediate must hold (allocation extents are constant where possible).
    std::unordered_map<const StageNode*, std::vector<Range>> region;
    // Constant ranges of all loop variables, for the simplifier.
    arith::BoundScope scope;
};

namespace detail {

// The loops in scope where `s` is computed. A stage in shared memory is one copy for the whole block, so the
// loops bound to threadIdx around it are not in scope: it holds what every thread of the block reads.
inline std::vector<const VarNode*> scope_vars(const StageNode* s) {
    const bool shared = s->scope == "shared";
    std::vector<const VarNode*> out;
    while (s && s->attach == AttachType::Scope) {
        const StageNode* p = s->attach_stage;
        int idx = p->leaf_index(s->attach_ivar);
        for (int i = 0; i <= idx; ++i) {
            const IterVar& l = p->leaf_iter_vars[i];
            auto ann = p->annotations.find(l.get());
            if (shared && ann != p->annotations.end() && ann->second.count(kThreadTag) &&
                ann->second.at(kThreadTag).rfind("threadIdx.", 0) == 0)
                continue;
            out.push_back(l.var().get());
        }
        s = p;
    }
    return out;
}

inline Expr ceil_div(const Expr& a, const Expr& b) { return (a + b - 1) / b; }

// Whether `reader` runs inside loop `idx` of `at`: it is that stage, or computed (through a chain of
// compute_at) at that loop or one inside it.
inline bool runs_inside(const StageNode* reader, const StageNode* at, int idx) {
    if (reader == at) return true;
    for (const StageNode* s = reader; s->attach == AttachType::Scope; s = s->attach_stage)
        if (s->attach_stage == at) return at->leaf_index(s->attach_ivar) >= idx;
    return false;
}

// A stage computed at a loop is stored only inside it, so every stage that reads it must run there too.
inline void check_readers_inside_attach_loop(const std::vector<StageInfo>& stages) {
    for (const StageInfo& p : stages) {
        const StageNode* s = p.node;
        if (s->attach != AttachType::Scope) continue;
        const int idx = s->attach_stage->leaf_index(s->attach_ivar);
        if (idx < 0) continue;  // a loop that no longer exists: schedule_ops says so
        for (const StageInfo& c : stages) {
            if (runs_inside(c.node, s->attach_stage, idx)) continue;
            bool reads = false;
            post_order_visit(c.op->body, [&](const Expr& e) {
                auto* call = e.as<Call>();
                reads |= call && call->op == Intrinsic::TensorAccess && call->producer.get() == p.op.get();
            });
            if (!reads) continue;
            const std::string where = c.node->attach == AttachType::Scope
                                              ? "at loop '" + c.node->attach_ivar.name() + "' of stage '" +
                                                        c.node->attach_stage->name() + "'"
                                              : std::string("at the root");
            kiln::detail::fail("stage '", s->name(), "' is computed at loop '", s->attach_ivar.name(), "' of stage '",
                               s->attach_stage->name(), "', but stage '", c.node->name(),
                               "' also reads it and is computed outside that loop (", where, "); compute '",
                               c.node->name(), "' at loop '", s->attach_ivar.name(), "' of '", s->attach_stage->name(),
                               "' or inside it as well, or compute '", s->name(), "' at the root");
        }
    }
}

// Derived loop extents from the root ranges, following split and fuse in order.
inline void pass_down(const StageNode* s, Bounds& b) {
    for (auto& rel : s->relations) {
        if (rel.kind == Relation::Split) {
            auto& sp = rel.split;
            Expr ext = b.range.at(sp.parent.get()).extent;
            if (sp.factor.defined()) {
                b.range[sp.outer.get()] = {Expr(0), arith::simplify(ceil_div(ext, sp.factor), b.scope)};
                b.range[sp.inner.get()] = {Expr(0), sp.factor};
            } else {
                b.range[sp.outer.get()] = {Expr(0), sp.nparts};
                b.range[sp.inner.get()] = {Expr(0), arith::simplify(ceil_div(ext, sp.nparts), b.scope)};
            }
        } else {
            auto& f = rel.fuse;
            b.range[f.fused.get()] = {
                    Expr(0),
                    arith::simplify(b.range.at(f.outer.get()).extent * b.range.at(f.inner.get()).extent, b.scope)};
        }
    }
    for (auto& l : s->leaf_iter_vars) {
        auto cb = arith::const_bound(b.range.at(l.get()).extent, b.scope);
        b.scope[l.var().get()] = arith::ConstBound{0, cb.max ? std::optional<int64_t>(*cb.max - 1) : std::nullopt};
    }
}

// Sweeps every loop variable left in an interval's bounds (but those in `keep`) over its range, until none is
// left: a bound may name an outer loop whose own range names one further out.
inline arith::Interval sweep_loops(arith::Interval iv, const std::unordered_map<const VarNode*, Range>& loop_range,
                                   const std::unordered_set<const VarNode*>& keep = {}) {
    for (int round = 0; round < 8; ++round) {
        arith::RelaxMap outer;
        auto collect = [&](const Expr& x) {
            post_order_visit(x, [&](const Expr& v) {
                auto* vn = v.as<VarNode>();
                if (vn && !keep.count(vn) && loop_range.count(vn)) outer[vn] = {Expr(0), loop_range.at(vn).extent - 1};
            });
        };
        if (iv.min.defined()) collect(iv.min);
        if (iv.max.defined()) collect(iv.max);
        if (outer.empty()) break;
        iv = {iv.min.defined() ? arith::eval_interval(iv.min, outer).min : Expr(),
              iv.max.defined() ? arith::eval_interval(iv.max, outer).max : Expr()};
    }
    return iv;
}

}  // namespace detail

// Each root variable of a stage as an expression of its loop variables, plus the guards that keep
// partial tiles inside the domain. Reduction guards apply to the update only.
struct LoopValues {
    std::unordered_map<const IterVarNode*, Expr> value;  // root axis -> min + offset(leaves)
    std::vector<Expr> data_guards, reduce_guards;
};

inline LoopValues loop_values(const StageNode* s, const OperationNode* op, const Bounds& b) {
    std::unordered_map<const IterVarNode*, Expr> offset;
    for (auto& l : s->leaf_iter_vars) offset[l.get()] = l.var();
    LoopValues out;
    auto guard = [&](const IterVar& parent, const Expr& off, const Expr& ext) {
        Expr cond = arith::simplify(off < ext, b.scope);
        if (is_one(cond)) return;
        (parent.is_reduce() ? out.reduce_guards : out.data_guards).push_back(likely(cond));
    };
    for (auto it = s->relations.rbegin(); it != s->relations.rend(); ++it) {
        if (it->kind == Relation::Split) {
            auto& sp = it->split;
            Expr ext = b.range.at(sp.parent.get()).extent;
            Expr inner_ext = b.range.at(sp.inner.get()).extent;
            Expr o = offset.at(sp.outer.get()), i = offset.at(sp.inner.get());
            Expr v;
            // Shifting the last tile inwards needs a whole tile to shift into; where the extent may be smaller
            // than the factor, the tail is guarded instead.
            if (sp.tail == TailStrategy::ShiftInwards && is_one(arith::simplify(ext >= inner_ext, b.scope))) {
                v = kiln::min(o * inner_ext, ext - inner_ext) + i;
            } else {
                v = o * inner_ext + i;
                if (sp.tail == TailStrategy::Exact) {
                    const Expr rest = arith::simplify(ext % inner_ext, b.scope);
                    auto e = as_const_int(rest);
                    if (!e || *e != 0)
                        kiln::detail::fail("stage '", s->name(), "': split of axis '", sp.parent.name(),
                                           "' with TailStrategy::Exact: the extent ", to_string(ext),
                                           " is not a multiple of ", to_string(inner_ext),
                                           "; use GuardWithIf or a dividing factor");
                } else {
                    guard(sp.parent, v, ext);
                }
            }
            offset[sp.parent.get()] = v;
        } else {
            auto& f = it->fuse;
            Expr inner_ext = b.range.at(f.inner.get()).extent;
            Expr fv = offset.at(f.fused.get());
            offset[f.outer.get()] = fv / inner_ext;
            offset[f.inner.get()] = fv % inner_ext;
        }
    }
    auto root = [&](const IterVar& iv) {
        const Range& r = b.range.at(iv.get());
        out.value[iv.get()] = arith::simplify(r.min + offset.at(iv.get()), b.scope);
        if (auto g = b.guard_extent.find(iv.get()); g != b.guard_extent.end())
            guard(iv, offset.at(iv.get()), g->second);
    };
    for (auto& a : op->axis) root(a);
    for (auto& a : op->reduce_axis) root(a);
    return out;
}

inline Bounds infer_bound(const std::vector<StageInfo>& stages) {
    detail::check_readers_inside_attach_loop(stages);
    Bounds b;
    std::unordered_map<const VarNode*, Range> loop_range;  // every leaf of a processed stage
    for (auto it = stages.rbegin(); it != stages.rend(); ++it) {
        const StageNode* s = it->node;
        const OperationNode* op = it->op.get();
        const size_t nd = op->shape.size();
        std::vector<arith::Interval> need(nd);
        bool any_reader = false;
        if (!s->is_output) {
            auto in_scope = detail::scope_vars(s);
            std::unordered_set<const VarNode*> scope_set(in_scope.begin(), in_scope.end());
            for (auto jt = stages.rbegin(); jt != it; ++jt) {
                const StageNode* c = jt->node;
                const OperationNode* cop = jt->op.get();
                std::vector<const Call*> reads;
                post_order_visit(cop->body, [&](const Expr& e) {
                    if (auto* call = e.as<Call>();
                        call && call->op == Intrinsic::TensorAccess && call->producer.get() == op)
                        reads.push_back(call);
                });
                if (reads.empty()) continue;
                any_reader = true;
                // Sweep the consumer's loops that are not in scope where this stage is computed.
                arith::RelaxMap leaf_relax;
                for (auto& l : c->leaf_iter_vars) {
                    if (scope_set.count(l.var().get())) continue;
                    const Range& r = b.range.at(l.get());
                    leaf_relax[l.var().get()] = {Expr(0), r.extent - 1};
                }
                LoopValues lv = loop_values(c, cop, b);
                arith::RelaxMap root_relax;
                auto add_root = [&](const IterVar& iv) {
                    auto iv_range = arith::eval_interval(lv.value.at(iv.get()), leaf_relax);
                    const Range& r = b.range.at(iv.get());
                    Expr last = r.min + (b.guard_extent.count(iv.get()) ? b.guard_extent.at(iv.get()) : r.extent) - 1;
                    if (iv_range.max.defined()) iv_range.max = kiln::min(iv_range.max, last);
                    root_relax[iv.var().get()] = iv_range;
                };
                for (auto& a : cop->axis) add_root(a);
                for (auto& a : cop->reduce_axis) add_root(a);
                for (const Call* call : reads) {
                    for (size_t d = 0; d < nd; ++d) {
                        // Loops of stages further out that are not in scope either: sweep them too.
                        auto iv = detail::sweep_loops(arith::eval_interval(call->args[d], root_relax), loop_range,
                                                      scope_set);
                        need[d] = (need[d].min.defined() || need[d].max.defined()) ? arith::union_of(need[d], iv) : iv;
                    }
                }
            }
        }
        std::vector<Range> region(nd);
        for (size_t d = 0; d < nd; ++d) {
            Expr lo = Expr(0), hi = op->shape[d] - 1;
            if (!s->is_output && any_reader && need[d].bounded()) {
                lo = arith::simplify(kiln::max(need[d].min, Expr(0)), b.scope);
                hi = arith::simplify(kiln::min(need[d].max, op->shape[d] - 1), b.scope);
            }
            Expr ext = arith::simplify(hi - lo + 1, b.scope);
            Expr loop_ext = ext;
            if (!as_const_int(ext)) {
                auto cb = arith::const_bound(ext, b.scope);
                auto shape_c = as_const_int(op->shape[d]);
                std::optional<int64_t> ub = cb.max;
                if (shape_c && (!ub || *ub > *shape_c)) ub = *shape_c;
                if (ub && *ub > 0) {
                    loop_ext = Expr(static_cast<int>(*ub));
                    b.guard_extent[op->axis[d].get()] = ext;
                }
            }
            region[d] = {lo, loop_ext};
            b.range[op->axis[d].get()] = region[d];
        }
        b.region[s] = region;
        for (auto& a : op->reduce_axis) b.range[a.get()] = a.dom();
        detail::pass_down(s, b);
        for (auto& l : s->leaf_iter_vars) loop_range[l.var().get()] = b.range.at(l.get());
    }
    return b;
}

}  // namespace kiln::passes
