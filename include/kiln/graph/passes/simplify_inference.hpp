#pragma once
// Pass: SimplifyInference. BatchNormalization in inference is a per-channel scale and shift: it becomes
// Mul and Add by constants, which fold_scale_axis then folds into a preceding convolution, and fusion
// merges with their neighbours anywhere else.
#include <cmath>

#include "kiln/graph/passes/dead_code.hpp"

namespace kiln::graph::passes {

namespace detail {

inline std::vector<float> floats_of(const Buffer& b) {
    std::vector<float> v(static_cast<size_t>(b.size()));
    if (b.dtype() == f32)
        std::memcpy(v.data(), b.data(), v.size() * sizeof(float));
    else if (b.dtype() == f64)
        for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(static_cast<const double*>(b.data())[i]);
    else
        kiln::detail::internal_fail("simplify_inference: expected a float constant");
    return v;
}

inline Buffer buffer_of(const std::vector<float>& v, std::vector<int64_t> shape) {
    Buffer b(std::move(shape), f32);
    std::memcpy(b.data(), v.data(), v.size() * sizeof(float));
    return b;
}

}  // namespace detail

inline Graph simplify_inference(const Graph& g) {
    Graph out = g;
    std::vector<bool> keep(g.nodes.size(), true);
    for (size_t n = 0; n < out.nodes.size(); ++n) {
        Node& bn = out.nodes[n];
        if (bn.op != "BatchNormalization") continue;
        const Buffer *sc = out.constant_input(bn, 1), *bi = out.constant_input(bn, 2), *mu = out.constant_input(bn, 3),
                     *var = out.constant_input(bn, 4);
        if (!sc || !bi || !mu || !var || out.type_of(bn.inputs[0]).dtype != f32) continue;
        const double eps = bn.attrs.get_float("epsilon", 1e-5);
        auto s = detail::floats_of(*sc), b = detail::floats_of(*bi), m = detail::floats_of(*mu),
             v = detail::floats_of(*var);
        const size_t C = s.size();
        std::vector<float> scale(C), shift(C);
        for (size_t c = 0; c < C; ++c) {
            scale[c] = static_cast<float>(s[c] / std::sqrt(static_cast<double>(v[c]) + eps));
            shift[c] = b[c] - m[c] * scale[c];
        }
        const int x = bn.inputs[0];
        // x * scale + shift, with scale and shift shaped [C, 1, ...] to broadcast along axis 1.
        const size_t r = out.type_of(x).rank();
        std::vector<int64_t> cshape{static_cast<int64_t>(C)};
        for (size_t d = 2; d < r; ++d) cshape.push_back(1);
        const int sv = out.add_constant(bn.label() + "_scale", detail::buffer_of(scale, cshape));
        const int hv = out.add_constant(bn.label() + "_shift", detail::buffer_of(shift, cshape));
        const TensorType t = out.type_of(x);
        Node mul{bn.label() + "_mul", "Mul", {x, sv}, {}, {}};
        const int mid = out.add_value(bn.label() + "_scaled", t);
        mul.outputs = {mid};
        Node add{bn.label() + "_add", "Add", {mid, hv}, {bn.outputs[0]}, {}};
        // Replace the node in place by Mul, and append Add right after in a rebuilt order below.
        bn = mul;
        out.values[mid].producer = static_cast<int>(n);
        out.nodes.push_back(add);
        out.values[add.outputs[0]].producer = static_cast<int>(out.nodes.size()) - 1;
        keep.push_back(true);
    }
    // Appended Add nodes must come right after their Mul: restore topological order.
    std::vector<int> order;
    std::vector<bool> placed(out.nodes.size(), false);
    std::vector<std::vector<int>> after(out.nodes.size());
    for (size_t n = g.nodes.size(); n < out.nodes.size(); ++n)
        after[out.values[out.nodes[n].inputs[0]].producer].push_back(static_cast<int>(n));
    for (size_t n = 0; n < g.nodes.size(); ++n) {
        order.push_back(static_cast<int>(n));
        for (int a : after[n]) order.push_back(a);
    }
    Graph sorted = out;
    sorted.nodes.clear();
    std::vector<bool> keep_sorted;
    for (int n : order) {
        sorted.nodes.push_back(out.nodes[n]);
        keep_sorted.push_back(keep[n]);
    }
    for (size_t n = 0; n < sorted.nodes.size(); ++n)
        for (int v : sorted.nodes[n].outputs) sorted.values[v].producer = static_cast<int>(n);
    return rebuild(sorted, keep_sorted);
}

}  // namespace kiln::graph::passes
