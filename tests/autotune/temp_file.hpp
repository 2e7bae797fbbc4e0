#pragma once
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace test {

// A file of the test's own under the temporary directory, removed with its model afterwards.
struct TempFile {
    std::string path;
    explicit TempFile(const std::string& name)
            : path((std::filesystem::temp_directory_path() / ("kiln_tune_" + name + "_" + std::to_string(::getpid())))
                           .string()) {
        remove();
    }
    ~TempFile() { remove(); }
    void remove() const {
        std::error_code ec;
        std::filesystem::remove(path, ec);
        std::filesystem::remove(path + ".model.json", ec);
    }
    std::vector<std::string> lines() const {
        std::ifstream in(path);
        std::vector<std::string> out;
        for (std::string l; std::getline(in, l);) out.push_back(l);
        return out;
    }
};

}  // namespace test
