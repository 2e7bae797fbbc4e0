// Auto-tuning: knob spaces, workload keys, records, the measurement harness, the cost model and the tuner,
// each against an independent reference (a naive loop, hand-counted spaces, files written by hand).
#include <kiln/autotune.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "autotune/temp_file.hpp"
#include "helpers.hpp"

using namespace kiln;
using test::error_of;
using test::TempFile;

namespace {

// C = A * B on shapes that no tile divides, with a template of three knobs: the row and column tiles and
// whether the column loop is vectorized.
struct Matmul {
    int64_t M, N, K;
    Tensor A, B, C;
    Matmul(int64_t m, int64_t n, int64_t k) : M(m), N(n), K(k) {
        A = placeholder({M, K}, f32, "A");
        B = placeholder({K, N}, f32, "B");
        auto r = reduce_axis(0, static_cast<int>(K), "k");
        C = compute(
                {M, N}, [&](Expr i, Expr j) { return sum(A(i, r.var()) * B(r.var(), j), {r}); }, "C");
    }
    autotune::Task task() const {
        return {"matmul",
                {A, B, C},
                [this](Knobs& kn) {
                    Schedule s(C);
                    const auto fi = kn.split("tile_i", M, 3), fj = kn.split("tile_j", N, 2, {8});
                    auto [io, i1] = s[C].split(C.axis(0), fi[1] * fi[2]);
                    auto [i2, i3] = s[C].split(i1, fi[2]);
                    auto [jo, ji] = s[C].split(C.axis(1), fj[1]);
                    s[C].reorder(io, jo, i2, s[C].reduce_axis(0), i3, ji);
                    if (kn.knob("vectorize", {1, 0})) s[C].vectorize(ji);
                    if (kn.knob("parallel", {0, 1})) s[C].parallel(io);
                    return s;
                },
                2.0 * static_cast<double>(M * N * K)};
    }
    std::vector<float> reference(const Buffer& a, const Buffer& b) const {
        std::vector<float> c(static_cast<size_t>(M * N));
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                double acc = 0;
                for (int64_t k = 0; k < K; ++k) acc += double(a.at<float>(i, k)) * b.at<float>(k, j);
                c[static_cast<size_t>(i * N + j)] = static_cast<float>(acc);
            }
        return c;
    }
};

}  // namespace

TEST_CASE("knobs: a split's values are every inner factor tuple within the extent, the default first") {
    Knobs k;
    const auto f = k.split("s", 12, 3, {2, 3});
    CHECK(f == std::vector<int64_t>{2, 2, 3});  // the default: outer ceil(12 / 6)
    const Knob& knob = k.space().knobs.at(0);
    // Inner factors: the divisors of 12 and the powers of two up to 12.
    const std::vector<int64_t> factors{1, 2, 3, 4, 6, 8, 12};
    std::set<std::vector<int64_t>> want;
    for (int64_t a : factors)
        for (int64_t b : factors)
            if (a * b <= 12) want.insert({(12 + a * b - 1) / (a * b), a, b});
    CHECK(std::set<std::vector<int64_t>>(knob.values.begin(), knob.values.end()) == want);
    CHECK(knob.values.size() == want.size());
    CHECK(k.knob("unroll", {4, 1, 8}) == 4);
    CHECK(k.space().size() == static_cast<int64_t>(want.size()) * 3);
    CHECK(values_of(k.space(), {1, 2}).at("unroll") == std::vector<int64_t>{8});
    CHECK(config_of(k.space(), values_of(k.space(), {5, 2})) == KnobConfig{5, 2});
    CHECK(!config_of(k.space(), {{"s", {2, 2, 3}}}));  // a knob missing
}

