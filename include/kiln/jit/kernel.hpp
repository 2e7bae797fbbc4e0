#pragma once
// A compiled kernel and the checks every call makes: arity, null pointers, element types, ranks,
// shapes (binding symbolic sizes), overlapping outputs. Arguments may be kiln::Buffer, raw
// pointers, or Eigen matrices and maps (row-major ones are used in place; others are copied).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <sstream>

#include <functional>

#include "kiln/lower/lower.hpp"
#include "kiln/runtime/buffer.hpp"
#include "kiln/runtime/device.hpp"
#include "kiln/runtime/workspace.hpp"
#include "kiln/target.hpp"

namespace kiln {

namespace detail {

// One argument as the kernel sees it.
struct ArgValue {
    void* data = nullptr;
    Type dtype = f32;
    bool has_shape = false;
    std::vector<int64_t> shape, strides;
    std::string device;  // "opencl:0" for a DeviceBuffer's handle; empty for host memory
};

template <typename T>
concept EigenLike = requires(const T& t) {
    t.data();
    t.rows();
    t.cols();
    t.innerStride();
    t.outerStride();
    std::remove_cvref_t<T>::IsRowMajor;
};

template <typename T> ArgValue to_arg(T&& a) {
    using D = std::remove_cvref_t<T>;
    if constexpr (std::is_same_v<D, Buffer>) {
        return ArgValue{a.data(), a.dtype(), true, a.shape(), a.strides(), {}};
    } else if constexpr (std::is_same_v<D, DeviceBuffer>) {
        return ArgValue{a.handle(),
                        a.dtype(),
                        true,
                        a.shape(),
                        Buffer::row_major(a.shape()),
                        a.device().kind() + ":" + std::to_string(a.device().index())};
    } else if constexpr (std::is_pointer_v<D>) {
        using E = std::remove_cv_t<std::remove_pointer_t<D>>;
        static_assert(type_of<E>() != handle, "kiln kernels take pointers to bool, i8..i64, u8, u32, float or double");
        return ArgValue{const_cast<E*>(a), type_of<E>(), false, {}, {}, {}};
    } else if constexpr (std::is_same_v<D, std::nullptr_t>) {
        return ArgValue{};
    } else if constexpr (EigenLike<D>) {
        using E = std::remove_cv_t<std::remove_pointer_t<decltype(a.data())>>;
        ArgValue v{const_cast<E*>(a.data()), type_of<E>(), true, {a.rows(), a.cols()}, {}, {}};
        if (D::IsRowMajor)
            v.strides = {a.outerStride(), a.innerStride()};
        else
            v.strides = {a.innerStride(), a.outerStride()};
        return v;
    } else {
        static_assert(sizeof(D) == 0,
                      "a kiln kernel argument must be a kiln::Buffer, a kiln::DeviceBuffer, a pointer, or an Eigen "
                      "matrix/map");
    }
}

inline int64_t eval_size(const Expr& e, const std::unordered_map<const VarNode*, int64_t>& env, bool& ok) {
    if (auto* i = e.as<IntImm>()) return i->value;
    if (auto* v = e.as<VarNode>()) {
        auto it = env.find(v);
        if (it == env.end()) {
            ok = false;
            return 0;
        }
        return it->second;
    }
    if (auto* c = e.as<Cast>()) return eval_size(c->value, env, ok);
    if (auto* b = dynamic_cast<const BinaryNode*>(e.get())) {
        int64_t x = eval_size(b->a, env, ok), y = eval_size(b->b, env, ok);
        switch (e.kind()) {
            case ExprKind::Add: return x + y;
            case ExprKind::Sub: return x - y;
            case ExprKind::Mul: return x * y;
            case ExprKind::Div:
                if (y == 0) {
                    ok = false;
                    return 0;
                }
                return floor_div(x, y);
            case ExprKind::Mod:
                if (y == 0) {
                    ok = false;
                    return 0;
                }
                return floor_mod(x, y);
            case ExprKind::Min: return std::min(x, y);
            case ExprKind::Max: return std::max(x, y);
            default: break;
        }
    }
    ok = false;
    return 0;
}

}  // namespace detail

struct BuildOptions {
    Target target{};  // the host by default
    std::string name = "kernel";
    bool keep_llvm_ir = false;   // keep the optimised LLVM IR (Kernel::llvm_ir)
    bool keep_assembly = false;  // keep the assembly (Kernel::assembly)
    bool use_cache = true;       // reuse a kernel already compiled in this process from the same lowered program
    bool use_disk_cache = true;  // reuse object code from the disk cache (kiln/jit/disk_cache.hpp), and fill it
    bool keep_object = false;    // keep the object code (Kernel::object), e.g. to save it with an executable
    // a * b + c may become one fused multiply-add (one rounding instead of two: faster, and usually more
    // accurate); false rounds the product and the sum apart, as a plain C++ reference does.
    bool fp_contract = true;
    // How hard the compiler optimises, 0 to 3 (LLVM's O0-O3 pipelines and code generator levels; the C
    // target's -O0 to -O3). 3 for kernels that run many times; a kernel that runs once (constant folding
    // uses 0) is ready several times sooner at a lower level, and runs slower.
    int opt_level = 3;
};

class Kernel {
public:
    struct Param {
        std::string name;
        Type dtype;
        std::vector<Expr> shape;
        bool is_output;
    };
    struct Compiled {
        void (*fn)(void**, int64_t*) = nullptr;
        std::vector<Param> params;
        std::vector<Var> size_vars;
        std::vector<passes::BoundsRequirement> requirements;  // checked on every call, before the code runs
        std::string llvm_ir, assembly, loop_ir;
        // The source it was compiled from: C99 for the "c" target, OpenCL C or CUDA C for GPU targets.
        std::string source;
        std::string ptx;  // a CUDA kernel compiled by NVRTC where no GPU is present to load it
        // GPU targets: the device ("cuda:0") and the host side that launches the device kernels on it; `fn`
        // is null.
        std::string device;
        std::function<void(void** args, int64_t* sizes)> launch;
        std::shared_ptr<const LoweredFunc> lowered;  // the program compiled (absent in a loaded executable)
        std::string target, symbol, object;  // what it was compiled for, its entry point, its object code if kept
        double compile_ms = 0;
        bool from_disk_cache = false;  // linked from the disk cache instead of compiled
        // Keeps the machine code loaded (a JIT library, or the C backend's shared object): the last copy of
        // the Compiled unloads it, so a process that compiles and drops many kernels stays flat in memory.
        std::shared_ptr<void> code;

