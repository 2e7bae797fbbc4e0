#pragma once
// Timing a compiled kernel, as TVM's time_evaluator does: warm-up calls, then `repeat` measurements, each
// of as many calls as fill `min_repeat_ms`, so short kernels are not timed by one clock tick. The tuner
// measures every candidate through this; it is public so a program can microbenchmark its own schedules:
//
//     auto t = kiln::autotune::time_evaluator(kernel)(a, b, c);
//     std::printf("%.1f GFLOP/s\n", t.gflops(2.0 * M * N * K));
#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <mutex>
#include <numeric>
#include <vector>

#include "kiln/autotune/records.hpp"
#include "kiln/build.hpp"

namespace kiln::autotune {

struct MeasureOptions {
    int warmup = 1;             // untimed calls first (page faults, caches, the thread pool waking)
    int repeat = 5;             // measurements; the median is the figure to quote
    double min_repeat_ms = 50;  // each measurement repeats the call until it has run at least this long
    double timeout_ms = 10000;  // no further calls once the measurement has taken this long; a call in
                                // progress is not interrupted
    // Before each timed call, evict every argument but the first from the caches (TVM's
    // cache_flush_cpu_non_first_arg): inside a model a kernel's weights arrive cold while its activation
    // arrives warm from the kernel before, and a schedule that rereads its weights is only slow then.
    // Each call is then timed alone, the eviction outside the time.
    bool flush_cache = false;
};

struct Timing {
    std::vector<double> seconds;  // per call, one entry per measurement
    std::vector<int> calls;       // the calls each measurement made
    bool timed_out = false;       // stopped at MeasureOptions::timeout_ms; `seconds` holds what was measured

    double median() const { return median_of(seconds); }
    double min() const { return seconds.empty() ? 0 : *std::min_element(seconds.begin(), seconds.end()); }
    double mean() const {
        return seconds.empty()
                       ? 0
                       : std::accumulate(seconds.begin(), seconds.end(), 0.0) / static_cast<double>(seconds.size());
    }
    double stddev() const {
        if (seconds.size() < 2) return 0;
        const double m = mean();
        double sq = 0;
        for (double s : seconds) sq += (s - m) * (s - m);
        return std::sqrt(sq / static_cast<double>(seconds.size() - 1));
    }
    // `flops` floating-point operations per call, at the median time.
    double gflops(double flops) const { return median() > 0 ? flops / median() * 1e-9 : 0; }
};

namespace detail {

// Writes back and evicts the cache lines of args[first..]: clflush on x86, elsewhere a read through a
// buffer larger than the last-level cache.
inline void evict_from_caches(const std::vector<kiln::detail::ArgValue>& args, size_t first) {
#if defined(__x86_64__) || defined(__i386__)
    for (size_t a = first; a < args.size(); ++a) {
        int64_t n = 1;
        for (int64_t d : args[a].shape) n *= d;
        const auto* p = static_cast<const char*>(args[a].data);
        const int64_t bytes = n * args[a].dtype.bytes();
        for (int64_t off = 0; off < bytes; off += 64) __builtin_ia32_clflush(p + off);
    }
    __builtin_ia32_mfence();
#else
    (void)args;
    (void)first;
    static std::vector<char> scratch(size_t{64} << 20, 1);
    volatile char sink = 0;
    for (size_t i = 0; i < scratch.size(); i += 64) sink = static_cast<char>(sink + scratch[i]);
#endif
}

}  // namespace detail

class TimeEvaluator {
public:
    TimeEvaluator(Kernel kernel, MeasureOptions options) : kernel_(std::move(kernel)), opt_(options) {
        if (opt_.repeat < 1) kiln::detail::fail("time_evaluator: repeat is ", opt_.repeat, "; measure at least once");
        if (opt_.warmup < 0) kiln::detail::fail("time_evaluator: warmup is ", opt_.warmup, "; use 0 or more calls");
        if (!(opt_.min_repeat_ms >= 0) || !(opt_.timeout_ms > 0))
            kiln::detail::fail("time_evaluator: min_repeat_ms is ", opt_.min_repeat_ms, " and timeout_ms ",
                               opt_.timeout_ms, "; give a minimum of 0 or more and a positive time-out");
    }

    // Arguments as the kernel itself takes them (Buffers, Eigen matrices, pointers).
    template <typename... Args> Timing operator()(Args&&... args) const {
        std::vector<kiln::detail::ArgValue> v{kiln::detail::to_arg(std::forward<Args>(args))...};
        return run(v);
    }

