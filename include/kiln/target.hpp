#pragma once
// Where code goes. The host (this CPU, with every feature it has) by default, or an explicit CPU.
#include <string>
#include <vector>

namespace kiln {

struct Target {
    std::string kind = "llvm";  // the backend
    std::string triple;         // empty: the host's
    std::string cpu;            // empty: the host's (e.g. znver5)
    std::string features;       // empty: the host's, as +avx512f,+fma,...
    int vector_bits = 0;        // 0: the widest the features allow

    // Backends this build of kiln has, like TVM's Target.list_kinds().
    static std::vector<std::string> list_kinds() { return {"llvm"}; }
    // Whether a backend can run here, like TVM's runtime.enabled(kind).
    static bool enabled(const std::string& kind) { return kind == "llvm"; }

    std::string str() const {
        return kind + " -mtriple=" + triple + " -mcpu=" + cpu + " -mattr=" + features + " -vector-bits=" + std::to_string(vector_bits);
    }
};

}  // namespace kiln
