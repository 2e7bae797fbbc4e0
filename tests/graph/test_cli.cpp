// The `kiln` command on a model of tests/graph/make_models.py: `kiln run` with an input file writes the
// output ONNX Runtime gave; `kiln bench` reports compile time and latency; misuse exits with a message.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <kiln/runtime/npy.hpp>

#include "graph/files.hpp"

namespace {

using test::model_dir;

struct Result {
    int code;
    std::string out;
};

// `env`: variable assignments put before the command ("NAME=value ").
Result run_cli(const std::string& args, const std::string& env = "") {
    const std::string cli = test::path_setting("KILN_CLI");
    const auto log = std::filesystem::temp_directory_path() / ("kiln_cli_test_" + std::to_string(::getpid()) + ".log");
    const int status = std::system((env + cli + " " + args + " > " + log.string() + " 2>&1").c_str());
    std::stringstream ss;
    ss << std::ifstream(log).rdbuf();
    std::filesystem::remove(log);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ss.str()};
}

// `--output-dir out` of a model with one output: the file written there against ONNX Runtime's output.
void check_single_output(const std::filesystem::path& out, const std::string& dir) {
    std::vector<std::filesystem::path> files;
    for (auto& e : std::filesystem::directory_iterator(out)) files.push_back(e.path());
    REQUIRE(files.size() == 1);
    const kiln::Buffer got = kiln::npy::load(files[0].string()), want = kiln::npy::load(dir + "/output_0.npy");
    REQUIRE(got.shape() == want.shape());
    double worst = 0;
    for (int64_t i = 0; i < want.size(); ++i) {
        const double a = static_cast<const float*>(got.data())[i], b = static_cast<const float*>(want.data())[i];
        worst = std::max(worst, std::abs(a - b) / std::max(1.0, std::abs(b)));
    }
    CHECK(worst < 1e-4);
}

}  // namespace

TEST_CASE("kiln run: writes the outputs, which match ONNX Runtime's") {
    const std::string dir = model_dir("model_mobilenetv2_blocks");
    const auto out = std::filesystem::temp_directory_path() / ("kiln_cli_out_" + std::to_string(::getpid()));
    const auto r = run_cli("run " + dir + "/model.onnx --input input=" + dir + "/input_0.npy --output-dir " +
                           out.string() + " --threads 2 --profile");
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("compile") != std::string::npos);
    CHECK(r.out.find("ms/run") != std::string::npos);  // the profile table
    check_single_output(out, dir);
    std::filesystem::remove_all(out);
}

TEST_CASE("kiln bench: compile time and a median latency, and --dump-graph writes dot") {
    const std::string dir = model_dir("model_transformer_encoder");
    const auto dot = std::filesystem::temp_directory_path() / ("kiln_cli_" + std::to_string(::getpid()) + ".dot");
    const auto r = run_cli("bench " + dir + "/model.onnx --runs 3 --warmup 1 --opt-level 2 --threads 1 --dump-graph " +
                           dot.string());
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("latency     median") != std::string::npos);
    CHECK(r.out.find("input       input f32") != std::string::npos);
    std::stringstream ss;
    ss << std::ifstream(dot).rdbuf();
    CHECK(ss.str().rfind("digraph kiln {", 0) == 0);
    CHECK(ss.str().find("subgraph cluster_0") != std::string::npos);
    std::filesystem::remove(dot);
}

TEST_CASE("kiln run --save, then kiln run on the saved file: no compilation, the same output") {
    const std::string dir = model_dir("model_mobilenetv2_blocks");
    const auto saved =
            std::filesystem::temp_directory_path() / ("kiln_cli_saved_" + std::to_string(::getpid()) + ".kiln");
    const auto out = std::filesystem::temp_directory_path() / ("kiln_cli_saved_out_" + std::to_string(::getpid()));
    auto r = run_cli("run " + dir + "/model.onnx --threads 1 --save " + saved.string());
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("saved       " + saved.string()) != std::string::npos);
    r = run_cli("run " + saved.string() + " --input input=" + dir + "/input_0.npy --output-dir " + out.string());
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("(linked, not compiled)") != std::string::npos);
    CHECK(r.out.find("compile     ") == std::string::npos);
    check_single_output(out, dir);
    r = run_cli("bench " + saved.string() + " --shape input=1,2,3");
    CHECK(r.code == 2);
    CHECK(r.out.find("kiln: --shape does not apply to " + saved.string() +
                     ": it is a saved executable, compiled already; give the ONNX model instead") == 0);
    std::filesystem::remove(saved);
    std::filesystem::remove_all(out);
}

