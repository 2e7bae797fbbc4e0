#pragma once
// Lowers one fused group of graph nodes to a kiln schedule: a placeholder per value the group reads,
// each node's compute definition applied in order, and a default schedule chosen by what the group
// holds (a convolution or a dense product gets its kiln::nn schedule with the rest as its epilogue;
// anything else is inlined into its outputs and parallelised).
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "kiln/arith/simplify.hpp"
#include "kiln/autotune/sketch.hpp"
#include "kiln/graph/group.hpp"
#include "kiln/graph/op_registry.hpp"
#include "kiln/graph/ops/elementwise.hpp"
#include "kiln/graph/ops/layout.hpp"
#include "kiln/graph/ops/nn.hpp"
#include "kiln/graph/ops/reduce.hpp"
#include "kiln/graph/ops/transform.hpp"
#include "kiln/lower/inline_compute.hpp"
#include "kiln/nn.hpp"

namespace kiln::graph {

struct GroupSchedule {
    Schedule schedule;
    std::vector<Tensor> args;     // placeholders for the inputs, then the outputs
    std::vector<int> arg_values;  // the graph value behind each argument
};

// A group's compute: a placeholder per value it reads (in0, in1, ...), its nodes' computes (t0, t1, ...)
// and its outputs. Equal groups anywhere in a model give equal text, so they share kernels and records.
struct GroupCompute {
    std::vector<Tensor> outputs;
    std::vector<Tensor> args;     // placeholders for the inputs read, then the outputs
    std::vector<int> arg_values;  // the graph value behind each argument
    bool conv = false, dense = false;
};

namespace detail {

// Kernels see values as kiln tensors of rank 1..6; a scalar is [1].
inline Tensor placeholder_for(const Value& v, size_t k) {
    return placeholder(kiln_shape(v.type.shape), v.type.dtype, "in" + std::to_string(k));
}

// Whether every read of the body that depends on `v` has v itself as its last index: then the lanes of
// v are one contiguous vector load from each input. (A reduction along the rows of a row-major input
// would gather instead, slower than its scalar loop.)
inline bool reads_contiguously_along(const Expr& body, const VarNode* v) {
    bool ok = true;
    post_order_visit(body, [&](const Expr& e) {
        auto* c = e.as<Call>();
        if (!c || c->op != Intrinsic::TensorAccess || c->args.empty() || c->args.back().get() == v) return;
        for (auto& a : c->args) ok &= !uses_var(a, v);
    });
    return ok;
}

// The loop over an output's leading axes that parallelize() shares out among the threads: `dims` axes fused.
struct OuterLoop {
    IterVar loop;
    size_t dims = 0;
};

inline int64_t const_extent(const IterVar& iv) {
    auto* e = as_const_int(iv.dom().extent);
    return e ? *e : int64_t(-1);
}

// The element offset of every tensor read of `body` at one point of `axes`, or nothing when one is not a
// constant there.
inline std::optional<std::vector<int64_t>> read_offsets(const Expr& body, const std::vector<IterVar>& axes,
                                                        const std::vector<int64_t>& point) {
    VarMap at;
    for (size_t d = 0; d < axes.size(); ++d) at[axes[d].var().get()] = make_int(axes[d].var().type(), point[d]);
    std::vector<int64_t> out;
    bool ok = true;
    post_order_visit(body, [&](const Expr& e) {
        auto* c = e.as<Call>();
        if (!ok || !c || c->op != Intrinsic::TensorAccess) return;
        Expr offset = make_int(i64, 0);
        for (size_t d = 0; d < c->args.size(); ++d)
            offset = offset * cast(i64, c->producer->shape[d]) + cast(i64, c->args[d]);
        const Expr folded = arith::simplify(substitute(offset, at));
        const int64_t* v = as_const_int(folded);
        if (v) out.push_back(*v);
        ok = v != nullptr;
    });
    if (!ok) return std::nullopt;
    return out;
}

// Whether fusing axis `outer` with the axes after it (`inner_extent` points, the last one innermost) keeps
// every read one strided run: a step of `outer` moves each read as far as `inner_extent` steps of the last
// axis, at two probe points. A vector across rows of a transposed or re-blocked input would otherwise
// compute its addresses lane by lane, with divisions.
inline bool fuses_linearly(const Expr& body, const std::vector<IterVar>& axes, size_t outer, int64_t inner_extent) {
    for (int64_t base : {0, 1}) {
        std::vector<int64_t> p(axes.size());
        for (size_t d = 0; d < axes.size(); ++d)
            p[d] = std::min<int64_t>(base, std::max<int64_t>(const_extent(axes[d]) - 2, 0));
        const auto here = read_offsets(body, axes, p);
        if (!here) return false;
        auto step = [&](size_t d) -> std::optional<std::vector<int64_t>> {
            auto q = p;
            ++q[d];
            auto there = read_offsets(body, axes, q);
            if (!there) return std::nullopt;
            for (size_t i = 0; i < here->size(); ++i) (*there)[i] -= (*here)[i];
            return there;
        };
        auto so = step(outer), si = step(axes.size() - 1);
        if (!so || !si) return false;
        for (size_t i = 0; i < so->size(); ++i)
            if ((*so)[i] != inner_extent * (*si)[i]) return false;
    }
    return true;
}

// The axis along which a pure layout change (one read, nothing else) reads contiguously while its vectors,
// along the innermost axis, read with a stride: blocking channels, unblocking them, transposing. Tiles of
// `lanes` along it, unrolled around the vector, become L x L blocks that lower/transpose_in_registers.hpp
// reads as contiguous rows and transposes, instead of one gather per vector.
// The vector may span several inner axes fused (rows shorter than a vector, which fuses_linearly has
// checked step evenly); the axis is one of those outside them, before `first_inner`.
inline std::optional<size_t> transposing_axis(const Expr& body, const std::vector<IterVar>& axes, size_t first_inner,
                                              int lanes) {
    int reads = 0;
    post_order_visit(body, [&](const Expr& e) {
        auto* c = e.as<Call>();
        reads += c && c->op == Intrinsic::TensorAccess;
    });
    if (reads != 1 || axes.size() < 2) return std::nullopt;
    std::vector<int64_t> p(axes.size());
    for (size_t d = 0; d < axes.size(); ++d) {
        if (const_extent(axes[d]) < 1) return std::nullopt;
        p[d] = std::min<int64_t>(1, const_extent(axes[d]) - 1);
    }
    const auto here = read_offsets(body, axes, p);
    auto step = [&](size_t d) -> std::optional<int64_t> {
        if (!here || p[d] + 1 >= const_extent(axes[d])) return std::nullopt;
        auto q = p;
        ++q[d];
        auto there = read_offsets(body, axes, q);
        if (!there) return std::nullopt;
        return there->at(0) - here->at(0);
    };
    const auto inner = step(axes.size() - 1);
    if (!inner || *inner == 0 || *inner == 1) return std::nullopt;
    for (size_t d = first_inner; d-- > 0;)
        if (const_extent(axes[d]) >= lanes && step(d) == int64_t(1)) return d;
    return std::nullopt;
}

// Parallel over the fewest leading axes that give at least 64 iterations (each a long run of work: a
// parallel iteration is a call through the thread pool), when the stage has enough work to share;
// vectorised along the innermost axis. That axis is fused with its neighbours while it is shorter than a
// vector (the 3 colours of an image's pixel) and every read stays one strided run across the fused rows;
// otherwise the vector narrows to fit (down to 4 lanes).
// A vector that does not divide its axis ends with one shifted back over the last full width, not a masked
// one: every lane of it is in its row, so its addresses are the simple ones of the full vectors. A reduction
// along contiguous vectors (a pooling window over a channel block) accumulates one vector in registers
// across its whole window before storing it.
inline OuterLoop parallelize(Schedule& s, const OpPtr& op, int lanes) {
    constexpr int64_t kParallelIterations = 64;
    constexpr int kNarrowestVector = 4;
    const auto& ax = op->axis;
    const bool reduction = !op->reduce_axis.empty();
    size_t first_inner = ax.size() - 1;
    int64_t inner = const_extent(ax.back());
    Expr inlined;  // the body with the stages inlined into it, worked out when first needed
    auto body = [&]() -> const Expr& {
        if (!inlined.defined()) {
            inlined = op->body;
            for (auto& st : passes::inline_compute(s))
                if (st.node->op == op) inlined = st.op->body;
        }
        return inlined;
    };
    if (!reduction && inner > 0 && inner < lanes) {
        while (inner < lanes && first_inner > 1 && const_extent(ax[first_inner - 1]) > 0 &&
               fuses_linearly(body(), ax, first_inner - 1, inner))
            inner *= const_extent(ax[--first_inner]);
        while (inner < lanes && lanes > kNarrowestVector) lanes /= 2;
    }
    const bool vectorized = inner >= lanes && (!reduction || reads_contiguously_along(op->body, ax.back().var().get()));
    Tensor acc;
    if (reduction && vectorized) acc = s.cache_write(Tensor(op), "local");

    Stage st = s[op];
    std::vector<IterVar> loops(ax.begin(), ax.end());
    std::vector<int64_t> extents;
    for (auto& a : ax) extents.push_back(const_extent(a));
    std::optional<size_t> rows;  // the transposing axis, tiled by `lanes`
    IterVar row_tile;
    if (vectorized && !reduction) {
        rows = transposing_axis(body(), ax, first_inner, lanes);
        if (rows) {
            const int64_t e = extents[*rows];
            auto [ro, ri] =
                    st.split(ax[*rows], lanes, e % lanes == 0 ? TailStrategy::GuardWithIf : TailStrategy::ShiftInwards);
            st.unroll(ri);
            // The tile moves in, next to the vector's axis, so the outer axes stay adjacent for fusing.
            std::vector<IterVar> order;
            for (size_t d = *rows + 1; d < first_inner; ++d) order.push_back(ax[d]);
            order.push_back(ri);
            st.reorder(order);
            loops[*rows] = ro;
            extents[*rows] = (e + lanes - 1) / lanes;
            row_tile = ri;
        }
    }
    // A reduction into vectors: several outputs accumulate side by side, each vector its own chain. One
    // chain waits on the latency of every max or add (a 3x3 max pool window ran at 4.4 cycles a tap);
    // four to eight keep the vector units busy. The axis just outside the vector gives them, in tiles that
    // unroll so the accumulators are registers, preferably tiles that divide it (no partial tile to compile).
    // The tiles' loop stays serial, out of the parallel one: loop partitioning then splits off the tiles at
    // the image's border, whose windows are clipped, and leaves the others without tests.
    const size_t beside = first_inner - 1;
    const bool chains = acc.defined() && first_inner >= 1 && extents[beside] >= 2;
    IterVar chain_tile_outer;
    if (chains) {
        const int64_t e = extents[beside];
        int64_t tile = std::min<int64_t>(8, e);
        for (int64_t t = tile; t >= 4; --t)
            if (e % t == 0) {
                tile = t;
                break;
            }
        auto [bo, bi] = st.split(ax[beside], tile);
        st.unroll(bi);
        loops[beside] = chain_tile_outer = bo;
        extents[beside] = (e + tile - 1) / tile;
    }
    OuterLoop outer;
    int64_t par = 1;
    while (outer.dims < first_inner && par < kParallelIterations && !(chains && outer.dims == beside)) {
        const int64_t e = extents[outer.dims];
        if (e < 0) break;
        par *= e;
        ++outer.dims;
    }
    // Handing a loop to the other threads and waiting for them costs about 2 us here; a stage of fewer
    // points than this (a transformer's 32x128 activations, a 1x1 map's channels) takes about as long
    // serially, so it stays on the calling thread (each of 20 such kernels of a small transformer
    // encoder ran 1 us faster, 2 threads).
    constexpr int64_t kMinParallelWork = 16384;
    int64_t work = 1;   // capped at the threshold, so the product cannot overflow
    bool known = true;  // an extent not known until run time may be large: share it out
    auto count = [&](const IterVar& iv) {
        const int64_t e = const_extent(iv);
        known &= e >= 0;
        work = std::min(work * std::max<int64_t>(e, 1), kMinParallelWork);
    };
    for (auto& a : ax) count(a);
    for (auto& r : op->reduce_axis) count(r);
    const bool worth_sharing = !known || work >= kMinParallelWork;
    if (outer.dims > 0) {
        outer.loop = loops[0];
        for (size_t d = 1; d < outer.dims; ++d) outer.loop = st.fuse(outer.loop, loops[d]);
        if (par > 1 && worth_sharing) st.parallel(outer.loop);
    }
    if (!vectorized) return outer;
    IterVar v = ax[first_inner];
    for (size_t d = first_inner + 1; d < ax.size(); ++d) v = st.fuse(v, ax[d]);
    auto [xo, xi] = st.split(v, lanes,
                             reduction || inner % lanes == 0 ? TailStrategy::GuardWithIf : TailStrategy::ShiftInwards);
    st.vectorize(xi);
    if (rows) st.reorder({xo, row_tile, xi});
    // A long vector with nothing outside it to share out: its vector blocks go to the threads.
    if (par <= 1 && inner >= 64 * lanes && worth_sharing) st.parallel(xo);
    if (!acc.defined()) return outer;
    Stage cs = s[acc];
    // At the tiles' loop, or at the parallel loop that took it in (its innermost part).
    cs.compute_at(st, !chains ? xo : beside < outer.dims ? outer.loop : chain_tile_outer);
    const auto& cax = acc.op()->axis;
    auto [co, ci] = cs.split(cax.back(), lanes);
    std::vector<IterVar> order;
    for (size_t d = 0; d + 1 < cax.size(); ++d)
        if (!chains || d != beside) order.push_back(cax[d]);
    order.push_back(co);
    for (auto& r : acc.op()->reduce_axis) order.push_back(r);
    if (chains) {
        order.push_back(cax[beside]);
        cs.unroll(cax[beside]);
    }
    order.push_back(ci);
    cs.reorder(order);
    cs.vectorize(ci);
    return outer;
}

// Whether one iteration of `out`'s first `dims` axes needs only the same iteration's part of `op`: op keeps
// out's extent in those dimensions, and every read of op, by `out`, by stages inlined into it or by other
// such reductions, indexes them with the reader's own axis of that position. A reduction must also be one
// value per row (extent 1 in the other dimensions): one with a vector of values per row (a global pool of
// channel blocks) runs faster at the root, accumulating whole vectors. Softmax, LogSoftmax and layer norms
// (the fused and the decomposed form) read their statistics so.
inline bool needed_by_row(const Schedule& s, const OperationNode* op, const OperationNode* out, size_t dims) {
    if (op == out) return true;
    if (op->shape.size() != out->shape.size()) return false;
    for (size_t d = 0; d < op->shape.size(); ++d) {
        auto a = as_const_int(op->shape[d]), b = as_const_int(out->shape[d]);
        if (d < dims ? (!a || !b || *a != *b) : (!op->reduce_axis.empty() && (!a || *a != 1))) return false;
    }
    for (StageNode* c : s.consumers_of(op)) {
        const OperationNode* cop = c->op.get();
        if (c->attach != AttachType::Inline && cop != out && cop->reduce_axis.empty()) return false;
        bool same_row = cop->axis.size() >= dims;
        post_order_visit(cop->body, [&](const Expr& e) {
            auto* call = e.as<Call>();
            if (!call || call->op != Intrinsic::TensorAccess || call->producer.get() != op) return;
            for (size_t d = 0; d < dims && same_row; ++d)
                same_row = call->args[d].get() == cop->axis[d].var().get() ||
                           is_one(op->shape[d]);  // a broadcast read of one row
        });
        if (!same_row || !needed_by_row(s, cop, out, dims)) return false;
    }
    return true;
}

// A reduction computed one row at a time inside the output's loop: serial, and vectorised along its
// innermost reduction axis when that axis reads contiguous vectors (a row's max or sum over the last axis),
// as lanes of partial results (rfactor) folded at the end.
inline void schedule_row_reduction(Schedule& s, StageNode* st, int lanes) {
    const IterVar k = st->op->reduce_axis.back();
    const int64_t n = const_extent(k);
    if (n < 2 * lanes || !reads_contiguously_along(st->op->body, k.var().get())) return;
    auto [ko, ki] = s[st->op].split(k, lanes);
    Tensor partial = s.rfactor(Tensor(st->op), ki);
    Stage ps = s[partial];
    const auto& pax = partial.op()->axis;
    std::vector<IterVar> order(pax.begin() + 1, pax.end());
    for (auto& r : partial.op()->reduce_axis) order.push_back(r);
    order.push_back(pax[0]);
    ps.reorder(order);
    ps.vectorize(pax[0]);
    ps.compute_at(Stage(st, &s), st->op->axis.back());
}

// The default schedule for groups without a kiln::nn kernel: every intermediate that is not a reduction is
// inlined into its readers; outputs are computed at the root, parallel over their outer axes and vectorised
// along the innermost one. A reduction that the output reads row by row (the statistics of a softmax or a
// layer norm) is computed inside the output's parallel loop, one row at a time, so the row is read while it
// is in cache and the whole operator is one pass per row; other reductions are computed at the root.
inline void schedule_generic(Schedule& s, int lanes) {
    std::vector<StageNode*> roots;
    for (auto& st : s.stages()) {
        if (st->op->kind != OpKind::Compute || st->attach != AttachType::Root) continue;
        if (!st->is_output && st->op->reduce_axis.empty())
            s[st->op].compute_inline();
        else
            roots.push_back(st.get());
    }
    StageNode* out = s.outputs().size() == 1 && s.outputs()[0].op()->reduce_axis.empty()
                             ? s.find_stage(s.outputs()[0].op().get())
                             : nullptr;
    OuterLoop rows;
    if (out) rows = parallelize(s, out->op, lanes);
    // Decided before any rfactor below rewrites the readers. compute_at takes a loop of a stage that reads the
    // reduction (through inlined stages); one read only by another reduction stays at the root.
    std::vector<StageNode*> by_row;
    for (StageNode* st : roots) {
        if (st == out || rows.dims == 0 || st->is_output) continue;
        const auto readers = s.consumers_of(st->op.get(), true);
        if (std::find(readers.begin(), readers.end(), out) != readers.end() &&
            needed_by_row(s, st->op.get(), out->op.get(), rows.dims))
            by_row.push_back(st);
    }
    for (StageNode* st : roots) {
        if (st == out) continue;
        if (std::find(by_row.begin(), by_row.end(), st) == by_row.end()) {
            parallelize(s, st->op, lanes);
            continue;
        }
        schedule_row_reduction(s, st, lanes);
        Stage(st, &s).compute_at(s[out->op], rows.loop);
    }
}

// Whether a stage only reads its input along other rows, each row whole and in order (the rows of a
// [b, h, w, K] activation folded into [b*h*w, K] for a product): its readers can read the input in its place
// at the cost of index arithmetic, where computing it is a pass over the whole tensor.
inline bool is_row_view(const OpPtr& op) {
    if (op->axis.empty() || !op->reduce_axis.empty()) return false;
    auto* c = op->body.as<Call>();
    return c && c->op == Intrinsic::TensorAccess && c->producer && c->producer->kind == OpKind::Placeholder &&
           !c->args.empty() && c->args.back().get() == op->axis.back().var().get();
}

// Stages a kiln::nn schedule left untouched at the root: a folded view of rows is read in place, anything
// else (a transposed operand) is computed in parallel.
inline void schedule_leftovers(Schedule& s, int lanes) {
    std::vector<OpPtr> untouched;
    for (auto& st : s.stages())
        if (st->op->kind == OpKind::Compute && st->attach == AttachType::Root && !st->is_output &&
            st->relations.empty() && st->for_kind.empty() && st->op->tag.empty())
            untouched.push_back(st->op);
    for (auto& op : untouched) {
        if (is_row_view(op))
            s[op].compute_inline();
        else
            parallelize(s, op, lanes);
    }
}

// A fused group has one anchor: the convolution or product with its epilogue, as TVM's fusion makes them.
inline void schedule_group_default(Schedule& s, const GroupCompute& c, const Target& target, Knobs* knobs) {
    const int lanes = nn::detail::f32_lanes(target);
    if (c.conv && c.outputs.size() == 1 && nn::detail::find_tagged(c.outputs[0], "conv2d")) {
        nn::schedule_conv2d(s, c.outputs[0], target);
        schedule_leftovers(s, lanes);
    } else if (c.dense && c.outputs.size() == 1 && nn::detail::find_tagged(c.outputs[0], "matmul")) {
        nn::schedule_matmul(s, c.outputs[0], target, knobs);
        schedule_leftovers(s, lanes);
    } else {
        schedule_generic(s, lanes);
    }
}

}  // namespace detail

inline GroupCompute group_compute(const Graph& g, const Group& grp) {
    std::unordered_map<int, Tensor> tensor_of;
    GroupCompute out;
    for (size_t k = 0; k < grp.inputs.size(); ++k) {
        // An empty constant (an empty 'axes' list) only means something to shape inference; no kernel reads it.
        if (g.type_of(grp.inputs[k]).numel() == 0) {
            tensor_of[grp.inputs[k]] = Tensor();
            continue;
        }
        Tensor t = detail::placeholder_for(g.value(grp.inputs[k]), k);
        tensor_of[grp.inputs[k]] = t;
        out.args.push_back(t);
        out.arg_values.push_back(grp.inputs[k]);
    }
    for (size_t k = 0; k < grp.nodes.size(); ++k) {
        const Node& n = g.nodes[grp.nodes[k]];
        const OpDef& d = op_def(n);
        OpCall call{g, n, {}, "t" + std::to_string(k)};
        for (int v : n.inputs) call.in.push_back(v >= 0 ? tensor_of.at(v) : Tensor());
        std::vector<Tensor> res;
        try {
            res = d.compute(call);
        } catch (const InternalError&) { throw; } catch (const Error& e) {
            if (!e.node().empty()) throw;
            detail::fail_node(n, e.what());
        }
        for (size_t i = 0; i < n.outputs.size() && i < res.size(); ++i) tensor_of[n.outputs[i]] = res[i];
        out.conv |= n.op == "Conv" || n.op == "kiln.ConvBlocked";
        out.dense |= n.op == "Gemm" || n.op == "MatMul" || n.op == "kiln.MatMulPacked";
    }
    for (int v : grp.outputs) out.outputs.push_back(tensor_of.at(v));
    // Inputs only a shape depended on (Reshape's target, say) are not read by the kernel.
    std::unordered_set<const OperationNode*> read;
    std::function<void(const OpPtr&)> walk = [&](const OpPtr& op) {
        if (!read.insert(op.get()).second) return;
        for (auto& p : kiln::detail::producers_of(op.get())) walk(p);
    };
    for (auto& t : out.outputs) walk(t.op());
    std::vector<Tensor> args;
    std::vector<int> arg_values;
    for (size_t k = 0; k < out.args.size(); ++k)
        if (read.count(out.args[k].op().get())) {
            args.push_back(out.args[k]);
            arg_values.push_back(out.arg_values[k]);
        }
    out.args = std::move(args);
    out.arg_values = std::move(arg_values);
    for (size_t k = 0; k < out.outputs.size(); ++k) {
        out.args.push_back(out.outputs[k]);
        out.arg_values.push_back(grp.outputs[k]);
    }
    return out;
}

// The default schedule of a group's compute. With `knobs` it is a tuning template (kiln/autotune): the
// knob "generated" picks between the default (value 0, whose own knobs a kiln::nn schedule declares) and
// the space generated from the compute alone (autotune/sketch.hpp); both declare their knobs whichever is
// picked, as a template must.
inline Schedule schedule_group(const GroupCompute& c, const Target& target, Knobs* knobs = nullptr) {
    if (knobs) {
        const bool generated = knobs->knob("generated", {0, 1});
        Schedule s = autotune::generated_template(c.outputs, target)(*knobs);
        if (generated) {
            Schedule ignored(c.outputs);
            detail::schedule_group_default(ignored, c, target, knobs);
            return s;
        }
    }
    Schedule s(c.outputs);
    detail::schedule_group_default(s, c, target, knobs);
    return s;
}

inline GroupSchedule lower_group(const Graph& g, const Group& grp, const Target& target = {}) {
    GroupCompute c = group_compute(g, grp);
    Schedule s = schedule_group(c, target);
    return GroupSchedule{std::move(s), std::move(c.args), std::move(c.arg_values)};
}

}  // namespace kiln::graph
