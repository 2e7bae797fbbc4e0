#pragma once
// The operators the graph layer knows: for each, the attributes it accepts, how many inputs it takes,
// its output types (shape and dtype inference), its fusion pattern, and its compute definition in
// kiln's tensor expressions. The definitions live in graph/ops/*.hpp and register themselves here.
#include <functional>
#include <unordered_map>

#include "kiln/graph/graph.hpp"
#include "kiln/te/tensor.hpp"

namespace kiln::graph {

// TVM's operator patterns, which the fusion rules are written in.
enum class OpPattern {
    ElemWise = 0,         // out[i] = f(in[i])
    Broadcast = 1,        // elementwise with broadcasting
    Injective = 2,        // each output element reads a few input elements at computed places
    CommReduce = 3,       // a reduction over some axes
    OutEWiseFusable = 4,  // conv, dense: elementwise epilogues can join their kernel
    Opaque = 8,           // fuses with nothing
};

inline const char* pattern_name(OpPattern p) {
    switch (p) {
        case OpPattern::ElemWise: return "elemwise";
        case OpPattern::Broadcast: return "broadcast";
        case OpPattern::Injective: return "injective";
        case OpPattern::CommReduce: return "reduce";
        case OpPattern::OutEWiseFusable: return "out-elemwise-fusable";
        case OpPattern::Opaque: return "opaque";
    }
    return "?";
}

// The tensors a node's compute reads (one per input; undefined for an optional input left out) and the
// graph around it, for constant inputs that decide shapes.
struct OpCall {
    const Graph& graph;
    const Node& node;
    std::vector<Tensor> in;
    // Stage names start with this. Kernels name their stages by position, not by node, so that two
    // layers of the same shape lower to the same program and compile once.
    std::string base = "t";

