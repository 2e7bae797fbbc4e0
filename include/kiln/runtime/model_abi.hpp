#pragma once
// The contract between a library written by graph::export_library and the runtime that loads it: the
// names it exports and what they hold. Both sides include this header, so they cannot drift apart.
// No LLVM here: the runtime is built without it.
#include <cstdint>
#include <string>

namespace kiln::runtime::model_abi {

// Bumped whenever the symbols below or the slot order change; the runtime refuses other versions.
inline constexpr int32_t version = 1;

inline constexpr const char* data_symbol = "kiln_model_data";        // const char[]: the model file
inline constexpr const char* size_symbol = "kiln_model_data_size";   // const int64_t: its size in bytes
inline constexpr const char* abi_symbol = "kiln_model_abi";          // const int32_t: `version`
inline constexpr const char* runtime_symbol = "kiln_model_runtime";  // void*[slot_count], filled by the runtime

// The runtime functions the kernels call, in slot order.
inline constexpr unsigned slot_parallel_for = 0;  // void (*)(void (*)(int32_t, void*), void*, int32_t)
inline constexpr unsigned slot_alloc = 1;         // void* (*)(int64_t)
inline constexpr unsigned slot_free = 2;          // void (*)(void*)
inline constexpr unsigned slot_count = 3;

// The value of ` -<flag>=` in a Target::str() (mtriple, mcpu, mattr): what the kernels were compiled for.
inline std::string target_field(const std::string& target, const std::string& flag) {
    const std::string key = " -" + flag + "=";
    const size_t at = target.find(key);
    if (at == std::string::npos) return {};
    const size_t from = at + key.size();
    return target.substr(from, target.find(' ', from) - from);
}

// Every kernel's entry point, void(void** args, int64_t* sizes), under the index the model file gives it.
inline std::string kernel_symbol(size_t index) { return "kiln_kernel_" + std::to_string(index); }

}  // namespace kiln::runtime::model_abi