TEST_CASE("kiln export, then kiln run on the library: the runtime gives ONNX Runtime's output") {
    const std::string dir = model_dir("model_mobilenetv2_blocks");
    const auto library =
            std::filesystem::temp_directory_path() / ("kiln_cli_export_" + std::to_string(::getpid()) + ".so");
    const auto out = std::filesystem::temp_directory_path() / ("kiln_cli_export_out_" + std::to_string(::getpid()));
    auto r = run_cli("export " + dir + "/model.onnx -o " + library.string() + " --threads 1");
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("exported    " + library.string()) != std::string::npos);
    r = run_cli("run " + library.string() + " --input input=" + dir + "/input_0.npy --output-dir " + out.string());
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("(the runtime: no compiler, no LLVM)") != std::string::npos);
    check_single_output(out, dir);
    r = run_cli("bench " + library.string() + " --profile");
    CHECK(r.code == 2);
    CHECK(r.out.find("kiln: --profile needs the JIT; an exported library runs its kernels without timing them (profile "
                     "the ONNX model instead)") == 0);
    r = run_cli("export " + library.string() + " -o " + library.string());
    CHECK(r.code == 2);
    CHECK(r.out.find("kiln: " + library.string() + " is exported already; give the ONNX model or a saved executable") ==
          0);
    r = run_cli("export " + dir + "/model.onnx");
    CHECK(r.code == 2);
    CHECK(r.out.find("kiln: --output is required") == 0);
    r = run_cli("export " + dir + "/model.onnx --target cuda -o " + out.string());
    CHECK(r.code == 2);
    CHECK(r.out.find("kiln: --target: cuda not in {llvm,c}") == 0);
    r = run_cli("export " + dir + "/model.onnx --target c -o " + out.string());
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(std::filesystem::exists(out / "model.c"));
    CHECK(std::filesystem::exists(out / "Makefile"));
    std::filesystem::remove(library);
    std::filesystem::remove_all(out);
}

TEST_CASE("kiln bench --rounds-on-stdin: one round per line read, then the median of them all") {
    const std::string dir = model_dir("model_transformer_encoder");
    const auto lines = std::filesystem::temp_directory_path() / ("kiln_cli_rounds_" + std::to_string(::getpid()));
    std::ofstream(lines) << "\n\n\n";
    const auto r = run_cli("bench " + dir + "/model.onnx --runs 2 --warmup 1 --threads 1 --rounds-on-stdin < " +
                           lines.string());
    std::filesystem::remove(lines);
    INFO(r.out);
    REQUIRE(r.code == 0);
    size_t rounds = 0;
    for (size_t at = r.out.find("round       median "); at != std::string::npos;
         at = r.out.find("round       median ", at + 1))
        ++rounds;
    CHECK(rounds == 3);
    CHECK(r.out.find("over 6 runs (1 warm-up)") != std::string::npos);
}

TEST_CASE(
        "kiln cache: a second compile links the whole executable, a compile that dumps every kernel, from the disk "
        "cache, and info and clear") {
    const std::string dir = model_dir("model_transformer_encoder");
    const auto cache = std::filesystem::temp_directory_path() / ("kiln_cli_cache_" + std::to_string(::getpid()));
    std::filesystem::remove_all(cache);
    const std::string env = "KILN_CACHE_DIR=" + cache.string() + " ";
    const std::string bench = "bench " + dir + "/model.onnx --runs 1 --warmup 0 --threads 1";
    auto r = run_cli(bench, env);
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("; 0 of ") != std::string::npos);
    r = run_cli(bench, env);
    REQUIRE(r.code == 0);
    CHECK(r.out.find(" + the whole executable from the disk cache ") != std::string::npos);
    const auto dot = std::filesystem::temp_directory_path() / ("kiln_cli_cache_" + std::to_string(::getpid()) + ".dot");
    r = run_cli(bench + " --dump-graph " + dot.string(), env);
    std::filesystem::remove(dot);
    REQUIRE(r.code == 0);
    const auto at = r.out.find(" kernels from the disk cache");
    REQUIRE(at != std::string::npos);
    const auto line = r.out.substr(r.out.rfind("; ", at) + 2, at - r.out.rfind("; ", at) - 2);  // "N of N"
    const auto of = line.find(" of ");
    REQUIRE(of != std::string::npos);
    CHECK(line.substr(0, of) == line.substr(of + 4));
    CHECK(line.substr(0, of) != "0");
    r = run_cli("cache info", env);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("cache       " + cache.string()) == 0);
    CHECK(r.out.find("entries     0,") == std::string::npos);
    r = run_cli("cache clear", env);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("cleared     ") == 0);
    r = run_cli("cache info", env);
    CHECK(r.out.find("entries     0, 0.0 MiB of 1024.0 MiB") != std::string::npos);
    r = run_cli("cache info", "KILN_CACHE_DIR=off ");
    CHECK(r.out.find("cache       off") == 0);
    std::filesystem::remove_all(cache);
}

