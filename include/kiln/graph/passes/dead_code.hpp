#pragma once
// Pass: dead-code elimination. Keeps the nodes some graph output depends on, and the values they use.
#include "kiln/graph/graph.hpp"

namespace kiln::graph::passes {

// Rebuilds `g` from the nodes in `keep` (in their order), renumbering values. Shared by passes that drop nodes.
inline Graph rebuild(const Graph& g, const std::vector<bool>& keep) {
    Graph out;
    out.opset = g.opset;
    std::vector<int> map(g.values.size(), -1);
    auto value = [&](int v) {
        if (v < 0) return -1;
        if (map[v] < 0) {
            Value nv = g.values[v];
            nv.producer = -1;
            out.values.push_back(nv);
            map[v] = static_cast<int>(out.values.size()) - 1;
        }
        return map[v];
    };
    for (int v : g.inputs) out.inputs.push_back(value(v));
    for (size_t n = 0; n < g.nodes.size(); ++n) {
        if (!keep[n]) continue;
        Node nd = g.nodes[n];
        for (auto& v : nd.inputs) v = value(v);
        for (auto& v : nd.outputs) {
            v = value(v);
            out.values[v].producer = static_cast<int>(out.nodes.size());
        }
        out.nodes.push_back(std::move(nd));
    }
    for (int v : g.outputs) out.outputs.push_back(value(v));
    return out;
}

inline Graph dead_code_elimination(const Graph& g) {
    std::vector<bool> live_value(g.values.size(), false), keep(g.nodes.size(), false);
    for (int v : g.outputs) live_value[v] = true;
    for (size_t n = g.nodes.size(); n-- > 0;) {
        for (int v : g.nodes[n].outputs) keep[n] = keep[n] || live_value[v];
        if (keep[n])
            for (int v : g.nodes[n].inputs)
                if (v >= 0) live_value[v] = true;
    }
    return rebuild(g, keep);
}

}  // namespace kiln::graph::passes