TEST_CASE("knobs errors: duplicate names, bad splits, and a template that declares other knobs") {
    Knobs k;
    k.knob("x", {1, 2});
    CHECK(error_of([&] { k.knob("x", {3}); }) == "knobs: knob 'x' is declared twice; give each knob its own name");
    CHECK(error_of([&] { k.knob("y", {}); }) == "knobs: knob 'y' is declared with no values; give at least one");
    CHECK(error_of([&] { k.split("z", 10, 1); }) == "knobs: split 'z' into 1 part(s); a split makes 2 or more loops");
    CHECK(error_of([&] { k.split("z", 10, 2, {3}); }) ==
          "knobs: split 'z' of extent 10: the default inner factors are not among its values (each is a divisor of "
          "the extent or a power of two, and together they are at most the extent)");
    KnobSpace space = k.space();
    CHECK(error_of([&] { Knobs(space, {2}); }) ==
          "knobs: knob 'x' has 2 value(s) and the configuration picks number 2");
    Knobs fixed(space, {1});
    CHECK(error_of([&] {
              fixed.knob("w", {1, 2});
          }) ==
          "knobs: the template declared knob 'w' as its number 1, which the space does not hold in that place with "
          "those values; a template must declare the same knobs, in the same order, whatever values it is given");
}

TEST_CASE("workload keys: equal for equal computes, different for another shape, dtype or body") {
    auto key = [](int64_t n, Type t, bool plus) {
        auto A = placeholder({n, 8}, t, "A");
        auto B = compute(
                {n, 8}, [&](Expr i, Expr j) { return plus ? A(i, j) + A(i, j) : A(i, j) * A(i, j); }, "B");
        return autotune::Task{"t", {A, B}, [B](Knobs&) { return Schedule(B); }}.workload_key();
    };
    CHECK(key(16, f32, true) == key(16, f32, true));
    CHECK(key(16, f32, true) != key(17, f32, true));
    CHECK(key(16, f32, true) != key(16, f64, true));
    CHECK(key(16, f32, true) != key(16, f32, false));
    CHECK(key(16, f32, true).size() == 16);
}

TEST_CASE("records: a line round-trips, damaged lines are reported by number and skipped") {
    TempFile file("records");
    autotune::Record r;
    r.workload = "00ff";
    r.task = "mm";
    r.target = "cpu 1";
    r.threads = 2;
    r.config = {{"tile", {4, 8}}, {"vec", {1}}};
    r.seconds = {0.003, 0.001, 0.002};
    autotune::append_record(file.path, r);
    {
        std::ofstream out(file.path, std::ios::app);
        out << "{\"workload\": \"00ff\", \"target\n";  // cut short mid-write
        out << "[1, 2]\n";                             // not an object
        out << R"({"workload":"00ff","target":"cpu 1","config":{},"seconds":[-1],"error":""})"
            << "\n";
        out << R"({"workload":"00ff","target":"cpu 1","config":{"tile":"big"},"seconds":[]})"
            << "\n";
        out << "\n";
    }
    autotune::Record failed = r;
    failed.seconds.clear();
    failed.error = "timed out after 10 ms";
    autotune::append_record(file.path, failed);
    const auto loaded = autotune::load_records(file.path);
    REQUIRE(loaded.records.size() == 2);
    CHECK(loaded.records[0].config == r.config);
    CHECK(loaded.records[0].seconds == r.seconds);
    CHECK(loaded.records[0].median() == 0.002);
    CHECK(loaded.records[0].threads == 2);
    CHECK(!loaded.records[1].ok());
    CHECK(loaded.records[1].error == "timed out after 10 ms");
    REQUIRE(loaded.damaged.size() == 4);
    CHECK(loaded.damaged[0] == file.path + ":2: not JSON; the line is skipped");
    CHECK(loaded.damaged[1] == file.path + ":3: not a JSON object; the line is skipped");
    CHECK(loaded.damaged[2] == file.path + ":4: a time that is not a positive number; the line is skipped");
    CHECK(loaded.damaged[3].rfind(file.path + ":5: a field of the wrong type", 0) == 0);
    CHECK(autotune::load_records(file.path + ".absent").records.empty());
}

