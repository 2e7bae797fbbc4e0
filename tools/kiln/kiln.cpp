// The `kiln` command: compiles an ONNX model and runs, benchmarks or exports it, as TVM's tvmc does.
// Subcommands and options on CLI11 (`kiln --help`, `kiln run --help`, ...):
//
//   kiln run    model.onnx [--input NAME=FILE.npy]... [--output-dir DIR] [options]
//   kiln bench  model.onnx [--runs N] [--warmup N] [--rounds-on-stdin] [options]
//   kiln export model.onnx -o model.so [options]     (--target c -o DIR: C99 source and a Makefile)
//   kiln tune   model.onnx --records r.jsonl [--budget 10m | --trials N] [options]
//   kiln cache info | clear
// In place of model.onnx, a file written by --save (graph::save) runs without compiling, and a library
// written by kiln export runs through the runtime (kiln/runtime.h), as a deployed program would run it.
#include <CLI/CLI.hpp>

#include <kiln/graph.hpp>
#include <kiln/graph/export.hpp>
#include <kiln/onnx.hpp>
#include <kiln/runtime.h>
#include <kiln/runtime/npy.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "tune.hpp"

namespace {

struct Args {
    std::string command, model;
    std::map<std::string, std::string> inputs;
    std::map<std::string, std::vector<int64_t>> shapes;
    std::string output_dir, dump_graph, dump_passes, dump_ir, save, output, target = "llvm", records;
    int opt_level = 3, threads = 0, runs = 50, warmup = 5, trials = 0;
    double budget_seconds = 0;
    bool profile = false, rounds_on_stdin = false;
    std::vector<std::string> compile_flags;  // those given, which a saved executable cannot honour
};

// A command line that parsed but asks for something that cannot be done: exit 2, as for a parse error.
[[noreturn]] void misuse(const std::string& why) {
    std::fprintf(stderr, "kiln: %s\nRun with --help for more information.\n", why.c_str());
    std::exit(2);
}

std::pair<std::string, std::string> split_eq(const std::string& flag, const std::string& s) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) misuse(flag + " takes NAME=VALUE, not '" + s + "'");
    return {s.substr(0, eq), s.substr(eq + 1)};
}

// An integer option's check: a whole number in [lo, hi], or a message that says what it is not.
CLI::Validator whole_number(int lo, int hi = std::numeric_limits<int>::max()) {
    const std::string range = hi == std::numeric_limits<int>::max()
                                      ? "at least " + std::to_string(lo)
                                      : "from " + std::to_string(lo) + " to " + std::to_string(hi);
    return CLI::Validator(
            [lo, hi, range](std::string& s) -> std::string {
                size_t used = 0;
                long long v = 0;
                try {
                    v = std::stoll(s, &used);
                } catch (...) { used = 0; }
                if (used == 0 || used != s.size()) return "takes a whole number, not '" + s + "'";
                if (v < lo || v > hi) return "must be " + range + ", not " + s;
                return "";
            },
            "INT " + range);
}

// A duration: a number of seconds, or one followed by s, m or h.
double seconds_of(const std::string& s) {
    size_t used = 0;
    double v = -1;
    try {
        v = std::stod(s, &used);
    } catch (...) { used = 0; }
    const std::string unit = used ? s.substr(used) : "";
    const double scale = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : 0;
    if (used == 0 || scale == 0 || !(v > 0))
        misuse("--budget takes a positive duration such as 90s, 10m or 1h, not '" + s + "'");
    return v * scale;
}

// The subcommands and their options (CLI11), filled into `a`.
struct CommandLine {
    CLI::App app{"kiln: compile an ONNX model with kiln and run, benchmark or export it; manage kiln's disk cache",
                 "kiln"};
    CLI::App *run, *bench, *exp, *tune, *cache, *cache_info, *cache_clear;
    std::vector<std::string> inputs, shapes;
    std::string budget;

