#pragma once
// A fused group: the nodes one kernel computes. fuse_ops makes them, lower_group schedules them, and an
// Executable keeps them for dumps and profiles.
#include <string>
#include <vector>

namespace kiln::graph {

// Nodes computed by one kernel, in topological order, with the values it reads and writes.
struct Group {
    std::vector<int> nodes;
    std::vector<int> inputs;   // values read from outside the group (graph inputs, constants, other groups)
    std::vector<int> outputs;  // values read outside the group or returned by the graph
    std::string name;          // for profiles and dumps: the op types of its nodes, joined by '_'
};

}  // namespace kiln::graph
