#pragma once
// Reductions over axes: ReduceSum/Mean/Max/Min, the global pools, and the normalisations and softmaxes
// that are built from them.
#include "kiln/graph/op_registry.hpp"

namespace kiln::graph::ops {

namespace detail {
using namespace kiln::graph::detail;

// Reduces the dims in `axes` (sorted, distinct) of x (logical shape s), applying `pre` to each element.
// keepdims leaves a 1 in their place.
inline Tensor reduce_dims(const Tensor& x, const std::vector<int64_t>& s, const std::vector<int64_t>& axes,
                          bool keepdims, const Reducer& red,
                          const std::function<Expr(const Expr&, const std::vector<Expr>&)>& pre,
                          const std::string& name) {
    std::vector<int64_t> out;
    std::vector<IterVar> rax;
    std::vector<int> rpos(s.size(), -1);
    for (size_t d = 0; d < s.size(); ++d) {
        if (std::find(axes.begin(), axes.end(), static_cast<int64_t>(d)) != axes.end()) {
            rpos[d] = static_cast<int>(rax.size());
            rax.push_back(reduce_axis(static_cast<int>(s[d]), "r" + std::to_string(d)));
            if (keepdims) out.push_back(1);
        } else {
            out.push_back(s[d]);
        }
    }
    return compute_nd(
            out,
            [&](const std::vector<Expr>& i) {
                std::vector<Expr> full;
                size_t k = 0;
                for (size_t d = 0; d < s.size(); ++d) {
                    if (rpos[d] >= 0) {
                        full.push_back(rax[rpos[d]].var());
                        if (keepdims) ++k;
                    } else {
                        full.push_back(i[k++]);
                    }
                }
                return red(pre(read(x, s, full), full), rax);
            },
            name);
}

inline Expr identity_pre(const Expr& e, const std::vector<Expr>&) { return e; }

// The axes a reduction names (attribute before opset 18 for most, input 1 after; ReduceSum from 13).
inline std::vector<int64_t> reduce_axes(const Graph& g, const Node& n, size_t rank) {
    std::vector<int64_t> axes;
    bool given = false;
    if (n.attrs.has("axes")) {
        axes = n.attrs.get_ints("axes");
        given = true;
    } else if (n.inputs.size() > 1 && n.inputs[1] >= 0) {
        axes = const_ints(g, n, 1, "axes");
        given = true;
    }
    if (!given || axes.empty()) {
        if (n.attrs.get_int("noop_with_empty_axes", 0)) return {};
        axes.clear();
        for (size_t d = 0; d < rank; ++d) axes.push_back(static_cast<int64_t>(d));
        return axes;
    }
    for (auto& a : axes) a = norm_axis(n, a, rank, "axis");
    std::sort(axes.begin(), axes.end());
    if (std::adjacent_find(axes.begin(), axes.end()) != axes.end())
        fail_node(n, "axes name a dimension twice; list each axis once");
    return axes;
}

inline std::vector<int64_t> reduced_shape(const std::vector<int64_t>& s, const std::vector<int64_t>& axes, bool keep) {
    std::vector<int64_t> out;
    for (size_t d = 0; d < s.size(); ++d) {
        bool r = std::find(axes.begin(), axes.end(), static_cast<int64_t>(d)) != axes.end();
        if (!r)
            out.push_back(s[d]);
        else if (keep)
            out.push_back(1);
    }
    return out;
}

inline int64_t count_of(const std::vector<int64_t>& s, const std::vector<int64_t>& axes) {
    int64_t n = 1;
    for (auto a : axes) n *= s[a];
    return n;
}

// Reduces `axes` of the node's input 0, dividing by the number of elements reduced when `mean`.
inline Tensor reduce_input(const OpCall& c, const std::vector<int64_t>& axes, bool keep, const Reducer& red,
                           bool mean) {
    const auto& s = c.in_type(0).shape;
    Tensor t = reduce_dims(c.in[0], s, axes, keep, red, identity_pre, mean ? c.name() + "_sum" : c.name());
    if (!mean) return t;
    const auto out = reduced_shape(s, axes, keep);
    const double inv = 1.0 / static_cast<double>(count_of(s, axes));
    return compute_nd(
            out,
            [&](const std::vector<Expr>& i) {
                Expr v = read(t, out, i);
                return v * make_const(v.type(), inv);
            },
            c.name());
}

inline void add_reduce(OpRegistry& r, const std::string& name, const Reducer& red, bool mean) {
    r.add(OpDef{.name = name,
                .pattern = OpPattern::CommReduce,
                .attrs = {"axes", "keepdims", "noop_with_empty_axes"},
                .max_inputs = 2,
                .infer =
                        [](const Graph& g, const Node& n) {
                            const auto& t = g.type_of(n.inputs[0]);
                            auto axes = reduce_axes(g, n, t.rank());
                            return std::vector<TensorType>{
                                    {reduced_shape(t.shape, axes, n.attrs.get_int("keepdims", 1) != 0), t.dtype}};
                        },
                .compute =
                        [&red, mean](const OpCall& c) {
                            const auto& s = c.in_type(0).shape;
                            auto axes = reduce_axes(c.graph, c.node, s.size());
                            if (axes.empty())
                                return std::vector<Tensor>{compute_nd(
                                        s, [&](const std::vector<Expr>& i) { return read(c.in[0], s, i); }, c.name())};
                            return std::vector<Tensor>{
                                    reduce_input(c, axes, c.node.attrs.get_int("keepdims", 1) != 0, red, mean)};
                        }});
}

// `blocked`: the input is NCHW[x]c and its last dimension, a channel block, is not reduced.
inline void add_global_pool(OpRegistry& r, const std::string& name, bool mean, bool blocked = false) {
    const size_t kept = blocked ? 1 : 0;
    r.add(OpDef{.name = name,
                .pattern = OpPattern::CommReduce,
                .infer =
                        [kept](const Graph& g, const Node& n) {
                            auto t = g.type_of(n.inputs[0]);
                            if (t.rank() < 3 + kept)
                                fail_node(n, "input has rank ", t.rank(), "; it must be [N, C, spatial...]");
                            for (size_t d = 2; d + kept < t.rank(); ++d) t.shape[d] = 1;
                            return std::vector<TensorType>{t};
                        },
                .compute =
                        [mean, kept](const OpCall& c) {
                            const auto& s = c.in_type(0).shape;
                            std::vector<int64_t> axes;
                            for (size_t d = 2; d + kept < s.size(); ++d) axes.push_back(static_cast<int64_t>(d));
                            return std::vector<Tensor>{reduce_input(
                                    c, axes, true, mean ? kiln::detail::sum_reducer() : kiln::detail::max_reducer(),
                                    mean)};
                        }});
}

// Softmax's axes: one axis from opset 13; before, every axis from `axis` on (the input seen as 2-D).
inline std::vector<int64_t> softmax_axes(const Graph& g, const Node& n, size_t rank) {
    const bool legacy = g.opset < 13;
    const int64_t a = norm_axis(n, n.attrs.get_int("axis", legacy ? 1 : -1), rank);
    std::vector<int64_t> axes{a};
    if (legacy)
        for (int64_t d = a + 1; d < static_cast<int64_t>(rank); ++d) axes.push_back(d);
    return axes;
}

inline void add_softmax(OpRegistry& r, const std::string& name, bool log_output) {
    r.add(OpDef{.name = name,
                .pattern = OpPattern::Opaque,
                .attrs = {"axis"},
                .infer =
                        [](const Graph& g, const Node& n) {
                            softmax_axes(g, n, g.type_of(n.inputs[0]).rank());
                            if (!g.type_of(n.inputs[0]).dtype.is_float())
                                fail_node(n, "input is ", g.type_of(n.inputs[0]).dtype.str(),
                                          "; it must be a float tensor");
                            return std::vector<TensorType>{g.type_of(n.inputs[0])};
                        },
                .compute =
                        [log_output](const OpCall& c) {
                            const auto& s = c.in_type(0).shape;
                            const auto axes = softmax_axes(c.graph, c.node, s.size());
                            const Tensor& x = c.in[0];
                            const auto ks = reduced_shape(s, axes, true);
                            Tensor m = reduce_dims(x, s, axes, true, kiln::detail::max_reducer(), identity_pre,
                                                   c.name() + "_max");
                            auto at_reduced = [&](const std::vector<Expr>& i) {
                                std::vector<Expr> r = i;
                                for (auto a : axes) r[a] = Expr(0);
                                return r;
                            };
                            Tensor e = compute_nd(
                                    s,
                                    [&](const std::vector<Expr>& i) {
                                        return exp(read(x, s, i) - read(m, ks, at_reduced(i)));
                                    },
                                    c.name() + "_exp");
                            Tensor sum = reduce_dims(e, s, axes, true, kiln::detail::sum_reducer(), identity_pre,
                                                     c.name() + "_sum");
                            return std::vector<Tensor>{compute_nd(
                                    s,
                                    [&](const std::vector<Expr>& i) {
                                        if (log_output)
                                            return read(x, s, i) - read(m, ks, at_reduced(i)) -
                                                   log(read(sum, ks, at_reduced(i)));
                                        return read(e, s, i) / read(sum, ks, at_reduced(i));
                                    },
                                    c.name())};
                        }});
}

// Normalises x over `axes`: (x - mean) / sqrt(var + eps), then `affine` maps (value, index) to the output.
struct Normalized {
    Tensor mean, inv_std, y;
};
inline Normalized normalize(const Tensor& x, const std::vector<int64_t>& s, const std::vector<int64_t>& axes,
                            double eps, const std::function<Expr(const Expr&, const std::vector<Expr>&)>& affine,
                            const std::string& name) {
    const auto ks = reduced_shape(s, axes, true);
    const double inv_n = 1.0 / static_cast<double>(count_of(s, axes));
    auto at_reduced = [&](const std::vector<Expr>& i) {
        std::vector<Expr> r = i;
        for (auto a : axes) r[a] = Expr(0);
        return r;
    };
    Tensor sum = reduce_dims(x, s, axes, true, kiln::detail::sum_reducer(), identity_pre, name + "_sum");
    Tensor mean = compute_nd(
            ks,
            [&](const std::vector<Expr>& i) {
                Expr v = read(sum, ks, i);
                return v * make_const(v.type(), inv_n);
            },
            name + "_mean");
    Tensor sq = reduce_dims(
            x, s, axes, true, kiln::detail::sum_reducer(),
            [&](const Expr& v, const std::vector<Expr>& i) {
                Expr dlt = v - read(mean, ks, at_reduced(i));
                return dlt * dlt;
            },
            name + "_sqdev");
    Tensor inv_std = compute_nd(
            ks,
            [&](const std::vector<Expr>& i) {
                Expr v = read(sq, ks, i);
                return make_const(v.type(), 1) / sqrt(v * make_const(v.type(), inv_n) + make_const(v.type(), eps));
            },
            name + "_invstd");
    Tensor y = compute_nd(
            s,
            [&](const std::vector<Expr>& i) {
                auto ri = at_reduced(i);
                return affine((read(x, s, i) - read(mean, ks, ri)) * read(inv_std, ks, ri), i);
            },
            name);
    return {mean, inv_std, y};
}

inline OpDef op_layernormalization() {
    return OpDef{.name = "LayerNormalization",
                 .pattern = OpPattern::Opaque,
                 .attrs = {"axis", "epsilon", "stash_type"},
                 .min_inputs = 2,
                 .max_inputs = 3,
                 .infer =
                         [](const Graph& g, const Node& n) {
                             const auto& t = g.type_of(n.inputs[0]);
                             const int64_t a = norm_axis(n, n.attrs.get_int("axis", -1), t.rank());
                             std::vector<int64_t> axes;
                             for (int64_t d = a; d < static_cast<int64_t>(t.rank()); ++d) axes.push_back(d);
                             for (size_t i = 1; i < n.inputs.size(); ++i)
                                 if (n.inputs[i] >= 0) broadcast_shapes(n, t.shape, g.type_of(n.inputs[i]).shape);
                             std::vector<TensorType> out{t};
                             for (size_t k = 1; k < n.outputs.size(); ++k)
                                 out.push_back({reduced_shape(t.shape, axes, true), t.dtype});
                             return out;
                         },
                 .compute =
                         [](const OpCall& c) {
                             const auto& s = c.in_type(0).shape;
                             const int64_t a = norm_axis(c.node, c.node.attrs.get_int("axis", -1), s.size());
                             std::vector<int64_t> axes;
                             for (int64_t dd = a; dd < static_cast<int64_t>(s.size()); ++dd) axes.push_back(dd);
                             const auto& ss = c.in_type(1).shape;
                             const bool has_b = c.has_input(2);
                             auto nr = normalize(
                                     c.in[0], s, axes, c.node.attrs.get_float("epsilon", 1e-5),
                                     [&](const Expr& v, const std::vector<Expr>& i) {
                                         Expr y = v * read_broadcast(c.in[1], ss, i);
                                         return has_b ? y + read_broadcast(c.in[2], c.in_type(2).shape, i) : y;
                                     },
                                     c.name());
                             std::vector<Tensor> out{nr.y};
                             if (c.node.outputs.size() > 1) out.push_back(nr.mean);
                             if (c.node.outputs.size() > 2) out.push_back(nr.inv_std);
                             return out;
                         }};
}

inline OpDef op_instancenormalization() {
    return OpDef{.name = "InstanceNormalization",
                 .pattern = OpPattern::Opaque,
                 .attrs = {"epsilon"},
                 .min_inputs = 3,
                 .max_inputs = 3,
                 .infer =
                         [](const Graph& g, const Node& n) {
                             const auto& t = g.type_of(n.inputs[0]);
                             if (t.rank() < 3)
                                 fail_node(n, "input has rank ", t.rank(), "; it must be [N, C, spatial...]");
                             for (int i : {1, 2})
                                 if (g.type_of(n.inputs[i]).shape != std::vector<int64_t>{t.shape[1]})
                                     fail_node(n, "input ", i, " has shape ", shape_str(g.type_of(n.inputs[i]).shape),
                                               "; it must be [", t.shape[1], "], one value per channel");
                             return std::vector<TensorType>{t};
                         },
                 .compute =
                         [](const OpCall& c) {
                             const auto& s = c.in_type(0).shape;
                             std::vector<int64_t> axes;
                             for (size_t dd = 2; dd < s.size(); ++dd) axes.push_back(static_cast<int64_t>(dd));
                             auto nr = normalize(
                                     c.in[0], s, axes, c.node.attrs.get_float("epsilon", 1e-5),
                                     [&](const Expr& v, const std::vector<Expr>& i) {
                                         return v * c.in[1](i[1]) + c.in[2](i[1]);
                                     },
                                     c.name());
                             return std::vector<Tensor>{nr.y};
                         }};
}

inline void register_reduce(OpRegistry& r) {
    add_reduce(r, "ReduceSum", kiln::detail::sum_reducer(), false);
    add_reduce(r, "ReduceMean", kiln::detail::sum_reducer(), true);
    add_reduce(r, "ReduceMax", kiln::detail::max_reducer(), false);
    add_reduce(r, "ReduceMin", kiln::detail::min_reducer(), false);
    add_global_pool(r, "GlobalAveragePool", true);
    add_global_pool(r, "GlobalMaxPool", false);
    add_softmax(r, "Softmax", false);
    add_softmax(r, "LogSoftmax", true);
    r.add(op_layernormalization());
    r.add(op_instancenormalization());
}

}  // namespace detail

inline const bool reduce_registered = (detail::register_reduce(OpRegistry::get()), true);

}  // namespace kiln::graph::ops
