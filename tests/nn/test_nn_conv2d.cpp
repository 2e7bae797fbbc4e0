// kiln::nn::conv2d and conv2d_nchwc with their default schedules against a naive NCHW loop: the
// ResNet-18 layers and small odd shapes (channels 3, 5, 17; spatial 1, 7, 13) with stride, padding,
// dilation, groups and depthwise, bias and fused epilogues, on one and two threads.
#include <kiln/nn.hpp>

#include "helpers.hpp"

using namespace kiln;

namespace {

struct Conv {
    int N, C, H, W, OC, KH, KW;
    int stride = 1, pad = 0, dilation = 1, groups = 1;
    std::array<int, 4> pads() const { return {pad, pad, pad, pad}; }
    int OH() const { return (H + 2 * pad - dilation * (KH - 1) - 1) / stride + 1; }
    int OW() const { return (W + 2 * pad - dilation * (KW - 1) - 1) / stride + 1; }
    nn::Conv2dOptions options(Tensor bias = Tensor()) const {
        return {.stride = {stride, stride},
                .padding = pads(),
                .dilation = {dilation, dilation},
                .groups = groups,
                .bias = bias};
    }
};

// The reference: NCHW data, OIHW weight, straight from the definition.
std::vector<float> naive_conv(const Conv& c, const float* x, const float* w, const float* bias) {
    const int OH = c.OH(), OW = c.OW(), icg = c.C / c.groups, ocg = c.OC / c.groups;
    std::vector<float> y(size_t(c.N) * c.OC * OH * OW);
    for (int n = 0; n < c.N; ++n)
        for (int oc = 0; oc < c.OC; ++oc)
            for (int oy = 0; oy < OH; ++oy)
                for (int ox = 0; ox < OW; ++ox) {
                    double acc = bias ? bias[oc] : 0.0;
                    const int g = oc / ocg;
                    for (int ic = 0; ic < icg; ++ic)
                        for (int ky = 0; ky < c.KH; ++ky)
                            for (int kx = 0; kx < c.KW; ++kx) {
                                const int iy = oy * c.stride - c.pad + ky * c.dilation,
                                          ix = ox * c.stride - c.pad + kx * c.dilation;
                                if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
                                acc += double(x[((size_t(n) * c.C + g * icg + ic) * c.H + iy) * c.W + ix]) *
                                       w[((size_t(oc) * icg + ic) * c.KH + ky) * c.KW + kx];
                            }
                    y[((size_t(n) * c.OC + oc) * OH + oy) * OW + ox] = static_cast<float>(acc);
                }
    return y;
}

enum class Epilogue { None, Bias, BiasRelu, Residual };

// NCHW in and out, the weight packed inside the pipeline.
void check_nchw(const Conv& c, Epilogue epi, int threads) {
    CAPTURE(c.N);
    CAPTURE(c.C);
    CAPTURE(c.H);
    CAPTURE(c.W);
    CAPTURE(c.OC);
    CAPTURE(c.KH);
    CAPTURE(c.stride);
    CAPTURE(c.pad);
    CAPTURE(c.dilation);
    CAPTURE(c.groups);
    CAPTURE(static_cast<int>(epi));
    CAPTURE(threads);
    set_num_threads(threads);
    auto x = placeholder({c.N, c.C, c.H, c.W}, f32, "x");
    auto w = placeholder({c.OC, c.C / c.groups, c.KH, c.KW}, f32, "w");
    auto b = placeholder({c.OC}, f32, "b");
    auto r = placeholder({c.N, c.OC, c.OH(), c.OW()}, f32, "r");
    Tensor y = nn::conv2d(x, w, c.options(epi == Epilogue::None ? Tensor() : b));
    if (epi == Epilogue::BiasRelu) {
        Tensor pre = y;
        y = compute(
                pre.shape(), [&](Expr n, Expr k, Expr i, Expr j) { return max(pre(n, k, i, j), 0.0f); }, "relu");
    } else if (epi == Epilogue::Residual) {
        Tensor pre = y;
        y = compute(
                pre.shape(), [&](Expr n, Expr k, Expr i, Expr j) { return pre(n, k, i, j) + r(n, k, i, j); },
                "residual");
    }
    Schedule s(y);
    nn::schedule_conv2d(s, y);
    std::vector<Tensor> args = {x, w};
    if (epi != Epilogue::None) args.push_back(b);
    if (epi == Epilogue::Residual) args.push_back(r);
    args.push_back(y);
    auto f = build(s, args);

    Buffer bx = test::random_buffer({c.N, c.C, c.H, c.W}, 1),
           bw = test::random_buffer({c.OC, c.C / c.groups, c.KH, c.KW}, 2);
    Buffer bb = test::random_buffer({c.OC}, 3), br = test::random_buffer({c.N, c.OC, c.OH(), c.OW()}, 4);
    Buffer by({c.N, c.OC, c.OH(), c.OW()});
    if (epi == Epilogue::None)
        f(bx, bw, by);
    else if (epi == Epilogue::Residual)
        f(bx, bw, bb, br, by);
    else
        f(bx, bw, bb, by);
    std::vector<float> ref = naive_conv(c, bx.data_as<float>(), bw.data_as<float>(),
                                        epi == Epilogue::None ? nullptr : bb.data_as<float>());
    for (size_t i = 0; i < ref.size(); ++i) {
        if (epi == Epilogue::BiasRelu) ref[i] = std::max(ref[i], 0.0f);
        if (epi == Epilogue::Residual) ref[i] += br.data_as<float>()[i];
    }
    CHECK(test::max_rel_err(by.data_as<float>(), ref.data(), static_cast<int64_t>(ref.size())) < 1e-4);
}

// Blocked in and out with a weight packed by its own kernel, as the benchmark and the graph layer run it,
// with bias and ReLU fused.
void check_blocked(const Conv& c, int threads) {
    CAPTURE(c.C);
    CAPTURE(c.H);
    CAPTURE(c.OC);
    CAPTURE(c.KH);
    CAPTURE(c.stride);
    CAPTURE(c.groups);
    CAPTURE(threads);
    set_num_threads(threads);
    const nn::Conv2dLayout l = nn::conv2d_layout(c.C, c.OC, c.groups);
    const int cb = l.data_block, ob = l.out_block;
    const int Co = (c.C + cb - 1) / cb, OCo = (c.OC + ob - 1) / ob;

    auto w = placeholder({c.OC, c.C / c.groups, c.KH, c.KW}, f32, "w");
    nn::Conv2dOptions opt = c.options();
    Tensor wp = nn::pack_conv2d_weight(w, c.C, opt);
    Schedule ps(wp);
    auto pack = build(ps, {w, wp});

    auto x = placeholder({c.N, Co, c.H, c.W, cb}, f32, "x");
    auto wpk = placeholder(wp.shape(), f32, "wp");
    auto b = placeholder({c.OC}, f32, "b");
    opt.bias = b;
    opt.out_channels = c.OC;
    Tensor conv = nn::conv2d_nchwc(x, wpk, c.C, opt);
    Tensor y = compute(
            conv.shape(), [&](Expr n, Expr k, Expr i, Expr j, Expr v) { return max(conv(n, k, i, j, v), 0.0f); },
            "relu");
    Schedule s(y);
    nn::schedule_conv2d(s, y);
    auto f = build(s, {x, wpk, b, y});

    Buffer bx = test::random_buffer({c.N, c.C, c.H, c.W}, 5),
           bw = test::random_buffer({c.OC, c.C / c.groups, c.KH, c.KW}, 6);
    Buffer bb = test::random_buffer({c.OC}, 7);
    std::vector<int64_t> wshape;
    for (auto& e : wp.shape()) wshape.push_back(*as_const_int(e));
    Buffer bxb({c.N, Co, c.H, c.W, cb}), bwp(wshape), by({c.N, OCo, c.OH(), c.OW(), ob});
    pack(bw, bwp);
    // Block the data by hand: channel ch of NCHW goes to block ch / cb, lane ch % cb; padding lanes are zero.
    float* xb = bxb.data_as<float>();
    std::fill(xb, xb + bxb.size(), 0.0f);
    for (int n = 0; n < c.N; ++n)
        for (int ch = 0; ch < c.C; ++ch)
            for (int i = 0; i < c.H * c.W; ++i)
                xb[((size_t(n) * Co + ch / cb) * c.H * c.W + i) * cb + ch % cb] =
                        bx.data_as<float>()[(size_t(n) * c.C + ch) * c.H * c.W + i];
    f(bxb, bwp, bb, by);

    std::vector<float> ref = naive_conv(c, bx.data_as<float>(), bw.data_as<float>(), bb.data_as<float>());
    const int OH = c.OH(), OW = c.OW();
    std::vector<float> got(ref.size());
    bool padding_zero = true;
    for (int n = 0; n < c.N; ++n)
        for (int k = 0; k < OCo * ob; ++k)
            for (int i = 0; i < OH * OW; ++i) {
                const float v = by.data_as<float>()[((size_t(n) * OCo + k / ob) * OH * OW + i) * ob + k % ob];
                if (k < c.OC)
                    got[(size_t(n) * c.OC + k) * OH * OW + i] = v;
                else
                    padding_zero &= v == 0.0f;
            }
    for (auto& v : ref) v = std::max(v, 0.0f);
    CHECK(padding_zero);
    CHECK(test::max_rel_err(got.data(), ref.data(), static_cast<int64_t>(ref.size())) < 1e-4);
}

}  // namespace