        // What every backend records of the program it compiled (parameters, sizes, the checks of each call)
        // and how long it took since `start`.
        void finish(const LoweredFunc& f, std::chrono::steady_clock::time_point start) {
            for (auto& a : f.args)
                params.push_back({a.op->name, a.op->dtype, a.op->shape, a.op->kind == OpKind::Compute});
            size_vars = f.size_vars;
            requirements = f.requirements;
            lowered = std::make_shared<const LoweredFunc>(f);
            compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        }
    };

    Kernel() = default;
    explicit Kernel(std::shared_ptr<const Compiled> c) : c_(std::move(c)) {}

    template <typename... Args> void operator()(Args&&... args) const {
        std::vector<detail::ArgValue> v{detail::to_arg(std::forward<Args>(args))...};
        call(v);
    }

    // The packed form, for callers that build argument lists at run time.
    KILN_CALLS_GENERATED_CODE void call(std::vector<detail::ArgValue>& args) const {
        if (!c_) detail::fail("kernel: calling an empty kiln::Kernel; build one with kiln::build");
        const auto& ps = c_->params;
        if (args.size() != ps.size()) {
            std::string sig;
            for (auto& p : ps) sig += (sig.empty() ? "" : ", ") + p.name;
            detail::fail("kernel: called with ", args.size(), " argument(s) but it takes ", ps.size(), " (", sig, ")");
        }
        std::unordered_map<const VarNode*, int64_t> env;
        for (size_t i = 0; i < ps.size(); ++i) {
            auto& a = args[i];
            auto& p = ps[i];
            if (!a.data) detail::fail("kernel: argument ", i, " ('", p.name, "') is a null pointer");
            if (a.device != c_->device) {
                if (a.device.empty())
                    detail::fail("kernel: argument ", i, " ('", p.name, "') is in host memory but the kernel runs on ",
                                 c_->device, "; copy it there: kiln::DeviceBuffer::from(buffer, kiln::Device::get(\"",
                                 c_->device.substr(0, c_->device.find(':')), "\"))");
                detail::fail("kernel: argument ", i, " ('", p.name, "') is a DeviceBuffer on ", a.device,
                             " but the kernel runs ", c_->device.empty() ? "on this CPU" : "on " + c_->device,
                             c_->device.empty() ? "; copy it to host memory with to_host()"
                                                : "; copy it to the kernel's device");
            }
            if (a.dtype != p.dtype)
                detail::fail("kernel: argument ", i, " ('", p.name, "') holds ", a.dtype.str(),
                             " but the kernel expects ", p.dtype.str());
            if (!a.has_shape) continue;
            if (a.shape.size() != p.shape.size()) {
                // Eigen vectors arrive as n x 1 or 1 x n.
                if (p.shape.size() == 1 && a.shape.size() == 2 && (a.shape[0] == 1 || a.shape[1] == 1)) {
                    bool col = a.shape[1] == 1;
                    a.shape = {a.shape[0] * a.shape[1]};
                    a.strides = {col ? a.strides[0] : a.strides[1]};
                } else {
                    detail::fail("kernel: argument ", i, " ('", p.name, "') has ", a.shape.size(),
                                 " dimension(s) but the kernel expects ", p.shape.size());
                }
            }
            for (size_t d = 0; d < p.shape.size(); ++d)
                if (auto* v = p.shape[d].as<VarNode>(); v && !env.count(v)) env[v] = a.shape[d];
        }
        for (auto& sv : c_->size_vars)
            if (!env.count(sv.get()))
                detail::fail("kernel: the size '", sv.name(),
                             "' is only known from arguments passed as raw pointers; pass a kiln::Buffer ",
                             "(or an Eigen map) for one of them so the size can be read");
        for (size_t i = 0; i < ps.size(); ++i) {
            auto& a = args[i];
            if (!a.has_shape) continue;
            for (size_t d = 0; d < ps[i].shape.size(); ++d) {
                bool ok = true;
                int64_t want = detail::eval_size(ps[i].shape[d], env, ok);
                if (!ok || want != a.shape[d])
                    detail::fail("kernel: argument ", i, " ('", ps[i].name, "') has size ", a.shape[d],
                                 " in dimension ", d, " but the kernel expects ", to_string(ps[i].shape[d]),
                                 ok && !as_const_int(ps[i].shape[d]) ? " = " + std::to_string(want) : std::string());
            }
        }
        std::vector<int64_t> sizes;
        for (auto& sv : c_->size_vars) {
            int64_t s = env.at(sv.get());
            if (s <= 0 || s > INT32_MAX)
                detail::fail("kernel: size '", sv.name(), "' is ", s, "; it must be in [1, 2^31)");
            sizes.push_back(s);
        }
        // Reads whose range lowering could not settle, because it depends on the sizes: settled now.
        for (auto& r : c_->requirements) {
            bool ok = true;
            const int64_t at = detail::eval_size(r.index, env, ok), n = detail::eval_size(r.extent, env, ok);
            if (ok && (r.upper ? at < n : at >= 0)) continue;
            detail::fail("kernel: argument '", r.tensor, "' would be read at index ", to_plain_string(r.index),
                         ok ? " = " + std::to_string(at) : std::string(), " in dimension ", r.dim,
                         ", outside its size ", to_plain_string(r.extent),
                         ok ? " = " + std::to_string(n) : std::string(), " (stage '", r.stage, "' reads ", r.read,
                         "); pass arguments whose sizes fit each other");
        }
        if (c_->launch) {
            // Device memory: outputs in buffers of their own, and no strides to copy through.
            for (size_t i = 0; i < ps.size(); ++i)
                for (size_t j = 0; j < ps.size(); ++j)
                    if (i != j && ps[i].is_output && args[i].data == args[j].data)
                        detail::fail("kernel: output '", ps[i].name, "' is the same DeviceBuffer as argument '",
                                     ps[j].name, "'; kiln kernels need outputs in their own memory");
            std::vector<void*> handles;
            for (auto& a : args) handles.push_back(a.data);
            c_->launch(handles.data(), sizes.data());
            return;
        }
        // Outputs must not share memory with other arguments: the kernel assumes distinct buffers.
        auto span = [&](size_t i) {
            bool ok = true;
            int64_t n = 1;
            for (auto& d : ps[i].shape) n *= detail::eval_size(d, env, ok);
            auto* lo = static_cast<char*>(args[i].data);
            return std::pair<char*, char*>{lo, lo + n * ps[i].dtype.bytes()};
        };
        for (size_t i = 0; i < ps.size(); ++i) {
            if (!ps[i].is_output) continue;
            auto [a0, a1] = span(i);
            for (size_t j = 0; j < ps.size(); ++j) {
                if (j == i) continue;
                auto [b0, b1] = span(j);
                if (a0 < b1 && b0 < a1)
                    detail::fail("kernel: output '", ps[i].name, "' overlaps argument '", ps[j].name,
                                 "'; kiln kernels need outputs in their own memory");
            }
        }
        // Non-contiguous arguments go through contiguous copies.
        std::vector<Buffer> temps(ps.size());
        std::vector<void*> ptrs(ps.size());
        for (size_t i = 0; i < ps.size(); ++i) {
            auto& a = args[i];
            ptrs[i] = a.data;
            if (!a.has_shape || a.strides == Buffer::row_major(a.shape)) continue;
            temps[i] = scratch(a.shape, a.dtype);
            if (!ps[i].is_output) copy_strided(a, temps[i], true);
            ptrs[i] = temps[i].data();
        }
        c_->fn(ptrs.data(), sizes.data());
        for (size_t i = 0; i < ps.size(); ++i)
            if (temps[i].data() && ps[i].is_output) copy_strided(args[i], temps[i], false);
    }

