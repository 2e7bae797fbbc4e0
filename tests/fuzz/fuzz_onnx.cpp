// An ONNX model from arbitrary bytes: imported, compiled at opt levels 0 and 3, and run on fixed inputs.
// Allowed outcomes: a kiln::Error, or a model that runs. The caches are off, so every input is compiled.
#include <kiln/graph.hpp>
#include <kiln/onnx.hpp>

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    ::setenv("KILN_CACHE_DIR", "off", 1);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const kiln::graph::Graph g =
                kiln::onnx::load_from_bytes(std::string_view(reinterpret_cast<const char*>(data), size), {}, "fuzz");
        for (int level : {0, 3}) {
            kiln::graph::Executable exe = kiln::graph::compile(g, {.opt_level = level, .threads = 1});
            for (size_t i = 0; i < exe.graph().inputs.size(); ++i) {
                const auto& t = exe.graph().type_of(exe.graph().inputs[i]);
                kiln::Buffer b(t.shape, t.dtype);
                std::memset(b.data(), 0x3c, static_cast<size_t>(b.size() * b.dtype().bytes()));
                exe.set_input(i, b);
            }
            exe.run();
        }
    } catch (const kiln::InternalError&) { __builtin_trap(); } catch (const kiln::Error&) {
    }
    kiln::clear_memory_cache();
    return 0;
}