TEST_CASE("nn::conv2d: small odd shapes, stride, padding, dilation, epilogues") {
    int case_no = 0;
    for (int C : {3, 5, 17})
        for (int HW : {1, 7, 13})
            for (int K : {1, 3}) {
                if (K > HW + 2) continue;
                const int OC = C == 3 ? 17 : (C == 5 ? 3 : 5);
                Conv c{1 + case_no % 2, C, HW, HW + (case_no % 3 == 0), OC, K, K};
                c.pad = K / 2;
                c.stride = 1 + case_no % 2;
                c.dilation = (K == 3 && HW >= 7 && case_no % 3 == 1) ? 2 : 1;
                check_nchw(c, static_cast<Epilogue>(case_no % 4), 1 + case_no % 2);
                ++case_no;
            }
    set_num_threads(2);
}

TEST_CASE("nn::conv2d: groups and depthwise") {
    for (int threads : {1, 2}) {
        check_nchw({1, 17, 13, 13, 17, 3, 3, 1, 1, 1, 17}, Epilogue::Bias, threads);     // depthwise, odd channels
        check_nchw({1, 32, 7, 9, 32, 3, 3, 2, 1, 1, 32}, Epilogue::BiasRelu, threads);   // depthwise, stride 2
        check_nchw({2, 6, 7, 7, 9, 3, 3, 1, 1, 1, 3}, Epilogue::None, threads);          // groups of 2 in, 3 out
        check_nchw({1, 64, 13, 13, 32, 1, 1, 1, 0, 1, 2}, Epilogue::Residual, threads);  // groups of whole blocks
        check_nchw({1, 5, 13, 7, 10, 3, 3, 1, 2, 2, 5}, Epilogue::Bias, threads);  // channel multiplier 2, dilated
        check_nchw({1, 104, 9, 9, 104, 3, 3, 2, 1, 1, 13}, Epilogue::BiasRelu,
                   threads);  // groups of 8 share blocks, the last half full
        check_nchw({1, 72, 7, 8, 72, 3, 3, 1, 1, 1, 3}, Epilogue::Residual, threads);  // groups of 24 straddle blocks
    }
}

