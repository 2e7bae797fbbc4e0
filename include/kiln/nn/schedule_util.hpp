#pragma once
// What the kiln::nn schedules share: finding the stages of an operator pattern by tag, and inlining
// the elementwise epilogue that sits between an operator and the output it is scheduled for.
#include <functional>
#include <unordered_map>
#include <unordered_set>

#include "kiln/schedule/schedule.hpp"
#include "kiln/target.hpp"

namespace kiln::nn::detail {

// The producer of `out` (or `out` itself) carrying `tag`, searched through compute stages only.
inline OpPtr find_tagged(const Tensor& out, const std::string& tag) {
    std::unordered_set<const OperationNode*> seen;
    std::function<OpPtr(const OpPtr&)> walk = [&](const OpPtr& op) -> OpPtr {
        if (!seen.insert(op.get()).second || op->kind != OpKind::Compute) return nullptr;
        if (op->tag == tag) return op;
        for (auto& p : kiln::detail::producers_of(op.get()))
            if (auto hit = walk(p)) return hit;
        return nullptr;
    };
    return walk(out.op());
}

// Inlines every elementwise stage on the paths from `op` up to `out` (exclusive at both ends), so that
// the epilogue (bias, activation, residual add) is computed in the copy-out loop of `out`'s tiles.
inline void inline_epilogue(Schedule& s, const OpPtr& op, const Tensor& out, const char* schedule_name) {
    std::unordered_set<const OperationNode*> on_path;
    std::unordered_map<const OperationNode*, bool> memo;  // a residual add reads one stage twice
    std::function<bool(const OpPtr&)> reaches = [&](const OpPtr& cur) -> bool {
        if (cur.get() == op.get()) return true;
        if (cur->kind != OpKind::Compute) return false;
        if (auto it = memo.find(cur.get()); it != memo.end()) return it->second;
        bool any = false;
        for (auto& p : kiln::detail::producers_of(cur.get())) any |= reaches(p);
        if (any && cur.get() != out.op().get()) on_path.insert(cur.get());
        return memo[cur.get()] = any;
    };
    if (!reaches(out.op()))
        kiln::detail::fail(schedule_name, ": output '", out.name(), "' does not read the '", op->name,
                           "' stage; pass the operator's result or an elementwise function of it");
    for (auto& st : s.stages()) {
        if (!on_path.count(st->op.get())) continue;
        if (!st->op->reduce_axis.empty())
            kiln::detail::fail(
                    schedule_name, ": stage '", st->name(), "' between '", op->name, "' and the output '", out.name(),
                    "' is a reduction; only elementwise stages can be fused as an epilogue, so schedule it separately");
        s[st->op].compute_inline();
    }
}

inline int64_t const_dim(const Expr& e, const std::string& tensor, size_t d, const char* schedule_name) {
    auto* c = as_const_int(e);
    if (!c)
        kiln::detail::fail(
                schedule_name, ": dimension ", d, " of '", tensor, "' is symbolic (", to_string(e),
                "); the default schedule picks tile sizes from constant shapes, so bind the size or write a schedule");
    return *c;
}

inline int f32_lanes(const Target& target) { return std::max(4, target.simd_bits() / 32); }

}  // namespace kiln::nn::detail
