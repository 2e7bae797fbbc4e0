#pragma once
// The OpenCL runtime behind Target::opencl(): devices of every platform the ICD loader (libOpenCL.so.1,
// Debian's ocl-icd) finds, in platform order; one context and one in-order queue per device. On a machine
// without a GPU, PoCL (pocl-opencl-icd) runs OpenCL on the CPU, which is how kiln's tests execute it.
// The few declarations of the OpenCL API kiln uses are written out here (their values are the Khronos
// ABI), so neither the headers nor the library are needed to build.
#include <mutex>
#include <unordered_map>

#include "kiln/runtime/device_api.hpp"

namespace kiln::detail {

class OpenCLAPI final : public DeviceAPI {
public:
    // Never destroyed: kernels in kiln's caches release their programs through it until the process ends.
    static OpenCLAPI& get() {
        static OpenCLAPI* api = new OpenCLAPI;
        return *api;
    }

    int count() override { return static_cast<int>(devices_.size()); }
    std::string unavailable() override { return why_; }

    DeviceProps props(int device) override { return at(device).props; }

    void* alloc(int device, size_t bytes) override {
        int err = 0;
        void* mem = CreateBuffer(at(device).context, kMemReadWrite, std::max<size_t>(bytes, 1), nullptr, &err);
        check(err, "allocating " + std::to_string(bytes) + " bytes");
        return mem;
    }
    void release(int, void* handle) override {
        if (handle) ReleaseMemObject(handle);
    }
    void copy_to_device(int device, void* handle, const void* host, size_t bytes) override {
        if (bytes)
            check(EnqueueWriteBuffer(at(device).queue, handle, 1, 0, bytes, host, 0, nullptr, nullptr),
                  "copying to the device");
    }
    void copy_to_host(int device, void* host, const void* handle, size_t bytes) override {
        if (bytes)
            check(EnqueueReadBuffer(at(device).queue, const_cast<void*>(handle), 1, 0, bytes, host, 0, nullptr,
                                    nullptr),
                  "copying from the device");
    }

    std::shared_ptr<void> load(int device, const std::string& source, const std::string& what) override {
        Dev& d = at(device);
        const char* text = source.c_str();
        const size_t length = source.size();
        int err = 0;
        void* program = CreateProgramWithSource(d.context, 1, &text, &length, &err);
        check(err, "creating the program of " + what);
        auto owned = std::shared_ptr<void>(program, [this](void* p) {
            forget(p);
            ReleaseProgram(p);
        });
        if (BuildProgram(program, 1, &d.id, "-cl-std=CL1.2", nullptr, nullptr) != 0) {
            size_t size = 0;
            GetProgramBuildInfo(program, d.id, kProgramBuildLog, 0, nullptr, &size);
            std::string log(size, '\0');
            GetProgramBuildInfo(program, d.id, kProgramBuildLog, size, log.data(), nullptr);
            fail("build: the OpenCL compiler of '", d.props.name, "' rejected ", what, ":\n", log,
                 "\nreport this as a kiln bug, with the kernel's schedule");
        }
        return owned;
    }

    void launch(int device, void* program, const std::string& kernel, const int64_t grid[3], const int64_t block[3],
                const std::vector<LaunchArg>& args) override {
        Dev& d = at(device);
        // A cl_kernel holds its arguments, so one per (program, name), set and queued under a lock.
        std::lock_guard<std::mutex> lk(m_);
        auto& k = kernels_[program][kernel];
        if (!k) {
            int err = 0;
            void* made = CreateKernel(program, kernel.c_str(), &err);
            check(err, "finding kernel '" + kernel + "'");
            k = std::shared_ptr<void>(made, [this](void* p) { ReleaseKernel(p); });
        }
        for (size_t i = 0; i < args.size(); ++i)
            check(SetKernelArg(k.get(), static_cast<unsigned>(i), args[i].bytes, args[i].value),
                  "setting argument " + std::to_string(i) + " of '" + kernel + "'");
        size_t global[3], local[3];
        for (int i = 0; i < 3; ++i) {
            local[i] = static_cast<size_t>(block[i]);
            global[i] = static_cast<size_t>(grid[i] * block[i]);
        }
        check(EnqueueNDRangeKernel(d.queue, k.get(), 3, nullptr, global, local, 0, nullptr, nullptr),
              "launching '" + kernel + "'");
    }