    Timing run(std::vector<kiln::detail::ArgValue>& args) const {
        using clock = std::chrono::steady_clock;
        const auto start = clock::now();
        auto ms_since = [](clock::time_point t) {
            return std::chrono::duration<double, std::milli>(clock::now() - t).count();
        };
        Timing t;
        // The first call checks the arguments (an error surfaces here, not mid-measurement).
        kernel_.call(args);
        const double first_call_ms = ms_since(start);
        for (int w = 1; w < opt_.warmup && ms_since(start) < opt_.timeout_ms; ++w) kernel_.call(args);
        // Each measurement calls the kernel until it has run min_repeat_ms. A count sized from one warm-up
        // call would fall short whenever that call was slower than the rest (a cold cache, a sanitizer).
        for (int r = 0; r < opt_.repeat; ++r) {
            if (ms_since(start) >= opt_.timeout_ms) {
                t.timed_out = true;
                break;
            }
            const auto r0 = clock::now();
            int calls = 0;
            double elapsed_ms = 0;
            do {
                if (opt_.flush_cache) {
                    detail::evict_from_caches(args, 1);
                    const auto c0 = clock::now();
                    kernel_.call(args);
                    elapsed_ms += ms_since(c0);
                } else {
                    kernel_.call(args);
                    elapsed_ms = ms_since(r0);
                }
                ++calls;
            } while (elapsed_ms < opt_.min_repeat_ms && ms_since(start) < opt_.timeout_ms);
            if (elapsed_ms < opt_.min_repeat_ms) t.timed_out = true;
            t.seconds.push_back(elapsed_ms * 1e-3 / calls);
            t.calls.push_back(calls);
        }
        if (t.seconds.empty()) {
            t.seconds.push_back(first_call_ms * 1e-3);
            t.calls.push_back(1);
        }
        return t;
    }

private:
    Kernel kernel_;
    MeasureOptions opt_;
};

inline TimeEvaluator time_evaluator(Kernel kernel, MeasureOptions options = {}) {
    return TimeEvaluator(std::move(kernel), options);
}

// This machine's fp32 multiply-add peak in GFLOP/s on `threads` threads (0: the thread pool's size), as
// a kiln kernel reaches it: chains of independent vector fused multiply-adds that touch no memory in the
// loop. Measured once per thread count (about 0.2 s), so "% of peak" is against what the CPU does today.
inline double peak_gflops(int threads = 0) {
    if (threads <= 0) threads = num_threads();
    static std::mutex m;
    static std::map<int, double> measured;
    std::lock_guard<std::mutex> lock(m);
    if (auto it = measured.find(threads); it != measured.end()) return it->second;
    const int lanes = std::max(4, Target{}.simd_bits() / 32);
    // Twelve accumulators of one vector each hide the multiply-add latency (4 cycles, 2 per cycle) with
    // room to spare, and leave registers for the twelve multiplicands.
    // Each thread gets a sixteenth of a millisecond's work or more per copy, so waking the pool is noise.
    const int chains = 12, copies = 16 * threads, K = 8192;
    auto X = placeholder({copies, chains, lanes}, f32, "X");
    auto w = placeholder({K}, f32, "w");
    auto k = reduce_axis(0, K, "k");
    auto Y = compute(
            {copies, chains, lanes}, [&](Expr c, Expr a, Expr l) { return sum(X(c, a, l) * w(k.var()), {k}); }, "Y");
    Schedule s(Y);
    auto YL = s.cache_write(Y, "local");
    s[Y].parallel(Y.axis(0));
    s[YL].compute_at(s[Y], Y.axis(0));
    s[YL].reorder(s[YL].reduce_axis(0), s[YL].axis(1), s[YL].axis(2));
    s[YL].unroll(s[YL].axis(1));
    s[YL].vectorize(s[YL].axis(2));
    BuildOptions bo;
    bo.name = "fma_peak";
    const Kernel kern = build(s, {X, w, Y}, bo);
    Buffer x({copies, chains, lanes}), wb({K}), y({copies, chains, lanes});
    for (int64_t i = 0; i < x.size(); ++i) x.data_as<float>()[i] = 1.0f + 1e-7f * static_cast<float>(i % 7);
    for (int64_t i = 0; i < wb.size(); ++i) wb.data_as<float>()[i] = 1e-4f;
    const int before = num_threads();
    set_num_threads(threads);
    const Timing t = time_evaluator(kern, {.warmup = 2, .repeat = 5, .min_repeat_ms = 20})(x, wb, y);
    set_num_threads(before);
    const double flops = 2.0 * copies * chains * lanes * K;
    return measured[threads] = flops / t.min() * 1e-9;
}

}  // namespace kiln::autotune