TEST_CASE(
        "records: the best record is the fastest on the same target, measured on the same threads if any, at its "
        "slowest") {
    auto rec = [](std::string target, int threads, double s) {
        autotune::Record r;
        r.workload = "w";
        r.target = std::move(target);
        r.threads = threads;
        r.config = {{"x", {static_cast<int64_t>(s * 1e6)}}};
        r.seconds = {s};
        return r;
    };
    std::vector<autotune::Record> rs{rec("a", 1, 0.005), rec("a", 2, 0.001), rec("a", 1, 0.004), rec("b", 1, 0.0001)};
    autotune::Record broken = rec("a", 1, 0.0002);
    broken.error = "does not build";
    rs.push_back(broken);
    CHECK(autotune::best_record(rs, "w", "a", 1)->median() == 0.004);
    // Measured again slower, a configuration counts at its slower run.
    autotune::Record again = rec("a", 1, 0.0045);
    again.config = rs[2].config;
    rs.push_back(again);
    CHECK(autotune::best_record(rs, "w", "a", 1)->median() == 0.0045);
    rs.push_back(rec("a", 1, 0.0042));
    CHECK(autotune::best_record(rs, "w", "a", 1)->median() == 0.0042);
    CHECK(autotune::best_record(rs, "w", "a", 2)->median() == 0.001);
    CHECK(autotune::best_record(rs, "w", "a", 4)->median() == 0.001);  // no record on 4 threads: the fastest
    CHECK(!autotune::best_record(rs, "w", "c", 1));
    CHECK(!autotune::best_record(rs, "v", "a", 1));
}

TEST_CASE("time_evaluator: repeats fill the minimum time, and bad options are refused") {
    Matmul m(33, 47, 29);
    const Kernel k = build(Schedule(m.C), {m.A, m.B, m.C});
    Buffer a = test::random_buffer({33, 29}, 1), b = test::random_buffer({29, 47}, 2), c({33, 47});
    const auto t = autotune::time_evaluator(k, {.warmup = 2, .repeat = 4, .min_repeat_ms = 5})(a, b, c);
    CHECK(t.seconds.size() == 4);
    CHECK(!t.timed_out);
    CHECK(t.min() > 0);
    CHECK(t.min() <= t.median());
    REQUIRE(t.calls.size() == 4);
    for (size_t r = 0; r < 4; ++r) CHECK(t.seconds[r] * t.calls[r] * 1e3 >= 5.0 - 1e-9);  // each ran 5 ms or more
    CHECK(t.gflops(1e9) == doctest::Approx(1.0 / t.median()));
    const auto want = m.reference(a, b);
    CHECK(test::max_rel_err(c.data_as<float>(), want.data(), 33 * 47) < 1e-5);
    // A time-out shorter than one call stops after it, and says so.
    const auto cut =
            autotune::time_evaluator(k, {.warmup = 1, .repeat = 3, .min_repeat_ms = 0, .timeout_ms = 1e-6})(a, b, c);
    CHECK(cut.timed_out);
    CHECK(cut.seconds.size() == 1);
    CHECK(error_of([&] { autotune::time_evaluator(k, {.repeat = 0}); }) ==
          "time_evaluator: repeat is 0; measure at least once");
    CHECK(error_of([&] {
              autotune::time_evaluator(k)(a, b);
          }).rfind("kernel: called with 2 argument(s) but it takes 3", 0) == 0);
    CHECK(autotune::peak_gflops(1) > 0);
}

TEST_CASE("every configuration of a template space computes what a naive loop computes") {
    // Random draws over the whole space (tiles that do not divide, vector and parallel on or off), each
    // checked against the reference; none may fail to build.
    Matmul m(23, 37, 19);
    const auto task = m.task();
    const KnobSpace space = task.space();
    REQUIRE(space.size() > 400);
    Buffer a = test::random_buffer({23, 19}, 3), b = test::random_buffer({19, 37}, 4);
    const auto want = m.reference(a, b);
    std::mt19937 rng(7);
    for (int draw = 0; draw < 150; ++draw) {
        KnobConfig c;
        for (const Knob& k : space.knobs) c.push_back(static_cast<int>(rng() % k.values.size()));
        CAPTURE(draw);
        BuildOptions bo;
        bo.use_cache = false;
        bo.opt_level = 1;
        Buffer out({23, 37});
        build(task.schedule(space, c), task.args, bo)(a, b, out);
        REQUIRE(test::max_rel_err(out.data_as<float>(), want.data(), 23 * 37) < 1e-5);
    }
}

