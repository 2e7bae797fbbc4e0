// Tuning from the generated space (kiln/autotune/sketch.hpp, no template), then the tuned kernel timed
// beside its peers in alternating rounds:
//   matmul 1024^3      tuned vs the generated space's default, kiln::nn's schedule and oneDNN's sgemm
//   classifier         SqueezeNet 1.1's last layer (1x1 convolution 512 -> 1000 channels on 13x13, ReLU,
//                      channel-blocked as the graph layer runs it): tuned vs kiln::nn's schedule
//
//   ./build/bench/bench_tune [--trials 300] [--threads 1] [--rounds 5] [--records FILE] [--case matmul|classifier]
//
// Records go to FILE (default: a file of this run in the temporary directory, removed afterwards), so a
// second run with the same file continues the search.
#include <kiln/autotune.hpp>
#include <kiln/nn.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#if KILN_BENCH_HAVE_ONEDNN
#include <dnnl.h>
#include <omp.h>
#endif

namespace {

using namespace kiln;

struct Options {
    int trials = 300, threads = 1, rounds = 5;
    std::string records, only;
};

struct Contender {
    std::string name;
    std::function<void()> run;
    std::vector<double> seconds;
};

// Each round times every contender once (time_evaluator's median of 3), in turn, so a slow spell of the
// machine falls on all of them; the figure is the median over rounds.
void compare(std::vector<Contender>& cs, double flops, int rounds) {
    for (int r = 0; r < rounds; ++r)
        for (auto& c : cs) {
            auto start = std::chrono::steady_clock::now();
            c.run();  // warm
            const double once = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            const int calls = std::max(1, static_cast<int>(0.1 / std::max(once, 1e-6)));
            std::vector<double> reps;
            for (int rep = 0; rep < 3; ++rep) {
                start = std::chrono::steady_clock::now();
                for (int i = 0; i < calls; ++i) c.run();
                reps.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / calls);
            }
            std::sort(reps.begin(), reps.end());
            c.seconds.push_back(reps[1]);
        }
    const double ref = [&] {
        std::vector<double> s = cs.back().seconds;
        std::sort(s.begin(), s.end());
        return s[s.size() / 2];
    }();
    for (auto& c : cs) {
        std::sort(c.seconds.begin(), c.seconds.end());
        const double med = c.seconds[c.seconds.size() / 2];
        std::printf("  %-28s %9.3f ms %8.1f GFLOP/s   %.2fx of %s\n", c.name.c_str(), med * 1e3, flops / med * 1e-9,
                    ref / med, cs.back().name.c_str());
    }
}

