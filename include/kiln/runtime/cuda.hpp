#pragma once
// The CUDA runtime behind Target::cuda(): NVRTC compiles CUDA C to PTX, and the driver API (libcuda.so.1)
// loads it and launches on each device's primary context and default stream. Both are loaded with dlopen
// when first used, so kiln builds and runs its other backends without the CUDA toolkit, a driver or a GPU,
// and compiles CUDA kernels to PTX (nvrtc_compile) on a machine with NVRTC and no GPU. The few driver and
// NVRTC declarations kiln uses are written out here; their values are NVIDIA's stable ABI.
#include <mutex>

#include "kiln/runtime/device_api.hpp"

namespace kiln::detail {

// NVRTC, loaded on first use: the newest of the versions kiln knows.
class NVRTC {
public:
    static NVRTC& get() {
        static NVRTC n;
        return n;
    }
    bool available() const { return lib_.loaded(); }
    std::string unavailable() const {
        return "NVRTC is not installed (tried " + lib_.tried() + "); install the CUDA toolkit's libnvrtc";
    }

    // PTX for compute capability `arch` (such as 80 for sm_80; 0 for NVRTC's default), or a kiln::Error with
    // NVRTC's log.
    std::string compile(const std::string& source, const std::string& what, int arch = 0) const {
        if (!available()) fail("build: cannot compile CUDA ", what, ": ", unavailable());
        void* program = nullptr;
        check(createProgram(&program, source.c_str(), "kiln.cu", 0, nullptr, nullptr),
              "creating the program of " + what);
        std::vector<std::string> options = {"--std=c++17", "--fmad=true"};
        if (arch > 0) options.push_back("--gpu-architecture=compute_" + std::to_string(arch));
        std::vector<const char*> opts;
        for (auto& o : options) opts.push_back(o.c_str());
        const int status = compileProgram(program, static_cast<int>(opts.size()), opts.data());
        if (status != 0) {
            size_t size = 0;
            getProgramLogSize(program, &size);
            std::string log(size, '\0');
            getProgramLog(program, log.data());
            destroyProgram(&program);
            fail("build: NVRTC rejected ", what, ":\n", log, "\nreport this as a kiln bug, with the kernel's schedule");
        }
        size_t size = 0;
        getPTXSize(program, &size);
        std::string ptx(size, '\0');
        getPTX(program, ptx.data());
        destroyProgram(&program);
        while (!ptx.empty() && ptx.back() == '\0') ptx.pop_back();
        return ptx;
    }

private:
    NVRTC()
            : lib_({"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2",
                    "/usr/local/cuda/lib64/libnvrtc.so"}) {
        if (!lib_.loaded()) return;
        createProgram = lib_.symbol<decltype(createProgram)>("nvrtcCreateProgram");
        compileProgram = lib_.symbol<decltype(compileProgram)>("nvrtcCompileProgram");
        getProgramLogSize = lib_.symbol<decltype(getProgramLogSize)>("nvrtcGetProgramLogSize");
        getProgramLog = lib_.symbol<decltype(getProgramLog)>("nvrtcGetProgramLog");
        getPTXSize = lib_.symbol<decltype(getPTXSize)>("nvrtcGetPTXSize");
        getPTX = lib_.symbol<decltype(getPTX)>("nvrtcGetPTX");
        destroyProgram = lib_.symbol<decltype(destroyProgram)>("nvrtcDestroyProgram");
    }
    static void check(int status, const std::string& what) {
        if (status != 0) fail("build: NVRTC error ", status, " ", what);
    }

    SharedLibrary lib_;
    int (*createProgram)(void**, const char*, const char*, int, const char* const*, const char* const*) = nullptr;
    int (*compileProgram)(void*, int, const char* const*) = nullptr;
    int (*getProgramLogSize)(void*, size_t*) = nullptr;
    int (*getProgramLog)(void*, char*) = nullptr;
    int (*getPTXSize)(void*, size_t*) = nullptr;
    int (*getPTX)(void*, char*) = nullptr;
    int (*destroyProgram)(void**) = nullptr;
};

class CUDAAPI final : public DeviceAPI {
public:
    // Never destroyed: kernels in kiln's caches unload their modules through it until the process ends.
    static CUDAAPI& get() {
        static CUDAAPI* api = new CUDAAPI;
        return *api;
    }

    int count() override { return static_cast<int>(devices_.size()); }
    std::string unavailable() override { return why_; }
    DeviceProps props(int device) override { return use(device).props; }

    void* alloc(int device, size_t bytes) override {
        use(device);
        uint64_t p = 0;
        check(memAlloc(&p, std::max<size_t>(bytes, 1)), "allocating " + std::to_string(bytes) + " bytes");
        return reinterpret_cast<void*>(p);
    }
    void release(int device, void* handle) override {
        if (!handle) return;
        use(device);
        memFree(reinterpret_cast<uint64_t>(handle));
    }
    void copy_to_device(int device, void* handle, const void* host, size_t bytes) override {
        use(device);
        if (bytes) check(memcpyHtoD(reinterpret_cast<uint64_t>(handle), host, bytes), "copying to the device");
    }
    void copy_to_host(int device, void* host, const void* handle, size_t bytes) override {
        use(device);
        if (bytes) check(memcpyDtoH(host, reinterpret_cast<uint64_t>(handle), bytes), "copying from the device");
    }

