#pragma once
// The memory plan of an executable: inputs, outputs and constants in buffers of their own, every other
// value at an offset of one arena, placed first-fit by its live range over the steps (kernel calls) that
// read or write it, the largest first. graph::compile lays its executable out by it.
#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "kiln/graph/graph.hpp"

namespace kiln::graph::detail {

// First-fit placement of intermediate values in one arena by their live ranges [first write, last read].
struct Interval {
    int value;
    int begin, end;
    int64_t bytes;
    int64_t offset = -1;
};
inline int64_t plan_arena(std::vector<Interval>& iv) {
    std::sort(iv.begin(), iv.end(), [](const Interval& a, const Interval& b) { return a.bytes > b.bytes; });
    int64_t peak = 0;
    for (size_t i = 0; i < iv.size(); ++i) {
        std::vector<std::pair<int64_t, int64_t>> busy;
        for (size_t j = 0; j < i; ++j)
            if (iv[j].begin <= iv[i].end && iv[i].begin <= iv[j].end)
                busy.push_back({iv[j].offset, iv[j].offset + iv[j].bytes});
        std::sort(busy.begin(), busy.end());
        int64_t at = 0;
        for (auto& [lo, hi] : busy) {
            if (at + iv[i].bytes <= lo) break;
            at = std::max(at, hi);
        }
        iv[i].offset = at;
        peak = std::max(peak, at + iv[i].bytes);
    }
    return peak;
}

// Where each value of an executable lives: inputs, outputs and constants in buffers of their own, every other
// value at an offset of one arena, placed by its live range over the steps that read or write it.
struct MemoryPlan {
    int64_t arena_bytes = 0;
    std::unordered_map<int, int64_t> offsets;  // value -> byte offset in the arena
    static bool own_buffer(const Graph& g, int v) {
        return std::find(g.inputs.begin(), g.inputs.end(), v) != g.inputs.end() ||
               std::find(g.outputs.begin(), g.outputs.end(), v) != g.outputs.end();
    }
};

// `step_values[k]`: the values step k reads and writes, in the order of the steps.
inline MemoryPlan plan_memory(const Graph& g, const std::vector<std::vector<int>>& step_values) {
    std::unordered_map<int, Interval> live;
    for (size_t k = 0; k < step_values.size(); ++k)
        for (int v : step_values[k]) {
            if (g.value(v).is_constant() || MemoryPlan::own_buffer(g, v)) continue;
            const int64_t bytes = (g.type_of(v).numel() * g.type_of(v).dtype.bytes() + 63) / 64 * 64;
            auto it = live.find(v);
            if (it == live.end())
                live.emplace(v, Interval{v, static_cast<int>(k), static_cast<int>(k), bytes});
            else
                it->second.end = static_cast<int>(k);
        }
    std::vector<Interval> iv;
    for (auto& [v, i] : live) iv.push_back(i);
    MemoryPlan plan;
    plan.arena_bytes = plan_arena(iv);
    for (auto& i : iv) plan.offsets[i.value] = i.offset;
    return plan;
}

}  // namespace kiln::graph::detail
