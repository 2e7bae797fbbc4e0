// Random legal schedules over several pipelines, each held to the unscheduled reference result.
#include "helpers.hpp"

using namespace kiln;

namespace {

// Applies random legal primitives to a stage: splits, reorders, fuses, loop kinds.
void randomize_stage(Schedule& s, const Tensor& t, std::mt19937& rng, bool allow_parallel) {
    Stage st = s[t];
    std::uniform_int_distribution<int> coin(0, 99);
    const int factors[] = {1, 2, 3, 4, 5, 8, 16};
    for (int step = 0; step < 4; ++step) {
        auto leaves = st.leaf_iter_vars();
        auto& iv = leaves[rng() % leaves.size()];
        int pick = coin(rng);
        if (pick < 40) {
            st.split(iv, factors[rng() % 7]);
        } else if (pick < 60 && leaves.size() > 1) {
            std::vector<IterVar> order = leaves;
            std::shuffle(order.begin(), order.end(), rng);
            st.reorder(order);
        } else if (pick < 75 && leaves.size() > 1) {
            size_t p = rng() % (leaves.size() - 1);
            if (leaves[p].kind() == leaves[p + 1].kind()) st.fuse(leaves[p], leaves[p + 1]);
        }
    }
    auto leaves = st.leaf_iter_vars();
    auto& last = leaves.back();
    if (!last.is_reduce() && coin(rng) < 50) {
        auto [o, i] = st.split(last, 8);
        st.vectorize(i);
    }
    leaves = st.leaf_iter_vars();
    if (leaves.size() > 1 && !st.node()->for_kind.count(leaves[leaves.size() - 2].get()) && coin(rng) < 30) {
        auto& iv = leaves[leaves.size() - 2];
        st.unroll(iv);
    }
    if (allow_parallel && !leaves[0].is_reduce() && !st.node()->for_kind.count(leaves[0].get()) && coin(rng) < 40)
        st.parallel(leaves[0]);
}

struct Pipeline {
    std::vector<Tensor> inputs;
    Tensor out;
    std::vector<Tensor> stages;  // schedulable, producers first
    std::vector<std::vector<int64_t>> in_shapes;
    std::vector<int64_t> out_shape;
};

Pipeline matmul_pipeline() {
    auto A = placeholder({37, 23}, f32, "A");
    auto B = placeholder({23, 29}, f32, "B");
    auto k = reduce_axis(0, 23, "k");
    auto C = compute(
            {37, 29}, [&](Expr i, Expr j) { return sum(A(i, k) * B(k, j), {k}); }, "C");
    auto D = compute(
            {37, 29}, [&](Expr i, Expr j) { return max(C(i, j), 0.0f) + 1.0f; }, "D");
    return {{A, B}, D, {C, D}, {{37, 23}, {23, 29}}, {37, 29}};
}

// past_input widens both blurs by one column, so blur_x reads one column past I; past_blur_x makes blur_y one
// row taller, so it reads one row past what blur_x defines.
Pipeline blur_pipeline(int past_input = 0, int past_blur_x = 0) {
    auto I = placeholder({41, 35}, f32, "I");
    auto bx = compute(
            {41, 33 + past_input}, [&](Expr y, Expr x) { return (I(y, x) + I(y, x + 1) + I(y, x + 2)) / 3.0f; },
            "blur_x");
    auto by = compute(
            {39 + past_blur_x, 33 + past_input},
            [&](Expr y, Expr x) { return (bx(y, x) + bx(y + 1, x) + bx(y + 2, x)) / 3.0f; }, "blur_y");
    return {{I}, by, {bx, by}, {{41, 35}}, {39 + past_blur_x, 33 + past_input}};
}

Pipeline rowsum_pipeline() {
    auto X = placeholder({19, 43}, f32, "X");
    auto sq = compute(
            {19, 43}, [&](Expr i, Expr j) { return X(i, j) * X(i, j); }, "sq");
    auto r = reduce_axis(0, 43, "r");
    auto s = compute(
            {19}, [&](Expr i) { return sum(sq(i, r), {r}); }, "rowsum");
    auto o = compute(
            {19, 43}, [&](Expr i, Expr j) { return X(i, j) / (s(i) + 1.0f); }, "norm");
    return {{X}, o, {sq, s, o}, {{19, 43}}, {19, 43}};
}

std::vector<float> run(Schedule& s, Pipeline& p, const std::vector<Buffer>& ins, const std::string& target = "llvm") {
    std::vector<Tensor> args = p.inputs;
    args.push_back(p.out);
    BuildOptions opt;
    opt.target.kind = target;
    auto f = build(s, args, opt);
    Buffer out(p.out_shape);
    std::vector<detail::ArgValue> av;
    for (auto& b : ins) av.push_back(detail::to_arg(b));
    av.push_back(detail::to_arg(out));
    f.call(av);
    return std::vector<float>(out.data_as<float>(), out.data_as<float>() + out.size());
}

}  // namespace

