#pragma once
// Pass: storage flattening. Realize becomes Allocate of a flat buffer; multi-dimensional
// Provide and tensor reads become Store and Load at a row-major (or reorder_storage) offset
// relative to the region's origin.
#include "kiln/arith/simplify.hpp"
#include "kiln/lower/buffer_arg.hpp"
#include "kiln/lower/inline_compute.hpp"

namespace kiln::passes {

namespace detail {

struct FlatBuffer {
    Var var;
    std::vector<Expr> mins, strides;
};

class StorageFlattener : public IRMutator {
public:
    StorageFlattener(const std::vector<BufferArg>& args,
                     const std::unordered_map<const OperationNode*, std::vector<int>>& orders,
                     const std::unordered_map<const OperationNode*, std::string>& scopes)
            : orders_(orders), scopes_(scopes) {
        for (auto& a : args) buffers_[a.op.get()] = make_flat(a.op.get(), a.buffer, {}, a.op->shape);
    }
    using IRMutator::mutate;

protected:
    Stmt mutate_realize(const Realize* n, const Stmt&) override {
        const OperationNode* op = n->producer.get();
        std::vector<Expr> mins, extents;
        for (auto& r : n->bounds) {
            mins.push_back(r.min);
            extents.push_back(r.extent);
        }
        Var buf(op->name, handle);
        buffers_[op] = make_flat(op, buf, mins, extents);
        Stmt body = mutate(n->body);
        buffers_.erase(op);
        Expr total = Expr(1);
        for (auto& e : extents) total = total * e;
        auto scope = scopes_.find(op);
        return make_stmt<Allocate>(buf, op->dtype, std::vector<Expr>{arith::simplify(total)}, body,
                                   scope == scopes_.end() ? std::string() : scope->second);
    }

    Stmt mutate_provide(const Provide* n, const Stmt&) override {
        auto& fb = lookup(n->producer.get());
        Expr value = mutate(n->value);
        if (value.type() != n->producer->dtype) value = cast(n->producer->dtype, value);
        return make_stmt<Store>(fb.var, value, offset(fb, n->args), Expr());
    }

    Expr mutate_call(const Call* n, const Expr& e) override {
        if (n->op != Intrinsic::TensorAccess) return IRMutator::mutate_call(n, e);
        auto& fb = lookup(n->producer.get());
        std::vector<Expr> args;
        for (auto& a : n->args) args.push_back(mutate(a));
        return make_expr<Load>(n->type, fb.var, offset(fb, args), Expr());
    }

private:
    FlatBuffer make_flat(const OperationNode* op, Var var, std::vector<Expr> mins, const std::vector<Expr>& extents) {
        const size_t nd = extents.size();
        std::vector<int> order(nd);
        for (size_t d = 0; d < nd; ++d) order[d] = static_cast<int>(d);
        if (auto it = orders_.find(op); it != orders_.end() && !it->second.empty()) order = it->second;
        std::vector<Expr> strides(nd);
        Expr stride = Expr(1);
        for (size_t k = nd; k-- > 0;) {
            strides[order[k]] = stride;
            stride = arith::simplify(stride * extents[order[k]]);
        }
        return FlatBuffer{std::move(var), std::move(mins), std::move(strides)};
    }

    const FlatBuffer& lookup(const OperationNode* op) {
        auto it = buffers_.find(op);
        if (it == buffers_.end())
            kiln::detail::fail("tensor '", op->name,
                               "' is read but neither passed as an argument nor computed by the schedule; ",
                               "add it to the argument list (inputs) or to the Schedule's outputs");
        return it->second;
    }

    static Expr offset(const FlatBuffer& fb, const std::vector<Expr>& args) {
        Expr off = Expr(0);
        for (size_t d = 0; d < args.size(); ++d) {
            Expr i = fb.mins.empty() ? args[d] : args[d] - fb.mins[d];
            off = off + i * fb.strides[d];
        }
        return off;
    }

    std::unordered_map<const OperationNode*, FlatBuffer> buffers_;
    const std::unordered_map<const OperationNode*, std::vector<int>>& orders_;
    const std::unordered_map<const OperationNode*, std::string>& scopes_;
};

}  // namespace detail

// Allocations of the stages in `scopes` carry their memory scope (Stage::set_scope).
inline Stmt storage_flatten(const Stmt& s, const std::vector<BufferArg>& args,
                            const std::unordered_map<const OperationNode*, std::vector<int>>& storage_orders = {},
                            const std::unordered_map<const OperationNode*, std::string>& scopes = {}) {
    return detail::StorageFlattener(args, storage_orders, scopes).mutate(s);
}

}  // namespace kiln::passes
