#pragma once
// The process-wide LLVM ORC LLJIT: host target detection, the pass pipelines of the new pass
// manager, and symbol resolution for kiln's runtime and libm.
#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/TargetParser/Host.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Transforms/Utils/Cloning.h>

#include <algorithm>
#include <mutex>

#include "kiln/config.hpp"
#include "kiln/runtime/thread_pool.hpp"
#include "kiln/runtime/workspace.hpp"
#include "kiln/target.hpp"

namespace kiln::jit {

inline void init_llvm() {
    static std::once_flag once;
    std::call_once(once, [] {
        llvm::InitializeNativeTarget();
        llvm::InitializeNativeTargetAsmPrinter();
        llvm::InitializeNativeTargetAsmParser();
    });
}

// The host: its triple, CPU name (znver5 here) and full feature string.
inline Target host_target() {
    init_llvm();
    Target t;
    t.triple = llvm::sys::getProcessTriple();
    t.cpu = llvm::sys::getHostCPUName().str();
    llvm::StringMap<bool> feats = llvm::sys::getHostCPUFeatures();
    std::vector<std::string> on;
    for (auto& kv : feats) on.push_back((kv.second ? "+" : "-") + kv.first().str());
    std::sort(on.begin(), on.end());
    for (auto& f : on) t.features += (t.features.empty() ? "" : ",") + f;
    t.vector_bits = feats.lookup("avx512f") ? 512 : feats.lookup("avx") ? 256 : 128;
    return t;
}

KILN_SEPARABLE Target resolve(Target t) {
    Target host = host_target();
    if (t.triple.empty()) t.triple = host.triple;
    if (t.cpu.empty()) t.cpu = host.cpu;
    if (t.features.empty() && t.cpu == host.cpu) t.features = host.features;
    if (t.vector_bits == 0) t.vector_bits = t.cpu == host.cpu ? host.vector_bits : 128;
    if (t.kind != "llvm")
        kiln::detail::fail("build: target kind '", t.kind,
                           "' is not available in this build; Target::list_kinds() lists those that are");
    return t;
}

// BuildOptions::opt_level picks both halves: the new pass manager's pipeline of that level and the code
// generator's level (0: none, fast instruction selection; 3: aggressive).
inline llvm::CodeGenOptLevel codegen_level(int opt_level) {
    constexpr llvm::CodeGenOptLevel levels[] = {llvm::CodeGenOptLevel::None, llvm::CodeGenOptLevel::Less,
                                                llvm::CodeGenOptLevel::Default, llvm::CodeGenOptLevel::Aggressive};
    return levels[std::clamp(opt_level, 0, 3)];
}

inline std::unique_ptr<llvm::TargetMachine> target_machine(const Target& t, int opt_level = 3) {
    init_llvm();
    std::string err;
    const llvm::Target* target = llvm::TargetRegistry::lookupTarget(t.triple, err);
    if (!target) kiln::detail::fail("build: unknown target triple '", t.triple, "': ", err);
    llvm::TargetOptions opts;
    return std::unique_ptr<llvm::TargetMachine>(target->createTargetMachine(
            t.triple, t.cpu, t.features, opts, llvm::Reloc::PIC_, std::nullopt, codegen_level(opt_level)));
}

// What optimize() and target_machine() do to a module at each opt level, in words: part of the disk cache's
// key (with the level), so an entry compiled under other settings is never linked. Change it with either.
constexpr const char* kCodegenSettings =
        "opt levels 0-3 = O0-O3 pipelines, loop+slp vectorize from 1, no unroll; codegen none/less/default/"
        "aggressive; PIC";

inline void optimize(llvm::Module& m, llvm::TargetMachine& tm, int opt_level = 3) {
    llvm::LoopAnalysisManager lam;
    llvm::FunctionAnalysisManager fam;
    llvm::CGSCCAnalysisManager cgam;
    llvm::ModuleAnalysisManager mam;
    llvm::PipelineTuningOptions pto;
    pto.LoopVectorization = true;
    pto.SLPVectorization = true;
    // Unrolling is the schedule's decision (Stage::unroll). LLVM's unroller, left on, unrolled the
    // reduction loop around an already unrolled micro-kernel four times over, and every pass after it
    // worked on four copies: a third of the optimiser's time, for no measurable speed.
    pto.LoopUnrolling = false;
    llvm::PassBuilder pb(&tm, pto);
    pb.registerModuleAnalyses(mam);
    pb.registerCGSCCAnalyses(cgam);
    pb.registerFunctionAnalyses(fam);
    pb.registerLoopAnalyses(lam);
    pb.crossRegisterProxies(lam, fam, cgam, mam);
    constexpr const llvm::OptimizationLevel* levels[] = {&llvm::OptimizationLevel::O0, &llvm::OptimizationLevel::O1,
                                                         &llvm::OptimizationLevel::O2, &llvm::OptimizationLevel::O3};
    const llvm::OptimizationLevel& level = *levels[std::clamp(opt_level, 0, 3)];
    if (level == llvm::OptimizationLevel::O0)
        pb.buildO0DefaultPipeline(level).run(m, mam);
    else
        pb.buildPerModuleDefaultPipeline(level).run(m, mam);
}

inline llvm::SmallVector<char, 0> emit(llvm::Module& m, llvm::TargetMachine& tm, llvm::CodeGenFileType type) {
    llvm::SmallVector<char, 0> out;
    llvm::raw_svector_ostream os(out);
    llvm::legacy::PassManager pm;
    if (tm.addPassesToEmitFile(pm, os, nullptr, type))
        kiln::detail::fail("build: target '", tm.getTargetTriple().str(), "' cannot emit ",
                           type == llvm::CodeGenFileType::AssemblyFile ? "assembly" : "object files");
    pm.run(m);
    return out;
}

inline std::string emit_assembly(llvm::Module& m, llvm::TargetMachine& tm) {
    auto text = emit(m, tm, llvm::CodeGenFileType::AssemblyFile);
    return std::string(text.data(), text.size());
}

// The kernel as a relocatable object: what the JIT links, and what a saved executable stores.
inline std::string emit_object(llvm::Module& m, llvm::TargetMachine& tm) {
    auto bytes = emit(m, tm, llvm::CodeGenFileType::ObjectFile);
    return std::string(bytes.data(), bytes.size());
}

// One LLJIT for the process. Each kernel's object is a JIT library of its own, unloaded when the last
// kernel that uses it is gone (link_object's owner).
class JIT {
public:
    // The holder outlives every user it can: owners made by link_object keep only a weak reference, so a
    // kernel destroyed after the JIT at exit leaves its code alone rather than reaching a dead JIT.
    static const std::shared_ptr<JIT>& holder() {
        static const std::shared_ptr<JIT> jit(new JIT());
        return jit;
    }
    static JIT& instance() { return *holder(); }

