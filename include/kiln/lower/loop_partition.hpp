#pragma once
// Pass: loop partitioning. A loop whose body holds a guard `likely(...)` whose conjuncts bound its own
// variable v (`a*v + rest < bound` for the tail of a split, `y - pad >= 0 && y - pad < H` for zero
// padding) is cut in three: a middle loop over the iterations where those conjuncts provably hold
// (the guard reduced to the others) and the loops before and after it, which keep the guard; where the
// bound depends on no loop inside, the guard fails on every iteration there, so it becomes false and
// what it guarded disappears from those loops.
// Vectorized loops are left whole: their guards become predicated lanes instead. Parallel loops are
// left whole too: halves of a parallel loop run one after the other, so a tail of one iteration would
// run alone on one thread. Their bodies are unswitched instead: each iteration tests once whether it
// lies where every guard bounding the parallel variable holds, and runs a copy of the body without those
// guards if so (the full tiles of a product whose columns do not divide by the tile), the guarded body if
// not. The loops inside the guarded copy still split, at a point computed from the parallel variable.
// A guard on an unrolled loop that is not linear in the parallel variable (fused axes: `v/13`) is
// tested at its worst case over the inner loops, so full tiles stay unrolled; each copy is simplified
// over the range of the parallel variable where it runs, so the last tile's loops are unrolled too.
#include <set>

#include "kiln/arith/interval.hpp"

