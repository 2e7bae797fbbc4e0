// The IR, the simplifier and single lowering passes, run alone.
#include <kiln/arith/simplify.hpp>
#include <kiln/lower/infer_bound.hpp>
#include <kiln/lower/inline_compute.hpp>
#include <kiln/lower/schedule_ops.hpp>

#include "helpers.hpp"

using namespace kiln;

TEST_CASE("constants fold at construction") {
    CHECK(to_string(Expr(3) + Expr(4)) == "7");
    CHECK(to_string(Expr(-7) / Expr(2)) == "-4");  // floor division
    CHECK(to_string(Expr(-7) % Expr(2)) == "1");
    CHECK(to_string(Expr(2.0f) * Expr(3.0f)) == "6.0");
    Var x("x");
    CHECK(to_string(Expr(x) + 0) == "x");
    CHECK(to_string(Expr(x) * 1) == "x");
    CHECK(to_string(Expr(x) * 0) == "0");
    CHECK(to_string(sqrt(Expr(4.0f))) == "2.0");
}

TEST_CASE("types promote as documented") {
    Var x("x");
    CHECK((Expr(x) + 1.5f).type() == f32);
    CHECK((Expr(x) + Expr(int64_t{1})).type() == i32);  // a constant adapts to the variable
    auto H = placeholder({4}, f16, "H");
    CHECK((H(0) * 2.0f).type() == f32);  // f16 computes in f32
    CHECK((Expr(x) < 3).type() == boolean);
}

TEST_CASE("simplifier uses loop bounds") {
    Var i("i"), j("j");
    arith::BoundScope scope{{i.get(), {0, 31}}, {j.get(), {0, 7}}};
    CHECK(to_string(arith::simplify((Expr(i) * 32 + j) - Expr(i) * 32, scope)) == "j");
    CHECK(to_string(arith::simplify(Expr(i) < 32, scope)) == "true");
    CHECK(to_string(arith::simplify(Expr(i) < 31, scope)) == "(i < 31)");
    CHECK(to_string(arith::simplify((Expr(i) * 8 + j) / 8, scope)) == "i");
    CHECK(to_string(arith::simplify((Expr(i) * 8 + j) % 8, scope)) == "j");
    CHECK(to_string(arith::simplify(min(Expr(i) + 4, Expr(i) + 2), scope)) == "(i + 2)");
    // A fused index taken apart and put back together.
    CHECK(to_string(arith::simplify((Expr(i) * 8 + j) / 3 * 3 + (Expr(i) * 8 + j) % 3 + 1, scope)) ==
          "(((i*8) + j) + 1)");
    CHECK(to_string(arith::simplify(Expr(i) / 5 * 10 + Expr(i) % 5 * 2, scope)) == "(i*2)");
    CHECK(to_string(arith::simplify(Expr(i) / 5 * 10 + Expr(i) % 5, scope)) != "(i*2)");
}

