#pragma once
// Pass (GPU targets): block-wide barriers around every statement that fills shared memory. The threads of a
// block write a shared stage together and then read what the others wrote, so all of them wait after the
// writes (no thread reads an element before it is written) and before them (no thread overwrites an element,
// in the next iteration of a loop around them, that another thread is still reading).
#include <unordered_set>

#include "kiln/ir/visitor.hpp"

namespace kiln::passes {

namespace detail {

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
        auto barrier = [&] {
            auto* last = out.empty() ? nullptr : out.back().as<Evaluate>();
            auto* call = last ? last->value.as<Call>() : nullptr;
            if (!call || call->op != Intrinsic::Barrier)
                out.push_back(make_stmt<Evaluate>(make_expr<Call>(i32, Intrinsic::Barrier, std::vector<Expr>{})));
        };
        for (auto& c : n->stmts) {
            Stmt m = mutate(c);
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
