// Every primitive against a naive reference or Eigen, on shapes that do not divide evenly.
#include <Eigen/Dense>

#include <dlfcn.h>

#include <thread>

#include <kiln/runtime/workspace.hpp>

#include "helpers.hpp"

using namespace kiln;
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace {
struct Matmul {
    Tensor A, B, C;
    IterVar k;
    Matmul(int M, int N, int K) {
        A = placeholder({M, K}, f32, "A");
        B = placeholder({K, N}, f32, "B");
        k = reduce_axis(0, K, "k");
        C = compute(
                {M, N}, [&](Expr i, Expr j) { return sum(A(i, k) * B(k, j), {k}); }, "C");
    }
};

void check_matmul(Schedule& s, Matmul& m, int M, int N, int K) {
    auto f = build(s, {m.A, m.B, m.C});
    Buffer a = test::random_buffer({M, K}, 1), b = test::random_buffer({K, N}, 2), c({M, N});
    f(a, b, c);
    Eigen::Map<RowMat> ea(a.data_as<float>(), M, K), eb(b.data_as<float>(), K, N);
    RowMat ref = ea * eb;
    CHECK(test::max_rel_err(c.data_as<float>(), ref.data(), M * N) < 1e-4);
}
}  // namespace

TEST_CASE("matmul: the lesson's schedule on 1024 and on odd shapes, against Eigen") {
    for (auto [M, N, K] : {std::tuple{128, 128, 128}, std::tuple{67, 45, 29}, std::tuple{33, 97, 1}}) {
        Matmul m(M, N, K);
        Schedule s(m.C);
        auto [xo, xi] = s[m.C].split(m.C.axis(0), 32);
        auto [yo, yi] = s[m.C].split(m.C.axis(1), 32);
        s[m.C].reorder(xo, yo, xi, yi);
        s[m.C].vectorize(yi);
        check_matmul(s, m, M, N, K);
    }
}

TEST_CASE("matmul: tile, parallel, unroll, cache_write, split of the reduction") {
    const int M = 77, N = 61, K = 53;
    Matmul m(M, N, K);
    Schedule s(m.C);
    auto CC = s.cache_write(m.C, "local");
    auto [xo, yo, xi, yi] = s[m.C].tile(m.C.axis(0), m.C.axis(1), 8, 16);
    s[m.C].parallel(xo);
    s[m.C].vectorize(yi);
    s[CC].compute_at(s[m.C], yo);
    auto [ko, ki] = s[CC].split(s[CC].reduce_axis(0), 4);
    s[CC].reorder(ko, ki, s[CC].axis(0), s[CC].axis(1));
    s[CC].unroll(ki);
    auto [c1o, c1i] = s[CC].split(s[CC].axis(1), 16);
    s[CC].vectorize(c1i);
    check_matmul(s, m, M, N, K);
}

TEST_CASE("matmul: rfactor of the reduction") {
    const int M = 9, N = 13, K = 103;
    Matmul m(M, N, K);
    Schedule s(m.C);
    auto [ko, ki] = s[m.C].split(m.C.reduce_axis(0), 8);
    auto CF = s.rfactor(m.C, ko);
    s[CF].parallel(CF.axis(0));
    check_matmul(s, m, M, N, K);
}

TEST_CASE("matmul: fuse and split_nparts, ShiftInwards") {
    const int M = 45, N = 38, K = 17;
    Matmul m(M, N, K);
    Schedule s(m.C);
    auto f = s[m.C].fuse(m.C.axis(0), m.C.axis(1));
    auto [o, i] = s[m.C].split_nparts(f, 7);
    s[m.C].parallel(o);
    check_matmul(s, m, M, N, K);

    auto A = placeholder({45}, f32, "A");
    auto B = compute(
            {45}, [&](Expr i) { return A(i) * 3.0f; }, "B");
    Schedule s2(B);
    auto [bo, bi] = s2[B].split(B.axis(0), 8, TailStrategy::ShiftInwards);
    s2[B].vectorize(bi);
    auto fn = build(s2, {A, B});
    Buffer a = test::random_buffer({45}, 3), b({45});
    fn(a, b);
    for (int x = 0; x < 45; ++x) CHECK(b.at<float>(x) == doctest::Approx(a.at<float>(x) * 3.0f));
}

TEST_CASE("batched matmul with a symbolic batch size") {
    Var n = var("n");
    const int M = 7, N = 9, K = 11;
    auto A = placeholder({n, M, K}, f32, "A");
    auto B = placeholder({n, K, N}, f32, "B");
    auto k = reduce_axis(0, K, "k");
    auto C = compute(
            {n, M, N}, [&](Expr b, Expr i, Expr j) { return sum(A(b, i, k) * B(b, k, j), {k}); }, "C");
    Schedule s(C);
    s[C].parallel(C.axis(0));
    auto [jo, ji] = s[C].split(C.axis(2), 4);
    s[C].vectorize(ji);
    auto f = build(s, {A, B, C});
    for (int batch : {1, 3}) {
        Buffer a = test::random_buffer({batch, M, K}, 4), b = test::random_buffer({batch, K, N}, 5), c({batch, M, N});
        f(a, b, c);
        for (int q = 0; q < batch; ++q) {
            Eigen::Map<RowMat> ea(a.data_as<float>() + q * M * K, M, K), eb(b.data_as<float>() + q * K * N, K, N);
            RowMat ref = ea * eb;
            CHECK(test::max_rel_err(c.data_as<float>() + q * M * N, ref.data(), M * N) < 1e-4);
        }
    }
}

