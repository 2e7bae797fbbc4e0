#pragma once
// Files for the graph tests: the models of make_models.py (KILN_GRAPH_MODELS, set by ctest), temporary
// paths of this process, and whole files read and written as bytes.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace test {

inline std::string model_dir(const std::string& name) {
    const char* d = std::getenv("KILN_GRAPH_MODELS");
    REQUIRE_MESSAGE(d, "KILN_GRAPH_MODELS is not set; run through ctest");
    return std::string(d) + "/" + name;
}

inline std::string temp_path(const std::string& stem, const std::string& ext) {
    return (std::filesystem::temp_directory_path() / (stem + "_" + std::to_string(::getpid()) + ext)).string();
}

inline std::string read_all(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

inline void write_all(const std::string& path, const std::string& data) { std::ofstream(path, std::ios::binary) << data; }

}  // namespace test