    const TensorType& in_type(size_t i) const { return graph.type_of(node.inputs.at(i)); }
    const TensorType& out_type(size_t i = 0) const { return graph.type_of(node.outputs.at(i)); }
    bool has_input(size_t i) const { return i < node.inputs.size() && node.inputs[i] >= 0; }
    std::string name(size_t out = 0) const;
};

// An operator, registered as one aggregate: r.add({.name = "Relu", .pattern = ..., .infer = ..., .compute = ...}).
struct OpDef {
    std::string name{};
    OpPattern pattern = OpPattern::Opaque;
    std::vector<std::string> attrs{};  // every attribute the operator understands
    int min_inputs = 1;
    int max_inputs = 1;
    // Output types from the input types, attributes and constant inputs; throws kiln::Error on a rule broken.
    std::function<std::vector<TensorType>(const Graph&, const Node&)> infer{};
    // The compute definition of each output.
    std::function<std::vector<Tensor>(const OpCall&)> compute{};
    // For operators that read data at indices from an input (Gather): that input, and the extent the indices
    // must lie in ([-extent, extent)). The executor checks them before the kernel runs.
    std::function<std::pair<int, int64_t>(const Graph&, const Node&)> indices{};
};

class OpRegistry {
public:
    static OpRegistry& get() {
        static OpRegistry r;
        return r;
    }
    void add(OpDef d) { defs_[d.name] = std::move(d); }
    const OpDef* find(const std::string& op) const {
        auto it = defs_.find(op);
        return it == defs_.end() ? nullptr : &it->second;
    }
    std::vector<std::string> names() const {
        std::vector<std::string> v;
        for (auto& [k, _] : defs_) v.push_back(k);
        std::sort(v.begin(), v.end());
        return v;
    }

private:
    std::unordered_map<std::string, OpDef> defs_;
};

namespace detail {

// "node 'conv1' (Conv)": how every message about a node starts.
inline std::string who(const Node& n) { return "node '" + n.label() + "' (" + n.op + ")"; }

template <typename... Parts> [[noreturn]] void fail_node(const Node& n, const Parts&... parts) {
    throw Error(kiln::detail::message(who(n), ": ", parts...), who(n));
}

inline std::string shape_str(const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

// Negative axes count from the back, as ONNX allows.
inline int64_t norm_axis(const Node& n, int64_t axis, size_t rank, const char* what = "axis") {
    const int64_t r = static_cast<int64_t>(rank);
    if (axis < -r || axis >= std::max<int64_t>(r, 1))
        fail_node(n, what, " ", axis, " is out of range for rank ", rank, "; use a value in [", -r, ", ", r - 1, "]");
    return axis < 0 ? axis + r : axis;
}

// Integer values of a constant input (shape, axes, pads, ...), which must be known when compiling.
inline std::vector<int64_t> const_ints(const Graph& g, const Node& n, size_t i, const char* what) {
    const Buffer* b = g.constant_input(n, i);
    if (!b)
        fail_node(n, "input ", i, " ('", what,
                  "') must be a constant known at compile time, but it is computed by the graph; ",
                  "kiln compiles static shapes, so make it an initializer or a Constant");
    std::vector<int64_t> v(static_cast<size_t>(b->size()));
    for (size_t k = 0; k < v.size(); ++k) {
        if (b->dtype() == i64)
            v[k] = static_cast<const int64_t*>(b->data())[k];
        else if (b->dtype() == i32)
            v[k] = static_cast<const int32_t*>(b->data())[k];
        else
            fail_node(n, "input ", i, " ('", what, "') holds ", b->dtype().str(), "; it must hold i64 values");
    }
    return v;
}

inline std::vector<double> const_floats(const Graph& g, const Node& n, size_t i, const char* what) {
    const Buffer* b = g.constant_input(n, i);
    if (!b)
        fail_node(n, "input ", i, " ('", what,
                  "') must be a constant known at compile time; make it an initializer or a Constant");
    std::vector<double> v(static_cast<size_t>(b->size()));
    for (size_t k = 0; k < v.size(); ++k) {
        if (b->dtype() == f32)
            v[k] = static_cast<const float*>(b->data())[k];
        else if (b->dtype() == f64)
            v[k] = static_cast<const double*>(b->data())[k];
        else if (b->dtype() == i64)
            v[k] = static_cast<double>(static_cast<const int64_t*>(b->data())[k]);
        else
            fail_node(n, "input ", i, " ('", what, "') holds ", b->dtype().str(), "; it must hold floats");
    }
    return v;
}

// kiln tensors have rank 1 to 6; an ONNX scalar (rank 0) is held as [1].
inline std::vector<Expr> kiln_shape(const std::vector<int64_t>& s) {
    std::vector<Expr> r;
    for (auto d : s) {
        if (d > INT32_MAX) kiln::detail::fail("a dimension of ", d, " does not fit kiln's 32-bit indices");
        r.push_back(Expr(static_cast<int>(d)));
    }
    if (r.empty()) r.push_back(Expr(1));
    return r;
}

// compute() over a shape known only at run time of the importer: the lambda takes the index vector.
inline Tensor compute_nd(const std::vector<int64_t>& shape, const std::function<Expr(const std::vector<Expr>&)>& f,
                         const std::string& name) {
    const auto ks = kiln_shape(shape);
    auto logical = [&](std::vector<Expr> i) { return shape.empty() ? f({}) : f(i); };
    switch (ks.size()) {
        case 1:
            return compute(
                    ks, [&](Expr a) { return logical({a}); }, name);
        case 2:
            return compute(
                    ks,
                    [&](Expr a, Expr b) {
                        return logical({a, b});
                    },
                    name);
        case 3:
            return compute(
                    ks,
                    [&](Expr a, Expr b, Expr c) {
                        return logical({a, b, c});
                    },
                    name);
        case 4:
            return compute(
                    ks,
                    [&](Expr a, Expr b, Expr c, Expr d) {
                        return logical({a, b, c, d});
                    },
                    name);
        case 5:
            return compute(
                    ks,
                    [&](Expr a, Expr b, Expr c, Expr d, Expr e) {
                        return logical({a, b, c, d, e});
                    },
                    name);
        case 6:
            return compute(
                    ks,
                    [&](Expr a, Expr b, Expr c, Expr d, Expr e, Expr g) {
                        return logical({a, b, c, d, e, g});
                    },
                    name);
        default: kiln::detail::fail("tensor '", name, "' has rank ", shape.size(), "; kiln supports ranks up to 6");
    }
}

// Reads a tensor of logical shape `s` (rank 0 held as [1]).
inline Expr read(const Tensor& t, const std::vector<int64_t>& s, const std::vector<Expr>& idx) {
    if (s.empty()) return t(0);
    return t.access(idx);
}

// The numpy broadcast of two shapes, or an error naming both.
inline std::vector<int64_t> broadcast_shapes(const Node& n, const std::vector<int64_t>& a,
                                             const std::vector<int64_t>& b) {
    const size_t r = std::max(a.size(), b.size());
    std::vector<int64_t> out(r);
    for (size_t d = 0; d < r; ++d) {
        const int64_t x = d + a.size() >= r ? a[d + a.size() - r] : 1;
        const int64_t y = d + b.size() >= r ? b[d + b.size() - r] : 1;
        if (x != y && x != 1 && y != 1)
            fail_node(n, "inputs of shapes ", shape_str(a), " and ", shape_str(b), " do not broadcast (dimension ", d,
                      ": ", x, " vs ", y, "); numpy broadcasting needs equal sizes or 1");
        out[d] = x == 1 ? y : x;
    }
    return out;
}

// The index into an input of shape `s` broadcast to an output indexed by `idx`.
inline std::vector<Expr> broadcast_index(const std::vector<int64_t>& s, const std::vector<Expr>& idx) {
    std::vector<Expr> r;
    const size_t off = idx.size() - s.size();
    for (size_t d = 0; d < s.size(); ++d) r.push_back(s[d] == 1 ? Expr(0) : idx[off + d]);
    return r;
}

inline Expr read_broadcast(const Tensor& t, const std::vector<int64_t>& s, const std::vector<Expr>& idx) {
    return read(t, s, broadcast_index(s, idx));
}

inline void check_inputs(const Node& n, const OpDef& d) {
    const int k = static_cast<int>(n.inputs.size());
    if (k < d.min_inputs || k > d.max_inputs) {
        if (d.min_inputs == d.max_inputs) fail_node(n, "has ", k, " input(s); ", n.op, " takes ", d.min_inputs);
        fail_node(n, "has ", k, " input(s); ", n.op, " takes ", d.min_inputs, " to ", d.max_inputs);
    }
    for (int i = 0; i < d.min_inputs; ++i)
        if (n.inputs[i] < 0) fail_node(n, "input ", i, " is required but missing");
    for (auto& [a, _] : n.attrs.all())
        if (std::find(d.attrs.begin(), d.attrs.end(), a) == d.attrs.end()) {
            std::string known;
            for (auto& x : d.attrs) known += (known.empty() ? "" : ", ") + x;
            fail_node(n, "unknown attribute '", a, "'; ", n.op, " accepts ",
                      known.empty() ? std::string("none") : known);
        }
}

inline std::string sanitize(const std::string& s) {
    std::string r;
    for (char c : s) r += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    if (r.empty() || std::isdigit(static_cast<unsigned char>(r[0]))) r = "t" + r;
    return r;
}

}  // namespace detail

inline std::string OpCall::name(size_t out) const { return out == 0 ? base : base + "_" + std::to_string(out); }

inline const OpDef& op_def(const Node& n) {
    const OpDef* d = OpRegistry::get().find(n.op);
    if (!d) {
        std::string all;
        for (auto& x : OpRegistry::get().names())
            if (x.rfind("kiln.", 0) != 0) all += (all.empty() ? "" : ", ") + x;
        detail::fail_node(n, "operator '", n.op, "' is not supported; kiln supports ", all);
    }
    return *d;
}

// Checks a node against its operator and returns its output types.
inline std::vector<TensorType> infer_types(const Graph& g, const Node& n) {
    const OpDef& d = op_def(n);
    detail::check_inputs(n, d);
    auto t = d.infer(g, n);
    for (auto& tt : t)
        for (auto x : tt.shape)
            if (x <= 0)
                detail::fail_node(n, "infers an output of shape ", detail::shape_str(tt.shape),
                                  "; empty tensors are not supported");
    return t;
}

}  // namespace kiln::graph
