// Reads outside a tensor are caught before any memory is touched: at lowering where the shapes are known,
// and at the call, with the actual sizes, where they are symbolic. Each buffer here ends at (or starts
// after) a page that cannot be read, so a read that slipped through would kill the test, not pass it.
#include <kiln/build.hpp>
#include <sys/mman.h>

#include "helpers.hpp"

using namespace kiln;
using test::error_of;

namespace {

// n floats placed against a page that cannot be touched: after them, or before them.
struct GuardedFloats {
    void* base = nullptr;
    size_t bytes = 0;
    float* data = nullptr;
    GuardedFloats(int64_t n, bool guard_after) {
        const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
        const size_t need = (static_cast<size_t>(n) * sizeof(float) + page - 1) / page * page;
        bytes = need + page;
        base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(base != MAP_FAILED);
        char* b = static_cast<char*>(base);
        if (guard_after) {
            REQUIRE(::mprotect(b + need, page, PROT_NONE) == 0);
            data = reinterpret_cast<float*>(b + need) - n;
        } else {
            REQUIRE(::mprotect(b, page, PROT_NONE) == 0);
            data = reinterpret_cast<float*>(b + page);
        }
        for (int64_t i = 0; i < n; ++i) data[i] = static_cast<float>(i % 17) - 8.f;
    }
    ~GuardedFloats() { ::munmap(base, bytes); }
    Buffer view(int64_t n) const { return Buffer(data, {n}, f32); }
};

}  // namespace

TEST_CASE("reads past a tensor with constant shapes are refused at lowering") {
    auto A = placeholder({1024}, f32, "A");
    SUBCASE("one past the end") {
        auto B = compute(
                {1024}, [&](Expr i) { return A(i + 1) - A(i); }, "B");
        Schedule s(B);
        CHECK(error_of([&] {
                  build(s, {A, B});
              }) ==
              "stage 'B' reads A(i + 1), whose index in dimension 0 covers [1, 1024], but 'A' has [0, 1024) there; "
              "shrink 'B' to the part that is defined, clamp the index into [0, 1024) with kiln::max and kiln::min, "
              "or guard the read with if_then_else");
    }
    SUBCASE("one before the start, vectorized") {
        auto B = compute(
                {1024}, [&](Expr i) { return A(i) - A(i - 1); }, "B");
        Schedule s(B);
        auto [o, v] = s[B].split(B.axis(0), 8);
        s[B].vectorize(v);
        CHECK(error_of([&] {
                  build(s, {A, B});
              }).starts_with("stage 'B' reads A(i - 1), whose index in dimension 0 covers [-1, 1022]"));
    }
    SUBCASE("an intermediate read past the region it computes") {
        auto P = compute(
                {1024}, [&](Expr i) { return A(i) * 2.f; }, "P");
        auto B = compute(
                {1024}, [&](Expr i) { return P(i + 1); }, "B");
        Schedule s(B);
        CHECK(error_of([&] {
                  lower(s, {A, B});
              }) ==
              "stage 'B' reads P(i + 1), whose index in dimension 0 (axis 'i') covers [1, 1024], but 'P' has "
              "[0, 1024) there; shrink 'B' to the part that is defined, clamp the index into [0, 1024) with kiln::max "
              "and kiln::min, or guard the read with if_then_else");
    }
    SUBCASE("a reduction window past the edge") {
        auto k = reduce_axis(0, 3, "k");
        auto B = compute(
                {1023}, [&](Expr i) { return sum(A(i + k), {k}); }, "B");
        Schedule s(B);
        CHECK(error_of([&] {
                  lower(s, {A, B});
              }).starts_with("stage 'B' reads A(i + k), whose index in dimension 0 covers [0, 1024]"));
    }
    SUBCASE("an index that depends on data") {
        auto I = placeholder({16}, i32, "I");
        auto B = compute(
                {16}, [&](Expr i) { return A(I(i)); }, "B");
        Schedule s(B);
        CHECK(error_of([&] {
                  lower(s, {A, I, B});
              }) ==
              "stage 'B' reads A(I(i)): kiln cannot bound the index I(i) in dimension 0 of 'A' (it depends on data "
              "or on arithmetic bound inference does not follow), so the read could fall outside the tensor; shrink "
              "'B' to the part that is defined, clamp the index into [0, 1024) with kiln::max and kiln::min, or guard "
              "the read with if_then_else");
    }
}

