#pragma once
// Integer expressions as sums of terms with constant coefficients, so that the simplifier can
// cancel (x*32 + y) - x*32 and decide comparisons between such sums.
#include "kiln/ir/analysis.hpp"

namespace kiln::arith {

struct LinearForm {
    std::vector<std::pair<Expr, int64_t>> terms;  // term, coefficient (non-zero)
    int64_t constant = 0;
    bool ok = true;  // false on overflow

    void add_term(const Expr& t, int64_t c) {
        if (c == 0) return;
        for (auto& [e, k] : terms) {
            if (equal(e, t)) {
                if (__builtin_add_overflow(k, c, &k)) ok = false;
                return;
            }
        }
        terms.emplace_back(t, c);
    }
    void add(const LinearForm& o, int64_t scale) {
        for (auto& [e, k] : o.terms) {
            int64_t c;
            if (__builtin_mul_overflow(k, scale, &c)) ok = false;
            add_term(e, c);
        }
        int64_t c;
        if (__builtin_mul_overflow(o.constant, scale, &c) || __builtin_add_overflow(constant, c, &constant)) ok = false;
        ok &= o.ok;
        std::erase_if(terms, [](auto& p) { return p.second == 0; });
    }
};

inline LinearForm to_linear(const Expr& e) {
    LinearForm f;
    if (auto* i = e.as<IntImm>()) {
        f.constant = i->value;
        return f;
    }
    if (auto* n = e.as<Add>()) {
        f.add(to_linear(n->a), 1);
        f.add(to_linear(n->b), 1);
        return f;
    }
    if (auto* n = e.as<Sub>()) {
        f.add(to_linear(n->a), 1);
        f.add(to_linear(n->b), -1);
        return f;
    }
    if (auto* n = e.as<Mul>()) {
        if (auto* c = n->b.as<IntImm>()) {
            f.add(to_linear(n->a), c->value);
            return f;
        }
        if (auto* c = n->a.as<IntImm>()) {
            f.add(to_linear(n->b), c->value);
            return f;
        }
    }
    f.add_term(e, 1);
    return f;
}

inline Expr from_linear(const LinearForm& f, Type t) {
    Expr sum;
    // Positive terms first reads naturally: x*32 + y - z + 5.
    for (int pass = 0; pass < 2; ++pass) {
        for (auto& [e, k] : f.terms) {
            if ((k > 0) != (pass == 0)) continue;
            int64_t mag = k > 0 ? k : -k;
            Expr term = mag == 1 ? e : make_binary(ExprKind::Mul, e, make_int(t, mag));
            if (!sum.defined())
                sum = k > 0 ? term : make_binary(ExprKind::Sub, make_int(t, 0), term);
            else
                sum = make_binary(k > 0 ? ExprKind::Add : ExprKind::Sub, sum, term);
        }
    }
    if (!sum.defined()) return make_int(t, f.constant);
    if (f.constant > 0) return make_binary(ExprKind::Add, sum, make_int(t, f.constant));
    if (f.constant < 0) return make_binary(ExprKind::Sub, sum, make_int(t, -f.constant));
    return sum;
}

}  // namespace kiln::arith
