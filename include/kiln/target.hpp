#pragma once
// Where code goes. The host (this CPU, with every feature it has) by default, or an explicit CPU.
#include <string>
#include <vector>

#include "kiln/codegen/c/toolchain.hpp"

namespace kiln {

struct Target {
    std::string kind = "llvm";  // the backend
    std::string triple{};       // empty: the host's
    std::string cpu{};          // empty: the host's (e.g. znver5)
    std::string features{};     // empty: the host's, as +avx512f,+fma,...
    int vector_bits = 0;        // 0: the widest the features allow

    // Backends this build of kiln has, like TVM's Target.list_kinds(). "c": C99 source
    // (kiln/codegen/c/codegen_c.hpp), which kiln::build compiles with the system's C compiler.
    static std::vector<std::string> list_kinds() { return {"llvm", "c"}; }
    // Whether a backend can run here, like TVM's runtime.enabled(kind).
    static bool enabled(const std::string& kind) {
        return kind == "llvm" || (kind == "c" && !detail::c_compiler().empty());
    }

    // The SIMD width this target computes with: vector_bits when set, else the widest this CPU has.
    // Schedules (kiln::nn) use it without asking LLVM, so they stay out of the backend headers.
    int simd_bits() const {
        if (vector_bits > 0) return vector_bits;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        if (cpu.empty() || cpu == "native") {
            if (__builtin_cpu_supports("avx512f")) return 512;
            if (__builtin_cpu_supports("avx2")) return 256;
        }
#endif
        return 128;
    }

    std::string str() const {
        return kind + " -mtriple=" + triple + " -mcpu=" + cpu + " -mattr=" + features +
               " -vector-bits=" + std::to_string(vector_bits);
    }
};

}  // namespace kiln