    std::shared_ptr<void> load(int device, const std::string& source, const std::string& what) override {
        Dev& d = use(device);
        const std::string ptx = NVRTC::get().compile(source, what, d.arch);
        void* module = nullptr;
        check(moduleLoadData(&module, ptx.c_str()), "loading the PTX of " + what);
        return std::shared_ptr<void>(module, [this](void* m) { moduleUnload(m); });
    }

    void launch(int device, void* module, const std::string& kernel, const int64_t grid[3], const int64_t block[3],
                const std::vector<LaunchArg>& args) override {
        use(device);
        void* function = nullptr;
        check(moduleGetFunction(&function, module, kernel.c_str()), "finding kernel '" + kernel + "'");
        std::vector<void*> params;
        for (auto& a : args) params.push_back(const_cast<void*>(a.value));
        check(launchKernel(function, static_cast<unsigned>(grid[0]), static_cast<unsigned>(grid[1]),
                           static_cast<unsigned>(grid[2]), static_cast<unsigned>(block[0]),
                           static_cast<unsigned>(block[1]), static_cast<unsigned>(block[2]), 0, nullptr, params.data(),
                           nullptr),
              "launching '" + kernel + "'");
    }

    void synchronize(int device) override {
        use(device);
        check(ctxSynchronize(), "waiting for the device");
    }

private:
    struct Dev {
        int ordinal = 0;
        void* context = nullptr;
        int arch = 0;
        DeviceProps props;
    };

    CUDAAPI() : lib_({"libcuda.so.1", "libcuda.so"}) {
        if (!lib_.loaded()) {
            why_ = "the CUDA driver is not installed (tried " + lib_.tried() + ")";
            return;
        }
        auto init = lib_.symbol<int (*)(unsigned)>("cuInit");
        auto deviceCount = lib_.symbol<int (*)(int*)>("cuDeviceGetCount");
        auto deviceGet = lib_.symbol<int (*)(int*, int)>("cuDeviceGet");
        auto deviceName = lib_.symbol<int (*)(char*, int, int)>("cuDeviceGetName");
        auto attribute = lib_.symbol<int (*)(int*, int, int)>("cuDeviceGetAttribute");
        auto retain = lib_.symbol<int (*)(void**, int)>("cuDevicePrimaryCtxRetain");
        ctxSetCurrent = lib_.symbol<decltype(ctxSetCurrent)>("cuCtxSetCurrent");
        ctxSynchronize = lib_.symbol<decltype(ctxSynchronize)>("cuCtxSynchronize");
        memAlloc = lib_.symbol<decltype(memAlloc)>("cuMemAlloc_v2");
        memFree = lib_.symbol<decltype(memFree)>("cuMemFree_v2");
        memcpyHtoD = lib_.symbol<decltype(memcpyHtoD)>("cuMemcpyHtoD_v2");
        memcpyDtoH = lib_.symbol<decltype(memcpyDtoH)>("cuMemcpyDtoH_v2");
        moduleLoadData = lib_.symbol<decltype(moduleLoadData)>("cuModuleLoadData");
        moduleUnload = lib_.symbol<decltype(moduleUnload)>("cuModuleUnload");
        moduleGetFunction = lib_.symbol<decltype(moduleGetFunction)>("cuModuleGetFunction");
        launchKernel = lib_.symbol<decltype(launchKernel)>("cuLaunchKernel");
        int n = 0;
        if (init(0) != 0 || deviceCount(&n) != 0 || n == 0) {
            why_ = "the CUDA driver finds no GPU";
            return;
        }
        // CUdevice_attribute: max threads per block 1, shared memory per block 8, warp size 10, compute
        // capability 75 and 76.
        for (int i = 0; i < n; ++i) {
            Dev d;
            if (deviceGet(&d.ordinal, i) != 0) continue;
            char name[256] = {};
            deviceName(name, sizeof name - 1, d.ordinal);
            int threads = 0, shared = 0, warp = 0, major = 0, minor = 0;
            attribute(&threads, 1, d.ordinal);
            attribute(&shared, 8, d.ordinal);
            attribute(&warp, 10, d.ordinal);
            attribute(&major, 75, d.ordinal);
            attribute(&minor, 76, d.ordinal);
            d.arch = major * 10 + minor;
            d.props = {name, threads, shared, warp};
            if (retain(&d.context, d.ordinal) != 0) continue;
            devices_.push_back(d);
        }
        if (devices_.empty()) why_ = "no CUDA device could be opened";
    }

    Dev& use(int device) {
        if (device < 0 || device >= count())
            fail("cuda: there is no device ", device, "; there are ", count(), count() ? "" : " (" + why_ + ")");
        Dev& d = devices_[static_cast<size_t>(device)];
        check(ctxSetCurrent(d.context), "selecting device " + std::to_string(device));
        return d;
    }

    static void check(int status, const std::string& what) {
        if (status != 0) fail("cuda: error ", status, " ", what);
    }

    SharedLibrary lib_;
    std::string why_;
    std::vector<Dev> devices_;
    int (*ctxSetCurrent)(void*) = nullptr;
    int (*ctxSynchronize)() = nullptr;
    int (*memAlloc)(uint64_t*, size_t) = nullptr;
    int (*memFree)(uint64_t) = nullptr;
    int (*memcpyHtoD)(uint64_t, const void*, size_t) = nullptr;
    int (*memcpyDtoH)(void*, uint64_t, size_t) = nullptr;
    int (*moduleLoadData)(void**, const void*) = nullptr;
    int (*moduleUnload)(void*) = nullptr;
    int (*moduleGetFunction)(void**, void*, const char*) = nullptr;
    int (*launchKernel)(void*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void*, void**,
                        void**) = nullptr;
};

}  // namespace kiln::detail
