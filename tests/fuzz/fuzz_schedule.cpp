// Random computes with random schedules, drawn from the fuzzer's bytes, built and held to a naive
// interpreter of the computes (interpret.hpp). A schedule kiln refuses with a kiln::Error is fine; a
// crash, an internal error, or a result that differs from the interpreter's is a finding.
#include <fuzzer/FuzzedDataProvider.h>
#include <kiln/build.hpp>

#include <cstdio>
#include <cstdlib>

#include "interpret.hpp"

using namespace kiln;

namespace {

struct Pipeline {
    std::vector<Tensor> inputs;
    std::vector<Tensor> stages;  // producers first; the last is the output
};

Expr unary(FuzzedDataProvider& in, const Expr& x) {
    switch (in.ConsumeIntegralInRange(0, 6)) {
        case 0: return kiln::max(x, 0.f);
        case 1: return kiln::tanh(x);
        case 2: return kiln::sigmoid(x);
        case 3: return x * x;
        case 4: return kiln::abs(x) + 1.f;
        case 5: return select(x > 0.25f, x, x * 0.5f);
        default: return kiln::exp(kiln::min(x, 4.f));
    }
}

Pipeline draw_pipeline(FuzzedDataProvider& in) {
    const int M = in.ConsumeIntegralInRange(1, 37), N = in.ConsumeIntegralInRange(1, 37),
              K = in.ConsumeIntegralInRange(1, 19);
    auto A = placeholder({M, K}, f32, "A");
    auto B = placeholder({K, N}, f32, "B");
    auto X = placeholder({M, N}, f32, "X");
    switch (in.ConsumeIntegralInRange(0, 3)) {
        case 0: {  // a product with an epilogue
            auto k = reduce_axis(0, K, "k");
            auto C = compute(
                    {M, N}, [&](Expr i, Expr j) { return sum(A(i, k) * B(k, j), {k}); }, "C");
            auto D = compute(
                    {M, N}, [&](Expr i, Expr j) { return unary(in, C(i, j) + X(i, j)); }, "D");
            return {{A, B, X}, {C, D}};
        }
        case 1: {  // a stencil with guarded and clamped reads at the edges
            auto P = compute(
                    {M, N}, [&](Expr i, Expr j) { return unary(in, X(i, j)); }, "P");
            auto D = compute(
                    {M, N},
                    [&](Expr i, Expr j) {
                        return P(i, j) + P(kiln::min(i + 1, Expr(M - 1)), j) +
                               if_then_else(j >= 1, P(i, j - 1), Expr(0.f));
                    },
                    "D");
            return {{X}, {P, D}};
        }
        case 2: {  // a row softmax
            auto r = reduce_axis(0, N, "r");
            auto mx = compute(
                    {M}, [&](Expr i) { return kiln::max(X(i, r), {r}); }, "rowmax");
            auto e = compute(
                    {M, N}, [&](Expr i, Expr j) { return kiln::exp(X(i, j) - mx(i)); }, "e");
            auto r2 = reduce_axis(0, N, "r2");
            auto s = compute(
                    {M}, [&](Expr i) { return sum(e(i, r2), {r2}); }, "rowsum");
            auto D = compute(
                    {M, N}, [&](Expr i, Expr j) { return e(i, j) / s(i); }, "D");
            return {{X}, {mx, e, s, D}};
        }
        default: {  // a triangular reduction with a condition
            auto k = reduce_axis(0, N, "k");
            auto D = compute(
                    {M, N}, [&](Expr i, Expr j) { return sum(X(i, k), {k}, k <= j); }, "D");
            auto E = compute(
                    {M, N}, [&](Expr i, Expr j) { return unary(in, D(i, j)); }, "E");
            return {{X}, {D, E}};
        }
    }
}

void schedule_stage(FuzzedDataProvider& in, Schedule& s, const Tensor& t, bool root) {
    Stage st = s[t];
    const int factors[] = {1, 2, 3, 4, 5, 7, 8, 16};
    const int steps = in.ConsumeIntegralInRange(0, 5);
    for (int step = 0; step < steps; ++step) {
        auto leaves = st.leaf_iter_vars();
        const IterVar iv = leaves[in.ConsumeIntegralInRange<size_t>(0, leaves.size() - 1)];
        switch (in.ConsumeIntegralInRange(0, 6)) {
            case 0:
            case 1: {
                const int f = factors[in.ConsumeIntegralInRange(0, 7)];
                const auto tail = in.ConsumeBool() ? TailStrategy::GuardWithIf : TailStrategy::ShiftInwards;
                st.split(iv, f, tail);
                break;
            }
            case 2: {
                std::vector<IterVar> order = leaves;
                for (size_t i = order.size(); i > 1; --i)
                    std::swap(order[i - 1], order[in.ConsumeIntegralInRange<size_t>(0, i - 1)]);
                st.reorder(order);
                break;
            }
            case 3: {
                const size_t p = in.ConsumeIntegralInRange<size_t>(0, leaves.size() - 1);
                if (p + 1 < leaves.size()) st.fuse(leaves[p], leaves[p + 1]);
                break;
            }
            case 4: st.vectorize(iv); break;
            case 5: st.unroll(iv); break;
            default:
                if (root) st.parallel(iv);
                break;
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    ::setenv("KILN_CACHE_DIR", "off", 1);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    Pipeline p = draw_pipeline(in);
    const Tensor out = p.stages.back();
    Schedule s(out);
    std::vector<Buffer> bufs;
    fuzz::Interpreter ref;
    uint32_t seed = 1;
    for (auto& t : p.inputs) {
        const auto shape = fuzz::Interpreter::dims(t.op());
        Buffer b(shape, f32);
        std::vector<double> v(static_cast<size_t>(b.size()));
        for (int64_t i = 0; i < b.size(); ++i) {
            seed = seed * 1664525u + 1013904223u;
            const float x = static_cast<float>(seed >> 8) / 16777216.f * 2.f - 1.f;
            b.data_as<float>()[i] = x;
            v[static_cast<size_t>(i)] = x;
        }
        ref.inputs[t.op().get()] = std::move(v);
        bufs.push_back(std::move(b));
    }
    Buffer got(fuzz::Interpreter::dims(out.op()), f32);
    try {
        for (size_t i = 0; i + 1 < p.stages.size(); ++i) {
            const Tensor& t = p.stages[i];
            switch (in.ConsumeIntegralInRange(0, 2)) {
                case 0: s[t].compute_inline(); break;
                case 1: {
                    const Tensor& c = p.stages[i + 1];
                    auto leaves = s[c].leaf_iter_vars();
                    s[t].compute_at(s[c], leaves[in.ConsumeIntegralInRange<size_t>(0, leaves.size() - 1)]);
                    break;
                }
                default: break;
            }
        }
        if (out.op()->body.as<Reduce>() && in.ConsumeBool()) s.cache_write(out, "local");
        for (auto& t : p.stages)
            if (s[t].node()->attach != AttachType::Inline)
                schedule_stage(in, s, t, s[t].node()->attach == AttachType::Root);
        std::vector<Tensor> args = p.inputs;
        args.push_back(out);
        // KILN_FUZZ_VERBOSE=1 replaying one input shows what it built.
        if (std::getenv("KILN_FUZZ_VERBOSE"))
            for (const char* after : {"schedule_ops", "simplify", "loop_partition", "final_simplify"})
                std::fprintf(stderr, "%s\n", to_string(lower(s, args, {.after = after})).c_str());
        Kernel k = build(s, args, {.use_cache = false, .use_disk_cache = false});
        std::vector<detail::ArgValue> av;
        for (auto& b : bufs) av.push_back(detail::to_arg(b));
        av.push_back(detail::to_arg(got));
        k.call(av);
    } catch (const InternalError& e) {
        std::fprintf(stderr, "internal error: %s\n", e.what());
        __builtin_trap();
    } catch (const Error&) {
        return 0;  // a schedule refused, with its reason
    }
    const std::vector<double>& want = ref.values(out.op());
    for (int64_t i = 0; i < got.size(); ++i) {
        const double g = got.data_as<float>()[i], w = want[static_cast<size_t>(i)];
        if (!(std::abs(g - w) <= 1e-3 * (1 + std::abs(w)))) {
            std::fprintf(stderr, "element %lld: kiln %.9g, interpreter %.9g\n%s\n", static_cast<long long>(i), g, w,
                         to_string(lower(s,
                                         [&] {
                                             auto a = p.inputs;
                                             a.push_back(out);
                                             return a;
                                         }()))
                                 .c_str());
            __builtin_trap();
        }
    }
    return 0;
}