    void synchronize(int device) override { check(Finish(at(device).queue), "waiting for the device"); }

    // Programs are released while their kernels are still cached: drop those first.
    void forget(void* program) {
        std::lock_guard<std::mutex> lk(m_);
        kernels_.erase(program);
    }

private:
    static constexpr uint64_t kDeviceTypeAll = 0xFFFFFFFF;
    static constexpr unsigned kDeviceName = 0x102B, kDeviceMaxWorkGroupSize = 0x1004, kDeviceLocalMemSize = 0x1023,
                              kProgramBuildLog = 0x1183;
    static constexpr uint64_t kMemReadWrite = 1;

    struct Dev {
        void* id = nullptr;
        void* context = nullptr;
        void* queue = nullptr;
        DeviceProps props;
    };

    OpenCLAPI() : lib_({"libOpenCL.so.1", "libOpenCL.so"}) {
        if (!lib_.loaded()) {
            why_ = "the OpenCL ICD loader is not installed (tried " + lib_.tried() +
                   "); install ocl-icd-libopencl1 and a driver, such as pocl-opencl-icd for the CPU";
            return;
        }
#define KILN_CL(name, ...) name = lib_.symbol<int (*)(__VA_ARGS__)>("cl" #name)
        KILN_CL(GetPlatformIDs, unsigned, void**, unsigned*);
        KILN_CL(GetDeviceIDs, void*, uint64_t, unsigned, void**, unsigned*);
        KILN_CL(GetDeviceInfo, void*, unsigned, size_t, void*, size_t*);
        KILN_CL(ReleaseMemObject, void*);
        KILN_CL(EnqueueWriteBuffer, void*, void*, unsigned, size_t, size_t, const void*, unsigned, const void*, void*);
        KILN_CL(EnqueueReadBuffer, void*, void*, unsigned, size_t, size_t, void*, unsigned, const void*, void*);
        KILN_CL(BuildProgram, void*, unsigned, void* const*, const char*, void*, void*);
        KILN_CL(GetProgramBuildInfo, void*, void*, unsigned, size_t, void*, size_t*);
        KILN_CL(ReleaseProgram, void*);
        KILN_CL(ReleaseKernel, void*);
        KILN_CL(SetKernelArg, void*, unsigned, size_t, const void*);
        KILN_CL(EnqueueNDRangeKernel, void*, void*, unsigned, const size_t*, const size_t*, const size_t*, unsigned,
                const void*, void*);
        KILN_CL(Finish, void*);
#undef KILN_CL
        CreateContext =
                lib_.symbol<void* (*)(const void*, unsigned, void* const*, void*, void*, int*)>("clCreateContext");
        CreateCommandQueue = lib_.symbol<void* (*)(void*, void*, uint64_t, int*)>("clCreateCommandQueue");
        CreateBuffer = lib_.symbol<void* (*)(void*, uint64_t, size_t, void*, int*)>("clCreateBuffer");
        CreateProgramWithSource =
                lib_.symbol<void* (*)(void*, unsigned, const char**, const size_t*, int*)>("clCreateProgramWithSource");
        CreateKernel = lib_.symbol<void* (*)(void*, const char*, int*)>("clCreateKernel");

        unsigned platforms = 0;
        if (GetPlatformIDs(0, nullptr, &platforms) != 0 || platforms == 0) {
            why_ = "the OpenCL ICD loader finds no platform; install a driver, such as pocl-opencl-icd for the CPU";
            return;
        }
        std::vector<void*> ps(platforms);
        GetPlatformIDs(platforms, ps.data(), nullptr);
        for (void* p : ps) {
            unsigned n = 0;
            if (GetDeviceIDs(p, kDeviceTypeAll, 0, nullptr, &n) != 0 || n == 0) continue;
            std::vector<void*> ids(n);
            GetDeviceIDs(p, kDeviceTypeAll, n, ids.data(), nullptr);
            for (void* id : ids) {
                Dev d;
                d.id = id;
                char name[256] = {};
                GetDeviceInfo(id, kDeviceName, sizeof name - 1, name, nullptr);
                size_t group = 0;
                uint64_t local = 0;
                GetDeviceInfo(id, kDeviceMaxWorkGroupSize, sizeof group, &group, nullptr);
                GetDeviceInfo(id, kDeviceLocalMemSize, sizeof local, &local, nullptr);
                d.props = {name, static_cast<int>(group), static_cast<int64_t>(local), 1};
                int err = 0;
                d.context = CreateContext(nullptr, 1, &d.id, nullptr, nullptr, &err);
                if (err != 0) continue;
                d.queue = CreateCommandQueue(d.context, d.id, 0, &err);
                if (err != 0) continue;
                devices_.push_back(d);
            }
        }
        if (devices_.empty()) why_ = "the OpenCL platforms have no usable device";
    }