TEST_CASE("simplifier divides a sum by parts, lane by lane where a vector stays in one row") {
    Var c("c"), r("r"), o("o"), i("i");
    arith::BoundScope scope{{c.get(), {0, 99}}, {r.get(), {0, 195}}, {o.get(), {0, 1}}, {i.get(), {0, 15}}};
    // Floor division: (14*q + r) / 14 == q + r/14 for any r, so r's own bound [0, 195] then resolves the rest:
    // a flattened 14x14 plane taken apart by rows and put back is r itself.
    CHECK(to_string(arith::simplify((Expr(c) * 196 + r) / 14 % 14, scope)) == "(r/14)");
    CHECK(to_string(arith::simplify((Expr(c) * 196 + r) / 14 / 14, scope)) == "c");
    CHECK(to_string(arith::simplify((Expr(c) * 196 + r) / 14 % 14 * 224 + (Expr(c) * 196 + r) % 14 * 16, scope)) ==
          "(r*16)");
    // A tile shifted inwards keeps its min whole (nothing cancels), so its bound [0, 27] divides by a row of 28.
    Expr shifted = min(Expr(o) * 16, 12) + i + Expr(c) * 28;
    CHECK(to_string(arith::simplify(shifted / 28, scope)) == "c");
    CHECK(to_string(arith::simplify(min(Expr(o) * 16, 12) - Expr(o) * 16, scope)) ==
          "min(0, ((0 - (o*16)) + 12))");  // one that cancels still distributes
    // Vectors: one quotient when every lane's remainder stays below the divisor, else left alone.
    Expr inside = make_expr<Ramp>(Expr(c) * 28 + 4, Expr(1), 16),
         across = make_expr<Ramp>(Expr(c) * 28 + 13, Expr(1), 16);
    CHECK(to_string(arith::simplify(inside / broadcast(Expr(28), 16), scope)) == "x16(c)");
    CHECK(to_string(arith::simplify(inside % broadcast(Expr(28), 16), scope)) == "ramp(4, 1, 16)");
    CHECK(to_string(arith::simplify(across / broadcast(Expr(28), 16), scope)) ==
          "(ramp(((c*28) + 13), 1, 16)/x16(28))");
}

TEST_CASE("loop partitioning resolves a tile shifted inwards: full vectors and the last one index plainly") {
    // 28 columns in vectors of 16: [0, 16) and the last shifted back to [12, 28), both unmasked. The row index
    // of a flattened [5, 28] read divides exactly on both.
    auto A = placeholder({5 * 28}, f32, "A");
    auto B = compute(
            {5, 28}, [&](Expr y, Expr x) { return A((y * 28 + x) / 28 * 28 + (y * 28 + x) % 28) * 2.0f; }, "B");
    Schedule s(B);
    auto [xo, xi] = s[B].split(B.axis(1), 16, TailStrategy::ShiftInwards);
    s[B].vectorize(xi);
    std::string text = to_string(lower(s, {A, B}));
    CAPTURE(text);
    CHECK(text.find("min(") == std::string::npos);
    CHECK(text.find(" if ") == std::string::npos);  // nothing predicated
    CHECK(text.find("B[ramp((i*28), 1, 16)] = (A[ramp((i*28), 1, 16)]*x16(2.0))") != std::string::npos);
    CHECK(text.find("B[ramp(((i*28) + 12), 1, 16)] = (A[ramp(((i*28) + 12), 1, 16)]*x16(2.0))") != std::string::npos);
    auto f = build(s, {A, B});
    std::vector<float> a(5 * 28), b(5 * 28, -1.0f);
    for (int k = 0; k < 5 * 28; ++k) a[k] = static_cast<float>(k);
    f(a.data(), b.data());
    for (int k = 0; k < 5 * 28; ++k) REQUIRE(b[k] == 2.0f * k);
}

TEST_CASE("lower prints readable loop IR after every pass") {
    auto A = placeholder({16, 16}, f32, "A");
    auto B = compute(
            {16, 16}, [&](Expr i, Expr j) { return A(i, j) + 1.0f; }, "B");
    Schedule s(B);
    for (auto& pass : lower_pass_names()) {
        std::string text = to_string(lower(s, {A, B}, {.after = pass}));
        CHECK(text.find("after " + pass) != std::string::npos);
        CHECK(text.find("for (i, 0, 16)") != std::string::npos);
    }
    // Each pass runs alone too.
    Stmt nest = passes::schedule_ops(passes::inline_compute(s), passes::infer_bound(passes::inline_compute(s)));
    CHECK(to_string(nest).find("B(i, j) = (A(i, j) + 1.0)") != std::string::npos);
}

TEST_CASE("loop partitioning leaves the vectorized main body without guards") {
    auto A = placeholder({100}, f32, "A");
    auto B = compute(
            {100}, [&](Expr i) { return A(i) * 2.0f; }, "B");
    Schedule s(B);
    auto [o, in] = s[B].split(B.axis(0), 16);
    s[B].vectorize(in);
    std::string text = to_string(lower(s, {A, B}));
    CHECK(text.find("for (i.outer, 0, 6)") != std::string::npos);
    CHECK(text.find("B[ramp((i.outer*16), 1, 16)] = (A[ramp((i.outer*16), 1, 16)]*x16(2.0))") != std::string::npos);
    CHECK(text.find(" if ") != std::string::npos);  // the tail is predicated
}

