// GEMM, f32, row-major: kiln::nn::matmul with its default schedule beside oneDNN (dnnl_sgemm, when
// libdnnl-dev is present) and Eigen, one and two threads. Each case's names differ only in the library
// word: gemm/kiln/1024x1024x1024/1t, gemm/onednn/1024x1024x1024/1t, gemm/eigen/... A table of GFLOP/s
// and ratios follows the run.
//
//   bash scripts/bench.sh            (or ./build/bench/bench_gemm [--benchmark_filter=...])
#include <kiln/build.hpp>
#include <kiln/nn.hpp>

#include <Eigen/Dense>

#include "bench_common.hpp"

#if KILN_BENCH_HAVE_ONEDNN
#include <dnnl.h>
#endif

namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Shape {
    int M, N, K;
    bool nt;  // B is [N, K]
    std::string str() const {
        return std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) + (nt ? "nt" : "");
    }
    double flops() const { return 2.0 * M * N * K; }
};

struct Operands {
    RowMat a, b, c;
    explicit Operands(const Shape& s)
            : a(RowMat::Random(s.M, s.K)),
              b(s.nt ? RowMat::Random(s.N, s.K) : RowMat::Random(s.K, s.N)),
              c(RowMat::Zero(s.M, s.N)) {}
    RowMat reference(const Shape& s) const { return s.nt ? RowMat(a * b.transpose()) : RowMat(a * b); }
};

void check(benchmark::State& state, const Operands& x, const Shape& s) {
    if (!x.reference(s).isApprox(x.c, 1e-4f)) state.SkipWithError("result differs from Eigen");
}

void run_kiln(benchmark::State& state, Shape s, int threads) {
    bench::set_threads(threads);
    auto A = kiln::placeholder({s.M, s.K}, kiln::f32, "A");
    auto B = s.nt ? kiln::placeholder({s.N, s.K}, kiln::f32, "B") : kiln::placeholder({s.K, s.N}, kiln::f32, "B");
    auto C = kiln::nn::matmul(A, B, {.transpose_b = s.nt});
    kiln::Schedule sch(C);
    kiln::nn::schedule_matmul(sch, C);
    auto f = kiln::build(sch, {A, B, C});
    Operands x(s);
    f(x.a, x.b, x.c);
    for (auto _ : state) {
        f(x.a, x.b, x.c);
        benchmark::ClobberMemory();
    }
    check(state, x, s);
    bench::count_flops(state, s.flops());
}

#if KILN_BENCH_HAVE_ONEDNN
void run_onednn(benchmark::State& state, Shape s, int threads) {
    bench::set_threads(threads);
    Operands x(s);
    auto call = [&] {
        dnnl_sgemm('N', s.nt ? 'T' : 'N', s.M, s.N, s.K, 1.f, x.a.data(), s.K, x.b.data(), s.nt ? s.K : s.N, 0.f,
                   x.c.data(), s.N);
    };
    call();
    for (auto _ : state) {
        call();
        benchmark::ClobberMemory();
    }
    check(state, x, s);
    bench::count_flops(state, s.flops());
}
#endif

void run_eigen(benchmark::State& state, Shape s, int threads) {
    bench::set_threads(threads);
    Operands x(s);
    for (auto _ : state) {
        if (s.nt)
            x.c.noalias() = x.a * x.b.transpose();
        else
            x.c.noalias() = x.a * x.b;
        benchmark::ClobberMemory();
    }
    bench::count_flops(state, s.flops());
}

int register_all = [] {
    const Shape shapes[] = {{1024, 1024, 1024, false}, {2048, 2048, 2048, false}, {1000, 1000, 1000, false},
                            {127, 4096, 33, false},    {1, 4096, 4096, false},    {4096, 1024, 1024, true}};
    for (int threads : {1, 2})
        for (const Shape& s : shapes) {
            auto add = [&](const char* lib, void (*fn)(benchmark::State&, Shape, int)) {
                benchmark::RegisterBenchmark(bench::name_of("gemm", lib, s.str(), threads).c_str(), fn, s, threads)
                        ->Unit(benchmark::kMillisecond)
                        ->UseRealTime();
            };
#if KILN_BENCH_HAVE_ONEDNN
            add("onednn", run_onednn);
#endif
            add("eigen", run_eigen);
            add("kiln", run_kiln);
        }
    return 0;
}();

}  // namespace

int main(int argc, char** argv) { return bench::main(argc, argv); }