    Dev& at(int device) {
        if (device < 0 || device >= count())
            fail("opencl: there is no device ", device, "; there are ", count(), count() ? "" : " (" + why_ + ")");
        return devices_[static_cast<size_t>(device)];
    }

    static void check(int err, const std::string& what) {
        if (err != 0) fail("opencl: error ", err, " ", what);
    }

    SharedLibrary lib_;
    std::string why_;
    std::vector<Dev> devices_;
    std::mutex m_;
    std::unordered_map<void*, std::unordered_map<std::string, std::shared_ptr<void>>> kernels_;

    int (*GetPlatformIDs)(unsigned, void**, unsigned*) = nullptr;
    int (*GetDeviceIDs)(void*, uint64_t, unsigned, void**, unsigned*) = nullptr;
    int (*GetDeviceInfo)(void*, unsigned, size_t, void*, size_t*) = nullptr;
    int (*ReleaseMemObject)(void*) = nullptr;
    int (*EnqueueWriteBuffer)(void*, void*, unsigned, size_t, size_t, const void*, unsigned, const void*,
                              void*) = nullptr;
    int (*EnqueueReadBuffer)(void*, void*, unsigned, size_t, size_t, void*, unsigned, const void*, void*) = nullptr;
    int (*BuildProgram)(void*, unsigned, void* const*, const char*, void*, void*) = nullptr;
    int (*GetProgramBuildInfo)(void*, void*, unsigned, size_t, void*, size_t*) = nullptr;
    int (*ReleaseProgram)(void*) = nullptr;
    int (*ReleaseKernel)(void*) = nullptr;
    int (*SetKernelArg)(void*, unsigned, size_t, const void*) = nullptr;
    int (*EnqueueNDRangeKernel)(void*, void*, unsigned, const size_t*, const size_t*, const size_t*, unsigned,
                                const void*, void*) = nullptr;
    int (*Finish)(void*) = nullptr;
    void* (*CreateContext)(const void*, unsigned, void* const*, void*, void*, int*) = nullptr;
    void* (*CreateCommandQueue)(void*, void*, uint64_t, int*) = nullptr;
    void* (*CreateBuffer)(void*, uint64_t, size_t, void*, int*) = nullptr;
    void* (*CreateProgramWithSource)(void*, unsigned, const char**, const size_t*, int*) = nullptr;
    void* (*CreateKernel)(void*, const char*, int*) = nullptr;
};

}  // namespace kiln::detail
