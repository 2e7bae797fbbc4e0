#pragma once
// Convolutions, dense products, pooling and BatchNormalization. Conv and Gemm/MatMul are the
// kiln::nn kernels (so they get the register-tiled schedules); the rest are plain compute definitions.
#include "kiln/graph/op_registry.hpp"
#include "kiln/nn.hpp"

namespace kiln::graph::ops {

namespace detail {
using namespace kiln::graph::detail;

// Window geometry shared by Conv, ConvTranspose and the pools, for `k` spatial dimensions.
struct Window {
    std::vector<int64_t> kernel, strides, dilations, pads;  // pads: begins then ends, ONNX's order
};

inline Window window_of(const Node& n, const std::vector<int64_t>& in_spatial, std::vector<int64_t> kernel) {
    const size_t k = in_spatial.size();
    Window w;
    if (n.attrs.has("kernel_shape")) {
        auto ks = n.attrs.get_ints("kernel_shape");
        if (!kernel.empty() && ks != kernel)
            fail_node(n, "kernel_shape ", shape_str(ks), " does not match the weight's spatial shape ",
                      shape_str(kernel));
        kernel = ks;
    }
    if (kernel.size() != k)
        fail_node(n, "kernel_shape has ", kernel.size(), " values for ", k,
                  " spatial dimensions; give one per dimension");
    w.kernel = kernel;
    w.strides = n.attrs.get_ints("strides", std::vector<int64_t>(k, 1));
    w.dilations = n.attrs.get_ints("dilations", std::vector<int64_t>(k, 1));
    w.pads = n.attrs.get_ints("pads", std::vector<int64_t>(2 * k, 0));
    if (w.strides.size() != k || w.dilations.size() != k || w.pads.size() != 2 * k)
        fail_node(n, "strides, dilations and pads must have ", k, ", ", k, " and ", 2 * k, " values for ", k,
                  " spatial dimensions");
    for (size_t d = 0; d < k; ++d) {
        if (w.strides[d] < 1 || w.dilations[d] < 1 || w.kernel[d] < 1)
            fail_node(n, "strides, dilations and kernel_shape must be at least 1");
        if (w.pads[d] < 0 || w.pads[d + k] < 0) fail_node(n, "pads must be zero or more");
    }
    const std::string ap = n.attrs.get_string("auto_pad", "NOTSET");
    if (ap == "SAME_UPPER" || ap == "SAME_LOWER") {
        for (size_t d = 0; d < k; ++d) {
            const int64_t out = (in_spatial[d] + w.strides[d] - 1) / w.strides[d];
            const int64_t total = std::max<int64_t>(
                    0, (out - 1) * w.strides[d] + (w.kernel[d] - 1) * w.dilations[d] + 1 - in_spatial[d]);
            w.pads[d] = ap == "SAME_UPPER" ? total / 2 : total - total / 2;
            w.pads[d + k] = total - w.pads[d];
        }
    } else if (ap == "VALID") {
        std::fill(w.pads.begin(), w.pads.end(), 0);
    } else if (ap != "NOTSET") {
        fail_node(n, "auto_pad '", ap, "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
    }
    return w;
}

inline int64_t window_out(const Node& n, int64_t in, int64_t k, int64_t s, int64_t dil, int64_t pb, int64_t pe,
                          bool ceil_mode) {
    const int64_t span = in + pb + pe - ((k - 1) * dil + 1);
    if (span < 0)
        fail_node(n, "the window (", k, " wide, dilation ", dil, ") is larger than the padded input (", in + pb + pe,
                  ")");
    int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    // The last window must start inside the input or its leading padding.
    if (ceil_mode && (out - 1) * s >= in + pb) --out;
    return out;
}

inline std::vector<int64_t> spatial(const std::vector<int64_t>& s) {
    return std::vector<int64_t>(s.begin() + 2, s.end());
}

inline nn::Conv2dOptions conv_options(const Node& n, const Window& w) {
    nn::Conv2dOptions o;
    o.stride = {static_cast<int>(w.strides[0]), static_cast<int>(w.strides[1])};
    o.dilation = {static_cast<int>(w.dilations[0]), static_cast<int>(w.dilations[1])};
    o.padding = {static_cast<int>(w.pads[0]), static_cast<int>(w.pads[1]), static_cast<int>(w.pads[2]),
                 static_cast<int>(w.pads[3])};
    o.groups = static_cast<int>(n.attrs.get_int("group", 1));
    return o;
}

inline std::vector<TensorType> infer_conv(const Graph& g, const Node& n) {
    const auto &x = g.type_of(n.inputs[0]), &wt = g.type_of(n.inputs[1]);
    if (x.rank() != 4) fail_node(n, "input X has rank ", x.rank(), "; kiln's Conv takes 2-D images [N, C, H, W]");
    if (wt.rank() != 4) fail_node(n, "weight W has shape ", shape_str(wt.shape), "; it must be [M, C/group, kH, kW]");
    if (x.dtype != f32 || wt.dtype != f32)
        fail_node(n, "X and W are ", x.dtype.str(), " and ", wt.dtype.str(), "; Conv runs in f32");
    const int64_t group = n.attrs.get_int("group", 1);
    if (group < 1 || x.shape[1] % group || wt.shape[0] % group)
        fail_node(n, "group = ", group, " must divide the input channels (", x.shape[1], ") and the output channels (",
                  wt.shape[0], ")");
    if (wt.shape[1] * group != x.shape[1])
        fail_node(n, "weight W has ", wt.shape[1], " input channels per group but X has ", x.shape[1], " channels in ",
                  group, " group(s)");
    if (n.inputs.size() > 2 && n.inputs[2] >= 0 && g.type_of(n.inputs[2]).shape != std::vector<int64_t>{wt.shape[0]})
        fail_node(n, "bias B has shape ", shape_str(g.type_of(n.inputs[2]).shape), "; it must be [", wt.shape[0], "]");
    const Window w = window_of(n, spatial(x.shape), spatial(wt.shape));
    std::vector<int64_t> out{x.shape[0], wt.shape[0]};
    for (size_t d = 0; d < 2; ++d)
        out.push_back(window_out(n, x.shape[d + 2], w.kernel[d], w.strides[d], w.dilations[d], w.pads[d], w.pads[d + 2],
                                 false));
    return {{out, f32}};
}

inline std::vector<TensorType> infer_conv_transpose(const Graph& g, const Node& n) {
    const auto &x = g.type_of(n.inputs[0]), &wt = g.type_of(n.inputs[1]);
    if (x.rank() != 4)
        fail_node(n, "input X has rank ", x.rank(), "; kiln's ConvTranspose takes 2-D images [N, C, H, W]");
    if (wt.rank() != 4) fail_node(n, "weight W has shape ", shape_str(wt.shape), "; it must be [C, M/group, kH, kW]");
    const int64_t group = n.attrs.get_int("group", 1);
    if (group < 1 || x.shape[1] % group)
        fail_node(n, "group = ", group, " must divide the input channels (", x.shape[1], ")");
    if (wt.shape[0] != x.shape[1]) fail_node(n, "weight W has ", wt.shape[0], " input channels but X has ", x.shape[1]);
    std::vector<int64_t> out{x.shape[0], wt.shape[1] * group};
    Node tmp = n;
    tmp.attrs.erase("auto_pad");  // SAME pads of a transposed conv follow the output size, below
    Window w = window_of(tmp, spatial(x.shape), spatial(wt.shape));
    auto op = n.attrs.get_ints("output_padding", {0, 0});
    auto os = n.attrs.get_ints("output_shape");
    const std::string ap = n.attrs.get_string("auto_pad", "NOTSET");
    for (size_t d = 0; d < 2; ++d) {
        const int64_t full = w.strides[d] * (x.shape[d + 2] - 1) + op[d] + (w.kernel[d] - 1) * w.dilations[d] + 1;
        int64_t o = full - w.pads[d] - w.pads[d + 2];
        if (!os.empty())
            o = os[os.size() - 2 + d];
        else if (ap == "SAME_UPPER" || ap == "SAME_LOWER")
            o = x.shape[d + 2] * w.strides[d];
        out.push_back(o);
    }
    return {{out, x.dtype}};
}

// Pads of a ConvTranspose after output_shape / auto_pad are applied.
inline Window conv_transpose_window(const Graph& g, const Node& n) {
    const auto &x = g.type_of(n.inputs[0]), &wt = g.type_of(n.inputs[1]);
    Node tmp = n;
    tmp.attrs.erase("auto_pad");
    Window w = window_of(tmp, spatial(x.shape), spatial(wt.shape));
    auto op = n.attrs.get_ints("output_padding", {0, 0});
    const auto out = g.type_of(n.outputs[0]).shape;
    const std::string ap = n.attrs.get_string("auto_pad", "NOTSET");
    if (n.attrs.has("output_shape") || ap == "SAME_UPPER" || ap == "SAME_LOWER") {
        for (size_t d = 0; d < 2; ++d) {
            const int64_t full = w.strides[d] * (x.shape[d + 2] - 1) + op[d] + (w.kernel[d] - 1) * w.dilations[d] + 1;
            const int64_t total = std::max<int64_t>(0, full - out[d + 2]);
            w.pads[d] = ap == "SAME_UPPER" ? total / 2 : total - total / 2;
            if (ap != "SAME_UPPER" && ap != "SAME_LOWER")
                w.pads[d] = total / 2;  // ONNX: output_shape splits like SAME_UPPER
            w.pads[d + 2] = total - w.pads[d];
        }
    }
    return w;
}

inline std::vector<Tensor> compute_conv_transpose(const OpCall& c) {
    const auto &xs = c.in_type(0).shape, &ws = c.in_type(1).shape;
    const auto out = c.out_type().shape;
    const Window w = conv_transpose_window(c.graph, c.node);
    const int64_t group = c.node.attrs.get_int("group", 1);
    const int64_t icg = xs[1] / group, ocg = ws[1];
    const Tensor &X = c.in[0], &W = c.in[1];
    IterVar ric = reduce_axis(static_cast<int>(icg), "ric"), rky = reduce_axis(static_cast<int>(ws[2]), "rky"),
            rkx = reduce_axis(static_cast<int>(ws[3]), "rkx");
    Tensor conv = compute_nd(
            out,
            [&](const std::vector<Expr>& i) {
                Expr g = i[1] / static_cast<int>(ocg), oc = i[1] % static_cast<int>(ocg);
                Expr ic = g * static_cast<int>(icg) + ric.var();
                // Output y receives input iy where iy * stride + ky * dilation - pad = y.
                Expr ty = i[2] + static_cast<int>(w.pads[0]) - rky.var() * static_cast<int>(w.dilations[0]);
                Expr tx = i[3] + static_cast<int>(w.pads[1]) - rkx.var() * static_cast<int>(w.dilations[1]);
                const int sy = static_cast<int>(w.strides[0]), sx = static_cast<int>(w.strides[1]);
                Expr iy = floordiv(ty, sy), ix = floordiv(tx, sx);
                Expr ok = ty >= 0 && tx >= 0 && floormod(ty, sy) == 0 && floormod(tx, sx) == 0 &&
                          iy < static_cast<int>(xs[2]) && ix < static_cast<int>(xs[3]);
                Expr cy = kiln::max(kiln::min(iy, Expr(static_cast<int>(xs[2] - 1))), Expr(0));
                Expr cx = kiln::max(kiln::min(ix, Expr(static_cast<int>(xs[3] - 1))), Expr(0));
                return sum(X(i[0], ic, cy, cx) * W(ic, oc, rky.var(), rkx.var()), {ric, rky, rkx}, ok);
            },
            c.has_input(2) ? c.name() + "_conv" : c.name());
    if (!c.has_input(2)) return {conv};
    return {compute_nd(
            out, [&](const std::vector<Expr>& i) { return conv.access(i) + c.in[2](i[1]); }, c.name())};
}

// Reads A as a matrix: a Gemm operand with trans set, or a MatMul operand of higher rank folded to 2-D.
inline Tensor transposed(const Tensor& t, const std::vector<int64_t>& s, const std::string& name) {
    return compute_nd(
            {s[1], s[0]}, [&](const std::vector<Expr>& i) { return t(i[1], i[0]); }, name);
}

inline std::vector<TensorType> infer_gemm(const Graph& g, const Node& n) {
    const auto &a = g.type_of(n.inputs[0]), &b = g.type_of(n.inputs[1]);
    if (a.rank() != 2 || b.rank() != 2)
        fail_node(n, "A and B have shapes ", shape_str(a.shape), " and ", shape_str(b.shape), "; Gemm takes matrices");
    const bool ta = n.attrs.get_int("transA", 0), tb = n.attrs.get_int("transB", 0);
    const int64_t M = ta ? a.shape[1] : a.shape[0], K = ta ? a.shape[0] : a.shape[1];
    const int64_t Kb = tb ? b.shape[1] : b.shape[0], N = tb ? b.shape[0] : b.shape[1];
    if (K != Kb) fail_node(n, "A gives K = ", K, " but B gives K = ", Kb, " (transA = ", ta, ", transB = ", tb, ")");
    if (a.dtype != b.dtype)
        fail_node(n, "A and B are ", a.dtype.str(), " and ", b.dtype.str(), "; they must be of one type");
    std::vector<int64_t> out{M, N};
    if (n.inputs.size() > 2 && n.inputs[2] >= 0) {
        auto cs = g.type_of(n.inputs[2]).shape;
        if (broadcast_shapes(n, out, cs) != out)
            fail_node(n, "C of shape ", shape_str(cs), " does not broadcast to [", M, ", ", N, "]");
    }
    return {{out, a.dtype}};
}

inline std::vector<Tensor> compute_gemm(const OpCall& c) {
    const auto& as = c.in_type(0).shape;
    const bool ta = c.node.attrs.get_int("transA", 0), tb = c.node.attrs.get_int("transB", 0);
    const double alpha = c.node.attrs.get_float("alpha", 1), beta = c.node.attrs.get_float("beta", 1);
    Tensor A = ta ? transposed(c.in[0], as, c.name() + "_At") : c.in[0];
    nn::MatmulOptions o;
    o.transpose_b = tb;
    o.name = c.name() + "_mm";
    const auto out = c.out_type().shape;
    const bool has_c = c.has_input(2) && beta != 0;
    // A bias row is fused into the product; any other C is an epilogue.
    const bool bias = has_c && alpha == 1 && beta == 1 && c.in_type(2).shape == std::vector<int64_t>{out[1]};
    if (bias) o.bias = c.in[2];
    if (bias || (!has_c && alpha == 1)) o.name = c.name();
    Tensor mm = nn::matmul(A, c.in[1], o);
    if (bias || (!has_c && alpha == 1)) return {mm};
    return {compute_nd(
            out,
            [&](const std::vector<Expr>& i) {
                Expr v = mm(i[0], i[1]);
                if (alpha != 1) v = v * make_const(v.type(), alpha);
                if (has_c) v = v + make_const(v.type(), beta) * read_broadcast(c.in[2], c.in_type(2).shape, i);
                return v;
            },
            c.name())};
}

// numpy matmul: batch dimensions broadcast; a 1-D operand is a row (A) or a column (B) that drops out.
inline std::vector<TensorType> infer_matmul(const Graph& g, const Node& n) {
    auto a = g.type_of(n.inputs[0]).shape, b = g.type_of(n.inputs[1]).shape;
    if (a.empty() || b.empty()) fail_node(n, "MatMul operands must have rank 1 or more");
    if (g.type_of(n.inputs[0]).dtype != g.type_of(n.inputs[1]).dtype) fail_node(n, "A and B must be of one type");
    const bool va = a.size() == 1, vb = b.size() == 1;
    if (va) a.insert(a.begin(), 1);
    if (vb) b.push_back(1);
    if (a.back() != b[b.size() - 2])
        fail_node(n, "A ", shape_str(g.type_of(n.inputs[0]).shape), " and B ", shape_str(g.type_of(n.inputs[1]).shape),
                  " do not multiply: A has ", a.back(), " columns but B has ", b[b.size() - 2], " rows");
    auto batch = broadcast_shapes(n, std::vector<int64_t>(a.begin(), a.end() - 2),
                                  std::vector<int64_t>(b.begin(), b.end() - 2));
    if (!va) batch.push_back(a[a.size() - 2]);
    if (!vb) batch.push_back(b.back());
    return {{batch, g.type_of(n.inputs[0]).dtype}};
}

// [..., M, K] x B: one matrix product over the folded rows, read back as [..., N], as dense layers are.
// B is [K, N], or packed into panels (kiln.MatMulPacked, with o.columns).
inline Tensor rows_product(const OpCall& c, const Tensor& B, nn::MatmulOptions o) {
    const auto& as = c.in_type(0).shape;
    const auto out = c.out_type().shape;
    int64_t rows = 1;
    for (size_t d = 0; d + 1 < as.size(); ++d) rows *= as[d];
    Tensor A = c.in[0];
    if (as.size() > 2) {
        A = compute_nd(
                {rows, as.back()},
                [&](const std::vector<Expr>& i) {
                    std::vector<Expr> idx(as.size());
                    Expr r = i[0];
                    for (size_t d = as.size() - 1; d-- > 0;) {
                        idx[d] = d == 0 ? r : r % static_cast<int>(as[d]);
                        r = r / static_cast<int>(as[d]);
                    }
                    idx.back() = i[1];
                    return c.in[0].access(idx);
                },
                c.name() + "_rows");
    }
    o.name = as.size() > 2 ? c.name() + "_mm" : c.name();
    Tensor mm = nn::matmul(A, B, o);
    if (as.size() == 2) return mm;
    return compute_nd(
            out,
            [&](const std::vector<Expr>& i) {
                Expr r = i[0];
                for (size_t d = 1; d + 1 < out.size(); ++d) r = r * static_cast<int>(out[d]) + i[d];
                return mm(r, i.back());
            },
            c.name());
}

inline std::vector<Tensor> compute_matmul(const OpCall& c) {
    const auto &as = c.in_type(0).shape, &bs = c.in_type(1).shape;
    const auto out = c.out_type().shape;
    if (as.size() >= 2 && bs.size() == 2) return {rows_product(c, c.in[1], {})};
    // A batch of products with one batch dimension on both sides (attention's Q K^T and P V, exported as
    // [batch * heads, seq, d]): register tiles per batch, as for a single product.
    if (as.size() == 3 && bs.size() == 3 && as[0] == bs[0]) {
        nn::MatmulOptions o;
        o.name = c.name();
        return {nn::batch_matmul(c.in[0], c.in[1], o)};
    }
    // Other batched or vector products (broadcast batches, more batch dimensions): a direct reduction.
    const int64_t K = as.back();
    IterVar rk = reduce_axis(static_cast<int>(K), "rk");
    return {compute_nd(
            out,
            [&](const std::vector<Expr>& i) {
                const bool va = as.size() == 1, vb = bs.size() == 1;
                std::vector<Expr> full = i;
                if (va) full.insert(full.end() - (vb ? 0 : 1), Expr(0));
                if (vb) full.push_back(Expr(0));
                // full = batch..., m, n
                const size_t fr = full.size();
                std::vector<Expr> bi(full.begin(), full.end() - 2);
                Expr m = full[fr - 2], nn_ = full[fr - 1];
                std::vector<Expr> ia, ib;
                if (va)
                    ia = {rk.var()};
                else {
                    std::vector<int64_t> ab(as.begin(), as.end() - 2);
                    ia = broadcast_index(ab, bi);
                    ia.push_back(m);
                    ia.push_back(rk.var());
                }
                if (vb)
                    ib = {rk.var()};
                else {
                    std::vector<int64_t> bb(bs.begin(), bs.end() - 2);
                    ib = broadcast_index(bb, bi);
                    ib.push_back(rk.var());
                    ib.push_back(nn_);
                }
                return sum(c.in[0].access(ia) * c.in[1].access(ib), rk);
            },
            c.name())};
}

// A pool's output type. `blocked`: the input is NCHW[x]c, its last dimension a channel block the window
// does not touch.
inline TensorType pool_type(const Node& n, TensorType x, bool blocked) {
    const int64_t block = blocked ? x.shape.back() : 0;
    if (blocked) x.shape.pop_back();
    if (x.rank() < 3 || x.rank() > 5)
        fail_node(n, "input has rank ", x.rank(), "; pooling takes [N, C, spatial...] with 1 to 3 spatial dimensions");
    if (!n.attrs.has("kernel_shape")) fail_node(n, "attribute 'kernel_shape' is required");
    if (n.op == "MaxPool" && n.outputs.size() > 1)
        fail_node(n, "the Indices output is not supported; use only the first output");
    if (n.attrs.get_int("storage_order", 0) != 0)
        fail_node(n, "storage_order = 1 (column-major indices) is not supported");
    const bool ceil_mode = n.attrs.get_int("ceil_mode", 0) != 0;
    const Window w = window_of(n, spatial(x.shape), {});
    const size_t k = x.rank() - 2;
    std::vector<int64_t> out{x.shape[0], x.shape[1]};
    const std::string ap = n.attrs.get_string("auto_pad", "NOTSET");
    for (size_t d = 0; d < k; ++d) {
        if (ap == "SAME_UPPER" || ap == "SAME_LOWER")
            out.push_back((x.shape[d + 2] + w.strides[d] - 1) / w.strides[d]);
        else
            out.push_back(window_out(n, x.shape[d + 2], w.kernel[d], w.strides[d], w.dilations[d], w.pads[d],
                                     w.pads[d + k], ceil_mode));
    }
    if (blocked) out.push_back(block);
    return {out, x.dtype};
}

inline std::vector<TensorType> infer_pool(const Graph& g, const Node& n) {
    return {pool_type(n, g.type_of(n.inputs[0]), false)};
}

inline std::vector<Tensor> compute_pool(const OpCall& c, bool is_max, bool blocked = false) {
    const auto& xs = c.in_type(0).shape;
    const auto out = c.out_type().shape;
    const size_t k = xs.size() - 2 - (blocked ? 1 : 0);
    const Window w = window_of(c.node, std::vector<int64_t>(xs.begin() + 2, xs.begin() + 2 + static_cast<long>(k)), {});
    std::vector<IterVar> rax;
    for (size_t d = 0; d < k; ++d) rax.push_back(reduce_axis(static_cast<int>(w.kernel[d]), "rk" + std::to_string(d)));
    const bool include_pad = c.node.attrs.get_int("count_include_pad", 0) != 0;
    auto starts = [&](const std::vector<Expr>& i, size_t d) {
        return i[d + 2] * static_cast<int>(w.strides[d]) - static_cast<int>(w.pads[d]);
    };
    Tensor red = compute_nd(
            out,
            [&](const std::vector<Expr>& i) {
                std::vector<Expr> idx{i[0], i[1]};
                Expr ok;
                for (size_t d = 0; d < k; ++d) {
                    Expr p = starts(i, d) + rax[d].var() * static_cast<int>(w.dilations[d]);
                    Expr in = p >= 0 && p < static_cast<int>(xs[d + 2]);
                    ok = ok.defined() ? (ok && in) : in;
                    idx.push_back(kiln::max(kiln::min(p, Expr(static_cast<int>(xs[d + 2] - 1))), Expr(0)));
                }
                if (blocked) idx.push_back(i.back());
                Expr v = c.in[0].access(idx);
                // likely: loop partitioning runs the windows inside the image without the test.
                return is_max ? kiln::max(v, rax, likely(ok)) : sum(v, rax, likely(ok));
            },
            is_max ? c.name() : c.name() + "_sum");
    if (is_max) return {red};
    return {compute_nd(
            out,
            [&](const std::vector<Expr>& i) {
                Expr count;
                for (size_t d = 0; d < k; ++d) {
                    const int s = static_cast<int>(w.strides[d]), dil = static_cast<int>(w.dilations[d]),
                              K = static_cast<int>(w.kernel[d]);
                    const int H = static_cast<int>(xs[d + 2]), pb = static_cast<int>(w.pads[d]);
                    Expr st = i[d + 2] * s - pb;  // first tap, in input coordinates
                    Expr n;
                    if (include_pad) {
                        // Every tap counts. A ceil_mode window that runs past the padded end counts its overhang
                        // as padding too: ONNX's reference pads the input out to the last window, and ONNX
                        // Runtime divides by the whole window.
                        n = Expr(K);
                    } else {
                        Expr lo = kiln::max(Expr(0), -floordiv(st, Expr(dil)));
                        Expr hi = kiln::min(Expr(K - 1), floordiv(Expr(H - 1) - st, Expr(dil)));
                        n = hi - lo + 1;
                    }
                    count = count.defined() ? count * n : n;
                }
                Expr v = red.access(i);
                return v / cast(v.type(), count);
            },
            c.name())};
}

inline OpDef op_conv() {
    return OpDef{.name = "Conv",
                 .pattern = OpPattern::OutEWiseFusable,
                 .attrs = {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"},
                 .min_inputs = 2,
                 .max_inputs = 3,
                 .infer = infer_conv,
                 .compute = [](const OpCall& c) {
                     const Window w = window_of(c.node, spatial(c.in_type(0).shape), spatial(c.in_type(1).shape));
                     nn::Conv2dOptions o = conv_options(c.node, w);
                     o.name = c.name();
                     if (c.has_input(2)) o.bias = c.in[2];
                     return std::vector<Tensor>{nn::conv2d(c.in[0], c.in[1], o)};
                 }};
}

inline OpDef op_convtranspose() {
    return OpDef{.name = "ConvTranspose",
                 .pattern = OpPattern::Opaque,
                 .attrs = {"auto_pad", "dilations", "group", "kernel_shape", "output_padding", "output_shape", "pads",
                           "strides"},
                 .min_inputs = 2,
                 .max_inputs = 3,
                 .infer = infer_conv_transpose,
                 .compute = compute_conv_transpose};
}

inline OpDef op_gemm() {
    return OpDef{.name = "Gemm",
                 .pattern = OpPattern::OutEWiseFusable,
                 .attrs = {"alpha", "beta", "transA", "transB"},
                 .min_inputs = 2,
                 .max_inputs = 3,
                 .infer = infer_gemm,
                 .compute = compute_gemm};
}

inline OpDef op_matmul() {
    return OpDef{.name = "MatMul",
                 .pattern = OpPattern::OutEWiseFusable,
                 .min_inputs = 2,
                 .max_inputs = 2,
                 .infer = infer_matmul,
                 .compute = compute_matmul};
}

inline OpDef op_batchnormalization() {
    return OpDef{.name = "BatchNormalization",
                 .pattern = OpPattern::Broadcast,
                 .attrs = {"epsilon", "momentum", "training_mode", "spatial"},
                 .min_inputs = 5,
                 .max_inputs = 5,
                 .infer =
                         [](const Graph& g, const Node& n) {
                             if (n.attrs.get_int("training_mode", 0))
                                 fail_node(n, "training_mode = 1 is not supported; kiln runs inference");
                             if (n.outputs.size() > 1)
                                 fail_node(n, "has ", n.outputs.size(),
                                           " outputs; in inference BatchNormalization has one");
                             const auto& x = g.type_of(n.inputs[0]);
                             if (x.rank() < 2) fail_node(n, "input has rank ", x.rank(), "; it must be [N, C, ...]");
                             for (int i = 1; i < 5; ++i)
                                 if (g.type_of(n.inputs[i]).shape != std::vector<int64_t>{x.shape[1]})
                                     fail_node(n, "input ", i, " has shape ", shape_str(g.type_of(n.inputs[i]).shape),
                                               "; it must be [", x.shape[1], "], one value per channel");
                             return std::vector<TensorType>{x};
                         },
                 .compute =
                         [](const OpCall& c) {
                             const auto& s = c.in_type(0).shape;
                             const double eps = c.node.attrs.get_float("epsilon", 1e-5);
                             return std::vector<Tensor>{compute_nd(
                                     s,
                                     [&](const std::vector<Expr>& i) {
                                         Expr x = read(c.in[0], s, i), ch = i[1];
                                         Expr scale = c.in[1](ch) / sqrt(c.in[4](ch) + make_const(x.type(), eps));
                                         return (x - c.in[3](ch)) * scale + c.in[2](ch);
                                     },
                                     c.name())};
                         }};
}

inline void register_nn(OpRegistry& r) {
    r.add(op_conv());
    r.add(op_convtranspose());
    r.add(op_gemm());
    r.add(op_matmul());
    r.add(op_batchnormalization());
    for (const char* pool : {"MaxPool", "AveragePool"}) {
        const bool is_max = std::string(pool) == "MaxPool";
        r.add({.name = pool,
               .pattern = OpPattern::OutEWiseFusable,
               .attrs = {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides",
                         is_max ? "storage_order" : "count_include_pad"},
               .infer = infer_pool,
               .compute = [is_max](const OpCall& c) { return compute_pool(c, is_max); }});
    }
}

}  // namespace detail

inline const bool nn_registered = (detail::register_nn(OpRegistry::get()), true);

}  // namespace kiln::graph::ops
