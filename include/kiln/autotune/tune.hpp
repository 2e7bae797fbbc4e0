#pragma once
// The tuner: measures configurations of a task's knob space and keeps every measurement in a records
// file; build_best compiles the fastest recorded configuration, or the default when there is none.
//
// Each round builds a batch of candidates on every core (lowering and LLVM are the cost of a trial), then
// runs them one at a time on the tuning thread count, checks each output against the default schedule's,
// and appends a record per candidate: its times, or why it has none (it did not build, it computed
// something else, it ran past the time-out). Candidates are compiled outside the kernel caches, so their
// code is unloaded as soon as they are measured and a long run stays flat in memory.
//
// The first round measures the default and random configurations. Later rounds draw a pool of mutants of
// the fastest so far (one or two knobs moved to a neighbouring or a random value) and random
// configurations, lower each, and measure those the cost model (cost_model.hpp) ranks highest, with a
// quarter drawn at random. The model retrains on every measurement after each round. A space smaller than
// the budget is measured whole.
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <map>
#include <set>

#include "kiln/autotune/cost_model.hpp"
#include "kiln/autotune/measure.hpp"
#include "kiln/autotune/records.hpp"
#include "kiln/autotune/task.hpp"

namespace kiln::autotune {

struct TuneOptions {
    int trials = 200;     // candidates to measure in this run (records already in the file do not count)
    std::string records;  // JSON-lines file: read to resume, appended to; empty keeps nothing
    int threads = 0;      // threads the candidates run on (0: the thread pool's size now)
    int batch = 0;        // candidates compiled together (0: four per core)
    uint64_t seed = 1;
    MeasureOptions measure{.warmup = 1, .repeat = 3, .min_repeat_ms = 20, .timeout_ms = 2000};
    double rtol = 1e-3;     // a candidate's output may differ from the default's by rtol * (|ref| + mean |ref|)
    bool use_model = true;  // rank candidates with the learned cost model (false: mutation and chance only)
    int confirm = 4;        // the fastest this many are measured again at the end; each counts at its slower run
    std::function<void(const Record&)> on_record;  // called after each measurement (progress, logs)
};

struct TuneResult {
    KnobConfig best;         // the fastest configuration of this run and the file
    KnobValues best_values;  // its knob values
    double best_seconds = 0;
    double default_seconds = 0;                // the default configuration, measured in this run or found in the file
    int confirmed = 0;                         // measurements of the confirmation round (TuneOptions::confirm)
    int measured = 0;                          // candidates measured in this run
    int failed = 0;                            // of which did not build, computed something else or timed out
    std::vector<std::string> damaged_records;  // lines of the records file that were skipped
    // The cost model's pairwise ranking accuracy on each batch before it trained on that batch (0.5 is
    // chance), over model_pairs pairs; 0 pairs when it never ranked a measured batch.
    double model_accuracy = 0;
    size_t model_pairs = 0;
};

// The machine records are filed under: the CPU's name and a hash of everything the code generator is told
// about it (features, vector width).
inline std::string tuning_target() {
    const Target t = jit::resolve(Target{});
    char hex[24];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(runtime::hash64(t.str())));
    return t.cpu + " " + hex;
}

