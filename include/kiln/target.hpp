#pragma once
// Where code goes. The host (this CPU, with every feature it has) by default, or an explicit CPU.
#include <string>
#include <vector>

#include "kiln/codegen/c/toolchain.hpp"
#include "kiln/runtime/device.hpp"

namespace kiln {

struct Target {
    std::string kind = "llvm";  // the backend
    std::string triple{};       // empty: the host's
    std::string cpu{};          // empty: the host's (e.g. znver5)
    std::string features{};     // empty: the host's, as +avx512f,+fma,...
    int vector_bits = 0;        // 0: the widest the features allow

    // GPU targets ("opencl", "cuda"): which device of the kind runs the kernels, and its limits. A limit left
    // 0 is the device's own (kiln::build asks the device), or, where there is no device, the kind's
    // common value: 256 threads and 16 KiB of shared memory per block for OpenCL, 1024 and 48 KiB for CUDA.
    int device = 0;
    int max_threads_per_block = 0;
    int64_t max_shared_memory_per_block = 0;
    int thread_warp_size = 0;

    static Target opencl(int device = 0) { return Target{.kind = "opencl", .device = device}; }
    static Target cuda(int device = 0) { return Target{.kind = "cuda", .device = device}; }
    bool is_gpu() const { return kind == "opencl" || kind == "cuda"; }

    // Backends this build of kiln has, like TVM's Target.list_kinds(). "c": C99 source
    // (kiln/codegen/c/codegen_c.hpp), which kiln::build compiles with the system's C compiler; "opencl" and
    // "cuda": OpenCL C and CUDA C (kiln/codegen/gpu/), for the devices of kiln/runtime/device.hpp.
    static std::vector<std::string> list_kinds() { return {"llvm", "c", "opencl", "cuda"}; }
    // Whether a backend can run here, like TVM's runtime.enabled(kind): a GPU kind when a device of it is present.
    static bool enabled(const std::string& kind) {
        if (auto* api = detail::device_api(kind)) return api->count() > 0;
        return kind == "llvm" || (kind == "c" && !detail::c_compiler().empty());
    }

    // This target with its zero limits filled in: from the device when there is one, else the kind's defaults.
    Target with_device_limits() const {
        Target t = *this;
        if (!is_gpu()) return t;
        detail::DeviceProps p;
        if (auto* api = detail::device_api(kind); api && device >= 0 && device < api->count()) p = api->props(device);
        const bool cl = kind == "opencl";
        if (t.max_threads_per_block == 0)
            t.max_threads_per_block = p.max_threads_per_block ? p.max_threads_per_block : cl ? 256 : 1024;
        if (t.max_shared_memory_per_block == 0)
            t.max_shared_memory_per_block = p.max_shared_memory_per_block ? p.max_shared_memory_per_block
                                            : cl                          ? 16384
                                                                          : 49152;
        if (t.thread_warp_size == 0) t.thread_warp_size = p.name.empty() ? (cl ? 1 : 32) : p.warp_size;
        return t;
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
        if (is_gpu())
            return kind + " -device=" + std::to_string(device) +
                   " -max-threads-per-block=" + std::to_string(max_threads_per_block) +
                   " -max-shared-memory=" + std::to_string(max_shared_memory_per_block) +
                   " -warp-size=" + std::to_string(thread_warp_size);
        return kind + " -mtriple=" + triple + " -mcpu=" + cpu + " -mattr=" + features +
               " -vector-bits=" + std::to_string(vector_bits);
    }
};

}  // namespace kiln
