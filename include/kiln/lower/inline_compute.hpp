#pragma once
// Pass: substitute the bodies of compute_inline stages into their readers. Works on copies;
// the user's schedule is left as it is, so lowering can run any number of times.
#include "kiln/schedule/schedule.hpp"

namespace kiln::passes {

// A stage as lowering sees it: the schedule's record plus its op after inlining.
struct StageInfo {
    const StageNode* node;
    OpPtr op;
};

namespace detail {
class InlineMutator : public IRMutator {
public:
    InlineMutator(const OperationNode* op, const std::vector<IterVar>& axes, Expr body)
            : op_(op), axes_(axes), body_(std::move(body)) {}
    using IRMutator::mutate;

protected:
    Expr mutate_call(const Call* n, const Expr& e) override {
        Expr r = IRMutator::mutate_call(n, e);
        auto* c = r.as<Call>();
        if (c && c->op == Intrinsic::TensorAccess && c->producer.get() == op_) {
            VarMap m;
            for (size_t d = 0; d < axes_.size(); ++d) m[axes_[d].var().get()] = c->args[d];
            return substitute(body_, m);
        }
        return r;
    }

private:
    const OperationNode* op_;
    const std::vector<IterVar>& axes_;
    Expr body_;
};
}  // namespace detail

inline std::vector<StageInfo> inline_compute(const Schedule& sched) {
    std::vector<StageInfo> stages;
    for (auto& s : sched.stages()) stages.push_back({s.get(), s->op});
    for (size_t i = 0; i < stages.size(); ++i) {
        if (stages[i].node->attach != AttachType::Inline) continue;
        const OperationNode* op = stages[i].op.get();
        for (size_t j = i + 1; j < stages.size(); ++j) {
            detail::InlineMutator m(stages[i].node->op.get(), op->axis, op->body);
            Expr body = m.mutate(stages[j].op->body);
            if (!body.same_as(stages[j].op->body)) stages[j].op = kiln::detail::with_body(stages[j].op.get(), body);
        }
    }
    // Keep the computed stages only, and point every read at its producer's final op. Producers come
    // first in the list, so each is final before anyone reads it.
    std::vector<StageInfo> out;
    for (auto& s : stages)
        if (s.node->attach != AttachType::Inline) out.push_back(s);
    for (size_t i = 0; i < out.size(); ++i) {
        for (size_t j = 0; j < i; ++j) {
            if (out[j].node->op == out[j].op) continue;
            kiln::detail::ProducerReplacer r(out[j].node->op.get(), out[j].op);
            Expr body = r.mutate(out[i].op->body);
            if (!body.same_as(out[i].op->body)) out[i].op = kiln::detail::with_body(out[i].op.get(), body);
        }
    }
    return out;
}

}  // namespace kiln::passes
