#pragma once
// Small graphs built by hand in tests: nodes with inferred types (constants from test::random_buffer).
#include <string>
#include <vector>

#include <kiln/graph.hpp>

#include "helpers.hpp"

namespace test {

// Adds a node named after its op and position; returns its first output.
inline int node(kiln::graph::Graph& g, const std::string& op, std::vector<int> inputs, kiln::graph::Attrs attrs = {}) {
    kiln::graph::Node n{op + std::to_string(g.nodes.size()), op, std::move(inputs), {}, std::move(attrs)};
    const int id = g.add_node(n, kiln::graph::infer_types(g, n));
    return g.nodes[id].outputs[0];
}

}  // namespace test