namespace detail {

inline void check_tunable(const Task& task) {
    for (const Tensor& t : task.args) {
        for (size_t d = 0; d < t.op()->shape.size(); ++d)
            if (!as_const_int(t.op()->shape[d]))
                kiln::detail::fail("autotune: task '", task.name, "': tensor '", t.name(), "' has size '",
                                   to_string(t.op()->shape[d]), "' in dimension ", d,
                                   "; tuning measures one shape, so give the task constant sizes");
        const Type ty = t.dtype();
        if (!(ty == f32 || ty == f64 || ty.is_integer() || ty.is_bool()))
            kiln::detail::fail("autotune: task '", task.name, "': tensor '", t.name(), "' holds ", ty.str(),
                               "; tuning fills and checks f32, f64, integer and bool tensors only");
    }
}

inline std::vector<int64_t> shape_of(const Tensor& t) {
    std::vector<int64_t> s;
    for (const Expr& e : t.op()->shape) s.push_back(*as_const_int(e));
    return s;
}

// Inputs drawn from [-1, 1] (small integers for integer types), outputs zeroed.
inline std::vector<Buffer> make_args(const Task& task, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<Buffer> out;
    for (const Tensor& t : task.args) {
        Buffer b(shape_of(t), t.dtype());
        const bool input = t.op()->kind == OpKind::Placeholder;
        const int64_t n = b.size();
        auto fill = [&](auto* p, auto draw) {
            for (int64_t i = 0; i < n; ++i) p[i] = input ? draw() : 0;
        };
        std::uniform_real_distribution<double> real(-1.0, 1.0);
        std::uniform_int_distribution<int> small(-8, 8), bit(0, 1);
        const Type ty = t.dtype();
        if (ty == f32)
            fill(static_cast<float*>(b.data()), [&] { return static_cast<float>(real(rng)); });
        else if (ty == f64)
            fill(static_cast<double*>(b.data()), [&] { return real(rng); });
        else if (ty.is_bool())
            fill(static_cast<uint8_t*>(b.data()), [&] { return static_cast<uint8_t>(bit(rng)); });
        else {
            // Integers of any width: the low bytes of a small value, sign-extended for signed types.
            auto* bytes = static_cast<uint8_t*>(b.data());
            const int w = ty.bytes();
            for (int64_t i = 0; i < n; ++i) {
                int64_t v = input ? (ty.is_uint() ? std::abs(small(rng)) : small(rng)) : 0;
                std::memcpy(bytes + i * w, &v, static_cast<size_t>(w));
            }
        }
        out.push_back(std::move(b));
    }
    return out;
}

// Empty when `got` matches `want`; else where and by how much it does not.
inline std::string compare_outputs(const Task& task, const std::vector<Buffer>& got, const std::vector<Buffer>& want,
                                   double rtol) {
    for (size_t a = 0; a < task.args.size(); ++a) {
        if (task.args[a].op()->kind != OpKind::Compute) continue;
        const Buffer &g = got[a], &w = want[a];
        const Type ty = w.dtype();
        if (ty == f32 || ty == f64) {
            auto at = [&](const Buffer& b, int64_t i) {
                return ty == f32 ? static_cast<double>(static_cast<const float*>(b.data())[i])
                                 : static_cast<const double*>(b.data())[i];
            };
            double mean_abs = 0;
            for (int64_t i = 0; i < w.size(); ++i) mean_abs += std::abs(at(w, i));
            mean_abs /= static_cast<double>(std::max<int64_t>(1, w.size()));
            for (int64_t i = 0; i < w.size(); ++i) {
                const double x = at(g, i), y = at(w, i);
                if (!(std::abs(x - y) <= rtol * (std::abs(y) + mean_abs)) && !(std::isnan(x) && std::isnan(y)))
                    return kiln::detail::message("output '", task.args[a].name(),
                                                 "' differs from the default schedule's at element ", i, ": ", x,
                                                 " instead of ", y);
            }
        } else if (std::memcmp(g.data(), w.data(), static_cast<size_t>(w.size() * ty.bytes())) != 0) {
            return kiln::detail::message("output '", task.args[a].name(), "' differs from the default schedule's");
        }
    }
    return {};
}

struct Candidate {
    KnobConfig config;
    std::optional<LoweredFunc> lowered;
    Kernel kernel;
    std::string error;
};

// Lowers each configuration on every core; one that does not lower keeps the reason.
inline std::vector<Candidate> lower_candidates(const Task& task, const KnobSpace& space,
                                               const std::vector<KnobConfig>& configs) {
    std::vector<Candidate> out(configs.size());
    kiln::detail::for_each_on_cores(configs.size(), [&](size_t i) {
        out[i].config = configs[i];
        try {
            out[i].lowered = lower_func(task.schedule(space, configs[i]), task.args,
                                        LowerOptions{task.name.empty() ? "tuned" : task.name, ""});
        } catch (const Error& e) { out[i].error = std::string("does not lower: ") + e.what(); }
    });
    return out;
}

}  // namespace detail