TEST_CASE("tune: measures into the records, resumes without repeating a configuration, and build_best applies them") {
    TempFile file("resume");
    Matmul m(45, 70, 33);
    const auto task = m.task();
    autotune::TuneOptions opt;
    opt.trials = 24;
    opt.batch = 8;
    opt.records = file.path;
    opt.threads = 1;
    opt.measure = {.warmup = 1, .repeat = 2, .min_repeat_ms = 1, .timeout_ms = 2000};
    int reported = 0;
    opt.on_record = [&](const autotune::Record&) { ++reported; };
    const auto first = autotune::tune(task, opt);
    CHECK(first.measured == 24);
    CHECK(first.confirmed == 4);  // the four fastest, measured again
    CHECK(reported == 28);
    CHECK(first.failed == 0);
    CHECK(first.default_seconds > 0);
    CHECK(first.best_seconds <= first.default_seconds);
    CHECK(file.lines().size() == 28);
    CHECK(std::filesystem::exists(file.path + ".model.json"));
    const auto second = autotune::tune(task, opt);
    CHECK(second.measured == 24);
    const auto loaded = autotune::load_records(file.path);
    REQUIRE(loaded.records.size() == 56);
    CHECK(loaded.damaged.empty());
    std::set<KnobValues> configs;
    for (const auto& r : loaded.records) {
        CHECK(r.workload == task.workload_key());
        CHECK(r.target == autotune::tuning_target());
        CHECK(r.ok());
        configs.insert(r.config);
    }
    // The second run measured nothing the first had; only the confirmation rounds repeat a configuration.
    CHECK(configs.size() == 48);
    // build_best compiles the fastest record's configuration; the kernel still computes the product.
    const auto best = autotune::best_record(loaded.records, task.workload_key(), autotune::tuning_target(), 1);
    REQUIRE(best);
    CHECK(best->config == second.best_values);
    Buffer a = test::random_buffer({45, 33}, 5), b = test::random_buffer({33, 70}, 6), c({45, 70});
    autotune::build_best(task, file.path, {}, 1)(a, b, c);
    const auto want = m.reference(a, b);
    CHECK(test::max_rel_err(c.data_as<float>(), want.data(), 45 * 70) < 1e-5);
    // Without records, the default schedule.
    CHECK(to_string(lower(autotune::best_schedule(task, file.path + ".absent", 1), task.args)) ==
          to_string(lower(task.schedule(task.space(), KnobConfig(task.space().knobs.size(), 0)), task.args)));
}

TEST_CASE("time_evaluator with flush_cache times each call alone, its arguments evicted before it") {
    Matmul m(33, 47, 29);
    const Kernel k = build(Schedule(m.C), {m.A, m.B, m.C});
    Buffer a({33, 29}), b({29, 47}), c({33, 47});
    for (int64_t i = 0; i < a.size(); ++i) a.data_as<float>()[i] = 0.5f;
    for (int64_t i = 0; i < b.size(); ++i) b.data_as<float>()[i] = 0.25f;
    const auto t =
            autotune::time_evaluator(k, {.warmup = 1, .repeat = 3, .min_repeat_ms = 2, .flush_cache = true})(a, b, c);
    REQUIRE(t.seconds.size() == 3);
    CHECK_FALSE(t.timed_out);
    for (size_t r = 0; r < 3; ++r) {
        CHECK(t.seconds[r] > 0);
        CHECK(t.calls[r] >= 1);
    }
    // Eviction leaves the values in place.
    CHECK(c.data_as<float>()[0] == doctest::Approx(0.5 * 0.25 * 29));
    CHECK(b.data_as<float>()[b.size() - 1] == 0.25f);
}

