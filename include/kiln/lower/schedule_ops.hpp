#pragma once
// Pass: loop nest generation. Turns each stage into loops over its leaf axes in schedule order,
// places reductions' initialisation before their first reduction loop, injects compute_at
// producers at the top of their attach loop, and wraps intermediates in Realize regions.
#include "kiln/lower/infer_bound.hpp"

namespace kiln::passes {

namespace detail {

class NestBuilder {
public:
    NestBuilder(const std::vector<StageInfo>& stages, const Bounds& b) : stages_(stages), b_(b) {
        for (auto& s : stages) {
            info_[s.node] = &s;
            if (s.node->attach == AttachType::Scope) {
                const StageNode* p = s.node->attach_stage;
                bool found = false;
                for (auto& t : stages) found |= t.node == p;
                if (!found || p->leaf_index(s.node->attach_ivar) < 0)
                    kiln::detail::fail("stage '", s.node->name(), "' is computed at axis '", s.node->attach_ivar.name(),
                                       "' of stage '", p->name(),
                                       "', which is no longer one of its loops (it was split, fused or inlined after "
                                       "compute_at); ",
                                       "call compute_at again with a current loop");
                attached_[s.node->attach_ivar.get()].push_back(&s);
            }
        }
    }

    Stmt build() {
        std::vector<Stmt> nests;
        std::vector<const StageInfo*> intermediates;
        for (auto& s : stages_) {
            if (s.node->attach != AttachType::Root) continue;
            nests.push_back(stage_nest(s));
            if (!s.node->is_output) intermediates.push_back(&s);
        }
        // Root intermediates live for the whole kernel; storage_reuse later shares what it can.
        Stmt body = make_block(nests);
        for (auto it = intermediates.rbegin(); it != intermediates.rend(); ++it) body = realize(**it, body);
        return body;
    }

private:
    Stmt realize(const StageInfo& s, Stmt body) {
        return make_stmt<Realize>(s.op, b_.region.at(s.node), std::move(body));
    }

    // Producers attached at this loop come first, each inside its Realize around the rest.
    Stmt inject(const IterVar& leaf, Stmt body) {
        auto it = attached_.find(leaf.get());
        if (it == attached_.end()) return body;
        for (auto p = it->second.rbegin(); p != it->second.rend(); ++p)
            body = realize(**p, make_block({stage_nest(**p), body}));
        return body;
    }

    static Stmt guarded(const std::vector<Expr>& guards, Stmt s) {
        for (auto it = guards.rbegin(); it != guards.rend(); ++it) s = make_stmt<IfThenElse>(*it, s, Stmt());
        return s;
    }

    ForKind kind_of(const StageNode* s, const IterVar& leaf) const {
        auto it = s->for_kind.find(leaf.get());
        ForKind k = it == s->for_kind.end() ? ForKind::Serial : it->second;
        if (k == ForKind::Vectorized || k == ForKind::Unrolled) {
            Expr ext = b_.range.at(leaf.get()).extent;
            if (!as_const_int(ext))
                kiln::detail::fail("stage '", s->name(), "': ", k == ForKind::Vectorized ? "vectorize" : "unroll",
                                   " of axis '", leaf.name(), "': its extent (", to_string(ext),
                                   ") is not a constant; split the axis by a constant factor and ",
                                   k == ForKind::Vectorized ? "vectorize" : "unroll", " the inner axis");
        }
        return k;
    }

    Stmt loop(const StageNode* s, const IterVar& leaf, Stmt body) {
        auto ann = s->annotations.find(leaf.get());
        return make_stmt<For>(leaf.var(), Expr(0), b_.range.at(leaf.get()).extent, kind_of(s, leaf), std::move(body),
                              ann == s->annotations.end() ? std::map<std::string, std::string>{} : ann->second);
    }

    Stmt stage_nest(const StageInfo& si) {
        const StageNode* s = si.node;
        const OperationNode* op = si.op.get();
        LoopValues lv = loop_values(s, op, b_);
        VarMap sub;
        for (auto& [iv, v] : lv.value) sub[iv->var.get()] = v;
        std::vector<Expr> args;
        for (auto& a : op->axis) args.push_back(lv.value.at(a.get()));
        const auto& leaves = s->leaf_iter_vars;
        auto* red = op->body.as<Reduce>();
        if (!red) {
            Stmt body = guarded(lv.data_guards, make_stmt<Provide>(si.op, substitute(op->body, sub), args));
            for (auto it = leaves.rbegin(); it != leaves.rend(); ++it) body = loop(s, *it, inject(*it, body));
            return body;
        }
        Expr current = Tensor(si.op).access(args);
        VarMap comb{{red->combiner->lhs.get(), current}, {red->combiner->rhs.get(), substitute(red->source, sub)}};
        Stmt update = make_stmt<Provide>(si.op, substitute(red->combiner->combine, comb), args);
        if (red->condition.defined()) update = make_stmt<IfThenElse>(substitute(red->condition, sub), update, Stmt());
        std::vector<Expr> all_guards = lv.data_guards;
        all_guards.insert(all_guards.end(), lv.reduce_guards.begin(), lv.reduce_guards.end());
        update = guarded(all_guards, update);
        size_t first_reduce = leaves.size();
        for (size_t i = 0; i < leaves.size(); ++i)
            if (leaves[i].is_reduce()) {
                first_reduce = i;
                break;
            }
        // The initialisation runs over the data-parallel loops inside the first reduction loop.
        Stmt init = guarded(lv.data_guards, make_stmt<Provide>(si.op, red->combiner->identity, args));
        for (size_t i = leaves.size(); i-- > first_reduce;)
            if (!leaves[i].is_reduce()) init = loop(s, leaves[i], init);
        Stmt body = update;
        for (size_t i = leaves.size(); i-- > 0;) {
            if (i + 1 == first_reduce) body = make_block({init, body});
            body = loop(s, leaves[i], inject(leaves[i], body));
        }
        if (first_reduce == 0) body = make_block({init, body});
        return body;
    }

    const std::vector<StageInfo>& stages_;
    const Bounds& b_;
    std::unordered_map<const StageNode*, const StageInfo*> info_;
    std::unordered_map<const IterVarNode*, std::vector<const StageInfo*>> attached_;
};

}  // namespace detail

inline Stmt schedule_ops(const std::vector<StageInfo>& stages, const Bounds& bounds) {
    return detail::NestBuilder(stages, bounds).build();
}

}  // namespace kiln::passes
