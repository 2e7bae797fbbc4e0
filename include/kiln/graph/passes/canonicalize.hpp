#pragma once
// Pass: canonicalisation. Rewrites a few forms into the one the kernels and the later passes expect:
//   - Identity, and Dropout in inference, disappear (their readers read the input);
//   - Gemm with a constant B and transB = 1 (how PyTorch exports nn.Linear) gets B transposed once, at
//     compile time, so the kernel reads it row-major instead of packing it on every call.
#include "kiln/graph/passes/dead_code.hpp"

namespace kiln::graph::passes {

inline Graph canonicalize(const Graph& g) {
    Graph out = g;
    std::vector<bool> keep(g.nodes.size(), true), is_output(g.values.size(), false);
    for (int v : g.outputs) is_output[v] = true;
    std::vector<int> forward(g.values.size());
    for (size_t v = 0; v < forward.size(); ++v) forward[v] = static_cast<int>(v);
    for (size_t n = 0; n < out.nodes.size(); ++n) {
        Node& nd = out.nodes[n];
        for (auto& v : nd.inputs)
            if (v >= 0) v = forward[v];
        const bool pass_through =
                nd.op == "Identity" || (nd.op == "Dropout" && nd.outputs.size() == 1 && nd.inputs.size() == 1);
        if (pass_through && !is_output[nd.outputs[0]]) {
            forward[nd.outputs[0]] = nd.inputs[0];
            keep[n] = false;
            continue;
        }
        if (nd.op == "Gemm" && nd.attrs.get_int("transB", 0) && out.constant_input(nd, 1) &&
            out.type_of(nd.inputs[1]).rank() == 2) {
            const Buffer& B = *out.constant_input(nd, 1);
            const int64_t r = B.shape()[0], c = B.shape()[1], bytes = B.dtype().bytes();
            Buffer T({c, r}, B.dtype());
            for (int64_t i = 0; i < r; ++i)
                for (int64_t j = 0; j < c; ++j)
                    std::memcpy(static_cast<char*>(T.data()) + (j * r + i) * bytes,
                                static_cast<const char*>(B.data()) + (i * c + j) * bytes, static_cast<size_t>(bytes));
            nd.inputs[1] = out.add_constant(out.values[nd.inputs[1]].name + "_t", std::move(T));
            nd.attrs.erase("transB");
        }
    }
    return dead_code_elimination(rebuild(out, keep));
}

}  // namespace kiln::graph::passes
