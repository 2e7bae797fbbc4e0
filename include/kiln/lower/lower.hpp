#pragma once
// The lowering pipeline, top to bottom: from a schedule to the loop IR the backends compile.
// Every pass is a function in its own header; kiln::lower() can stop after any of them.
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/config.hpp"
#include "kiln/ir/printer.hpp"
#include "kiln/lower/buffer_arg.hpp"
#include "kiln/lower/split_host_device.hpp"
#include "kiln/schedule/schedule.hpp"
#include "kiln/target.hpp"

namespace kiln {

// A kernel ready for a backend: its tensor arguments, the symbolic sizes bound from them, and its body.
struct LoweredFunc {
    std::string name;
    std::vector<passes::BufferArg> args;
    std::vector<Var> size_vars;  // bound from argument shapes at call time
    Stmt body;
    std::string after;  // the last pass that ran
    // What the schedule asked for and did not get (a vectorized loop left serial, and why), also printed.
    std::vector<std::string> warnings;
    // Reads whose range depends on the sizes: checked by the caller before every call (check_bounds.hpp).
    std::vector<passes::BoundsRequirement> requirements;
    // GPU targets: the device kernels the body splits into, and the device memory they share.
    passes::HostDeviceSplit device;
};

inline std::ostream& operator<<(std::ostream& os, const LoweredFunc& f) {
    os << "// " << f.name << " after " << f.after << "\n";
    for (auto& w : f.warnings) os << "// warning: " << w << "\n";
    for (auto& r : f.requirements)
        os << "// requires: "
           << (r.upper ? to_plain_string(r.index) + " < " + to_plain_string(r.extent)
                       : to_plain_string(r.index) + " >= 0")
           << " (" << r.stage << " reads " << r.read << ")\n";
    os << f.name << "(";
    for (size_t i = 0; i < f.args.size(); ++i) {
        const auto& op = f.args[i].op;
        os << (i ? ", " : "") << op->name << ": " << op->dtype.str() << "[";
        for (size_t d = 0; d < op->shape.size(); ++d) os << (d ? ", " : "") << op->shape[d];
        os << "]";
    }
    os << ") {\n";
    IRPrinter p(os);
    std::ostringstream body;
    IRPrinter(body).print(f.body);
    std::istringstream lines(body.str());
    for (std::string line; std::getline(lines, line);) os << "  " << line << "\n";
    os << "}\n";
    for (auto& t : f.device.temporaries)
        os << "// device memory: " << t.buffer.name() << ": " << t.dtype.str() << "[" << to_plain_string(t.elements)
           << "]\n";
    for (auto& k : f.device.kernels) {
        auto dims = [](const std::array<Expr, 3>& d) {
            return "(" + to_plain_string(d[0]) + ", " + to_plain_string(d[1]) + ", " + to_plain_string(d[2]) + ")";
        };
        os << "// device kernel " << k.name << ": grid " << dims(k.grid) << ", block " << dims(k.block) << "\n";
    }
    return os;
}

struct LowerOptions {
    std::string name = "kernel";
    // Stop after this pass (one of lower_pass_names()); empty runs them all.
    std::string after{};
    // GPU targets add the host/device split and its checks, and leave out what only CPUs have.
    Target target{};
};

inline const std::vector<std::string>& lower_pass_names() {
    static const std::vector<std::string> names = {
            "schedule_ops",  "storage_flatten", "simplify",        "loop_partition",
            "lower_math",    "vectorize",       "unroll",          "transpose_in_registers",
            "storage_reuse", "final_simplify",  "insert_barriers", "split_host_device"};
    return names;
}

// The schedule lowered through the whole pipeline (or up to opt.after) into a kernel's loop IR.
KILN_SEPARABLE LoweredFunc lower_func(const Schedule& sched, const std::vector<Tensor>& args,
                                      const LowerOptions& opt = {});

// The loop IR of a schedule, printable: std::cout << kiln::lower(s, {A, B, C});
inline LoweredFunc lower(const Schedule& sched, const std::vector<Tensor>& args, const LowerOptions& opt = {}) {
    return lower_func(sched, args, opt);
}

}  // namespace kiln

#if defined(KILN_IMPLEMENTATION) || !defined(KILN_SEPARATE_IMPLEMENTATION)
#include <functional>