TEST_CASE("loop partitioning splits under a clipped bound and leaves parallel loops whole") {
    // A column block of 128 clipped at the end of 1000 columns: min(128, 1000 - j.outer*128).
    auto A = placeholder({1000}, f32, "A");
    auto B = compute(
            {1000}, [&](Expr i) { return A(i) * 2.0f; }, "B");
    auto C = compute(
            {1000}, [&](Expr i) { return B(i) + 1.0f; }, "C");
    Schedule s(C);
    auto [jo, ji] = s[C].split(C.axis(0), 128);
    s[C].parallel(jo);
    s[B].compute_at(s[C], jo);
    auto [bo, bi] = s[B].split(B.axis(0), 16);
    s[B].vectorize(bi);
    std::string text = to_string(lower(s, {A, C}));
    CAPTURE(text);
    CHECK(text.find("parallel (i.outer, 0, 8)") != std::string::npos);  // one parallel loop, not a main and a tail
    CHECK(text.find("parallel (i.outer, 7") == std::string::npos);
    // B's vector loop has a main part without a guard; only its tail keeps one.
    CHECK(text.find("B[ramp((i.outer*16), 1, 16)] = (A[ramp(((i.outer*128) + (i.outer*16)), 1, 16)]*x16(2.0))\n") !=
          std::string::npos);
    auto f = build(s, {A, C});
    std::vector<float> a(1000), c(1000);
    for (int i = 0; i < 1000; ++i) a[i] = static_cast<float>(i);
    f(a.data(), c.data());
    for (int i = 0; i < 1000; ++i) REQUIRE(c[i] == 2.0f * i + 1.0f);
}

TEST_CASE("loop partitioning unswitches a parallel body whose unrolled tile a fused variable clips") {
    // Row blocks of 4 over 10 rows fused with the 13 columns: the last block's tile is clipped by
    // `i.inner < 10 - (v/13)*4`, which is not linear in the parallel variable v.
    auto A = placeholder({10, 13}, f32, "A");
    auto B = compute(
            {10, 13}, [&](Expr i, Expr j) { return A(i, j) * 2.0f; }, "B");
    Schedule s(B);
    auto [io, ii] = s[B].split(B.axis(0), 4);
    s[B].reorder({io, B.axis(1), ii});
    IterVar v = s[B].fuse(io, B.axis(1));
    s[B].parallel(v);
    s[B].unroll(ii);
    std::string text = to_string(lower(s, {A, B}));
    CAPTURE(text);
    // Each iteration tests once whether its whole tile is in range; the copy for full tiles is unrolled.
    CHECK(text.find("if (likely(") != std::string::npos);
    CHECK(text.find("B[(((i.outer.j.fused/13)*52) + (i.outer.j.fused % 13))] = ") != std::string::npos);
    CHECK(text.find("B[((((i.outer.j.fused/13)*52) + (i.outer.j.fused % 13)) + 39)] = ") != std::string::npos);
    // The copy for the last block runs where the test fails, v >= 26, so v/13 is 2 there: its two rows
    // are unrolled too, not a loop whose extent depends on v.
    CHECK(text.find("B[((i.outer.j.fused % 13) + 104)] = ") != std::string::npos);
    CHECK(text.find("B[((i.outer.j.fused % 13) + 117)] = ") != std::string::npos);
    CHECK(text.find("for (") == std::string::npos);
    auto f = build(s, {A, B});
    std::vector<float> a(130), b(130, -1.0f);
    for (int i = 0; i < 130; ++i) a[i] = static_cast<float>(i);
    f(a.data(), b.data());
    for (int i = 0; i < 130; ++i) REQUIRE(b[i] == 2.0f * i);
}

