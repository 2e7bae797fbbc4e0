#include "tune.hpp"

#include <kiln/autotune.hpp>
#include <kiln/graph.hpp>
#include <kiln/onnx.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>

namespace {

double ms(double seconds) { return seconds * 1e3; }

// A whole-model comparison: the defaults and the records compiled, run on the same random inputs, and
// timed in alternating rounds (the machine drifts; each round's ratio is taken in the same seconds).
struct Comparison {
    double default_ms = 0, tuned_ms = 0, speedup = 0, max_difference = 0;
    int tuned_kernels = 0, kernels = 0;
};

Comparison compare(const kiln::graph::Graph& model, kiln::graph::CompileOptions co, const std::string& records) {
    using clock = std::chrono::steady_clock;
    kiln::graph::Executable base = kiln::graph::compile(model, co);
    co.records = records;
    kiln::graph::Executable tuned = kiln::graph::compile(model, co);
    Comparison c;
    c.tuned_kernels = tuned.compile_times().tuned_kernels;
    c.kernels = tuned.compile_times().kernels;
    std::mt19937 rng(7);
    for (int v : model.inputs) {
        const auto& type = model.value(v).type;
        kiln::Buffer b(type.shape, type.dtype);
        if (type.dtype == kiln::f32) {
            std::uniform_real_distribution<float> u(-1, 1);
            for (int64_t i = 0; i < b.size(); ++i) static_cast<float*>(b.data())[i] = u(rng);
        } else {
            std::memset(b.data(), 0, static_cast<size_t>(b.size() * type.dtype.bytes()));
        }
        base.set_input(model.value(v).name, b);
        tuned.set_input(model.value(v).name, b);
    }
    base.run();
    tuned.run();
    for (size_t o = 0; o < base.num_outputs(); ++o) {
        const kiln::Buffer x = base.output(o), y = tuned.output(o);
        if (x.dtype() != kiln::f32) continue;
        double scale = 0, diff = 0;
        for (int64_t i = 0; i < x.size(); ++i) {
            scale = std::max(scale, std::abs(double(static_cast<const float*>(x.data())[i])));
            diff = std::max(diff, std::abs(double(static_cast<const float*>(x.data())[i]) -
                                           static_cast<const float*>(y.data())[i]));
        }
        c.max_difference = std::max(c.max_difference, diff / std::max(scale, 1e-30));
    }
    auto time_of = [&](kiln::graph::Executable& e, int runs) {
        std::vector<double> t;
        for (int r = 0; r < runs; ++r) {
            const auto t0 = clock::now();
            e.run();
            t.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
        }
        return kiln::autotune::median_of(t);
    };
    // Rounds of about a quarter of a second each.
    const int runs = std::clamp(static_cast<int>(250 / std::max(0.01, time_of(base, 3))), 3, 200);
    std::vector<double> ratios, b, t;
    for (int round = 0; round < 7; ++round) {
        b.push_back(time_of(base, runs));
        t.push_back(time_of(tuned, runs));
        ratios.push_back(b.back() / t.back());
    }
    c.default_ms = kiln::autotune::median_of(b);
    c.tuned_ms = kiln::autotune::median_of(t);
    c.speedup = kiln::autotune::median_of(ratios);
    return c;
}

}  // namespace

