#pragma once
// Injective operators that move data: Reshape, Flatten, Transpose, Concat, Split, Slice, Squeeze,
// Unsqueeze, Gather, Pad, Resize, Expand, and the shape producers Shape and ConstantOfShape.
#include <cmath>

#include "kiln/graph/op_registry.hpp"

namespace kiln::graph::ops {

namespace detail {
using namespace kiln::graph::detail;

// Reads x (shape s) at the element whose row-major position equals that of `idx` in `out`.
inline Expr read_reshaped(const Tensor& x, const std::vector<int64_t>& s, const std::vector<int64_t>& out,
                          const std::vector<Expr>& idx) {
    if (s == out) return read(x, s, idx);
    Expr flat = Expr(0);
    for (size_t d = 0; d < out.size(); ++d) flat = d == 0 ? idx[0] : flat * static_cast<int>(out[d]) + idx[d];
    std::vector<Expr> r(s.size());
    for (size_t d = s.size(); d-- > 0;) {
        r[d] = d == 0 ? flat : flat % static_cast<int>(s[d]);
        if (d > 0) flat = flat / static_cast<int>(s[d]);
    }
    return read(x, s, r);
}

// a * b, or a failure naming the node when the product of a shape does not fit in 64 bits (a Reshape to
// a shape of huge dimensions, which no tensor could have).
inline int64_t times_or_fail(const Node& n, int64_t a, int64_t b, const std::vector<int64_t>& shape) {
    int64_t r = 0;
    if (__builtin_mul_overflow(a, b, &r))
        fail_node(n, "the shape ", shape_str(shape), " has more elements than 64 bits can count; give the real shape");
    return r;
}

inline OpDef reshape_like(const std::string& name, std::vector<std::string> attrs, int max_inputs,
                          std::function<std::vector<int64_t>(const Graph&, const Node&)> shape_of) {
    return {.name = name,
            .pattern = OpPattern::Injective,
            .attrs = std::move(attrs),
            .max_inputs = max_inputs,
            .infer =
                    [shape_of](const Graph& g, const Node& n) {
                        auto out = shape_of(g, n);
                        const auto& t = g.type_of(n.inputs[0]);
                        int64_t k = 1;
                        for (auto x : out) k = times_or_fail(n, k, x, out);
                        if (k != t.numel())
                            fail_node(n, "cannot reshape ", shape_str(t.shape), " (", t.numel(), " elements) to ",
                                      shape_str(out), " (", k, " elements)");
                        return std::vector<TensorType>{{out, t.dtype}};
                    },
            .compute =
                    [](const OpCall& c) {
                        const auto& s = c.in_type(0).shape;
                        const auto out = c.out_type().shape;
                        return std::vector<Tensor>{compute_nd(
                                out, [&](const std::vector<Expr>& i) { return read_reshaped(c.in[0], s, out, i); },
                                c.name())};
                    }};
}

inline std::vector<int64_t> reshape_target(const Graph& g, const Node& n) {
    const auto& s = g.type_of(n.inputs[0]).shape;
    auto want = const_ints(g, n, 1, "shape");
    const bool allowzero = n.attrs.get_int("allowzero", 0) != 0;
    int infer = -1;
    int64_t known = 1;
    for (size_t d = 0; d < want.size(); ++d) {
        if (want[d] == 0 && !allowzero) {
            if (d >= s.size())
                fail_node(n, "shape[", d, "] = 0 copies input dimension ", d, ", but the input has rank ", s.size());
            want[d] = s[d];
        }
        if (want[d] == -1) {
            if (infer >= 0)
                fail_node(n, "shape ", shape_str(want), " has more than one -1; at most one dimension can be inferred");
            infer = static_cast<int>(d);
            continue;
        }
        if (want[d] < 0)
            fail_node(n, "shape[", d, "] = ", want[d], "; dimensions must be positive, 0 (copy) or -1 (infer)");
        known = times_or_fail(n, known, want[d], want);
    }
    if (infer >= 0) {
        int64_t total = 1;
        for (auto x : s) total *= x;
        if (known == 0 || total % known)
            fail_node(n, "cannot infer the -1 in ", shape_str(want), " from ", total, " elements");
        want[infer] = total / known;
    }
    return want;
}

inline std::vector<int64_t> squeeze_axes(const Graph& g, const Node& n) {
    if (n.attrs.has("axes")) return n.attrs.get_ints("axes");
    if (n.inputs.size() > 1 && n.inputs[1] >= 0) return const_ints(g, n, 1, "axes");
    return {};
}

inline std::vector<TensorType> infer_concat(const Graph& g, const Node& n) {
    if (!n.attrs.has("axis")) fail_node(n, "attribute 'axis' is required");
    auto t = g.type_of(n.inputs[0]);
    const int64_t a = norm_axis(n, n.attrs.get_int("axis", 0), t.rank());
    for (size_t i = 1; i < n.inputs.size(); ++i) {
        const auto& u = g.type_of(n.inputs[i]);
        bool ok = u.rank() == t.rank() && u.dtype == t.dtype;
        for (size_t d = 0; ok && d < t.rank(); ++d) ok = static_cast<int64_t>(d) == a || u.shape[d] == t.shape[d];
        if (!ok)
            fail_node(n, "input ", i, " is ", u.str(), " but input 0 is ", g.type_of(n.inputs[0]).str(),
                      "; all inputs must match except along axis ", a);
        t.shape[a] += u.shape[a];
    }
    return {t};
}

inline std::vector<int64_t> split_sizes(const Graph& g, const Node& n) {
    const auto& t = g.type_of(n.inputs[0]);
    const int64_t a = norm_axis(n, n.attrs.get_int("axis", 0), t.rank());
    std::vector<int64_t> sizes;
    if (n.attrs.has("split"))
        sizes = n.attrs.get_ints("split");
    else if (n.inputs.size() > 1 && n.inputs[1] >= 0)
        sizes = const_ints(g, n, 1, "split");
    const int64_t parts =
            n.attrs.has("num_outputs") ? n.attrs.get_int("num_outputs", 1) : static_cast<int64_t>(n.outputs.size());
    if (sizes.empty()) {
        // Equal parts; the last is smaller when the size does not divide (opset 18).
        const int64_t each = (t.shape[a] + parts - 1) / parts;
        for (int64_t p = 0; p < parts; ++p) sizes.push_back(std::min(each, t.shape[a] - p * each));
    }
    int64_t total = 0;
    for (auto s : sizes) total += s;
    if (total != t.shape[a] || sizes.size() != n.outputs.size())
        fail_node(n, "splits ", shape_str(sizes), " must give one size per output (", n.outputs.size(),
                  ") and add up to ", t.shape[a]);
    return sizes;
}

struct SliceSpec {
    std::vector<int64_t> start, step, out;
};
inline SliceSpec slice_spec(const Graph& g, const Node& n) {
    const auto& s = g.type_of(n.inputs[0]).shape;
    std::vector<int64_t> starts, ends, axes, steps;
    if (n.attrs.has("starts")) {  // opset < 10
        starts = n.attrs.get_ints("starts");
        ends = n.attrs.get_ints("ends");
        axes = n.attrs.get_ints("axes");
    } else {
        if (n.inputs.size() < 3) fail_node(n, "needs inputs data, starts and ends");
        starts = const_ints(g, n, 1, "starts");
        ends = const_ints(g, n, 2, "ends");
        if (n.inputs.size() > 3 && n.inputs[3] >= 0) axes = const_ints(g, n, 3, "axes");
        if (n.inputs.size() > 4 && n.inputs[4] >= 0) steps = const_ints(g, n, 4, "steps");
    }
    if (axes.empty())
        for (size_t d = 0; d < starts.size(); ++d) axes.push_back(static_cast<int64_t>(d));
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
        fail_node(n, "starts, ends, axes and steps must have the same length");
    SliceSpec sp{std::vector<int64_t>(s.size(), 0), std::vector<int64_t>(s.size(), 1), s};
    for (size_t k = 0; k < starts.size(); ++k) {
        const int64_t a = norm_axis(n, axes[k], s.size());
        const int64_t dim = s[a], st = steps[k];
        if (st == 0) fail_node(n, "step 0 on axis ", a, "; steps must be non-zero");
        auto clampi = [](int64_t v, int64_t lo, int64_t hi) { return std::max(lo, std::min(v, hi)); };
        int64_t b = starts[k] < 0 ? starts[k] + dim : starts[k];
        int64_t e = ends[k] < 0 ? ends[k] + dim : ends[k];
        if (st > 0) {
            b = clampi(b, 0, dim);
            e = clampi(e, 0, dim);
        } else {
            b = clampi(b, 0, dim - 1);
            e = clampi(e, -1, dim - 1);
        }
        const int64_t len = st > 0 ? (e - b + st - 1) / st : (b - e + (-st) - 1) / (-st);
        sp.start[a] = b;
        sp.step[a] = st;
        sp.out[a] = std::max<int64_t>(len, 0);
        if (sp.out[a] == 0) fail_node(n, "the slice of axis ", a, " is empty; empty tensors are not supported");
    }
    return sp;
}

inline std::vector<int64_t> pads_of(const Graph& g, const Node& n) {
    const size_t r = g.type_of(n.inputs[0]).rank();
    std::vector<int64_t> pads = n.attrs.has("pads") ? n.attrs.get_ints("pads") : const_ints(g, n, 1, "pads");
    std::vector<int64_t> axes;
    if (n.inputs.size() > 3 && n.inputs[3] >= 0) axes = const_ints(g, n, 3, "axes");
    if (axes.empty())
        for (size_t d = 0; d < r; ++d) axes.push_back(static_cast<int64_t>(d));
    if (pads.size() != 2 * axes.size())
        fail_node(n, "pads has ", pads.size(), " values; it needs two per padded axis (", 2 * axes.size(), ")");
    std::vector<int64_t> full(2 * r, 0);
    for (size_t k = 0; k < axes.size(); ++k) {
        const int64_t a = norm_axis(n, axes[k], r);
        full[a] = pads[k];
        full[a + r] = pads[k + axes.size()];
    }
    return full;
}

// Scales and output sizes of Resize (inputs roi, scales, sizes; opset 11+).
struct ResizeSpec {
    std::vector<double> scales;
    std::vector<int64_t> out;
};
inline ResizeSpec resize_spec(const Graph& g, const Node& n) {
    const auto& s = g.type_of(n.inputs[0]).shape;
    const size_t rank = s.size();
    // From opset 18, scales and sizes may cover only the dimensions named by 'axes'; the others keep their size.
    std::vector<int64_t> axes = n.attrs.get_ints("axes");
    if (axes.empty())
        for (size_t d = 0; d < rank; ++d) axes.push_back(static_cast<int64_t>(d));
    for (auto& a : axes) a = norm_axis(n, a, rank, "axes value");
    ResizeSpec r;
    r.scales.assign(rank, 1.0);
    r.out = s;
    const std::string policy = n.attrs.get_string("keep_aspect_ratio_policy", "stretch");
    if (policy != "stretch" && policy != "not_larger" && policy != "not_smaller")
        fail_node(n, "keep_aspect_ratio_policy '", policy, "' is not one of stretch, not_larger, not_smaller");
    if (n.inputs.size() > 3 && n.inputs[3] >= 0 && g.type_of(n.inputs[3]).numel() > 0) {
        const auto sizes = const_ints(g, n, 3, "sizes");
        if (sizes.size() != axes.size())
            fail_node(n, "sizes has ", sizes.size(), " values for ", axes.size(),
                      " axes; give one per axis (of the input's ", rank, ", or of 'axes')");
        for (auto v : sizes)
            if (v <= 0) fail_node(n, "sizes must be positive");
        if (policy == "stretch") {
            for (size_t k = 0; k < axes.size(); ++k) {
                r.out[axes[k]] = sizes[k];
                r.scales[axes[k]] = static_cast<double>(sizes[k]) / static_cast<double>(s[axes[k]]);
            }
        } else {
            // One scale for all the axes, the largest that fits inside (or the smallest that covers) the sizes.
            double scale = policy == "not_larger" ? 1e300 : 0;
            for (size_t k = 0; k < axes.size(); ++k) {
                const double q = static_cast<double>(sizes[k]) / static_cast<double>(s[axes[k]]);
                scale = policy == "not_larger" ? std::min(scale, q) : std::max(scale, q);
            }
            for (auto a : axes) {
                r.scales[a] = scale;
                r.out[a] = static_cast<int64_t>(scale * static_cast<double>(s[a]) + 0.5);
            }
        }
    } else if (n.inputs.size() > 2 && n.inputs[2] >= 0) {
        const auto scales = const_floats(g, n, 2, "scales");
        if (scales.size() != axes.size())
            fail_node(n, "scales has ", scales.size(), " values for ", axes.size(),
                      " axes; give one per axis (of the input's ", rank, ", or of 'axes')");
        for (size_t k = 0; k < axes.size(); ++k) {
            if (scales[k] <= 0) fail_node(n, "scales must be positive");
            r.scales[axes[k]] = scales[k];
            r.out[axes[k]] = static_cast<int64_t>(std::floor(static_cast<double>(s[axes[k]]) * scales[k]));
        }
    } else {
        fail_node(n, "give either scales (input 2) or sizes (input 3)");
    }
    return r;
}

// The input coordinate of output coordinate `x` along a dimension, per coordinate_transformation_mode.
inline Expr source_coord(const Node& n, const Expr& x, double scale, int64_t in, int64_t out) {
    const std::string m = n.attrs.get_string("coordinate_transformation_mode", "half_pixel");
    Expr xf = cast(f32, x);
    auto f = [](double v) { return make_const(f32, v); };
    if (m == "half_pixel") return (xf + f(0.5)) / f(scale) - f(0.5);
    if (m == "pytorch_half_pixel") return out > 1 ? (xf + f(0.5)) / f(scale) - f(0.5) : f(0);
    // The resized length is scale x in, unrounded, as the ONNX reference computes it.
    const double len = scale * static_cast<double>(in);
    if (m == "align_corners") return len > 1 ? xf * f(static_cast<double>(in - 1) / (len - 1)) : f(0);
    if (m == "asymmetric") return xf / f(scale);
    if (m == "half_pixel_symmetric") {
        const double adj = static_cast<double>(out) / (scale * static_cast<double>(in));
        const double center = static_cast<double>(in) / 2.0;
        const double offset = center * (1 - adj);
        return f(offset) + (xf + f(0.5)) / f(scale) - f(0.5);
    }
    if (m == "tf_crop_and_resize") fail_node(n, "coordinate_transformation_mode 'tf_crop_and_resize' is not supported");
    fail_node(n, "coordinate_transformation_mode '", m, "' is unknown");
}

inline std::vector<Tensor> compute_resize(const OpCall& c) {
    const auto& s = c.in_type(0).shape;
    const ResizeSpec rs = resize_spec(c.graph, c.node);
    const auto out = c.out_type().shape;
    const std::string mode = c.node.attrs.get_string("mode", "nearest");
    auto clampi = [](Expr v, int64_t hi) { return kiln::max(kiln::min(v, Expr(static_cast<int>(hi))), Expr(0)); };
    if (mode == "nearest") {
        const std::string nm = c.node.attrs.get_string("nearest_mode", "round_prefer_floor");
        return {compute_nd(
                out,
                [&](const std::vector<Expr>& i) {
                    std::vector<Expr> idx;
                    for (size_t d = 0; d < s.size(); ++d) {
                        if (s[d] == out[d] && rs.scales[d] == 1.0) {
                            idx.push_back(i[d]);
                            continue;
                        }
                        Expr x = source_coord(c.node, i[d], rs.scales[d], s[d], out[d]);
                        Expr k;
                        if (nm == "floor")
                            k = floor(x);
                        else if (nm == "ceil")
                            k = ceil(x);
                        else if (nm == "round_prefer_ceil")
                            k = floor(x + make_const(f32, 0.5));
                        else if (nm == "round_prefer_floor")
                            k = ceil(x - make_const(f32, 0.5));
                        else
                            fail_node(c.node, "nearest_mode '", nm, "' is unknown");
                        idx.push_back(clampi(cast(i32, k), s[d] - 1));
                    }
                    return read(c.in[0], s, idx);
                },
                c.name())};
    }
    if (mode != "linear") fail_node(c.node, "mode '", mode, "' is not supported; use 'nearest' or 'linear'");
    std::vector<size_t> resized;
    for (size_t d = 0; d < s.size(); ++d)
        if (s[d] != out[d] || rs.scales[d] != 1.0) resized.push_back(d);
    if (resized.size() > 3) fail_node(c.node, "linear resize of more than 3 axes is not supported");
    return {compute_nd(
            out,
            [&](const std::vector<Expr>& i) {
                std::vector<Expr> lo(s.size()), hi(s.size()), frac(s.size());
                for (size_t d : resized) {
                    Expr x = kiln::max(source_coord(c.node, i[d], rs.scales[d], s[d], out[d]), make_const(f32, 0));
                    Expr x0 = floor(x);
                    frac[d] = x - x0;
                    Expr k0 = cast(i32, x0);
                    lo[d] = clampi(k0, s[d] - 1);
                    hi[d] = clampi(k0 + 1, s[d] - 1);
                }
                Expr acc;
                for (size_t corner = 0; corner < (size_t{1} << resized.size()); ++corner) {
                    std::vector<Expr> idx = i;
                    Expr w = make_const(f32, 1);
                    for (size_t k = 0; k < resized.size(); ++k) {
                        const size_t d = resized[k];
                        const bool up = (corner >> k) & 1;
                        idx[d] = up ? hi[d] : lo[d];
                        w = w * (up ? frac[d] : make_const(f32, 1) - frac[d]);
                    }
                    Expr v = read(c.in[0], s, idx);
                    if (v.type() != f32) v = cast(f32, v);
                    acc = acc.defined() ? acc + v * w : v * w;
                }
                return cast(c.out_type().dtype, acc);
            },
            c.name())};
}

inline Buffer scalar_of(const Node& n) {
    if (!n.attrs.has("value")) {
        Buffer b({1}, f32);
        *static_cast<float*>(b.data()) = 0;
        return b;
    }
    const Buffer& v = n.attrs.get<Buffer>("value");
    if (v.size() != 1) fail_node(n, "attribute 'value' must hold one element, but it holds ", v.size());
    return v;
}

inline OpDef op_transpose() {
    auto perm_of = [](const Graph& g, const Node& n) {
        const size_t r = g.type_of(n.inputs[0]).rank();
        std::vector<int64_t> p;
        for (size_t i = r; i-- > 0;) p.push_back(static_cast<int64_t>(i));
        p = n.attrs.get_ints("perm", p);
        std::vector<int64_t> sorted = p;
        std::sort(sorted.begin(), sorted.end());
        for (size_t i = 0; i < sorted.size(); ++i)
            if (sorted.size() != r || sorted[i] != static_cast<int64_t>(i))
                fail_node(n, "perm ", shape_str(p), " is not a permutation of the ", r, " axes");
        return p;
    };
    return OpDef{.name = "Transpose",
                 .pattern = OpPattern::Injective,
                 .attrs = {"perm"},
                 .infer =
                         [perm_of](const Graph& g, const Node& n) {
                             const auto& t = g.type_of(n.inputs[0]);
                             auto p = perm_of(g, n);
                             std::vector<int64_t> out;
                             for (auto a : p) out.push_back(t.shape[a]);
                             return std::vector<TensorType>{{out, t.dtype}};
                         },
                 .compute =
                         [perm_of](const OpCall& c) {
                             auto p = perm_of(c.graph, c.node);
                             const auto& s = c.in_type(0).shape;
                             return std::vector<Tensor>{compute_nd(
                                     c.out_type().shape,
                                     [&](const std::vector<Expr>& i) {
                                         std::vector<Expr> idx(s.size());
                                         for (size_t d = 0; d < p.size(); ++d) idx[p[d]] = i[d];
                                         return read(c.in[0], s, idx);
                                     },
                                     c.name())};
                         }};
}

inline OpDef op_concat() {
    return OpDef{.name = "Concat",
                 .pattern = OpPattern::Injective,
                 .attrs = {"axis"},
                 .max_inputs = 1 << 16,
                 .infer = infer_concat,
                 .compute = [](const OpCall& c) {
                     const auto out = c.out_type().shape;
                     const int64_t a = norm_axis(c.node, c.node.attrs.get_int("axis", 0), out.size());
                     return std::vector<Tensor>{compute_nd(
                             out,
                             [&](const std::vector<Expr>& i) {
                                 // Later inputs take over from their offset on: select the last one whose range starts
                                 // at or before i[a].
                                 std::vector<int64_t> offs;
                                 int64_t off = 0;
                                 for (size_t k = 0; k < c.in.size(); ++k) {
                                     offs.push_back(off);
                                     off += c.in_type(k).shape[a];
                                 }
                                 Expr v;
                                 for (size_t k = 0; k < c.in.size(); ++k) {
                                     const auto& s = c.in_type(k).shape;
                                     std::vector<Expr> idx = i;
                                     idx[a] = kiln::max(kiln::min(i[a] - static_cast<int>(offs[k]),
                                                                  Expr(static_cast<int>(s[a] - 1))),
                                                        Expr(0));
                                     Expr here = read(c.in[k], s, idx);
                                     v = v.defined() ? select(i[a] >= static_cast<int>(offs[k]), here, v) : here;
                                 }
                                 return v;
                             },
                             c.name())};
                 }};
}

inline OpDef op_split() {
    return OpDef{.name = "Split",
                 .pattern = OpPattern::Injective,
                 .attrs = {"axis", "split", "num_outputs"},
                 .max_inputs = 2,
                 .infer =
                         [](const Graph& g, const Node& n) {
                             const auto& t = g.type_of(n.inputs[0]);
                             const int64_t a = norm_axis(n, n.attrs.get_int("axis", 0), t.rank());
                             std::vector<TensorType> out;
                             for (auto s : split_sizes(g, n)) {
                                 TensorType u = t;
                                 u.shape[a] = s;
                                 out.push_back(u);
                             }
                             return out;
                         },
                 .compute =
                         [](const OpCall& c) {
                             const auto& s = c.in_type(0).shape;
                             const int64_t a = norm_axis(c.node, c.node.attrs.get_int("axis", 0), s.size());
                             std::vector<Tensor> out;
                             int64_t off = 0;
                             auto sizes = split_sizes(c.graph, c.node);
                             for (size_t k = 0; k < sizes.size(); ++k) {
                                 out.push_back(compute_nd(
                                         c.out_type(k).shape,
                                         [&](const std::vector<Expr>& i) {
                                             std::vector<Expr> idx = i;
                                             idx[a] = i[a] + static_cast<int>(off);
                                             return read(c.in[0], s, idx);
                                         },
                                         c.name(k)));
                                 off += sizes[k];
                             }
                             return out;
                         }};
}

inline OpDef op_slice() {
    return OpDef{.name = "Slice",
                 .pattern = OpPattern::Injective,
                 .attrs = {"starts", "ends", "axes"},
                 .max_inputs = 5,
                 .infer =
                         [](const Graph& g, const Node& n) {
                             return std::vector<TensorType>{{slice_spec(g, n).out, g.type_of(n.inputs[0]).dtype}};
                         },
                 .compute =
                         [](const OpCall& c) {
                             const auto sp = slice_spec(c.graph, c.node);
                             const auto& s = c.in_type(0).shape;
                             return std::vector<Tensor>{compute_nd(
                                     sp.out,
                                     [&](const std::vector<Expr>& i) {
                                         std::vector<Expr> idx;
                                         for (size_t d = 0; d < s.size(); ++d)
                                             idx.push_back(i[d] * static_cast<int>(sp.step[d]) +
                                                           static_cast<int>(sp.start[d]));
                                         return read(c.in[0], s, idx);
                                     },
                                     c.name())};
                         }};
}

inline OpDef op_gather() {
    return OpDef{
            .name = "Gather",
            .pattern = OpPattern::Injective,
            .attrs = {"axis"},
            .min_inputs = 2,
            .max_inputs = 2,
            .infer =
                    [](const Graph& g, const Node& n) {
                        const auto &t = g.type_of(n.inputs[0]), &ix = g.type_of(n.inputs[1]);
                        const int64_t a = norm_axis(n, n.attrs.get_int("axis", 0), t.rank());
                        if (!ix.dtype.is_integer())
                            fail_node(n, "indices are ", ix.dtype.str(), "; they must be i32 or i64");
                        if (t.rank() + ix.rank() - 1 > 6)
                            fail_node(n, "the output would have rank ", t.rank() + ix.rank() - 1,
                                      "; kiln supports up to 6");
                        std::vector<int64_t> out(t.shape.begin(), t.shape.begin() + a);
                        out.insert(out.end(), ix.shape.begin(), ix.shape.end());
                        out.insert(out.end(), t.shape.begin() + a + 1, t.shape.end());
                        if (const Buffer* b = g.constant_input(n, 1)) {
                            for (int64_t k = 0; k < b->size(); ++k) {
                                int64_t v = b->dtype() == i64 ? static_cast<const int64_t*>(b->data())[k]
                                                              : static_cast<const int32_t*>(b->data())[k];
                                if (v < -t.shape[a] || v >= t.shape[a])
                                    fail_node(n, "index ", v, " is out of range for axis ", a, " of size ", t.shape[a]);
                            }
                        }
                        return std::vector<TensorType>{{out, t.dtype}};
                    },
            .compute =
                    [](const OpCall& c) {
                        const auto &s = c.in_type(0).shape, &is = c.in_type(1).shape;
                        const int64_t a = norm_axis(c.node, c.node.attrs.get_int("axis", 0), s.size());
                        return std::vector<Tensor>{compute_nd(
                                c.out_type().shape,
                                [&](const std::vector<Expr>& i) {
                                    std::vector<Expr> ii(i.begin() + a,
                                                         i.begin() + a + static_cast<int64_t>(is.size()));
                                    Expr k = cast(i32, read(c.in[1], is, ii));
                                    k = select(k < 0, k + static_cast<int>(s[a]), k);
                                    // Out-of-range indices read a clamped element rather than memory outside the
                                    // tensor; the executor refuses them before the kernel runs (`indices`).
                                    k = kiln::max(kiln::min(k, Expr(static_cast<int>(s[a] - 1))), Expr(0));
                                    std::vector<Expr> idx(i.begin(), i.begin() + a);
                                    idx.push_back(k);
                                    idx.insert(idx.end(), i.begin() + a + static_cast<int64_t>(is.size()), i.end());
                                    return read(c.in[0], s, idx);
                                },
                                c.name())};
                    },
            .indices =
                    [](const Graph& g, const Node& n) {
                        const auto& t = g.type_of(n.inputs[0]);
                        return std::pair<int, int64_t>{1, t.shape[norm_axis(n, n.attrs.get_int("axis", 0), t.rank())]};
                    }};
}

inline OpDef op_pad() {
    return OpDef{.name = "Pad",
                 .pattern = OpPattern::Injective,
                 .attrs = {"mode", "pads", "value"},
                 .max_inputs = 4,
                 .infer =
                         [](const Graph& g, const Node& n) {
                             auto t = g.type_of(n.inputs[0]);
                             auto p = pads_of(g, n);
                             const std::string mode = n.attrs.get_string("mode", "constant");
                             if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap")
                                 fail_node(n, "mode '", mode, "' is unknown; use constant, reflect, edge or wrap");
                             for (size_t d = 0; d < t.rank(); ++d) {
                                 if (mode == "reflect" && (p[d] >= t.shape[d] || p[d + t.rank()] >= t.shape[d]))
                                     fail_node(n, "reflect padding of axis ", d, " must be smaller than its size ",
                                               t.shape[d]);
                                 t.shape[d] += p[d] + p[d + t.rank()];
                             }
                             return std::vector<TensorType>{t};
                         },
                 .compute =
                         [](const OpCall& c) {
                             const auto& s = c.in_type(0).shape;
                             const size_t r = s.size();
                             const auto p = pads_of(c.graph, c.node);
                             const std::string mode = c.node.attrs.get_string("mode", "constant");
                             double value = c.node.attrs.get_float("value", 0);
                             if (c.has_input(2)) value = const_floats(c.graph, c.node, 2, "constant_value").at(0);
                             return std::vector<Tensor>{compute_nd(
                                     c.out_type().shape,
                                     [&](const std::vector<Expr>& i) {
                                         std::vector<Expr> idx;
                                         Expr inside;
                                         for (size_t d = 0; d < r; ++d) {
                                             const int n = static_cast<int>(s[d]);
                                             Expr x = i[d] - static_cast<int>(p[d]);
                                             Expr in = x >= 0 && x < n;
                                             inside = inside.defined() ? (inside && in) : in;
                                             if (mode == "reflect")
                                                 x = Expr(n - 1) - kiln::abs(Expr(n - 1) - kiln::abs(x));
                                             else if (mode == "wrap")
                                                 x = floormod(x, Expr(n));
                                             x = kiln::max(kiln::min(x, Expr(n - 1)), Expr(0));
                                             idx.push_back(x);
                                         }
                                         Expr v = read(c.in[0], s, idx);
                                         if (mode != "constant") return v;
                                         // likely: loop partitioning copies the interior without the test.
                                         return select(likely(inside), v, make_const(v.type(), value));
                                     },
                                     c.name())};
                         }};
}

inline OpDef op_resize() {
    return OpDef{.name = "Resize",
                 .pattern = OpPattern::Injective,
                 .attrs = {"mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a", "exclude_outside",
                           "extrapolation_value", "antialias", "axes", "keep_aspect_ratio_policy"},
                 .max_inputs = 4,
                 .infer =
                         [](const Graph& g, const Node& n) {
                             if (n.attrs.get_int("antialias", 0)) fail_node(n, "antialias = 1 is not supported");
                             if (n.attrs.get_int("exclude_outside", 0))
                                 fail_node(n, "exclude_outside = 1 is not supported");
                             const std::string mode = n.attrs.get_string("mode", "nearest");
                             if (mode != "nearest" && mode != "linear")
                                 fail_node(n, "mode '", mode, "' is not supported; use 'nearest' or 'linear'");
                             return std::vector<TensorType>{{resize_spec(g, n).out, g.type_of(n.inputs[0]).dtype}};
                         },
                 .compute = compute_resize};
}

inline OpDef op_expand() {
    return OpDef{
            .name = "Expand",
            .pattern = OpPattern::Broadcast,
            .min_inputs = 2,
            .max_inputs = 2,
            .infer =
                    [](const Graph& g, const Node& n) {
                        const auto& t = g.type_of(n.inputs[0]);
                        return std::vector<TensorType>{
                                {broadcast_shapes(n, t.shape, const_ints(g, n, 1, "shape")), t.dtype}};
                    },
            .compute =
                    [](const OpCall& c) {
                        const auto& s = c.in_type(0).shape;
                        return std::vector<Tensor>{compute_nd(
                                c.out_type().shape,
                                [&](const std::vector<Expr>& i) { return read_broadcast(c.in[0], s, i); }, c.name())};
                    }};
}

inline OpDef op_shape() {
    auto dims = [](const Graph& g, const Node& n) {
        const auto& s = g.type_of(n.inputs[0]).shape;
        const int64_t r = static_cast<int64_t>(s.size());
        int64_t b = n.attrs.get_int("start", 0), e = n.attrs.get_int("end", r);
        if (b < 0) b += r;
        if (e < 0) e += r;
        b = std::clamp<int64_t>(b, 0, r);
        e = std::clamp<int64_t>(e, 0, r);
        if (e <= b) fail_node(n, "start and end select no dimension");
        return std::vector<int64_t>(s.begin() + b, s.begin() + e);
    };
    return OpDef{.name = "Shape",
                 .pattern = OpPattern::Injective,
                 .attrs = {"start", "end"},
                 .infer =
                         [dims](const Graph& g, const Node& n) {
                             return std::vector<TensorType>{{{static_cast<int64_t>(dims(g, n).size())}, i64}};
                         },
                 .compute =
                         [dims](const OpCall& c) {
                             auto v = dims(c.graph, c.node);
                             return std::vector<Tensor>{compute_nd(
                                     {static_cast<int64_t>(v.size())},
                                     [&](const std::vector<Expr>& i) {
                                         Expr r = make_const(i64, static_cast<double>(v.back()));
                                         for (size_t k = v.size() - 1; k-- > 0;)
                                             r = select(i[0] == static_cast<int>(k),
                                                        make_const(i64, static_cast<double>(v[k])), r);
                                         return r;
                                     },
                                     c.name())};
                         }};
}

inline OpDef op_constantofshape() {
    return OpDef{.name = "ConstantOfShape",
                 .pattern = OpPattern::ElemWise,
                 .attrs = {"value"},
                 .infer =
                         [](const Graph& g, const Node& n) {
                             return std::vector<TensorType>{{const_ints(g, n, 0, "shape"), scalar_of(n).dtype()}};
                         },
                 .compute =
                         [](const OpCall& c) {
                             Buffer v = scalar_of(c.node);
                             double x = 0;
                             const Type t = v.dtype();
                             if (t == f32)
                                 x = *static_cast<const float*>(v.data());
                             else if (t == f64)
                                 x = *static_cast<const double*>(v.data());
                             else if (t == i64)
                                 x = static_cast<double>(*static_cast<const int64_t*>(v.data()));
                             else if (t == i32)
                                 x = *static_cast<const int32_t*>(v.data());
                             else if (t.is_bool())
                                 x = *static_cast<const bool*>(v.data());
                             else
                                 fail_node(c.node, "value of type ", t.str(), " is not supported");
                             return std::vector<Tensor>{compute_nd(
                                     c.out_type().shape, [&](const std::vector<Expr>&) { return make_const(t, x); },
                                     c.name())};
                         }};
}

inline void register_transform(OpRegistry& r) {
    r.add(reshape_like("Reshape", {"allowzero"}, 2, [](const Graph& g, const Node& n) {
        if (n.inputs.size() < 2) fail_node(n, "needs the 'shape' input");
        return reshape_target(g, n);
    }));
    r.add(reshape_like("Flatten", {"axis"}, 1, [](const Graph& g, const Node& n) {
        const auto& s = g.type_of(n.inputs[0]).shape;
        int64_t a = n.attrs.get_int("axis", 1);
        if (a < 0) a += static_cast<int64_t>(s.size());
        if (a < 0 || a > static_cast<int64_t>(s.size()))
            fail_node(n, "axis ", n.attrs.get_int("axis", 1), " is out of range for rank ", s.size());
        int64_t outer = 1, inner = 1;
        for (size_t d = 0; d < s.size(); ++d) (static_cast<int64_t>(d) < a ? outer : inner) *= s[d];
        return std::vector<int64_t>{outer, inner};
    }));
    r.add(reshape_like("Squeeze", {"axes"}, 2, [](const Graph& g, const Node& n) {
        const auto& s = g.type_of(n.inputs[0]).shape;
        auto axes = squeeze_axes(g, n);
        for (auto& a : axes) a = norm_axis(n, a, s.size());
        std::vector<int64_t> out;
        for (size_t d = 0; d < s.size(); ++d) {
            const bool listed = std::find(axes.begin(), axes.end(), static_cast<int64_t>(d)) != axes.end();
            if (listed && s[d] != 1)
                fail_node(n, "axis ", d, " has size ", s[d], "; only dimensions of size 1 can be squeezed");
            if (listed || (axes.empty() && s[d] == 1)) continue;
            out.push_back(s[d]);
        }
        return out;
    }));
    r.add(reshape_like("Unsqueeze", {"axes"}, 2, [](const Graph& g, const Node& n) {
        const auto& s = g.type_of(n.inputs[0]).shape;
        auto axes = squeeze_axes(g, n);
        if (axes.empty()) fail_node(n, "needs axes");
        const size_t r = s.size() + axes.size();
        for (auto& a : axes) a = norm_axis(n, a, r);
        std::vector<int64_t> out;
        size_t k = 0;
        for (size_t d = 0; d < r; ++d) {
            const auto c = std::count(axes.begin(), axes.end(), static_cast<int64_t>(d));
            if (c > 1) fail_node(n, "axis ", d, " is listed twice");
            out.push_back(c ? 1 : s.at(k++));
        }
        return out;
    }));
    r.add(op_transpose());
    r.add(op_concat());
    r.add(op_split());
    r.add(op_slice());
    r.add(op_gather());
    r.add(op_pad());
    r.add(op_resize());
    r.add(op_expand());
    r.add(op_shape());
    r.add(op_constantofshape());
}

}  // namespace detail

inline const bool transform_registered = (detail::register_transform(OpRegistry::get()), true);

}  // namespace kiln::graph::ops