TEST_CASE("guarded and clamped reads at the edges are in range, and run") {
    const int64_t n = 1000;
    auto A = placeholder({n}, f32, "A");
    auto I = placeholder({n}, i32, "I");
    // A backward difference guarded by if_then_else, a clamped forward one, and a gather with clamped indices.
    auto B = compute(
            {n},
            [&](Expr i) {
                Expr back = if_then_else(i >= 1, A(i) - A(i - 1), Expr(0.f));
                Expr fwd = A(kiln::min(i + 1, Expr(static_cast<int>(n - 1)))) - A(i);
                Expr g = A(kiln::max(kiln::min(I(i), Expr(static_cast<int>(n - 1))), Expr(0)));
                return back + fwd * 2.f + g * 3.f;
            },
            "B");
    Schedule s(B);
    auto [o, v] = s[B].split(B.axis(0), 16);
    s[B].vectorize(v);
    Kernel k = build(s, {A, I, B});
    CHECK(k.loop_ir().find("requires") == std::string::npos);
    for (bool guard_after : {true, false}) {
        GuardedFloats a(n, guard_after);
        Buffer idx({n}, i32), out({n}, f32);
        for (int64_t i = 0; i < n; ++i) idx.data_as<int32_t>()[i] = static_cast<int32_t>((i * 7919) % (3 * n)) - n;
        k(a.view(n), idx, out);
        for (int64_t i = 0; i < n; ++i) {
            const float* x = a.data;
            const float back = i >= 1 ? x[i] - x[i - 1] : 0.f;
            const float fwd = x[std::min(i + 1, n - 1)] - x[i];
            const int64_t j = std::clamp<int64_t>(idx.data_as<int32_t>()[i], 0, n - 1);
            REQUIRE(out.data_as<float>()[i] == doctest::Approx(back + fwd * 2.f + x[j] * 3.f));
        }
    }
}

TEST_CASE("reads whose range depends on symbolic sizes are checked at the call, before the kernel runs") {
    Var n("n"), m("m");
    auto A = placeholder({n}, f32, "A");
    // B has its own size: in range only when m <= n - 1.
    auto B = compute(
            {m}, [&](Expr i) { return A(i + 1) - A(i); }, "B");
    Schedule s(B);
    auto [o, v] = s[B].split(B.axis(0), 8);
    s[B].vectorize(v);
    Kernel k = build(s, {A, B});
    CHECK(k.loop_ir().find("// requires: m < n (B reads A(i + 1))") != std::string::npos);
    GuardedFloats a(100, true);
    Buffer ok({99}, f32), too_long({100}, f32);
    k(a.view(100), ok);
    for (int i = 0; i < 99; ++i) REQUIRE(ok.data_as<float>()[i] == a.data[i + 1] - a.data[i]);
    CHECK(error_of([&] { k(a.view(100), too_long); }) ==
          "kernel: argument 'A' would be read at index m = 100 in dimension 0, outside its size n = 100 (stage 'B' "
          "reads A(i + 1)); pass arguments whose sizes fit each other");
    // The same read with one size for both is out of range at any size, and known to be at lowering.
    auto C = compute(
            {n}, [&](Expr i) { return A(i + 1) - A(i); }, "C");
    Schedule sc(C);
    CHECK(error_of([&] {
              lower(sc, {A, C});
          })
                  .starts_with("stage 'C' reads A(i + 1), whose index in dimension 0 covers [1, n], but 'A' has [0, n) "
                               "there"));
}

TEST_CASE("a tile shifted inwards never starts before the axis, even where the factor is wider than the extent") {
    // Found by fuzz_schedule: 12 rows split by 7 leave 2 outer tiles; splitting those by 8 with ShiftInwards
    // shifted the tile to start at -6 and wrote 420 elements before the output.
    auto X = placeholder({12, 10}, f32, "X");
    auto D = compute(
            {12, 10}, [&](Expr i, Expr j) { return X(i, j) * 2.f + 1.f; }, "D");
    Schedule s(D);
    auto [io, ii] = s[D].split(D.axis(0), 7);
    auto [ioo, ioi] = s[D].split(io, 8, TailStrategy::ShiftInwards);
    Kernel k = build(s, {X, D});
    GuardedFloats x(120, false), out(120, false);  // a write before the output hits the guard page
    k(Buffer(x.data, {12, 10}, f32), Buffer(out.data, {12, 10}, f32));
    for (int i = 0; i < 120; ++i) REQUIRE(out.data[i] == x.data[i] * 2.f + 1.f);
}
