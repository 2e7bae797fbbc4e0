#pragma once
// Pass (GPU targets): block-wide barriers around every statement that fills shared memory. The threads of a
// block write a shared stage together and then read what the others wrote, so all of them wait after the
// writes (no thread reads an element before it is written) and before them (no thread overwrites an element,
// in the next iteration of a loop around them, that another thread is still reading).
#include <unordered_set>

#include "kiln/ir/visitor.hpp"

namespace kiln::passes {

namespace detail {

inline bool is_barrier(const Stmt& s) {
    auto* e = s.as<Evaluate>();
    auto* call = e ? e->value.as<Call>() : nullptr;
    return call && call->op == Intrinsic::Barrier;
}

// The statement `s` runs first or last, looking through the blocks and scopes it opens.
inline Stmt edge_statement(const Stmt& s, bool first) {
    if (auto* b = s.as<Block>())
        return b->stmts.empty() ? s : edge_statement(first ? b->stmts.front() : b->stmts.back(), first);
    if (auto* a = s.as<Allocate>()) return edge_statement(a->body, first);
    if (auto* l = s.as<LetStmt>()) return edge_statement(l->body, first);
    return s;
}

// `s` without the barrier it starts with (edge_statement(s, true) is one).
class DropLeadingBarrier : public IRMutator {
public:
    using IRMutator::mutate;

protected:
    Stmt mutate_block(const Block* n, const Stmt& s) override {
        if (done_) return s;
        std::vector<Stmt> out(n->stmts.begin(), n->stmts.end());
        if (is_barrier(out.front())) {
            out.erase(out.begin());
            done_ = true;
        } else {
            out.front() = mutate(out.front());
        }
        return out.empty() ? make_stmt<Evaluate>(Expr(0)) : make_block(out);
    }

private:
    bool done_ = false;
};

class BarrierInserter : public IRMutator {
public:
    using IRMutator::mutate;

protected:
    Stmt mutate_allocate(const Allocate* n, const Stmt& s) override {
        if (n->scope != "shared") return IRMutator::mutate_allocate(n, s);
        shared_.insert(n->buffer.get());
        Stmt out = IRMutator::mutate_allocate(n, s);
        shared_.erase(n->buffer.get());
        return out;
    }

    Stmt mutate_block(const Block* n, const Stmt& s) override {
        std::vector<Stmt> out;
        bool changed = false;
        // Two fills one after the other (a second shared stage allocated after the first is filled) share the
        // barrier between them.
        auto after_barrier = [&] { return !out.empty() && is_barrier(edge_statement(out.back(), false)); };
        auto barrier = [&] {
            if (!after_barrier())
                out.push_back(make_stmt<Evaluate>(make_expr<Call>(i32, Intrinsic::Barrier, std::vector<Expr>{})));
        };
        for (auto& c : n->stmts) {
            Stmt m = mutate(c);
            if (after_barrier() && is_barrier(edge_statement(m, true))) m = DropLeadingBarrier().mutate(m);
            changed |= !m.same_as(c);
            if (!writes_shared(m)) {
                out.push_back(m);
                continue;
            }
            barrier();
            out.push_back(m);
            barrier();
            changed = true;
        }
        return changed ? make_block(out) : s;
    }

private:
    bool writes_shared(const Stmt& s) const {
        struct Finder : IRVisitor {
            const std::unordered_set<const VarNode*>& shared;
            bool found = false;
            explicit Finder(const std::unordered_set<const VarNode*>& sh) : shared(sh) {}
            using IRVisitor::visit;
            void visit_store(const Store* n) override {
                found |= shared.count(n->buffer.get()) > 0;
                IRVisitor::visit_store(n);
            }
        } f(shared_);
        f.visit(s);
        return f.found;
    }

    std::unordered_set<const VarNode*> shared_;
};

}  // namespace detail

inline Stmt insert_barriers(const Stmt& s) { return detail::BarrierInserter().mutate(s); }

}  // namespace kiln::passes