TEST_CASE(
        "tune measures each distinct program once: a knob that does not change the program is not measured "
        "again") {
    Matmul m(16, 24, 8);
    autotune::Task task{"dedup", {m.A, m.B, m.C}, [&](Knobs& kn) {
                            Schedule s(m.C);
                            kn.knob("unused", {0, 1, 2});
                            auto [jo, ji] = s[m.C].split(m.C.axis(1), 8);
                            if (kn.knob("vectorize", {1, 0})) s[m.C].vectorize(ji);
                            return s;
                        }};
    autotune::TuneOptions opt;
    opt.trials = 6;
    opt.confirm = 0;
    opt.measure = {.warmup = 1, .repeat = 1, .min_repeat_ms = 1, .timeout_ms = 1000};
    const auto r = autotune::tune(task, opt);
    CHECK(r.measured == 2);
    CHECK(r.failed == 0);
}

TEST_CASE("tune: a candidate that does not build or computes something else is recorded with its reason") {
    TempFile file("failures");
    Matmul m(16, 24, 8);
    // A template whose second choice schedules a tensor that is not the task's output.
    auto other = compute(
            {16, 24}, [&](Expr i, Expr j) { return m.A(i, 0) * 2.0f + cast(f32, j); }, "C");
    autotune::Task task{"broken", {m.A, m.B, m.C}, [&](Knobs& kn) {
                            return kn.knob("which", {0, 1}) ? Schedule(other) : Schedule(m.C);
                        }};
    autotune::TuneOptions opt;
    opt.trials = 5;
    opt.records = file.path;
    opt.measure = {.warmup = 1, .repeat = 1, .min_repeat_ms = 1, .timeout_ms = 1000};
    const auto r = autotune::tune(task, opt);
    CHECK(r.measured == 2);  // the whole space
    CHECK(r.failed == 1);
    CHECK(r.confirmed == 1);  // the one that worked, measured again
    const auto loaded = autotune::load_records(file.path);
    REQUIRE(loaded.records.size() == 3);
    const auto& bad = loaded.records[0].config.at("which")[0] == 1 ? loaded.records[0] : loaded.records[1];
    CHECK(bad.seconds.empty());
    CHECK(bad.error.rfind("does not lower: ", 0) == 0);
    // The comparison that discards a wrong answer, alone.
    Buffer a({16, 8}), b({8, 24}), good({16, 24}), wrong({16, 24});
    good.data_as<float>()[5] = 1.0f;
    wrong.data_as<float>()[5] = 1.5f;
    CHECK(autotune::detail::compare_outputs(task, {a, b, good}, {a, b, good}, 1e-3).empty());
    CHECK(autotune::detail::compare_outputs(task, {a, b, wrong}, {a, b, good}, 1e-3) ==
          "output 'C' differs from the default schedule's at element 5: 1.5 instead of 1");
}