    const std::string& llvm_ir() const { return c_->llvm_ir; }
    const std::string& assembly() const { return c_->assembly; }
    const std::string& loop_ir() const { return c_->loop_ir; }
    // What the schedule asked for and lowering could not do (a vectorized loop left serial, and why).
    const std::vector<std::string>& warnings() const {
        static const std::vector<std::string> none;
        return c_ && c_->lowered ? c_->lowered->warnings : none;
    }
    // The source a "c", "opencl" or "cuda" kernel was compiled from (empty for "llvm": see llvm_ir()).
    const std::string& source() const { return c_->source; }
    double compile_ms() const { return c_->compile_ms; }
    bool defined() const { return c_ != nullptr; }
    // Its parameters, target, entry point and (with BuildOptions::keep_object) object code.
    const Compiled& compiled() const {
        if (!c_) detail::fail("kernel: an empty kiln::Kernel has nothing compiled; build one with kiln::build");
        return *c_;
    }

private:
    // The dense copy of a strided argument, from this thread's workspace blocks (runtime/workspace.hpp): a
    // kernel called in a loop on a column-major matrix reuses the same memory rather than mapping and
    // faulting in fresh pages on every call.
    static Buffer scratch(const std::vector<int64_t>& shape, Type dtype) {
        int64_t bytes = dtype.bytes();
        for (int64_t d : shape) bytes *= d;
        void* p = runtime::workspace_cache().allocate(bytes);
        if (!p) detail::fail("kernel: cannot allocate ", bytes, " bytes for the dense copy of a strided argument");
        return Buffer(std::shared_ptr<void>(p, [](void* q) { runtime::workspace_cache().release(q); }), p, shape,
                      dtype);
    }

