#pragma once
// Pass: reuse of intermediate buffers. Top-level intermediates whose lifetimes (the top-level
// statements that touch them) do not overlap share one allocation when their element types match
// and their sizes are constant.
#include "kiln/ir/analysis.hpp"

namespace kiln::passes {

namespace detail {
class BufferRenamer : public IRMutator {
public:
    explicit BufferRenamer(const std::unordered_map<const VarNode*, Var>& m) : map_(m) {}
    using IRMutator::mutate;

protected:
    Var renamed(const Var& v) const {
        auto it = map_.find(v.get());
        return it == map_.end() ? v : it->second;
    }
    Expr mutate_load(const Load* n, const Expr& e) override {
        Expr r = IRMutator::mutate_load(n, e);
        auto* l = r.as<Load>();
        return make_expr<Load>(l->type, renamed(l->buffer), l->index, l->predicate);
    }
    Stmt mutate_store(const Store* n, const Stmt& s) override {
        Stmt r = IRMutator::mutate_store(n, s);
        auto* st = r.as<Store>();
        return make_stmt<Store>(renamed(st->buffer), st->value, st->index, st->predicate);
    }

private:
    const std::unordered_map<const VarNode*, Var>& map_;
};

inline bool touches_buffer(const Stmt& s, const VarNode* buf) {
    bool found = false;
    struct V : IRVisitor {
        const VarNode* buf;
        bool& found;
        V(const VarNode* b, bool& f) : buf(b), found(f) {}
        using IRVisitor::visit;
        void visit_load(const Load* n) override {
            found |= n->buffer.get() == buf;
            IRVisitor::visit_load(n);
        }
        void visit_store(const Store* n) override {
            found |= n->buffer.get() == buf;
            IRVisitor::visit_store(n);
        }
    } v(buf, found);
    v.visit(s);
    return found;
}
}  // namespace detail

inline Stmt storage_reuse(const Stmt& s) {
    std::vector<const Allocate*> allocs;
    Stmt body = s;
    while (auto* a = body.as<Allocate>()) {
        allocs.push_back(a);
        body = a->body;
    }
    if (allocs.size() < 2) return s;
    std::vector<Stmt> parts = body.as<Block>() ? body.as<Block>()->stmts : std::vector<Stmt>{body};
    struct Slot {
        Var var;
        Type dtype;
        int64_t size;
        int last;
    };
    std::vector<Slot> slots;
    std::vector<Stmt> dynamic;  // allocations that keep their own storage
    std::unordered_map<const VarNode*, Var> rename;
    std::vector<std::pair<int, const Allocate*>> order;
    for (auto* a : allocs) {
        int first = -1, last = -1;
        for (size_t i = 0; i < parts.size(); ++i)
            if (detail::touches_buffer(parts[i], a->buffer.get())) {
                if (first < 0) first = static_cast<int>(i);
                last = static_cast<int>(i);
            }
        order.push_back({first, a});
        auto* size = as_const_int(a->extents[0]);
        if (!size || first < 0) {
            slots.push_back({a->buffer, a->dtype, -1, last});
            continue;
        }
        Slot* chosen = nullptr;
        for (auto& sl : slots)
            if (sl.size >= 0 && sl.dtype == a->dtype && sl.last < first) {
                chosen = &sl;
                break;
            }
        if (!chosen) {
            slots.push_back({a->buffer, a->dtype, *size, last});
            continue;
        }
        chosen->size = std::max(chosen->size, *size);
        chosen->last = last;
        rename[a->buffer.get()] = chosen->var;
    }
    if (rename.empty()) return s;
    Stmt out = detail::BufferRenamer(rename).mutate(body);
    for (auto it = slots.rbegin(); it != slots.rend(); ++it) {
        Expr size = it->size >= 0 ? Expr(static_cast<int>(it->size)) : Expr();
        if (it->size < 0) {
            for (auto* a : allocs)
                if (a->buffer.same_as(it->var)) size = a->extents[0];
        }
        out = make_stmt<Allocate>(it->var, it->dtype, std::vector<Expr>{size}, out);
    }
    return out;
}

}  // namespace kiln::passes