TEST_CASE("transpose of 37x53, tiled, with Eigen maps as arguments") {
    auto A = placeholder({37, 53}, f32, "A");
    auto T = compute(
            {53, 37}, [&](Expr i, Expr j) { return A(j, i); }, "T");
    Schedule s(T);
    auto [xo, yo, xi, yi] = s[T].tile(T.axis(0), T.axis(1), 8, 8);
    s[T].vectorize(yi);
    auto f = build(s, {A, T});
    RowMat a = RowMat::Random(37, 53), t(53, 37);
    f(Eigen::Map<RowMat>(a.data(), 37, 53), Eigen::Map<RowMat>(t.data(), 53, 37));
    RowMat ref = a.transpose();
    CHECK(test::max_rel_err(t.data(), ref.data(), 53 * 37) == 0.0);
    // A column-major Eigen matrix is read through a contiguous copy.
    Eigen::MatrixXf cm = a;
    RowMat t2(53, 37);
    f(cm, t2);
    CHECK(test::max_rel_err(t2.data(), ref.data(), 53 * 37) == 0.0);
    // A column-major output is written back from the dense copy the kernel filled.
    Eigen::MatrixXf t3(53, 37);
    f(a, t3);
    CHECK((t3 - Eigen::MatrixXf(ref)).cwiseAbs().maxCoeff() == 0.0f);
}

TEST_CASE("transposes in registers: channel blocking of 16, 8 and 4 lanes, a row tail, JIT and C backend") {
    // NCHW to NCHW[b]c with the pixel loop tiled by b and unrolled around the vector of b channels: each
    // tile is b x b, read as b contiguous rows of pixels and shuffled (lower/transpose_in_registers.hpp).
    // 29 pixels a row leave a partial tile, which keeps its strided loads.
    for (int b : {16, 8, 4}) {
        CAPTURE(b);
        const int C = 3 * b, H = 5, W = 29;
        auto X = placeholder({C, H, W}, f32, "X");
        auto Y = compute(
                {C / b, H, W, b}, [&](Expr c, Expr y, Expr x, Expr ci) { return X(c * b + ci, y, x); }, "Y");
        Schedule s(Y);
        auto [xo, xi] = s[Y].split(Y.axis(2), b);
        s[Y].reorder({xo, Y.axis(3), xi});
        s[Y].unroll(xi);
        s[Y].vectorize(Y.axis(3));
        const std::string ir = to_string(lower(s, {X, Y}));
        CHECK(ir.find("shuffle(X.row0, X.row" + std::to_string(b / 2) + ";") != std::string::npos);
        Buffer x = test::random_buffer({C, H, W}, 3);
        std::vector<float> want(static_cast<size_t>(C * H * W));
        for (int c = 0; c < C; ++c)
            for (int y = 0; y < H; ++y)
                for (int w = 0; w < W; ++w)
                    want[static_cast<size_t>((((c / b) * H + y) * W + w) * b + c % b)] =
                            x.data_as<float>()[(c * H + y) * W + w];
        BuildOptions as_c;
        as_c.target.kind = "c";
        for (const BuildOptions& o : {BuildOptions{}, as_c}) {
            CAPTURE(o.target.kind);
            Buffer y({C / b, H, W, b});
            build(s, {X, Y}, o)(x, y);
            CHECK(std::equal(want.begin(), want.end(), y.data_as<float>()));
        }
    }
    // Starts that move by two elements are no transpose: the loads stay as they were, and correct.
    auto X = placeholder({16, 40}, f32, "X");
    auto Y = compute(
            {16, 16}, [&](Expr x, Expr c) { return X(c, 2 * x); }, "Y");
    Schedule s(Y);
    s[Y].unroll(Y.axis(0));
    s[Y].vectorize(Y.axis(1));
    CHECK(to_string(lower(s, {X, Y})).find("shuffle") == std::string::npos);
    Buffer x = test::random_buffer({16, 40}, 4), y({16, 16});
    build(s, {X, Y})(x, y);
    for (int i = 0; i < 16; ++i)
        for (int c = 0; c < 16; ++c) REQUIRE(y.data_as<float>()[i * 16 + c] == x.data_as<float>()[c * 40 + 2 * i]);
}

TEST_CASE("strided arguments of three dimensions and more than one tile go through dense copies and back") {
    // X is a [5, 70, 45] view that takes every other plane of its memory and transposes the last two axes.
    auto X = placeholder({5, 70, 45}, f32, "X");
    auto Y = compute(
            {5, 70, 45}, [&](Expr b, Expr i, Expr j) { return X(b, i, j) + 1.0f; }, "Y");
    Schedule s(Y);
    auto f = build(s, {X, Y});
    Buffer memory = test::random_buffer({10, 45, 70}, 21);
    Buffer x(memory.data(), {5, 70, 45}, f32, {2 * 45 * 70, 1, 70});
    Buffer y_memory({5, 45, 70});
    Buffer y(y_memory.data(), {5, 70, 45}, f32, {45 * 70, 1, 70});
    f(x, y);
    for (int b = 0; b < 5; ++b)
        for (int i = 0; i < 70; ++i)
            for (int j = 0; j < 45; ++j) CHECK_EQ(y.at<float>(b, i, j), memory.at<float>(2 * b, j, i) + 1.0f);
}

TEST_CASE("elementwise chain with every intrinsic, vectorized and scalar") {
    const int n = 203;
    auto X = placeholder({n}, f32, "X");
    auto Y = compute(
            {n},
            [&](Expr i) {
                Expr x = X(i);
                Expr p = abs(x) + 0.5f;
                return exp(x) + log(p) + sqrt(p) + rsqrt(p) + tanh(x) + sigmoid(x) + erf(x) + pow(p, 1.5f) +
                       floor(x * 3.0f) + ceil(x * 3.0f) + round(x * 3.0f) + fma(x, x, 1.0f) + max(x, 0.0f) -
                       min(x, 0.0f) + select(x > 0.2f, x, -x) + if_then_else(x < 0.0f, 1.0f, 2.0f);
            },
            "Y");
    auto ref = [](float x) {
        float p = std::fabs(x) + 0.5f;
        return std::exp(x) + std::log(p) + std::sqrt(p) + 1.0f / std::sqrt(p) + std::tanh(x) +
               1.0f / (1.0f + std::exp(-x)) + std::erf(x) + std::pow(p, 1.5f) + std::floor(x * 3.0f) +
               std::ceil(x * 3.0f) + std::nearbyint(x * 3.0f) + std::fma(x, x, 1.0f) + std::max(x, 0.0f) -
               std::min(x, 0.0f) + (x > 0.2f ? x : -x) + (x < 0.0f ? 1.0f : 2.0f);
    };
    for (int vec : {0, 1}) {
        Schedule s(Y);
        if (vec) {
            auto [o, i] = s[Y].split(Y.axis(0), 16);
            s[Y].vectorize(i);
        }
        auto f = build(s, {X, Y});
        Buffer x = test::random_buffer({n}, 6, -2.f, 2.f), y({n});
        f(x, y);
        for (int i = 0; i < n; ++i) CHECK(y.at<float>(i) == doctest::Approx(ref(x.at<float>(i))).epsilon(1e-4));
    }
}