    explicit CommandLine(Args& a) {
        app.require_subcommand(1);
        app.footer(
                "In place of MODEL.onnx, a file written by --save runs without compiling, and a library written by "
                "kiln export runs\n"
                "through the runtime (kiln/runtime.h), as a deployed program would run it.");
        run = app.add_subcommand("run", "compile the model (or load it), run it once and print or write its outputs");
        bench = app.add_subcommand(
                "bench", "compile the model (or load it) and time it: the median of --runs runs after --warmup");
        exp = app.add_subcommand(
                "export", "write the compiled model as a shared library the LLVM-free runtime loads, or as C99 source");
        for (CLI::App* sub : {run, bench, exp}) {
            sub->add_option("model", a.model,
                            "MODEL.onnx, an executable written by --save, or (run, bench) a library from kiln export")
                    ->required();
            sub->add_option("--opt-level", a.opt_level, "graph optimisation level 0-3 (default 3)")
                    ->check(whole_number(0, 3));
            sub->add_option("--threads", a.threads, "kernel threads (default: every core)")->check(whole_number(0));
            sub->add_option("--shape", shapes, "NAME=D,D,..: the shape of an input with symbolic dimensions");
            sub->add_option("--dump-graph", a.dump_graph,
                            "write the optimised graph, fused kernels as clusters, as Graphviz dot to FILE");
            sub->add_option("--dump-passes", a.dump_passes,
                            "write the graph after every pass as DIR/NN_pass.txt and .dot");
            sub->add_option(
                    "--dump-ir", a.dump_ir,
                    "write the loop IR of every distinct kernel, as lowered for the backend, to DIR/NN_kernel.txt");
            sub->add_option("--save", a.save,
                            "save the compiled executable to FILE; `kiln run FILE` then runs it without compiling");
        }
        tune = app.add_subcommand(
                "tune",
                "tune the model's kernels by measuring them, appending to --records; then compare the model "
                "compiled with the records against the defaults");
        tune->add_option("model", a.model, "MODEL.onnx")->required();
        tune->add_option("--opt-level", a.opt_level, "graph optimisation level 0-3 (default 3)")
                ->check(whole_number(0, 3));
        tune->add_option("--threads", a.threads, "threads the kernels are tuned for (default: every core)")
                ->check(whole_number(0));
        tune->add_option("--shape", shapes, "NAME=D,D,..: the shape of an input with symbolic dimensions");
        tune->add_option("--budget", budget, "wall-clock budget: 90s, 10m, 1h (seconds without a unit)");
        tune->add_option("--trials", a.trials, "budget in measured candidates, over all kernels")
                ->check(whole_number(1));
        for (CLI::App* sub : {run, bench, exp, tune})
            sub->add_option("--records", a.records,
                            sub == tune
                                    ? "the records file: read to resume, appended to (required)"
                                    : "tuning records (kiln tune): kernels with records use their fastest schedule");
        tune->get_option("--records")->required();
        for (CLI::App* sub : {run, bench}) {
            sub->add_option("--input", inputs, "NAME=FILE.npy: an input's value (the others are random)");
            sub->add_flag("--profile", a.profile, "print the time of every fused kernel");
        }
        run->add_option("--output-dir", a.output_dir, "write every output as DIR/NAME.npy");
        bench->add_option("--runs", a.runs, "timed runs (default 50)")->check(whole_number(1));
        bench->add_option("--warmup", a.warmup, "untimed runs first (default 5)")->check(whole_number(0));
        bench->add_flag("--rounds-on-stdin", a.rounds_on_stdin,
                        "time one round of --runs runs per line read from standard input and print its median, until "
                        "end of input: a script "
                        "can interleave kiln's rounds with another runtime's, so both see the same machine "
                        "(scripts/bench_zoo.py)");
        exp->add_option("-o,--output", a.output, "the library to write (FILE.so), or with --target c the directory")
                ->required();
        exp->add_option("--target", a.target,
                        "llvm: a shared library for the runtime (default); c: model.c and a Makefile that builds it")
                ->check(CLI::IsMember({"llvm", "c"}));
        cache = app.add_subcommand("cache",
                                   "the disk kernel cache (KILN_CACHE_DIR picks the directory; =off turns it off)");
        cache->require_subcommand(1);
        cache_info = cache->add_subcommand("info", "where the cache is, its entries, size and limit");
        cache_clear = cache->add_subcommand("clear", "remove every entry");
    }