TEST_CASE("nn::conv2d_layout: groups narrower than a block share the micro-kernel while its zeros stay few") {
    using Kind = nn::Conv2dLayout::Kind;
    const Target avx512{.vector_bits = 512};
    struct Case {
        int64_t channels, out_channels;
        int groups;
        Kind kind;
        int64_t weight_outer;
    } cases[] = {
            {104, 104, 13, Kind::Dense, 1},  // groups of 8: two per block, half the products zero
            {72, 72, 3, Kind::Dense, 3},     // groups of 24: a block's groups reach over three input blocks
            {64, 32, 2, Kind::Dense, 2},     // groups of whole blocks read their own two
            {6, 9, 3, Kind::Dense, 1},       // groups of 2 in, 3 out: 8 products per useful one, the most allowed
            {5, 10, 5, Kind::Grouped, 1},    // channel multiplier 2: 16 products per useful one
            {17, 17, 17, Kind::Depthwise, 1},
    };
    for (const Case& c : cases) {
        CAPTURE(c.channels);
        CAPTURE(c.out_channels);
        CAPTURE(c.groups);
        const nn::Conv2dLayout l = nn::conv2d_layout(c.channels, c.out_channels, c.groups, avx512);
        CHECK(l.kind == c.kind);
        CHECK(l.weight_outer == c.weight_outer);
    }
}