TEST_CASE("softmax: a multi-stage pipeline with compute_at and compute_inline") {
    const int R = 13, C = 37;
    auto X = placeholder({R, C}, f32, "X");
    auto k1 = reduce_axis(0, C, "k1");
    auto mx = compute(
            {R}, [&](Expr i) { return max(X(i, k1), {k1}); }, "rowmax");
    auto e = compute(
            {R, C}, [&](Expr i, Expr j) { return exp(X(i, j) - mx(i)); }, "e");
    auto k2 = reduce_axis(0, C, "k2");
    auto den = compute(
            {R}, [&](Expr i) { return sum(e(i, k2), {k2}); }, "den");
    auto Y = compute(
            {R, C}, [&](Expr i, Expr j) { return e(i, j) / den(i); }, "Y");
    for (int variant = 0; variant < 5; ++variant) {
        CAPTURE(variant);
        Schedule s(Y);
        if (variant != 2) s[e].compute_inline();
        if (variant == 1) { s[den].compute_at(s[Y], Y.axis(0)); }
        if (variant == 2) {
            auto [o, i] = s[Y].split(Y.axis(1), 8);
            s[Y].vectorize(i);
            s[Y].parallel(Y.axis(0));
            s[den].compute_at(s[Y], Y.axis(0));
        }
        // One pass per row: rowmax is read by den and by Y (through the inlined e), and the row loop of Y
        // encloses both, in either order of the calls.
        if (variant >= 3) {
            auto [o, i] = s[Y].split(Y.axis(1), 8);
            s[Y].vectorize(i);
            s[Y].parallel(Y.axis(0));
            if (variant == 3) s[den].compute_at(s[Y], Y.axis(0));
            s[mx].compute_at(s[Y], Y.axis(0));
            if (variant == 4) s[den].compute_at(s[Y], Y.axis(0));
            const std::string ir = to_string(lower(s, {X, Y}, {.after = "schedule_ops"}));
            // Both reductions are realized inside the parallel row loop, one row each.
            CHECK(ir.find("parallel") < ir.find("realize rowmax"));
            CHECK(ir.find("realize rowmax") < ir.find("realize den"));
        }
        auto f = build(s, {X, Y});
        Buffer x = test::random_buffer({R, C}, 7, -3.f, 3.f), y({R, C});
        f(x, y);
        for (int i = 0; i < R; ++i) {
            float m = -INFINITY, d = 0;
            for (int j = 0; j < C; ++j) m = std::max(m, x.at<float>(i, j));
            for (int j = 0; j < C; ++j) d += std::exp(x.at<float>(i, j) - m);
            for (int j = 0; j < C; ++j)
                CHECK(y.at<float>(i, j) == doctest::Approx(std::exp(x.at<float>(i, j) - m) / d).epsilon(1e-5));
        }
    }
}

TEST_CASE("layernorm and a reduction to a scalar") {
    const int R = 5, C = 29;
    auto X = placeholder({R, C}, f32, "X");
    auto k = reduce_axis(0, C, "k");
    auto mean = compute(
            {R}, [&](Expr i) { return sum(X(i, k), {k}); }, "mean");
    auto k2 = reduce_axis(0, C, "k2");
    auto var_ = compute(
            {R}, [&](Expr i) { return sum((X(i, k2) - mean(i) / float(C)) * (X(i, k2) - mean(i) / float(C)), {k2}); },
            "var");
    auto Y = compute(
            {R, C}, [&](Expr i, Expr j) { return (X(i, j) - mean(i) / float(C)) * rsqrt(var_(i) / float(C) + 1e-5f); },
            "Y");
    Schedule s(Y);
    s[var_].compute_at(s[Y], Y.axis(0));
    auto f = build(s, {X, Y});
    Buffer x = test::random_buffer({R, C}, 8), y({R, C});
    f(x, y);
    for (int i = 0; i < R; ++i) {
        double m = 0, v = 0;
        for (int j = 0; j < C; ++j) m += x.at<float>(i, j);
        m /= C;
        for (int j = 0; j < C; ++j) v += (x.at<float>(i, j) - m) * (x.at<float>(i, j) - m);
        v /= C;
        for (int j = 0; j < C; ++j)
            CHECK(y.at<float>(i, j) == doctest::Approx((x.at<float>(i, j) - m) / std::sqrt(v + 1e-5)).epsilon(1e-4));
    }

    auto Z = placeholder({1000}, f32, "Z");
    auto r = reduce_axis(0, 1000, "r");
    auto total = compute(
            {1}, [&](Expr) { return sum(Z(r), {r}); }, "total");
    Schedule s2(total);
    auto [ro, ri] = s2[total].split(r, 16);
    auto partial = s2.rfactor(total, ri);
    auto [po, pi] = s2[partial].split(partial.axis(0), 16);
    s2[partial].vectorize(pi);
    auto g = build(s2, {Z, total});
    Buffer z = test::random_buffer({1000}, 9), t({1});
    g(z, t);
    double want = 0;
    for (int i = 0; i < 1000; ++i) want += z.at<float>(i);
    CHECK(t.at<float>(0) == doctest::Approx(want).epsilon(1e-4));
}

