#pragma once
// Several tasks tuned within one budget (a model's kernels, graph::tasks), after Ansor's task scheduler:
// every task is measured once (its default and a first batch), then each next batch goes to the task where
// it promises the largest cut in the weighted sum of the tasks' best times (the model's latency, each
// kernel counted as often as one inference runs it). The promise of task i, of weight w_i, best time b_i
// after n_i trials, which its last batch of m trials brought down by d_i:
//
//   w_i * (alpha * d_i / m + (1 - alpha) * b_i / n_i),   alpha = 0.2,
//
// the first term what the latest batch gained per trial, the second an optimistic guess that its time can
// keep falling at the average rate so far (Ansor's backward and forward estimates). One batch in twenty goes
// to a task drawn at random, so an estimate that reads zero is tested again. All tasks share one cost model,
// each task's times compared only with its own.
#include <chrono>

#include "kiln/autotune/tune.hpp"

namespace kiln::autotune {

struct WeightedTask {
    Task task;
    double weight = 1;  // how many times one run of the whole (an inference) runs it
};

struct TaskProgress {
    std::string name;
    double weight = 1;
    int trials = 0;              // measured in this run
    double best_seconds = 0;     // 0 until one is measured
    double default_seconds = 0;  // 0 until the default is measured
};

struct TasksProgress {
    std::vector<TaskProgress> tasks;
    double latency = 0;          // sum of weight * best time over the tasks measured so far
    double default_latency = 0;  // the same with the default times
    int trials = 0;
    double elapsed_seconds = 0;
};

struct TuneTasksOptions {
    int trials = 0;      // in all tasks together; 0: no bound in trials
    double seconds = 0;  // wall-clock budget; 0: no bound in time (one of the two bounds is needed)
    TuneOptions tune{};  // each task's measurement, records and search (its `trials` is not used)
    std::function<void(const TasksProgress&)> on_batch{};  // after every batch: a progress display
};

struct TuneTasksResult {
    std::vector<TuneResult> tasks;  // in the order given
    TasksProgress progress;         // at the end, after the confirmation rounds
    double model_accuracy = 0;      // pairwise, on batches before the model trained on them (0.5 is chance)
    size_t model_pairs = 0;
};

inline TuneTasksResult tune_tasks(const std::vector<WeightedTask>& tasks, const TuneTasksOptions& opt) {
    if (opt.trials < 0) kiln::detail::fail("autotune: trials is ", opt.trials, "; give 0 (no bound) or more");
    if (opt.seconds < 0) kiln::detail::fail("autotune: seconds is ", opt.seconds, "; give 0 (no bound) or more");
    if (opt.trials == 0 && opt.seconds == 0)
        kiln::detail::fail("autotune: tune_tasks has no budget; give TuneTasksOptions::trials or ::seconds");
    for (const WeightedTask& t : tasks)
        if (!(t.weight > 0))
            kiln::detail::fail("autotune: task '", t.task.name, "' has weight ", t.weight,
                               "; a weight is how often the task runs, so give a positive number");
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(clock::now() - start).count(); };
    // The search stops in time for the confirmation rounds, which take about a twentieth of a budget.
    auto budget_left = [&](int trials) {
        return (opt.trials == 0 || trials < opt.trials) && (opt.seconds == 0 || elapsed() < 0.95 * opt.seconds);
    };

    auto model = std::make_shared<CostModel>();
    std::vector<std::unique_ptr<Tuner>> tuners;
    for (size_t i = 0; i < tasks.size(); ++i) {
        TuneOptions o = opt.tune;
        o.seed = opt.tune.seed + i;
        tuners.push_back(std::make_unique<Tuner>(tasks[i].task, o, model, static_cast<int>(i)));
    }
    struct State {
        int trials = 0, last_batch = 0;
        double gain_of_last = 0;
    };
    std::vector<State> state(tasks.size());
    int trials = 0;
    auto progress = [&] {
        TasksProgress p;
        for (size_t i = 0; i < tasks.size(); ++i) {
            TaskProgress t{tasks[i].task.name, tasks[i].weight, state[i].trials, tuners[i]->best_seconds(),
                           tuners[i]->default_seconds()};
            p.latency += t.weight * t.best_seconds;
            p.default_latency += t.weight * t.default_seconds;
            p.tasks.push_back(std::move(t));
        }
        p.trials = trials;
        p.elapsed_seconds = elapsed();
        return p;
    };
    auto run_batch = [&](size_t i) {
        const double before = tuners[i]->best_seconds();
        const int want = opt.trials ? opt.trials - trials : std::numeric_limits<int>::max();
        const int n = tuners[i]->step(want);
        state[i].trials += n;
        state[i].last_batch = n;
        state[i].gain_of_last = before > 0 ? std::max(0.0, before - tuners[i]->best_seconds()) : 0;
        trials += n;
        if (n > 0 && opt.on_batch) opt.on_batch(progress());
        return n;
    };

    // Every task once, heaviest first, so a budget that ends early has measured the kernels that count.
    std::vector<size_t> order(tasks.size());
    std::iota(order.begin(), order.end(), size_t{0});
    // (std::sort with the index as tie-break: libstdc++ 12's stable_sort warns under clang.)
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return tasks[a].weight != tasks[b].weight ? tasks[a].weight > tasks[b].weight : a < b;
    });
    for (size_t i : order) {
        if (!budget_left(trials)) break;
        run_batch(i);
    }
    std::mt19937_64 rng(opt.tune.seed);
    constexpr double alpha = 0.2;
    while (budget_left(trials)) {
        std::vector<size_t> open;
        for (size_t i = 0; i < tasks.size(); ++i)
            if (!tuners[i]->exhausted() && state[i].trials > 0) open.push_back(i);
        if (open.empty()) break;
        size_t pick = open[0];
        if (rng() % 20 == 0) {
            pick = open[rng() % open.size()];
        } else {
            double best_gain = -1;
            for (size_t i : open) {
                const State& s = state[i];
                const double b = tuners[i]->best_seconds();
                const double gain = tasks[i].weight * (alpha * s.gain_of_last / std::max(1, s.last_batch) +
                                                       (1 - alpha) * b / std::max(1, s.trials));
                if (gain > best_gain) best_gain = gain, pick = i;
            }
        }
        if (run_batch(pick) == 0 &&
            std::all_of(open.begin(), open.end(), [&](size_t i) { return tuners[i]->exhausted(); }))
            break;
    }

    TuneTasksResult out;
    size_t pairs = 0;
    double right = 0;
    for (auto& t : tuners) {
        out.tasks.push_back(t->finish());
        pairs += out.tasks.back().model_pairs;
        right += out.tasks.back().model_accuracy * static_cast<double>(out.tasks.back().model_pairs);
    }
    out.model_pairs = pairs;
    out.model_accuracy = pairs ? right / static_cast<double>(pairs) : 0;
    out.progress = progress();
    // The progress after confirmation: each task at its confirmed best.
    out.progress.latency = out.progress.default_latency = 0;
    for (size_t i = 0; i < tasks.size(); ++i) {
        out.progress.tasks[i].best_seconds = out.tasks[i].best_seconds;
        out.progress.tasks[i].default_seconds = out.tasks[i].default_seconds;
        out.progress.latency += tasks[i].weight * out.tasks[i].best_seconds;
        out.progress.default_latency += tasks[i].weight * out.tasks[i].default_seconds;
    }
    if (opt.tune.use_model && !opt.tune.records.empty() && model->trained())
        model->save(opt.tune.records + ".model.json");
    return out;
}

}  // namespace kiln::autotune