    // After a successful parse: the command, and what options cannot say by type alone.
    void finish(Args& a) {
        for (CLI::App* sub : {run, bench, exp, tune, cache})
            if (sub->parsed()) a.command = sub->get_name();
        if (a.command == "cache") return;
        if (a.command == "tune") {
            if (!budget.empty()) a.budget_seconds = seconds_of(budget);
            if (a.budget_seconds == 0 && a.trials == 0) misuse("kiln tune needs a budget: --budget 10m or --trials N");
        }
        CLI::App* sub = run->parsed() ? run : bench->parsed() ? bench : tune->parsed() ? tune : exp;
        for (auto& in : inputs) a.inputs.insert(split_eq("--input", in));
        for (auto& sh : shapes) {
            auto [name, dims] = split_eq("--shape", sh);
            std::vector<int64_t> shape;
            std::stringstream ss(dims);
            for (std::string d; std::getline(ss, d, ',');) {
                size_t used = 0;
                int64_t v = 0;
                try {
                    v = std::stoll(d, &used);
                } catch (...) { used = 0; }
                if (used == 0 || used != d.size() || v < 1)
                    misuse("--shape " + sh + ": dimensions are positive whole numbers, not '" + d + "'");
                shape.push_back(v);
            }
            a.shapes[name] = shape;
        }
        for (const char* flag : {"--shape", "--opt-level", "--dump-graph", "--dump-passes", "--dump-ir", "--records"})
            if (sub->get_option_no_throw(flag) && sub->count(flag)) a.compile_flags.push_back(flag);
    }
};

// Inputs not given on the command line: uniform in [-1, 1) for floats, 0 or 1 for integers (safe as indices).
kiln::Buffer random_input(const kiln::graph::TensorType& t, std::mt19937& rng) {
    kiln::Buffer b(t.shape, t.dtype);
    std::uniform_real_distribution<double> u(-1, 1);
    const int64_t n = b.size();
    if (t.dtype == kiln::f32)
        for (int64_t i = 0; i < n; ++i) static_cast<float*>(b.data())[i] = static_cast<float>(u(rng));
    else if (t.dtype == kiln::f64)
        for (int64_t i = 0; i < n; ++i) static_cast<double*>(b.data())[i] = u(rng);
    else if (t.dtype == kiln::i64)
        for (int64_t i = 0; i < n; ++i) static_cast<int64_t*>(b.data())[i] = rng() & 1;
    else if (t.dtype == kiln::i32)
        for (int64_t i = 0; i < n; ++i) static_cast<int32_t*>(b.data())[i] = rng() & 1;
    else
        std::memset(b.data(), 0, static_cast<size_t>(n * t.dtype.bytes()));
    return b;
}

std::string summary(const kiln::Buffer& b) {
    double sum = 0, lo = 1e300, hi = -1e300;
    const int64_t n = b.size();
    for (int64_t i = 0; i < n; ++i) {
        double v = 0;
        if (b.dtype() == kiln::f32)
            v = static_cast<const float*>(b.data())[i];
        else if (b.dtype() == kiln::f64)
            v = static_cast<const double*>(b.data())[i];
        else if (b.dtype() == kiln::i64)
            v = static_cast<double>(static_cast<const int64_t*>(b.data())[i]);
        else if (b.dtype() == kiln::i32)
            v = static_cast<const int32_t*>(b.data())[i];
        else
            return "";
        sum += v, lo = std::min(lo, v), hi = std::max(hi, v);
    }
    char s[160];
    std::snprintf(s, sizeof s, "mean %.6g  min %.6g  max %.6g", n ? sum / n : 0.0, lo, hi);
    return s;
}

double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

bool is_saved_executable(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    char magic[sizeof kiln::runtime::detail::model_magic] = {};
    f.read(magic, sizeof magic);
    return f.gcount() == sizeof magic && std::memcmp(magic, kiln::runtime::detail::model_magic, sizeof magic) == 0;
}

void check_inputs(const Args& a, const std::vector<std::string>& names) {
    for (auto& [name, file] : a.inputs)
        if (std::find(names.begin(), names.end(), name) == names.end()) {
            std::string all;
            for (auto& n : names) all += (all.empty() ? "" : ", ") + n;
            kiln::detail::fail("--input ", name, "=", file, ": the model has no input '", name, "'; its inputs are ",
                               all);
        }
}

void check_inputs(const Args& a, const kiln::graph::Graph& model) {
    std::vector<std::string> names;
    for (int v : model.inputs) names.push_back(model.value(v).name);
    check_inputs(a, names);
}

