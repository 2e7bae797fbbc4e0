#pragma once
// graph::export_library: a compiled model as one shared library that the runtime (runtime/,
// kiln/runtime.h) loads with dlopen, in a program that has neither LLVM nor protobuf. Like TVM's
// export_library: the kernels' object code, renamed kiln_kernel_<i> so kernels compiled under one name
// do not clash, is linked with a small object of our own that holds
//   kiln_model_data / kiln_model_data_size  the model file (kiln/runtime/model_file.hpp) without object
//                                           code, weights included, 64-byte aligned;
//   kiln_model_abi                          the version of this contract;
//   kiln_model_runtime                      three slots the runtime fills before the first call, and
//   kiln_parallel_for, kiln_alloc, kiln_free hidden trampolines through them, which the kernels call.
// The trampolines keep the library free of undefined kiln symbols, so it loads into a program that links
// the runtime statically as well as one that links it as a shared library, and binds to that runtime's
// thread pool and workspace rather than to whichever the dynamic linker would find first.
#include "kiln/graph/compile.hpp"

namespace kiln::graph {

struct ExportOptions {
    // The command that links the shared library: a C compiler driver and its flags. Empty: $KILN_CC if
    // set, else `cc`, with -fuse-ld=lld when LLD is installed (it links a model in a fraction of the time).
    std::string linker;
};

// Writes `exe` as a shared library at `path`, loadable by the runtime (kiln_model_load, or
// kiln::runtime::Model). Its results are bit-identical to the executable's: the same object code runs
// on the same memory plan. The library runs only on CPUs with the features it was compiled for; the
// runtime refuses to load it elsewhere.
KILN_SEPARABLE void export_library(const Executable& exe, const std::string& path, const ExportOptions& opt = {});

// Writes `exe` as portable C99 into the directory `dir` (created if needed): model.c, every kernel as
// kiln_kernel_<i> (kiln/codegen/c/codegen_c.hpp) and the model file with its weights as a string, and a
// Makefile that compiles it into model.so. The runtime loads that library as it loads one from
// export_library; its parallel loops use OpenMP (OMP_NUM_THREADS) rather than the runtime's pool. This is
// the path to machines LLVM does not reach: nothing in model.c depends on the CPU it was written on.
// Kernels arrive unrolled and lane by lane, as lowered for the JIT, so a C compiler takes its time over
// them: about a minute at -O2 for MobileNet-V2 (the Makefile's default).
KILN_SEPARABLE void export_c_source(const Executable& exe, const std::string& dir);

}  // namespace kiln::graph

#if defined(KILN_IMPLEMENTATION) || !defined(KILN_SEPARATE_IMPLEMENTATION)
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/ObjCopy/ConfigManager.h>
#include <llvm/ObjCopy/ObjCopy.h>
#include <llvm/Object/Binary.h>
#include <llvm/Support/raw_ostream.h>

#include "kiln/codegen/c/codegen_c.hpp"
#include "kiln/runtime/model_abi.hpp"

