#pragma once
// The host/device split for GPU targets, and the checks that must hold before device code is emitted.
// Each statement at the root of the lowered body (a stage's loop nest, with the stages computed inside it)
// becomes one device kernel, launched in order; its launch dimensions are the extents of the loops bound
// to blockIdx.* (the grid) and threadIdx.* (the block). Buffers allocated at the root (intermediates computed
// at the root) live in device memory for the call and are passed to every kernel. Rules, each a kiln::Error
// that names the stage: every loop around a bound loop is bound too; a thread index has one extent per kernel;
// a block's threads are a constant number within the device's limit; a kernel binds at least one loop.
#include <array>
#include <string>
#include <vector>

#include "kiln/arith/simplify.hpp"
#include "kiln/ir/printer.hpp"
#include "kiln/ir/visitor.hpp"
#include "kiln/target.hpp"

namespace kiln::passes {

struct DeviceKernel {
    std::string name;
    Stmt body;  // bound loops become thread indices in device code
    // Launch dimensions x, y, z: the grid's from the sizes; the block's constant. 1 where nothing is bound.
    std::array<Expr, 3> grid{Expr(1), Expr(1), Expr(1)}, block{Expr(1), Expr(1), Expr(1)};
};

// A buffer in device memory for the duration of one call (an intermediate computed at the root).
struct DeviceTemporary {
    Var buffer;
    Type dtype;
    Expr elements;
};

struct HostDeviceSplit {
    std::vector<DeviceKernel> kernels;
    std::vector<DeviceTemporary> temporaries;
};

namespace detail {

// The stage a statement computes (the first buffer it stores to), the stage a kernel ends with (the last: its
// output, after the stages computed inside it), and whether it binds a loop.
struct StageFinder : IRVisitor {
    std::string stage, last;
    bool binds = false;
    using IRVisitor::visit;
    void visit_store(const Store* n) override {
        last = n->buffer.name();
        if (stage.empty()) stage = n->buffer.name();
        IRVisitor::visit_store(n);
    }
    void visit_for(const For* n) override {
        binds |= n->for_kind == ForKind::ThreadBinding;
        IRVisitor::visit_for(n);
    }
};

inline std::string stage_of(const Stmt& s) {
    StageFinder f;
    f.visit(s);
    return f.stage.empty() ? "?" : f.stage;
}

inline std::string kernel_stage(const Stmt& s) {
    StageFinder f;
    f.visit(s);
    return f.last.empty() ? "?" : f.last;
}

class ThreadExtents : public IRVisitor {
public:
    ThreadExtents(DeviceKernel& k, const Target& t) : k_(k), target_(t) {}
    using IRVisitor::visit;

    void visit_for(const For* n) override {
        const std::string& tag = thread_tag(*n);
        if (tag.empty()) {
            // A loop around the bound loops would run whole on every thread, each writing the same elements.
            if (!bound_depth_ && contains_binding(n->body))
                kiln::detail::fail("lower: stage '", stage_of(n->body), "': loop '", n->var.name(),
                                   "' is outside its GPU thread bindings and not bound; on a GPU target every loop "
                                   "around a bound loop must be bound too: bind it (to blockIdx or threadIdx) or "
                                   "reorder it inside the bound loops");
            IRVisitor::visit_for(n);
            return;
        }
        const bool block = tag.rfind("blockIdx.", 0) == 0;
        const int dim = tag.back() - 'x';
        Expr& slot = block ? k_.grid[dim] : k_.block[dim];
        const Expr extent = arith::simplify(n->extent);
        auto* c = as_const_int(extent);
        if (!block && !c)
            kiln::detail::fail("lower: stage '", stage_of(n->body), "': ", tag, " is bound to loop '", n->var.name(),
                               "' of extent ", to_plain_string(extent),
                               ", which is not a constant; the threads of a block are a fixed number: split the "
                               "axis by a constant factor and bind the inner axis to ",
                               tag);
        const std::string loop = "loop '" + n->var.name() + "' of stage '" + stage_of(n->body) + "'";
        auto seen = bound_.find(tag);
        if (seen != bound_.end()) {
            if (!is_const_int(arith::simplify(seen->second.second - extent), 0))
                kiln::detail::fail("lower: ", tag, " is bound to ", seen->second.first, " (extent ",
                                   to_plain_string(seen->second.second), ") and to ", loop, " (extent ",
                                   to_plain_string(extent),
                                   ") in one kernel; a thread index has one extent per "
                                   "kernel: split the axes by the same factor, or bind them to different thread "
                                   "indices");
        } else {
            bound_[tag] = {loop, extent};
            slot = extent;
        }
        ++bound_depth_;
        block_depth_ += block;
        IRVisitor::visit_for(n);
        block_depth_ -= block;
        --bound_depth_;
    }

