// The executable file reader (what graph::load_executable and the C runtime's kiln_model_load parse) on
// arbitrary bytes. The checksum at the end is made to match first, so the fuzzer reaches the parser
// behind it instead of stopping at "damaged". Linking the object code inside is not fuzzed: an
// executable file is machine code, trusted as a shared library is.
#include <kiln/runtime/model_file.hpp>

#include <cstdint>
#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string bytes(reinterpret_cast<const char*>(data), size);
    if (bytes.size() >= 8) {
        const uint64_t sum = kiln::runtime::hash64(std::string_view(bytes).substr(0, bytes.size() - 8));
        std::memcpy(bytes.data() + bytes.size() - 8, &sum, 8);
    }
    const kiln::runtime::ModelFileContext ctx{"fuzz", "input", "write it again"};
    try {
        const kiln::runtime::ModelFile m = kiln::runtime::read_model_file(bytes, ctx, "give a kiln executable");
        // Every view the reader returned lies inside the input.
        for (auto& v : m.values) {
            const char* p = v.constant.data();
            if (!v.constant.empty() && (p < bytes.data() || p + v.constant.size() > bytes.data() + bytes.size()))
                __builtin_trap();
        }
    } catch (const kiln::InternalError&) { __builtin_trap(); } catch (const kiln::Error&) {
    }
    return 0;
}