TEST_CASE("conv2d NCHW with padding and stride against a naive loop") {
    const int N = 1, CI = 3, H = 11, W = 13, CO = 5, KH = 3, KW = 3, S = 2, P = 1;
    const int OH = (H + 2 * P - KH) / S + 1, OW = (W + 2 * P - KW) / S + 1;
    auto X = placeholder({N, CI, H, W}, f32, "X");
    auto Wt = placeholder({CO, CI, KH, KW}, f32, "W");
    auto pad = compute(
            {N, CI, H + 2 * P, W + 2 * P},
            [&](Expr n, Expr c, Expr h, Expr w) {
                return if_then_else(h >= P && h < H + P && w >= P && w < W + P, X(n, c, h - P, w - P), 0.0f);
            },
            "pad");
    auto rc = reduce_axis(0, CI, "rc"), ry = reduce_axis(0, KH, "ry"), rx = reduce_axis(0, KW, "rx");
    auto Y = compute(
            {N, CO, OH, OW},
            [&](Expr n, Expr c, Expr h, Expr w) {
                return sum(pad(n, rc, h * S + ry, w * S + rx) * Wt(c, rc, ry, rx), {rc, ry, rx});
            },
            "Y");
    auto relu = compute(
            {N, CO, OH, OW}, [&](Expr n, Expr c, Expr h, Expr w) { return max(Y(n, c, h, w), 0.0f); }, "relu");
    for (int variant = 0; variant < 2; ++variant) {
        Schedule s(relu);
        if (variant == 0) {
            s[pad].compute_inline();
        } else {
            s[Y].compute_at(s[relu], relu.axis(1));
            s[pad].compute_at(s[Y], Y.axis(2));
            auto [wo, wi] = s[relu].split(relu.axis(3), 4);
            s[relu].vectorize(wi);
        }
        auto f = build(s, {X, Wt, relu});
        Buffer x = test::random_buffer({N, CI, H, W}, 10), w = test::random_buffer({CO, CI, KH, KW}, 11),
               y({N, CO, OH, OW});
        f(x, w, y);
        for (int c = 0; c < CO; ++c)
            for (int h = 0; h < OH; ++h)
                for (int q = 0; q < OW; ++q) {
                    float acc = 0;
                    for (int ci = 0; ci < CI; ++ci)
                        for (int a = 0; a < KH; ++a)
                            for (int b = 0; b < KW; ++b) {
                                int ih = h * S + a - P, iw = q * S + b - P;
                                if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                    acc += x.at<float>(0, ci, ih, iw) * w.at<float>(c, ci, a, b);
                            }
                    CHECK(y.at<float>(0, c, h, q) == doctest::Approx(std::max(acc, 0.0f)).epsilon(1e-4));
                }
    }
}

TEST_CASE("integer, f16 and f64 element types") {
    auto A = placeholder({19}, i32, "A");
    auto B = compute(
            {19}, [&](Expr i) { return A(i) / 3 + A(i) % 3; }, "B");
    Schedule s(B);
    auto [o, in] = s[B].split(B.axis(0), 8);
    s[B].vectorize(in);
    auto f = build(s, {A, B});
    std::vector<int32_t> a(19), b(19);
    for (int i = 0; i < 19; ++i) a[i] = i * 5 - 40;
    f(a.data(), b.data());
    for (int i = 0; i < 19; ++i) {
        int q = a[i] / 3 - ((a[i] % 3 != 0) && (a[i] < 0) ? 1 : 0);
        CHECK(b[i] == q + (a[i] - q * 3));
    }

    auto H = placeholder({10}, f16, "H");
    auto G = compute(
            {10}, [&](Expr i) { return cast(f16, H(i) * 2.0f); }, "G");
    Schedule s16(G);
    auto g = build(s16, {H, G});
    Buffer h({10}, f16), out({10}, f16);
    auto* hp = static_cast<uint16_t*>(h.data());
    for (int i = 0; i < 10; ++i) hp[i] = 0x3C00;  // 1.0 in half precision
    g(h, out);
    CHECK(static_cast<uint16_t*>(out.data())[3] == 0x4000);  // 2.0

    auto D = placeholder({7}, f64, "D");
    auto E = compute(
            {7}, [&](Expr i) { return D(i) * D(i); }, "E");
    Schedule sd(E);
    auto fd = build(sd, {D, E});
    std::vector<double> d = {1, 2, 3, 4, 5, 6, 1e-200}, e(7);
    fd(d.data(), e.data());
    CHECK(e[2] == 9.0);
}