namespace kiln::passes {

namespace detail {

// The ranges of the loops inside a statement, so the guard's other terms can be swept.
inline arith::RelaxMap inner_loop_ranges(const Stmt& s) {
    arith::RelaxMap out;
    struct V : IRVisitor {
        arith::RelaxMap& out;
        explicit V(arith::RelaxMap& o) : out(o) {}
        using IRVisitor::visit;
        void visit_for(const For* n) override {
            out[n->var.get()] = {n->min, n->min + n->extent - 1};
            IRVisitor::visit_for(n);
        }
    } v(out);
    v.visit(s);
    return out;
}

// The variables of the loops inside a statement that are of one of `kinds`.
inline std::set<const VarNode*> loop_vars(const Stmt& s, std::initializer_list<ForKind> kinds) {
    struct V : IRVisitor {
        std::initializer_list<ForKind> kinds;
        std::set<const VarNode*> out;
        using IRVisitor::visit;
        void visit_for(const For* n) override {
            if (std::find(kinds.begin(), kinds.end(), n->for_kind) != kinds.end()) out.insert(n->var.get());
            IRVisitor::visit_for(n);
        }
    } v;
    v.kinds = kinds;
    v.visit(s);
    return v.out;
}

inline void collect_likely(const Stmt& s, std::vector<Expr>& out) {
    post_order_visit(s, [&](const Expr& e) {
        if (auto* c = e.as<Call>(); c && c->op == Intrinsic::Likely) out.push_back(e);
    });
}

class ReplaceExpr : public IRMutator {
public:
    ReplaceExpr(const ExprNode* target, Expr with) : target_(target), with_(std::move(with)) {}
    using IRMutator::mutate;
    Expr mutate(const Expr& e) override { return e.get() == target_ ? with_ : IRMutator::mutate(e); }

private:
    const ExprNode* target_;
    Expr with_;
};

// A guard's conjuncts, with `a < min(x, y)` (a tile clipped at the edge of its tensor) taken as two.
inline void conjuncts(const Expr& c, std::vector<Expr>& out) {
    if (auto* a = c.as<And>()) {
        conjuncts(a->a, out);
        conjuncts(a->b, out);
    } else if (auto* lt = c.as<LT>(); lt && lt->b.as<Min>()) {
        conjuncts(lt->a < lt->b.as<Min>()->a, out);
        conjuncts(lt->a < lt->b.as<Min>()->b, out);
    } else {
        out.push_back(c);
    }
}

class LoopPartitioner : public IRMutator {
public:
    using IRMutator::mutate;

protected:
    Stmt mutate_for(const For* n, const Stmt& s) override {
        if (runs_concurrently(n->for_kind)) {
            parallel_vars_.insert(n->var.get());
            Stmt r = unswitch(n, s);
            parallel_vars_.erase(n->var.get());
            return r;
        }
        if (n->for_kind != ForKind::Vectorized && cuts_[n->var.get()] < max_cuts) {
            std::vector<Expr> guards;
            collect_likely(n->body, guards);
            const arith::RelaxMap inner = inner_loop_ranges(n->body);
            for (const Expr& g : guards) {
                std::vector<Expr> parts, rest;
                conjuncts(g.as<Call>()->args[0], parts);
                // [first, last): where every conjunct on this loop's variable holds. An end no conjunct
                // bounds stays the loop's own, unclamped: nested clamps grow with every split.
                Expr lo = n->min, hi = n->min + n->extent;
                Expr from, to;
                // An end set only by conjuncts that no inner loop moves is exact: beyond it the guard
                // fails on every iteration, so that edge computes nothing (the rows of zero padding a
                // convolution window hangs over, which then cost no loop at all).
                bool from_exact = true, to_exact = true;
                for (const Expr& c : parts) {
                    auto [f, t] = holds_within(n, c, inner);
                    if (!f.defined() && !t.defined()) rest.push_back(c);
                    const bool inner_free = !uses_any_var(c, inner);
                    if (f.defined()) from = from.defined() ? kiln::max(from, f) : f, from_exact &= inner_free;
                    if (t.defined()) to = to.defined() ? kiln::min(to, t) : t, to_exact &= inner_free;
                }
                if (!from.defined() && !to.defined()) continue;
                // A split that leaves guarded edges happens once per guard and variable: the edges'
                // own loops (and the copies of this loop in a sibling's edges) would split again, and
                // the copies multiply. Clipping to exact ends leaves no edges, so it always may.
                const bool clips = (!from.defined() || from_exact) && (!to.defined() || to_exact);
                if (!clips && done_.count({g.get(), n->var.get()})) continue;
                Expr first = from.defined() ? arith::simplify(kiln::max(lo, kiln::min(from, hi))) : lo;
                Expr last = to.defined() ? arith::simplify(kiln::max(first, kiln::min(to, hi))) : hi;
                // An unrolled loop cut where an enclosing serial loop says (the pixels of a convolution tile
                // at the image's right edge, clipped by the window column kw: `min(15 - kw, 14)`) would get
                // an extent that is not constant and stay a loop, its accumulators in memory (half the
                // speed). Kept whole, it unrolls, and each copy's guard folds against the outer loop's range
                // or stays one test. Cuts by the parallel variable are fine: its copies are narrowed.
                if (n->for_kind == ForKind::Unrolled && !constant_pieces({lo, first, last, hi})) continue;
                Expr kept;
                for (auto& c : rest) kept = kept.defined() ? (kept && c) : c;
                Stmt middle_body =
                        ReplaceExpr(g.get(), kept.defined() ? likely(kept) : make_int(boolean, 1)).mutate(n->body);
                // The edges keep the guard; loops inside them may still split on it, this loop may not.
                if (!clips) done_.insert({g.get(), n->var.get()});
                auto loop = [&](Expr begin, Expr end, Stmt body) {
                    Expr extent = arith::simplify(end - begin);
                    if (auto* e = as_const_int(extent); e && *e <= 0) return make_stmt<Evaluate>(Expr(0));
                    ++cuts_[n->var.get()];
                    Stmt piece =
                            mutate(make_stmt<For>(n->var, begin, extent, n->for_kind, std::move(body), n->annotations));
                    --cuts_[n->var.get()];
                    return piece;
                };
                const Stmt never = ReplaceExpr(g.get(), make_int(boolean, 0)).mutate(n->body);
                std::vector<Stmt> loops;
                if (from.defined()) loops.push_back(loop(lo, first, from_exact ? never : n->body));
                loops.push_back(loop(first, last, middle_body));
                if (to.defined()) loops.push_back(loop(last, hi, to_exact ? never : n->body));
                return make_block(loops);
            }
            if (Stmt cut = split_shifted_tile(n, inner); cut.defined()) return cut;
        }
        return IRMutator::mutate_for(n, s);
    }

private:
    // A tile shifted inwards (TailStrategy::ShiftInwards: min(v*f, n - f) + i) starts at v*f on every
    // iteration but the last: those split off with the min resolved, so the full tiles' indices are plain
    // sums the simplifier can divide by a row length, and the last tile's are constants. Every min that
    // compares the same two sides (the simplifier may have copied it into several indices) is resolved.
    Stmt split_shifted_tile(const For* n, const arith::RelaxMap& inner) {
        const VarNode* v = n->var.get();
        std::vector<const Min*> mins;
        post_order_visit(n->body, [&](const Expr& e) {
            if (auto* m = e.as<Min>(); m && m->type.is_scalar() && m->type.is_integer() && uses_var(e, v))
                mins.push_back(m);
        });
        for (const Min* m : mins) {
            const Expr diff = arith::simplify(m->a - m->b);
            if (uses_any_var(diff, inner)) continue;
            auto [from, to] = holds_within(n, m->a <= m->b, inner);
            if (from.defined() || !to.defined()) continue;
            const Expr lo = n->min, hi = n->min + n->extent;
            const Expr last = arith::simplify(kiln::max(lo, kiln::min(to, hi)));
            if (is_one(arith::simplify(last <= lo)) || is_one(arith::simplify(last >= hi))) continue;
            auto piece = [&](Expr begin, Expr end, bool take_a) {
                Stmt body = ResolveMin(diff, take_a).mutate(n->body);
                ++cuts_[v];
                Stmt p = mutate(make_stmt<For>(n->var, begin, arith::simplify(end - begin), n->for_kind,
                                               std::move(body), n->annotations));
                --cuts_[v];
                return p;
            };
            return make_block({piece(lo, last, true), piece(last, hi, false)});
        }
        return {};
    }