TEST_CASE("tune errors: symbolic sizes, no output, a template that changes its knobs, negative trials") {
    Var n = var("n");
    auto A = placeholder({n}, f32, "A");
    auto B = compute(
            {n}, [&](Expr i) { return A(i) * 2.0f; }, "B");
    autotune::Task symbolic{"sym", {A, B}, [&](Knobs&) { return Schedule(B); }};
    CHECK(error_of([&] { autotune::tune(symbolic); }) ==
          "autotune: task 'sym': tensor 'A' has size 'n' in dimension 0; tuning measures one shape, so give the task "
          "constant sizes");
    auto X = placeholder({8}, f32, "X");
    autotune::Task inputs_only{"in", {X}, [&](Knobs&) { return Schedule(B); }};
    CHECK(error_of([&] { (void)inputs_only.workload_key(); }) ==
          "autotune: task 'in' has no computed tensor among its arguments; list the outputs after the inputs, as "
          "kiln::build takes them");
    Matmul m(8, 8, 8);
    int calls = 0;
    autotune::Task shifting{"shift", {m.A, m.B, m.C}, [&](Knobs& kn) {
                                if (calls++ > 0) kn.knob("late", {1, 2});
                                kn.knob("early", {1, 2});
                                return Schedule(m.C);
                            }};
    const KnobSpace space = shifting.space();
    CHECK(error_of([&] { shifting.schedule(space, {1}); }) ==
          "knobs: the template declared knob 'late' as its number 1, which the space does not hold in that place with "
          "those values; a template must declare the same knobs, in the same order, whatever values it is given");
    autotune::TuneOptions negative;
    negative.trials = -1;
    CHECK(error_of([&] { autotune::tune(m.task(), negative); }) == "autotune: trials is -1; give 0 or more");
    autotune::Task no_template{"none", {m.A, m.B, m.C}, {}};
    CHECK(error_of([&] { (void)no_template.space(); }) ==
          "autotune: task 'none' has no schedule template; set Task::make_schedule");
}

TEST_CASE("the cost model ranks measurements it has not seen better than chance") {
    // Measure a spread of configurations of one task, train on two thirds, rank the rest. The figures on
    // this machine are 0.71-0.74; the test asks for 0.62, against 0.5 for chance.
    Matmul m(96, 130, 64);
    const auto task = m.task();
    const KnobSpace space = task.space();
    std::mt19937 rng(11);
    std::set<KnobConfig> configs;
    while (configs.size() < 90) {
        KnobConfig c;
        for (const Knob& k : space.knobs) c.push_back(static_cast<int>(rng() % k.values.size()));
        c[3] = 0;  // one thread: the other core's load would only add noise
        configs.insert(c);
    }
    std::vector<autotune::Features> features;
    std::vector<double> seconds;
    Buffer a = test::random_buffer({96, 64}, 8), b = test::random_buffer({64, 130}, 9), c({96, 130});
    set_num_threads(1);
    for (const KnobConfig& config : configs) {
        const LoweredFunc f = lower_func(task.schedule(space, config), task.args);
        BuildOptions bo;
        bo.use_cache = false;
        const auto t = autotune::time_evaluator(build(f, bo), {.warmup = 1, .repeat = 3, .min_repeat_ms = 2})(a, b, c);
        features.push_back(autotune::program_features(f));
        seconds.push_back(t.min());
    }
    set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    autotune::CostModel model;
    CHECK(!model.trained());
    CHECK(model.predict({features[0]}) == std::vector<float>{0.f});
    for (size_t i = 0; i < 60; ++i) model.add(features[i], seconds[i]);
    model.train();
    REQUIRE(model.trained());
    const std::vector<autotune::Features> held_out(features.begin() + 60, features.end());
    const std::vector<double> held_seconds(seconds.begin() + 60, seconds.end());
    size_t pairs = 0;
    const double accuracy = autotune::pairwise_accuracy(model.predict(held_out), held_seconds, &pairs);
    MESSAGE("pairwise ranking accuracy on held-out measurements: ", accuracy, " over ", pairs, " pairs");
    CHECK(pairs > 400);
    CHECK(accuracy > 0.62);
}

