#pragma once
// A search space generated from the compute definition alone, after Ansor's sketches for CPUs, so a
// kernel without a hand-written template can be tuned. The rules, applied to every stage:
//
//   - an elementwise stage that is not an output is inlined into its readers;
//   - a reduction with data reuse (an operand that some output axis does not index, as A[i, k] is not
//     indexed by j in a product) gets multi-level tiling: the output's axes each split in three
//     (outer, middle, inner), the outer loops fused and parallel, the inner tile accumulated in a local
//     buffer (cache_write, or the reduction itself when an elementwise epilogue reads it: the epilogue
//     fuses) across the reduction loops, which split in two; the tile's rows unrolled and its last axis
//     vectorized;
//     an input it reads may be copied per outer tile into a contiguous local buffer (a knob);
//   - any other stage (elementwise, a reduction without reuse) splits its last axis for the vector lanes,
//     fuses the rest into one parallel loop, and runs its reduction loops between the two.
//
// The knobs are the split factors and the annotations (vectorize, parallel, unroll); each is named after
// its stage and axis ("C.i", "C.k", "C.parallel"). Every configuration is a legal schedule.
#include <functional>
#include <set>

#include "kiln/autotune/task.hpp"

namespace kiln::autotune {

namespace detail {

inline bool reads_depend_on_every_axis(const OperationNode& op) {
    bool all = true;
    post_order_visit(op.body, [&](const Expr& e) {
        auto* c = e.as<Call>();
        if (!c || c->op != Intrinsic::TensorAccess) return;
        for (const IterVar& iv : op.axis) {
            bool used = false;
            for (const Expr& index : c->args)
                post_order_visit(index, [&](const Expr& x) { used |= x.get() == iv.var().get(); });
            all &= used;
        }
    });
    return all;
}

inline bool has_data_reuse(const OperationNode& op) {
    return op.body.as<Reduce>() != nullptr && !reads_depend_on_every_axis(op);
}

inline int64_t extent_of(const IterVar& iv) {
    const int64_t* e = as_const_int(iv.dom().extent);
    return e ? *e : 1;
}

// The largest power of two at most min(extent, cap).
inline int64_t pow2_at_most(int64_t extent, int64_t cap) {
    int64_t p = 1;
    while (p * 2 <= std::min(extent, cap)) p *= 2;
    return p;
}

class Sketch {
public:
    Sketch(std::vector<Tensor> outputs, const Target& target, Knobs& knobs)
            : s_(outputs), outputs_(std::move(outputs)), knobs_(knobs), lanes_(std::max(1, target.simd_bits() / 32)) {}

    Schedule run() {
        // A copy: cache_write adds stages while the rules run.
        std::vector<std::shared_ptr<StageNode>> stages = s_.stages();
        for (const auto& st : stages)
            if (!st->is_output && st->op->body.as<Reduce>() == nullptr) s_[st->op].compute_inline();
        std::vector<const OperationNode*> tiled;  // outputs tiled, and the reductions fused into them
        for (const Tensor& out : outputs_) {
            StageNode* node = s_[out].node();
            if (has_data_reuse(*node->op)) {
                Tensor local = s_.cache_write(out, "local");
                tile(out, local);
                tiled.push_back(out.op().get());
            } else if (auto anchor = fusable_reduction(out)) {
                tile(out, Tensor(anchor));
                tiled.push_back(out.op().get());
                tiled.push_back(anchor.get());
            }
        }
        for (const auto& st : stages) {
            if (st->attach != AttachType::Root ||
                std::find(tiled.begin(), tiled.end(), st->origin.get()) != tiled.end())
                continue;
            plain(st->op);
        }
        return std::move(s_);
    }

private:
    // The reduction with reuse that `out` reads through inlined stages, of the same shape and read by
    // nothing else: its tile can be computed inside the output's.
    OpPtr fusable_reduction(const Tensor& out) {
        std::vector<OpPtr> pending = kiln::detail::producers_of(out.op().get());
        OpPtr found;
        std::set<const OperationNode*> visited;  // x * sigmoid(x) reaches x twice
        while (!pending.empty()) {
            OpPtr p = pending.back();
            pending.pop_back();
            if (p->kind != OpKind::Compute || !visited.insert(p.get()).second) continue;
            StageNode* st = s_[p].node();
            if (st->attach == AttachType::Inline) {
                for (auto& q : kiln::detail::producers_of(p.get())) pending.push_back(q);
                continue;
            }
            if (!has_data_reuse(*p) || p->shape.size() != out.ndim() || found) return nullptr;
            for (size_t d = 0; d < out.ndim(); ++d)
                if (extent_of(p->axis[d]) != extent_of(out.op()->axis[d])) return nullptr;
            if (s_.consumers_of(p.get(), true).size() != 1) return nullptr;
            found = p;
        }
        return found;
    }

