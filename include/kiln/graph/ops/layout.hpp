#pragma once
// kiln's own operators for blocked activations, which the layout pass (passes/alter_layout.hpp) puts in
// the graph: converting NCHW to NCHW[x]c and back, packing a convolution or dense weight (constant, so
// folded at compile time), the convolution and pools on blocked data, and the product with a packed weight. Their names
// start with "kiln."; an ONNX model cannot use them.
#include "kiln/graph/ops/nn.hpp"
#include "kiln/graph/ops/reduce.hpp"

namespace kiln::graph::ops {

namespace detail {

// The target a blocked node was laid out for: its vector width decides the blocks.
inline Target layout_target(const Node& n) {
    Target t;
    t.vector_bits = static_cast<int>(n.attrs.get_int("vector_bits", 0));
    return t;
}

inline nn::Conv2dLayout blocked_conv_layout(const Node& n) {
    return nn::conv2d_layout(n.attrs.get_int("channels", 0), n.attrs.get_int("out_channels", 0),
                             static_cast<int>(n.attrs.get_int("group", 1)), layout_target(n));
}

inline void require_rank(const Graph& g, const Node& n, size_t i, size_t rank, const char* layout) {
    if (g.type_of(n.inputs[i]).rank() != rank)
        fail_node(n, "input ", i, " is ", g.type_of(n.inputs[i]).str(), "; it must be ", layout);
}

inline OpDef op_kiln_toblocked() {
    return OpDef{.name = "kiln.ToBlocked",
                 .pattern = OpPattern::Injective,
                 .attrs = {"block"},
                 .infer =
                         [](const Graph& g, const Node& n) {
                             require_rank(g, n, 0, 4, "NCHW");
                             auto s = g.type_of(n.inputs[0]).shape;
                             const int64_t b = n.attrs.get_int("block", 0);
                             if (b < 1) fail_node(n, "block is ", b, "; it must be at least 1");
                             return std::vector<TensorType>{
                                     {{s[0], (s[1] + b - 1) / b, s[2], s[3], b}, g.type_of(n.inputs[0]).dtype}};
                         },
                 .compute =
                         [](const OpCall& c) {
                             return std::vector<Tensor>{nn::nchw_to_nchwc(
                                     c.in[0], static_cast<int>(c.node.attrs.get_int("block", 0)), c.name())};
                         }};
}

inline OpDef op_kiln_fromblocked() {
    return OpDef{.name = "kiln.FromBlocked",
                 .pattern = OpPattern::Injective,
                 .attrs = {"channels"},
                 .infer =
                         [](const Graph& g, const Node& n) {
                             require_rank(g, n, 0, 5, "NCHW[x]c");
                             auto s = g.type_of(n.inputs[0]).shape;
                             const int64_t ch = n.attrs.get_int("channels", 0);
                             if (ch < 1 || ch > s[1] * s[4])
                                 fail_node(n, "channels is ", ch, "; the input holds ", s[1] * s[4]);
                             return std::vector<TensorType>{{{s[0], ch, s[2], s[3]}, g.type_of(n.inputs[0]).dtype}};
                         },
                 .compute =
                         [](const OpCall& c) {
                             return std::vector<Tensor>{
                                     nn::nchwc_to_nchw(c.in[0], c.node.attrs.get_int("channels", 0), c.name())};
                         }};
}

inline OpDef op_kiln_packconvweight() {
    return OpDef{.name = "kiln.PackConvWeight",
                 .pattern = OpPattern::Injective,
                 .attrs = {"channels", "group", "vector_bits"},
                 .infer =
                         [](const Graph& g, const Node& n) {
                             require_rank(g, n, 0, 4, "a Conv weight [M, C/group, kH, kW]");
                             const auto& w = g.type_of(n.inputs[0]).shape;
                             const nn::Conv2dLayout l =
                                     nn::conv2d_layout(n.attrs.get_int("channels", 0), w[0],
                                                       static_cast<int>(n.attrs.get_int("group", 1)), layout_target(n));
                             return std::vector<TensorType>{{{(w[0] + l.out_block - 1) / l.out_block, l.weight_outer,
                                                              w[2], w[3], l.weight_block, l.out_block},
                                                             g.type_of(n.inputs[0]).dtype}};
                         },
                 .compute =
                         [](const OpCall& c) {
                             nn::Conv2dOptions o;
                             o.groups = static_cast<int>(c.node.attrs.get_int("group", 1));
                             o.target = layout_target(c.node);
                             o.name = c.name();
                             return std::vector<Tensor>{
                                     nn::pack_conv2d_weight(c.in[0], c.node.attrs.get_int("channels", 0), o)};
                         }};
}

inline void register_layout(OpRegistry& r) {
    r.add(op_kiln_toblocked());
    r.add(op_kiln_fromblocked());
    r.add(op_kiln_packconvweight());
    {
        // Inputs: blocked data, the packed weight, the bias [M] (optional). Pads are explicit (no auto_pad).
        r.add(OpDef{.name = "kiln.ConvBlocked",
                    .pattern = OpPattern::OutEWiseFusable,
                    .attrs = {"channels", "dilations", "group", "kernel_shape", "out_channels", "pads", "strides",
                              "vector_bits"},
                    .min_inputs = 2,
                    .max_inputs = 3,
                    .infer =
                            [](const Graph& g, const Node& n) {
                                require_rank(g, n, 0, 5, "NCHW[x]c");
                                require_rank(g, n, 1, 6, "a weight packed by kiln.PackConvWeight");
                                const auto& x = g.type_of(n.inputs[0]).shape;
                                const nn::Conv2dLayout l = blocked_conv_layout(n);
                                const Window w = window_of(n, {x[2], x[3]}, {});
                                std::vector<int64_t> out{
                                        x[0], (n.attrs.get_int("out_channels", 0) + l.out_block - 1) / l.out_block};
                                for (size_t k = 0; k < 2; ++k)
                                    out.push_back(window_out(n, x[k + 2], w.kernel[k], w.strides[k], w.dilations[k],
                                                             w.pads[k], w.pads[k + 2], false));
                                out.push_back(l.out_block);
                                return std::vector<TensorType>{{out, f32}};
                            },
                    .compute =
                            [](const OpCall& c) {
                                const auto& x = c.in_type(0).shape;
                                const Window w = window_of(c.node, {x[2], x[3]}, {});
                                nn::Conv2dOptions o = conv_options(c.node, w);
                                o.out_channels = c.node.attrs.get_int("out_channels", 0);
                                o.target = layout_target(c.node);
                                o.name = c.name();
                                if (c.has_input(2)) o.bias = c.in[2];
                                return std::vector<Tensor>{
                                        nn::conv2d_nchwc(c.in[0], c.in[1], c.node.attrs.get_int("channels", 0), o)};
                            }});
    }
    for (const char* pool : {"MaxPool", "AveragePool"}) {
        const bool is_max = std::string(pool) == "MaxPool";
        std::vector<std::string> attrs = {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides"};
        if (!is_max) attrs.push_back("count_include_pad");
        r.add(OpDef{.name = std::string("kiln.") + pool + "Blocked",
                    .pattern = OpPattern::OutEWiseFusable,
                    .attrs = attrs,
                    .infer =
                            [](const Graph& g, const Node& n) {
                                require_rank(g, n, 0, 5, "NCHW[x]c");
                                return std::vector<TensorType>{pool_type(n, g.type_of(n.inputs[0]), true)};
                            },
                    .compute = [is_max](const OpCall& c) { return compute_pool(c, is_max, true); }});
    }
    add_global_pool(r, "kiln.GlobalAveragePoolBlocked", true, true);
    add_global_pool(r, "kiln.GlobalMaxPoolBlocked", false, true);
    {
        // A MatMul or Gemm weight [K, N] in column panels, for products of `rows` rows.
        r.add(OpDef{.name = "kiln.PackMatMulWeight",
                    .pattern = OpPattern::Injective,
                    .attrs = {"rows", "vector_bits"},
                    .infer =
                            [](const Graph& g, const Node& n) {
                                require_rank(g, n, 0, 2, "a weight [K, N]");
                                const auto& b = g.type_of(n.inputs[0]).shape;
                                const int64_t rows = n.attrs.get_int("rows", 0);
                                if (rows < 1) fail_node(n, "rows is ", rows, "; it must be at least 1");
                                const int64_t width = nn::detail::matmul_tile(rows, b[1], false, layout_target(n)).nr;
                                return std::vector<TensorType>{
                                        {{(b[1] + width - 1) / width, b[0], width}, g.type_of(n.inputs[0]).dtype}};
                            },
                    .compute =
                            [](const OpCall& c) {
                                nn::MatmulOptions o;
                                o.target = layout_target(c.node);
                                o.name = c.name();
                                return std::vector<Tensor>{
                                        nn::pack_matmul_weight(c.in[0], c.node.attrs.get_int("rows", 0), o)};
                            }});
    }
    {
        // Inputs: A [..., K], the packed weight, the bias [N] (optional); the output is [..., N].
        r.add(OpDef{.name = "kiln.MatMulPacked",
                    .pattern = OpPattern::OutEWiseFusable,
                    .attrs = {"columns"},
                    .min_inputs = 2,
                    .max_inputs = 3,
                    .infer =
                            [](const Graph& g, const Node& n) {
                                require_rank(g, n, 1, 3, "a weight packed by kiln.PackMatMulWeight");
                                auto a = g.type_of(n.inputs[0]).shape;
                                const auto& p = g.type_of(n.inputs[1]).shape;
                                const int64_t columns = n.attrs.get_int("columns", 0);
                                if (a.size() < 2 || a.back() != p[1])
                                    fail_node(n, "A is ", g.type_of(n.inputs[0]).str(),
                                              "; it must be [..., K] with K = ", p[1], " as the packed weight");
                                if (columns <= (p[0] - 1) * p[2] || columns > p[0] * p[2])
                                    fail_node(n, "columns is ", columns, "; the packed weight holds ", p[0],
                                              " panels of ", p[2]);
                                if (n.inputs.size() > 2 && n.inputs[2] >= 0 &&
                                    g.type_of(n.inputs[2]).shape != std::vector<int64_t>{columns})
                                    fail_node(n, "the bias is ", g.type_of(n.inputs[2]).str(), "; it must be [",
                                              columns, "]");
                                a.back() = columns;
                                return std::vector<TensorType>{{a, g.type_of(n.inputs[0]).dtype}};
                            },
                    .compute =
                            [](const OpCall& c) {
                                nn::MatmulOptions o;
                                o.columns = c.node.attrs.get_int("columns", 0);
                                if (c.has_input(2)) o.bias = c.in[2];
                                return std::vector<Tensor>{rows_product(c, c.in[1], o)};
                            }});
    }
}

}  // namespace detail

inline const bool layout_registered = (detail::register_layout(OpRegistry::get()), true);

}  // namespace kiln::graph::ops
