#pragma once
// Pass: layout alteration (opt level 3), TVM's AlterOpLayout for x86. A convolution runs on blocked
// activations NCHW[x]c with its weight packed once at compile time (kiln.PackConvWeight on a constant,
// which fold_constant then evaluates); elementwise operators and pools that read blocked values stay
// blocked. So the layout changes only at the edges of a chain of such operators: a kiln.ToBlocked where
// NCHW data enters it, a kiln.FromBlocked where an operator that needs NCHW (or a graph output) reads it.
// Without this, every Conv blocks its input, packs its weight and unblocks its output on every call.
// Dense products with a constant weight (MatMul, Gemm) get it packed into column panels the same way.
#include <map>
#include <set>

#include "kiln/graph/ops/layout.hpp"
#include "kiln/graph/ops/transform.hpp"
#include "kiln/graph/passes/dead_code.hpp"

namespace kiln::graph::passes {

namespace detail {

// Elementwise operators that may run on blocked data. A channel count that does not fill its last block
// leaves padding channels whose values are some finite number; the operators in the first list keep
// any finite number finite (so the zero-padded weights of the next convolution still cancel them), the
// others only run blocked when there is no padding.
inline bool blocked_elementwise(const std::string& op, bool padded) {
    static const std::set<std::string> finite = {
            "Relu", "LeakyRelu", "Sigmoid", "Tanh",     "Erf",  "Gelu", "HardSigmoid", "HardSwish", "Mish", "Neg",
            "Abs",  "Floor",     "Ceil",    "Identity", "Clip", "Add",  "Sub",         "Mul",       "Max",  "Min"};
    static const std::set<std::string> unpadded = {"Div", "Pow", "Sqrt", "Exp", "Log", "Reciprocal"};
    return finite.count(op) || (!padded && unpadded.count(op));
}

// Whether an NCHW operand of shape `in` reaches every element of an elementwise result of shape `out`
// through the same channel: equal batch and channels, each spatial extent equal or 1. Then its blocked form
// broadcasts the same way over the blocked result.
inline bool spreads_over_pixels(const std::vector<int64_t>& in, const std::vector<int64_t>& out) {
    if (in.size() != 4 || out.size() != 4 || in[0] != out[0] || in[1] != out[1]) return false;
    for (size_t d = 2; d < 4; ++d)
        if (in[d] != out[d] && in[d] != 1) return false;
    return true;
}

// A constant of one value per channel, as BatchNormalization's scale: [C, 1, 1] or [1, C, 1, 1].
inline bool per_channel(const std::vector<int64_t>& shape, int64_t channels) {
    if (shape.size() != 3 && shape.size() != 4) return false;
    const size_t c = shape.size() - 3;
    for (size_t d = 0; d < shape.size(); ++d)
        if (shape[d] != (d == c ? channels : 1)) return false;
    return true;
}

// Its blocked form [1, C/block, 1, 1, block], the padding channels 0.
inline Buffer blocked_per_channel(const Buffer& b, int64_t block) {
    const int64_t channels = b.size();
    Buffer out({1, (channels + block - 1) / block, 1, 1, block}, f32);
    std::fill_n(out.data_as<float>(), out.size(), 0.0f);
    std::copy_n(b.data_as<float>(), channels, out.data_as<float>());
    return out;
}

// MatMul of [..., M, K] by a constant [K, N], or Gemm of that form with at most a bias row (canonicalize
// has already turned a constant transB into [K, N]), with enough rows for register tiles: products
// kiln.MatMulPacked computes.
inline bool packs_dense_weight(const Graph& g, const Node& n) {
    if ((n.op != "MatMul" && n.op != "Gemm") || n.inputs.size() < 2 || n.inputs[0] < 0 || !g.constant_input(n, 1))
        return false;
    const TensorType &a = g.type_of(n.inputs[0]), &b = g.type_of(n.inputs[1]);
    if (a.rank() < 2 || b.rank() != 2 || a.dtype != f32 || b.dtype != f32) return false;
    int64_t rows = 1;
    for (size_t d = 0; d + 1 < a.rank(); ++d) rows *= a.shape[d];
    if (rows < nn::detail::kMatrixVectorRows) return false;
    if (n.op == "MatMul") return true;
    if (n.attrs.get_int("transA", 0) || n.attrs.get_int("transB", 0) || n.attrs.get_float("alpha", 1) != 1)
        return false;
    if (n.inputs.size() < 3 || n.inputs[2] < 0) return true;
    return n.attrs.get_float("beta", 1) == 1 && g.type_of(n.inputs[2]).shape == std::vector<int64_t>{b.shape[1]};
}

struct BlockedForm {
    int value;  // the blocked value in the new graph
    int64_t channels;
    int64_t block;
};

}  // namespace detail

inline Graph alter_layout(const Graph& g, const Target& target = {}) {
    Graph out = g;
    out.nodes.clear();
    for (auto& v : out.values) v.producer = -1;
    const int vector_bits = target.simd_bits();
    // Whether the original (NCHW) value has been computed in the new graph; replaced Conv outputs have not.
    std::vector<bool> plain(g.values.size(), true);
    std::map<int, detail::BlockedForm> blocked;       // original value -> its blocked form
    std::map<std::pair<int, int64_t>, int> to_block;  // (value, block) -> kiln.ToBlocked result

    auto add = [&](Node n, const std::vector<int>& outputs = {}) {
        const int id = static_cast<int>(out.nodes.size());
        if (outputs.empty()) {
            const auto types = infer_types(out, n);
            n.outputs.clear();
            for (size_t i = 0; i < types.size(); ++i)
                n.outputs.push_back(out.add_value(n.label() + ":" + std::to_string(i), types[i]));
        } else {
            n.outputs = outputs;
        }
        for (int v : n.outputs) out.values[v].producer = id;
        out.nodes.push_back(std::move(n));
        return out.nodes.back().outputs[0];
    };
    auto need_plain = [&](int v) {
        if (v < 0 || plain[v]) return;
        const auto& b = blocked.at(v);
        Node n{g.value(v).name + ".nchw", "kiln.FromBlocked", {b.value}, {}, {}};
        n.attrs.set("channels", b.channels);
        add(std::move(n), {v});
        plain[v] = true;
    };
    auto need_blocked = [&](int v, int64_t block) {
        auto it = blocked.find(v);
        if (it != blocked.end() && it->second.block == block) return it->second.value;
        auto cached = to_block.find({v, block});
        if (cached != to_block.end()) return cached->second;
        need_plain(v);
        Node n{g.value(v).name + ".nchwc", "kiln.ToBlocked", {v}, {}, {}};
        n.attrs.set("block", block);
        const int bv = add(std::move(n));
        to_block[{v, block}] = bv;
        return bv;
    };

    for (const Node& n : g.nodes) {
        const auto& x = n.inputs.empty() || n.inputs[0] < 0 ? TensorType{} : g.type_of(n.inputs[0]);
        if (n.op == "Conv" && x.rank() == 4 && x.dtype == f32 && g.constant_input(n, 1) &&
            g.type_of(n.inputs[1]).rank() == 4) {
            const auto& wt = g.type_of(n.inputs[1]).shape;
            const int64_t group = n.attrs.get_int("group", 1);
            const nn::Conv2dLayout l = nn::conv2d_layout(x.shape[1], wt[0], static_cast<int>(group), target);
            const ops::detail::Window w =
                    ops::detail::window_of(n, ops::detail::spatial(x.shape), ops::detail::spatial(wt));
            Node pack{n.label() + ".weight", "kiln.PackConvWeight", {n.inputs[1]}, {}, {}};
            pack.attrs.set("channels", x.shape[1]);
            pack.attrs.set("group", group);
            pack.attrs.set("vector_bits", int64_t{vector_bits});
            const int packed = add(std::move(pack));
            Node conv{n.label(), "kiln.ConvBlocked", {need_blocked(n.inputs[0], l.data_block), packed}, {}, {}};
            if (n.inputs.size() > 2 && n.inputs[2] >= 0) {
                need_plain(n.inputs[2]);
                conv.inputs.push_back(n.inputs[2]);
            }
            conv.attrs.set("channels", x.shape[1]);
            conv.attrs.set("out_channels", wt[0]);
            conv.attrs.set("group", group);
            conv.attrs.set("kernel_shape", w.kernel);
            conv.attrs.set("strides", w.strides);
            conv.attrs.set("dilations", w.dilations);
            conv.attrs.set("pads", w.pads);
            conv.attrs.set("vector_bits", int64_t{vector_bits});
            blocked[n.outputs[0]] = {add(std::move(conv)), wt[0], l.out_block};
            plain[n.outputs[0]] = false;
            continue;
        }
        // A dense product with a constant weight reads it in column panels packed once, here, instead of
        // packing it on every call (ConvNeXt's and a transformer's weights are most of the model's bytes).
        if (detail::packs_dense_weight(g, n)) {
            int64_t rows = 1;
            for (size_t d = 0; d + 1 < x.rank(); ++d) rows *= x.shape[d];
            Node pack{n.label() + ".weight", "kiln.PackMatMulWeight", {n.inputs[1]}, {}, {}};
            pack.attrs.set("rows", rows);
            pack.attrs.set("vector_bits", int64_t{vector_bits});
            need_plain(n.inputs[0]);
            Node mm{n.name, "kiln.MatMulPacked", {n.inputs[0], add(std::move(pack))}, {}, {}};
            mm.attrs.set("columns", g.type_of(n.inputs[1]).shape[1]);
            if (n.op == "Gemm" && n.inputs.size() > 2 && n.inputs[2] >= 0) {
                need_plain(n.inputs[2]);
                mm.inputs.push_back(n.inputs[2]);
            }
            add(std::move(mm), n.outputs);
            continue;
        }
        // Operators whose first input is blocked may follow it into the blocked layout.
        const auto first = n.inputs.empty() || n.inputs[0] < 0 ? blocked.end() : blocked.find(n.inputs[0]);
        // Zero padding of the pixels (the Pad before an exported AveragePool) pads the blocked pixels alike.
        if (first != blocked.end() && n.op == "Pad" && x.rank() == 4 &&
            n.attrs.get_string("mode", "constant") == "constant" &&
            (n.inputs.size() < 3 || n.inputs[2] < 0 || g.value(n.inputs[2]).is_constant())) {
            const std::vector<int64_t> p = ops::detail::pads_of(g, n);
            if (p[0] == 0 && p[1] == 0 && p[4] == 0 && p[5] == 0) {
                Node nb{n.name, "Pad", {first->second.value}, {}, n.attrs};
                nb.attrs.set("pads", std::vector<int64_t>{0, 0, p[2], p[3], 0, 0, 0, p[6], p[7], 0});
                if (n.inputs.size() > 2 && n.inputs[2] >= 0) nb.inputs.insert(nb.inputs.end(), {-1, n.inputs[2]});
                blocked[n.outputs[0]] = {add(std::move(nb)), first->second.channels, first->second.block};
                plain[n.outputs[0]] = false;
                continue;
            }
        }
        if (first != blocked.end() && n.outputs.size() == 1) {
            const detail::BlockedForm b = first->second;
            const bool padded = b.channels % b.block != 0;
            const TensorType& ot = g.type_of(n.outputs[0]);
            std::string op;
            const bool pool = (n.op == "MaxPool" || n.op == "AveragePool" || n.op == "GlobalAveragePool" ||
                               n.op == "GlobalMaxPool") &&
                              x.rank() == 4;
            if (pool)
                op = "kiln." + n.op + "Blocked";
            else if (detail::blocked_elementwise(n.op, padded) && detail::spreads_over_pixels(x.shape, ot.shape))
                op = n.op;
            else if (n.op == "Concat" && x.rank() == 4 &&
                     graph::detail::norm_axis(n, n.attrs.get_int("axis", 0), 4) == 1)
                op = n.op;
            // Every other input must be blocked the same way, or a scalar constant (a Clip bound, say). An
            // elementwise input may be one value per channel ([N, C, 1, 1]: the scale of a
            // squeeze-and-excitation block), which broadcasts over the pixels of the blocked layout too.
            // The inputs of a Concat along the channels are blocked alike; all but the last fill their
            // blocks, so each input's blocks follow the previous input's.
            const bool concat = op == "Concat";
            bool ok = !op.empty();
            int64_t channels = 0;
            Node nb{n.name, op, {}, {}, n.attrs};
            for (size_t i = 0; ok && i < n.inputs.size(); ++i) {
                const int v = n.inputs[i];
                auto it = v < 0 ? blocked.end() : blocked.find(v);
                if (!concat && (v < 0 || (g.value(v).is_constant() && g.type_of(v).numel() == 1 && i > 0))) {
                    nb.inputs.push_back(v);
                } else if (concat && it != blocked.end() && it->second.block == b.block &&
                           (i + 1 == n.inputs.size() || it->second.channels % b.block == 0)) {
                    nb.inputs.push_back(it->second.value);
                    channels += it->second.channels;
                } else if (!concat && it != blocked.end() && it->second.channels == b.channels &&
                           it->second.block == b.block &&
                           (pool ? g.type_of(v).shape == x.shape
                                 : detail::spreads_over_pixels(g.type_of(v).shape, ot.shape))) {
                    nb.inputs.push_back(it->second.value);
                } else if (!concat && i > 0 && g.value(v).is_constant() && g.type_of(v).dtype == f32 &&
                           detail::per_channel(g.type_of(v).shape, b.channels)) {
                    // A BatchNormalization's scale or shift that no convolution absorbed (after a Concat).
                    nb.inputs.push_back(out.add_constant(g.value(v).name + ".nchwc",
                                                         detail::blocked_per_channel(*g.value(v).data, b.block)));
                } else {
                    ok = false;
                }
            }
            if (ok) {
                nb.attrs.erase("storage_order");
                if (concat) nb.attrs.set("axis", int64_t{1});  // -3 of NCHW is not -3 of NCHW[x]c
                blocked[n.outputs[0]] = {add(std::move(nb)), concat ? channels : b.channels, b.block};
                plain[n.outputs[0]] = false;
                continue;
            }
        }
        for (int v : n.inputs) need_plain(v);
        add(n, n.outputs);
    }
    for (int v : g.outputs) need_plain(v);
    return dead_code_elimination(out);
}

}  // namespace kiln::graph::passes