    class ResolveMin : public IRMutator {
    public:
        ResolveMin(Expr diff, bool take_a) : diff_(std::move(diff)), take_a_(take_a) {}
        using IRMutator::mutate;

    protected:
        Expr mutate_binary(const BinaryNode* n, const Expr& e) override {
            Expr r = IRMutator::mutate_binary(n, e);
            auto* m = r.as<Min>();
            if (m && m->type.is_scalar() && equal(arith::simplify(m->a - m->b), diff_)) return take_a_ ? m->a : m->b;
            return r;
        }

    private:
        Expr diff_;
        bool take_a_;
    };

    // A parallel loop over `if (in range) {body without the guards that bound its variable} else {body}`.
    Stmt unswitch(const For* n, const Stmt& s) {
        std::vector<Expr> guards;
        collect_likely(n->body, guards);
        const arith::RelaxMap inner = inner_loop_ranges(n->body);
        const std::set<const VarNode*> unrolled = loop_vars(n->body, {ForKind::Unrolled, ForKind::Vectorized});
        const std::set<const VarNode*> serial = loop_vars(n->body, {ForKind::Serial});
        std::vector<Expr> tests;
        Stmt fast = n->body;
        std::set<const ExprNode*> seen;
        for (const Expr& g : guards) {
            if (!seen.insert(g.get()).second) continue;
            std::vector<Expr> parts, rest;
            conjuncts(g.as<Call>()->args[0], parts);
            Expr from, to;
            std::vector<Expr> found;
            for (const Expr& c : parts) {
                auto [f, t] = holds_within(n, c, inner);
                // A conjunct that bounds one serial loop inside besides the parallel variable (a window row
                // kh over the padding: `v + kh - 1 >= 0`) clips that loop's range in a single copy of the
                // body; a second copy for the rows it does not clip would differ only in that loop's
                // bounds, and doubled the code of a depthwise convolution for nothing.
                if ((f.defined() || t.defined()) && bounds_one_serial_loop(c, inner, serial)) {
                    rest.push_back(c);
                    continue;
                }
                if (f.defined()) from = from.defined() ? kiln::max(from, f) : f;
                if (t.defined()) to = to.defined() ? kiln::min(to, t) : t;
                if (f.defined() || t.defined()) continue;
                // A bound on an unrolled loop that is not linear in the parallel variable (the last
                // tile of channel blocks where the variable fuses blocks with rows: `c < 63 - (v/13)*2`)
                // is tested as it is, at the worst values of the inner loops: split inside, the unrolled
                // loop would get an extent that is not constant and stay a loop. A serial loop splits
                // inside at no such cost, and a second copy of its body costs code.
                Expr w = uses_any_var(c, unrolled) ? holds_everywhere(n, c, inner) : Expr();
                if (w.defined())
                    found.push_back(w);
                else
                    rest.push_back(c);
            }
            if (!from.defined() && !to.defined() && found.empty()) continue;
            if (from.defined()) found.push_back(Expr(n->var) >= from);
            if (to.defined()) found.push_back(Expr(n->var) < to);
            for (const Expr& c : found)
                if (std::none_of(tests.begin(), tests.end(), [&](const Expr& t) { return equal(t, c); }))
                    tests.push_back(c);
            Expr kept;
            for (auto& c : rest) kept = kept.defined() ? (kept && c) : c;
            fast = ReplaceExpr(g.get(), kept.defined() ? likely(kept) : make_int(boolean, 1)).mutate(fast);
        }
        if (tests.empty()) return IRMutator::mutate_for(n, s);
        Expr in_range;
        for (auto& t : tests) in_range = in_range.defined() ? (in_range && t) : t;
        arith::BoundScope scope;
        if (auto* mn = as_const_int(n->min), *ext = as_const_int(n->extent); mn && ext)
            scope[n->var.get()] = {*mn, *mn + *ext - 1};
        in_range = arith::simplify(in_range, scope);
        if (auto* k = as_const_int(in_range); k && *k == 0) return IRMutator::mutate_for(n, s);
        if (is_one(in_range))
            return make_stmt<For>(n->var, n->min, n->extent, n->for_kind, mutate(fast), n->annotations);
        // Each copy runs where the test holds or fails, which narrows the parallel variable when the test
        // is one comparison; simplified over that range, a copy's extents are often constant again. The
        // last tile of 5 channel blocks in pairs, fused with 14 rows, fails `v/14 < 2` only for v >= 28:
        // there the tile holds one block, and its unrolled loops stay unrolled rather than becoming
        // loops over accumulators in memory (five times slower).
        auto narrowed = [&](Stmt copy, bool holds) {
            if (auto r = range_where(n, in_range, holds)) copy = arith::Simplifier({{n->var.get(), *r}}).mutate(copy);
            return copy;
        };
        // Both copies keep some guards as the same nodes; each splits on them as if it were the only copy.
        const auto done = done_;
        Stmt fast_body = mutate(narrowed(fast, true));
        done_ = done;
        Stmt body = make_stmt<IfThenElse>(likely(in_range), fast_body, mutate(narrowed(n->body, false)));
        return make_stmt<For>(n->var, n->min, n->extent, n->for_kind, body, n->annotations);
    }