kiln::graph::Executable load_saved(const Args& a) {
    if (!a.compile_flags.empty())
        misuse(a.compile_flags.front() + " does not apply to " + a.model +
               ": it is a saved executable, compiled already; give the ONNX model instead");
    kiln::graph::Executable exe = kiln::graph::load_executable(a.model, a.threads);
    const auto& ct = exe.compile_times();
    std::printf("executable  %s\n", a.model.c_str());
    std::printf("loaded      %d kernels (%d distinct), arena %.2f MiB, in %.0f ms (linked, not compiled)\n", ct.kernels,
                ct.distinct_kernels, exe.arena_bytes() / 1048576.0, ct.total_ms);
    check_inputs(a, exe.graph());
    return exe;
}

kiln::graph::Executable compile_model(const Args& a) {
    using clock = std::chrono::steady_clock;
    const auto t_import = clock::now();
    kiln::onnx::LoadOptions lo;
    lo.shapes = a.shapes;
    kiln::graph::Graph model = kiln::onnx::load(a.model, lo);
    const double import_ms = ms_between(t_import, clock::now());
    check_inputs(a, model);

    kiln::graph::CompileOptions co;
    co.opt_level = a.opt_level;
    co.threads = a.threads > 0 ? a.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    co.records = a.records;
    // A start in milliseconds when this model was compiled before; but the fused graph a dump shows and the
    // loop IR that C source is printed from exist only where the passes ran.
    co.cache_executable = a.dump_graph.empty() && a.dump_ir.empty() && a.target != "c";
    int pass_no = 0;
    if (!a.dump_passes.empty()) {
        std::filesystem::create_directories(a.dump_passes);
        co.dump = [&](const std::string& pass, const kiln::graph::Graph& g,
                      const std::vector<kiln::graph::Group>* groups) {
            char stem[512];
            std::snprintf(stem, sizeof stem, "%s/%02d_%s", a.dump_passes.c_str(), pass_no++, pass.c_str());
            std::ofstream(std::string(stem) + ".txt") << kiln::graph::to_text(g);
            std::vector<std::vector<int>> clusters;
            if (groups)
                for (auto& grp : *groups) clusters.push_back(grp.nodes);
            std::ofstream(std::string(stem) + ".dot") << kiln::graph::to_dot(g, clusters);
        };
    }
    kiln::graph::Executable exe = kiln::graph::compile(model, co);
    const auto& ct = exe.compile_times();
    std::printf("model       %s\n", a.model.c_str());
    std::printf("compiled    opt level %d, %d thread(s): %d nodes -> %d kernels (%d distinct), arena %.2f MiB\n",
                a.opt_level, co.threads, static_cast<int>(model.nodes.size()), ct.kernels, ct.distinct_kernels,
                exe.arena_bytes() / 1048576.0);
    if (!a.records.empty()) {
        std::printf("records     %s: %d of %d kernels use a tuned schedule%s\n", a.records.c_str(), ct.tuned_kernels,
                    ct.kernels, ct.from_disk_cache ? " (as when the cached executable was compiled)" : "");
        for (const auto& d : ct.damaged_records) std::printf("skipped     %s\n", d.c_str());
    }
    if (ct.from_disk_cache) {
        std::printf(
                "compile     %.0f ms = import %.0f + the whole executable from the disk cache %.0f (linked, not "
                "compiled; "
                "--dump-graph compiles it)\n",
                import_ms + ct.total_ms, import_ms, ct.total_ms);
    } else {
        std::printf(
                "compile     %.0f ms = import %.0f + passes %.0f + lowering %.0f + LLVM %.0f (+ memory plan); %d of %d "
                "kernels from the disk cache\n",
                import_ms + ct.total_ms, import_ms, ct.passes_ms, ct.lower_ms, ct.llvm_ms, ct.disk_cache_hits,
                ct.distinct_kernels);
    }
    if (!a.dump_graph.empty()) {
        std::vector<std::vector<int>> clusters;
        for (auto& grp : exe.groups()) clusters.push_back(grp.nodes);
        std::ofstream(a.dump_graph) << kiln::graph::to_dot(exe.graph(), clusters);
        std::printf("graph       written to %s\n", a.dump_graph.c_str());
    }
    if (!a.dump_passes.empty()) std::printf("passes      written to %s/\n", a.dump_passes.c_str());
    if (!a.dump_ir.empty()) {
        std::filesystem::create_directories(a.dump_ir);
        int kernel_no = 0;
        std::set<const kiln::Kernel::Compiled*> written;
        for (size_t k = 0; k < exe.num_kernels(); ++k) {
            if (!written.insert(&exe.kernel(k).compiled()).second) continue;
            char path[512];
            std::snprintf(path, sizeof path, "%s/%02d_%s.txt", a.dump_ir.c_str(), kernel_no++,
                          exe.kernel_name(k).c_str());
            std::ofstream(path) << exe.kernel(k).loop_ir();
        }
        std::printf("loop IR     %d kernels written to %s/\n", kernel_no, a.dump_ir.c_str());
    }
    return exe;
}