inline TuneResult tune(const Task& task, const TuneOptions& opt = {}) {
    detail::check_tunable(task);
    if (opt.trials < 0) kiln::detail::fail("autotune: trials is ", opt.trials, "; give 0 or more");
    const KnobSpace space = task.space();
    const std::string key = task.workload_key(), target = tuning_target();
    const int threads = opt.threads > 0 ? opt.threads : num_threads();
    TuneResult result;

    // What the file already holds for this workload on this machine is not measured again.
    std::set<KnobConfig> seen;
    // Every configuration measured successfully, at its slowest median: one measured again (resumed, or
    // confirmed at the end) counts at its worse figure, so a lucky measurement cannot carry it.
    std::map<KnobConfig, double> timed;
    auto note_time = [&](const KnobConfig& c, double seconds) {
        auto [it, fresh] = timed.emplace(c, seconds);
        if (!fresh) it->second = std::max(it->second, seconds);
    };
    auto fastest_first = [&] {
        std::vector<std::pair<double, KnobConfig>> out;
        for (const auto& [c, t] : timed) out.push_back({t, c});
        std::sort(out.begin(), out.end());
        return out;
    };
    const KnobConfig default_config(space.knobs.size(), 0);
    if (!opt.records.empty()) {
        RecordFile file = load_records(opt.records);
        result.damaged_records = file.damaged;
        for (const Record& r : file.records) {
            if (r.workload != key || r.target != target || r.threads != threads) continue;
            const auto c = config_of(space, r.config);
            if (!c) continue;  // a template whose knobs have changed since
            seen.insert(*c);
            if (r.ok()) note_time(*c, r.median());
        }
    }

    // The reference: the default schedule's outputs on the same inputs.
    const std::vector<Buffer> reference = [&] {
        std::vector<Buffer> args = detail::make_args(task, opt.seed);
        std::vector<kiln::detail::ArgValue> packed;
        for (Buffer& b : args) packed.push_back(kiln::detail::to_arg(b));
        build(task.schedule(space, default_config), task.args).call(packed);
        return args;
    }();

    std::mt19937_64 rng(opt.seed);
    auto random_config = [&] {
        KnobConfig c;
        for (const Knob& k : space.knobs)
            c.push_back(std::uniform_int_distribution<int>(0, static_cast<int>(k.values.size()) - 1)(rng));
        return c;
    };
    auto mutate = [&](KnobConfig c) {
        const int moves = 1 + static_cast<int>(rng() % 2);
        for (int m = 0; m < moves && !c.empty(); ++m) {
            const size_t i = rng() % c.size();
            const int n = static_cast<int>(space.knobs[i].values.size());
            if (n == 1) continue;
            // Half the moves go to a neighbouring value (a factor one step larger or smaller), half anywhere.
            c[i] = rng() % 2 ? std::clamp(c[i] + (rng() % 2 ? 1 : -1), 0, n - 1)
                             : std::uniform_int_distribution<int>(0, n - 1)(rng);
        }
        return c;
    };
    const int64_t space_size = space.size();
    const int per_batch =
            opt.batch > 0 ? opt.batch : 4 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

    // Configurations not measured yet: mutants of the fastest once there are some (one in four random).
    auto propose = [&](int want) {
        std::vector<KnobConfig> out;
        std::set<KnobConfig> chosen;
        auto take = [&](const KnobConfig& c) {
            if (seen.count(c) || chosen.count(c)) return;
            chosen.insert(c);
            out.push_back(c);
        };
        if (!seen.count(default_config)) take(default_config);
        const auto ranked = fastest_first();
        const size_t parents = std::min<size_t>(ranked.size(), 8);
        for (int attempt = 0; static_cast<int>(out.size()) < want && attempt < 50 * want; ++attempt) {
            if (parents > 0 && attempt % 4 != 3)
                take(mutate(ranked[rng() % parents].second));
            else
                take(random_config());
        }
        return out;
    };

    CostModel model;
    // Measurements already on file teach the model before the first round.
    if (opt.use_model && !timed.empty()) {
        const auto ranked = fastest_first();
        std::vector<KnobConfig> known;
        for (const auto& r : ranked) known.push_back(r.second);
        const auto lowered = detail::lower_candidates(task, space, known);
        for (size_t i = 0; i < lowered.size(); ++i)
            if (lowered[i].lowered) model.add(program_features(*lowered[i].lowered), ranked[i].first);
        model.train();
    }
    size_t model_pairs = 0;
    double model_right = 0;

    // Runs a built candidate on inputs drawn with `seed`, checks it against the reference (drawn with
    // opt.seed), times it, and files the record.
    auto measure = [&](detail::Candidate& cand, uint64_t seed) {
        Record rec;
        rec.workload = key;
        rec.task = task.name;
        rec.target = target;
        rec.threads = threads;
        rec.config = values_of(space, cand.config);
        if (cand.error.empty()) {
            std::vector<Buffer> args = detail::make_args(task, seed);
            std::vector<kiln::detail::ArgValue> packed;
            for (Buffer& b : args) packed.push_back(kiln::detail::to_arg(b));
            try {
                if (seed == opt.seed) {
                    cand.kernel.call(packed);
                    cand.error = detail::compare_outputs(task, args, reference, opt.rtol);
                }
                if (cand.error.empty()) {
                    const Timing t = time_evaluator(cand.kernel, opt.measure).run(packed);
                    if (t.timed_out)
                        cand.error = kiln::detail::message("timed out after ", opt.measure.timeout_ms, " ms");
                    else
                        rec.seconds = t.seconds;
                }
            } catch (const Error& e) { cand.error = std::string("failed when called: ") + e.what(); }
        }
        cand.kernel = Kernel();
        rec.error = cand.error;
        if (!opt.records.empty()) append_record(opt.records, rec);
        if (opt.on_record) opt.on_record(rec);
        return rec;
    };
    auto build_all = [&](std::vector<detail::Candidate>& cands) {
        kiln::detail::for_each_on_cores(cands.size(), [&](size_t i) {
            if (!cands[i].lowered) return;
            try {
                BuildOptions bo;
                bo.name = cands[i].lowered->name;
                bo.use_cache = false;  // a candidate's code goes as soon as it is measured
                bo.use_disk_cache = false;
                cands[i].kernel = build(*cands[i].lowered, bo);
            } catch (const Error& e) { cands[i].error = std::string("does not build: ") + e.what(); }
        });
    };

    while (result.measured < opt.trials && static_cast<int64_t>(seen.size()) < space_size) {
        const int want = std::min(per_batch, opt.trials - result.measured);
        std::vector<detail::Candidate> cands;
        if (!model.trained()) {
            cands = detail::lower_candidates(task, space, propose(want));
        } else {
            // The model ranks a pool eight times the batch; its best three quarters are measured, and a
            // quarter drawn at random from the rest keeps the search from trusting it blindly.
            auto pool = detail::lower_candidates(task, space, propose(8 * want));
            std::vector<Features> rows;
            std::vector<size_t> rated;
            for (size_t i = 0; i < pool.size(); ++i)
                if (pool[i].lowered) {
                    rows.push_back(program_features(*pool[i].lowered));
                    rated.push_back(i);
                }
            const std::vector<float> score = model.predict(rows);
            std::vector<size_t> order(rated.size());
            std::iota(order.begin(), order.end(), size_t{0});
            std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return score[x] > score[y]; });
            const size_t greedy = std::min(order.size(), static_cast<size_t>(want - want / 4));
            std::vector<size_t> picked;
            for (size_t i = 0; i < greedy; ++i) picked.push_back(rated[order[i]]);
            std::vector<size_t> rest;
            for (size_t i = greedy; i < order.size(); ++i) rest.push_back(rated[order[i]]);
            std::shuffle(rest.begin(), rest.end(), rng);
            for (size_t i = 0; i < rest.size() && picked.size() < static_cast<size_t>(want); ++i)
                picked.push_back(rest[i]);
            for (size_t i : picked) cands.push_back(std::move(pool[i]));
        }
        if (cands.empty()) break;  // the search finds nothing new: the space is all but measured
        build_all(cands);
        const int before = num_threads();
        set_num_threads(threads);
        std::vector<Features> batch_features;
        std::vector<double> batch_seconds;
        for (auto& cand : cands) {
            seen.insert(cand.config);
            const Record rec = measure(cand, opt.seed);
            ++result.measured;
            if (!rec.ok()) {
                ++result.failed;
            } else {
                note_time(cand.config, rec.median());
                batch_features.push_back(program_features(*cand.lowered));
                batch_seconds.push_back(rec.median());
            }
        }
        set_num_threads(before);
        if (!opt.use_model) continue;
        // The model meets this batch before it trains on it: its ranking here is a held-out test.
        if (model.trained()) {
            size_t pairs = 0;
            const double acc = pairwise_accuracy(model.predict(batch_features), batch_seconds, &pairs);
            model_pairs += pairs;
            model_right += acc * static_cast<double>(pairs);
        }
        for (size_t i = 0; i < batch_features.size(); ++i) model.add(batch_features[i], batch_seconds[i]);
        model.train();
    }
    result.model_pairs = model_pairs;
    result.model_accuracy = model_pairs ? model_right / static_cast<double>(model_pairs) : 0;
    if (model.trained() && !opt.records.empty()) model.save(opt.records + ".model.json");
    // The fastest few are built and measured again on other inputs (another allocation, another placement
    // of the code): a kernel whose speed depends on where its data lands, as one reading rows a page apart
    // does, is then ranked by its worse run.
    if (opt.confirm > 0 && !timed.empty()) {
        const auto ranked = fastest_first();
        std::vector<KnobConfig> top;
        for (size_t i = 0; i < ranked.size() && static_cast<int>(top.size()) < opt.confirm; ++i)
            top.push_back(ranked[i].second);
        auto again = detail::lower_candidates(task, space, top);
        build_all(again);
        const int before = num_threads();
        set_num_threads(threads);
        for (auto& cand : again) {
            const Record rec = measure(cand, opt.seed + 1);
            ++result.confirmed;
            if (rec.ok())
                note_time(cand.config, rec.median());
            else
                timed.erase(cand.config);  // it failed the second time: not a candidate for best
        }
        set_num_threads(before);
    }
    if (auto d = timed.find(default_config); d != timed.end()) result.default_seconds = d->second;
    if (!timed.empty()) {
        const auto best = fastest_first().front();
        result.best = best.second;
        result.best_seconds = best.first;
        result.best_values = values_of(space, best.second);
    }
    return result;
}

// The schedule of the fastest record of this task on this machine (`threads` as tune's option), or the
// default schedule when the file holds none: what a program compiles at start-up after tuning.
inline Schedule best_schedule(const Task& task, const std::string& records, int threads = 0) {
    const KnobSpace space = task.space();
    const RecordFile file = load_records(records);
    const auto best =
            best_record(file.records, task.workload_key(), tuning_target(), threads > 0 ? threads : num_threads());
    // A record of an older version of the template (other knobs) is no use; the default stands in.
    const auto config = best ? config_of(space, best->config) : std::nullopt;
    return task.schedule(space, config.value_or(KnobConfig(space.knobs.size(), 0)));
}

inline Kernel build_best(const Task& task, const std::string& records, const BuildOptions& opt = {}, int threads = 0) {
    return build(best_schedule(task, records, threads), task.args, opt);
}

}  // namespace kiln::autotune
