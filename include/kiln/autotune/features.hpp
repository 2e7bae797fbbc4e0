#pragma once
// Features of a lowered program for the cost model, after Ansor's: what each store costs and how its
// buffer accesses walk memory, summed over the program weighted by how often each runs. Every store
// contributes its arithmetic (times lanes and trip count), and every access of it (the loads of its
// value and the store itself) its stride along the innermost loop, the trip count of the loops it is
// invariant in (reuse), and the bytes it touches within one iteration of each of the four innermost
// loops around it (the working set those loops need in cache). Counts go in as log2(1 + x), so the
// trees split on orders of magnitude.
#include <array>
#include <cmath>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "kiln/arith/linear.hpp"
#include "kiln/ir/analysis.hpp"
#include "kiln/lower/lower.hpp"

namespace kiln::autotune {

inline constexpr std::array<const char*, 24> kFeatureNames = {
        "log2 arithmetic operations",
        "log2 memory accesses (lanes)",
        "operations per access",
        "share of operations in vector code",
        "mean vector lanes",
        "log2 parallel extent (0: no parallel loop)",
        "share of operations inside a parallel loop",
        "log2 unrolled copies (mean per operation)",
        "share of accesses contiguous along the innermost loop",
        "share of accesses invariant in the innermost loop",
        "share of accesses with another constant stride",
        "share of accesses with an unknown stride",
        "log2 innermost serial loop extent (mean per operation)",
        "deepest loop nest",
        "log2 bytes of local buffers",
        "log2 reuse: trip count of the loops an access is invariant in (mean)",
        "share of stores to local buffers",
        "log2 store statements",
        "log2 loops",
        "share of operations under a condition",
        "log2 bytes touched per iteration of the innermost loop",
        "log2 bytes touched per iteration of the second loop",
        "log2 bytes touched per iteration of the third loop",
        "log2 bytes touched per iteration of the fourth loop",
};
inline constexpr size_t kFeatureCount = kFeatureNames.size();
using Features = std::array<float, kFeatureCount>;

namespace detail {

class FeatureExtractor : public IRVisitor {
public:
    Features result() const {
        Features f{};
        auto lg = [](double x) { return static_cast<float>(std::log2(1.0 + std::max(0.0, x))); };
        auto share = [](double part, double whole) { return whole > 0 ? static_cast<float>(part / whole) : 0.f; };
        f[0] = lg(ops_);
        f[1] = lg(accesses_);
        f[2] = share(ops_, accesses_);
        f[3] = share(vector_ops_, ops_);
        f[4] = share(lanes_weighted_, ops_);
        f[5] = static_cast<float>(std::log2(max_parallel_));
        f[6] = share(parallel_ops_, ops_);
        f[7] = share(unrolled_log_weighted_, ops_);
        f[8] = share(contiguous_, accesses_);
        f[9] = share(invariant_, accesses_);
        f[10] = share(strided_, accesses_);
        f[11] = share(unknown_, accesses_);
        f[12] = share(inner_extent_log_weighted_, ops_);
        f[13] = static_cast<float>(max_depth_);
        f[14] = lg(local_bytes_);
        f[15] = share(reuse_log_weighted_, accesses_);
        f[16] = share(local_stores_, stores_weighted_);
        f[17] = lg(store_statements_);
        f[18] = lg(loops_);
        f[19] = share(guarded_ops_, ops_);
        for (size_t level = 0; level < 4; ++level) f[20 + level] = share(footprint_log_weighted_[level], ops_);
        return f;
    }

protected:
    void visit_for(const For* n) override {
        const int64_t* extent = as_const_int(n->extent);
        loops_ += 1;
        loop_stack_.push_back({n->var.get(), extent ? static_cast<double>(*extent) : 16.0, n->for_kind});
        max_depth_ = std::max(max_depth_, static_cast<int>(loop_stack_.size()));
        IRVisitor::visit_for(n);
        loop_stack_.pop_back();
    }
    void visit_let_stmt(const LetStmt* n) override {
        lets_[n->var.get()] = substitute(n->value, lets_);
        IRVisitor::visit_let_stmt(n);
    }
    void visit_allocate(const Allocate* n) override {
        double elems = 1;
        for (const Expr& e : n->extents) {
            const int64_t* c = as_const_int(e);
            elems *= static_cast<double>(c ? *c : 64);
        }
        local_bytes_ += elems * n->dtype.bytes();
        locals_.insert(n->buffer.get());
        IRVisitor::visit_allocate(n);
    }
    void visit_if(const IfThenElse* n) override {
        ++guards_;
        IRVisitor::visit_if(n);
        --guards_;
    }
    void visit_store(const Store* n) override {
        double trips = 1, parallel = 1, unrolled = 1;
        for (const Loop& l : loop_stack_) {
            trips *= l.extent;
            if (l.kind == ForKind::Parallel) parallel *= l.extent;
            if (l.kind == ForKind::Unrolled) unrolled *= l.extent;
        }
        const int lanes = n->value.type().lanes;
        const double ops = trips * lanes * std::max(1, count_ops(n->value));
        ops_ += ops;
        if (lanes > 1) vector_ops_ += ops;
        lanes_weighted_ += ops * lanes;
        max_parallel_ = std::max(max_parallel_, parallel);
        if (parallel > 1) parallel_ops_ += ops;
        unrolled_log_weighted_ += ops * std::log2(unrolled);
        if (guards_ > 0) guarded_ops_ += ops;
        const Loop* inner = innermost_serial();
        inner_extent_log_weighted_ += ops * std::log2(1.0 + (inner ? inner->extent : 1.0));
        store_statements_ += 1;
        stores_weighted_ += trips;
        if (locals_.count(n->buffer.get())) local_stores_ += trips;

        std::vector<std::pair<Expr, int>> accesses{{n->index, lanes}};  // index, lanes
        post_order_visit(n->value, [&](const Expr& e) {
            if (auto* ld = e.as<Load>()) accesses.push_back({ld->index, ld->type.lanes});
        });
        std::array<double, 4> footprint{};
        for (const auto& [raw_index, access_lanes] : accesses) {
            const Expr index = substitute(raw_index, lets_);
            const double weight = trips * access_lanes;
            accesses_ += weight;
            classify_stride(index, inner, weight);
            // Reuse: the trip count of the innermost loops this access does not move with.
            double reuse = 1;
            for (auto it = loop_stack_.rbegin(); it != loop_stack_.rend() && !uses(index, it->var); ++it)
                reuse *= it->extent;
            reuse_log_weighted_ += weight * std::log2(reuse);
            // Bytes touched in one iteration of each of the four innermost loops.
            double touched = access_lanes * 4.0;
            size_t level = 0;
            for (auto it = loop_stack_.rbegin(); it != loop_stack_.rend() && level < 4; ++it, ++level) {
                footprint[level] += touched;
                if (uses(index, it->var)) touched *= it->extent;
            }
            for (; level < 4; ++level) footprint[level] += touched;
        }
        for (size_t level = 0; level < 4; ++level)
            footprint_log_weighted_[level] += ops * std::log2(1.0 + footprint[level]);
        IRVisitor::visit_store(n);
    }

private:
    struct Loop {
        const VarNode* var;
        double extent;
        ForKind kind;
    };

