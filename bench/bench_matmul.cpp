// matmul 1024^3 f32 on one thread: kiln's naive, lesson and best hand schedules next to Eigen in the
// same binary, plus the JIT compile latency of the lesson's matmul (cold, and through the cache).
//
//   cmake -S . -B build -G Ninja -DKILN_BUILD_BENCH=ON && cmake --build build --target bench_matmul
//   ./build/bench/bench_matmul
#include <kiln/build.hpp>

#include <Eigen/Core>
#include <benchmark/benchmark.h>

#include <atomic>
#include <string>

namespace {

constexpr int M = 1024, N = 1024, K = 1024;
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Matmul {
    kiln::Tensor A, B, C;
    kiln::IterVar k;
};

Matmul define_matmul() {
    Matmul m;
    m.A = kiln::placeholder({M, K}, kiln::f32, "A");
    m.B = kiln::placeholder({K, N}, kiln::f32, "B");
    m.k = kiln::reduce_axis(0, K, "k");
    m.C = kiln::compute(
            {M, N}, [&](kiln::Expr i, kiln::Expr j) { return kiln::sum(m.A(i, m.k) * m.B(m.k, j), {m.k}); }, "C");
    return m;
}

kiln::Kernel naive() {
    auto m = define_matmul();
    kiln::Schedule s(m.C);
    return kiln::build(s, {m.A, m.B, m.C});
}

kiln::Schedule lesson_schedule(const Matmul& m) {
    kiln::Schedule s(m.C);
    auto [xo, xi] = s[m.C].split(m.C.axis(0), 32);
    auto [yo, yi] = s[m.C].split(m.C.axis(1), 32);
    s[m.C].reorder(xo, yo, xi, yi);
    s[m.C].vectorize(yi);
    return s;
}

kiln::Kernel lesson(bool use_cache = true) {
    auto m = define_matmul();
    auto s = lesson_schedule(m);
    kiln::BuildOptions opt;
    opt.use_cache = use_cache;
    opt.use_disk_cache = use_cache;  // a compile-latency benchmark compiles
    return kiln::build(s, {m.A, m.B, m.C}, opt);
}

// B is packed into column panels [N/32][K][32] so the micro-kernel reads it contiguously; an 8x32
// accumulator tile (16 zmm registers) lives in registers across the whole k loop: per k step, two
// vector loads of B and eight broadcasts of A feed sixteen FMAs.
kiln::Kernel best() {
    constexpr int MR = 8, NR = 32;
    auto A = kiln::placeholder({M, K}, kiln::f32, "A");
    auto B = kiln::placeholder({K, N}, kiln::f32, "B");
    auto k = kiln::reduce_axis(0, K, "k");
    auto PB = kiln::compute(
            {(N + NR - 1) / NR, K, NR},
            [&](kiln::Expr x, kiln::Expr y, kiln::Expr z) {
                return kiln::if_then_else(x * NR + z < N, B(y, x * NR + z), kiln::make_const(kiln::f32, 0));
            },
            "PB");
    auto C = kiln::compute(
            {M, N}, [&](kiln::Expr i, kiln::Expr j) { return kiln::sum(A(i, k) * PB(j / NR, k, j % NR), {k}); }, "C");
    kiln::Schedule s(C);
    auto CC = s.cache_write(C, "local");
    auto [io, jo, ii, ji] = s[C].tile(C.axis(0), C.axis(1), MR, NR);
    s[C].reorder(jo, io, ii, ji);
    s[C].vectorize(ji);
    s[C].parallel(jo);
    s[CC].compute_at(s[C], io);
    auto [ko, ki] = s[CC].split(s[CC].reduce_axis(0), 4);
    s[CC].reorder(ko, ki, s[CC].axis(0), s[CC].axis(1));
    s[CC].unroll(s[CC].axis(0));
    s[CC].vectorize(s[CC].axis(1));
    s[CC].unroll(ki);
    s[PB].vectorize(PB.axis(2));
    s[PB].parallel(PB.axis(0));
    return kiln::build(s, {A, B, C});
}

struct Operands {
    RowMat a = RowMat::Random(M, K), b = RowMat::Random(K, N), c = RowMat::Zero(M, N);
};

void report_gflops(benchmark::State& state) {
    state.counters["GFLOP/s"] = benchmark::Counter(2e-9 * M * N * K, benchmark::Counter::kIsIterationInvariantRate);
}

void run_kernel(benchmark::State& state, kiln::Kernel (*make)()) {
    kiln::set_num_threads(1);
    auto f = make();
    Operands x;
    f(x.a, x.b, x.c);  // warm up caches and the thread pool
    for (auto _ : state) {
        f(x.a, x.b, x.c);
        benchmark::ClobberMemory();
    }
    RowMat ref = x.a * x.b;
    if (!ref.isApprox(x.c, 1e-4f)) state.SkipWithError("result differs from Eigen");
    report_gflops(state);
}

void BM_eigen(benchmark::State& state) {
    Eigen::setNbThreads(1);
    Operands x;
    for (auto _ : state) {
        x.c.noalias() = x.a * x.b;
        benchmark::ClobberMemory();
    }
    report_gflops(state);
}

void BM_compile_cold(benchmark::State& state) {
    for (auto _ : state) benchmark::DoNotOptimize(lesson(/*use_cache=*/false));
}

void BM_compile_cached(benchmark::State& state) {
    auto keep = lesson();
    for (auto _ : state) benchmark::DoNotOptimize(lesson());
}

// The fork-join cost of one parallel loop on two threads with an empty body: what every parallel kernel
// pays on top of its work.
void BM_fork_join(benchmark::State& state) {
    kiln::set_num_threads(2);
    static std::atomic<int> sink{0};
    auto body = [](int32_t i, void*) { sink.fetch_add(i, std::memory_order_relaxed); };
    for (auto _ : state) kiln::runtime::thread_pool().parallel_for(body, nullptr, 2);
    kiln::set_num_threads(1);
}

const std::string shape = "/" + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K);

int register_all = [] {
    auto kernel = [](const char* impl, kiln::Kernel (*make)()) {
        benchmark::RegisterBenchmark(("matmul/" + std::string(impl) + shape).c_str(), run_kernel, make)
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
    };
    kernel("naive", naive);
    kernel("lesson", []() { return lesson(); });
    kernel("best", best);
    benchmark::RegisterBenchmark(("matmul/eigen" + shape).c_str(), BM_eigen)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
    benchmark::RegisterBenchmark("jit_compile/lesson/cold", BM_compile_cold)->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("jit_compile/lesson/cached", BM_compile_cached)->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("runtime/fork_join/2t", BM_fork_join)->Unit(benchmark::kMicrosecond)->UseRealTime();
    return 0;
}();

}  // namespace

BENCHMARK_MAIN();
