#pragma once
// The backend: kiln::build lowers a schedule, generates LLVM IR, optimises it for the target and
// JIT-compiles it, or links the same kernel from the disk cache (kiln/jit/disk_cache.hpp).
// Its definitions include LLVM; see kiln/config.hpp for compiling them in one file of a program only.
#include <string>

#include "kiln/config.hpp"
#include "kiln/jit/disk_cache.hpp"
#include "kiln/jit/kernel.hpp"
#include "kiln/kiln.hpp"
#include "kiln/runtime/thread_pool.hpp"

namespace kiln {

// This machine as a target: its triple, CPU name and features, and vector width.
KILN_SEPARABLE Target host_target();

// Compiles a lowered function for opt.target (the host by default), or the C compiler's kernel for a
// Target of kind "c". The same program compiles once per process, and once per machine with the disk cache.
KILN_SEPARABLE Kernel build(const LoweredFunc& f, const BuildOptions& opt = {});

// Lowers and compiles: auto f = kiln::build(s, {A, B, C}); f(a, b, c);
inline Kernel build(const Schedule& s, const std::vector<Tensor>& args, const BuildOptions& opt = {}) {
    return build(lower_func(s, args, LowerOptions{opt.name, "", opt.target.with_device_limits()}), opt);
}

// Empties the disk kernel cache and this process's in-memory one.
KILN_SEPARABLE void clear_cache();

// Empties this process's in-memory kernel cache only: the next build of a program links it from the disk
// cache or compiles it. Kernels already handed out stay valid.
KILN_SEPARABLE void clear_memory_cache();

// How many kernels the in-memory cache holds (4096 unless set); past that, the least recently used is
// dropped, and its machine code unloaded once no Kernel holds it. 0 keeps none.
KILN_SEPARABLE void set_memory_cache_limit(size_t kernels);

namespace jit {

// `t` with what it leaves open (triple, CPU, features, vector width) filled in from the host.
KILN_SEPARABLE Target resolve(Target t);

// Object code linked into the process's JIT: the address of its entry point, and what keeps the code
// loaded (the last copy of `code` unloads it).
struct LinkedCode {
    void* entry = nullptr;
    std::shared_ptr<void> code;
};

// Links object code (a relocatable object, as a build keeps it with BuildOptions::keep_object) into a JIT
// library of its own and returns `symbol`'s address with the library's owner.
KILN_SEPARABLE LinkedCode link_object(const std::string& object, const std::string& symbol);

// JIT libraries loaded now: one per kernel some Kernel, Executable or cache entry still holds.
KILN_SEPARABLE size_t linked_libraries();

// What, besides the lowered program and the target, decides a kernel's object code: the versions of kiln
// and LLVM and the optimisation settings. Part of every disk cache key.
KILN_SEPARABLE std::string codegen_identity();

}  // namespace jit

}  // namespace kiln

#if defined(KILN_IMPLEMENTATION) || !defined(KILN_SEPARATE_IMPLEMENTATION)
#include <chrono>
#include <unordered_map>

#include <llvm/Bitcode/BitcodeWriter.h>
#include <llvm/Config/llvm-config.h>

#include "kiln/codegen/c/build_c.hpp"
#include "kiln/codegen/gpu/build_gpu.hpp"
#include "kiln/codegen/llvm/codegen_llvm.hpp"
#include "kiln/jit/llvm_jit.hpp"
#include "kiln/version.hpp"

namespace kiln {

namespace detail {

// Compiled kernels by (target, lowered program): the same kernel is compiled once per process. Past
// its limit (set_memory_cache_limit) the least recently used entry is dropped; kernels already handed out stay
// valid.
class KernelCache {
public:
    using Ptr = std::shared_ptr<const Kernel::Compiled>;

    static KernelCache& get() {
        static KernelCache c;
        return c;
    }

    Ptr find(const std::string& key) {
        std::lock_guard<std::mutex> lk(m_);
        auto it = map_.find(key);
        if (it == map_.end()) return nullptr;
        it->second.used = ++clock_;
        return it->second.kernel;
    }

    void insert(const std::string& key, Ptr kernel) {
        std::lock_guard<std::mutex> lk(m_);
        map_[key] = {std::move(kernel), ++clock_};
        evict();
    }

    void set_limit(size_t kernels) {
        std::lock_guard<std::mutex> lk(m_);
        limit_ = kernels;
        evict();
    }