namespace kiln::graph {

namespace detail {

// Renames the entry point of one kernel's object file.
inline std::string rename_symbol(const std::string& object, const std::string& from, const std::string& to) {
    auto binary = llvm::object::createBinary(llvm::MemoryBufferRef(object, from));
    if (!binary)
        kiln::detail::fail("export_library: the object code of kernel '", from,
                           "' cannot be read: ", llvm::toString(binary.takeError()));
    llvm::objcopy::ConfigManager config;
    config.Common.SymbolsToRename.insert({from, to});
    llvm::SmallVector<char, 0> out;
    llvm::raw_svector_ostream os(out);
    if (auto err = llvm::objcopy::executeObjcopyOnBinary(config, **binary, os))
        kiln::detail::fail("export_library: renaming kernel '", from, "' failed: ", llvm::toString(std::move(err)));
    return std::string(out.data(), out.size());
}

// GCC 12 takes LLVM's placement-style `new GlobalVariable` (User::operator new with its operand count) for a
// mismatch with its sized delete; it is not one.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
// The object of our own: the model file, the ABI version, the runtime slots and the trampolines.
inline std::string model_object(const std::string& model_file, const std::string& triple) {
    llvm::LLVMContext ctx;
    llvm::Module mod("kiln_model", ctx);
    Target t;  // data and three trampolines: the triple's generic CPU suffices
    t.triple = triple;
    t.cpu = "generic";
    auto tm = jit::target_machine(t);
    mod.setDataLayout(tm->createDataLayout());
    mod.setTargetTriple(triple);
    auto* ptr = llvm::PointerType::get(ctx, 0);
    auto* i32 = llvm::Type::getInt32Ty(ctx);
    auto* i64 = llvm::Type::getInt64Ty(ctx);

    auto* data_init = llvm::ConstantDataArray::getRaw(model_file, model_file.size(), llvm::Type::getInt8Ty(ctx));
    auto* data = new llvm::GlobalVariable(mod, data_init->getType(), true, llvm::GlobalValue::ExternalLinkage,
                                          data_init, runtime::model_abi::data_symbol);
    data->setAlignment(llvm::Align(runtime::detail::constant_alignment));
    new llvm::GlobalVariable(mod, i64, true, llvm::GlobalValue::ExternalLinkage,
                             llvm::ConstantInt::get(i64, model_file.size()), runtime::model_abi::size_symbol);
    new llvm::GlobalVariable(mod, i32, true, llvm::GlobalValue::ExternalLinkage,
                             llvm::ConstantInt::get(i32, runtime::model_abi::version), runtime::model_abi::abi_symbol);
    auto* slots_type = llvm::ArrayType::get(ptr, runtime::model_abi::slot_count);
    auto* slots =
            new llvm::GlobalVariable(mod, slots_type, false, llvm::GlobalValue::ExternalLinkage,
                                     llvm::ConstantAggregateZero::get(slots_type), runtime::model_abi::runtime_symbol);

    auto trampoline = [&](const char* name, llvm::FunctionType* type, unsigned slot) {
        auto* f = llvm::Function::Create(type, llvm::GlobalValue::ExternalLinkage, name, mod);
        f->setVisibility(llvm::GlobalValue::HiddenVisibility);
        llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", f));
        auto* target = b.CreateLoad(ptr, b.CreateConstInBoundsGEP2_64(slots_type, slots, 0, slot));
        std::vector<llvm::Value*> args;
        for (auto& a : f->args()) args.push_back(&a);
        auto* call = b.CreateCall(type, target, args);
        call->setTailCall();
        if (type->getReturnType()->isVoidTy())
            b.CreateRetVoid();
        else
            b.CreateRet(call);
    };
    auto* void_t = llvm::Type::getVoidTy(ctx);
    trampoline("kiln_parallel_for", llvm::FunctionType::get(void_t, {ptr, ptr, i32}, false),
               runtime::model_abi::slot_parallel_for);
    trampoline("kiln_alloc", llvm::FunctionType::get(ptr, {i64}, false), runtime::model_abi::slot_alloc);
    trampoline("kiln_free", llvm::FunctionType::get(void_t, {ptr}, false), runtime::model_abi::slot_free);
    return jit::emit_object(mod, *tm);
}
#pragma GCC diagnostic pop

inline std::string linker_command(const ExportOptions& opt) {
    if (!opt.linker.empty()) return opt.linker;
    const std::string cc = kiln::detail::c_compiler();
    if (cc.empty())
        kiln::detail::fail(
                "export_library: there is no `cc` to link the library with; install a C compiler (apt-get install "
                "gcc) ",
                "or name one in ExportOptions::linker or $KILN_CC");
    return kiln::detail::program_on_path("ld.lld") ? cc + " -fuse-ld=lld" : cc;
}

}  // namespace detail

KILN_SEPARABLE void export_library(const Executable& exe, const std::string& path, const ExportOptions& opt) {
    runtime::ModelFile m = exe.describe(true);
    const std::string triple = runtime::model_abi::target_field(m.target, "mtriple");
    if (triple.empty()) kiln::detail::fail("export_library: the kernels' target '", m.target, "' names no triple");

    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path dir =
            fs::temp_directory_path(ec) / ("kiln_export_" + std::to_string(::getpid()) + "_" +
                                           std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    if (ec || !fs::create_directories(dir, ec))
        kiln::detail::fail("export_library: cannot create a temporary directory for the objects under '",
                           fs::temp_directory_path(ec).string(), "'");
    struct RemoveDir {
        fs::path dir;
        ~RemoveDir() {
            std::error_code ec;
            fs::remove_all(dir, ec);
        }
    } cleanup{dir};
    auto write = [&](const fs::path& file, const std::string& bytes) {
        std::ofstream f(file, std::ios::binary);
        f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        if (!f) kiln::detail::fail("export_library: cannot write '", file.string(), "'");
    };

    std::string objects;
    for (size_t k = 0; k < m.kernels.size(); ++k) {
        auto& kernel = m.kernels[k];
        const std::string name = runtime::model_abi::kernel_symbol(k);
        const fs::path file = dir / (name + ".o");
        write(file, detail::rename_symbol(std::string(kernel.object), kernel.symbol, name));
        objects += " " + kiln::detail::shell_quote(file.string());
        kernel.symbol = name;
        kernel.object = {};
    }
    m.has_objects = false;
    const fs::path model = dir / "kiln_model.o";
    write(model, detail::model_object(runtime::write_model_file(m), triple));
    objects += " " + kiln::detail::shell_quote(model.string());

    const std::string command = detail::linker_command(opt) + " -shared -Wl,-z,noexecstack -o " +
                                kiln::detail::shell_quote(path) + objects + " -lm";
    int status = 0;
    const std::string output = kiln::detail::run_command(command, status);
    if (status != 0)
        kiln::detail::fail("export_library: linking '", path, "' failed (", command, "):\n", output,
                           "name a working linker in ExportOptions::linker or $KILN_CC");
}

KILN_SEPARABLE void export_c_source(const Executable& exe, const std::string& dir) {
    runtime::ModelFile m = exe.describe(false);
    const auto kernels = exe.distinct_kernels();
    codegen::CodeGenC cg;
    for (size_t k = 0; k < kernels.size(); ++k) {
        if (!kernels[k]->lowered)
            kiln::detail::fail("export_c_source: kernel '", kernels[k]->symbol,
                               "' was linked from object code (a saved executable, or an ",
                               "executable the disk cache kept whole), which holds no loop IR; compile the model "
                               "(graph::compile, without ",
                               "CompileOptions::cache_executable) to write it as C");
        m.kernels[k].symbol = runtime::model_abi::kernel_symbol(k);
        cg.compile(*kernels[k]->lowered, m.kernels[k].symbol);
    }
    m.target = "c";
    const std::string data = runtime::write_model_file(m);

    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(dir, ec);
    std::ofstream c(fs::path(dir) / "model.c", std::ios::binary);
    if (!c)
        kiln::detail::fail("export_c_source: cannot write '", (fs::path(dir) / "model.c").string(),
                           "'; give a directory that can be written");
    c << "/* A model exported by kiln " KILN_VERSION
         " as C99: build it with the Makefile beside it and load model.so with\n"
         " * kiln_model_load (kiln/runtime.h). */\n"
      << codegen::c_prelude() << "\n"
      << cg.source()
      << "/* The model file the runtime reads (kiln/runtime/model_file.hpp): values, memory plan, steps, weights. */\n"
         "#if defined(__GNUC__)\n#define KILN_ALIGNED __attribute__((aligned(64)))\n#else\n#define "
         "KILN_ALIGNED\n#endif\n"
         "const char "
      << runtime::model_abi::data_symbol << "[] KILN_ALIGNED =\n";
    // Octal escapes: never more than three digits, so no escape swallows the character after it.
    std::string row;
    for (size_t i = 0; i < data.size(); ++i) {
        char esc[5];
        std::snprintf(esc, sizeof esc, "\\%03o", static_cast<unsigned char>(data[i]));
        row += esc;
        if (row.size() >= 256 || i + 1 == data.size()) {
            c << "\"" << row << "\"\n";
            row.clear();
        }
    }
    c << ";\nconst int64_t " << runtime::model_abi::size_symbol << " = " << data.size() << ";\n"
      << "const int32_t " << runtime::model_abi::abi_symbol << " = " << runtime::model_abi::version << ";\n"
      << "/* Slots the runtime fills with its thread pool and workspace; C kernels use OpenMP and malloc instead. */\n"
      << "void* " << runtime::model_abi::runtime_symbol << "[" << runtime::model_abi::slot_count << "];\n";
    if (!c) kiln::detail::fail("export_c_source: writing '", (fs::path(dir) / "model.c").string(), "' failed");
    std::ofstream mk(fs::path(dir) / "Makefile");
    mk << "# Builds model.so from model.c, written by kiln; kiln's runtime loads it (kiln_model_load in "
          "kiln/runtime.h).\n"
          "# CFLAGS: -O2 compiles a model in about a minute; -O3 -march=native runs faster and compiles several times\n"
          "# longer. OPENMP= builds without threads.\n"
          "CC ?= cc\nCFLAGS ?= -O2\nOPENMP ?= -fopenmp\n\n"
          "model.so: model.c\n\t$(CC) -std=c99 $(CFLAGS) $(OPENMP) -fPIC -shared -o $@ model.c -lm\n\n"
          "clean:\n\trm -f model.so\n\n.PHONY: clean\n";
    if (!mk) kiln::detail::fail("export_c_source: writing the Makefile in '", dir, "' failed");
}

}  // namespace kiln::graph
#endif  // the implementation
