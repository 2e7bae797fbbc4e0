#pragma once
// Saving a compiled model and loading it back, the last step of the TVM lesson's path: a program that
// compiles a model once (graph::compile) can start from the saved file later and skip import, passes,
// lowering and LLVM. The file (kiln/runtime/model_file.hpp) holds the kernels' object code, the order
// of the kernel calls and their arguments, the memory plan and the constants (packed weights included).
// It runs only on the target it was compiled for; loading it elsewhere is an error that says so.
// For a program without LLVM, export the model instead (graph::export_library, kiln/graph/export.hpp).
#include "kiln/graph/compile.hpp"

namespace kiln::graph {

// Writes `exe` to `path`. Fails if a kernel's object code was not kept (executables from
// graph::compile always keep it) or the file cannot be written.
KILN_SEPARABLE void save(const Executable& exe, const std::string& path);

// Loads an executable written by graph::save: links its kernels into the JIT (no compilation) and
// allocates its memory. `threads` > 0 replaces the thread count it was saved with. graph() of the
// result holds only its inputs, outputs and the values the kernels use; groups() is empty.
// The checksum catches damage, not intent: the file holds machine code, so load only files you saved.
KILN_SEPARABLE Executable load_executable(const std::string& path, int threads = 0);

}  // namespace kiln::graph

#if defined(KILN_IMPLEMENTATION) || !defined(KILN_SEPARATE_IMPLEMENTATION)
#include <fstream>
#include <string_view>

namespace kiln::graph {

KILN_SEPARABLE void save(const Executable& exe, const std::string& path) {
    const std::string data = runtime::write_model_file(exe.describe(true));
    std::ofstream f(path, std::ios::binary);
    if (!f) kiln::detail::fail("save: cannot open '", path, "' for writing");
    f.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!f) kiln::detail::fail("save: writing '", path, "' failed");
}

KILN_SEPARABLE Executable load_executable(const std::string& path, int threads) {
    const auto t0 = std::chrono::steady_clock::now();
    std::string data;
    {
        std::ifstream f(path, std::ios::binary | std::ios::ate);
        if (!f) kiln::detail::fail("load_executable: cannot open '", path, "'");
        data.resize(static_cast<size_t>(f.tellg()));
        f.seekg(0);
        if (!f.read(data.data(), static_cast<std::streamsize>(data.size())))
            kiln::detail::fail("load_executable: cannot read '", path, "'");
    }
    const runtime::ModelFileContext ctx{"load_executable", path, "save the executable again with graph::save"};
    const runtime::ModelFile m = runtime::read_model_file(data, ctx, "write one with graph::save");
    if (!m.has_objects)
        kiln::detail::fail(
                "load_executable: '", path,
                "' holds no object code (it is the description inside an exported library); "
                "load the exported library with the runtime (kiln/runtime.h), or save the executable with graph::save");
    const std::string host = jit::resolve(Target{}).str();
    if (m.target != host)
        kiln::detail::fail("load_executable: '", path, "' was compiled for ", m.target, " but this machine is ", host,
                           "; compile the model on this machine (graph::compile) and save it here");

    Executable ex = Executable::from_model_file(m, threads, "load_executable");
    ex.times_.total_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    ex.times_.llvm_ms = ex.times_.total_ms;
    return ex;
}

}  // namespace kiln::graph
#endif  // the implementation