int tune_command(const TuneCommand& c) {
    kiln::onnx::LoadOptions lo;
    lo.shapes = c.shapes;
    const kiln::graph::Graph model = kiln::onnx::load(c.model, lo);
    kiln::graph::CompileOptions co;
    co.opt_level = c.opt_level;
    co.threads = c.threads > 0 ? c.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const std::vector<kiln::graph::ModelTask> found = kiln::graph::tasks(model, co);

    std::vector<kiln::autotune::WeightedTask> tasks;
    int kernels = 0;
    for (const auto& t : found) {
        kernels += t.weight;
        if (t.skipped.empty())
            tasks.push_back({t.task, static_cast<double>(t.weight)});
        else
            std::printf("not tuned   %s (x%d): %s\n", t.task.name.c_str(), t.weight, t.skipped.c_str());
    }
    std::printf("model       %s\n", c.model.c_str());
    std::printf("tasks       %d kernels, %zu distinct, %zu to tune, on %d thread(s); records %s\n", kernels,
                found.size(), tasks.size(), co.threads, c.records.c_str());
    if (c.seconds > 0) std::printf("budget      %.0f s\n", c.seconds);
    if (c.trials > 0) std::printf("budget      %d trials\n", c.trials);

    kiln::autotune::TuneTasksOptions o;
    o.trials = c.trials;
    o.seconds = c.seconds;
    o.tune.records = c.records;
    o.tune.threads = co.threads;
    o.tune.confirm = 2;
    // Measured as a model runs them: weights cold, the activation warm from the kernel before.
    o.tune.measure.flush_cache = true;
    const bool tty = isatty(fileno(stdout));
    double last_print = -1e9;
    o.on_batch = [&](const kiln::autotune::TasksProgress& p) {
        // On a terminal the line is redrawn after every batch; in a log, one line every ten seconds.
        if (!tty && p.elapsed_seconds - last_print < 10) return;
        last_print = p.elapsed_seconds;
        std::printf("%s[%5.0f s] %5d trials  estimated latency of the tuned kernels %.3f ms (defaults %.3f ms)%s",
                    tty ? "\r" : "", p.elapsed_seconds, p.trials, ms(p.latency), ms(p.default_latency),
                    tty ? "   " : "\n");
        std::fflush(stdout);
    };
    const kiln::autotune::TuneTasksResult r = kiln::autotune::tune_tasks(tasks, o);
    if (tty) std::printf("\n");
    for (const auto& t : r.tasks)
        for (const auto& d : t.damaged_records) std::printf("skipped     %s\n", d.c_str());

    std::printf("\n%-40s %6s %7s %12s %12s %8s\n", "task", "weight", "trials", "default ms", "best ms", "speed-up");
    for (size_t i = 0; i < tasks.size(); ++i) {
        const auto& p = r.progress.tasks[i];
        std::printf("%-40.40s %6.0f %7d %12.4f %12.4f %7.2fx\n", p.name.c_str(), p.weight, p.trials,
                    ms(p.default_seconds), ms(p.best_seconds),
                    p.best_seconds > 0 ? p.default_seconds / p.best_seconds : 0.0);
    }
    std::printf(
            "\nkernels     %.3f ms tuned against %.3f ms default (sum of weight x time, %.2fx), %d trials in %.0f s\n",
            ms(r.progress.latency), ms(r.progress.default_latency),
            r.progress.latency > 0 ? r.progress.default_latency / r.progress.latency : 0.0, r.progress.trials,
            r.progress.elapsed_seconds);
    if (r.model_pairs)
        std::printf("cost model  ranked %.1f%% of %zu pairs of measurements right before training on them\n",
                    100 * r.model_accuracy, r.model_pairs);

    const Comparison cmp = compare(model, co, c.records);
    std::printf(
            "model       %.3f ms with the records against %.3f ms with the defaults: %.2fx (median of 7 "
            "alternating rounds); %d of %d kernels from records\n",
            cmp.tuned_ms, cmp.default_ms, cmp.speedup, cmp.tuned_kernels, cmp.kernels);
    std::printf("outputs     differ from the defaults' by at most %.2g of their largest magnitude\n",
                cmp.max_difference);
    if (cmp.max_difference > 1e-3)
        kiln::detail::fail(
                "kiln tune: the model compiled with the records computes other outputs than with the "
                "defaults (a difference of ",
                cmp.max_difference,
                " of the largest magnitude); this is a bug in kiln, please report it with the model");
    std::printf("use         kiln run %s --records %s\n", c.model.c_str(), c.records.c_str());
    return 0;
}
