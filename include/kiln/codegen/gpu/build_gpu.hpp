#pragma once
// kiln::build for GPU targets: the device kernels printed as OpenCL C or CUDA C, built by the device's own
// compiler (the OpenCL driver; NVRTC, then the CUDA driver), and a host side that allocates the device
// temporaries, computes each kernel's grid from the sizes of the call, and launches the kernels in order on the
// device's queue. A CUDA kernel compiles to PTX wherever NVRTC is installed, GPU or not; where the target's device
// is missing, the kernel is built as far as it can be and calling it is an error that lists the devices there are.
#include <chrono>

#include "kiln/codegen/gpu/cuda.hpp"
#include "kiln/codegen/gpu/opencl.hpp"
#include "kiln/jit/kernel.hpp"

namespace kiln::detail {

inline Kernel build_gpu(const LoweredFunc& f, const BuildOptions& opt) {
    const auto t0 = std::chrono::steady_clock::now();
    const Target target = opt.target.with_device_limits();
    if (f.device.kernels.empty())
        fail("build: kernel '", f.name,
             "' was not lowered for a GPU target, so it has no device kernels; lower it "
             "with kiln::LowerOptions{.target = kiln::Target::",
             target.kind, "()}, or build the schedule directly");
    const bool cuda = target.kind == "cuda";
    auto compiled = std::make_shared<Kernel::Compiled>();
    compiled->loop_ir = to_string(f);
    compiled->symbol = f.name;
    compiled->source = codegen::emit_gpu(f, cuda ? codegen::cuda_language() : codegen::opencl_language());
    compiled->target = target.str();
    DeviceAPI* api = device_api(target.kind);
    const bool present = target.device >= 0 && target.device < api->count();
    if (cuda && NVRTC::get().available() && !present)
        compiled->ptx = NVRTC::get().compile(compiled->source, "kernel '" + f.name + "'");
    std::shared_ptr<void> program;
    if (present) program = api->load(target.device, compiled->source, "kernel '" + f.name + "'");

    const std::string kind = target.kind;
    const int device = target.device;
    const passes::HostDeviceSplit split = f.device;
    const std::vector<Var> size_vars = f.size_vars;
    compiled->device = kind + ":" + std::to_string(device);
    compiled->launch = [program, split, size_vars, kind, device, api, name = f.name, nargs = f.args.size()](
                               void** args, int64_t* sizes) {
        if (!program)
            fail("kernel '", name, "': it is built for ", kind, " device ", device, ", which is not here; ",
                 Device::describe_all(), api->count() ? "" : " (" + kind + ": " + api->unavailable() + ")");
        std::unordered_map<const VarNode*, int64_t> env;
        std::vector<int64_t> wide(size_vars.size());
        std::vector<int32_t> narrow(size_vars.size());
        for (size_t i = 0; i < size_vars.size(); ++i) {
            env[size_vars[i].get()] = sizes[i];
            wide[i] = sizes[i];
            narrow[i] = static_cast<int32_t>(sizes[i]);
        }
        auto eval = [&](const Expr& e) {
            bool ok = true;
            const int64_t v = eval_size(e, env, ok);
            if (!ok) internal_fail("kernel '", name, "': cannot evaluate ", to_string(e), " from the sizes");
            return v;
        };
        std::vector<void*> temporaries;
        struct Release {
            std::vector<void*>& handles;
            DeviceAPI* api;
            int device;
            ~Release() {
                if (handles.empty()) return;
                // Temporaries outlive the kernels that use them.
                try {
                    api->synchronize(device);
                } catch (const Error&) {}
                for (void* t : handles) api->release(device, t);
            }
        } release{temporaries, api, device};
        for (auto& t : split.temporaries)
            temporaries.push_back(api->alloc(device, static_cast<size_t>(eval(t.elements) * t.dtype.bytes())));
        // Every kernel takes the same parameters (codegen_gpu.hpp): buffers, temporaries, sizes.
        std::vector<LaunchArg> params;
        for (size_t i = 0; i < nargs; ++i) params.push_back({&args[i], sizeof(void*)});
        for (auto& t : temporaries) params.push_back({&t, sizeof(void*)});
        for (size_t i = 0; i < size_vars.size(); ++i)
            params.push_back(size_vars[i].type().bits == 64 ? LaunchArg{&wide[i], 8} : LaunchArg{&narrow[i], 4});
        for (auto& k : split.kernels) {
            int64_t grid[3], block[3];
            bool empty = false;
            for (int d = 0; d < 3; ++d) {
                grid[d] = eval(k.grid[d]);
                block[d] = eval(k.block[d]);
                empty |= grid[d] <= 0;
            }
            if (!empty) api->launch(device, program.get(), k.name, grid, block, params);
        }
    };
    compiled->finish(f, t0);
    return Kernel(compiled);
}

}  // namespace kiln::detail
