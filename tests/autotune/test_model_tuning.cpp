// Tuning a model: its kernels as tasks (graph::tasks), the task scheduler (autotune::tune_tasks), and
// records compiled into the model (CompileOptions::records), each held to a naive loop.
#include <kiln/autotune.hpp>
#include <kiln/graph.hpp>

#include <cmath>
#include <fstream>
#include <random>

#include "autotune/temp_file.hpp"
#include "graph/build_graph.hpp"
#include "helpers.hpp"

using namespace kiln;
using namespace kiln::graph;
using test::error_of;
using test::TempFile;

using test::node;
using test::random_buffer;

namespace {

// x [5, 17] through three MatMul + Relu layers, 17 -> 23 -> 23 -> 23: the last two are equal kernels on
// other weights. No size is a multiple of a vector or a tile.
struct Mlp {
    Graph g;
    std::vector<Buffer> weights{random_buffer({17, 23}, 1), random_buffer({23, 23}, 2), random_buffer({23, 23}, 3)};
    Buffer x = random_buffer({5, 17}, 4);

    Mlp() {
        int v = g.add_input("x", {{5, 17}, f32});
        for (size_t l = 0; l < weights.size(); ++l)
            v = node(g, "Relu", {node(g, "MatMul", {v, g.add_constant("W" + std::to_string(l), weights[l])})});
        g.outputs.push_back(v);
    }

    std::vector<float> reference() const {
        std::vector<float> act(static_cast<const float*>(x.data()), static_cast<const float*>(x.data()) + x.size());
        int64_t width = 17;
        for (const Buffer& w : weights) {
            const int64_t out = w.shape()[1];
            std::vector<float> next(static_cast<size_t>(5 * out));
            for (int64_t i = 0; i < 5; ++i)
                for (int64_t j = 0; j < out; ++j) {
                    double acc = 0;
                    for (int64_t k = 0; k < width; ++k)
                        acc += double(act[i * width + k]) * static_cast<const float*>(w.data())[k * out + j];
                    next[i * out + j] = static_cast<float>(std::max(acc, 0.0));
                }
            act = std::move(next);
            width = out;
        }
        return act;
    }

    // The largest difference from the reference, of the model compiled with `opt`.
    double error(const CompileOptions& opt, int* tuned_kernels = nullptr) const {
        Executable ex = compile(g, opt);
        if (tuned_kernels) *tuned_kernels = ex.compile_times().tuned_kernels;
        ex.set_input("x", x);
        ex.run();
        const std::vector<float> want = reference();
        const Buffer got = ex.output(0);
        REQUIRE(got.size() == static_cast<int64_t>(want.size()));
        double worst = 0;
        for (size_t i = 0; i < want.size(); ++i)
            worst = std::max(worst, std::abs(double(static_cast<const float*>(got.data())[i]) - want[i]));
        return worst;
    }
};

}  // namespace

TEST_CASE(
        "a model's kernels are its tasks: equal kernels are one task of greater weight, measured on the "
        "model's constants") {
    const Mlp m;
    const std::vector<ModelTask> ts = tasks(m.g);
    REQUIRE(ts.size() == 2);
    CHECK(ts[0].weight == 1);
    CHECK(ts[1].weight == 2);
    CHECK(ts[0].skipped.empty());
    CHECK(ts[1].skipped.empty());
    CHECK(ts[0].task.workload_key() != ts[1].task.workload_key());
    // The first layer's task is measured on the first layer's weights (as the optimised graph holds them).
    size_t given = 0;
    for (const Buffer& b : ts[0].task.inputs) given += b.data() != nullptr;
    CHECK(given >= 1);
    // Its template: the default (generated = 0) and the generated space (generated = 1) both lower.
    const KnobSpace space = ts[1].task.space();
    REQUIRE(space.find("generated"));
    KnobConfig config(space.knobs.size(), 0);
    for (size_t k = 0; k < space.knobs.size(); ++k)
        if (space.knobs[k].name == "generated") config[k] = 1;
    CHECK_NOTHROW(lower_func(ts[1].task.schedule(space, config), ts[1].task.args));
}

TEST_CASE("a kernel that reads indices from the model's input is not tuned, and says why") {
    Graph g;
    const int idx = g.add_input("idx", {{4}, i64});
    Attrs a;
    a.set("axis", int64_t{0});
    const int out = node(g, "Gather", {g.add_constant("table", random_buffer({10, 6}, 5)), idx}, a);
    g.outputs.push_back(out);
    const std::vector<ModelTask> ts = tasks(g);
    REQUIRE(ts.size() == 1);
    CHECK(ts[0].skipped.find("reads indices from 'idx', which tuning cannot draw at random") != std::string::npos);
}

