#pragma once
// Tuning records: an append-only file of JSON lines, one per measured candidate, readable by a person and
// by the next run, which continues where the last one stopped. A line:
//
//   {"workload":"3f0c9d2e8a1b7c44","task":"matmul","target":"znver5 ...","threads":1,
//    "config":{"tile_i":[32,4,8],"unroll":[1]},"seconds":[0.00123,0.00121,0.00122],"error":""}
//
// A candidate that failed (no build, a wrong result, a time-out) has no seconds and says why in "error".
// A damaged line (a crash mid-write, an edit) is reported with its line number and skipped.
#include <algorithm>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "kiln/error.hpp"
#include "kiln/schedule/knobs.hpp"

namespace kiln::autotune {

// The middle value (the mean of the two middle ones for an even count); 0 for none.
inline double median_of(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

struct Record {
    std::string workload;  // Task::workload_key()
    std::string task;      // Task::name
    std::string target;    // the machine it was measured on (tuning_target())
    int threads = 1;
    KnobValues config;            // every knob's value
    std::vector<double> seconds;  // per call, one entry per measurement
    std::string error;            // why there are no seconds

    bool ok() const { return error.empty() && !seconds.empty(); }
    double median() const { return median_of(seconds); }
};

inline std::string to_json_line(const Record& r) {
    nlohmann::json j;
    j["workload"] = r.workload;
    j["task"] = r.task;
    j["target"] = r.target;
    j["threads"] = r.threads;
    j["config"] = r.config;
    j["seconds"] = r.seconds;
    j["error"] = r.error;
    return j.dump();
}

// The record on one line, or the reason it is not one.
inline std::variant<Record, std::string> parse_record(const std::string& line) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return std::string("not JSON");
    if (!j.is_object()) return std::string("not a JSON object");
    for (const char* field : {"workload", "target", "config", "seconds"})
        if (!j.contains(field)) return std::string("no \"") + field + "\" field";
    try {
        Record r;
        r.workload = j.at("workload").get<std::string>();
        r.task = j.value("task", std::string());
        r.target = j.at("target").get<std::string>();
        r.threads = j.value("threads", 1);
        r.config = j.at("config").get<KnobValues>();
        r.seconds = j.at("seconds").get<std::vector<double>>();
        r.error = j.value("error", std::string());
        for (double s : r.seconds)
            if (!(s > 0)) return std::string("a time that is not a positive number");
        return r;
    } catch (const nlohmann::json::exception& e) { return std::string("a field of the wrong type (") + e.what() + ")"; }
}

struct RecordFile {
    std::vector<Record> records;
    std::vector<std::string> damaged;  // "path:line: reason", one per line skipped
};

// Every record of `path`; a file that does not exist yet has none.
inline RecordFile load_records(const std::string& path) {
    RecordFile out;
    std::ifstream in(path);
    if (!in) return out;
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        auto parsed = parse_record(line);
        if (auto* r = std::get_if<Record>(&parsed))
            out.records.push_back(std::move(*r));
        else
            out.damaged.push_back(path + ":" + std::to_string(number) + ": " + std::get<std::string>(parsed) +
                                  "; the line is skipped");
    }
    return out;
}

// Adds one line. Each line is written whole with one call, so a crash leaves at most one damaged line.
inline void append_record(const std::string& path, const Record& r) {
    static std::mutex m;
    std::lock_guard<std::mutex> lock(m);
    std::ofstream out(path, std::ios::app);
    out << to_json_line(r) + "\n" << std::flush;
    if (!out)
        kiln::detail::fail("autotune: cannot append to the records file '", path,
                           "'; check that its folder exists and is writable");
}

// The fastest configuration of `workload` on `target`, preferring those measured with `threads`. A
// configuration measured more than once counts at its slowest median (tune's confirmation round measures
// the fastest again), and the record returned is that measurement.
inline std::optional<Record> best_record(const std::vector<Record>& records, const std::string& workload,
                                         const std::string& target, int threads) {
    std::map<std::pair<bool, KnobValues>, const Record*> slowest;  // (other thread count, config) -> record
    for (const Record& r : records) {
        if (!r.ok() || r.workload != workload || r.target != target) continue;
        const Record*& s = slowest[{r.threads != threads, r.config}];
        if (!s || r.median() > s->median()) s = &r;
    }
    const Record* best = nullptr;
    bool best_other = true;
    for (const auto& [key, r] : slowest)
        if (!best || (key.first != best_other ? !key.first : r->median() < best->median())) {
            best = r;
            best_other = key.first;
        }
    return best ? std::optional<Record>(*best) : std::nullopt;
}

}  // namespace kiln::autotune