    // Links an object file and returns the address of `symbol` and the library it lives in. Each object gets
    // a library of its own, so every kernel can use one symbol name wherever it was compiled (in this
    // process, in the one that saved an executable or filled the disk cache) without clashing with another's.
    std::pair<void*, llvm::orc::JITDylib*> add_object(const std::string& object, const std::string& symbol) {
        std::lock_guard<std::mutex> lk(m_);
        auto lib = jit_->createJITDylib("kiln_kernel_" + std::to_string(libraries_++));
        if (!lib) kiln::detail::fail("build: cannot create a JIT library: ", llvm::toString(lib.takeError()));
        lib->addToLinkOrder(jit_->getMainJITDylib());
        auto buffer = llvm::MemoryBuffer::getMemBufferCopy(object, symbol);
        auto drop = [&] { llvm::consumeError(jit_->getExecutionSession().removeJITDylib(*lib)); };
        if (auto err = jit_->addObjectFile(*lib, std::move(buffer))) {
            drop();
            kiln::detail::fail("build: the JIT rejected the object of '", symbol,
                               "': ", llvm::toString(std::move(err)));
        }
        auto sym = jit_->lookup(*lib, symbol);
        if (!sym) {
            const std::string why = llvm::toString(sym.takeError());
            drop();
            kiln::detail::fail("build: the JIT could not find '", symbol, "': ", why);
        }
        ++live_;
        return {sym->toPtr<void*>(), &*lib};
    }

    // Unloads a library add_object made: its code and data are freed.
    void remove(llvm::orc::JITDylib* lib) {
        std::lock_guard<std::mutex> lk(m_);
        if (auto err = jit_->getExecutionSession().removeJITDylib(*lib))
            llvm::consumeError(std::move(err));  // nothing to tell a destructor's caller; the memory stays
        --live_;
    }

    // Libraries loaded now.
    size_t live() {
        std::lock_guard<std::mutex> lk(m_);
        return live_;
    }

    std::string data_layout() const { return jit_->getDataLayout().getStringRepresentation(); }

private:
    JIT() {
        init_llvm();
        auto jtmb = llvm::orc::JITTargetMachineBuilder::detectHost();
        if (!jtmb) kiln::detail::fail("build: cannot detect the host for the JIT: ", llvm::toString(jtmb.takeError()));
        jtmb->setCodeGenOptLevel(llvm::CodeGenOptLevel::Aggressive);
        auto j = llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(std::move(*jtmb)).create();
        if (!j) kiln::detail::fail("build: cannot create the LLVM JIT: ", llvm::toString(j.takeError()));
        jit_ = std::move(*j);
        auto& dl = jit_->getDataLayout();
        auto gen = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(dl.getGlobalPrefix());
        if (!gen) kiln::detail::fail("build: cannot expose process symbols to the JIT");
        jit_->getMainJITDylib().addGenerator(std::move(*gen));
        llvm::orc::SymbolMap runtime;
        auto& es = jit_->getExecutionSession();
        auto add = [&](const char* name, void* addr) {
            runtime[es.intern(name)] = {llvm::orc::ExecutorAddr::fromPtr(addr), llvm::JITSymbolFlags::Exported};
        };
        add("kiln_parallel_for", reinterpret_cast<void*>(&runtime::kiln_parallel_for));
        add("kiln_alloc", reinterpret_cast<void*>(&runtime::kiln_alloc));
        add("kiln_free", reinterpret_cast<void*>(&runtime::kiln_free));
        if (auto err = jit_->getMainJITDylib().define(llvm::orc::absoluteSymbols(std::move(runtime))))
            kiln::detail::fail("build: cannot register kiln's runtime with the JIT: ", llvm::toString(std::move(err)));
    }

    std::unique_ptr<llvm::orc::LLJIT> jit_;
    std::mutex m_;
    int libraries_ = 0;
    size_t live_ = 0;
};

}  // namespace kiln::jit
