#pragma once
// The system's C toolchain, which the C backend compiles kernels with and export_library links
// libraries with: finding it, quoting paths for its command line, and running it. No LLVM here.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace kiln::detail {

inline bool program_on_path(const std::string& program) {
    const char* path = std::getenv("PATH");
    const std::string dirs = path ? path : "/usr/bin:/bin";
    for (size_t from = 0; from <= dirs.size();) {
        size_t to = dirs.find(':', from);
        if (to == std::string::npos) to = dirs.size();
        std::error_code ec;
        if (to > from && std::filesystem::exists(std::filesystem::path(dirs.substr(from, to - from)) / program, ec))
            return true;
        from = to + 1;
    }
    return false;
}

// The C compiler driver: $KILN_CC, else `cc`. Empty when there is none.
inline std::string c_compiler() {
    if (const char* env = std::getenv("KILN_CC"); env && *env) return env;
    return program_on_path("cc") ? "cc" : "";
}

inline std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// Runs `command` through the shell; returns what it printed (both streams) and sets its exit status.
inline std::string run_command(const std::string& command, int& status) {
    std::string output;
    FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
    if (!pipe) {
        status = -1;
        return "cannot start a shell";
    }
    char buf[512];
    while (size_t n = std::fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
    status = ::pclose(pipe);
    return output;
}

}  // namespace kiln::detail