    // Between a strided argument and its dense row-major copy, in 32 x 32 tiles of the last two dimensions:
    // a column-major matrix is read (or written) a tile at a time from cache lines already loaded, rather
    // than one cache line per element across the whole matrix.
    template <typename E> static void copy_tiles(const detail::ArgValue& a, E* dense, bool to_dense) {
        constexpr int64_t kTile = 32;
        const size_t nd = a.shape.size();
        const int64_t cols = nd ? a.shape[nd - 1] : 1, col_stride = nd ? a.strides[nd - 1] : 0;
        const int64_t rows = nd >= 2 ? a.shape[nd - 2] : 1, row_stride = nd >= 2 ? a.strides[nd - 2] : 0;
        const size_t outer_dims = nd >= 2 ? nd - 2 : 0;
        int64_t planes = 1;
        for (size_t k = 0; k < outer_dims; ++k) planes *= a.shape[k];
        std::vector<int64_t> idx(outer_dims, 0);
        E* strided = static_cast<E*>(a.data);
        for (int64_t p = 0; p < planes; ++p) {
            int64_t base = 0;
            for (size_t k = 0; k < outer_dims; ++k) base += idx[k] * a.strides[k];
            E* plane = dense + p * rows * cols;
            for (int64_t r0 = 0; r0 < rows; r0 += kTile)
                for (int64_t c0 = 0; c0 < cols; c0 += kTile)
                    for (int64_t r = r0; r < std::min(rows, r0 + kTile); ++r)
                        for (int64_t c = c0; c < std::min(cols, c0 + kTile); ++c) {
                            E& view = strided[base + r * row_stride + c * col_stride];
                            if (to_dense)
                                plane[r * cols + c] = view;
                            else
                                view = plane[r * cols + c];
                        }
            for (size_t k = outer_dims; k-- > 0;) {
                if (++idx[k] < a.shape[k]) break;
                idx[k] = 0;
            }
        }
    }

    static void copy_strided(const detail::ArgValue& a, const Buffer& dense, bool to_dense) {
        switch (a.dtype.bytes()) {
            case 1: return copy_tiles(a, static_cast<uint8_t*>(dense.data()), to_dense);
            case 2: return copy_tiles(a, static_cast<uint16_t*>(dense.data()), to_dense);
            case 4: return copy_tiles(a, static_cast<uint32_t*>(dense.data()), to_dense);
            case 8: return copy_tiles(a, static_cast<uint64_t*>(dense.data()), to_dense);
            default: detail::fail("kernel: cannot copy elements of ", a.dtype.bytes(), " bytes");
        }
    }

    std::shared_ptr<const Compiled> c_;
};

}  // namespace kiln
