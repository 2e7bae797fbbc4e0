// kiln::nn::matmul and batch_matmul with their default schedules against Eigen: the benchmark shapes and
// small odd ones, NN and NT, with bias and a fused ReLU epilogue, on one and two threads.
#include <kiln/nn.hpp>

#include <Eigen/Dense>

#include "helpers.hpp"

using namespace kiln;
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace {

enum class Epilogue { None, Bias, BiasRelu };

void check_matmul(int M, int N, int K, bool nt, Epilogue epi, int threads) {
    CAPTURE(M);
    CAPTURE(N);
    CAPTURE(K);
    CAPTURE(nt);
    CAPTURE(static_cast<int>(epi));
    CAPTURE(threads);
    set_num_threads(threads);
    auto A = placeholder({M, K}, f32, "A");
    auto B = nt ? placeholder({N, K}, f32, "B") : placeholder({K, N}, f32, "B");
    auto bias = placeholder({N}, f32, "bias");
    Tensor out = nn::matmul(A, B, {.transpose_b = nt, .bias = epi == Epilogue::None ? Tensor() : bias});
    if (epi == Epilogue::BiasRelu) {
        Tensor pre = out;
        out = compute(
                {M, N}, [&](Expr i, Expr j) { return max(pre(i, j), 0.0f); }, "relu");
    }
    Schedule s(out);
    nn::schedule_matmul(s, out);
    std::vector<Tensor> args = {A, B};
    if (epi != Epilogue::None) args.push_back(bias);
    args.push_back(out);
    auto f = build(s, args);

    Buffer a = test::random_buffer({M, K}, 1),
           b = test::random_buffer(nt ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N}, 2);
    Buffer bb = test::random_buffer({N}, 3), c({M, N});
    if (epi == Epilogue::None)
        f(a, b, c);
    else
        f(a, b, bb, c);
    Eigen::Map<RowMat> ea(a.data_as<float>(), M, K), eb(b.data_as<float>(), nt ? N : K, nt ? K : N);
    RowMat ref = nt ? RowMat(ea * eb.transpose()) : RowMat(ea * eb);
    if (epi != Epilogue::None) ref.rowwise() += Eigen::Map<Eigen::RowVectorXf>(bb.data_as<float>(), N);
    if (epi == Epilogue::BiasRelu) ref = ref.cwiseMax(0.0f);
    CHECK(test::max_rel_err(c.data_as<float>(), ref.data(), int64_t(M) * N) < 1e-4);
}

}  // namespace

TEST_CASE("nn::matmul: the benchmark shapes, one and two threads") {
    for (int threads : {1, 2}) {
        check_matmul(1024, 1024, 1024, false, Epilogue::None, threads);
        check_matmul(1000, 1000, 1000, false, Epilogue::None, threads);
        check_matmul(127, 4096, 33, false, Epilogue::None, threads);
        check_matmul(1, 4096, 4096, false, Epilogue::None, threads);
        check_matmul(512, 1024, 1024, true, Epilogue::None, threads);
    }
}

TEST_CASE("nn::matmul: small odd shapes, NN and NT, with bias and a fused ReLU") {
    const int sizes[] = {1, 3, 5, 7, 13, 17, 33};
    int case_no = 0;
    for (int M : sizes)
        for (int N : {1, 5, 17, 40})
            for (int K : {1, 7, 16})
                for (bool nt : {false, true}) {
                    const Epilogue epi = static_cast<Epilogue>(case_no % 3);
                    check_matmul(M, N, K, nt, epi, 1 + case_no % 2);
                    ++case_no;
                }
    // The matrix-vector schedule (fewer than 4 rows) takes 16, 8 or 4 rows of B per pass, as K allows.
    for (int M : {1, 3})
        for (int K : {12, 40, 48})
            for (int N : {17, 300}) {
                check_matmul(M, N, K, false, static_cast<Epilogue>(case_no % 3), 1 + case_no % 2);
                ++case_no;
            }
    set_num_threads(2);
}

