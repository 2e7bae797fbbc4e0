#pragma once
// The backend header: kiln::build lowers a schedule, generates LLVM IR, optimises it for the
// target and JIT-compiles it. This is the only kiln header that includes LLVM.
#include <chrono>
#include <unordered_map>

#include "kiln/codegen/llvm/codegen_llvm.hpp"
#include "kiln/jit/kernel.hpp"
#include "kiln/jit/llvm_jit.hpp"
#include "kiln/kiln.hpp"

namespace kiln {

namespace detail {
// Compiled kernels by (target, lowered program): the same kernel is compiled once per process.
struct KernelCache {
    std::mutex m;
    std::unordered_map<std::string, std::shared_ptr<const Kernel::Compiled>> map;
    uint64_t counter = 0;
    static KernelCache& get() {
        static KernelCache c;
        return c;
    }
};
}  // namespace detail

inline Target host_target() { return jit::host_target(); }

inline Kernel build(const LoweredFunc& f, const BuildOptions& opt = {}) {
    static const Target host = jit::resolve(Target{});
    const Target target = opt.target.cpu.empty() && opt.target.triple.empty() && opt.target.features.empty() && opt.target.vector_bits == 0 &&
                                  opt.target.kind == "llvm"
                              ? host
                              : jit::resolve(opt.target);
    const std::string loop_ir = to_string(f);
    const std::string key = target.str() + "\n" + loop_ir + (opt.keep_llvm_ir ? "+ir" : "") + (opt.keep_assembly ? "+asm" : "") +
                            (opt.keep_object ? "+obj" : "");
    auto& cache = detail::KernelCache::get();
    if (opt.use_cache) {
        std::lock_guard<std::mutex> lk(cache.m);
        if (auto it = cache.map.find(key); it != cache.map.end()) return Kernel(it->second);
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto compiled = std::make_shared<Kernel::Compiled>();
    compiled->loop_ir = loop_ir;
    std::string symbol;
    {
        std::lock_guard<std::mutex> lk(cache.m);
        symbol = "kiln_" + f.name + "_" + std::to_string(cache.counter++);
    }
    llvm::LLVMContext ctx;
    auto mod = std::make_unique<llvm::Module>(symbol, ctx);
    auto tm = jit::target_machine(target);
    mod->setDataLayout(tm->createDataLayout());
    mod->setTargetTriple(target.triple);
    codegen::CodeGenLLVM(ctx, *mod, target).compile(f, symbol);
    jit::optimize(*mod, *tm);
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
    std::string object = jit::emit_object(*mod, *tm);
    void* addr = jit::JIT::instance().add_object(object, symbol, false);
    compiled->target = target.str();
    compiled->symbol = symbol;
    if (opt.keep_object) compiled->object = std::move(object);
    compiled->fn = reinterpret_cast<void (*)(void**, int64_t*)>(addr);
    for (auto& a : f.args) {
        bool out = a.op->kind == OpKind::Compute;
        compiled->params.push_back({a.op->name, a.op->dtype, a.op->shape, out});
    }
    compiled->size_vars = f.size_vars;
    compiled->compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (opt.use_cache) {
        std::lock_guard<std::mutex> lk(cache.m);
        cache.map.emplace(key, compiled);
    }
    return Kernel(compiled);
}

// Lowers and compiles: auto f = kiln::build(s, {A, B, C}); f(a, b, c);
inline Kernel build(const Schedule& s, const std::vector<Tensor>& args, const BuildOptions& opt = {}) {
    return build(lower_func(s, args, LowerOptions{opt.name, ""}), opt);
}

}  // namespace kiln
