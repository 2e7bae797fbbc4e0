#pragma once
// Pass: constant folding. A node whose inputs are all constants is evaluated once, at compile time,
// and its outputs become constants. The nodes fold in waves: each wave is every node whose inputs are
// constant by then, so the evaluator can compile a wave's kernels side by side. The evaluator is passed
// in (graph/compile.hpp runs each node as a kiln kernel), so this header stays free of the backend.
#include <functional>

#include "kiln/graph/passes/dead_code.hpp"

namespace kiln::graph::passes {

// The outputs of each of `nodes` (indices into g.nodes), in node output order.
using NodesEvaluator = std::function<std::vector<std::vector<Buffer>>(const Graph& g, const std::vector<int>& nodes)>;

inline Graph fold_constant(const Graph& g, const NodesEvaluator& eval) {
    Graph out = g;
    std::vector<bool> keep(g.nodes.size(), true);
    for (;;) {
        std::vector<int> wave;
        for (size_t n = 0; n < out.nodes.size(); ++n) {
            const Node& nd = out.nodes[n];
            bool all_const = keep[n] && !nd.inputs.empty();
            for (int v : nd.inputs) all_const = all_const && (v < 0 || out.values[v].is_constant());
            if (all_const) wave.push_back(static_cast<int>(n));
        }
        if (wave.empty()) break;
        const auto results = eval(out, wave);
        for (size_t w = 0; w < wave.size(); ++w) {
            const Node& nd = out.nodes[wave[w]];
            for (size_t i = 0; i < nd.outputs.size(); ++i) {
                out.values[nd.outputs[i]].data = results.at(w).at(i);
                out.values[nd.outputs[i]].producer = -1;
            }
            keep[wave[w]] = false;
        }
    }
    return dead_code_elimination(rebuild(out, keep));
}

}  // namespace kiln::graph::passes