    // Shared memory is one block's; computed outside the block loops, there is no block to hold it.
    [[noreturn]] static void shared_outside_block(const Allocate* n) {
        kiln::detail::fail(
                "lower: stage '", n->buffer.name(),
                "' is in shared memory but computed outside the loops "
                "bound to blockIdx, where there is no block to hold it: compute_at it inside the loop "
                "bound to blockIdx (or inside the threadIdx loops, at a reduction loop), or set_scope(\"global\")");
    }

    void visit_allocate(const Allocate* n) override {
        if (n->scope == "shared") {
            if (!block_depth_) shared_outside_block(n);
            const Expr elements = arith::simplify(n->extents[0]);
            auto* c = as_const_int(elements);
            if (!c)
                kiln::detail::fail("lower: stage '", n->buffer.name(), "' is in shared memory with ",
                                   to_plain_string(n->extents[0]),
                                   " elements, which is not a constant; a block's "
                                   "shared memory is sized when the kernel is built: split the axes of the loops it is "
                                   "computed in by constant factors");
            shared_bytes_ += *c * n->dtype.bytes();
            shared_ += std::string(shared_.empty() ? "" : ", ") + "'" + n->buffer.name() + "' " +
                       std::to_string(*c * n->dtype.bytes());
        }
        IRVisitor::visit_allocate(n);
    }

    void visit_store(const Store* n) override {
        if (!bound_depth_)
            kiln::detail::fail("lower: stage '", n->buffer.name(),
                               "' has no loop bound to a GPU thread, so one thread would compute all of it; bind its "
                               "outer loops: s[",
                               n->buffer.name(),
                               "].bind(axis, kiln::thread_axis(\"blockIdx.x\")), and "
                               "an inner one to threadIdx.x");
        IRVisitor::visit_store(n);
    }

    void finish(const Stmt& kernel) {
        int64_t threads = 1;
        std::string shape;
        for (int d = 0; d < 3; ++d) {
            threads *= *as_const_int(k_.block[d]);
            shape += (d ? " x " : "") + to_plain_string(k_.block[d]);
        }
        if (shared_bytes_ > target_.max_shared_memory_per_block)
            kiln::detail::fail("lower: stage '", kernel_stage(kernel), "': its kernel needs ", shared_bytes_,
                               " bytes of shared memory (", shared_, ") and the device has ",
                               target_.max_shared_memory_per_block,
                               " per block; split the axes the shared stages are computed at by smaller factors");
        if (threads > target_.max_threads_per_block)
            kiln::detail::fail("lower: stage '", kernel_stage(kernel), "': a block of ", shape, " = ", threads,
                               " threads exceeds the device's limit of ", target_.max_threads_per_block,
                               " threads per block; split the axes bound to threadIdx by smaller factors");
    }

private:
    static bool contains_binding(const Stmt& s) {
        StageFinder f;
        f.visit(s);
        return f.binds;
    }

    DeviceKernel& k_;
    const Target& target_;
    int bound_depth_ = 0, block_depth_ = 0;
    int64_t shared_bytes_ = 0;
    std::string shared_;
    std::map<std::string, std::pair<std::string, Expr>> bound_;
};

inline void split_roots(const Stmt& s, const std::string& name, const Target& t, HostDeviceSplit& out) {
    switch (s.kind()) {
        case StmtKind::Block:
            for (auto& c : s.as<Block>()->stmts) split_roots(c, name, t, out);
            return;
        case StmtKind::Allocate: {
            auto* a = s.as<Allocate>();
            if (a->scope == "shared") ThreadExtents::shared_outside_block(a);
            Expr n = a->extents[0];
            for (size_t i = 1; i < a->extents.size(); ++i) n = n * a->extents[i];
            out.temporaries.push_back({a->buffer, a->dtype, arith::simplify(n)});
            split_roots(a->body, name, t, out);
            return;
        }
        case StmtKind::Evaluate: return;
        case StmtKind::LetStmt: {
            // A value bound at the root goes into each kernel that follows it.
            auto* l = s.as<LetStmt>();
            const size_t first = out.kernels.size();
            split_roots(l->body, name, t, out);
            for (size_t i = first; i < out.kernels.size(); ++i)
                out.kernels[i].body = make_stmt<LetStmt>(l->var, l->value, out.kernels[i].body);
            return;
        }
        default: {
            DeviceKernel k;
            k.name = name + "_kernel" + std::to_string(out.kernels.size());
            k.body = s;
            ThreadExtents extents(k, t);
            extents.visit(s);
            extents.finish(s);
            out.kernels.push_back(std::move(k));
        }
    }
}

}  // namespace detail

// The device kernels of a lowered body and the device memory they share, for a GPU target whose limits are
// filled in (Target::with_device_limits).
inline HostDeviceSplit split_host_device(const Stmt& body, const std::string& name, const Target& target) {
    HostDeviceSplit out;
    detail::split_roots(body, name, target.with_device_limits(), out);
    return out;
}

}  // namespace kiln::passes