    // Whether `c` uses exactly one variable of the loops inside, and that one is a serial loop's.
    static bool bounds_one_serial_loop(const Expr& c, const arith::RelaxMap& inner,
                                       const std::set<const VarNode*>& serial) {
        std::set<const VarNode*> used;
        post_order_visit(c, [&](const Expr& e) {
            if (auto* v = e.as<VarNode>(); v && inner.count(v)) used.insert(v);
        });
        return used.size() == 1 && serial.count(*used.begin());
    }

    // Whether the pieces between consecutive cuts have constant extents, or extents set by enclosing
    // parallel loops alone.
    bool constant_pieces(const std::vector<Expr>& cuts) const {
        for (size_t i = 0; i + 1 < cuts.size(); ++i) {
            const Expr extent = arith::simplify(cuts[i + 1] - cuts[i]);
            if (as_const_int(extent)) continue;
            bool parallel_only = true;
            post_order_visit(extent, [&](const Expr& e) {
                if (auto* v = e.as<VarNode>()) parallel_only &= parallel_vars_.count(v) > 0;
            });
            if (!parallel_only) return false;
        }
        return true;
    }

    std::set<const VarNode*> parallel_vars_;  // the parallel loops around the loop being partitioned
    std::set<std::pair<const ExprNode*, const VarNode*>> done_;
    // How often the pieces of one loop have been cut again on the way here. Every cut nests the piece's
    // bounds one min/max deeper, and simplifying those grows exponentially with the depth; two cuts
    // already clip a convolution's window on both sides.
    std::unordered_map<const VarNode*, int> cuts_;
    static constexpr int max_cuts = 2;