    // Multi-level tiling of `out`, with `acc` (a local accumulator or the fused reduction) computed per tile.
    void tile(const Tensor& out, const Tensor& acc) {
        Stage st = s_[out];
        const size_t n = out.ndim();
        const std::string name = out.name();
        std::vector<IterVar> outer, middle, inner;
        for (size_t d = 0; d < n; ++d) {
            const IterVar& axis = st.axis(d);
            const int64_t extent = extent_of(axis);
            // The register tile: up to four vectors wide in the last axis, up to 16 rows in the one before,
            // up to 4 further out (loops around the unrolled rows, each row a copy of the micro-kernel).
            const bool last = d + 1 == n, row = d + 2 == n;
            const int64_t cap = last ? 4 * lanes_ : row ? 16 : 4;
            const int64_t preferred = last ? pow2_at_most(extent, 2 * lanes_) : row ? pow2_at_most(extent, 8) : 1;
            const auto f = knobs_.split(name + "." + axis.name(), extent, 3, {1, preferred}, cap);
            auto [o, rest] = st.split(axis, f[1] * f[2]);
            auto [m, i] = st.split(rest, f[2]);
            outer.push_back(o);
            middle.push_back(m);
            inner.push_back(i);
        }
        std::vector<IterVar> order = outer;
        order.insert(order.end(), middle.begin(), middle.end());
        order.insert(order.end(), inner.begin(), inner.end());
        st.reorder(order);
        IterVar fused_outer = outer[0];
        for (size_t d = 1; d < n; ++d) fused_outer = st.fuse(fused_outer, outer[d]);
        if (knobs_.knob(name + ".parallel", {1, 0})) st.parallel(fused_outer);
        if (knobs_.knob(name + ".vectorize", {1, 0})) st.vectorize(inner.back());

        Stage cs = s_[acc];
        cs.compute_at(st, middle.back());
        // An input may be copied per outer tile into a local buffer of its own (its rows made contiguous: a
        // [K, tile] panel of B instead of rows a whole matrix row apart, which collide in cache sets).
        for (const OpPtr& in : kiln::detail::producers_of(acc.op().get())) {
            if (in->kind != OpKind::Placeholder || !knobs_.knob(acc.name() + ".cache_" + in->name, {0, 1})) continue;
            const Tensor copy = s_.cache_read(Tensor(in), "local", {acc});
            Stage ps = s_[copy];
            ps.compute_at(st, fused_outer);
            if (copy.ndim() > 0) {
                auto [vo, vi] = ps.split(ps.axis(copy.ndim() - 1), lanes_);
                ps.vectorize(vi);
            }
        }
        const OperationNode& op = *acc.op();
        std::vector<IterVar> k_outer, k_inner;
        for (size_t r = 0; r < op.reduce_axis.size(); ++r) {
            const IterVar& k = cs.reduce_axis(r);
            const int64_t extent = extent_of(k);
            const auto f = knobs_.split(acc.name() + "." + k.name(), extent, 2, {extent % 4 == 0 ? 4 : 1}, 16);
            auto [ko, ki] = cs.split(k, f[1]);
            k_outer.push_back(ko);
            k_inner.push_back(ki);
        }
        std::vector<IterVar> acc_order = k_outer;
        acc_order.insert(acc_order.end(), k_inner.begin(), k_inner.end());
        for (size_t d = 0; d < op.axis.size(); ++d) acc_order.push_back(cs.axis(d));
        cs.reorder(acc_order);
        if (knobs_.knob(acc.name() + ".unroll_k", {1, 0}) && !k_inner.empty()) cs.unroll(k_inner.back());
        if (op.axis.size() >= 2) cs.unroll(cs.axis(op.axis.size() - 2));
        if (knobs_.knob(acc.name() + ".vectorize", {1, 0}) && !op.axis.empty())
            cs.vectorize(cs.axis(op.axis.size() - 1));
    }

    // Vector lanes in the last axis, the rest fused into one parallel loop, reduction loops between.
    void plain(const OpPtr& op) {
        Stage st = s_[op];
        const size_t n = op->axis.size();
        if (n == 0) return;
        const std::string name = op->name;
        const IterVar last = st.axis(n - 1);
        const int64_t extent = extent_of(last);
        const auto f = knobs_.split(name + "." + last.name(), extent, 2, {pow2_at_most(extent, lanes_)}, 4 * lanes_);
        auto [lo, li] = st.split(last, f[1]);
        std::vector<IterVar> order;
        for (size_t d = 0; d + 1 < n; ++d) order.push_back(st.axis(d));
        order.push_back(lo);
        for (size_t r = 0; r < op->reduce_axis.size(); ++r) order.push_back(st.reduce_axis(r));
        order.push_back(li);
        st.reorder(order);
        IterVar fused = order[0];
        for (size_t d = 1; d < n; ++d) fused = st.fuse(fused, order[d]);
        if (knobs_.knob(name + ".parallel", {1, 0})) st.parallel(fused);
        if (knobs_.knob(name + ".vectorize", {1, 0})) st.vectorize(li);
    }

    Schedule s_;
    std::vector<Tensor> outputs_;
    Knobs& knobs_;
    int lanes_;
};

}  // namespace detail

// The generated space of `outputs` as a template: tune it like a hand-written one.
inline std::function<Schedule(Knobs&)> generated_template(std::vector<Tensor> outputs, Target target = {}) {
    return [outputs = std::move(outputs), target](Knobs& knobs) {
        return detail::Sketch(outputs, target, knobs).run();
    };
}

// A task over `args` (inputs, then outputs, as kiln::build takes them) with the generated space.
inline Task generated_task(std::string name, std::vector<Tensor> args, const Target& target = {}) {
    std::vector<Tensor> outputs;
    for (const Tensor& t : args)
        if (t.op()->kind == OpKind::Compute) outputs.push_back(t);
    return Task{std::move(name), std::move(args), generated_template(outputs, target)};
}

}  // namespace kiln::autotune