TEST_CASE("kiln tune: tunes a model's kernels into records, which kiln run then compiles in") {
    const std::string dir = model_dir("model_transformer_encoder");
    const auto records =
            std::filesystem::temp_directory_path() / ("kiln_cli_records_" + std::to_string(::getpid()) + ".jsonl");
    auto r = run_cli("tune " + dir + "/model.onnx --records " + records.string() + " --trials 24 --threads 1");
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(r.out.find(" distinct, ") != std::string::npos);
    CHECK(r.out.find("with the records against") != std::string::npos);
    CHECK(r.out.find("outputs     differ from the defaults' by at most") != std::string::npos);
    // A second run resumes: it measures 8 more and finds the first run's records.
    r = run_cli("tune " + dir + "/model.onnx --records " + records.string() + " --trials 8 --threads 1");
    REQUIRE(r.code == 0);
    std::ifstream in(records);
    int lines = 0;
    for (std::string l; std::getline(in, l);) ++lines;
    CHECK(lines >= 32);
    // kiln run with the records matches ONNX Runtime, as without them.
    const auto out = std::filesystem::temp_directory_path() / ("kiln_cli_tuned_" + std::to_string(::getpid()));
    r = run_cli("run " + dir + "/model.onnx --threads 1 --records " + records.string() + " --input input=" + dir +
                "/input_0.npy --output-dir " + out.string());
    REQUIRE(r.code == 0);
    CHECK(r.out.find("kernels use a tuned schedule") != std::string::npos);
    check_single_output(out, dir);
    std::filesystem::remove_all(out);
    std::filesystem::remove(records);
    std::filesystem::remove(records.string() + ".model.json");
}

TEST_CASE("kiln --help: each subcommand lists its own options") {
    auto r = run_cli("--help");
    CHECK(r.code == 0);
    CHECK(r.out.find("Subcommands:") != std::string::npos);
    r = run_cli("bench --help");
    CHECK(r.code == 0);
    CHECK(r.out.find("--rounds-on-stdin") != std::string::npos);
    CHECK(r.out.find("--output-dir") == std::string::npos);  // kiln run's
    r = run_cli("export --help");
    CHECK(r.code == 0);
    CHECK(r.out.find("-o,--output") != std::string::npos);
}

TEST_CASE("kiln errors: misuse exits non-zero with a message") {
    // Command lines that do not parse or ask for something impossible: exit 2 and a message first.
    const std::pair<const char*, const char*> usage[] = {
            {"compile x.onnx", "kiln: unknown command 'compile'; use run, bench, export, tune or cache"},
            {"tune x.onnx --records r.jsonl", "kiln: kiln tune needs a budget: --budget 10m or --trials N"},
            {"tune x.onnx --records r.jsonl --budget 10x",
             "kiln: --budget takes a positive duration such as 90s, 10m or 1h, not '10x'"},
            {"tune x.onnx --trials 5", "kiln: --records is required"},
            {"cache prune", "kiln: kiln cache takes info or clear, not 'prune'"},
            {"run x.onnx --threads two", "kiln: --threads: takes a whole number, not 'two'"},
            {"bench x.onnx --runs 0", "kiln: --runs: must be at least 1, not 0"},
            {"run x.onnx --opt-level 4", "kiln: --opt-level: must be from 0 to 3, not 4"},
            {"run x.onnx --shape input=1,three",
             "kiln: --shape input=1,three: dimensions are positive whole numbers, not 'three'"},
            {"run x.onnx --rounds-on-stdin", "kiln: The following argument was not expected: --rounds-on-stdin"},
    };
    for (const auto& [args, message] : usage) {
        const auto r = run_cli(args);
        CAPTURE(args);
        CHECK(r.code == 2);
        CHECK(r.out.find(message) == 0);
    }
    auto r = run_cli("run " + model_dir("model_transformer_encoder") + "/model.onnx --records /nonexistent/r.jsonl");
    CHECK(r.code == 1);
    CHECK(r.out.find("kiln: error: graph::compile: cannot read the records file '/nonexistent/r.jsonl'; give the file "
                     "`kiln tune` (or autotune::tune) wrote, or leave records empty for the default schedules") !=
          std::string::npos);
    r = run_cli("bench " + model_dir("model_transformer_encoder") +
                "/model.onnx --runs 1 --rounds-on-stdin < /dev/null");
    CHECK(r.code == 1);
    CHECK(r.out.find("kiln: error: kiln bench --rounds-on-stdin: standard input ended before the first round; send one "
                     "line per round") != std::string::npos);
    r = run_cli("run /nonexistent/model.onnx");
    CHECK(r.code == 1);
    CHECK(r.out == "kiln: error: ONNX model '/nonexistent/model.onnx': cannot open the file\n");
    r = run_cli("run " + model_dir("model_resnet18") + "/model.onnx --input image=x.npy --opt-level 0");
    CHECK(r.code == 1);
    CHECK(r.out.find("kiln: error: --input image=x.npy: the model has no input 'image'") != std::string::npos);
}