    const Loop* innermost_serial() const {
        for (auto it = loop_stack_.rbegin(); it != loop_stack_.rend(); ++it)
            if (it->kind != ForKind::Parallel) return &*it;
        return nullptr;
    }

    static bool uses(const Expr& e, const VarNode* v) {
        bool found = false;
        post_order_visit(e, [&](const Expr& x) { found |= x.get() == v; });
        return found;
    }

    // Arithmetic nodes of a value; a transcendental call counts as the dozen operations its polynomial is.
    static int count_ops(const Expr& value) {
        int n = 0;
        post_order_visit(value, [&](const Expr& e) {
            if (is_binary(e.kind()) || e.as<Select>())
                ++n;
            else if (auto* c = e.as<Call>(); c && c->op != Intrinsic::TensorAccess && c->op != Intrinsic::Likely)
                n += c->op == Intrinsic::Fma ? 2 : 12;
        });
        return n;
    }

    void classify_stride(const Expr& index, const Loop* inner, double weight) {
        if (auto* r = index.as<Ramp>()) {
            const auto stride = as_const_int(r->stride);
            (!stride ? unknown_ : *stride == 0 ? invariant_ : *stride == 1 ? contiguous_ : strided_) += weight;
            return;
        }
        if (index.as<Broadcast>() || !inner || !uses(index, inner->var)) {
            invariant_ += weight;
            return;
        }
        const arith::LinearForm lf = arith::to_linear(index);
        int64_t coefficient = 0;
        bool linear = lf.ok;
        for (const auto& [term, c] : lf.terms) {
            if (term.get() == inner->var)
                coefficient = c;
            else if (uses(term, inner->var))
                linear = false;
        }
        (!linear ? unknown_ : coefficient == 1 ? contiguous_ : strided_) += weight;
    }

    std::vector<Loop> loop_stack_;
    VarMap lets_;
    std::unordered_set<const VarNode*> locals_;
    int guards_ = 0, max_depth_ = 0;
    double ops_ = 0, accesses_ = 0, vector_ops_ = 0, lanes_weighted_ = 0, max_parallel_ = 1, parallel_ops_ = 0,
           unrolled_log_weighted_ = 0, contiguous_ = 0, invariant_ = 0, strided_ = 0, unknown_ = 0,
           inner_extent_log_weighted_ = 0, local_bytes_ = 0, reuse_log_weighted_ = 0, local_stores_ = 0,
           stores_weighted_ = 0, store_statements_ = 0, loops_ = 0, guarded_ops_ = 0;
    std::array<double, 4> footprint_log_weighted_{};
};

}  // namespace detail

inline Features program_features(const LoweredFunc& f) {
    detail::FeatureExtractor x;
    x.visit(f.body);
    return x.result();
}

}  // namespace kiln::autotune
