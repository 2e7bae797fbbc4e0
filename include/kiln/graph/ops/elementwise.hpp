#pragma once
// Elementwise and broadcasting operators: activations, arithmetic, Where, Cast, Identity, Dropout.
#include <cmath>

#include "kiln/graph/dtype.hpp"
#include "kiln/graph/op_registry.hpp"

namespace kiln::graph::ops {

namespace detail {
using namespace kiln::graph::detail;

inline Expr c(const Expr& like, double v) { return make_const(like.type(), v); }

inline std::vector<TensorType> same_as_input(const Graph& g, const Node& n) { return {g.type_of(n.inputs[0])}; }

inline void require_float(const Graph& g, const Node& n, size_t i = 0) {
    if (!g.type_of(n.inputs[i]).dtype.is_float())
        fail_node(n, "input ", i, " is ", g.type_of(n.inputs[i]).dtype.str(), "; ", n.op,
                  " is defined on floating-point tensors");
}

using UnaryFn = std::function<Expr(const Expr&, const Node&)>;

inline void add_unary(OpRegistry& r, const std::string& name, UnaryFn f, std::vector<std::string> attrs = {},
                      bool float_only = true) {
    r.add(OpDef{.name = name,
                .pattern = OpPattern::ElemWise,
                .attrs = std::move(attrs),
                .infer =
                        [float_only](const Graph& g, const Node& n) {
                            if (float_only) require_float(g, n);
                            return same_as_input(g, n);
                        },
                .compute =
                        [f](const OpCall& c) {
                            const auto& s = c.in_type(0).shape;
                            const Tensor& x = c.in[0];
                            return std::vector<Tensor>{compute_nd(
                                    s, [&](const std::vector<Expr>& i) { return f(read(x, s, i), c.node); }, c.name())};
                        }});
}

using BinaryFn = std::function<Expr(const Expr&, const Expr&)>;

inline void add_binary(OpRegistry& r, const std::string& name, BinaryFn f) {
    r.add(OpDef{.name = name,
                .pattern = OpPattern::Broadcast,
                .min_inputs = 2,
                .max_inputs = 2,
                .infer =
                        [](const Graph& g, const Node& n) {
                            const auto &a = g.type_of(n.inputs[0]), &b = g.type_of(n.inputs[1]);
                            if (a.dtype != b.dtype)
                                fail_node(n, "inputs are ", a.dtype.str(), " and ", b.dtype.str(), "; ", n.op,
                                          " needs both of one type (insert a Cast)");
                            return std::vector<TensorType>{{broadcast_shapes(n, a.shape, b.shape), a.dtype}};
                        },
                .compute =
                        [f](const OpCall& c) {
                            const auto &sa = c.in_type(0).shape, &sb = c.in_type(1).shape;
                            return std::vector<Tensor>{compute_nd(
                                    c.out_type().shape,
                                    [&](const std::vector<Expr>& i) {
                                        return f(read_broadcast(c.in[0], sa, i), read_broadcast(c.in[1], sb, i));
                                    },
                                    c.name())};
                        }});
}

inline Expr hard_sigmoid(const Expr& x, double alpha, double beta) {
    return kiln::max(c(x, 0), kiln::min(c(x, 1), x * c(x, alpha) + c(x, beta)));
}

// Bounds of Clip: inputs 1 and 2 from opset 11, attributes before.
inline double clip_bound(const Graph& g, const Node& n, size_t input, const char* attr, double fallback) {
    if (n.attrs.has(attr)) return n.attrs.get_float(attr, fallback);
    if (input >= n.inputs.size() || n.inputs[input] < 0) return fallback;
    auto v = const_floats(g, n, input, input == 1 ? "min" : "max");
    if (v.size() != 1) fail_node(n, "input ", input, " must be a scalar, but it has ", v.size(), " elements");
    return v[0];
}

inline OpDef op_clip() {
    return OpDef{.name = "Clip",
                 .pattern = OpPattern::ElemWise,
                 .attrs = {"min", "max"},
                 .max_inputs = 3,
                 .infer =
                         [](const Graph& g, const Node& n) {
                             clip_bound(g, n, 1, "min", 0);
                             clip_bound(g, n, 2, "max", 0);
                             return same_as_input(g, n);
                         },
                 .compute =
                         [](const OpCall& cl) {
                             const auto& s = cl.in_type(0).shape;
                             const double inf = std::numeric_limits<double>::infinity();
                             const double lo = clip_bound(cl.graph, cl.node, 1, "min", -inf),
                                          hi = clip_bound(cl.graph, cl.node, 2, "max", inf);
                             return std::vector<Tensor>{compute_nd(
                                     s,
                                     [&](const std::vector<Expr>& i) {
                                         Expr x = read(cl.in[0], s, i);
                                         if (lo > -inf) x = kiln::max(x, c(x, lo));
                                         if (hi < inf) x = kiln::min(x, c(x, hi));
                                         return x;
                                     },
                                     cl.name())};
                         }};
}

inline OpDef op_cast() {
    return OpDef{.name = "Cast",
                 .pattern = OpPattern::ElemWise,
                 .attrs = {"to", "saturate"},
                 .infer =
                         [](const Graph& g, const Node& n) {
                             if (!n.attrs.has("to")) fail_node(n, "attribute 'to' is required");
                             return std::vector<TensorType>{
                                     {g.type_of(n.inputs[0]).shape, dtype_from_onnx(n.attrs.get_int("to", 0), who(n))}};
                         },
                 .compute =
                         [](const OpCall& cl) {
                             const auto& s = cl.in_type(0).shape;
                             const Type to = cl.out_type().dtype;
                             return std::vector<Tensor>{compute_nd(
                                     s,
                                     [&](const std::vector<Expr>& i) {
                                         Expr x = read(cl.in[0], s, i);
                                         // Float to integer truncates toward zero in ONNX, as a C cast does.
                                         if (to.is_bool()) return x != c(x, 0);
                                         return cast(to, x);
                                     },
                                     cl.name())};
                         }};
}

inline OpDef op_pow() {
    return OpDef{.name = "Pow",
                 .pattern = OpPattern::Broadcast,
                 .min_inputs = 2,
                 .max_inputs = 2,
                 .infer =
                         [](const Graph& g, const Node& n) {
                             require_float(g, n, 0);
                             return std::vector<TensorType>{
                                     {broadcast_shapes(n, g.type_of(n.inputs[0]).shape, g.type_of(n.inputs[1]).shape),
                                      g.type_of(n.inputs[0]).dtype}};
                         },
                 .compute =
                         [](const OpCall& cl) {
                             const auto &sa = cl.in_type(0).shape, &sb = cl.in_type(1).shape;
                             const Buffer* e = cl.graph.constant_input(cl.node, 1);
                             // A constant exponent enters the expression as a number, so math lowering can turn x^2
                             // (common in normalisations) into a product.
                             double k = 0;
                             bool scalar_exp = e && e->size() == 1 && (e->dtype() == f32 || e->dtype() == f64);
                             if (scalar_exp)
                                 k = e->dtype() == f32 ? *static_cast<const float*>(e->data())
                                                       : *static_cast<const double*>(e->data());
                             return std::vector<Tensor>{compute_nd(
                                     cl.out_type().shape,
                                     [&](const std::vector<Expr>& i) {
                                         Expr x = read_broadcast(cl.in[0], sa, i);
                                         if (scalar_exp) return kiln::pow(x, make_const(x.type(), k));
                                         Expr y = read_broadcast(cl.in[1], sb, i);
                                         if (y.type() != x.type()) y = cast(x.type(), y);
                                         return kiln::pow(x, y);
                                     },
                                     cl.name())};
                         }};
}

inline OpDef op_where() {
    return OpDef{.name = "Where",
                 .pattern = OpPattern::Broadcast,
                 .min_inputs = 3,
                 .max_inputs = 3,
                 .infer =
                         [](const Graph& g, const Node& n) {
                             const auto &cnd = g.type_of(n.inputs[0]), &a = g.type_of(n.inputs[1]),
                                        &b = g.type_of(n.inputs[2]);
                             if (!cnd.dtype.is_bool())
                                 fail_node(n, "the condition (input 0) is ", cnd.dtype.str(), "; it must be bool");
                             if (a.dtype != b.dtype)
                                 fail_node(n, "inputs 1 and 2 are ", a.dtype.str(), " and ", b.dtype.str(),
                                           "; they must be of one type");
                             return std::vector<TensorType>{
                                     {broadcast_shapes(n, broadcast_shapes(n, cnd.shape, a.shape), b.shape), a.dtype}};
                         },
                 .compute =
                         [](const OpCall& cl) {
                             const auto &s0 = cl.in_type(0).shape, &s1 = cl.in_type(1).shape, &s2 = cl.in_type(2).shape;
                             return std::vector<Tensor>{compute_nd(
                                     cl.out_type().shape,
                                     [&](const std::vector<Expr>& i) {
                                         return select(read_broadcast(cl.in[0], s0, i), read_broadcast(cl.in[1], s1, i),
                                                       read_broadcast(cl.in[2], s2, i));
                                     },
                                     cl.name())};
                         }};
}

inline void register_elementwise(OpRegistry& r) {
    add_unary(
            r, "Relu", [](const Expr& x, const Node&) { return kiln::max(x, c(x, 0)); }, {}, false);
    add_unary(r, "LeakyRelu",
              [](const Expr& x, const Node& n) {
                  return select(x >= c(x, 0), x, x * c(x, n.attrs.get_float("alpha", 0.01)));
              },
              {"alpha"});
    add_unary(r, "Sigmoid", [](const Expr& x, const Node&) { return sigmoid(x); });
    add_unary(r, "Tanh", [](const Expr& x, const Node&) { return kiln::tanh(x); });
    add_unary(r, "Erf", [](const Expr& x, const Node&) { return erf(x); });
    add_unary(r, "Gelu",
              [](const Expr& x, const Node& n) {
                  const std::string a = n.attrs.get_string("approximate", "none");
                  if (a == "tanh") {
                      const double k = std::sqrt(2.0 / M_PI);
                      return c(x, 0.5) * x * (c(x, 1) + kiln::tanh(c(x, k) * (x + c(x, 0.044715) * x * x * x)));
                  }
                  if (a != "none") fail_node(n, "approximate='", a, "' is not a Gelu mode; use 'none' or 'tanh'");
                  return c(x, 0.5) * x * (c(x, 1) + erf(x * c(x, M_SQRT1_2)));
              },
              {"approximate"});
    add_unary(r, "HardSigmoid",
              [](const Expr& x, const Node& n) {
                  return hard_sigmoid(x, n.attrs.get_float("alpha", 0.2), n.attrs.get_float("beta", 0.5));
              },
              {"alpha", "beta"});
    add_unary(r, "HardSwish", [](const Expr& x, const Node&) { return x * hard_sigmoid(x, 1.0 / 6, 0.5); });
    add_unary(r, "Mish", [](const Expr& x, const Node&) {
        // softplus(x) = log(1 + exp(x)), written so a large x does not overflow exp.
        Expr sp = kiln::max(x, c(x, 0)) + log(c(x, 1) + exp(-kiln::abs(x)));
        return x * kiln::tanh(sp);
    });
    add_unary(r, "Sqrt", [](const Expr& x, const Node&) { return sqrt(x); });
    add_unary(r, "Exp", [](const Expr& x, const Node&) { return exp(x); });
    add_unary(r, "Log", [](const Expr& x, const Node&) { return log(x); });
    add_unary(r, "Reciprocal", [](const Expr& x, const Node&) { return c(x, 1) / x; });
    add_unary(
            r, "Neg", [](const Expr& x, const Node&) { return -x; }, {}, false);
    add_unary(
            r, "Abs", [](const Expr& x, const Node&) { return kiln::abs(x); }, {}, false);
    add_unary(r, "Floor", [](const Expr& x, const Node&) { return floor(x); });
    add_unary(r, "Ceil", [](const Expr& x, const Node&) { return ceil(x); });
    add_unary(
            r, "Identity", [](const Expr& x, const Node&) { return x; }, {}, false);

    r.add(op_clip());
    {
        // Inference: the data passes through; the optional mask is all true.
        r.add(OpDef{
                .name = "Dropout",
                .pattern = OpPattern::ElemWise,
                .attrs = {"ratio", "seed", "is_test"},
                .max_inputs = 3,
                .infer =
                        [](const Graph& g, const Node& n) {
                            if (n.inputs.size() > 2 && n.inputs[2] >= 0) {
                                const Buffer* t = g.constant_input(n, 2);
                                if (!t || *static_cast<const bool*>(t->data()))
                                    fail_node(n, "training_mode must be a constant false; kiln runs inference only");
                            }
                            std::vector<TensorType> out{g.type_of(n.inputs[0])};
                            if (n.outputs.size() > 1) out.push_back({g.type_of(n.inputs[0]).shape, boolean});
                            return out;
                        },
                .compute =
                        [](const OpCall& cl) {
                            const auto& s = cl.in_type(0).shape;
                            std::vector<Tensor> out{compute_nd(
                                    s, [&](const std::vector<Expr>& i) { return read(cl.in[0], s, i); }, cl.name())};
                            if (cl.node.outputs.size() > 1)
                                out.push_back(compute_nd(
                                        s, [](const std::vector<Expr>&) { return make_const(boolean, 1); },
                                        cl.name(1)));
                            return out;
                        }});
    }
    r.add(op_cast());

    add_binary(r, "Add", [](const Expr& a, const Expr& b) { return a + b; });
    add_binary(r, "Sub", [](const Expr& a, const Expr& b) { return a - b; });
    add_binary(r, "Mul", [](const Expr& a, const Expr& b) { return a * b; });
    add_binary(r, "Div", [](const Expr& a, const Expr& b) { return a / b; });
    add_binary(r, "Max", [](const Expr& a, const Expr& b) { return kiln::max(a, b); });
    add_binary(r, "Min", [](const Expr& a, const Expr& b) { return kiln::min(a, b); });
    r.add(op_pow());
    for (const char* cmp : {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"}) {
        const std::string op = cmp;
        r.add(OpDef{.name = cmp,
                    .pattern = OpPattern::Broadcast,
                    .min_inputs = 2,
                    .max_inputs = 2,
                    .infer =
                            [](const Graph& g, const Node& n) {
                                const auto &a = g.type_of(n.inputs[0]), &b = g.type_of(n.inputs[1]);
                                if (a.dtype != b.dtype)
                                    fail_node(n, "inputs are ", a.dtype.str(), " and ", b.dtype.str(),
                                              "; compare tensors of one type");
                                return std::vector<TensorType>{{broadcast_shapes(n, a.shape, b.shape), boolean}};
                            },
                    .compute =
                            [op](const OpCall& cl) {
                                const auto &sa = cl.in_type(0).shape, &sb = cl.in_type(1).shape;
                                return std::vector<Tensor>{compute_nd(
                                        cl.out_type().shape,
                                        [&](const std::vector<Expr>& i) {
                                            Expr a = read_broadcast(cl.in[0], sa, i),
                                                 b = read_broadcast(cl.in[1], sb, i);
                                            if (op == "Equal") return a == b;
                                            if (op == "Less") return a < b;
                                            if (op == "Greater") return a > b;
                                            if (op == "LessOrEqual") return a <= b;
                                            return a >= b;
                                        },
                                        cl.name())};
                            }});
    }
    r.add(op_where());
}

}  // namespace detail

inline const bool elementwise_registered = (detail::register_elementwise(OpRegistry::get()), true);

}  // namespace kiln::graph::ops
