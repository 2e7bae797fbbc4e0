#pragma once
// Pass: constant folding. A node whose inputs are all constants is evaluated once, at compile time,
// and its outputs become constants. The evaluator is passed in (graph/compile.hpp runs the node as a
// kiln kernel), so this header stays free of the backend.
#include <functional>

#include "kiln/graph/passes/dead_code.hpp"

namespace kiln::graph::passes {

using NodeEvaluator = std::function<std::vector<Buffer>(const Graph&, const Node&)>;

inline Graph fold_constant(const Graph& g, const NodeEvaluator& eval) {
    Graph out = g;
    std::vector<bool> keep(g.nodes.size(), true);
    for (size_t n = 0; n < out.nodes.size(); ++n) {
        const Node& nd = out.nodes[n];
        bool all_const = !nd.inputs.empty();
        for (int v : nd.inputs) all_const = all_const && (v < 0 || out.values[v].is_constant());
        if (!all_const) continue;
        auto results = eval(out, nd);
        for (size_t i = 0; i < nd.outputs.size(); ++i) {
            out.values[nd.outputs[i]].data = results.at(i);
            out.values[nd.outputs[i]].producer = -1;
        }
        keep[n] = false;
    }
    return dead_code_elimination(rebuild(out, keep));
}

}  // namespace kiln::graph::passes