    size_t size() {
        std::lock_guard<std::mutex> lk(m_);
        return map_.size();
    }

    void clear() {
        std::lock_guard<std::mutex> lk(m_);
        map_.clear();
    }

private:
    void evict() {
        while (map_.size() > limit_) {
            auto oldest = std::min_element(map_.begin(), map_.end(),
                                           [](const auto& a, const auto& b) { return a.second.used < b.second.used; });
            map_.erase(oldest);
        }
    }
    size_t limit_ = 4096;
    struct Slot {
        Ptr kernel;
        uint64_t used;
    };
    std::mutex m_;
    std::unordered_map<std::string, Slot> map_;
    uint64_t clock_ = 0;
};

// The disk cache's key: everything that decides the object code. The unoptimised module stands for the
// lowered program and kiln's code generator together; jit::kCodegenSettings for the pipeline after it.
// Bitcode, not text: writing it takes a fraction of the time of printing the module.
inline std::string disk_cache_key(const llvm::Module& m, const Target& target, int opt_level) {
    std::string key = jit::codegen_identity() + "\nopt level " + std::to_string(opt_level) + "\n" + target.str() + "\n";
    llvm::raw_string_ostream os(key);
    llvm::WriteBitcodeToFile(m, os);
    os.flush();
    return key;
}

}  // namespace detail

KILN_SEPARABLE Target host_target() { return jit::host_target(); }

namespace detail {

// A backend's kernel once per process for each program and target (the "llvm" backend keys its own, with the
// disk cache).
template <Kernel (*Backend)(const LoweredFunc&, const BuildOptions&)>
inline Kernel build_cached(const LoweredFunc& f, const BuildOptions& opt) {
    const std::string key = opt.target.with_device_limits().str() + (opt.fp_contract ? "" : " nocontract") + " O" +
                            std::to_string(opt.opt_level) + "\n" + to_string(f);
    auto& cache = KernelCache::get();
    if (opt.use_cache)
        if (auto hit = cache.find(key)) return Kernel(hit);
    Kernel k = Backend(f, opt);
    if (opt.use_cache) cache.insert(key, std::make_shared<Kernel::Compiled>(k.compiled()));
    return k;
}

// Target kind "llvm": LLVM ORC for the CPU the target names, through the memory and disk caches.
inline Kernel build_llvm(const LoweredFunc& f, const BuildOptions& opt);

}  // namespace detail

KILN_SEPARABLE Kernel build(const LoweredFunc& f, const BuildOptions& opt) {
    if (opt.opt_level < 0 || opt.opt_level > 3)
        kiln::detail::fail("build: kernel '", f.name, "': opt_level is ", opt.opt_level,
                           "; use 0 (quickest to compile) to 3 (fastest code, the default)");
    if (!f.device.kernels.empty() && !opt.target.is_gpu())
        kiln::detail::fail("build: kernel '", f.name, "' was lowered for a GPU target and cannot run on '",
                           opt.target.kind, "'; build it with the GPU target it was lowered for");
    using Builder = Kernel (*)(const LoweredFunc&, const BuildOptions&);
    static const std::vector<std::pair<std::string, Builder>> backends = {
            {"llvm", detail::build_llvm},
            {"c", detail::build_cached<detail::build_c>},
            {"opencl", detail::build_cached<detail::build_gpu>},
            {"cuda", detail::build_cached<detail::build_gpu>}};
    for (auto& [kind, backend] : backends)
        if (kind == opt.target.kind) return backend(f, opt);
    std::string kinds;
    for (auto& k : Target::list_kinds()) kinds += (kinds.empty() ? "" : ", ") + k;
    kiln::detail::fail("build: target kind '", opt.target.kind, "' is not available in this build; the kinds are ",
                       kinds);
}

inline Kernel detail::build_llvm(const LoweredFunc& f, const BuildOptions& opt) {
    static const Target host = jit::resolve(Target{});
    const Target target = opt.target.cpu.empty() && opt.target.triple.empty() && opt.target.features.empty() &&
                                          opt.target.vector_bits == 0 && opt.target.kind == "llvm"
                                  ? host
                                  : jit::resolve(opt.target);
    const std::string loop_ir = to_string(f);
    const std::string key = target.str() + "\n" + loop_ir + (opt.keep_llvm_ir ? "+ir" : "") +
                            (opt.keep_assembly ? "+asm" : "") + (opt.keep_object ? "+obj" : "") +
                            (opt.fp_contract ? "" : "+nocontract") + "+O" + std::to_string(opt.opt_level);
    auto& cache = detail::KernelCache::get();
    if (opt.use_cache)
        if (auto hit = cache.find(key)) return Kernel(hit);
    const auto t0 = std::chrono::steady_clock::now();
    auto compiled = std::make_shared<Kernel::Compiled>();
    compiled->loop_ir = loop_ir;
    // One name for every kernel of this name: each lives in a JIT library of its own (jit::JIT::add_object),
    // and equal programs give equal modules, which is what the disk cache's key needs.
    const std::string symbol = "kiln_" + f.name;
    llvm::LLVMContext ctx;
    auto mod = std::make_unique<llvm::Module>(symbol, ctx);
    auto tm = jit::target_machine(target, opt.opt_level);
    mod->setDataLayout(tm->createDataLayout());
    mod->setTargetTriple(target.triple);
    codegen::CodeGenLLVM(ctx, *mod, target, opt.fp_contract).compile(f, symbol);

    auto& disk = jit::DiskCache::instance();
    // The IR and assembly a caller asks to keep come only out of a compile.
    const bool use_disk = opt.use_disk_cache && !opt.keep_llvm_ir && !opt.keep_assembly && disk.enabled();
    const std::string disk_key = use_disk ? detail::disk_cache_key(*mod, target, opt.opt_level) : std::string();
    void* addr = nullptr;
    std::string object;
    if (use_disk) {
        if (auto entry = disk.load(disk_key); entry && entry->symbol == symbol) {
            try {
                object = std::string(entry->object);
                jit::LinkedCode linked = jit::link_object(object, symbol);
                addr = linked.entry;
                compiled->code = std::move(linked.code);
                compiled->from_disk_cache = true;
            } catch (const Error&) {
                // An entry that passed its checksum but that the linker refuses is recompiled and replaced.
            }
        }
    }
    if (!addr) {
        jit::optimize(*mod, *tm, opt.opt_level);
        if (opt.keep_llvm_ir) {
            llvm::raw_string_ostream os(compiled->llvm_ir);
            mod->print(os, nullptr);
        }
        if (opt.keep_assembly) {
            auto clone = llvm::CloneModule(*mod);
            compiled->assembly = jit::emit_assembly(*clone, *tm);
        }
        // Code generation runs here, on the caller's thread, with the build's own TargetMachine; only
        // linking into the JIT is serialised.
        object = jit::emit_object(*mod, *tm);
        jit::LinkedCode linked = jit::link_object(object, symbol);
        addr = linked.entry;
        compiled->code = std::move(linked.code);
        if (use_disk) disk.store(disk_key, symbol, object);
    }
    compiled->target = target.str();
    compiled->symbol = symbol;
    if (opt.keep_object) compiled->object = std::move(object);
    compiled->fn = reinterpret_cast<void (*)(void**, int64_t*)>(addr);
    compiled->finish(f, t0);
    if (opt.use_cache) cache.insert(key, compiled);
    return Kernel(compiled);
}

KILN_SEPARABLE void clear_cache() {
    jit::DiskCache::instance().clear();
    detail::KernelCache::get().clear();
}

KILN_SEPARABLE void clear_memory_cache() { detail::KernelCache::get().clear(); }

KILN_SEPARABLE void set_memory_cache_limit(size_t kernels) { detail::KernelCache::get().set_limit(kernels); }

namespace jit {

KILN_SEPARABLE LinkedCode link_object(const std::string& object, const std::string& symbol) {
    auto [entry, library] = JIT::instance().add_object(object, symbol);
    std::weak_ptr<JIT> jit = JIT::holder();
    return {entry, std::shared_ptr<void>(library, [jit](void* lib) {
                if (auto alive = jit.lock()) alive->remove(static_cast<llvm::orc::JITDylib*>(lib));
            })};
}

KILN_SEPARABLE size_t linked_libraries() { return JIT::instance().live(); }

KILN_SEPARABLE std::string codegen_identity() {
    return "kiln " KILN_VERSION "\nllvm " LLVM_VERSION_STRING "\n" + std::string(kCodegenSettings);
}

}  // namespace jit

}  // namespace kiln
#endif  // the implementation