// What run and bench drive: an executable (compiled, or saved and linked by the JIT), or an exported
// library run by the runtime, as a deployed program runs it.
struct Runner {
    std::vector<std::pair<std::string, kiln::graph::TensorType>> inputs;
    std::function<void(const std::string&, const kiln::Buffer&)> set_input;
    std::function<void()> run;
    std::function<std::vector<std::pair<std::string, kiln::Buffer>>()> outputs;
    std::function<void()> enable_profile;  // empty where there is no per-kernel profile
    std::function<std::string()> profile_table;
};

Runner jit_runner(std::shared_ptr<kiln::graph::Executable> exe) {
    Runner r;
    for (int v : exe->graph().inputs) r.inputs.emplace_back(exe->graph().value(v).name, exe->graph().value(v).type);
    r.set_input = [exe](const std::string& name, const kiln::Buffer& b) { exe->set_input(name, b); };
    r.run = [exe] { exe->run(); };
    r.outputs = [exe] {
        std::vector<std::pair<std::string, kiln::Buffer>> out;
        for (size_t i = 0; i < exe->num_outputs(); ++i) out.emplace_back(exe->output_name(i), exe->output(i));
        return out;
    };
    r.enable_profile = [exe] { exe->enable_profile(); };
    r.profile_table = [exe] { return exe->profile_table(); };
    return r;
}

bool is_exported_library(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    char magic[4] = {};
    f.read(magic, sizeof magic);
    return f.gcount() == 4 && std::memcmp(magic,
                                          "\x7f"
                                          "ELF",
                                          4) == 0;
}

kiln::Type dtype_named(const std::string& name) {
    for (kiln::Type t : {kiln::f32, kiln::f64, kiln::f16, kiln::i64, kiln::i32, kiln::i16, kiln::i8, kiln::u8,
                         kiln::u32, kiln::boolean})
        if (t.str() == name) return t;
    kiln::detail::fail("the exported library has a value of element type '", name, "', which this kiln does not know");
}

