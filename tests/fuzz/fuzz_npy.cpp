// The .npy reader on arbitrary bytes: a Buffer or a kiln::Error, never more memory than the bytes justify.
#include <kiln/runtime/npy.hpp>

#include <cstdint>
#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const kiln::Buffer b =
                kiln::npy::load_from_bytes(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
        // What was read is all there: touch every byte.
        volatile uint8_t sink = 0;
        const auto* p = static_cast<const uint8_t*>(b.data());
        for (int64_t i = 0; i < b.size() * b.dtype().bytes(); ++i) sink = sink ^ p[i];
    } catch (const kiln::InternalError&) { __builtin_trap(); } catch (const kiln::Error&) {
    }
    return 0;
}
