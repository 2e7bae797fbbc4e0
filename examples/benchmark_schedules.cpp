// Three schedules of one 511^3 matmul timed with kiln's harness (kiln::autotune::time_evaluator): GFLOP/s and
// the share of this CPU's multiply-add peak. The third is kiln::nn's default, a packed register-tiled kernel.
#include <kiln/autotune.hpp>
#include <kiln/nn.hpp>

#include <cstdio>

int main() {
    using namespace kiln;
    const int n = 511;  // not a multiple of any tile: the tails are part of the measurement
    auto A = placeholder({n, n}, f32, "A"), B = placeholder({n, n}, f32, "B");
    auto naive_k = reduce_axis(0, n, "k");
    auto C = compute(
            {n, n}, [&](Expr i, Expr j) { return sum(A(i, naive_k) * B(naive_k, j), {naive_k}); }, "C");
    Schedule naive(C), tiled(C);
    auto [io, jo, ii, ji] = tiled[C].tile(C.axis(0), C.axis(1), 32, 32);
    tiled[C].reorder(io, jo, ii, tiled[C].reduce_axis(0), ji).vectorize(ji).parallel(io);
    auto D = nn::matmul(A, B);
    Schedule packed(D);
    nn::schedule_matmul(packed, D);
    Buffer a({n, n}), b({n, n}), c({n, n});
    const double flops = 2.0 * n * n * n, peak = autotune::peak_gflops();
    for (auto& [name, kernel] : {std::pair{"naive", build(naive, {A, B, C})},
                                 {"tiled 32x32", build(tiled, {A, B, C})},
                                 {"kiln::nn default", build(packed, {A, B, D})}}) {
        const auto t = autotune::time_evaluator(kernel)(a, b, c);
        std::printf("%-17s %8.3f ms  %6.1f GFLOP/s  %5.1f%% of %.0f GFLOP/s peak on %d threads\n", name,
                    t.median() * 1e3, t.gflops(flops), 100 * t.gflops(flops) / peak, peak, num_threads());
    }
}
