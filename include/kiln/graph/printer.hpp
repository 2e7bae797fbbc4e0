#pragma once
// The graph as text (one line per node, like Relay's printer) and as Graphviz dot, with fused groups
// drawn as clusters.
#include <sstream>

#include "kiln/graph/op_registry.hpp"

namespace kiln::graph {

struct Group;

namespace detail {
inline std::string attr_str(const AttrValue& v) {
    std::ostringstream os;
    std::visit(
            [&](const auto& a) {
                using T = std::decay_t<decltype(a)>;
                if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, double>)
                    os << a;
                else if constexpr (std::is_same_v<T, std::string>)
                    os << '"' << a << '"';
                else if constexpr (std::is_same_v<T, Buffer>)
                    os << "tensor" << shape_str(a.shape());
                else {
                    os << "[";
                    for (size_t i = 0; i < a.size(); ++i) os << (i ? ", " : "") << a[i];
                    os << "]";
                }
            },
            v);
    return os.str();
}
inline std::string value_ref(const Graph& g, int v) {
    if (v < 0) return "_";
    return "%" + g.value(v).name;
}
}  // namespace detail

inline std::string to_text(const Graph& g) {
    std::ostringstream os;
    os << "graph(";
    for (size_t i = 0; i < g.inputs.size(); ++i)
        os << (i ? ", " : "") << detail::value_ref(g, g.inputs[i]) << ": " << g.type_of(g.inputs[i]).str();
    os << ") {\n";
    for (auto& n : g.nodes) {
        os << "  ";
        for (size_t i = 0; i < n.outputs.size(); ++i) os << (i ? ", " : "") << detail::value_ref(g, n.outputs[i]);
        os << " = " << n.op << "(";
        for (size_t i = 0; i < n.inputs.size(); ++i) {
            os << (i ? ", " : "") << detail::value_ref(g, n.inputs[i]);
            if (n.inputs[i] >= 0 && g.value(n.inputs[i]).is_constant()) os << " (const)";
        }
        for (auto& [k, v] : n.attrs.all()) os << ", " << k << "=" << detail::attr_str(v);
        os << ")  // ";
        for (size_t i = 0; i < n.outputs.size(); ++i) os << (i ? ", " : "") << g.type_of(n.outputs[i]).str();
        os << "\n";
    }
    os << "  return ";
    for (size_t i = 0; i < g.outputs.size(); ++i) os << (i ? ", " : "") << detail::value_ref(g, g.outputs[i]);
    os << "\n}\n";
    return os.str();
}

// Graphviz: nodes are operators, edges carry the tensor types; `groups` (node ids per group) become clusters.
inline std::string to_dot(const Graph& g, const std::vector<std::vector<int>>& groups = {}) {
    std::ostringstream os;
    os << "digraph kiln {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n";
    for (size_t i = 0; i < g.inputs.size(); ++i)
        os << "  in" << g.inputs[i] << " [shape=ellipse, label=\"" << g.value(g.inputs[i]).name << "\\n"
           << g.type_of(g.inputs[i]).str() << "\"];\n";
    auto node_line = [&](size_t n) {
        os << "    n" << n << " [label=\"" << g.nodes[n].op << "\\n" << g.nodes[n].label() << "\"];\n";
    };
    std::vector<bool> drawn(g.nodes.size(), false);
    for (size_t k = 0; k < groups.size(); ++k) {
        os << "  subgraph cluster_" << k << " {\n    style=rounded; color=blue; label=\"kernel " << k << "\";\n";
        for (int n : groups[k]) {
            node_line(static_cast<size_t>(n));
            drawn[n] = true;
        }
        os << "  }\n";
    }
    for (size_t n = 0; n < g.nodes.size(); ++n)
        if (!drawn[n]) node_line(n);
    for (size_t n = 0; n < g.nodes.size(); ++n)
        for (int v : g.nodes[n].inputs) {
            if (v < 0 || g.value(v).is_constant()) continue;
            const int p = g.value(v).producer;
            os << "  " << (p >= 0 ? "n" + std::to_string(p) : "in" + std::to_string(v)) << " -> n" << n << " [label=\""
               << g.type_of(v).str() << "\"];\n";
        }
    for (size_t i = 0; i < g.outputs.size(); ++i) {
        const int v = g.outputs[i];
        os << "  out" << i << " [shape=ellipse, label=\"" << g.value(v).name << "\"];\n";
        os << "  " << (g.value(v).producer >= 0 ? "n" + std::to_string(g.value(v).producer) : "in" + std::to_string(v))
           << " -> out" << i << ";\n";
    }
    os << "}\n";
    return os.str();
}

}  // namespace kiln::graph