    // The integer comparison `cond` as f < 0; undefined for any other condition.
    static Expr negative_form(const Expr& cond) {
        if (!cond.type().is_scalar()) return {};
        auto integer = [](const BinaryNode* x) { return x->a.type().is_integer(); };
        if (auto* x = cond.as<LT>(); x && integer(x)) return x->a - x->b;
        if (auto* x = cond.as<LE>(); x && integer(x)) return x->a - x->b - 1;
        if (auto* x = cond.as<GT>(); x && integer(x)) return x->b - x->a;
        if (auto* x = cond.as<GE>(); x && integer(x)) return x->b - x->a - 1;
        return {};
    }

    // The range of n's variable where `cond` holds (or fails), when cond is a single linear comparison
    // on the variable v or on v/d; none otherwise.
    static std::optional<arith::ConstBound> range_where(const For* n, const Expr& cond, bool holds) {
        const int64_t *mn = as_const_int(n->min), *ext = as_const_int(n->extent);
        const Expr f = negative_form(cond);
        if (!mn || !ext || !f.defined()) return {};
        arith::LinearForm lf;
        // Holds: f < 0, that is -f - 1 >= 0; fails: f >= 0.
        lf.add(arith::to_linear(f), holds ? -1 : 1);
        lf.constant -= holds ? 1 : 0;
        if (!lf.ok || lf.terms.size() != 1) return {};
        auto [u, k] = lf.terms[0];
        int64_t d = 1;
        if (auto* q = u.as<Div>()) {
            const int64_t* c = as_const_int(q->b);
            if (!c || *c <= 0) return {};
            d = *c;
            u = q->a;
        }
        if (u.get() != n->var.get()) return {};
        // k*(v/d) + c >= 0, in floor division.
        int64_t lo = *mn, hi = *mn + *ext - 1;
        if (k > 0)
            lo = std::max(lo, -kiln::detail::floor_div(lf.constant, k) * d);
        else
            hi = std::min(hi, kiln::detail::floor_div(lf.constant, -k) * d + d - 1);
        if (lo > hi) return {};
        return arith::ConstBound{lo, hi};
    }

    // A test of n's variable alone that implies `cond` for every value of the loops inside n: its
    // worst case over them; undefined where cond does not depend on n's variable or the worst case
    // is not known.
    static Expr holds_everywhere(const For* n, const Expr& cond, const arith::RelaxMap& inner) {
        const Expr f = negative_form(cond);
        if (!f.defined() || !uses_var(f, n->var.get())) return {};
        auto r = arith::eval_interval(f, inner);
        if (!r.max.defined()) return {};
        Expr m = arith::simplify(r.max);
        if (uses_any_var(m, inner)) return {};
        return m < make_int(m.type(), 0);
    }

    // The iterations [from, to) of n where `cond` provably holds for every value of the loops inside n;
    // either end is undefined where the condition does not bound it, both where cond is not a linear
    // comparison on n's variable.
    std::pair<Expr, Expr> holds_within(const For* n, const Expr& cond, const arith::RelaxMap& inner) {
        const Expr f = negative_form(cond);
        if (!f.defined()) return {};
        const VarNode* v = n->var.get();
        arith::LinearForm lf = arith::to_linear(f);
        if (!lf.ok) return {};
        int64_t k = 0;
        arith::LinearForm rest;
        rest.constant = lf.constant;
        for (auto& [t, c] : lf.terms) {
            if (t.get() == v)
                k = c;
            else if (uses_var(t, v))
                return {};
            else
                rest.add_term(t, c);
        }
        if (k == 0) return {};
        auto r = arith::eval_interval(arith::from_linear(rest, f.type()), inner);
        if (!r.max.defined()) return {};
        Expr m = arith::simplify(r.max);
        if (uses_any_var(m, inner) || uses_var(m, v)) return {};
        const Type t = m.type();
        // k*v + max(rest) < 0:  k > 0: v <= floor((-max - 1) / k);  k < 0: v >= floor(max / -k) + 1 (floor division).
        if (k > 0) return {Expr(), arith::simplify((make_int(t, 0) - m - 1) / make_int(t, k) + 1)};
        return {arith::simplify(m / make_int(t, -k) + 1), Expr()};
    }
};

}  // namespace detail

inline Stmt loop_partition(const Stmt& s) { return detail::LoopPartitioner().mutate(s); }

}  // namespace kiln::passes