TEST_CASE("the C backend (target kind c) computes what the JIT computes") {
    REQUIRE(Target::enabled("c"));
    BuildOptions as_c;
    as_c.target.kind = "c";
    // Floor division and modulo, by zero and by -1 too, in a vector tail.
    auto A = placeholder({21}, i32, "A");
    auto D = placeholder({21}, i32, "D");
    auto Q = compute(
            {21}, [&](Expr i) { return A(i) / D(i) + A(i) % D(i) * 1000; }, "Q");
    Schedule s(Q);
    auto [o, in] = s[Q].split(Q.axis(0), 8);
    s[Q].vectorize(in);
    auto jit = build(s, {A, D, Q}), c = build(s, {A, D, Q}, as_c);
    std::vector<int32_t> a(21), d(21), q_jit(21), q_c(21);
    for (int i = 0; i < 21; ++i) a[i] = i * 7 - 70, d[i] = i % 5 - 2;
    jit(a.data(), d.data(), q_jit.data());
    c(a.data(), d.data(), q_c.data());
    CHECK(q_c == q_jit);
    CHECK(c.source().find("void kiln_kernel(void** args, int64_t* sizes)") != std::string::npos);

    // A symbolic size, a parallel loop, f64 and the math intrinsics, a reduction in a local buffer.
    Var n = var("n");
    auto X = placeholder({n, 13}, f64, "X");
    auto k = reduce_axis(0, 13, "k");
    auto S = compute(
            {n}, [&](Expr i) { return sum(X(i, k) * X(i, k), {k}); }, "S");
    auto Y = compute(
            {n, 13},
            [&](Expr i, Expr j) {
                Expr x = X(i, j);
                return tanh(x) + erf(x) + sigmoid(x) + exp(x) / (S(i) + 1.0) +
                       select(x > 0.5, sqrt(abs(x)), floor(x * 3.0)) + max(min(x, 0.25), -0.25);
            },
            "Y");
    Schedule sy(Y);
    sy[Y].parallel(Y.axis(0));
    auto [jo, ji] = sy[Y].split(Y.axis(1), 4);
    sy[Y].vectorize(ji);
    sy[S].compute_at(sy[Y], Y.axis(0));
    auto fy = build(sy, {X, Y}), cy = build(sy, {X, Y}, as_c);
    Buffer x({9, 13}, f64), y_jit({9, 13}, f64), y_c({9, 13}, f64);
    for (int64_t i = 0; i < x.size(); ++i)
        static_cast<double*>(x.data())[i] = std::sin(0.37 * static_cast<double>(i)) * 2;
    fy(x, y_jit);
    cy(x, y_c);
    double worst = 0;
    for (int64_t i = 0; i < x.size(); ++i) {
        const double u = static_cast<double*>(y_jit.data())[i], v = static_cast<double*>(y_c.data())[i];
        worst = std::max(worst, std::abs(u - v) / std::max(1.0, std::abs(u)));
    }
    CHECK(worst < 1e-5);
    CHECK(cy.source().find("#pragma omp parallel for") != std::string::npos);

    // exp() lowers to a polynomial with its argument bound by a let. Under a select the let is assigned where
    // it stands, not before the statement, so the load it binds is read only on the side taken.
    auto P = placeholder({19}, f32, "P");
    auto E = compute(
            {19}, [&](Expr i) { return select(P(i) > 0.0f, exp(P(i)), P(i) * 2.0f); }, "E");
    Schedule se(E);
    auto fe = build(se, {P, E}), ce = build(se, {P, E}, as_c);
    CHECK(ce.source().find("float exp_x") != std::string::npos);
    CHECK(ce.source().find(" = P_0[i_2];") == std::string::npos);  // the declaration comes without its value
    std::vector<float> p(19), e_jit(19), e_c(19);
    for (int i = 0; i < 19; ++i) p[i] = 0.3f * static_cast<float>(i - 9);
    fe(p.data(), e_jit.data());
    ce(p.data(), e_c.data());
    for (int i = 0; i < 19; ++i) CHECK(e_c[i] == doctest::Approx(e_jit[i]).epsilon(1e-6));
}

TEST_CASE("integer division by zero gives 0 and does not trap, in vector tails too") {
    // The masked-off lanes of a vector tail divide by the zeros their masked loads return.
    for (Type t : {i32, u32, i64}) {
        CAPTURE(t.str());
        auto A = placeholder({21}, t, "A");
        auto D = placeholder({21}, t, "D");
        auto Q = compute(
                {21}, [&](Expr i) { return A(i) / D(i); }, "Q");
        auto R = compute(
                {21}, [&](Expr i) { return A(i) % D(i); }, "R");
        Schedule s({Q, R});
        for (auto& T : {Q, R}) {
            auto [o, in] = s[T].split(T.axis(0), 8);
            s[T].vectorize(in);
        }
        auto f = build(s, {A, D, Q, R});
        const bool sgn = t.is_int();
        Buffer a({21}, t), d({21}, t), q({21}, t), r({21}, t);
        auto at = [&](Buffer& b, int i) -> int64_t {
            if (t.bits == 64) return static_cast<int64_t*>(b.data())[i];
            if (sgn) return static_cast<int32_t*>(b.data())[i];
            return static_cast<uint32_t*>(b.data())[i];
        };
        auto set = [&](Buffer& b, int i, int64_t v) {
            if (t.bits == 64)
                static_cast<int64_t*>(b.data())[i] = v;
            else if (sgn)
                static_cast<int32_t*>(b.data())[i] = static_cast<int32_t>(v);
            else
                static_cast<uint32_t*>(b.data())[i] = static_cast<uint32_t>(v);
        };
        for (int i = 0; i < 21; ++i) {
            set(a, i, sgn ? i * 7 - 60 : i * 7);
            set(d, i, i % 4 == 0 ? 0 : (sgn && i % 3 == 0 ? -1 : i % 5 + 1));
        }
        if (sgn)
            set(a, 3,
                t.bits == 64 ? std::numeric_limits<int64_t>::min()
                             : std::numeric_limits<int32_t>::min());  // 3 % 3 == 0: divided by -1
        f(a, d, q, r);
        for (int i = 0; i < 21; ++i) {
            CAPTURE(i);
            const int64_t x = at(a, i), y = at(d, i);
            if (y == 0) {
                CHECK(at(q, i) == 0);
                CHECK(at(r, i) == 0);
            } else if (y == -1) {
                CHECK(at(r, i) == 0);
                if (i != 3) CHECK(at(q, i) == -x);  // INT_MIN / -1 wraps; it must only not trap
            } else {
                int64_t fq = x / y;
                if ((x % y != 0) && ((x < 0) != (y < 0))) --fq;
                CHECK(at(q, i) == fq);
                CHECK(at(r, i) == x - fq * y);
            }
        }
    }
}