TEST_CASE("program features: vector, parallel, stride and footprint features follow the schedule") {
    Matmul m(64, 64, 64);
    const auto task = m.task();
    const KnobSpace space = task.space();
    auto features = [&](KnobValues v) {
        return autotune::program_features(lower_func(task.schedule(space, *config_of(space, v)), task.args));
    };
    const auto vec = features({{"tile_i", {8, 4, 2}}, {"tile_j", {4, 16}}, {"vectorize", {1}}, {"parallel", {1}}});
    const auto scalar = features({{"tile_i", {8, 4, 2}}, {"tile_j", {4, 16}}, {"vectorize", {0}}, {"parallel", {0}}});
    CHECK(vec[3] > 0.9f);  // operations in vector code
    CHECK(scalar[3] == 0.f);
    CHECK(vec[4] == doctest::Approx(16).epsilon(0.1));  // 16 lanes, give or take the initialisation
    CHECK(vec[5] == doctest::Approx(3));                // the parallel loop of 8 tiles
    CHECK(scalar[5] == 0.f);
    CHECK(scalar[0] == doctest::Approx(vec[0]).epsilon(0.01));  // the same arithmetic either way
    // In the scalar schedule C[i, j] and B[k, j] move with j, the innermost loop, A[i, k] does not.
    CHECK(scalar[8] > 0.5f);
    CHECK(scalar[9] > 0.2f);
    CHECK(scalar[20] < scalar[21]);  // more loops around, more bytes touched
}

namespace {

// Random configurations of a generated space, each built and run on the same inputs and held to the
// default schedule of the same compute (no tuning, kiln's plain lowering) within rounding.
void check_generated_space(const std::string& name, const std::vector<Tensor>& args, int draws) {
    const auto task = autotune::generated_task(name, args);
    const KnobSpace space = task.space();
    std::vector<Tensor> outputs;
    for (const Tensor& t : args)
        if (t.op()->kind == OpKind::Compute) outputs.push_back(t);
    const std::vector<Buffer> inputs = autotune::detail::make_args(task, 3);
    auto run = [&](const Schedule& s) {
        std::vector<Buffer> bufs;
        std::vector<kiln::detail::ArgValue> packed;
        for (size_t i = 0; i < args.size(); ++i) {
            Buffer b(inputs[i].shape(), inputs[i].dtype());
            std::memcpy(b.data(), inputs[i].data(), static_cast<size_t>(b.size() * b.dtype().bytes()));
            bufs.push_back(b);
        }
        for (Buffer& b : bufs) packed.push_back(kiln::detail::to_arg(b));
        BuildOptions bo;
        bo.use_cache = false;
        bo.opt_level = 1;
        build(s, args, bo).call(packed);
        return bufs;
    };
    const auto want = run(Schedule(outputs));
    std::mt19937 rng(static_cast<uint32_t>(space.size()));
    for (int draw = 0; draw < draws; ++draw) {
        KnobConfig c;
        for (const Knob& k : space.knobs) c.push_back(static_cast<int>(rng() % k.values.size()));
        if (draw == 0) c.assign(c.size(), 0);  // the default too
        CAPTURE(name);
        CAPTURE(draw);
        INFO(to_string(lower(task.schedule(space, c), args)));
        REQUIRE(autotune::detail::compare_outputs(task, run(task.schedule(space, c)), want, 1e-4) == "");
    }
}

}  // namespace