Runner library_runner(const Args& a) {
    if (!a.compile_flags.empty())
        misuse(a.compile_flags.front() + " does not apply to " + a.model +
               ": it is an exported library, compiled already; give the ONNX model instead");
    if (a.profile)
        misuse("--profile needs the JIT; an exported library runs its kernels without timing them (profile the ONNX "
               "model instead)");
    auto check = [](int rc) {
        if (rc != 0) kiln::detail::fail(kiln_last_error());
    };
    const auto t0 = std::chrono::steady_clock::now();
    char error[2048];
    std::shared_ptr<kiln_model> m(kiln_model_load(a.model.c_str(), error, sizeof error), kiln_model_free);
    if (!m) kiln::detail::fail(error);
    const double load_ms = ms_between(t0, std::chrono::steady_clock::now());
    if (a.threads > 0) check(kiln_model_set_threads(m.get(), a.threads));
    Runner r;
    for (int i = 0; i < kiln_model_num_inputs(m.get()); ++i) {
        int ndim = 0;
        const int64_t* shape = kiln_model_input_shape(m.get(), i, &ndim);
        r.inputs.emplace_back(kiln_model_input_name(m.get(), i),
                              kiln::graph::TensorType{std::vector<int64_t>(shape, shape + ndim),
                                                      dtype_named(kiln_model_input_dtype(m.get(), i))});
    }
    std::vector<std::string> names;
    for (auto& in : r.inputs) names.push_back(in.first);
    check_inputs(a, names);
    std::printf("library     %s\n", a.model.c_str());
    std::printf("loaded      %d input(s), %d output(s), in %.1f ms (the runtime: no compiler, no LLVM)\n",
                kiln_model_num_inputs(m.get()), kiln_model_num_outputs(m.get()), load_ms);
    r.set_input = [m, check](const std::string& name, const kiln::Buffer& b) {
        check(kiln_model_set_input_bytes(m.get(), name.c_str(), b.data(),
                                         static_cast<size_t>(b.size() * b.dtype().bytes())));
    };
    r.run = [m, check] { check(kiln_model_run(m.get())); };
    r.outputs = [m] {
        std::vector<std::pair<std::string, kiln::Buffer>> out;
        for (int i = 0; i < kiln_model_num_outputs(m.get()); ++i) {
            int ndim = 0;
            const int64_t* shape = kiln_model_output_shape(m.get(), i, &ndim);
            size_t bytes = 0;
            void* data = const_cast<void*>(kiln_model_output_bytes(m.get(), i, &bytes));
            out.emplace_back(kiln_model_output_name(m.get(), i),
                             kiln::Buffer(data, std::vector<int64_t>(shape, shape + ndim),
                                          dtype_named(kiln_model_output_dtype(m.get(), i))));
        }
        return out;
    };
    return r;
}

int export_command(const Args& a, const kiln::graph::Executable& exe) {
    const auto t0 = std::chrono::steady_clock::now();
    if (a.target == "c") {
        kiln::graph::export_c_source(exe, a.output);
        std::printf(
                "exported    %s/model.c and Makefile (C99) in %.0f ms; `make -C %s` builds model.so for the runtime\n",
                a.output.c_str(), ms_between(t0, std::chrono::steady_clock::now()), a.output.c_str());
        return 0;
    }
    kiln::graph::export_library(exe, a.output);
    std::printf(
            "exported    %s (%.1f MiB) in %.0f ms; load it with kiln_model_load (kiln/runtime.h), or `kiln run %s`\n",
            a.output.c_str(), std::filesystem::file_size(a.output) / 1048576.0,
            ms_between(t0, std::chrono::steady_clock::now()), a.output.c_str());
    return 0;
}

int main_checked(const Args& a) {
    using clock = std::chrono::steady_clock;
    if (is_exported_library(a.model) && a.command == "export")
        misuse(a.model + " is exported already; give the ONNX model or a saved executable");
    Runner runner;
    if (is_exported_library(a.model)) {
        runner = library_runner(a);
    } else {
        auto exe = std::make_shared<kiln::graph::Executable>(is_saved_executable(a.model) ? load_saved(a)
                                                                                          : compile_model(a));
        if (!a.save.empty()) {
            kiln::graph::save(*exe, a.save);
            std::printf("saved       %s (%.1f MiB)\n", a.save.c_str(), std::filesystem::file_size(a.save) / 1048576.0);
        }
        if (a.command == "export") return export_command(a, *exe);
        runner = jit_runner(exe);
    }

    std::mt19937 rng(42);
    for (auto& [name, type] : runner.inputs) {
        auto it = a.inputs.find(name);
        if (it != a.inputs.end())
            runner.set_input(name, kiln::npy::load(it->second));
        else
            runner.set_input(name, random_input(type, rng));
        std::printf("input       %s %s%s\n", name.c_str(), type.str().c_str(),
                    it != a.inputs.end() ? (" from " + it->second).c_str() : " (random)");
    }

    const int runs = a.command == "bench" ? a.runs : 1;
    const int warmup = a.command == "bench" ? a.warmup : 0;
    for (int i = 0; i < warmup; ++i) runner.run();
    if (a.profile) runner.enable_profile();
    auto time_runs = [&] {
        std::vector<double> r;
        for (int i = 0; i < runs; ++i) {
            const auto t0 = clock::now();
            runner.run();
            r.push_back(ms_between(t0, clock::now()));
        }
        std::sort(r.begin(), r.end());
        return r;
    };
    std::vector<double> t;
    if (a.rounds_on_stdin) {
        std::printf("rounds      one per line on standard input\n");
        std::fflush(stdout);
        for (std::string line; std::getline(std::cin, line);) {
            const auto r = time_runs();
            std::printf("round       median %.3f ms\n", r[r.size() / 2]);
            std::fflush(stdout);
            t.insert(t.end(), r.begin(), r.end());
        }
        if (t.empty())
            kiln::detail::fail(
                    "kiln bench --rounds-on-stdin: standard input ended before the first round; send one line per "
                    "round");
        std::sort(t.begin(), t.end());
    } else {
        t = time_runs();
    }
    if (a.command == "bench")
        std::printf("latency     median %.3f ms  min %.3f  max %.3f  over %d runs (%d warm-up)\n", t[t.size() / 2],
                    t.front(), t.back(), static_cast<int>(t.size()), warmup);
    else
        std::printf("latency     %.3f ms (one cold run; use kiln bench for a median)\n", t[0]);
    for (auto& [name, out] : runner.outputs()) {
        std::printf("output      %s %s  %s\n", name.c_str(),
                    kiln::graph::TensorType{out.shape(), out.dtype()}.str().c_str(), summary(out).c_str());
        if (!a.output_dir.empty()) {
            std::filesystem::create_directories(a.output_dir);
            std::string file = name;
            std::replace_if(
                    file.begin(), file.end(), [](char c) { return c == '/' || c == '\\' || c == ':'; }, '_');
            kiln::npy::save(a.output_dir + "/" + file + ".npy", out);
        }
    }
    if (!a.output_dir.empty()) std::printf("outputs     written to %s/\n", a.output_dir.c_str());
    if (a.profile) std::printf("\n%s", runner.profile_table().c_str());
    return 0;
}

}  // namespace