TEST_CASE("compute_at into a stage that computes the reader inside its loops: a panel copied per outer tile") {
    // C = A x B with B's columns copied per outer tile of C's rows and columns, into a panel that the
    // accumulator tile, computed inside that outer tile, reads. C's stage itself does not read the copy.
    for (int N : {64, 45}) {
        CAPTURE(N);
        auto A = placeholder({37, 23}, f32, "A");
        auto B = placeholder({23, N}, f32, "B");
        auto k = reduce_axis(0, 23, "k");
        auto C = compute(
                {37, N}, [&](Expr i, Expr j) { return sum(A(i, k.var()) * B(k.var(), j), {k}); }, "C");
        Schedule s(C);
        auto CL = s.cache_write(C, "local");
        auto [io, jo, ii, ji] = s[C].tile(C.axis(0), C.axis(1), 8, 16);
        auto [jo_o, jo_i] = s[C].split(jo, 2);
        s[C].reorder(io, jo_o, jo_i, ii, ji);
        s[CL].compute_at(s[C], jo_i);
        auto BL = s.cache_read(B, "local", {CL});
        s[BL].compute_at(s[C], jo_o);
        s[C].vectorize(ji);
        // 23 rows of a 32-column panel, contiguous, where the columns divide into panels.
        if (N == 64) CHECK(to_string(lower(s, {A, B, C})).find("allocate B.local[f32 * 736]") != std::string::npos);
        Buffer a = test::random_buffer({37, 23}, 1), b = test::random_buffer({23, N}, 2), c({37, N});
        build(s, {A, B, C})(a, b, c);
        for (int i = 0; i < 37; ++i)
            for (int j = 0; j < N; ++j) {
                float want = 0;
                for (int kk = 0; kk < 23; ++kk) want += a.at<float>(i, kk) * b.at<float>(kk, j);
                REQUIRE(c.at<float>(i, j) == doctest::Approx(want).epsilon(1e-5));
            }
    }
}

TEST_CASE("cache_read and reorder_storage keep results") {
    const int M = 23, N = 19;
    auto A = placeholder({M, N}, f32, "A");
    auto B = compute(
            {M, N}, [&](Expr i, Expr j) { return A(i, j) * 2.0f; }, "B");
    auto C = compute(
            {N, M}, [&](Expr i, Expr j) { return B(j, i) + 1.0f; }, "C");
    Schedule s(C);
    auto AL = s.cache_read(A, "local", {B});
    s[B].reorder_storage({1, 0});
    s[AL].compute_at(s[B], B.axis(0));
    auto f = build(s, {A, C});
    Buffer a = test::random_buffer({M, N}, 12), c({N, M});
    f(a, c);
    for (int i = 0; i < N; ++i)
        for (int j = 0; j < M; ++j) CHECK(c.at<float>(i, j) == doctest::Approx(a.at<float>(j, i) * 2.0f + 1.0f));
}

TEST_CASE("the kernel cache returns the compiled kernel, and kernels run from several threads") {
    Matmul m(40, 40, 40);
    Schedule s(m.C);
    s[m.C].parallel(m.C.axis(0));
    auto f1 = build(s, {m.A, m.B, m.C});
    auto t0 = std::chrono::steady_clock::now();
    auto f2 = build(s, {m.A, m.B, m.C});
    double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    CHECK(f1.loop_ir() == f2.loop_ir());
    MESSAGE("cached build took " << us << " us; cold compile " << f1.compile_ms() << " ms");
    Buffer a = test::random_buffer({40, 40}, 13), b = test::random_buffer({40, 40}, 14);
    std::vector<Buffer> outs(4, Buffer());
    for (auto& o : outs) o = Buffer({40, 40});
    std::vector<std::thread> ts;
    for (auto& o : outs)
        ts.emplace_back([&, po = &o] {
            for (int r = 0; r < 5; ++r) f2(a, b, *po);
        });
    for (auto& t : ts) t.join();
    Eigen::Map<RowMat> ea(a.data_as<float>(), 40, 40), eb(b.data_as<float>(), 40, 40);
    RowMat ref = ea * eb;
    for (auto& o : outs) CHECK(test::max_rel_err(o.data_as<float>(), ref.data(), 1600) < 1e-4);
    auto f3 = build(s, {m.A, m.B, m.C}, {.keep_llvm_ir = true, .keep_assembly = true});
    CHECK(f3.llvm_ir().find("define") != std::string::npos);
    CHECK(!f3.assembly().empty());
    CHECK(Target::enabled("llvm"));
    CHECK(!host_target().cpu.empty());
}

TEST_CASE("parallel kernels stay correct when the thread pool is resized between calls") {
    const int M = 67, N = 45, K = 29;
    Matmul m(M, N, K);
    Schedule s(m.C);
    auto [xo, xi] = s[m.C].split(m.C.axis(0), 4);
    s[m.C].parallel(xo);
    const int before = num_threads();
    for (int threads : {2, 1, 3, 2, 4}) {
        set_num_threads(threads);
        CHECK(num_threads() == threads);
        check_matmul(s, m, M, N, K);
    }
    set_num_threads(before);
}

TEST_CASE("parallel loops run every iteration exactly once, with more iterations or threads than chunks") {
    const int before = num_threads();
    for (int threads : {2, 3})
        for (int n : {1, 2, 5, 17, 1000}) {
            set_num_threads(threads);
            std::vector<std::atomic<int>> hits(n);
            auto body = +[](int32_t i, void* c) { (*static_cast<std::vector<std::atomic<int>>*>(c))[i].fetch_add(1); };
            runtime::thread_pool().parallel_for(body, &hits, n);
            int wrong = 0;
            for (auto& h : hits) wrong += h.load() != 1;
            CHECK(wrong == 0);
        }
    set_num_threads(before);
}

TEST_CASE("workspace blocks are 64-byte aligned and reused by later calls") {
    runtime::WorkspaceCache cache;
    void* a = cache.allocate(1000);
    CHECK(reinterpret_cast<uintptr_t>(a) % 64 == 0);
    static_cast<char*>(a)[999] = 1;
    cache.release(a);
    CHECK(cache.allocate(1000) == a);  // same size: the freed block comes back
    void* b = cache.allocate(5000);
    CHECK(b != a);
    CHECK(reinterpret_cast<uintptr_t>(b) % 64 == 0);
    cache.release(b);
    cache.release(a);
    // Beyond kMaxBlocks the oldest blocks are returned to the system, not kept forever.
    std::vector<void*> many;
    for (size_t i = 0; i < runtime::WorkspaceCache::kMaxBlocks + 4; ++i) many.push_back(cache.allocate(64 * (i + 1)));
    for (void* p : many) cache.release(p);
    CHECK(cache.cached_blocks() == runtime::WorkspaceCache::kMaxBlocks);
}