#include "kiln/lower/check_bounds.hpp"
#include "kiln/lower/infer_bound.hpp"
#include "kiln/lower/inline_compute.hpp"
#include "kiln/lower/insert_barriers.hpp"
#include "kiln/lower/loop_partition.hpp"
#include "kiln/lower/lower_math.hpp"
#include "kiln/lower/schedule_ops.hpp"
#include "kiln/lower/simplify.hpp"
#include "kiln/lower/storage_flatten.hpp"
#include "kiln/lower/storage_reuse.hpp"
#include "kiln/lower/transpose_in_registers.hpp"
#include "kiln/lower/unroll.hpp"
#include "kiln/lower/vectorize.hpp"

namespace kiln {

namespace passes::detail {

// Thread bindings only where there are threads to bind to, and the thread pool's loops only where there is one.
inline void check_loop_kinds(const Schedule& s, const Target& target) {
    for (auto& st : s.stages())
        for (auto& [iv, kind] : st->for_kind) {
            std::string axis = "?";
            for (auto& l : st->leaf_iter_vars)
                if (l.get() == iv) axis = l.name();
            if (kind == ForKind::ThreadBinding && !target.is_gpu())
                kiln::detail::fail("lower: stage '", st->name(), "': axis '", axis, "' is bound to ",
                                   st->annotations.at(iv).at(kThreadTag), ", which only GPU targets have; lower for ",
                                   "Target::opencl() or Target::cuda(), or use parallel() on the CPU");
            if (kind == ForKind::Parallel && target.is_gpu())
                kiln::detail::fail(
                        "lower: stage '", st->name(), "': axis '", axis,
                        "' is parallel, which is the CPU's thread pool; on a ", target.kind,
                        " target bind it to GPU threads instead: bind(axis, kiln::thread_axis(\"blockIdx.x\"))");
        }
}

inline void check_args(const Schedule& s, const std::vector<Tensor>& args) {
    std::unordered_set<const OperationNode*> seen;
    for (auto& t : args) {
        if (!t.defined()) kiln::detail::fail("lower: an argument tensor is undefined");
        if (!seen.insert(t.op().get()).second)
            kiln::detail::fail("lower: tensor '", t.name(), "' is passed twice; pass each tensor once");
        if (t.op()->kind == OpKind::Compute) {
            StageNode* st = s.find_stage(t.op().get());
            if (!st)
                kiln::detail::fail("lower: tensor '", t.name(),
                                   "' is not computed by this schedule; pass its inputs and outputs");
            if (!st->is_output)
                kiln::detail::fail(
                        "lower: tensor '", t.name(), "' is an intermediate stage, not an output of the schedule; ",
                        "pass the placeholders and the outputs (or make it an output when building the Schedule)");
        }
    }
    for (auto& o : s.outputs())
        if (!seen.count(o.op().get()))
            kiln::detail::fail("lower: output '", o.name(),
                               "' is missing from the argument list; pass every output so the kernel can write it");
}

inline std::vector<Var> size_vars_of(const std::vector<Tensor>& args) {
    std::vector<Var> out;
    for (auto& t : args)
        for (auto& d : t.shape())
            post_order_visit(d, [&](const Expr& e) {
                if (auto* v = e.as<VarNode>())
                    if (std::none_of(out.begin(), out.end(), [&](const Var& x) { return x.get() == v; }))
                        out.push_back(Var(e));
            });
    return out;
}

inline void check_free_vars(const Stmt& body, const std::vector<Var>& size_vars, const std::vector<BufferArg>& bufs) {
    std::unordered_set<const VarNode*> bound;
    for (auto& v : size_vars) bound.insert(v.get());
    for (auto& b : bufs) bound.insert(b.buffer.get());
    struct V : IRVisitor {
        std::unordered_set<const VarNode*>& bound;
        explicit V(std::unordered_set<const VarNode*>& b) : bound(b) {}
        using IRVisitor::visit;
        void visit_for(const For* n) override {
            bound.insert(n->var.get());
            IRVisitor::visit_for(n);
        }
        void visit_let_stmt(const LetStmt* n) override {
            bound.insert(n->var.get());
            IRVisitor::visit_let_stmt(n);
        }
        void visit_let(const Let* n) override {
            bound.insert(n->var.get());
            IRVisitor::visit_let(n);
        }
        void visit_allocate(const Allocate* n) override {
            bound.insert(n->buffer.get());
            IRVisitor::visit_allocate(n);
        }
        void visit_var(const VarNode* v) override {
            if (!bound.count(v))
                kiln::detail::fail(
                        "lower: variable '", v->name,
                        "' is used by the computation but is not the size of any argument's ",
                        "dimension, so it cannot be bound when the kernel is called; use it in a placeholder's shape");
        }
    } v(bound);
    v.visit(body);
}

}  // namespace passes::detail

KILN_SEPARABLE LoweredFunc lower_func(const Schedule& sched, const std::vector<Tensor>& args, const LowerOptions& opt) {
    using namespace passes;
    if (!opt.after.empty() &&
        std::find(lower_pass_names().begin(), lower_pass_names().end(), opt.after) == lower_pass_names().end()) {
        std::string all;
        for (auto& n : lower_pass_names()) all += (all.empty() ? "" : ", ") + n;
        kiln::detail::fail("lower: there is no pass '", opt.after, "'; the passes are ", all);
    }
    passes::detail::check_args(sched, args);
    passes::detail::check_loop_kinds(sched, opt.target);
    const bool gpu = opt.target.is_gpu();
    LoweredFunc f;
    f.name = opt.name;
    for (auto& t : args) f.args.push_back({t.op(), Var(t.name(), handle)});
    f.size_vars = passes::detail::size_vars_of(args);
    // Outputs are written through their current op (cache_write and rfactor replace it).
    for (auto& a : f.args)
        if (StageNode* st = sched.find_stage(a.op.get())) a.op = st->op;

    std::vector<StageInfo> stages = inline_compute(sched);
    for (auto& a : f.args)
        for (auto& s : stages)
            if (s.node->op == a.op) a.op = s.op;
    Bounds bounds = infer_bound(stages);
    f.requirements = check_bounds(stages, bounds, f.size_vars);
    std::unordered_map<const OperationNode*, std::vector<int>> orders;
    std::unordered_map<const OperationNode*, std::string> scopes;
    for (auto& s : stages) {
        if (!s.node->storage_order.empty()) orders[s.op.get()] = s.node->storage_order;
        if (gpu && s.node->scope == "shared") scopes[s.op.get()] = s.node->scope;
    }

    const std::vector<std::pair<std::string, std::function<Stmt(const Stmt&)>>> pipeline = {
            {"schedule_ops", [&](const Stmt&) { return schedule_ops(stages, bounds); }},
            {"storage_flatten", [&](const Stmt& s) { return storage_flatten(s, f.args, orders, scopes); }},
            {"simplify", [](const Stmt& s) { return simplify(s); }},
            // Copies of a loop body for its full tiles pay on a CPU; on a GPU they only diverge the threads.
            {"loop_partition", [&](const Stmt& s) { return gpu ? s : simplify(loop_partition(s)); }},
            {"lower_math", [](const Stmt& s) { return lower_math(s); }},
            {"vectorize", [&](const Stmt& s) { return vectorize(s, &f.warnings); }},
            {"unroll", [](const Stmt& s) { return unroll(s); }},
            // Register shuffles are the CPU's; a GPU thread reads the lanes one by one.
            {"transpose_in_registers", [&](const Stmt& s) { return gpu ? s : transpose_in_registers(s); }},
            // GPU scratch is registers or a block's shared memory, each sized per kernel: nothing to reuse.
            {"storage_reuse", [&](const Stmt& s) { return gpu ? s : storage_reuse(s); }},
            {"final_simplify", [](const Stmt& s) { return simplify(s); }},
            {"insert_barriers", [&](const Stmt& s) { return gpu ? insert_barriers(s) : s; }},
            {"split_host_device",
             [&](const Stmt& s) {
                 if (gpu) f.device = split_host_device(s, f.name, opt.target);
                 return s;
             }},
    };
    for (auto& [name, pass] : pipeline) {
        f.body = pass(f.body);
        f.after = name;
        if (name == opt.after) break;
    }
    if (f.after == lower_pass_names().back()) passes::detail::check_free_vars(f.body, f.size_vars, f.args);
    return f;
}

}  // namespace kiln
#endif  // the implementation
