#pragma once
// Pass: operator fusion with TVM's pattern rules. Each node starts as its own group; walking in
// topological order, a node joins the group of the producer of one of its inputs when
//   - it is elementwise or broadcast and that group is injective, a reduction, or a convolution / dense
//     product / pool (its epilogue), with the same output shape;
//   - it is injective and that group is injective;
//   - it is a reduction and that group is injective (a reduction with its injective inputs);
// and the value between them has no other reader and is not a graph output, so every group computes
// its nodes once and writes only what others read. A value with several readers joins them too when they
// form a diamond that closes inside the group: chains of elementwise nodes from every reader meeting in
// one node (SiLU's x * sigmoid(x), GELU's x * (1 + erf(x / sqrt 2)) / 2), as TVM's post-dominator
// rule fuses them.
#include "kiln/graph/lower_group.hpp"

namespace kiln::graph::passes {

// One group per node: what opt level 0 runs.
inline std::vector<Group> no_fusion(const Graph& g);
inline std::vector<Group> fuse_ops(const Graph& g);

namespace detail {

inline std::string group_name(const Graph& g, const std::vector<int>& nodes) {
    std::string s;
    for (int n : nodes) s += (s.empty() ? "" : "_") + g.nodes[n].op;
    return s;
}

// Fills in the values each group reads and writes.
inline std::vector<Group> finish_groups(const Graph& g, const std::vector<std::vector<int>>& members) {
    std::vector<int> group_of(g.nodes.size(), -1);
    for (size_t k = 0; k < members.size(); ++k)
        for (int n : members[k]) group_of[n] = static_cast<int>(k);
    std::vector<bool> is_output(g.values.size(), false);
    for (int v : g.outputs) is_output[v] = true;
    std::vector<bool> read_outside(g.values.size(), false);
    for (size_t n = 0; n < g.nodes.size(); ++n)
        for (int v : g.nodes[n].inputs)
            if (v >= 0 && (g.values[v].producer < 0 || group_of[g.values[v].producer] != group_of[n]))
                read_outside[v] = true;
    std::vector<Group> out;
    for (auto& m : members) {
        if (m.empty()) continue;
        Group grp;
        grp.nodes = m;
        std::sort(grp.nodes.begin(), grp.nodes.end());
        grp.name = group_name(g, grp.nodes);
        std::vector<bool> seen(g.values.size(), false);
        for (int n : grp.nodes) {
            for (int v : g.nodes[n].inputs) {
                if (v < 0 || seen[v]) continue;
                const int p = g.values[v].producer;
                if (p < 0 || group_of[p] != group_of[n]) {
                    seen[v] = true;
                    grp.inputs.push_back(v);
                }
            }
            for (int v : g.nodes[n].outputs)
                if (is_output[v] || read_outside[v]) grp.outputs.push_back(v);
        }
        out.push_back(std::move(grp));
    }
    // Groups run in an order where each follows the groups it reads from (Kahn's algorithm).
    std::vector<int> gid(g.nodes.size(), -1);
    for (size_t k = 0; k < out.size(); ++k)
        for (int n : out[k].nodes) gid[n] = static_cast<int>(k);
    std::vector<std::vector<int>> next(out.size());
    std::vector<int> pending(out.size(), 0);
    for (size_t k = 0; k < out.size(); ++k) {
        std::vector<int> deps;
        for (int v : out[k].inputs)
            if (g.values[v].producer >= 0) deps.push_back(gid[g.values[v].producer]);
        std::sort(deps.begin(), deps.end());
        deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
        for (int d : deps) next[d].push_back(static_cast<int>(k));
        pending[k] = static_cast<int>(deps.size());
    }
    std::vector<Group> sorted;
    std::vector<int> ready;
    for (size_t k = out.size(); k-- > 0;)
        if (!pending[k]) ready.push_back(static_cast<int>(k));
    while (!ready.empty()) {
        const int k = ready.back();
        ready.pop_back();
        sorted.push_back(out[k]);
        for (size_t i = next[k].size(); i-- > 0;)
            if (--pending[next[k][i]] == 0) ready.push_back(next[k][i]);
    }
    if (sorted.size() != out.size()) kiln::detail::internal_fail("fuse_ops: the groups form a cycle");
    return sorted;
}

inline bool can_join(OpPattern node, OpPattern group, bool same_shape) {
    switch (node) {
        case OpPattern::ElemWise:
        case OpPattern::Broadcast:
            if (group <= OpPattern::Injective || group == OpPattern::CommReduce) return true;
            return group == OpPattern::OutEWiseFusable && same_shape;
        case OpPattern::Injective: return group <= OpPattern::Injective;
        case OpPattern::CommReduce: return group <= OpPattern::Injective;
        default: return false;
    }
}

}  // namespace detail

inline std::vector<Group> no_fusion(const Graph& g) {
    std::vector<std::vector<int>> m;
    for (size_t n = 0; n < g.nodes.size(); ++n) m.push_back({static_cast<int>(n)});
    return detail::finish_groups(g, m);
}

inline std::vector<Group> fuse_ops(const Graph& g) {
    const auto uses = g.use_counts();
    std::vector<bool> is_output(g.values.size(), false);
    for (int v : g.outputs) is_output[v] = true;
    std::vector<std::vector<int>> members;
    std::vector<OpPattern> pattern;  // the group's strongest pattern
    std::vector<int> group_of(g.nodes.size(), -1);
    std::vector<std::vector<int>> readers(g.values.size());
    for (size_t n = 0; n < g.nodes.size(); ++n)
        for (int v : g.nodes[n].inputs)
            if (v >= 0) readers[v].push_back(static_cast<int>(n));
    // Nodes that joined a group on the promise that the rest of their diamond joins it too: their reads
    // of the group's values are not reads from outside.
    std::vector<int> promised_to(g.nodes.size(), -1);
    auto reads_outside = [&](int v, int gp, size_t joining) {
        for (int r : readers[v])
            if (group_of[r] != gp && static_cast<size_t>(r) != joining && promised_to[r] != gp) return true;
        return false;
    };
    // The elementwise chains from every reader of v, each value on them read once, meeting in one node:
    // every node of them, or nothing when they do not close within a few steps.
    constexpr size_t kMaxChain = 8;
    auto diamond = [&](int v) -> std::vector<int> {
        std::vector<std::vector<int>> chains;
        for (int r : readers[v]) {
            if (!chains.empty() && chains.back().front() == r) continue;  // a node reading v twice
            std::vector<int> chain{r};
            for (int cur = r; chain.size() < kMaxChain;) {
                const Node& c = g.nodes[cur];
                if (op_def(c).pattern > OpPattern::Broadcast || c.outputs.size() != 1) break;
                const int o = c.outputs[0];
                if (is_output[o] || readers[o].size() != 1) break;
                cur = readers[o][0];
                chain.push_back(cur);
            }
            chains.push_back(std::move(chain));
        }
        if (chains.size() < 2) return {};
        for (size_t i = 0; i < chains[0].size(); ++i) {
            const int sink = chains[0][i];
            std::vector<int> nodes;
            bool everywhere = true;
            for (auto& ch : chains) {
                auto at = std::find(ch.begin(), ch.end(), sink);
                if (at == ch.end()) {
                    everywhere = false;
                    break;
                }
                nodes.insert(nodes.end(), ch.begin(), at);
            }
            if (!everywhere) continue;
            nodes.push_back(sink);
            for (int m : nodes)
                if (op_def(g.nodes[m]).pattern > OpPattern::Broadcast || g.nodes[m].outputs.size() != 1) return {};
            return nodes;
        }
        return {};
    };
    for (size_t n = 0; n < g.nodes.size(); ++n) {
        const Node& nd = g.nodes[n];
        const OpPattern p = op_def(nd).pattern;
        int join = -1;
        // A reduction takes in its injective producers, which may be several groups: it joins the first and
        // then absorbs the others' single-reader chains below.
        for (int v : nd.inputs) {
            if (v < 0 || g.values[v].producer < 0 || is_output[v]) continue;
            const int gp = group_of[g.values[v].producer];
            const bool same_shape = g.type_of(v).shape == g.type_of(nd.outputs[0]).shape;
            if (g.values[v].is_constant() || !detail::can_join(p, pattern[gp], same_shape)) continue;
            std::vector<int> closes;  // the rest of this node's diamond, when v has other readers
            if (uses[v] != 1 && promised_to[n] != gp) {
                closes = diamond(v);
                bool fits = std::find(closes.begin(), closes.end(), static_cast<int>(n)) != closes.end();
                for (int m : closes)
                    fits &= detail::can_join(op_def(g.nodes[m]).pattern, pattern[gp],
                                             g.type_of(g.nodes[m].outputs[0]).shape == g.type_of(v).shape);
                if (!fits) continue;
            }
            // Join only a group whose only output is this value: other groups may depend on the rest.
            bool sole = true;
            for (int m : members[gp])
                for (int o : g.nodes[m].outputs)
                    if (o != v && (is_output[o] || reads_outside(o, gp, n))) sole = false;
            if (!sole) continue;
            for (int m : closes) promised_to[m] = gp;
            join = gp;
            // The group this node's diamond was promised to closes it; an anchored group (a convolution, a
            // product) is the better home for an epilogue.
            if (promised_to[n] == gp || pattern[gp] == OpPattern::OutEWiseFusable) break;
        }
        if (join < 0) {
            members.push_back({static_cast<int>(n)});
            pattern.push_back(p);
            group_of[n] = static_cast<int>(members.size()) - 1;
            continue;
        }
        members[join].push_back(static_cast<int>(n));
        pattern[join] = std::max(pattern[join], p);
        group_of[n] = join;
    }
    return detail::finish_groups(g, members);
}

}  // namespace kiln::graph::passes