TEST_CASE("a buffer over memory with an owner keeps it alive, and a kernel reads it in place") {
    // The importer's case: weights that live in memory of their own (protobuf's string), handed over, not copied.
    auto values = std::make_shared<std::vector<float>>(37);
    for (int i = 0; i < 37; ++i) (*values)[static_cast<size_t>(i)] = 0.25f * static_cast<float>(i) - 3.0f;
    float* data = values->data();
    Buffer a(std::shared_ptr<void>(values, data), data, {37}, f32);
    std::weak_ptr<std::vector<float>> watch = values;
    values.reset();
    CHECK_FALSE(watch.expired());  // the buffer shares ownership
    CHECK(a.owning());
    CHECK(a.data() == data);
    auto A = placeholder({37}, f32, "A");
    auto B = compute(
            {37}, [&](Expr i) { return A(i) * 2.0f + 1.0f; }, "B");
    Schedule s(B);
    auto [o, i] = s[B].split(B.axis(0), 16);
    s[B].vectorize(i);
    Buffer b({37});
    build(s, {A, B})(a, b);
    for (int k = 0; k < 37; ++k) CHECK(b.data_as<float>()[k] == (0.25f * static_cast<float>(k) - 3.0f) * 2.0f + 1.0f);
    {
        Buffer copy = a;
        a = Buffer();
        CHECK_FALSE(watch.expired());
    }
    CHECK(watch.expired());  // the last copy released it
}

TEST_CASE("fp_contract: a*x + b is one fused multiply-add unless the build says otherwise") {
    // a*x = 1 + 2^-11 + 2^-24 exactly; rounded to f32 it loses the 2^-24, which the fused form keeps.
    auto A = placeholder({3}, f32, "A");
    auto X = placeholder({3}, f32, "X");
    auto B = placeholder({3}, f32, "B");
    auto Y = compute(
            {3}, [&](Expr i) { return A(i) * X(i) + B(i); }, "Y");
    Schedule s(Y);
    const float a = 1.0f + std::ldexp(1.0f, -12), b = -(1.0f + std::ldexp(1.0f, -11));
    std::vector<float> va(3, a), vx(3, a), vb(3, b), y(3);
    auto apart = build(s, {A, X, B, Y}, {.keep_llvm_ir = true, .fp_contract = false});
    apart(va.data(), vx.data(), vb.data(), y.data());
    CHECK(y[0] == 0.0f);
    CHECK(apart.llvm_ir().find("llvm.fma") == std::string::npos);
    CHECK(apart.llvm_ir().find(" contract ") == std::string::npos);
    if (host_target().features.find("+fma") != std::string::npos) {
        auto fused = build(s, {A, X, B, Y});
        fused(va.data(), vx.data(), vb.data(), y.data());
        CHECK(y[0] == std::ldexp(1.0f, -24));
    }
}

TEST_CASE("every optimisation level computes the same values, in both backends") {
    // Row sums of a 37 x 45 matrix scaled by a sigmoid: a reduction, a vector tail, a parallel loop and
    // a transcendental function.
    auto A = placeholder({37, 45}, f32, "A");
    auto k = reduce_axis(0, 45, "k");
    auto S = compute(
            {37}, [&](Expr i) { return sum(A(i, k.var()), {k}); }, "S");
    auto Y = compute(
            {37, 45}, [&](Expr i, Expr j) { return A(i, j) * sigmoid(S(i)); }, "Y");
    Schedule s(Y);
    auto [jo, ji] = s[Y].split(Y.axis(1), 16);
    s[Y].vectorize(ji);
    s[Y].parallel(Y.axis(0));
    s[S].compute_at(s[Y], Y.axis(0));
    Buffer a = test::random_buffer({37, 45}, 9);
    std::vector<float> want(37 * 45);
    for (int i = 0; i < 37; ++i) {
        float row = 0;
        for (int j = 0; j < 45; ++j) row += a.at<float>(i, j);
        for (int j = 0; j < 45; ++j) want[i * 45 + j] = a.at<float>(i, j) / (1.0f + std::exp(-row));
    }
    for (const char* kind : {"llvm", "c"})
        for (int level = 0; level <= 3; ++level) {
            CAPTURE(kind);
            CAPTURE(level);
            BuildOptions opt;
            opt.target.kind = kind;
            opt.opt_level = level;
            Buffer y({37, 45});
            build(s, {A, Y}, opt)(a, y);
            for (int i = 0; i < 37 * 45; ++i) REQUIRE(y.data_as<float>()[i] == doctest::Approx(want[i]).epsilon(1e-5));
        }
}

TEST_CASE("a C kernel's OpenMP runtime stays loaded after the last kernel that used it is gone") {
    // Its worker threads wait inside the runtime's code after a parallel loop; unmapping it under them crashed
    // the process moments later.
    auto A = placeholder({40, 17}, f32, "A");
    auto B = compute(
            {40, 17}, [&](Expr i, Expr j) { return A(i, j) * 3.0f; }, "B");
    Schedule s(B);
    s[B].parallel(B.axis(0));
    BuildOptions as_c;
    as_c.target.kind = "c";
    const auto loaded_runtime = []() -> std::string {
        for (const char* runtime : {"libgomp.so.1", "libomp.so", "libomp.so.5", "libiomp5.so"})
            if (void* h = ::dlopen(runtime, RTLD_NOW | RTLD_NOLOAD)) {
                ::dlclose(h);
                return runtime;
            }
        return "";
    };
    {
        clear_memory_cache();
        Kernel k = build(s, {A, B}, as_c);
        if (k.source().find("#pragma omp") == std::string::npos) return;  // a compiler without OpenMP
        Buffer a = test::random_buffer({40, 17}, 3), b({40, 17});
        k(a, b);
        CHECK(b.at<float>(39, 16) == a.at<float>(39, 16) * 3.0f);
        REQUIRE(loaded_runtime() != "");
        clear_memory_cache();
    }
    CHECK(loaded_runtime() != "");
}

