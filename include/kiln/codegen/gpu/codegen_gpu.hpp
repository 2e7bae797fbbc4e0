#pragma once
// Device code for GPU targets: the device kernels of a lowered function (lower/split_host_device.hpp) printed
// as OpenCL C or CUDA C. Both are C-family languages, so the printer is the C backend's (codegen/c/codegen_c.hpp)
// with what differs between them as data (GpuLanguage, in cuda.hpp and opencl.hpp): the prelude of types and
// macros, how a kernel and a pointer to device memory are declared, and how a thread reads its index. A loop
// bound to a thread index becomes that index; a scratch buffer inside a kernel is an array in each thread's
// registers or local memory. No LLVM here.
#include <string>

#include "kiln/codegen/c/codegen_c.hpp"
#include "kiln/lower/lower.hpp"

namespace kiln::codegen {

struct GpuLanguage {
    const char* kind;                                     // the Target kind
    const char* prelude;                                  // types and macros the helpers and kernels use
    const char* kernel_prefix;                            // what a kernel's declaration starts with, before its name
    const char* global_pointer;                           // the qualifier of a pointer to device memory
    const char* shared_array;                             // the qualifier of an array in a block's shared memory
    const char* barrier;                                  // the statement every thread of a block waits at
    std::string (*thread_index)(const std::string& tag);  // "blockIdx.x" as the language reads it
};

class CodeGenGPU : public CodeGenC {
public:
    explicit CodeGenGPU(const GpuLanguage& language) : lang_(language) {}

    // Appends every device kernel of `f`, each named after the kernel it is. Parameters: the arguments'
    // buffers, then the device temporaries, then the sizes.
    void compile(const LoweredFunc& f) {
        check_types(f, lang_.kind);
        for (auto& k : f.device.kernels) {
            std::vector<std::pair<Var, Type>> buffers;
            for (auto& a : f.args) buffers.push_back({a.buffer, a.op->dtype});
            for (auto& t : f.device.temporaries) buffers.push_back({t.buffer, t.dtype});
            const std::string params = bind_params(buffers, f.size_vars, lang_.global_pointer);
            // Shared arrays are declared at the kernel's top, where OpenCL requires them: one per block either way.
            std::string shared;
            for (const Allocate* a : shared_allocations(k.body))
                shared += "    " + std::string(lang_.shared_array) + storage_type(a->dtype) + " " +
                          bind_buffer(a->buffer, a->dtype) + "[" + to_plain_string(a->extents[0]) + "];\n";
            out_ << lang_.kernel_prefix << " " << k.name << "(" << params << ") {\n"
                 << shared << print_body(k.body) << "}\n\n";
            forget_bindings();
        }
    }

    std::string source() const { return std::string(lang_.prelude) + c_family_helpers() + "\n" + out_.str(); }

protected:
    void print_for(const For* n) override {
        const std::string& tag = thread_tag(*n);
        if (tag.empty()) return CodeGenC::print_for(n);
        const std::string type = scalar_type(n->var.type());
        const std::string lo = expr(n->min, "");
        flush_pending();
        const std::string var = bind_var(n->var);
        const std::string index = "(" + type + ")" + lang_.thread_index(tag);
        line("{");
        ++indent_;
        line("const " + type + " " + var + " = " + (is_const_int(n->min, 0) ? index : lo + " + " + index) + ";");
        print(n->body);
        --indent_;
        line("}");
    }

    void print_evaluate(const Evaluate* n) override {
        auto* call = n->value.as<Call>();
        if (call && call->op == Intrinsic::Barrier) line(lang_.barrier);
    }

    void print_allocate(const Allocate* n) override {
        if (n->scope == "shared") return print(n->body);
        Expr total = n->extents[0];
        for (size_t i = 1; i < n->extents.size(); ++i) total = total * n->extents[i];
        const Expr elements = arith::simplify(total);
        auto* c = as_const_int(elements);
        if (!c)
            kiln::detail::fail("build: stage '", n->buffer.name(),
                               "' is computed inside a GPU kernel into a buffer of ", to_plain_string(total),
                               " elements, which is not a constant; a thread's scratch has a "
                               "fixed size: split the consumer's axes by constant factors and compute it at the inner "
                               "loop, or compute it at the root");
        flush_pending();
        line("{");
        ++indent_;
        line(storage_type(n->dtype) + " " + bind_buffer(n->buffer, n->dtype) + "[" +
             std::to_string(std::max<int64_t>(*c, 1)) + "];");
        print(n->body);
        --indent_;
        line("}");
    }

private:
    static std::vector<const Allocate*> shared_allocations(const Stmt& s) {
        struct Finder : IRVisitor {
            std::vector<const Allocate*> found;
            using IRVisitor::visit;
            void visit_allocate(const Allocate* n) override {
                if (n->scope == "shared") found.push_back(n);
                IRVisitor::visit_allocate(n);
            }
        } f;
        f.visit(s);
        return f.found;
    }

    const GpuLanguage& lang_;
};

// The device source of a function lowered for a GPU target: every kernel of its host/device split.
inline std::string emit_gpu(const LoweredFunc& f, const GpuLanguage& language) {
    CodeGenGPU cg(language);
    cg.compile(f);
    return cg.source();
}

}  // namespace kiln::codegen
