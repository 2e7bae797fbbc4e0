#pragma once
// What kiln asks of a GPU runtime, as TVM's DeviceAPI: count and describe devices, move bytes, build a
// program from source and launch its kernels. OpenCL (runtime/opencl.hpp) and CUDA (runtime/cuda.hpp)
// implement it over libraries loaded with dlopen when first used, so nothing here needs a GPU, a GPU
// driver or a toolkit to build. No LLVM here.
#include <dlfcn.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/error.hpp"

namespace kiln::detail {

struct DeviceProps {
    std::string name;
    int max_threads_per_block = 0;
    int64_t max_shared_memory_per_block = 0;  // bytes
    int warp_size = 1;                        // CUDA's warp; 1 where the device has no fixed one
};

// One argument of a launch: the bytes of its value (a buffer's handle, or a size) and how many.
struct LaunchArg {
    const void* value;
    size_t bytes;
};

class DeviceAPI {
public:
    virtual ~DeviceAPI() = default;
    // Devices present; 0 where the runtime library or a device is missing (unavailable() says which).
    virtual int count() = 0;
    virtual std::string unavailable() = 0;
    virtual DeviceProps props(int device) = 0;
    virtual void* alloc(int device, size_t bytes) = 0;
    virtual void release(int device, void* handle) = 0;
    virtual void copy_to_device(int device, void* handle, const void* host, size_t bytes) = 0;
    virtual void copy_to_host(int device, void* host, const void* handle, size_t bytes) = 0;
    // A program built from the language's source for `device`: what launch() takes.
    virtual std::shared_ptr<void> load(int device, const std::string& source, const std::string& what) = 0;
    // Queues `kernel` of a loaded program; runs after what was queued before it on the device.
    virtual void launch(int device, void* program, const std::string& kernel, const int64_t grid[3],
                        const int64_t block[3], const std::vector<LaunchArg>& args) = 0;
    virtual void synchronize(int device) = 0;
};

// A shared library's function, looked up once: for the runtimes kiln loads rather than links.
class SharedLibrary {
public:
    // The first of `names` that loads; why none did otherwise.
    explicit SharedLibrary(const std::vector<const char*>& names) {
        for (const char* n : names)
            if ((handle_ = ::dlopen(n, RTLD_NOW | RTLD_LOCAL))) return;
        for (const char* n : names) tried_ += (tried_.empty() ? "" : ", ") + std::string(n);
    }
    SharedLibrary(const SharedLibrary&) = delete;
    SharedLibrary& operator=(const SharedLibrary&) = delete;
    // Left loaded for the life of the process: GPU runtimes keep threads of their own running in their code.
    ~SharedLibrary() = default;
    bool loaded() const { return handle_ != nullptr; }
    const std::string& tried() const { return tried_; }
    template <typename F> F symbol(const char* name) const {
        void* p = handle_ ? ::dlsym(handle_, name) : nullptr;
        if (!p) fail("device runtime: the loaded library has no function '", name, "'; it is too old for kiln");
        return reinterpret_cast<F>(p);
    }

private:
    void* handle_ = nullptr;
    std::string tried_;
};

}  // namespace kiln::detail