TEST_CASE("nn::matmul: a weight packed once by pack_matmul_weight, against Eigen") {
    // Columns past the last full panel, fewer rows than a register tile, one row, K not a multiple of 4;
    // B given as [K,N] and as [N,K].
    int case_no = 0;
    for (auto [M, N, K] :
         {std::tuple{37, 45, 29}, std::tuple{5, 300, 16}, std::tuple{1, 17, 13}, std::tuple{49, 1000, 24}})
        for (bool nt : {false, true}) {
            CAPTURE(M);
            CAPTURE(N);
            CAPTURE(K);
            CAPTURE(nt);
            set_num_threads(1 + case_no++ % 2);
            auto B = nt ? placeholder({N, K}, f32, "B") : placeholder({K, N}, f32, "B");
            Tensor P = nn::pack_matmul_weight(B, M, {.transpose_b = nt});
            REQUIRE(P.ndim() == 3);
            auto pack = build(Schedule(P), {B, P});
            Buffer b = test::random_buffer(nt ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N}, 10);
            std::vector<int64_t> packed_shape;
            for (const Expr& e : P.shape()) packed_shape.push_back(*as_const_int(e));
            Buffer packed(packed_shape);
            pack(b, packed);

            auto A = placeholder({M, K}, f32, "A");
            auto Wp = placeholder({P.shape()[0], P.shape()[1], P.shape()[2]}, f32, "Wp");
            auto bias = placeholder({N}, f32, "bias");
            Tensor C = nn::matmul(A, Wp, {.bias = bias, .columns = N});
            Schedule s(C);
            nn::schedule_matmul(s, C);
            auto f = build(s, {A, Wp, bias, C});
            Buffer a = test::random_buffer({M, K}, 11), bb = test::random_buffer({N}, 12), c({M, N});
            f(a, packed, bb, c);
            Eigen::Map<RowMat> ea(a.data_as<float>(), M, K), eb(b.data_as<float>(), nt ? N : K, nt ? K : N);
            RowMat ref = nt ? RowMat(ea * eb.transpose()) : RowMat(ea * eb);
            ref.rowwise() += Eigen::Map<Eigen::RowVectorXf>(bb.data_as<float>(), N);
            CHECK(test::max_rel_err(c.data_as<float>(), ref.data(), int64_t(M) * N) < 1e-4);
        }
    set_num_threads(2);
}

TEST_CASE("nn::batch_matmul against Eigen per batch") {
    for (auto [Bn, M, N, K, nt] :
         {std::tuple{3, 37, 45, 29, false}, std::tuple{2, 64, 96, 32, true}, std::tuple{4, 2, 70, 13, false}}) {
        CAPTURE(M);
        CAPTURE(N);
        CAPTURE(K);
        CAPTURE(nt);
        auto A = placeholder({Bn, M, K}, f32, "A");
        auto B = nt ? placeholder({Bn, N, K}, f32, "B") : placeholder({Bn, K, N}, f32, "B");
        auto C = nn::batch_matmul(A, B, {.transpose_b = nt});
        Schedule s(C);
        nn::schedule_matmul(s, C);
        auto f = build(s, {A, B, C});
        Buffer a = test::random_buffer({Bn, M, K}, 4),
               b = test::random_buffer(nt ? std::vector<int64_t>{Bn, N, K} : std::vector<int64_t>{Bn, K, N}, 5);
        Buffer c({Bn, M, N});
        f(a, b, c);
        for (int i = 0; i < Bn; ++i) {
            Eigen::Map<RowMat> ea(a.data_as<float>() + int64_t(i) * M * K, M, K),
                    eb(b.data_as<float>() + int64_t(i) * N * K, nt ? N : K, nt ? K : N);
            RowMat ref = nt ? RowMat(ea * eb.transpose()) : RowMat(ea * eb);
            CHECK(test::max_rel_err(c.data_as<float>() + int64_t(i) * M * N, ref.data(), int64_t(M) * N) < 1e-4);
        }
    }
}

TEST_CASE(
        "nn::schedule_matmul: an epilogue that reads the rows back as [b, s, N] (ONNX MatMul of a rank-3 activation)") {
    // Rows that the register tile (8) divides and rows it does not, a matrix-vector case, and columns past the panel.
    // [s, 1, N]: a sequence-first export, whose rows are the outer axis.
    for (auto [Bn, S, N, K] :
         {std::tuple{2, 16, 70, 24}, std::tuple{3, 5, 33, 17}, std::tuple{1, 2, 300, 64}, std::tuple{19, 1, 40, 16}}) {
        CAPTURE(Bn);
        CAPTURE(S);
        CAPTURE(N);
        CAPTURE(K);
        auto A = placeholder({Bn * S, K}, f32, "A");
        auto W = placeholder({K, N}, f32, "W");
        auto mm = nn::matmul(A, W);
        auto out = compute(
                {Bn, S, N}, [&](Expr b, Expr s, Expr n) { return max(mm(b * S + s, n), 0.0f); }, "relu");
        Schedule s(out);
        nn::schedule_matmul(s, out);
        auto f = build(s, {A, W, out});
        Buffer a = test::random_buffer({Bn * S, K}, 6), w = test::random_buffer({K, N}, 7), o({Bn, S, N});
        f(a, w, o);
        Eigen::Map<RowMat> ea(a.data_as<float>(), Bn * S, K), ew(w.data_as<float>(), K, N);
        RowMat ref = RowMat(ea * ew).cwiseMax(0.0f);
        CHECK(test::max_rel_err(o.data_as<float>(), ref.data(), int64_t(Bn) * S * N) < 1e-4);
    }
}