// Producers: inline, root, or computed inside their consumer's loops; then random primitives on every stage.
std::string randomize(Schedule& s, Pipeline& p, std::mt19937& rng) {
    std::string trace;
    for (size_t i = 0; i + 1 < p.stages.size(); ++i) {
        Tensor t = p.stages[i];
        Tensor consumer = p.stages[i + 1];
        int how = static_cast<int>(rng() % 3);
        bool reduction = t.op()->body.as<Reduce>() != nullptr;
        if (how == 0 && !reduction) {
            s[t].compute_inline();
            trace += t.name() + ":inline ";
            continue;
        }
        // Only a direct consumer can host compute_at.
        if (how == 1 && s.consumers_of(t.op().get()).size() == 1 &&
            s.consumers_of(t.op().get())[0] == s[consumer].node()) {
            auto leaves = s[consumer].leaf_iter_vars();
            s[t].compute_at(s[consumer], leaves[rng() % leaves.size()]);
            trace += t.name() + ":at ";
        }
    }
    if (rng() % 2 == 0) {
        Tensor last = p.stages.back();
        if (last.op()->body.as<Reduce>()) {
            s.cache_write(last, "local");
            trace += "cache_write ";
        }
    }
    for (auto& t : p.stages) {
        if (s[t].node()->attach == AttachType::Inline) continue;
        randomize_stage(s, t, rng, s[t].node()->attach == AttachType::Root);
    }
    return trace;
}

TEST_CASE("random legal schedules match the reference") {
    std::mt19937 rng(2026);
    int checked = 0, checked_c = 0;
    for (int trial = 0; trial < 300; ++trial) {
        Pipeline p = trial % 3 == 0 ? matmul_pipeline() : trial % 3 == 1 ? blur_pipeline() : rowsum_pipeline();
        std::vector<Buffer> ins;
        for (size_t i = 0; i < p.in_shapes.size(); ++i)
            ins.push_back(test::random_buffer(p.in_shapes[i], 100 + static_cast<uint32_t>(i)));
        Schedule ref_s(p.out);
        auto want = run(ref_s, p, ins);
        Schedule s(p.out);
        const std::string trace = randomize(s, p, rng);
        std::vector<float> got;
        std::string err = test::error_of([&] { got = run(s, p, ins); });
        INFO("trial " << trial << ": " << trace << "\n"
                      << (err.empty() ? to_string(lower(s,
                                                        [&] {
                                                            auto a = p.inputs;
                                                            a.push_back(p.out);
                                                            return a;
                                                        }()))
                                      : err));
        // compute_at points may be invalidated by later splits of the consumer: that is a clear error, not a wrong
        // result.
        if (!err.empty()) {
            CHECK(err.find("no longer one of its loops") != std::string::npos);
            continue;
        }
        REQUIRE(got.size() == want.size());
        CHECK(test::max_rel_err(got.data(), want.data(), static_cast<int64_t>(got.size())) < 1e-4);
        ++checked;
        // Every tenth schedule also through the C backend (a C compile costs ~0.2 s), held to the JIT's result.
        if (checked % 10 == 0) {
            const auto c = run(s, p, ins, "c");
            CHECK(test::max_rel_err(c.data(), got.data(), static_cast<int64_t>(got.size())) < 1e-5);
            ++checked_c;
        }
    }
    MESSAGE(checked << " random schedules checked against the reference, " << checked_c << " of them also as C");
    CHECK(checked >= 200);
}

TEST_CASE("random schedules of pipelines that read out of range are refused, whatever the schedule") {
    std::mt19937 rng(7);
    int refused = 0;
    for (int trial = 0; trial < 60; ++trial) {
        const bool input = trial % 2 == 0;
        Pipeline p = input ? blur_pipeline(1, 0) : blur_pipeline(0, 1);
        Schedule s(p.out);
        const std::string trace = randomize(s, p, rng);
        std::vector<Buffer> ins{test::random_buffer(p.in_shapes[0], 3)};
        const std::string err = test::error_of([&] { run(s, p, ins); });
        INFO("trial " << trial << ": " << trace << "\n" << err);
        // The read is refused, or (a compute_at point a later split removed) the schedule is; it never runs.
        if (err.find("no longer one of its loops") != std::string::npos) continue;
        // Inlined, blur_x's reads of I become blur_y's.
        const bool inlined = trace.find("blur_x:inline") != std::string::npos;
        std::string want;
        if (input)
            want = (inlined ? "stage 'blur_y'" : "stage 'blur_x'") + std::string(
                                                                             " reads I(i, j + 2), whose index in "
                                                                             "dimension 1 covers [2, 35]");
        else
            want = inlined ? "stage 'blur_y' reads I(i + 2, j), whose index in dimension 0 covers [2, 41]"
                           : "stage 'blur_y' reads blur_x(i + 2, j), whose index in dimension 0 (axis 'i') covers [2, "
                             "41]";
        CHECK(err.find(want) != std::string::npos);
        ++refused;
    }
    CHECK(refused >= 40);
}