TEST_CASE("nn::conv2d_nchwc: the ResNet-18 layers with a prepacked weight, bias and ReLU") {
    const Conv layers[] = {
            {1, 3, 224, 224, 64, 7, 7, 2, 3},  {1, 64, 56, 56, 64, 3, 3, 1, 1},   {1, 64, 56, 56, 128, 3, 3, 2, 1},
            {1, 128, 28, 28, 128, 3, 3, 1, 1}, {1, 64, 56, 56, 128, 1, 1, 2, 0},  {1, 128, 28, 28, 256, 3, 3, 2, 1},
            {1, 256, 14, 14, 256, 3, 3, 1, 1}, {1, 128, 28, 28, 256, 1, 1, 2, 0}, {1, 256, 14, 14, 512, 3, 3, 2, 1},
            {1, 512, 7, 7, 512, 3, 3, 1, 1},   {1, 256, 14, 14, 512, 1, 1, 2, 0}};
    int i = 0;
    for (const Conv& c : layers) check_blocked(c, 1 + i++ % 2);
    check_blocked({2, 17, 13, 11, 5, 3, 3, 1, 1}, 2);
    check_blocked({1, 5, 7, 7, 33, 3, 3, 2, 1}, 1);
    check_blocked({1, 64, 13, 13, 1000, 1, 1, 1, 0}, 2);  // SqueezeNet's classifier: the last tile of blocks is short
    check_blocked({1, 32, 9, 9, 32, 3, 3, 1, 1, 1, 32}, 2);   // depthwise
    check_blocked({1, 48, 11, 11, 48, 3, 3, 2, 1, 1, 6}, 1);  // RegNet-Y's groups of 8
    set_num_threads(2);
}

TEST_CASE("nn::conv2d_nchwc: a tile at the image's right edge keeps its accumulators in registers") {
    // DenseNet's 3x3 layers to 32 channels on 28x28: two tiles of 14 pixels a row, the second clipped by the
    // window's last column. Cut by that column, its unrolled pixel loop would have kept an extent that is not
    // constant (`min(15 - kw, 14)`) and its accumulators in memory, at half the speed.
    const Conv c{1, 128, 28, 28, 32, 3, 3, 1, 1};
    check_blocked(c, 1);
    auto X = placeholder({1, 8, 28, 28, 16}, f32, "X");
    auto W = placeholder({2, 8, 3, 3, 16, 16}, f32, "W");
    auto Y = nn::conv2d_nchwc(X, W, 128, {.padding = {1, 1, 1, 1}, .out_channels = 32});
    Schedule s(Y);
    nn::schedule_conv2d(s, Y);
    const std::string ir = to_string(lower(s, {X, W, Y}));
    // Every access to the accumulator tile has a constant index.
    size_t accesses = 0;
    for (size_t at = ir.find("conv2d.local[ramp("); at != std::string::npos;
         at = ir.find("conv2d.local[ramp(", at + 1), ++accesses) {
        const size_t from = at + std::string("conv2d.local[ramp(").size();
        const std::string base = ir.substr(from, ir.find(',', from) - from);
        CAPTURE(base);
        CHECK(base.find_first_not_of("0123456789") == std::string::npos);
    }
    CHECK(accesses > 0);
}
