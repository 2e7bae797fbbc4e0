#pragma once
// Files for the graph tests: the models of make_models.py and the programs the tests run (paths the build
// compiles in, which the environment variable of the same name overrides), temporary paths of this
// process, and whole files read and written as bytes.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace test {

// KILN_GRAPH_MODELS, KILN_CLI or KILN_C_API_CHECK: from the environment, else as tests/CMakeLists.txt set it.
inline std::string path_setting(const char* name) {
    if (const char* v = std::getenv(name)) return v;
    const std::string key = name;
    const char* built = key == "KILN_GRAPH_MODELS"  ? KILN_TEST_GRAPH_MODELS
                        : key == "KILN_CLI"         ? KILN_TEST_CLI
                        : key == "KILN_C_API_CHECK" ? KILN_TEST_C_API_CHECK
                                                    : "";
    REQUIRE_MESSAGE(*built, name, " is not known to this build; set it in the environment");
    return built;
}

inline std::string model_dir(const std::string& name) { return path_setting("KILN_GRAPH_MODELS") + "/" + name; }

inline std::string temp_path(const std::string& stem, const std::string& ext) {
    return (std::filesystem::temp_directory_path() / (stem + "_" + std::to_string(::getpid()) + ext)).string();
}

inline std::string read_all(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

inline void write_all(const std::string& path, const std::string& data) {
    std::ofstream(path, std::ios::binary) << data;
}

}  // namespace test
