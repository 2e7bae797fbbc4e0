#pragma once
// Pass: FoldScaleAxis. A convolution followed by a multiplication or an addition by a constant per output
// channel (what SimplifyInference makes of a BatchNormalization, or a model's own scale and shift) folds
// into the convolution's weight and bias: conv(x, W) * s + t = conv(x, W * s) + t, computed once here.
#include "kiln/graph/passes/simplify_inference.hpp"

namespace kiln::graph::passes {

namespace detail {

// The per-channel values of a constant that broadcasts along axis 1 of a rank-`rank` result with `C`
// channels ([C, 1, 1], [1, C, 1, 1], a scalar, ...), or nothing when it varies along another axis.
inline std::optional<std::vector<float>> per_channel(const Buffer& b, size_t rank, int64_t C) {
    if (b.dtype() != f32 || b.shape().size() > rank) return std::nullopt;
    const size_t off = rank - b.shape().size();
    for (size_t d = 0; d < b.shape().size(); ++d) {
        const int64_t n = b.shape()[d];
        if (n != 1 && !(d + off == 1 && n == C)) return std::nullopt;
    }
    auto v = floats_of(b);
    if (v.size() == 1) v.assign(static_cast<size_t>(C), v[0]);
    return v;
}

}  // namespace detail

inline Graph fold_scale_axis(const Graph& g) {
    Graph out = g;
    std::vector<bool> keep(g.nodes.size(), true), is_output(g.values.size(), false);
    for (int v : g.outputs) is_output[v] = true;
    auto uses = g.use_counts();
    for (size_t n = 0; n < out.nodes.size(); ++n) {
        Node& op = out.nodes[n];
        if ((op.op != "Mul" && op.op != "Add") || op.inputs.size() != 2) continue;
        // The convolution may be either operand.
        for (int side = 0; side < 2; ++side) {
            const int x = op.inputs[side];
            const int p = out.values[x].producer;
            const Buffer* k = out.constant_input(op, 1 - side);
            if (p < 0 || !k || out.nodes[p].op != "Conv" || uses[x] != 1 || is_output[x]) continue;
            Node& conv = out.nodes[p];
            const bool has_bias = conv.inputs.size() > 2 && conv.inputs[2] >= 0;
            const Buffer* W = out.constant_input(conv, 1);
            if (!W || W->dtype() != f32 || (has_bias && !out.constant_input(conv, 2))) continue;
            const TensorType& t = out.type_of(x);
            if (out.type_of(op.outputs[0]).shape != t.shape) continue;
            const int64_t C = t.shape[1];
            auto c = detail::per_channel(*k, t.rank(), C);
            if (!c) continue;
            std::vector<float> bias = has_bias ? detail::floats_of(*out.constant_input(conv, 2))
                                               : std::vector<float>(static_cast<size_t>(C), 0.f);
            if (op.op == "Mul") {
                auto w = detail::floats_of(*W);
                const size_t per = w.size() / static_cast<size_t>(C);
                for (size_t ch = 0; ch < static_cast<size_t>(C); ++ch) {
                    for (size_t i = 0; i < per; ++i) w[ch * per + i] *= (*c)[ch];
                    bias[ch] *= (*c)[ch];
                }
                conv.inputs[1] =
                        out.add_constant(out.values[conv.inputs[1]].name + "_scaled", detail::buffer_of(w, W->shape()));
            } else {
                for (size_t ch = 0; ch < static_cast<size_t>(C); ++ch) bias[ch] += (*c)[ch];
            }
            conv.inputs.resize(3);
            conv.inputs[2] = out.add_constant(conv.label() + "_bias_folded", detail::buffer_of(bias, {C}));
            // The convolution now computes the Mul's (or Add's) result.
            const int y = op.outputs[0];
            conv.outputs[0] = y;
            out.values[y].producer = p;
            keep[n] = false;
            uses = out.use_counts();
            break;
        }
    }
    return dead_code_elimination(rebuild(out, keep));
}

}  // namespace kiln::graph::passes
