#pragma once
// What the peer benchmarks share: the thread count of every library, and a table of results that
// prints each kiln case beside its peers as ratios at the end of the run.
#include <kiln/runtime/thread_pool.hpp>

#include <Eigen/Core>
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <map>
#include <string>
#include <vector>

#if KILN_BENCH_HAVE_ONEDNN
#include <omp.h>
#endif

namespace bench {

// Every library runs with the same number of threads: kiln's pool, oneDNN's and Eigen's OpenMP.
// Each benchmark starts with this, and then waits a moment: the library measured just before keeps
// its threads spinning for a while after its last call (OpenMP's wait policy, kiln's pool alike), and
// on two cores a spinning thread would take a core from whoever runs next.
inline void set_threads(int n) {
    kiln::set_num_threads(n);
    Eigen::setNbThreads(n);
#if KILN_BENCH_HAVE_ONEDNN
    omp_set_num_threads(n);
#endif
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
}

// Results by case ("gemm/1024x1024x1024/1t") and library, filled as benchmarks finish.
inline std::map<std::string, std::map<std::string, double>>& results() {
    static std::map<std::string, std::map<std::string, double>> r;
    return r;
}

// Names are <op>/<library>/<shape>/<threads>t; a case is the name without the library word.
inline std::string name_of(const std::string& op, const std::string& lib, const std::string& shape, int threads) {
    return op + "/" + lib + "/" + shape + "/" + std::to_string(threads) + "t";
}

inline void count_flops(benchmark::State& state, double flops) {
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// The console output, plus a note of every case's GFLOP/s for the table at the end.
class TableReporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        for (const auto& run : runs) {
            // With --benchmark_repetitions the median stands for the case; otherwise the single run.
            if (run.error_occurred) continue;
            if (run.run_type == Run::RT_Aggregate && run.aggregate_name != "median") continue;
            if (run.run_type == Run::RT_Iteration && run.repetitions > 1) continue;
            const std::string name = run.benchmark_name();
            // <op>/<lib>/<shape>/<t>t[/real_time]
            std::vector<std::string> parts;
            size_t at = 0;
            for (size_t next; (next = name.find('/', at)) != std::string::npos; at = next + 1)
                parts.push_back(name.substr(at, next - at));
            parts.push_back(name.substr(at));
            if (parts.size() < 4) continue;
            auto it = run.counters.find("GFLOP/s");
            if (it == run.counters.end()) continue;
            results()[parts[0] + "/" + parts[2] + "/" + parts[3]][parts[1]] = it->second.value;
        }
        ConsoleReporter::ReportRuns(runs);
    }
};

inline void print_table() {
    std::printf("\n%-44s %10s %10s %10s %10s %10s\n", "case", "kiln", "onednn", "eigen", "kiln/onednn", "kiln/eigen");
    for (auto& [key, row] : results()) {
        auto get = [&](const char* lib) {
            auto it = row.find(lib);
            return it == row.end() ? 0.0 : it->second;
        };
        double k = get("kiln"), o = get("onednn"), e = get("eigen");
        auto ratio = [](double a, double b) { return b > 0 && a > 0 ? a / b : 0.0; };
        std::printf("%-44s %10.1f %10.1f %10.1f %10.2f %10.2f\n", key.c_str(), k, o, e, ratio(k, o), ratio(k, e));
    }
}

// With --benchmark_format=json or csv, Google Benchmark's own reporter prints that format and nothing else;
// the ratio table belongs to the console output.
inline int main(int argc, char** argv) {
    bool console = true;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg.rfind("--benchmark_format=", 0) == 0 && arg != "--benchmark_format=console") console = false;
    }
    benchmark::Initialize(&argc, argv);
    if (console) {
        TableReporter reporter;
        benchmark::RunSpecifiedBenchmarks(&reporter);
        print_table();
    } else {
        benchmark::RunSpecifiedBenchmarks();
    }
    benchmark::Shutdown();
    return 0;
}

}  // namespace bench
