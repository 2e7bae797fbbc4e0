#pragma once
// Pass: transposes in registers. A layout change unrolled across rows leaves runs of L vector stores,
// store j reading a strided vector whose start moves by one element from store to store: lane k of store j
// is in[b + j + k*S]. Each such load is a gather, L separate loads. The run reads the same L x L elements
// as L contiguous rows instead (row k is in[b + k*S + 0 .. L-1]) and transposes them with log2(L) rounds of
// interleaving shuffles, each a single permute instruction: on AVX-512, a 16 x 16 block of floats is 16
// loads and 64 permutes instead of 16 gathers. Runs after unrolling, which makes the runs.
#include <optional>

#include "kiln/arith/simplify.hpp"
#include "kiln/ir/analysis.hpp"
#include "kiln/ir/visitor.hpp"

namespace kiln::passes {

namespace detail {

// A store of one whole strided vector load, all lanes, into another buffer.
struct StridedCopy {
    const Store* store;
    const Load* load;
    Expr ramp;  // the load's index, simplified to a ramp
    const Ramp* index() const { return ramp.as<Ramp>(); }
};

inline std::optional<StridedCopy> strided_copy(const Stmt& s) {
    auto* st = s.as<Store>();
    if (!st || st->predicate.defined()) return std::nullopt;
    auto* ld = st->value.as<Load>();
    if (!ld || ld->predicate.defined() || ld->buffer.same_as(st->buffer)) return std::nullopt;
    const int lanes = ld->type.lanes;
    if (lanes < 2 || lanes > 64 || (lanes & (lanes - 1)) != 0) return std::nullopt;
    // Unrolling leaves indices as sums of broadcasts and ramps; the simplifier folds them into one ramp.
    Expr index = arith::simplify(ld->index);
    auto* r = index.as<Ramp>();
    if (!r || is_const_int(r->stride, 1) || is_const_int(r->stride, 0)) return std::nullopt;
    return StridedCopy{st, ld, index};
}

// Lanes 0 .. L/2-1 (low) or L/2 .. L-1 (high) of a and b, alternating: a0 b0 a1 b1 ...
inline std::vector<int> interleave_lanes(int lanes, bool high) {
    std::vector<int> idx;
    for (int i = 0; i < lanes / 2; ++i) {
        const int k = i + (high ? lanes / 2 : 0);
        idx.push_back(k);
        idx.push_back(lanes + k);
    }
    return idx;
}

class TransposeInRegisters : public IRMutator {
public:
    using IRMutator::mutate;

protected:
    Stmt mutate_block(const Block* n, const Stmt& s) override {
        std::vector<Stmt> in;
        bool changed = false;
        for (auto& c : n->stmts) {
            in.push_back(mutate(c));
            changed |= !in.back().same_as(c);
        }
        // Each statement is looked at once (its index simplified once), however many runs it might start.
        std::vector<std::optional<StridedCopy>> copies;
        for (auto& c : in) copies.push_back(strided_copy(c));
        std::vector<Stmt> out;
        for (size_t i = 0; i < in.size();) {
            if (auto run = run_at(copies, i)) {
                out.push_back(transposed(*run));
                i += run->size();
                changed = true;
            } else {
                out.push_back(in[i++]);
            }
        }
        return changed ? make_block(out) : s;
    }

private:
    // The L copies starting at copies[i] when they read one L x L block: the same buffer and stride, and
    // starts b, b + 1, ..., b + L - 1.
    static std::optional<std::vector<StridedCopy>> run_at(const std::vector<std::optional<StridedCopy>>& copies,
                                                          size_t i) {
        const auto& first = copies[i];
        if (!first) return std::nullopt;
        const size_t lanes = static_cast<size_t>(first->index()->lanes);
        if (i + lanes > copies.size()) return std::nullopt;
        std::vector<StridedCopy> run{*first};
        for (size_t j = 1; j < lanes; ++j) {
            const auto& c = copies[i + j];
            if (!c || !c->load->buffer.same_as(first->load->buffer) || c->load->type != first->load->type ||
                !equal(c->index()->stride, first->index()->stride))
                return std::nullopt;
            const Expr step = arith::simplify(c->index()->base - first->index()->base);
            if (!is_const_int(step, static_cast<int64_t>(j))) return std::nullopt;
            run.push_back(*c);
        }
        return run;
    }

    static Stmt transposed(const std::vector<StridedCopy>& run) {
        const int lanes = static_cast<int>(run.size());
        const Load* load = run[0].load;
        const Ramp* index = run[0].index();
        std::vector<std::pair<Var, Expr>> lets;
        std::vector<Expr> v;
        for (int k = 0; k < lanes; ++k) {
            Expr row = make_expr<Load>(load->type, load->buffer,
                                       make_expr<Ramp>(arith::simplify(index->base + index->stride * k),
                                                       make_int(index->base.type(), 1), lanes),
                                       Expr());
            Var name(load->buffer.name() + ".row" + std::to_string(k), load->type);
            lets.emplace_back(name, row);
            v.push_back(name);
        }
        // Interleaving the first half of the rows with the second, log2(L) times, leaves column j in v[j].
        for (int round = 1; round < lanes; round *= 2) {
            std::vector<Expr> next(static_cast<size_t>(lanes));
            for (int i = 0; i < lanes / 2; ++i)
                for (bool high : {false, true}) {
                    Var name(load->buffer.name() + ".t" + std::to_string(round) + "_" +
                                     std::to_string(2 * i + (high ? 1 : 0)),
                             load->type);
                    lets.emplace_back(name, make_expr<Shuffle>(std::vector<Expr>{v[static_cast<size_t>(i)],
                                                                                 v[static_cast<size_t>(i + lanes / 2)]},
                                                               interleave_lanes(lanes, high)));
                    next[static_cast<size_t>(2 * i + (high ? 1 : 0))] = name;
                }
            v = next;
        }
        std::vector<Stmt> stores;
        for (size_t j = 0; j < run.size(); ++j)
            stores.push_back(make_stmt<Store>(run[j].store->buffer, v[j], run[j].store->index, Expr()));
        Stmt body = make_block(stores);
        for (size_t k = lets.size(); k-- > 0;) body = make_stmt<LetStmt>(lets[k].first, lets[k].second, body);
        return body;
    }
};

}  // namespace detail

inline Stmt transpose_in_registers(const Stmt& s) { return detail::TransposeInRegisters().mutate(s); }

}  // namespace kiln::passes
