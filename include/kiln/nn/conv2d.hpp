#pragma once
// 2-D convolution as compute definitions, with the default CPU schedule.
//
//   auto y = kiln::nn::conv2d(x, w, {.stride = {2, 2}, .padding = {1, 1, 1, 1}, .bias = b});  // x NCHW, w OIHW
//   kiln::Schedule s(y);
//   kiln::nn::schedule_conv2d(s, y);        // y, or any elementwise function of it (a ReLU, a residual add)
//
// The work happens in a blocked layout, NCHW[x]c as in TVM and oneDNN: channels are split into blocks of
// one vector (16 floats with AVX-512) that sit innermost, so one output pixel of one block is one vector
// and a register tile of a few pixels times a few blocks is a small GEMM micro-kernel. nn::conv2d takes
// and returns NCHW, converting at its edges; nn::conv2d_nchwc stays blocked, for callers (the graph
// layer, benchmarks) that keep activations blocked from layer to layer:
//
//   data   [N, C/cb, H, W, cb]               (channels padded with zeros up to a whole block)
//   weight [OC/ob, IC/ib, KH, KW, ib, ob]    (nn::pack_conv2d_weight; constant, so pack it once)
//   output [N, OC/ob, OH, OW, ob]
#include <array>

#include "kiln/nn/schedule_util.hpp"
#include "kiln/runtime/thread_pool.hpp"