autotune::TuneResult tune_task(const autotune::Task& task, const Options& o, const std::string& records) {
    autotune::TuneOptions to;
    to.trials = o.trials;
    to.threads = o.threads;
    to.records = records;
    int n = 0;
    double best = 0;
    const auto start = std::chrono::steady_clock::now();
    to.on_record = [&](const autotune::Record& r) {
        ++n;
        if (r.ok() && (best == 0 || r.median() < best)) best = r.median();
        if (n % 50 == 0 || n == o.trials)
            std::printf("  trial %4d: best %.1f GFLOP/s (%.0f s)\n", n, best > 0 ? task.flops / best * 1e-9 : 0.0,
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        std::fflush(stdout);
    };
    auto r = autotune::tune(task, to);
    std::printf("  %d measured, %d failed; cost model's held-out pairwise accuracy %.3f over %zu pairs\n", r.measured,
                r.failed, r.model_accuracy, r.model_pairs);
    std::printf("  best after the confirmation round: %.1f GFLOP/s (the default configuration: %.1f)\n",
                task.flops / r.best_seconds * 1e-9,
                r.default_seconds > 0 ? task.flops / r.default_seconds * 1e-9 : 0.0);
    return r;
}

void matmul_case(const Options& o, const std::string& records) {
    const int n = 1024;
    std::printf("\nmatmul %dx%dx%d, %d thread(s), %d trials from the generated space\n", n, n, n, o.threads, o.trials);
    auto A = placeholder({n, n}, f32, "A"), B = placeholder({n, n}, f32, "B");
    auto k = reduce_axis(0, n, "k");
    auto C = compute(
            {n, n}, [&](Expr i, Expr j) { return sum(A(i, k.var()) * B(k.var(), j), {k}); }, "C");
    auto task = autotune::generated_task("matmul", {A, B, C});
    task.flops = 2.0 * n * n * n;
    const auto result = tune_task(task, o, records);
    Buffer a({n, n}), b({n, n}), c({n, n});
    for (int64_t i = 0; i < a.size(); ++i) a.data_as<float>()[i] = static_cast<float>(i % 7) * 0.25f - 0.5f;
    for (int64_t i = 0; i < b.size(); ++i) b.data_as<float>()[i] = static_cast<float>(i % 5) * 0.5f - 1.0f;
    const Kernel tuned = build(task.schedule(task.space(), result.best), task.args);
    const Kernel generated_default =
            build(task.schedule(task.space(), KnobConfig(task.space().knobs.size(), 0)), task.args);
    auto D = nn::matmul(A, B);
    Schedule nn_s(D);
    nn::schedule_matmul(nn_s, D);
    const Kernel nn_default = build(nn_s, {A, B, D});
    set_num_threads(o.threads);
    std::vector<Contender> cs{{"kiln tuned", [&] { tuned(a, b, c); }, {}},
                              {"kiln generated default", [&] { generated_default(a, b, c); }, {}},
                              {"kiln::nn default", [&] { nn_default(a, b, c); }, {}}};
#if KILN_BENCH_HAVE_ONEDNN
    omp_set_num_threads(o.threads);
    cs.push_back({"oneDNN sgemm",
                  [&] {
                      dnnl_sgemm('N', 'N', n, n, n, 1.f, a.data_as<float>(), n, b.data_as<float>(), n, 0.f,
                                 c.data_as<float>(), n);
                  },
                  {}});
#endif
    compare(cs, task.flops, o.rounds);
}

void classifier_case(const Options& o, const std::string& records) {
    // SqueezeNet 1.1's classifier as the graph layer runs it: blocked activations, a weight packed once.
    const int64_t IC = 512, OC = 1000, H = 13;
    const auto layout = nn::conv2d_layout(IC, OC, 1);
    std::printf("\nclassifier: 1x1 convolution %lld -> %lld channels on %lldx%lld + ReLU, %d thread(s), %d trials\n",
                static_cast<long long>(IC), static_cast<long long>(OC), static_cast<long long>(H),
                static_cast<long long>(H), o.threads, o.trials);
    auto W = placeholder({OC, IC, 1, 1}, f32, "W");
    const Tensor packed_def = nn::pack_conv2d_weight(W, IC);
    std::vector<int64_t> packed_shape;
    for (const Expr& e : packed_def.op()->shape) packed_shape.push_back(*as_const_int(e));
    std::vector<Expr> ps(packed_shape.begin(), packed_shape.end());
    auto Wp = placeholder(ps, f32, "Wp");
    const int64_t cb = layout.data_block;
    auto X = placeholder({1, IC / cb, H, H, cb}, f32, "X");
    auto conv = nn::conv2d_nchwc(X, Wp, IC, {.out_channels = OC});
    auto Y = compute(
            conv.op()->shape, [&](Expr n, Expr c, Expr h, Expr w, Expr b) { return max(conv(n, c, h, w, b), 0.0f); },
            "Y");
    auto task = autotune::generated_task("classifier", {X, Wp, Y});
    task.flops = 2.0 * IC * OC * H * H;
    const auto result = tune_task(task, o, records);
    Schedule nn_s(Y);
    nn::schedule_conv2d(nn_s, Y);
    const Kernel nn_default = build(nn_s, {X, Wp, Y});
    const Kernel tuned = build(task.schedule(task.space(), result.best), task.args);
    std::vector<int64_t> ys;
    for (const Expr& e : Y.op()->shape) ys.push_back(*as_const_int(e));
    Buffer x({1, IC / cb, H, H, cb}), w(packed_shape), y(ys);
    for (int64_t i = 0; i < x.size(); ++i) x.data_as<float>()[i] = static_cast<float>(i % 11) * 0.1f - 0.5f;
    for (int64_t i = 0; i < w.size(); ++i) w.data_as<float>()[i] = static_cast<float>(i % 13) * 0.01f - 0.06f;
    set_num_threads(o.threads);
    std::vector<Contender> cs{{"kiln tuned", [&] { tuned(x, w, y); }, {}},
                              {"kiln::nn default", [&] { nn_default(x, w, y); }, {}}};
    compare(cs, task.flops, o.rounds);
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i], value = argv[i + 1];
        if (flag == "--trials")
            o.trials = std::stoi(value);
        else if (flag == "--threads")
            o.threads = std::stoi(value);
        else if (flag == "--rounds")
            o.rounds = std::stoi(value);
        else if (flag == "--records")
            o.records = value;
        else if (flag == "--case")
            o.only = value;
        else {
            std::fprintf(stderr, "bench_tune: unknown option '%s'\n", flag.c_str());
            return 2;
        }
    }
    std::printf("fp32 multiply-add peak on %d thread(s): %.0f GFLOP/s\n", o.threads, autotune::peak_gflops(o.threads));
    const bool keep = !o.records.empty();
    const std::string records = keep ? o.records
                                     : (std::filesystem::temp_directory_path() /
                                        ("kiln_bench_tune_" + std::to_string(::getpid()) + ".jsonl"))
                                                .string();
    if (o.only.empty() || o.only == "matmul") matmul_case(o, records);
    if (o.only.empty() || o.only == "classifier") classifier_case(o, records);
    if (!keep) {
        std::error_code ec;
        std::filesystem::remove(records, ec);
        std::filesystem::remove(records + ".model.json", ec);
    }
}
