#pragma once
// kiln::build for Target{.kind = "c"}: the kernel printed as C99 (codegen_c.hpp), compiled by the system's
// C compiler ($KILN_CC, else cc) into a shared object of its own and loaded with dlopen, so it runs and is
// checked exactly like a JIT kernel. OpenMP runs its parallel loops where the compiler has it.
#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>

#include "kiln/codegen/c/codegen_c.hpp"
#include "kiln/codegen/c/toolchain.hpp"
#include "kiln/jit/kernel.hpp"
#include "kiln/target.hpp"

namespace kiln::detail {

// The flags C kernels compile with: this CPU's instructions, and OpenMP when the compiler has it. The
// optimisation level (BuildOptions::opt_level) is added per kernel.
inline const std::string& c_flags(const std::string& cc) {
    static std::once_flag once;
    static std::string flags;
    std::call_once(once, [&] {
        flags = "-std=c99 -march=native -fPIC -shared";
        int status = 0;
        run_command(cc + " -fopenmp -x c -E - < /dev/null > /dev/null", status);
        if (status == 0) flags += " -fopenmp";
    });
    return flags;
}

// An OpenMP runtime keeps worker threads that wait inside its own code after a parallel loop. Closing the last
// kernel that needed it would unmap that code under them (a crash moments later, in a thread kiln does not own),
// so once a kernel has loaded the runtime it stays loaded for the life of the process.
inline void keep_openmp_runtime_loaded() {
    for (const char* runtime : {"libgomp.so.1", "libomp.so", "libomp.so.5", "libiomp5.so"})
        if (void* h = ::dlopen(runtime, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE)) ::dlclose(h);
}

inline Kernel build_c(const LoweredFunc& f, const BuildOptions& opt) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string cc = c_compiler();
    if (cc.empty())
        fail("build: target 'c' needs a C compiler and there is no `cc`; install one (apt-get install gcc) or name it "
             "in $KILN_CC");
    auto compiled = std::make_shared<Kernel::Compiled>();
    compiled->loop_ir = to_string(f);
    compiled->symbol = "kiln_" + f.name;
    compiled->source = codegen::emit_c(f, compiled->symbol);

    namespace fs = std::filesystem;
    static std::atomic<int> serial{0};
    std::error_code ec;
    const fs::path stem =
            fs::temp_directory_path(ec) / ("kiln_c_" + std::to_string(::getpid()) + "_" + std::to_string(serial++));
    const std::string source = stem.string() + ".c", library = stem.string() + ".so";
    {
        std::ofstream out(source);
        out << compiled->source;
        if (!out) fail("build: cannot write the C source of '", f.name, "' to '", source, "'");
    }
    int status = 0;
    const std::string flags = c_flags(cc) + " -O" + std::to_string(opt.opt_level) +
                              (opt.fp_contract ? " -ffp-contract=fast" : " -ffp-contract=off");
    const std::string command = cc + " " + flags + " -o " + shell_quote(library) + " " + shell_quote(source) + " -lm";
    const std::string output = run_command(command, status);
    fs::remove(source, ec);
    if (status != 0) {
        fs::remove(library, ec);
        fail("build: the C compiler rejected kernel '", f.name, "' (", command, "):\n", output,
             "report this as a kiln bug, with the kernel's schedule");
    }
    // The object stays mapped after the file is gone, until the last copy of the kernel closes it.
    void* handle = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
    fs::remove(library, ec);
    if (!handle) fail("build: cannot load the compiled C kernel '", f.name, "': ", ::dlerror());
    compiled->fn = reinterpret_cast<void (*)(void**, int64_t*)>(::dlsym(handle, compiled->symbol.c_str()));
    if (!compiled->fn) {
        ::dlclose(handle);
        fail("build: the compiled C kernel has no symbol '", compiled->symbol, "'");
    }
    keep_openmp_runtime_loaded();
    compiled->code = std::shared_ptr<void>(handle, [](void* h) { ::dlclose(h); });
    compiled->target = "c " + cc + " " + flags;
    compiled->finish(f, t0);
    return Kernel(compiled);
}

}  // namespace kiln::detail