TEST_CASE(
        "records compile into the model: random configurations of every kernel's space, held to a naive "
        "loop") {
    const Mlp m;
    const std::vector<ModelTask> ts = tasks(m.g, {.threads = 1});
    std::mt19937 rng(11);
    for (int trial = 0; trial < 6; ++trial) {
        TempFile records("model_random_" + std::to_string(trial));
        for (const ModelTask& t : ts) {
            const KnobSpace space = t.task.space();
            KnobConfig config;
            for (const Knob& k : space.knobs)
                config.push_back(k.name == "generated" ? trial % 3 != 0 : static_cast<int>(rng() % k.values.size()));
            autotune::Record r;
            r.workload = t.task.workload_key();
            r.task = t.task.name;
            r.target = autotune::tuning_target();
            r.threads = 1;
            r.config = values_of(space, config);
            r.seconds = {1e-6};
            autotune::append_record(records.path, r);
        }
        int tuned = 0;
        CAPTURE(trial);
        CHECK(m.error({.threads = 1, .records = records.path}, &tuned) < 1e-4);
        CHECK(tuned == 3);
    }
}

TEST_CASE("the task scheduler spends its trials over a model's tasks, and the model compiles from its records") {
    const Mlp m;
    TempFile records("model_scheduler");
    std::vector<autotune::WeightedTask> wt;
    for (const ModelTask& t : tasks(m.g, {.threads = 1})) wt.push_back({t.task, double(t.weight)});
    autotune::TuneTasksOptions o;
    o.trials = 20;
    o.tune.records = records.path;
    o.tune.threads = 1;
    o.tune.batch = 4;
    o.tune.confirm = 1;
    o.tune.measure = {.warmup = 1, .repeat = 2, .min_repeat_ms = 1, .timeout_ms = 2000};
    int batches = 0;
    o.on_batch = [&](const autotune::TasksProgress& p) {
        ++batches;
        CHECK(p.trials <= 20);
    };
    const autotune::TuneTasksResult r = autotune::tune_tasks(wt, o);
    REQUIRE(r.tasks.size() == 2);
    CHECK(r.progress.trials == 20);
    CHECK(batches == 5);
    for (size_t i = 0; i < 2; ++i) {
        CHECK(r.progress.tasks[i].trials >= 4);
        CHECK(r.tasks[i].best_seconds > 0);
        CHECK(r.tasks[i].best_seconds <= r.tasks[i].default_seconds);
    }
    CHECK(r.progress.tasks[0].trials + r.progress.tasks[1].trials == 20);
    CHECK(r.progress.latency <= r.progress.default_latency);
    int tuned = 0;
    CHECK(m.error({.threads = 1, .records = records.path}, &tuned) < 1e-4);
    CHECK(tuned == 3);
    // Without records, and with records for another thread count only, the model is the same.
    CHECK(m.error({.threads = 1}) < 1e-4);
}

TEST_CASE("a damaged line of the records is reported with its number when a model compiles") {
    const Mlp m;
    TempFile records("model_damaged");
    std::ofstream(records.path) << "{\"workload\": 12\n\n";
    Executable ex = compile(m.g, {.threads = 1, .records = records.path});
    REQUIRE(ex.compile_times().damaged_records.size() == 1);
    CHECK(ex.compile_times().damaged_records[0] == records.path + ":1: not JSON; the line is skipped");
    CHECK(ex.compile_times().tuned_kernels == 0);
}

TEST_CASE("errors: model tuning misuse") {
    const Mlp m;
    CHECK(error_of([&] { compile(m.g, {.records = "/nonexistent/kiln/r.jsonl"}); }) ==
          "graph::compile: cannot read the records file '/nonexistent/kiln/r.jsonl'; give the file `kiln tune` (or "
          "autotune::tune) wrote, or leave records empty for the default schedules");
    CHECK(error_of([&] { tasks(m.g, {.opt_level = 4}); }) == "graph::tasks: opt_level is 4; use 0 to 3");
    const std::vector<ModelTask> ts = tasks(m.g);
    CHECK(error_of([&] {
              autotune::tune_tasks({{ts[0].task, 1}}, {});
          }) == "autotune: tune_tasks has no budget; give TuneTasksOptions::trials or ::seconds");
    CHECK(error_of([&] {
              autotune::tune_tasks({{ts[0].task, 0}}, {.trials = 4});
          }) ==
          "autotune: task 'kiln.MatMulPacked_Relu' has weight 0; a weight is how often the task runs, so give a "
          "positive number");
    autotune::Task wrong = ts[0].task;
    wrong.inputs = {Buffer({2, 2}, f32)};
    CHECK(error_of([&] { autotune::tune(wrong, {.trials = 1}); }) ==
          "autotune: task 'kiln.MatMulPacked_Relu': the values given for 'in0' are f32 of shape [2, 2] but the tensor "
          "is f32 of "
          "shape [5, 17]; give a buffer of the tensor's type and shape");
}
