#pragma once
// `kiln tune`: tunes every kernel of a model within a budget (autotune::tune_tasks over graph::tasks),
// appending to a records file, then compiles the model with the records and compares it with the defaults.
#include <map>
#include <string>
#include <vector>

struct TuneCommand {
    std::string model, records;
    std::map<std::string, std::vector<int64_t>> shapes;
    int opt_level = 3, threads = 0, trials = 0;
    double seconds = 0;
};

int tune_command(const TuneCommand& c);
