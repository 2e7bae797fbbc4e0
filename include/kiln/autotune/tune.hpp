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
    int trials = 200;       // candidates to measure in this run (records already in the file do not count)
    std::string records{};  // JSON-lines file: read to resume, appended to; empty keeps nothing
    int threads = 0;        // threads the candidates run on (0: the thread pool's size now)
    int batch = 0;          // candidates compiled together (0: four per core)
    uint64_t seed = 1;
    MeasureOptions measure{.warmup = 1, .repeat = 3, .min_repeat_ms = 20, .timeout_ms = 2000};
    double rtol = 1e-3;     // a candidate's output may differ from the default's by rtol * (|ref| + mean |ref|)
    bool use_model = true;  // rank candidates with the learned cost model (false: mutation and chance only)
    int confirm = 4;        // the fastest this many are measured again at the end; each counts at its slower run
    std::function<void(const Record&)> on_record{};  // called after each measurement (progress, logs)
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

namespace detail {

// The task's own input values where it gives them; others drawn from [-1, 1] (small integers for integer
// types); outputs zeroed.
inline std::vector<Buffer> make_args(const Task& task, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<Buffer> out;
    for (size_t a = 0; a < task.args.size(); ++a) {
        const Tensor& t = task.args[a];
        if (a < task.inputs.size() && task.inputs[a].data()) {
            out.push_back(task.inputs[a]);  // read only: every measurement may share it
            continue;
        }
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

// The search on one task, run in steps: tune() runs it once for all its trials; a model's task scheduler
// (tune_tasks) runs each task's in turns, giving the next trials to the task where they promise most.
class Tuner {
public:
    // `model` may be shared by the tuners of several tasks (`model_task` tells them apart); by default
    // the tuner has its own.
    Tuner(Task task, TuneOptions opt, std::shared_ptr<CostModel> model = nullptr, int model_task = 0)
            : task_(std::move(task)),
              opt_(std::move(opt)),
              model_(model ? std::move(model) : std::make_shared<CostModel>()),
              model_task_(model_task),
              rng_(opt_.seed) {
        detail::check_tunable(task_);
        if (opt_.trials < 0) kiln::detail::fail("autotune: trials is ", opt_.trials, "; give 0 or more");
        space_ = task_.space();
        key_ = task_.workload_key();
        target_ = tuning_target();
        threads_ = opt_.threads > 0 ? opt_.threads : num_threads();
        default_config_ = KnobConfig(space_.knobs.size(), 0);
        space_size_ = space_.size();
        per_batch_ =
                opt_.batch > 0 ? opt_.batch : 4 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        // What the file already holds for this workload on this machine is not measured again.
        if (!opt_.records.empty()) {
            RecordFile file = load_records(opt_.records);
            result_.damaged_records = file.damaged;
            for (const Record& r : file.records) {
                if (r.workload != key_ || r.target != target_ || r.threads != threads_) continue;
                const auto c = config_of(space_, r.config);
                if (!c) continue;  // a template whose knobs have changed since
                seen_.insert(*c);
                if (r.ok()) note_time(*c, r.median());
            }
        }
        // The reference: the default schedule's outputs on the same inputs.
        reference_ = detail::make_args(task_, opt_.seed);
        std::vector<kiln::detail::ArgValue> packed;
        for (Buffer& b : reference_) packed.push_back(kiln::detail::to_arg(b));
        build(task_.schedule(space_, default_config_), task_.args).call(packed);
        // Measurements already on file teach the model before the first round.
        if (opt_.use_model && !timed_.empty()) {
            const auto ranked = fastest_first();
            std::vector<KnobConfig> known;
            for (const auto& r : ranked) known.push_back(r.second);
            const auto lowered = detail::lower_candidates(task_, space_, known);
            for (size_t i = 0; i < lowered.size(); ++i)
                if (lowered[i].lowered) {
                    model_->add(program_features(*lowered[i].lowered), ranked[i].first, model_task_);
                    programs_.insert(program_key(*lowered[i].lowered));
                }
            model_->train();
        }
    }

    const Task& task() const { return task_; }
    // Whether every configuration of the space has been measured.
    bool exhausted() const { return static_cast<int64_t>(seen_.size()) >= space_size_; }
    // The fastest time so far (0 before any), and the default configuration's (0 before it is measured).
    double best_seconds() const { return timed_.empty() ? 0 : fastest_first().front().first; }
    double default_seconds() const {
        auto d = timed_.find(default_config_);
        return d == timed_.end() ? 0 : d->second;
    }
    int measured() const { return result_.measured; }
    const CostModel& model() const { return *model_; }

    // Measures one batch of at most `trials` candidates (fewer when the space runs out); returns how many.
    int step(int trials) {
        const int want = std::min(per_batch_, trials);
        if (want <= 0 || exhausted()) return 0;
        std::vector<detail::Candidate> cands;
        for (int attempt = 0; attempt < 4 && static_cast<int>(cands.size()) < want; ++attempt) {
            const int need = want - static_cast<int>(cands.size());
            // A task's first batch (the default among it) is drawn without the model, which may have learnt
            // only from other tasks.
            if (!opt_.use_model || !model_->trained() || timed_.empty()) {
                for (auto& c : new_programs(propose(need))) {
                    seen_.insert(c.config);
                    cands.push_back(std::move(c));
                }
                continue;
            }
            // The model ranks a pool eight times the batch; its best three quarters are measured, and a
            // quarter drawn at random from the rest keeps the search from trusting it blindly.
            auto pool = new_programs(propose(8 * need));
            std::vector<Features> rows;
            std::vector<size_t> rated;
            for (size_t i = 0; i < pool.size(); ++i)
                if (pool[i].lowered) {
                    rows.push_back(program_features(*pool[i].lowered));
                    rated.push_back(i);
                }
            const std::vector<float> score = model_->predict(rows);
            std::vector<size_t> order(rated.size());
            std::iota(order.begin(), order.end(), size_t{0});
            std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return score[x] > score[y]; });
            const size_t greedy = std::min(order.size(), static_cast<size_t>(need - need / 4));
            std::vector<size_t> picked;
            for (size_t i = 0; i < greedy; ++i) picked.push_back(rated[order[i]]);
            std::vector<size_t> rest;
            for (size_t i = greedy; i < order.size(); ++i) rest.push_back(rated[order[i]]);
            std::shuffle(rest.begin(), rest.end(), rng_);
            for (size_t i = 0; i < rest.size() && picked.size() < static_cast<size_t>(need); ++i)
                picked.push_back(rest[i]);
            // Those not picked may come back in a later batch: their programs are not taken.
            std::set<size_t> taken(picked.begin(), picked.end());
            for (size_t i : rated)
                if (!taken.count(i)) programs_.erase(program_key(*pool[i].lowered));
            for (size_t i : picked) {
                seen_.insert(pool[i].config);
                cands.push_back(std::move(pool[i]));
            }
        }
        if (cands.empty()) {
            // The search finds nothing new: the space is all but measured.
            space_size_ = static_cast<int64_t>(seen_.size());
            return 0;
        }
        build_all(cands);
        std::vector<Features> batch_features;
        std::vector<double> batch_seconds;
        {
            const ThreadCount on(threads_);
            for (auto& cand : cands) {
                seen_.insert(cand.config);
                const Record rec = measure(cand, opt_.seed);
                ++result_.measured;
                if (!rec.ok()) {
                    ++result_.failed;
                } else {
                    note_time(cand.config, rec.median());
                    batch_features.push_back(program_features(*cand.lowered));
                    batch_seconds.push_back(rec.median());
                }
            }
        }
        if (opt_.use_model) {
            // The model meets this batch before it trains on it: its ranking here is a held-out test.
            if (model_->trained()) {
                size_t pairs = 0;
                const double acc = pairwise_accuracy(model_->predict(batch_features), batch_seconds, &pairs);
                model_pairs_ += pairs;
                model_right_ += acc * static_cast<double>(pairs);
            }
            for (size_t i = 0; i < batch_features.size(); ++i)
                model_->add(batch_features[i], batch_seconds[i], model_task_);
            model_->train();
        }
        return static_cast<int>(cands.size());
    }

    // The confirmation round, then the result. The fastest few are built and measured again on other
    // inputs (another allocation, another placement of the code): a kernel whose speed depends on where
    // its data lands, as one reading rows a page apart does, is then ranked by its worse run.
    TuneResult finish() {
        if (opt_.confirm > 0 && !timed_.empty()) {
            const auto ranked = fastest_first();
            std::vector<KnobConfig> top;
            for (size_t i = 0; i < ranked.size() && static_cast<int>(top.size()) < opt_.confirm; ++i)
                top.push_back(ranked[i].second);
            auto again = detail::lower_candidates(task_, space_, top);
            build_all(again);
            const ThreadCount on(threads_);
            for (auto& cand : again) {
                const Record rec = measure(cand, opt_.seed + 1);
                ++result_.confirmed;
                if (rec.ok())
                    note_time(cand.config, rec.median());
                else
                    timed_.erase(cand.config);  // it failed the second time: not a candidate for best
            }
        }
        TuneResult r = result_;
        r.model_pairs = model_pairs_;
        r.model_accuracy = model_pairs_ ? model_right_ / static_cast<double>(model_pairs_) : 0;
        r.default_seconds = default_seconds();
        if (!timed_.empty()) {
            const auto best = fastest_first().front();
            r.best = best.second;
            r.best_seconds = best.first;
            r.best_values = values_of(space_, best.second);
        }
        return r;
    }

private:
    // Sets the thread pool's size for the measurements and restores it after.
    struct ThreadCount {
        int before;
        explicit ThreadCount(int n) : before(num_threads()) { set_num_threads(n); }
        ~ThreadCount() { set_num_threads(before); }
    };

    // Every configuration measured successfully, at its slowest median: one measured again (resumed, or
    // confirmed at the end) counts at its worse figure, so a lucky measurement cannot carry it.
    void note_time(const KnobConfig& c, double seconds) {
        auto [it, fresh] = timed_.emplace(c, seconds);
        if (!fresh) it->second = std::max(it->second, seconds);
    }
    std::vector<std::pair<double, KnobConfig>> fastest_first() const {
        std::vector<std::pair<double, KnobConfig>> out;
        for (const auto& [c, t] : timed_) out.push_back({t, c});
        std::sort(out.begin(), out.end());
        return out;
    }
    KnobConfig random_config() {
        KnobConfig c;
        for (const Knob& k : space_.knobs)
            c.push_back(std::uniform_int_distribution<int>(0, static_cast<int>(k.values.size()) - 1)(rng_));
        return c;
    }
    KnobConfig mutate(KnobConfig c) {
        const int moves = 1 + static_cast<int>(rng_() % 2);
        for (int m = 0; m < moves && !c.empty(); ++m) {
            const size_t i = rng_() % c.size();
            const int n = static_cast<int>(space_.knobs[i].values.size());
            if (n == 1) continue;
            // Half the moves go to a neighbouring value (a factor one step larger or smaller), half anywhere.
            c[i] = rng_() % 2 ? std::clamp(c[i] + (rng_() % 2 ? 1 : -1), 0, n - 1)
                              : std::uniform_int_distribution<int>(0, n - 1)(rng_);
        }
        return c;
    }
    // Configurations not measured yet: mutants of the fastest once there are some (one in four random).
    std::vector<KnobConfig> propose(int want) {
        std::vector<KnobConfig> out;
        std::set<KnobConfig> chosen;
        auto take = [&](const KnobConfig& c) {
            if (seen_.count(c) || chosen.count(c)) return;
            chosen.insert(c);
            out.push_back(c);
        };
        if (!seen_.count(default_config_)) take(default_config_);
        const auto ranked = fastest_first();
        const size_t parents = std::min<size_t>(ranked.size(), 8);
        for (int attempt = 0; static_cast<int>(out.size()) < want && attempt < 50 * want; ++attempt) {
            if (parents > 0 && attempt % 4 != 3)
                take(mutate(ranked[rng_() % parents].second));
            else
                take(random_config());
        }
        return out;
    }
    static uint64_t program_key(const LoweredFunc& f) { return runtime::hash64(to_string(f)); }
    // The configurations lowered on every core, less those whose program was measured already: knobs that
    // do not change the program (a generated space's knobs while `generated` picks the default) would
    // otherwise be measured again and again, and the luckiest of equal programs taken for a gain.
    std::vector<detail::Candidate> new_programs(const std::vector<KnobConfig>& configs) {
        std::vector<detail::Candidate> out;
        for (auto& c : detail::lower_candidates(task_, space_, configs)) {
            if (c.lowered && !programs_.insert(program_key(*c.lowered)).second) {
                seen_.insert(c.config);
                continue;
            }
            out.push_back(std::move(c));
        }
        return out;
    }
    void build_all(std::vector<detail::Candidate>& cands) {
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
    }
    // Runs a built candidate on inputs drawn with `seed`, checks it against the reference (drawn with
    // opt.seed), times it, and files the record.
    Record measure(detail::Candidate& cand, uint64_t seed) {
        Record rec;
        rec.workload = key_;
        rec.task = task_.name;
        rec.target = target_;
        rec.threads = threads_;
        rec.config = values_of(space_, cand.config);
        if (cand.error.empty()) {
            std::vector<Buffer> args = detail::make_args(task_, seed);
            std::vector<kiln::detail::ArgValue> packed;
            for (Buffer& b : args) packed.push_back(kiln::detail::to_arg(b));
            try {
                if (seed == opt_.seed) {
                    cand.kernel.call(packed);
                    cand.error = detail::compare_outputs(task_, args, reference_, opt_.rtol);
                }
                if (cand.error.empty()) {
                    const Timing t = time_evaluator(cand.kernel, opt_.measure).run(packed);
                    if (t.timed_out)
                        cand.error = kiln::detail::message("timed out after ", opt_.measure.timeout_ms, " ms");
                    else
                        rec.seconds = t.seconds;
                }
            } catch (const Error& e) { cand.error = std::string("failed when called: ") + e.what(); }
        }
        cand.kernel = Kernel();
        rec.error = cand.error;
        if (!opt_.records.empty()) append_record(opt_.records, rec);
        if (opt_.on_record) opt_.on_record(rec);
        return rec;
    }

    Task task_;
    TuneOptions opt_;
    std::shared_ptr<CostModel> model_;
    int model_task_;
    std::mt19937_64 rng_;
    KnobSpace space_;
    std::string key_, target_;
    int threads_ = 1;
    KnobConfig default_config_;
    int64_t space_size_ = 0;
    int per_batch_ = 1;
    std::set<KnobConfig> seen_;
    std::set<uint64_t> programs_;  // hashes of the programs measured or about to be
    std::map<KnobConfig, double> timed_;
    std::vector<Buffer> reference_;
    TuneResult result_;
    size_t model_pairs_ = 0;
    double model_right_ = 0;
};

inline TuneResult tune(const Task& task, const TuneOptions& opt = {}) {
    Tuner tuner(task, opt);
    while (tuner.measured() < opt.trials && tuner.step(opt.trials - tuner.measured()) > 0) {}
    TuneResult r = tuner.finish();
    if (opt.use_model && !opt.records.empty() && tuner.model().trained())
        tuner.model().save(opt.records + ".model.json");
    return r;
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