TEST_CASE("a generated space yields only legal schedules that compute what the plain schedule computes") {
    // A product with an epilogue that fuses into its tiles.
    {
        auto A = placeholder({37, 29}, f32, "A"), B = placeholder({29, 45}, f32, "B"),
             bias = placeholder({45}, f32, "bias");
        auto k = reduce_axis(0, 29, "k");
        auto P = compute(
                {37, 45}, [&](Expr i, Expr j) { return sum(A(i, k.var()) * B(k.var(), j), {k}); }, "P");
        auto Y = compute(
                {37, 45}, [&](Expr i, Expr j) { return max(P(i, j) + bias(j), 0.0f); }, "Y");
        const auto space = autotune::generated_task("mm", {A, B, bias, Y}).space();
        CHECK(space.find("Y.i") != nullptr);  // the epilogue carries the tiles
        CHECK(space.find("P.k") != nullptr);  // and the product its reduction split
        check_generated_space("matmul_relu", {A, B, bias, Y}, 60);
        // SiLU reads the product twice (once through the inlined sigmoid): it still fuses into the tiles.
        auto G = compute(
                {37, 45}, [&](Expr i, Expr j) { return sigmoid(P(i, j)); }, "G");
        auto Z = compute(
                {37, 45}, [&](Expr i, Expr j) { return P(i, j) * G(i, j); }, "Z");
        const auto silu = autotune::generated_task("mm_silu", {A, B, Z}).space();
        CHECK(silu.find("Z.i") != nullptr);
        CHECK(silu.find("P.k") != nullptr);
        check_generated_space("matmul_silu", {A, B, Z}, 30);
    }
    // A padded 3x3 convolution, NCHW: the padding inlines, the output channels tile.
    {
        auto X = placeholder({1, 5, 11, 13}, f32, "X"), W = placeholder({7, 5, 3, 3}, f32, "W");
        auto padded = compute(
                {1, 5, 13, 15},
                [&](Expr n, Expr c, Expr h, Expr w) {
                    return if_then_else(h >= 1 && h < 12 && w >= 1 && w < 14, X(n, c, h - 1, w - 1), 0.0f);
                },
                "padded");
        auto rc = reduce_axis(0, 5, "rc"), rh = reduce_axis(0, 3, "rh"), rw = reduce_axis(0, 3, "rw");
        auto Y = compute(
                {1, 7, 11, 13},
                [&](Expr n, Expr o, Expr h, Expr w) {
                    return sum(padded(n, rc.var(), h + rh.var(), w + rw.var()) * W(o, rc.var(), rh.var(), rw.var()),
                               {rc, rh, rw});
                },
                "Y");
        check_generated_space("conv", {X, W, Y}, 40);
    }
    // A row softmax: reductions without reuse and an elementwise output, each scheduled plainly.
    {
        auto X = placeholder({19, 35}, f32, "X");
        auto j = reduce_axis(0, 35, "j"), j2 = reduce_axis(0, 35, "j2");
        auto M = compute(
                {19}, [&](Expr i) { return kiln::max(X(i, j.var()), {j}); }, "M");
        auto E = compute(
                {19, 35}, [&](Expr i, Expr c) { return exp(X(i, c) - M(i)); }, "E");
        auto S = compute(
                {19}, [&](Expr i) { return sum(E(i, j2.var()), {j2}); }, "S");
        auto Y = compute(
                {19, 35}, [&](Expr i, Expr c) { return E(i, c) / S(i); }, "Y");
        check_generated_space("softmax", {X, Y}, 40);
    }
    // Elementwise alone, rank 3, and a reduction to a scalar.
    {
        auto X = placeholder({3, 7, 33}, f32, "X");
        auto Y = compute(
                {3, 7, 33}, [&](Expr a, Expr b, Expr c) { return sigmoid(X(a, b, c)) * X(a, b, c); }, "Y");
        check_generated_space("silu", {X, Y}, 20);
        auto r = reduce_axis(0, 1000, "r");
        auto V = placeholder({1000}, f32, "V");
        auto T = compute(
                {1}, [&](Expr) { return sum(V(r.var()), {r}); }, "T");
        check_generated_space("total", {V, T}, 10);
    }
}

TEST_CASE("tuning a generated space finds a configuration at least as fast as its default") {
    Matmul m(64, 96, 48);
    auto task = autotune::generated_task("mm", {m.A, m.B, m.C});
    autotune::TuneOptions opt;
    opt.trials = 16;
    opt.threads = 1;
    opt.measure = {.warmup = 1, .repeat = 2, .min_repeat_ms = 1, .timeout_ms = 2000};
    const auto r = autotune::tune(task, opt);
    CHECK(r.measured == 16);
    CHECK(r.failed == 0);
    CHECK(r.best_seconds <= r.default_seconds);
    Buffer a = test::random_buffer({64, 48}, 1), b = test::random_buffer({48, 96}, 2), c({64, 96});
    build(task.schedule(task.space(), r.best), task.args)(a, b, c);
    const auto want = m.reference(a, b);
    CHECK(test::max_rel_err(c.data_as<float>(), want.data(), 64 * 96) < 1e-5);
}