TEST_CASE("a vectorized loop that cannot become vector code stays serial, and lowering says which and why") {
    auto A = placeholder({20, 24}, f32, "A");
    auto P = compute(
            {20, 24}, [&](Expr i, Expr j) { return A(i, j) * 2.0f; }, "P");
    auto C = compute(
            {20, 24}, [&](Expr i, Expr j) { return P(i, j) + 1.0f; }, "C");
    Schedule s(C);
    auto [jo, ji] = s[C].split(C.axis(1), 8);
    s[C].vectorize(ji);
    s[P].compute_at(s[C], ji);
    const LoweredFunc f = lower(s, {A, C});
    REQUIRE(f.warnings.size() == 1);
    CHECK(f.warnings[0] ==
          "vectorize: loop 'j.inner' stays serial: a stage is computed inside it (compute_at), which would need a "
          "buffer "
          "per lane; compute it at an outer loop");
    CHECK(to_string(f).find("// warning: vectorize: loop 'j.inner' stays serial") != std::string::npos);
    auto k = build(s, {A, C});
    CHECK(k.warnings() == f.warnings);
    Buffer a = test::random_buffer({20, 24}, 5), c({20, 24});
    k(a, c);
    for (int i = 0; i < 20; ++i)
        for (int j = 0; j < 24; ++j) CHECK(c.at<float>(i, j) == a.at<float>(i, j) * 2.0f + 1.0f);
    // A loop that does vectorize leaves no warning.
    Schedule plain(C);
    plain[C].vectorize(plain[C].split(C.axis(1), 8).second);
    CHECK(lower(plain, {A, C}).warnings.empty());
}

namespace {
int64_t resident_kib() {
    std::ifstream statm("/proc/self/statm");
    int64_t pages = 0, resident = 0;
    statm >> pages >> resident;
    return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}
}  // namespace

TEST_CASE(
        "a dropped kernel's machine code is unloaded: 5,000 compiles stay flat in memory, the cache held to its "
        "bound") {
    auto X = placeholder({64}, f32, "X");
    BuildOptions opt;
    opt.use_disk_cache = false;  // a compile each time
    const size_t before = jit::linked_libraries();
    set_memory_cache_limit(64);  // the in-memory cache keeps the last 64 and unloads the rest
    auto compile_and_run = [&](int k) {
        auto Y = compute(
                {64}, [&](Expr i) { return X(i) * static_cast<float>(k) + 0.5f; }, "Y");
        Schedule s(Y);
        Kernel f = build(s, {X, Y}, opt);
        std::vector<float> x(64, 2.0f), y(64);
        f(x.data(), y.data());
        REQUIRE(y[63] == 2.0f * static_cast<float>(k) + 0.5f);
    };
    for (int k = 0; k < 200; ++k) compile_and_run(k);
    CHECK(jit::linked_libraries() == before + 64);
    const int64_t rss = resident_kib();
    for (int k = 200; k < 5000; ++k) compile_and_run(k);
    const int64_t after = resident_kib();
    CHECK(jit::linked_libraries() == before + 64);
    set_memory_cache_limit(0);
    CHECK(jit::linked_libraries() == before);
    set_memory_cache_limit(4096);
    MESSAGE("resident memory " << rss << " KiB after 200 compiles, " << after << " KiB after 5,000 (grew by "
                               << after - rss << " KiB)");
    // AddressSanitizer keeps freed memory in quarantine, so memory is held flat only without it (gcc says so by
    // __SANITIZE_ADDRESS__, clang by __has_feature).
#if defined(__SANITIZE_ADDRESS__)
#define KILN_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KILN_TEST_ASAN 1
#endif
#endif
#ifndef KILN_TEST_ASAN
    CHECK(after - rss < 8192);
#endif
}

TEST_CASE("stress: threads compile kernels while others call compiled ones and the pool is resized under them") {
    Matmul m(48, 40, 36);
    Schedule s(m.C);
    s[m.C].parallel(m.C.axis(0));
    const Kernel product = build(s, {m.A, m.B, m.C});
    const Buffer a = test::random_buffer({48, 36}, 41), b = test::random_buffer({36, 40}, 42);
    Eigen::Map<const RowMat> ea(a.data_as<float>(), 48, 36), eb(b.data_as<float>(), 36, 40);
    const RowMat want = ea * eb;
    std::atomic<bool> done{false};
    std::atomic<int> wrong{0}, calls{0}, compiled{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t)  // callers of the compiled kernel
        threads.emplace_back([&] {
            Buffer c({48, 40});
            while (!done.load()) {
                product(a, b, c);
                wrong += test::max_rel_err(c.data_as<float>(), want.data(), 48 * 40) > 1e-4;
                ++calls;
            }
        });
    for (int t = 0; t < 3; ++t)  // compilers of new kernels, each checked
        threads.emplace_back([&, t] {
            auto X = placeholder({300}, f32, "X");
            for (int k = 0; k < 12; ++k) {
                const float scale = static_cast<float>(100 * t + k);
                auto Y = compute(
                        {300}, [&](Expr i) { return X(i) * scale; }, "Y");
                Schedule sy(Y);
                auto [o, i] = sy[Y].split(Y.axis(0), 16);
                sy[Y].parallel(o);
                sy[Y].vectorize(i);
                Kernel f = build(sy, {X, Y});
                std::vector<float> x(300, 1.5f), y(300);
                f(x.data(), y.data());
                wrong += y[299] != 1.5f * scale;
                ++compiled;
            }
        });
    std::thread resizer([&] {  // the pool's size changes while parallel loops run
        for (int r = 0; !done.load(); ++r) {
            set_num_threads(1 + r % 3);
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    });
    for (size_t t = 3; t < threads.size(); ++t) threads[t].join();
    done = true;
    for (size_t t = 0; t < 3; ++t) threads[t].join();
    resizer.join();
    set_num_threads(2);
    CHECK(compiled.load() == 36);
    CHECK(calls.load() > 0);
    CHECK(wrong.load() == 0);
}