namespace kiln::nn {

struct Conv2dOptions {
    std::array<int, 2> stride{1, 1};
    std::array<int, 4> padding{0, 0, 0, 0};  // top, left, bottom, right (ONNX's order)
    std::array<int, 2> dilation{1, 1};
    int groups = 1;            // groups == channels (with one output per channel) is a depthwise convolution
    Tensor bias{};             // optional, shape [OC]
    int64_t out_channels = 0;  // OC; only needed with a weight already packed by pack_conv2d_weight
    std::string name = "conv2d";
    Target target{};  // decides the channel blocks
};

// How a convolution lays out its operands. The same rule serves the definition, the weight packing and
// whoever converts activations, so a producer and a consumer agree on the data block.
struct Conv2dLayout {
    enum class Kind {
        Dense,      // each output block reads a run of input blocks: a GEMM micro-kernel
        Depthwise,  // one input channel per output channel: elementwise over the block, vectorised
        Grouped,    // groups too narrow to share blocks cheaply: correct, but the reduction is scalar
    };
    Kind kind;
    int data_block;        // cb: channels of the activation per block
    int out_block;         // ob: output channels per block
    int weight_block;      // ib: input channels per block of the packed weight (1 unless Dense)
    int64_t weight_outer;  // the packed weight's second dimension: input blocks (Dense) or channels per group
};

namespace detail {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct ConvShape {
    int64_t N, C, H, W, OC, KH, KW, OH, OW;
};

// With groups, output block o reads the input blocks from this one on: those holding the inputs of the
// group of its first channel. Groups that fill whole blocks start a run of icg / cb blocks of their own;
// narrower ones (RegNet's and ResNeXt's groups of 8 to 64 channels) share blocks, and a block's packed
// weight is zero between channels of different groups.
inline int64_t first_input_block(int64_t o, int ob, int64_t icg, int64_t ocg, int cb) {
    return o * ob / ocg * icg / cb;
}

// The most input blocks any output block reads, so all of them fit one weight shape.
inline int64_t input_blocks_per_output_block(int64_t out_channels, int ob, int64_t icg, int64_t ocg, int cb) {
    int64_t span = 0;
    for (int64_t o = 0; o * ob < out_channels; ++o) {
        const int64_t last_channel = std::min<int64_t>(o * ob + ob, out_channels) - 1;
        const int64_t last_block = ((last_channel / ocg + 1) * icg - 1) / cb;
        span = std::max(span, last_block - first_input_block(o, ob, icg, ocg, cb) + 1);
    }
    return span;
}

}  // namespace detail

// The layout rule. Activations use one vector per block; a layer with fewer input channels than that
// (an image's 3 colours) keeps them all in one block rather than padding them to 16 and multiplying zeros.
//
// Groups narrower than a block go through the dense micro-kernel with block-diagonal weights: groups of 8
// multiply half zeros and still run 5 to 7 times faster than the scalar reduction (8.5 -> 42-67 GFLOP/s of
// real work on RegNet-Y's 3x3 layers, 1 thread), so the micro-kernel is taken while it makes at most
// kMaxProductsPerUseful products for each one that counts. One consequence: an infinite input meets the zero weights of
// the neighbouring groups of its block, and 0 * inf makes their outputs NaN, as in a Winograd or FFT
// convolution that mixes taps.
inline Conv2dLayout conv2d_layout(int64_t channels, int64_t out_channels, int groups, const Target& target = {}) {
    constexpr int64_t kMaxProductsPerUseful = 8;
    const int lanes = detail::f32_lanes(target);
    const int64_t icg = channels / groups, ocg = out_channels / groups;
    Conv2dLayout l;
    l.out_block = lanes;
    l.data_block = groups == 1 ? static_cast<int>(std::min<int64_t>(channels, lanes)) : lanes;
    l.kind = Conv2dLayout::Kind::Dense;
    l.weight_outer = detail::ceil_div(icg, l.data_block);
    if (groups > 1 && icg == 1 && ocg == 1) {
        l.kind = Conv2dLayout::Kind::Depthwise;
    } else if (groups > 1 && (icg % lanes != 0 || ocg % lanes != 0)) {
        l.weight_outer = detail::input_blocks_per_output_block(out_channels, lanes, icg, ocg, lanes);
        if (l.weight_outer * lanes > kMaxProductsPerUseful * icg) l.kind = Conv2dLayout::Kind::Grouped;
    }
    if (l.kind != Conv2dLayout::Kind::Dense) l.weight_outer = icg;
    l.weight_block = l.kind == Conv2dLayout::Kind::Dense ? l.data_block : 1;
    return l;
}

namespace detail {

inline int64_t conv_dim(const Expr& e, const std::string& op, const Tensor& t, size_t d) {
    auto* c = as_const_int(e);
    if (!c)
        kiln::detail::fail(op, ": dimension ", d, " of '", t.name(), "' is symbolic (", to_string(e),
                           "); convolutions choose their blocked layout from constant shapes, so bind the size");
    return *c;
}

inline void check_conv_options(const Conv2dOptions& o) {
    const std::string& n = o.name;
    if (o.stride[0] < 1 || o.stride[1] < 1)
        kiln::detail::fail("nn::conv2d '", n, "': stride (", o.stride[0], ", ", o.stride[1],
                           ") must be at least 1 in both directions");
    if (o.dilation[0] < 1 || o.dilation[1] < 1)
        kiln::detail::fail("nn::conv2d '", n, "': dilation (", o.dilation[0], ", ", o.dilation[1],
                           ") must be at least 1 (1 means no dilation)");
    for (int p : o.padding)
        if (p < 0) kiln::detail::fail("nn::conv2d '", n, "': padding values must be zero or more; got ", p);
    if (o.groups < 1) kiln::detail::fail("nn::conv2d '", n, "': groups is ", o.groups, "; it must be at least 1");
}

// Checks the operands and works out the output size. `C` is the logical channel count of the data.
inline ConvShape conv_shape(int64_t N, int64_t C, int64_t H, int64_t W, const Tensor& weight, const Conv2dOptions& o) {
    const std::string who = "nn::conv2d '" + o.name + "'";
    if (weight.ndim() != 4)
        kiln::detail::fail(who, ": weight '", weight.name(), "' has rank ", weight.ndim(),
                           "; it must be [out_channels, in_channels/groups, KH, KW]");
    ConvShape s{N, C, H, W, 0, 0, 0, 0, 0};
    s.OC = conv_dim(weight.shape()[0], who, weight, 0);
    const int64_t icg = conv_dim(weight.shape()[1], who, weight, 1);
    s.KH = conv_dim(weight.shape()[2], who, weight, 2);
    s.KW = conv_dim(weight.shape()[3], who, weight, 3);
    if (C % o.groups != 0 || s.OC % o.groups != 0)
        kiln::detail::fail(who, ": groups = ", o.groups, " must divide both the input channels (", C,
                           ") and the output channels (", s.OC, ")");
    if (icg * o.groups != C)
        kiln::detail::fail(who, ": weight '", weight.name(), "' has ", icg,
                           " input channels per group, but the data has ", C, " channels in ", o.groups,
                           " group(s), so it needs ", C / o.groups,
                           "; check the weight's shape [OC, IC/groups, KH, KW] and groups");
    const int64_t eh = o.dilation[0] * (s.KH - 1) + 1, ew = o.dilation[1] * (s.KW - 1) + 1;
    const int64_t ph = H + o.padding[0] + o.padding[2], pw = W + o.padding[1] + o.padding[3];
    if (eh > ph || ew > pw)
        kiln::detail::fail(who, ": the ", s.KH, "x", s.KW, " kernel",
                           (eh != s.KH || ew != s.KW)
                                   ? " (" + std::to_string(eh) + "x" + std::to_string(ew) + " with dilation)"
                                   : std::string(),
                           " is larger than the padded input (", ph, "x", pw,
                           "); the output would be empty; pad the input or use a smaller kernel");
    s.OH = (ph - eh) / o.stride[0] + 1;
    s.OW = (pw - ew) / o.stride[1] + 1;
    if (o.bias.defined() && (o.bias.ndim() != 1 || !equal(o.bias.shape()[0], Expr(static_cast<int>(s.OC)))))
        kiln::detail::fail(who, ": bias '", o.bias.name(), "' must have shape [", s.OC,
                           "], one value per output channel");
    return s;
}

inline Expr zero_of(const Tensor& t) { return make_const(t.dtype(), 0); }
inline Expr i32(int64_t v) { return Expr(static_cast<int>(v)); }

// The convolution proper over blocked data, with weights packed for `l`. `pad` is the padding still to
// apply (top, left): the window reads the data only where it lies inside, a condition on the reduction
// that loop partitioning turns into clipped window loops and guard-free tiles, so no padded copy of the
// data is ever made.
inline Tensor conv2d_blocked(const Tensor& data, const Tensor& packed, const ConvShape& s, const Conv2dLayout& l,
                             const Conv2dOptions& o, std::array<int, 2> pad) {
    const int cb = l.data_block, ob = l.out_block;
    const int64_t OCo = ceil_div(s.OC, ob), icg = s.C / o.groups, ocg = s.OC / o.groups;
    const int sh = o.stride[0], sw = o.stride[1], dh = o.dilation[0], dw = o.dilation[1];
    const int64_t H = *as_const_int(data.shape()[2]), W = *as_const_int(data.shape()[3]);
    auto kh = reduce_axis(0, i32(s.KH), "kh");
    auto kw = reduce_axis(0, i32(s.KW), "kw");
    std::vector<Expr> shape = {i32(s.N), i32(OCo), i32(s.OH), i32(s.OW), Expr(ob)};
    // The data row and column a window tap reads, and where that lies inside the data; each end is
    // tested only where some window crosses it.
    struct Tap {
        Expr y, x, inside;
    };
    auto tap = [&](Expr y, Expr x) {
        Expr yy = y * sh + kh.var() * dh - pad[0], xx = x * sw + kw.var() * dw - pad[1];
        std::vector<Expr> c;
        if (pad[0] > 0) c.push_back(yy >= 0);
        if ((s.OH - 1) * sh + (s.KH - 1) * dh - pad[0] >= H) c.push_back(yy < i32(H));
        if (pad[1] > 0) c.push_back(xx >= 0);
        if ((s.OW - 1) * sw + (s.KW - 1) * dw - pad[1] >= W) c.push_back(xx < i32(W));
        Expr all;
        for (auto& e : c) all = all.defined() ? (all && e) : e;
        return Tap{yy, xx, all.defined() ? likely(all) : Expr()};
    };
    Tensor out;
    switch (l.kind) {
        case Conv2dLayout::Kind::Dense: {
            auto rco = reduce_axis(0, i32(l.weight_outer), "rco");
            auto rci = reduce_axis(0, Expr(cb), "rci");
            // The last output blocks' runs of input blocks may reach past the data; their weights are zero
            // there, so any block in range serves.
            const int64_t data_blocks = ceil_div(s.C, cb);
            const bool clamp = first_input_block(OCo - 1, ob, icg, ocg, cb) + l.weight_outer > data_blocks;
            out = compute(
                    shape,
                    [&](Expr n, Expr oc, Expr y, Expr x, Expr oi) {
                        Expr cblk = rco.var();
                        if (o.groups > 1) cblk = oc * ob / i32(ocg) * i32(icg) / cb + rco.var();
                        if (clamp) cblk = min(cblk, i32(data_blocks - 1));
                        const Tap t = tap(y, x);
                        return sum(data(n, cblk, t.y, t.x, rci.var()) *
                                           packed(oc, rco.var(), kh.var(), kw.var(), rci.var(), oi),
                                   {rco, kh, kw, rci}, t.inside);
                    },
                    o.name);
            break;
        }
        case Conv2dLayout::Kind::Depthwise:
            out = compute(
                    shape,
                    [&](Expr n, Expr oc, Expr y, Expr x, Expr oi) {
                        const Tap t = tap(y, x);
                        return sum(data(n, oc, t.y, t.x, oi) * packed(oc, Expr(0), kh.var(), kw.var(), Expr(0), oi),
                                   {kh, kw}, t.inside);
                    },
                    o.name);
            break;
        case Conv2dLayout::Kind::Grouped: {
            auto rc = reduce_axis(0, i32(icg), "rc");
            out = compute(
                    shape,
                    [&](Expr n, Expr oc, Expr y, Expr x, Expr oi) {
                        // Padding output channels (past OC) read a real group's data; their weights are zero.
                        Expr channel = min(oc * ob + oi, i32(s.OC - 1)) / i32(ocg) * i32(icg) + rc.var();
                        const Tap t = tap(y, x);
                        return sum(data(n, channel / cb, t.y, t.x, channel % cb) *
                                           packed(oc, rc.var(), kh.var(), kw.var(), Expr(0), oi),
                                   {rc, kh, kw}, t.inside);
                    },
                    o.name);
            break;
        }
    }
    return with_tag(out, "conv2d");
}

inline Tensor add_bias_blocked(const Tensor& conv, const ConvShape& s, const Conv2dOptions& o) {
    if (!o.bias.defined()) return conv;
    const int ob = static_cast<int>(*as_const_int(conv.shape()[4]));
    const bool whole = s.OC % ob == 0;
    return compute(
            conv.shape(),
            [&](Expr n, Expr oc, Expr y, Expr x, Expr oi) {
                Expr ch = oc * ob + oi;
                Expr b = whole ? o.bias(ch)
                               : if_then_else(ch < i32(s.OC), o.bias(min(ch, i32(s.OC - 1))), zero_of(conv));
                return conv(n, oc, y, x, oi) + b;
            },
            o.name + ".bias");
}

}  // namespace detail

// The weight [OC, IC/groups, KH, KW] in the layout conv2d_nchwc reads, zero-filled up to whole blocks.
// A constant weight is packed once (the graph layer folds this stage); conv2d packs it on every call.
inline Tensor pack_conv2d_weight(const Tensor& weight, int64_t channels, const Conv2dOptions& opt = {}) {
    detail::check_conv_options(opt);
    if (!weight.defined() || weight.ndim() != 4)
        kiln::detail::fail("nn::pack_conv2d_weight '", opt.name,
                           "': the weight must be [out_channels, in_channels/groups, KH, KW]");
    const std::string who = "nn::pack_conv2d_weight '" + opt.name + "'";
    const int64_t OC = detail::conv_dim(weight.shape()[0], who, weight, 0),
                  icg = detail::conv_dim(weight.shape()[1], who, weight, 1);
    if (icg * opt.groups != channels)
        kiln::detail::fail(who, ": weight '", weight.name(), "' has ", icg,
                           " input channels per group; with groups = ", opt.groups, " that is ", icg * opt.groups,
                           " channels, not ", channels);
    const Conv2dLayout l = conv2d_layout(channels, OC, opt.groups, opt.target);
    const int ib = l.weight_block, ob = l.out_block;
    std::vector<Expr> shape = {detail::i32(detail::ceil_div(OC, ob)),
                               detail::i32(l.weight_outer),
                               weight.shape()[2],
                               weight.shape()[3],
                               Expr(ib),
                               Expr(ob)};
    // Input channel `ic` counts within the group of output channel `oc`; where groups share a block (see
    // conv2d_layout) the block holds channels of other groups, outside [0, icg), whose weights are zero.
    const int64_t ocg = OC / opt.groups;
    const bool shared = l.kind == Conv2dLayout::Kind::Dense && opt.groups > 1 && (icg % ib != 0 || ocg % ob != 0);
    const bool whole = OC % ob == 0 && icg % ib == 0 && !shared;
    auto packed = compute(
            shape,
            [&](Expr o, Expr c, Expr y, Expr x, Expr ci, Expr oi) {
                Expr oc = o * ob + oi, ic = c * ib + ci;
                if (shared)
                    ic = (o * ob / detail::i32(ocg) * detail::i32(icg) / ib + c) * ib + ci -
                         oc / detail::i32(ocg) * detail::i32(icg);
                if (whole) return weight(oc, ic, y, x);
                if (shared)
                    return if_then_else(
                            oc < detail::i32(OC) && ic >= 0 && ic < detail::i32(icg),
                            weight(min(oc, detail::i32(OC - 1)), max(min(ic, detail::i32(icg - 1)), Expr(0)), y, x),
                            detail::zero_of(weight));
                return if_then_else(oc < detail::i32(OC) && ic < detail::i32(icg),
                                    weight(min(oc, detail::i32(OC - 1)), min(ic, detail::i32(icg - 1)), y, x),
                                    detail::zero_of(weight));
            },
            opt.name + ".packed_weight");
    return with_tag(packed, "conv2d_pack_weight");
}

// Activations from NCHW to blocked NCHW[cb]c, channels zero-filled up to a whole block.
inline Tensor nchw_to_nchwc(const Tensor& t, int cb, const std::string& name = "to_nchwc") {
    if (!t.defined() || t.ndim() != 4)
        kiln::detail::fail("nn::nchw_to_nchwc '", name, "': the input must be NCHW (rank 4)");
    const int64_t C = detail::conv_dim(t.shape()[1], "nn::nchw_to_nchwc '" + name + "'", t, 1);
    if (cb < 1)
        kiln::detail::fail("nn::nchw_to_nchwc '", name, "': the channel block is ", cb, "; it must be at least 1");
    return compute(
            {t.shape()[0], detail::i32(detail::ceil_div(C, cb)), t.shape()[2], t.shape()[3], Expr(cb)},
            [&](Expr n, Expr c, Expr y, Expr x, Expr ci) {
                Expr ch = c * cb + ci;
                if (C % cb == 0) return t(n, ch, y, x);
                return if_then_else(ch < detail::i32(C), t(n, min(ch, detail::i32(C - 1)), y, x), detail::zero_of(t));
            },
            name);
}

// Activations from blocked NCHW[cb]c back to NCHW with `channels` channels (dropping the block's padding).
inline Tensor nchwc_to_nchw(const Tensor& t, int64_t channels, const std::string& name = "to_nchw") {
    if (!t.defined() || t.ndim() != 5)
        kiln::detail::fail("nn::nchwc_to_nchw '", name, "': the input must be NCHW[x]c (rank 5)");
    const int cb = static_cast<int>(detail::conv_dim(t.shape()[4], "nn::nchwc_to_nchw '" + name + "'", t, 4));
    const int64_t blocks = detail::conv_dim(t.shape()[1], "nn::nchwc_to_nchw '" + name + "'", t, 1);
    if (channels < 1 || channels > blocks * cb)
        kiln::detail::fail("nn::nchwc_to_nchw '", name, "': '", t.name(), "' holds ", blocks * cb, " channels, so ",
                           channels, " is out of range");
    return compute(
            {t.shape()[0], detail::i32(channels), t.shape()[2], t.shape()[3]},
            [&](Expr n, Expr c, Expr y, Expr x) { return t(n, c / cb, y, x, c % cb); }, name);
}

// Convolution of blocked data [N, C/cb, H, W, cb] holding `channels` logical channels. `weight` is either
// [OC, IC/groups, KH, KW], packed by a stage of this pipeline, or already packed by pack_conv2d_weight
// (then say how many output channels it holds in .out_channels). The result is blocked
// [N, OC/ob, OH, OW, ob], its padding channels zero, with the bias added when one is given.
inline Tensor conv2d_nchwc(const Tensor& data, const Tensor& weight, int64_t channels, const Conv2dOptions& opt = {}) {
    detail::check_conv_options(opt);
    const std::string who = "nn::conv2d_nchwc '" + opt.name + "'";
    if (!data.defined() || !weight.defined()) kiln::detail::fail(who, ": an operand is undefined");
    if (data.ndim() != 5)
        kiln::detail::fail(who, ": data '", data.name(), "' has rank ", data.ndim(),
                           "; it must be blocked [N, C/cb, H, W, cb] (use nn::conv2d for NCHW data)");
    if (data.dtype() != weight.dtype())
        kiln::detail::fail(who, ": data '", data.name(), "' is ", data.dtype().str(), " but weight '", weight.name(),
                           "' is ", weight.dtype().str(), "; cast one so both have the same element type");
    int64_t d[5];
    for (size_t i = 0; i < 5; ++i) d[i] = detail::conv_dim(data.shape()[i], who, data, i);
    if (weight.ndim() != 4 && weight.ndim() != 6)
        kiln::detail::fail(who, ": weight '", weight.name(), "' has rank ", weight.ndim(),
                           "; pass it as [OC, IC/groups, KH, KW] or as packed by nn::pack_conv2d_weight");
    int64_t w[6];
    for (size_t i = 0; i < weight.ndim(); ++i) w[i] = detail::conv_dim(weight.shape()[i], who, weight, i);
    const bool prepacked = weight.ndim() == 6;
    const int64_t OC = prepacked ? opt.out_channels : w[0];
    if (prepacked && OC <= 0)
        kiln::detail::fail(who, ": weight '", weight.name(),
                           "' is already packed, which hides the number of output channels; set .out_channels");
    // The checks run on the logical weight shape, which a packed weight implies.
    Tensor logical = prepacked ? placeholder({detail::i32(OC), detail::i32(channels / std::max(opt.groups, 1)),
                                              detail::i32(w[2]), detail::i32(w[3])},
                                             weight.dtype(), weight.name())
                               : weight;
    const detail::ConvShape s = detail::conv_shape(d[0], channels, d[2], d[3], logical, opt);
    const Conv2dLayout l = conv2d_layout(channels, OC, opt.groups, opt.target);
    if (d[4] != l.data_block || d[1] != detail::ceil_div(channels, l.data_block))
        kiln::detail::fail(
                who, ": data '", data.name(), "' is blocked as [", d[0], ", ", d[1], ", ", d[2], ", ", d[3], ", ", d[4],
                "], but ", channels, " channels need [", d[0], ", ", detail::ceil_div(channels, l.data_block), ", ",
                d[2], ", ", d[3], ", ", l.data_block,
                "] for this convolution; convert with nn::nchw_to_nchwc(x, nn::conv2d_layout(...).data_block)");
    Tensor packed = weight;
    if (prepacked) {
        const int64_t want[6] = {
                detail::ceil_div(OC, l.out_block), l.weight_outer, s.KH, s.KW, l.weight_block, l.out_block};
        if (!std::equal(want, want + 6, w))
            kiln::detail::fail(who, ": packed weight '", weight.name(), "' is [", w[0], ", ", w[1], ", ", w[2], ", ",
                               w[3], ", ", w[4], ", ", w[5], "] but this convolution reads [", want[0], ", ", want[1],
                               ", ", want[2], ", ", want[3], ", ", want[4], ", ", want[5],
                               "]; pack it with nn::pack_conv2d_weight using the same channels, groups and target");
    } else {
        packed = pack_conv2d_weight(weight, channels, opt);
    }
    Tensor conv = detail::conv2d_blocked(data, packed, s, l, opt, {opt.padding[0], opt.padding[1]});
    return detail::add_bias_blocked(conv, s, opt);
}

// Convolution of NCHW data with an [OC, IC/groups, KH, KW] weight; the result is NCHW. Inside, the data
// is padded and blocked in one stage, and the blocked result is unblocked (with the bias) in another.
inline Tensor conv2d(const Tensor& data, const Tensor& weight, const Conv2dOptions& opt = {}) {
    detail::check_conv_options(opt);
    const std::string who = "nn::conv2d '" + opt.name + "'";
    if (!data.defined() || !weight.defined()) kiln::detail::fail(who, ": an operand is undefined");
    if (data.ndim() != 4)
        kiln::detail::fail(who, ": data '", data.name(), "' has rank ", data.ndim(),
                           "; it must be NCHW (use nn::conv2d_nchwc for blocked data)");
    if (data.dtype() != weight.dtype())
        kiln::detail::fail(who, ": data '", data.name(), "' is ", data.dtype().str(), " but weight '", weight.name(),
                           "' is ", weight.dtype().str(), "; cast one so both have the same element type");
    int64_t d[4];
    for (size_t i = 0; i < 4; ++i) d[i] = detail::conv_dim(data.shape()[i], who, data, i);
    const detail::ConvShape s = detail::conv_shape(d[0], d[1], d[2], d[3], weight, opt);
    const Conv2dLayout l = conv2d_layout(s.C, s.OC, opt.groups, opt.target);
    const int cb = l.data_block;
    const auto& p = opt.padding;
    const Expr H = data.shape()[2], W = data.shape()[3];
    auto blocked = compute(
            {data.shape()[0], detail::i32(detail::ceil_div(s.C, cb)), H + (p[0] + p[2]), W + (p[1] + p[3]), Expr(cb)},
            [&](Expr n, Expr c, Expr y, Expr x, Expr ci) {
                Expr ch = c * cb + ci, yy = y - p[0], xx = x - p[1];
                return if_then_else(likely(ch < detail::i32(s.C) && yy >= 0 && yy < H && xx >= 0 && xx < W),
                                    data(n, min(ch, detail::i32(s.C - 1)), max(min(yy, H - 1), Expr(0)),
                                         max(min(xx, W - 1), Expr(0))),
                                    detail::zero_of(data));
            },
            opt.name + ".data");
    blocked = with_tag(blocked, "conv2d_data");
    Tensor conv = detail::conv2d_blocked(blocked, pack_conv2d_weight(weight, s.C, opt), s, l, opt, {0, 0});
    const int ob = l.out_block;
    return compute(
            {data.shape()[0], detail::i32(s.OC), detail::i32(s.OH), detail::i32(s.OW)},
            [&](Expr n, Expr c, Expr y, Expr x) {
                Expr v = conv(n, c / ob, y, x, c % ob);
                return opt.bias.defined() ? v + opt.bias(c) : v;
            },
            opt.name + ".nchw");
}

namespace detail {

// The register tile of the blocked output: oc_blocks output blocks x rows x cols pixels, one vector
// accumulator each. 28 accumulators leave 4 of the 32 AVX-512 registers for the weight vectors; every
// data value is broadcast once and used by oc_blocks FMAs, every weight vector by rows x cols FMAs.
struct ConvTile {
    int oc_blocks, rows, cols;
};

// `block_weight_bytes` is the packed weight of one output block; the blocks of one tile are read again
// for every tile along the image, so together they should stay near the core: in L2, or at worst a
// little past it, in L3. Two threads may share that L2 (on this machine's two vCPUs, one thread reaches
// half the FMA peak and two reach all of it, as two threads of one core do). ResNet's 3x3 convolutions
// to 512 channels on 7x7 (weights of 295 KiB a block, 9.4 MiB in all, streamed from memory) ran 5-15%
// faster in blocks of four (1.15 MiB a tile) than of two, on one thread and on two; past about L2's
// size plus a quarter the tiles are not measured. Two blocks are the floor all the same: with one,
// every broadcast feeds a single FMA and the tile runs at half speed whatever the weights cost.
inline ConvTile conv_tile(int64_t OCo, int64_t OH, int64_t OW, int64_t block_weight_bytes = 0, int accumulators = 28) {
    constexpr int64_t kWeightBudget = 1280 << 10;
    // A small cost model over all tiles that fit. One step of the reduction costs the largest of its
    // FMAs (two per cycle), its broadcasts (rows x cols, one per cycle) and its loads through the two load
    // ports (the broadcasts and oc_blocks weight vectors, which stream from L2 and count double), at
    // least 6 cycles (below about 12 chains the FMA latency shows), plus a cycle of loop overhead;
    // partial tiles at the edges cost as much as whole ones. The cheapest total wins; among equals, the
    // fewest output blocks (fewer weight streams).
    ConvTile best{1, 1, 1};
    double best_cost = 1e300;
    for (int ob = 1; ob <= std::min<int64_t>(OCo, 4); ++ob) {
        if (ob > 2 && ob * block_weight_bytes > kWeightBudget) break;
        for (int rows = 1; rows <= std::min<int64_t>(OH, accumulators); ++rows)
            for (int cols = 1; cols <= std::min<int64_t>(OW, accumulators); ++cols) {
                const int acc = ob * rows * cols;
                if (acc > accumulators) break;
                if (rows > 1 && cols < OW) continue;  // rows stack only under whole-width tiles
                const double step =
                        std::max({acc / 2.0, double(rows * cols), (2.0 * ob + rows * cols) / 2.0, 6.0}) + 1.0;
                const double tiles =
                        double(ceil_div(OCo, ob)) * double(ceil_div(OH, rows)) * double(ceil_div(OW, cols));
                const double cost = tiles * step;
                if (cost < best_cost * (1 - 1e-9)) best_cost = cost, best = {ob, rows, cols};
            }
    }
    return best;
}

// The reduction loops of the accumulator tile, outermost first, with the innermost channel loop split
// by 4 and unrolled when it divides: a longer straight run of FMAs between loop branches.
inline std::vector<IterVar> order_reduction(Stage& cs, std::vector<IterVar> reduce) {
    const IterVar last = reduce.back();
    auto* ext = as_const_int(last.dom().extent);
    if (ext && *ext > 4 && *ext % 4 == 0) {
        auto [o, i] = cs.split(last, 4);
        reduce.back() = o;
        reduce.push_back(i);
        cs.unroll(i);
    } else if (ext && *ext <= 4) {
        cs.unroll(last);
    }
    return reduce;
}

}  // namespace detail

// Schedules the nn::conv2d (or conv2d_nchwc) behind `out`. `out` is the convolution's result or an
// elementwise function of it (bias, activation, residual add). A blocked output has that epilogue fused
// into the copy-out of each register tile; an NCHW output is unblocked in one parallel pass.
inline void schedule_conv2d(Schedule& s, const Tensor& out, const Target& target = {}) {
    constexpr const char* who = "nn::schedule_conv2d";
    OpPtr cv = detail::find_tagged(out, "conv2d");
    if (!cv)
        kiln::detail::fail(who, ": '", out.name(),
                           "' is not computed from an nn::conv2d; define it with kiln::nn::conv2d or conv2d_nchwc");
    OpPtr data = detail::find_tagged(out, "conv2d_data");
    OpPtr wpack = detail::find_tagged(out, "conv2d_pack_weight");
    detail::inline_epilogue(s, cv, out, who);
    const int lanes = detail::f32_lanes(target);
    for (size_t d = 0; d < cv->shape.size(); ++d) detail::const_dim(cv->shape[d], cv->name, d, who);
    const int64_t OCo = *as_const_int(cv->shape[1]), OH = *as_const_int(cv->shape[2]), OW = *as_const_int(cv->shape[3]);
    const int ob = static_cast<int>(*as_const_int(cv->shape[4]));

    // A blocked output (the convolution itself or an elementwise function in the same layout) takes the
    // epilogue into its tiles; anything else (NCHW) reads the finished blocked result.
    bool blocked_out = out.ndim() == cv->shape.size();
    for (size_t d = 0; blocked_out && d < out.ndim(); ++d) blocked_out = equal(out.shape()[d], cv->shape[d]);
    Tensor T = Tensor(cv), CC = Tensor(cv);
    if (blocked_out) {
        T = out;
        if (out.op().get() == cv.get()) CC = s.cache_write(out, "local");
    } else {
        // Unblocking reads the blocked result with a stride; one pass per output plane, vectorised along
        // its rows, costs a small fraction of the convolution.
        Stage os = s[out];
        const size_t r = out.ndim();
        os.parallel(os.fuse(out.axis(0), out.axis(1)));
        if (*as_const_int(out.shape()[r - 1]) >= lanes) {
            auto [xo, xi] = os.split(out.axis(r - 1), lanes);
            os.vectorize(xi);
        }
        CC = s.cache_write(T, "local");
    }

    int64_t block_weight_bytes = 1;
    for (auto& r : cv->reduce_axis) block_weight_bytes *= *as_const_int(r.dom().extent);
    const detail::ConvTile tile = detail::conv_tile(OCo, OH, OW, block_weight_bytes * ob * cv->dtype.bytes());
    Stage st = s[T];
    auto [oo, oi_blk] = st.split(T.axis(1), tile.oc_blocks);
    auto [yo, yi] = st.split(T.axis(2), tile.rows);
    auto [xo, xi] = st.split(T.axis(3), tile.cols);
    st.reorder({T.axis(0), oo, yo, xo, oi_blk, yi, xi, T.axis(4)});
    if (ob % lanes == 0) st.vectorize(T.axis(4));
    // The copy-out unrolled too: then every access to the accumulator tile has a constant index, LLVM
    // turns the tile into registers at once, and its memory passes (LICM's promotion, GVN, DSE) have
    // nothing to chase. With a loop here they worked through the tile's loads and stores for a third of
    // each convolution's compile time.
    st.unroll(oi_blk);
    st.unroll(yi);
    st.unroll(xi);
    st.parallel(st.fuse(st.fuse(T.axis(0), oo), yo));

    Stage cs = s[CC];
    cs.compute_at(st, xo);
    std::vector<IterVar> order = {cs.axis(0)};
    for (auto& r : detail::order_reduction(cs, cs.node()->op->reduce_axis)) order.push_back(r);
    // Pixel outside block: each broadcast data value feeds its FMAs back to back, so it dies at once
    // and the register allocator never has to spill an accumulator to keep it.
    for (size_t d : {2, 3, 1, 4}) order.push_back(cs.axis(d));
    cs.reorder(order);
    cs.unroll(cs.axis(1));
    cs.unroll(cs.axis(2));
    cs.unroll(cs.axis(3));
    if (ob % lanes == 0) cs.vectorize(cs.axis(4));

    if (data) {
        Stage ds = s[data];
        const size_t r = data->shape.size();
        ds.parallel(ds.fuse(ds.axis(0), ds.axis(1)));
        if (*as_const_int(data->shape[r - 1]) % lanes == 0) ds.vectorize(ds.axis(r - 1));
    }
    if (wpack) {
        Stage ws = s[wpack];
        ws.parallel(ws.axis(0));
        if (*as_const_int(wpack->shape.back()) % lanes == 0) ws.vectorize(ws.axis(5));
    }
}

}  // namespace kiln::nn