TEST_CASE("loop partitioning clips a window at zero padding instead of testing it") {
    // A 3-tap window over 10 values padded by one on each side, the padding a condition on the reduction.
    auto A = placeholder({10}, f32, "A");
    auto k = reduce_axis(0, 3, "k");
    auto B = compute(
            {10},
            [&](Expr x) {
                Expr at = x + k.var() - 1;
                return sum(A(at), {k}, likely(at >= 0 && at < 10));
            },
            "B");
    Schedule s(B);
    std::string text = to_string(lower(s, {A, B}));
    CAPTURE(text);
    CHECK(text.find(" if ") == std::string::npos);
    // The interior runs the whole window; the first and last outputs run a window clipped to the data.
    CHECK(text.find("for (i, 1, 8)") != std::string::npos);
    CHECK(text.find("for (k, 1, 2)") != std::string::npos);
    CHECK(text.find("for (k, 0, 2)") != std::string::npos);
    auto f = build(s, {A, B});
    std::vector<float> a(10), b(10);
    for (int i = 0; i < 10; ++i) a[i] = static_cast<float>(i * i + 1);
    f(a.data(), b.data());
    for (int x = 0; x < 10; ++x) {
        float want = 0;
        for (int t = x - 1; t <= x + 1; ++t) want += t >= 0 && t < 10 ? a[t] : 0.0f;
        REQUIRE(b[x] == want);
    }
}

TEST_CASE("loop partitioning clips a window row in one copy of a parallel body, not two") {
    // A 3-row window over 9 rows padded by one, parallel over the rows: the padding bounds the window's
    // serial loop kh. Clipping kh's range handles every row; a second copy of the body for the rows where
    // the window is whole would differ only in kh's bounds.
    auto A = placeholder({9, 16}, f32, "A");
    auto kh = reduce_axis(0, 3, "kh");
    auto B = compute(
            {9, 16},
            [&](Expr y, Expr x) {
                Expr row = y + kh.var() - 1;
                return sum(A(row, x), {kh}, likely(row >= 0 && row < 9));
            },
            "B");
    Schedule s(B);
    s[B].parallel(B.axis(0));
    s[B].vectorize(B.axis(1));
    std::string text = to_string(lower(s, {A, B}));
    CAPTURE(text);
    CHECK(text.find("if (") == std::string::npos);
    CHECK(text.find("for (kh, max(0, ") != std::string::npos);
    auto f = build(s, {A, B});
    Buffer a = test::random_buffer({9, 16}, 8), b({9, 16});
    f(a, b);
    for (int y = 0; y < 9; ++y)
        for (int x = 0; x < 16; ++x) {
            float want = 0;
            for (int r = y - 1; r <= y + 1; ++r) want += r >= 0 && r < 9 ? a.at<float>(r, x) : 0.0f;
            REQUIRE(b.at<float>(y, x) == doctest::Approx(want));
        }
}

TEST_CASE("annotations reach the loop IR and survive every pass") {
    auto A = placeholder({96}, f32, "A");
    auto B = compute(
            {96}, [&](Expr i) { return A(i) * 2.0f; }, "B");
    Schedule s(B);
    auto [o, in] = s[B].split(B.axis(0), 16);
    s[B].annotate(o, "pragma_hint", "4");
    s[B].annotate(o, "gpu_block");
    for (auto& pass : lower_pass_names())
        CHECK(to_string(lower(s, {A, B}, {.after = pass})).find("for (i.outer, 0, 6) @gpu_block @pragma_hint=4 {") !=
              std::string::npos);
}

// as_const_int points into the node of the expression it is given; on a temporary that pointer would dangle
// at the end of the statement (two such reads were found by AddressSanitizer), so it takes only named ones.
template <typename E>
concept takes_const_int_of = requires(E&& e) {
    kiln::as_const_int(std::forward<E>(e));
};
static_assert(!takes_const_int_of<kiln::Expr>);
static_assert(takes_const_int_of<const kiln::Expr&>);