TEST_CASE(
        "nn::schedule_matmul: an epilogue of rank 4 ([1, h, w, N], ConvNeXt's pointwise layers) keeps register tiles") {
    // 13 x 11 pixels: tiles of 8 rows straddle the rows of the image. The product's tile must still be one
    // register tile, not every row of the image (which the fused pixel loop used to give, and a kernel of
    // megabytes of unrolled IR with it).
    const int H = 13, Wd = 11, K = 20, N = 37;
    auto A = placeholder({H * Wd, K}, f32, "A");
    auto W = placeholder({K, N}, f32, "W");
    auto mm = nn::matmul(A, W);
    auto out = compute(
            {1, H, Wd, N}, [&](Expr b, Expr y, Expr x, Expr n) { return mm((b * H + y) * Wd + x, n) * 2.0f; },
            "scaled");
    Schedule s(out);
    nn::schedule_matmul(s, out);
    const std::string text = to_string(lower(s, {A, W, out}));
    CAPTURE(text);
    CHECK(text.find("allocate matmul[f32 * 256]") != std::string::npos);  // 8 rows x 32 columns
    auto f = build(s, {A, W, out});
    Buffer a = test::random_buffer({H * Wd, K}, 8), w = test::random_buffer({K, N}, 9), o({1, H, Wd, N});
    f(a, w, o);
    Eigen::Map<RowMat> ea(a.data_as<float>(), H * Wd, K), ew(w.data_as<float>(), K, N);
    RowMat ref = RowMat(ea * ew) * 2.0f;
    CHECK(test::max_rel_err(o.data_as<float>(), ref.data(), int64_t(H) * Wd * N) < 1e-4);
}

TEST_CASE("nn::schedule_matmul: full column tiles of a parallel panel loop run without guards") {
    // 1000 columns in panels of 32: the last panel is partial. The panel loop stays one parallel loop and
    // each iteration tests once whether it is a full panel.
    auto A = placeholder({64, 8}, f32, "A");
    auto B = placeholder({8, 1000}, f32, "B");
    auto C = nn::matmul(A, B);
    Schedule s(C);
    nn::schedule_matmul(s, C);
    const std::string text = to_string(lower(s, {A, B, C}));
    CAPTURE(text);
    CHECK(text.find("parallel (j.outer, 0, 32) {\n    if (likely((j.outer < 31))) {") != std::string::npos);
    // The accumulator tile of a full panel is stored without a lane predicate.
    CHECK(text.find("matmul.local[ramp(0, 1, 32)] = x32(0.0)\n") != std::string::npos);
}

TEST_CASE(
        "nn::schedule_matmul with knobs: the defaults reproduce the plain schedule, every value computes the product") {
    for (bool nt : {false, true}) {
        CAPTURE(nt);
        const int M = 45, N = 70, K = 36;
        auto A = placeholder({M, K}, f32, "A");
        auto B = nt ? placeholder({N, K}, f32, "B") : placeholder({K, N}, f32, "B");
        auto bias = placeholder({N}, f32, "bias");
        Tensor mm = nn::matmul(A, B, {.transpose_b = nt, .bias = bias});
        Tensor out = compute(
                {M, N}, [&](Expr i, Expr j) { return max(mm(i, j), 0.0f); }, "relu");
        Schedule plain(out);
        nn::schedule_matmul(plain, out);
        Knobs declare;
        Schedule with_defaults(out);
        nn::schedule_matmul(with_defaults, out, {}, &declare);
        const KnobSpace space = declare.space();
        REQUIRE(space.knobs.size() == 3);
        CHECK(space.knobs[0].name == "matmul.rows");
        CHECK(space.knobs[1].name == "matmul.panels_outer");
        CHECK(space.knobs[2].name == "matmul.k_unroll");
        CHECK(space.knobs[2].values == std::vector<std::vector<int64_t>>{{4}, {1}, {2}});  // factors of 36 up to 8
        CHECK(to_string(lower(with_defaults, {A, B, bias, out})) == to_string(lower(plain, {A, B, bias, out})));

        Buffer a = test::random_buffer({M, K}, 1),
               b = test::random_buffer(nt ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N}, 2),
               c = test::random_buffer({N}, 3);
        RowMat am = Eigen::Map<RowMat>(a.data_as<float>(), M, K);
        RowMat bm = nt ? RowMat(Eigen::Map<RowMat>(b.data_as<float>(), N, K).transpose())
                       : RowMat(Eigen::Map<RowMat>(b.data_as<float>(), K, N));
        RowMat want = am * bm;
        for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) want(i, j) = std::max(want(i, j) + c.data_as<float>()[j], 0.0f);
        // Every configuration of the space.
        for (int64_t index = 0; index < space.size(); ++index) {
            KnobConfig config;
            int64_t rest = index;
            for (const Knob& k : space.knobs) {
                config.push_back(static_cast<int>(rest % static_cast<int64_t>(k.values.size())));
                rest /= static_cast<int64_t>(k.values.size());
            }
            CAPTURE(index);
            Knobs knobs(space, config);
            Schedule s(out);
            nn::schedule_matmul(s, out, {}, &knobs);
            Buffer y({M, N});
            build(s, {A, B, bias, out})(a, b, c, y);
            RowMat got = Eigen::Map<RowMat>(y.data_as<float>(), M, N);
            REQUIRE((got - want).cwiseAbs().maxCoeff() < 1e-4f * (1.0f + want.cwiseAbs().maxCoeff()));
        }
    }
}
