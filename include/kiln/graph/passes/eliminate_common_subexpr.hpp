#pragma once
// Pass: common-subexpression elimination. Two nodes of the same operator, attributes and inputs compute
// the same values; the later one goes and its readers read the first. Equal constants count as the same
// input, so two branches that each reshape by [1, -1] with their own initializer still merge.
#include <map>

#include "kiln/graph/passes/dead_code.hpp"

namespace kiln::graph::passes {

inline Graph eliminate_common_subexpr(const Graph& g) {
    Graph out = g;
    std::vector<bool> keep(g.nodes.size(), true), is_output(g.values.size(), false);
    for (int v : g.outputs) is_output[v] = true;
    std::vector<int> forward(g.values.size());
    for (size_t v = 0; v < forward.size(); ++v) forward[v] = static_cast<int>(v);
    // Constants by content: the first of each set of equal ones stands for all.
    std::vector<int> constants;
    for (size_t v = 0; v < g.values.size(); ++v) {
        if (!g.values[v].is_constant() || is_output[v]) continue;
        for (int c : constants)
            if (graph::detail::buffers_equal(*g.values[c].data, *g.values[v].data)) {
                forward[v] = c;
                break;
            }
        if (forward[v] == static_cast<int>(v)) constants.push_back(static_cast<int>(v));
    }
    std::map<std::pair<std::string, std::vector<int>>, std::vector<int>> seen;  // (op, inputs) -> nodes
    for (size_t n = 0; n < out.nodes.size(); ++n) {
        Node& nd = out.nodes[n];
        for (auto& v : nd.inputs)
            if (v >= 0) v = forward[v];
        auto& same = seen[{nd.op, nd.inputs}];
        bool merged = false;
        for (int m : same) {
            const Node& first = out.nodes[m];
            if (!(first.attrs == nd.attrs) || first.outputs.size() != nd.outputs.size()) continue;
            bool outputs_free = true;
            for (int v : nd.outputs) outputs_free = outputs_free && !is_output[v];
            if (!outputs_free) continue;
            for (size_t i = 0; i < nd.outputs.size(); ++i) forward[nd.outputs[i]] = first.outputs[i];
            keep[n] = false;
            merged = true;
            break;
        }
        if (!merged) same.push_back(static_cast<int>(n));
    }
    return dead_code_elimination(rebuild(out, keep));
}

}  // namespace kiln::graph::passes