// `kiln cache info` and `kiln cache clear`.
int cache_command(bool clear) {
    if (clear) {
        const kiln::CacheInfo before = kiln::cache_info();
        kiln::clear_cache();
        std::printf("cleared     %lld entries (%.1f MiB) from %s\n", static_cast<long long>(before.entries),
                    before.bytes / 1048576.0, before.dir.empty() ? "(the cache is off)" : before.dir.c_str());
        return 0;
    }
    const kiln::CacheInfo ci = kiln::cache_info();
    if (ci.dir.empty()) {
        std::printf("cache       off (KILN_CACHE_DIR=off, or no HOME)\n");
        return 0;
    }
    std::printf("cache       %s%s\n", ci.dir.c_str(), ci.writable ? "" : " (not writable: nothing new is stored)");
    std::printf("entries     %lld, %.1f MiB of %.1f MiB\n", static_cast<long long>(ci.entries), ci.bytes / 1048576.0,
                ci.limit_bytes / 1048576.0);
    return 0;
}

int main(int argc, char** argv) {
    Args a;
    CommandLine cl(a);
    // CLI11 would answer an unknown command only with "a subcommand is required"; name it.
    auto known = [](const CLI::App* app, const std::string& name) {
        for (const CLI::App* sub : app->get_subcommands([](const CLI::App*) { return true; }))
            if (sub->get_name() == name) return true;
        return false;
    };
    if (argc > 1 && argv[1][0] != '-' && !known(&cl.app, argv[1]))
        misuse(std::string("unknown command '") + argv[1] + "'; use run, bench, export, tune or cache");
    if (argc == 2 && std::string(argv[1]) == "cache") misuse("kiln cache takes info or clear");
    if (argc > 2 && std::string(argv[1]) == "cache" && argv[2][0] != '-' && !known(cl.cache, argv[2]))
        misuse(std::string("kiln cache takes info or clear, not '") + argv[2] + "'");
    try {
        cl.app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) { return cl.app.exit(e); } catch (const CLI::CallForAllHelp& e) {
        return cl.app.exit(e);
    } catch (const CLI::ParseError& e) { misuse(e.what()); }
    cl.finish(a);
    if (a.command == "cache") return cache_command(cl.cache_clear->parsed());
    try {
        if (a.command == "tune")
            return tune_command(
                    TuneCommand{a.model, a.records, a.shapes, a.opt_level, a.threads, a.trials, a.budget_seconds});
        return main_checked(a);
    } catch (const kiln::Error& e) {
        std::fprintf(stderr, "kiln: error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "kiln: error: %s\n", e.what());
        return 1;
    }
}
