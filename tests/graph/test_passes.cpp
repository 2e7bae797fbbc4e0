// Each graph pass run alone on a small hand-built graph: what it changes in the graph, and that the
// compiled result does not change (against the same graph compiled with no passes, whose operators the
// ONNX Runtime tests check).
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include <kiln/graph.hpp>
#include <kiln/graph/lower_group.hpp>
#include <kiln/graph/memory_plan.hpp>
#include <kiln/graph/passes/alter_layout.hpp>
#include <kiln/graph/passes/canonicalize.hpp>
#include <kiln/graph/passes/eliminate_common_subexpr.hpp>
#include <kiln/graph/passes/fold_constant.hpp>
#include <kiln/graph/passes/fold_scale_axis.hpp>
#include <kiln/graph/passes/fuse_ops.hpp>
#include <kiln/graph/passes/simplify_inference.hpp>

#include "graph/build_graph.hpp"

using namespace kiln;
using namespace kiln::graph;

using test::node;
using test::random_buffer;

namespace {

Attrs conv_attrs(int pad, int stride = 1) {
    Attrs a;
    a.set("pads", std::vector<int64_t>{pad, pad, pad, pad});
    a.set("strides", std::vector<int64_t>{stride, stride});
    return a;
}

// The largest absolute difference between output 0 of `exe` (compiled from g) and of g with no passes at all
// (each node its own kernel), on input `in`.
double difference_from_unfused(const Graph& g, Executable& exe, const Buffer& in) {
    auto reference = compile(g, {.opt_level = 0, .threads = 1});
    reference.set_input(0, in);
    reference.run();
    exe.set_input(0, in);
    exe.run();
    Buffer want = reference.output(0), got = exe.output(0);
    REQUIRE(want.shape() == got.shape());
    double worst = 0;
    for (int64_t i = 0; i < want.size(); ++i)
        worst = std::max(worst, double(std::abs(got.data_as<float>()[i] - want.data_as<float>()[i])));
    return worst;
}

// Runs `g` with no passes at all (each node its own kernel) and `after` (already transformed) with no
// further passes, on the same inputs; returns the largest relative difference of the outputs.
double difference(const Graph& g, const Graph& after, unsigned seed = 7) {
    auto a = compile(g, {.opt_level = 0, .threads = 1});
    auto b = compile(after, {.opt_level = 0, .threads = 1});
    for (size_t i = 0; i < g.inputs.size(); ++i) {
        Buffer in = random_buffer(g.type_of(g.inputs[i]).shape, seed + static_cast<unsigned>(i));
        a.set_input(i, in);
        b.set_input(i, in);
    }
    a.run();
    b.run();
    double worst = 0;
    for (size_t k = 0; k < a.num_outputs(); ++k) {
        Buffer x = a.output(k), y = b.output(k);
        REQUIRE(x.shape() == y.shape());
        for (int64_t i = 0; i < x.size(); ++i) {
            const double p = static_cast<const float*>(x.data())[i], q = static_cast<const float*>(y.data())[i];
            worst = std::max(worst, std::abs(p - q) / std::max(1.0, std::abs(p)));
        }
    }
    return worst;
}

}  // namespace

TEST_CASE("pass canonicalize: Identity and Dropout go, a transposed constant B of Gemm is transposed once") {
    Graph g;
    const int x = g.add_input("x", {{3, 17}, f32});
    const int id = node(g, "Identity", {x});
    const int dr = node(g, "Dropout", {id});
    Attrs t;
    t.set("transB", int64_t{1});
    const int y =
            node(g, "Gemm",
                 {dr, g.add_constant("B", random_buffer({5, 17}, 1)), g.add_constant("C", random_buffer({5}, 2))}, t);
    g.outputs = {y};
    Graph c = graph::passes::canonicalize(g);
    CHECK(count_ops(c) == std::map<std::string, int>{{"Gemm", 1}});
    CHECK_FALSE(c.nodes[0].attrs.has("transB"));
    CHECK(c.type_of(c.nodes[0].inputs[1]).shape == std::vector<int64_t>{17, 5});
    CHECK(difference(g, c) < 1e-6);
}

TEST_CASE("pass eliminate_common_subexpr: equal nodes and equal constants merge, graph outputs keep their names") {
    Graph g;
    const int x = g.add_input("x", {{2, 3, 7}, f32});
    const Buffer k = random_buffer({7}, 3);
    const int a = node(g, "Add", {x, g.add_constant("k1", k)});
    const int b = node(g, "Add", {x, g.add_constant("k2", k)});  // the same constant under another name
    const int r1 = node(g, "Relu", {a}), r2 = node(g, "Relu", {b});
    const int s = node(g, "Mul", {r1, r2});
    const int other = node(g, "Relu", {x});
    g.outputs = {s, other};
    Graph c = graph::passes::eliminate_common_subexpr(g);
    CHECK(count_ops(c) == std::map<std::string, int>{{"Add", 1}, {"Mul", 1}, {"Relu", 2}});
    CHECK(c.value(c.outputs[0]).name == g.value(s).name);
    CHECK(difference(g, c) < 1e-6);
}

TEST_CASE(
        "passes simplify_inference and fold_scale_axis: BatchNormalization after a Conv becomes its weight and bias") {
    Graph g;
    const int x = g.add_input("x", {{1, 5, 9, 11}, f32});
    const int y = node(g, "Conv", {x, g.add_constant("W", random_buffer({7, 5, 3, 3}, 4))}, conv_attrs(1));
    Attrs eps;
    eps.set("epsilon", 1e-3);
    const int bn =
            node(g, "BatchNormalization",
                 {y, g.add_constant("s", random_buffer({7}, 5)), g.add_constant("b", random_buffer({7}, 6)),
                  g.add_constant("m", random_buffer({7}, 7)), g.add_constant("v", random_buffer({7}, 8, 0.5f, 2.f))},
                 eps);
    g.outputs = {node(g, "Relu", {bn})};
    Graph s = graph::passes::simplify_inference(g);
    CHECK(count_ops(s) == std::map<std::string, int>{{"Add", 1}, {"Conv", 1}, {"Mul", 1}, {"Relu", 1}});
    CHECK(difference(g, s) < 1e-5);
    Graph f = graph::passes::fold_scale_axis(s);
    CHECK(count_ops(f) == std::map<std::string, int>{{"Conv", 1}, {"Relu", 1}});
    CHECK(f.nodes[0].inputs.size() == 3);
    CHECK(difference(g, f) < 1e-5);
}

TEST_CASE("pass fold_scale_axis: leaves a scale that varies along a spatial axis, or a Conv read twice") {
    Graph g;
    const int x = g.add_input("x", {{1, 4, 6, 6}, f32});
    const int y = node(g, "Conv", {x, g.add_constant("W", random_buffer({4, 4, 1, 1}, 9))}, conv_attrs(0));
    const int m = node(g, "Mul", {y, g.add_constant("row_scale", random_buffer({6, 1}, 10))});
    const int z = node(g, "Conv", {m, g.add_constant("W2", random_buffer({4, 4, 1, 1}, 11))}, conv_attrs(0));
    const int a = node(g, "Add", {z, g.add_constant("shift", random_buffer({4, 1, 1}, 12))});
    g.outputs = {a, node(g, "Relu", {z})};  // z is read twice: its Add cannot fold
    Graph f = graph::passes::fold_scale_axis(g);
    CHECK(count_ops(f) == count_ops(g));
    CHECK(difference(g, f) < 1e-6);
}

TEST_CASE("pass fold_constant: independent nodes fold together in waves, and a chain folds through") {
    Graph g;
    const int x = g.add_input("x", {{7, 3}, f32});
    Attrs perm;
    perm.set("perm", std::vector<int64_t>{1, 0});
    const int t = node(g, "Transpose", {g.add_constant("c1", random_buffer({3, 7}, 1))}, perm);
    const int n = node(g, "Neg", {g.add_constant("c2", random_buffer({7, 3}, 2))});
    const int r = node(g, "Relu", {t});
    const int sum = node(g, "Add", {r, n});
    g.outputs = {node(g, "Mul", {x, sum})};
    std::vector<std::vector<std::string>> waves;
    Graph f = graph::passes::fold_constant(g, [&](const Graph& gg, const std::vector<int>& nodes) {
        waves.emplace_back();
        for (int id : nodes) waves.back().push_back(gg.nodes[id].op);
        return graph::detail::evaluate_nodes(gg, nodes, Target{});
    });
    CHECK(waves == std::vector<std::vector<std::string>>{{"Transpose", "Neg"}, {"Relu"}, {"Add"}});
    CHECK(count_ops(f) == std::map<std::string, int>{{"Mul", 1}});
    CHECK(difference(g, f) == 0.0);
}

TEST_CASE("pass alter_layout: blocked from the first Conv to the last reader, one transform at each edge") {
    Graph g;
    // 20 channels: the second block is partly padding, which Sigmoid may run on but Log may not.
    const int x = g.add_input("x", {{1, 3, 15, 13}, f32});
    const int c1 = node(
            g, "Conv",
            {x, g.add_constant("W1", random_buffer({20, 3, 3, 3}, 13)), g.add_constant("B1", random_buffer({20}, 14))},
            conv_attrs(1));
    const int r = node(g, "Relu", {c1});
    Attrs pool;
    pool.set("kernel_shape", std::vector<int64_t>{3, 3});
    pool.set("strides", std::vector<int64_t>{2, 2});
    pool.set("pads", std::vector<int64_t>{1, 1, 1, 1});
    const int p = node(g, "MaxPool", {r}, pool);
    const int c2 = node(g, "Conv", {p, g.add_constant("W2", random_buffer({20, 20, 3, 3}, 15))}, conv_attrs(1));
    const int sum = node(g, "Add", {c2, p});  // a residual: both operands blocked alike
    const int sg = node(g, "Sigmoid", {sum});
    const int gap = node(g, "GlobalAveragePool", {sg});
    const int lg = node(g, "Log", {sg});
    g.outputs = {gap, lg};
    Graph b = graph::passes::alter_layout(g);
    const auto ops = count_ops(b);
    CHECK(ops.at("kiln.ConvBlocked") == 2);
    CHECK(ops.at("kiln.PackConvWeight") == 2);
    CHECK(ops.at("kiln.MaxPoolBlocked") == 1);
    CHECK(ops.at("kiln.GlobalAveragePoolBlocked") == 1);
    CHECK(ops.at("kiln.ToBlocked") == 1);    // the image, once
    CHECK(ops.at("kiln.FromBlocked") == 2);  // before Log (padded channels) and after the global pool
    CHECK(ops.count("Log") == 1);
    CHECK(difference(g, b) < 1e-5);
    // Folding then packs the weights once: no PackConvWeight is left to run.
    auto exe = compile(g, {.opt_level = 3, .threads = 2});
    CHECK(count_ops(exe.graph()).count("kiln.PackConvWeight") == 0);
}

TEST_CASE("pass alter_layout: a Concat of channels, a per-channel scale and a batch norm stay blocked") {
    Graph g;
    // Fire module: two convolutions concatenated along the channels (16 and 20: the first fills its
    // block, the second ends in padding), then a squeeze-and-excitation scale [1, C, 1, 1].
    const int x = g.add_input("x", {{1, 5, 9, 11}, f32});
    const int a = node(g, "Conv", {x, g.add_constant("Wa", random_buffer({16, 5, 1, 1}, 21))}, conv_attrs(0));
    const int b = node(g, "Conv", {x, g.add_constant("Wb", random_buffer({20, 5, 3, 3}, 22))}, conv_attrs(1));
    Attrs axis;
    axis.set("axis", int64_t{-3});
    const int cat = node(g, "Concat", {a, b}, axis);
    const int squeeze = node(g, "GlobalAveragePool", {cat});
    const int excite =
            node(g, "Sigmoid",
                 {node(g, "Conv", {squeeze, g.add_constant("Ws", random_buffer({36, 36, 1, 1}, 23))}, conv_attrs(0))});
    const int scaled =
            node(g, "Mul", {excite, cat});  // the per-channel operand first: the result takes the other's shape
    // A BatchNormalization after the Concat, as simplify_inference leaves it: constants per channel.
    const int norm = node(g, "Add",
                          {node(g, "Mul", {scaled, g.add_constant("S", random_buffer({36, 1, 1}, 28))}),
                           g.add_constant("H", random_buffer({1, 36, 1, 1}, 29))});
    // A transition as torch exports it: Pad (here only the bottom and right pixels) before an AveragePool.
    Buffer pads({8}, i64);
    const int64_t pad_values[8] = {0, 0, 0, 0, 0, 0, 1, 1};
    std::copy_n(pad_values, 8, pads.data_as<int64_t>());
    Attrs avg;
    avg.set("kernel_shape", std::vector<int64_t>{2, 2});
    avg.set("strides", std::vector<int64_t>{2, 2});
    const int pooled = node(g, "AveragePool", {node(g, "Pad", {norm, g.add_constant("pads", pads)})}, avg);
    g.outputs = {node(g, "Conv", {pooled, g.add_constant("Wc", random_buffer({7, 36, 3, 3}, 24))}, conv_attrs(1))};
    Graph blocked = graph::passes::alter_layout(g);
    const auto ops = count_ops(blocked);
    CHECK(ops.at("kiln.ToBlocked") == 1);    // the image
    CHECK(ops.at("kiln.FromBlocked") == 1);  // the output
    CHECK(ops.at("Concat") == 1);
    CHECK(ops.at("Pad") == 1);
    CHECK(ops.at("kiln.AveragePoolBlocked") == 1);
    CHECK(difference(g, blocked) < 1e-5);
    // A Concat whose first input ends in padding cannot follow it in blocks.
    Graph h;
    const int y = h.add_input("y", {{1, 5, 6, 6}, f32});
    const int p = node(h, "Conv", {y, h.add_constant("Wp", random_buffer({20, 5, 1, 1}, 25))}, conv_attrs(0));
    const int q = node(h, "Conv", {y, h.add_constant("Wq", random_buffer({16, 5, 1, 1}, 26))}, conv_attrs(0));
    Attrs one;
    one.set("axis", int64_t{1});
    h.outputs = {node(h, "Conv",
                      {node(h, "Concat", {p, q}, one), h.add_constant("Wr", random_buffer({4, 36, 1, 1}, 27))},
                      conv_attrs(0))};
    Graph hb = graph::passes::alter_layout(h);
    CHECK(count_ops(hb).at("kiln.FromBlocked") == 3);  // both inputs, and the output
    CHECK(difference(h, hb) < 1e-5);
}

TEST_CASE("pass alter_layout: a Conv whose weight is computed stays NCHW") {
    Graph g;
    const int x = g.add_input("x", {{1, 4, 5, 5}, f32});
    const int w = g.add_input("w", {{8, 4, 3, 3}, f32});
    g.outputs = {node(g, "Conv", {x, w}, conv_attrs(1))};
    Graph b = graph::passes::alter_layout(g);
    CHECK(count_ops(b) == std::map<std::string, int>{{"Conv", 1}});
}

TEST_CASE("pass alter_layout: dense products read a constant weight packed once") {
    Graph g;
    // A rank-3 MatMul (rows 2 x 5) with 19 columns: one panel and part of another; a Gemm with a bias row
    // (transB already canonical) of 5 rows. A Gemm with alpha, a classifier's Gemm of one row (which streams its
    // weight unpacked) and a MatMul of two activations stay as they are.
    const int x = g.add_input("x", {{2, 5, 7}, f32});
    const int y = node(g, "MatMul", {x, g.add_constant("W", random_buffer({7, 19}, 30))});
    const int r = g.add_input("r", {{5, 11}, f32});
    const int z = node(
            g, "Gemm",
            {r, g.add_constant("G", random_buffer({11, 40}, 31)), g.add_constant("bias", random_buffer({40}, 32))});
    Attrs alpha;
    alpha.set("alpha", 0.5);
    const int scaled = node(g, "Gemm", {r, g.add_constant("H", random_buffer({11, 6}, 33))}, alpha);
    const int q = g.add_input("q", {{7, 4}, f32});
    const int w = node(g, "MatMul", {x, q});
    const int one =
            node(g, "Gemm", {g.add_input("v", {{1, 11}, f32}), g.add_constant("V", random_buffer({11, 9}, 34))});
    g.outputs = {node(g, "Relu", {y}), z, scaled, w, one};
    Graph b = graph::passes::alter_layout(g);
    const auto ops = count_ops(b);
    CHECK(ops.at("kiln.MatMulPacked") == 2);
    CHECK(ops.at("kiln.PackMatMulWeight") == 2);
    CHECK(ops.at("Gemm") == 2);
    CHECK(ops.at("MatMul") == 1);
    CHECK(difference(g, b) < 1e-5);
    auto exe = compile(g, {.opt_level = 3, .threads = 2});
    CHECK(count_ops(exe.graph()).count("kiln.PackMatMulWeight") == 0);
}

TEST_CASE("pass fuse_ops: diamonds that close inside a group fuse (SiLU and GELU after a product), open ones do not") {
    Graph g;
    const int x = g.add_input("x", {{1, 6, 7, 9}, f32});
    const int c = node(g, "Conv", {x, g.add_constant("W", random_buffer({10, 6, 3, 3}, 16))}, conv_attrs(1));
    const int silu = node(g, "Mul", {c, node(g, "Sigmoid", {c})});  // x * sigmoid(x): c has two readers
    const int flat = node(g, "Flatten", {node(g, "GlobalAveragePool", {silu})});
    const int mm = node(g, "MatMul", {flat, g.add_constant("W2", random_buffer({10, 12}, 17))});
    // GELU: m * 0.5 * (1 + erf(m / sqrt 2)); m has two readers whose chains meet in the last Mul.
    const int half = node(g, "Mul", {mm, g.add_constant("half", random_buffer({1}, 18, 0.5f, 0.5f))});
    const int er =
            node(g, "Erf",
                 {node(g, "Div", {mm, g.add_constant("sqrt2", random_buffer({1}, 19, 1.41421356f, 1.41421356f))})});
    const int gelu =
            node(g, "Mul", {half, node(g, "Add", {er, g.add_constant("one", random_buffer({1}, 20, 1.f, 1.f))})});
    // A value read by a Relu and by the graph: the diamond stays open, so the Relu is its own kernel.
    const int open = node(g, "Relu", {gelu});
    g.outputs = {open, gelu};
    const auto groups = graph::passes::fuse_ops(g);
    std::vector<std::string> names;
    for (auto& grp : groups) names.push_back(grp.name);
    CHECK(names == std::vector<std::string>{"Conv_Sigmoid_Mul", "GlobalAveragePool", "Flatten",
                                            "MatMul_Mul_Div_Erf_Add_Mul", "Relu"});
    auto fused = compile(g, {.opt_level = 1, .threads = 2});
    auto plain = compile(g, {.opt_level = 0, .threads = 1});
    Buffer in = random_buffer({1, 6, 7, 9}, 21);
    fused.set_input(0, in);
    plain.set_input(0, in);
    fused.run();
    plain.run();
    for (size_t k = 0; k < 2; ++k) {
        Buffer a = fused.output(k), b = plain.output(k);
        for (int64_t i = 0; i < a.size(); ++i)
            CHECK(static_cast<const float*>(a.data())[i] ==
                  doctest::Approx(static_cast<const float*>(b.data())[i]).epsilon(1e-5));
    }
}

TEST_CASE("lower_group: the reductions of a softmax and of a layer norm run inside the output's parallel row loop") {
    // [1, 251, 70] (no multiple of a vector, and enough rows to share out among threads; the decomposed form
    // reads its statistics through a broadcast of the leading 1): Softmax, and LayerNormalization in its fused
    // and its decomposed (opset-13 export) form, each against a naive reference.
    const int64_t R = 251, C = 70;
    Graph g;
    g.opset = 17;
    const int x = g.add_input("x", {{1, R, C}, f32});
    Attrs last;
    last.set("axis", int64_t{-1});
    const int sm = node(g, "Softmax", {x}, last);
    Buffer gamma = random_buffer({C}, 31), beta = random_buffer({C}, 32);
    const int ln =
            node(g, "LayerNormalization", {x, g.add_constant("gamma", gamma), g.add_constant("beta", beta)}, last);
    Attrs keep;
    keep.set("axes", std::vector<int64_t>{-1});
    keep.set("keepdims", int64_t{1});
    const int mean = node(g, "ReduceMean", {x}, keep);
    const int dev = node(g, "Sub", {x, mean});
    const int var = node(g, "ReduceMean", {node(g, "Mul", {dev, dev})}, keep);
    Buffer eps({1}, f32);
    eps.data_as<float>()[0] = 1e-5f;
    const int decomposed = node(g, "Div", {dev, node(g, "Sqrt", {node(g, "Add", {var, g.add_constant("eps", eps)})})});
    // A global average pool has a vector of sums per row of the output's loop (one per channel): it stays
    // at the root, where it accumulates whole vectors.
    const int pooled = node(g, "GlobalAveragePool", {node(g, "Reshape", {x, g.add_constant("shape", [] {
                                                                             Buffer b({4}, i64);
                                                                             const int64_t dims[] = {1, R, 7, 10};
                                                                             std::copy_n(dims, 4, b.data_as<int64_t>());
                                                                             return b;
                                                                         }())})});
    g.outputs = {sm, ln, decomposed, pooled};

    const auto groups = graph::passes::fuse_ops(g);
    for (const Group& grp : groups) {
        CAPTURE(grp.name);
        const GroupSchedule gs = lower_group(g, grp);
        const std::string ir = to_string(lower(gs.schedule, gs.args, {.after = "schedule_ops"}));
        const size_t parallel = ir.find("parallel"), realize = ir.find("realize");
        CAPTURE(ir);
        CHECK(parallel != std::string::npos);
        CHECK(realize != std::string::npos);
        // Every statistic is stored per row, inside the row loop; the pool's sums before any loop.
        if (grp.name.find("GlobalAveragePool") == std::string::npos)
            CHECK(parallel < realize);
        else
            CHECK(realize < parallel);
    }

    Buffer in = random_buffer({1, R, C}, 33, -4, 4);
    for (int threads : {1, 2}) {
        auto exe = compile(g, {.opt_level = 3, .threads = threads});
        exe.set_input(0, in);
        exe.run();
        const float* xv = in.data_as<float>();
        Buffer s = exe.output(0), l = exe.output(1), d = exe.output(2), p = exe.output(3);
        double worst = 0;
        for (int64_t ch = 0; ch < R; ++ch) {
            double total = 0;
            for (int64_t j = 0; j < C; ++j) total += xv[ch * C + j];
            worst = std::max(worst, std::abs(p.data_as<float>()[ch] - total / C) / std::max(1.0, std::abs(total / C)));
        }
        for (int64_t r = 0; r < R; ++r) {
            const float* row = xv + r * C;
            double mx = -INFINITY, total = 0, m = 0, v = 0;
            for (int64_t j = 0; j < C; ++j) mx = std::max<double>(mx, row[j]), m += row[j];
            m /= C;
            for (int64_t j = 0; j < C; ++j) total += std::exp(row[j] - mx), v += (row[j] - m) * (row[j] - m);
            v /= C;
            for (int64_t j = 0; j < C; ++j) {
                const double norm = (row[j] - m) / std::sqrt(v + 1e-5);
                const double want[] = {std::exp(row[j] - mx) / total,
                                       norm * gamma.data_as<float>()[j] + beta.data_as<float>()[j], norm};
                const float got[] = {s.data_as<float>()[r * C + j], l.data_as<float>()[r * C + j],
                                     d.data_as<float>()[r * C + j]};
                for (int k = 0; k < 3; ++k)
                    worst = std::max(worst, std::abs(got[k] - want[k]) / std::max(1.0, std::abs(want[k])));
            }
        }
        CHECK(worst < 1e-5);
    }
}

TEST_CASE("lower_group: a channel shuffle of blocked convolutions reads whole vectors, with no division per lane") {
    // ShuffleNet's block: two convolutions (blocked at level 3), their Concat, Reshape [1, 2, C, H, W], Transpose
    // of the two groups, Reshape back. H*W = 14*13 is no multiple of a vector and each row is shorter than one:
    // the rows fuse (every read steps evenly across them) and the last vector is shifted inwards.
    const int64_t C = 24, H = 14, W = 13;
    Graph g;
    g.opset = 17;
    const int x = g.add_input("x", {{1, C, H, W}, f32});
    const int a = node(g, "Conv", {x, g.add_constant("wa", random_buffer({C, C, 1, 1}, 41))}, conv_attrs(0));
    const int b = node(g, "Conv", {x, g.add_constant("wb", random_buffer({C, C, 3, 3}, 42))}, conv_attrs(1));
    Attrs channels;
    channels.set("axis", int64_t{1});
    const int cat = node(g, "Concat", {a, b}, channels);
    auto shape = [&](const std::string& name, std::vector<int64_t> dims) {
        Buffer s({static_cast<int64_t>(dims.size())}, i64);
        std::copy(dims.begin(), dims.end(), s.data_as<int64_t>());
        return g.add_constant(name, s);
    };
    Attrs perm;
    perm.set("perm", std::vector<int64_t>{0, 2, 1, 3, 4});
    const int split = node(g, "Reshape", {cat, shape("groups", {1, 2, C, H, W})});
    const int shuffled = node(g, "Reshape", {node(g, "Transpose", {split}, perm), shape("back", {1, 2 * C, H, W})});
    g.outputs = {shuffled};

    auto exe = compile(g, {.opt_level = 3, .threads = 1});
    bool seen = false;
    for (const Group& grp : exe.groups()) {
        if (grp.name.find("Transpose") == std::string::npos) continue;
        seen = true;
        const GroupSchedule gs = lower_group(exe.graph(), grp);
        const std::string ir = to_string(lower(gs.schedule, gs.args));
        CAPTURE(ir);
        CHECK(ir.find("ramp(") != std::string::npos);
        CHECK(ir.find("/x16") == std::string::npos);
        CHECK(ir.find("%x16") == std::string::npos);
        CHECK(ir.find(" if ") == std::string::npos);  // no masked lanes
    }
    CHECK(seen);

    Buffer in = random_buffer({1, C, H, W}, 43);
    auto reference = compile(g, {.opt_level = 0, .threads = 1});
    reference.set_input(0, in);
    reference.run();
    for (int threads : {1, 2}) {
        auto fast = compile(g, {.opt_level = 3, .threads = threads});
        fast.set_input(0, in);
        fast.run();
        Buffer want = reference.output(0), got = fast.output(0);
        double worst = 0;
        for (int64_t i = 0; i < want.size(); ++i)
            worst = std::max<double>(worst, std::abs(got.data_as<float>()[i] - want.data_as<float>()[i]) /
                                                    std::max(1.0f, std::abs(want.data_as<float>()[i])));
        CHECK(worst < 1e-5);
    }
}

TEST_CASE("lower_group: a stage with little work runs on the calling thread, a larger one is shared out") {
    // A transformer's activations (32 tokens x 128) take about as long serially as a hand-off to another
    // thread costs; 8 times as many are worth sharing.
    for (int64_t rows : {32, 256}) {
        CAPTURE(rows);
        Graph g;
        g.opset = 17;
        const int x = g.add_input("x", {{1, rows, 128}, f32});
        const int y = node(g, "Add", {x, g.add_constant("b", random_buffer({128}, 51))});
        g.outputs = {node(g, "Relu", {y})};
        auto exe = compile(g, {.opt_level = 3, .threads = 2});
        REQUIRE(exe.groups().size() == 1);
        const GroupSchedule gs = lower_group(exe.graph(), exe.groups()[0]);
        const std::string ir = to_string(lower(gs.schedule, gs.args));
        CAPTURE(ir);
        CHECK((ir.find("parallel (") != std::string::npos) == (rows == 256));

        CHECK(difference_from_unfused(g, exe, random_buffer({1, rows, 128}, 52)) == 0.0);
    }
}

TEST_CASE(
        "plan_memory: values whose live ranges do not overlap share the arena, and inputs, outputs and constants stay "
        "out") {
    Graph g;
    const int in = g.add_value("in", TensorType{{16}, f32});
    const int a = g.add_value("a", TensorType{{16}, f32});  // written by step 0, read by step 1
    const int b = g.add_value("b", TensorType{{40}, f32});  // steps 1 to 2
    const int c = g.add_value("c", TensorType{{16}, f32});  // steps 2 to 3
    const int out = g.add_value("out", TensorType{{16}, f32});
    g.inputs = {in};
    g.outputs = {out};
    const auto plan = kiln::graph::detail::plan_memory(g, {{in, a}, {a, b}, {b, c}, {c, out}});
    CHECK(plan.offsets.count(in) == 0);
    CHECK(plan.offsets.count(out) == 0);
    REQUIRE(plan.offsets.size() == 3);
    CHECK(plan.offsets.at(a) == plan.offsets.at(c));  // a is dead before c is written
    CHECK(plan.offsets.at(b) == 0);                   // the largest first
    CHECK(plan.offsets.at(a) == 192);                 // b's 160 bytes, rounded to 64
    CHECK(plan.arena_bytes == 192 + 64);
}

TEST_CASE("lower_group: layout changes transpose in registers, and a max pool accumulates several outputs at once") {
    // 48 channels (three blocks) on a 37 x 29 map: rows that are not a whole number of 16-wide tiles. The
    // blocking before the convolution and the unblocking after it read contiguous rows and shuffle them
    // (no gathers); the pool's windows keep one accumulator per output of a tile.
    Graph g;
    g.opset = 17;
    const int x = g.add_input("x", {{1, 48, 37, 29}, f32});
    const int c = node(g, "Conv", {x, g.add_constant("W", random_buffer({48, 48, 1, 1}, 61))}, conv_attrs(0));
    Attrs pool;
    pool.set("kernel_shape", std::vector<int64_t>{3, 3});
    pool.set("strides", std::vector<int64_t>{2, 2});
    pool.set("pads", std::vector<int64_t>{1, 1, 1, 1});
    g.outputs = {node(g, "MaxPool", {c}, pool)};
    auto exe = compile(g, {.opt_level = 3, .threads = 2});
    int shuffled = 0, pools = 0;
    for (size_t k = 0; k < exe.num_kernels(); ++k) {
        const std::string& ir = exe.kernel(k).loop_ir();
        CAPTURE(exe.kernel_name(k));
        CAPTURE(ir);
        if (exe.kernel_name(k).find("Blocked") != std::string::npos &&
            exe.kernel_name(k).find("Conv") == std::string::npos &&
            exe.kernel_name(k).find("Pool") == std::string::npos) {
            CHECK(ir.find("shuffle(") != std::string::npos);
            // Every vector access is contiguous: each ramp(base, stride, lanes) has stride 1.
            for (size_t at = ir.find("ramp("); at != std::string::npos; at = ir.find("ramp(", at + 1)) {
                std::vector<std::string> fields(1);
                int depth = 0;
                for (size_t i = at + 5; i < ir.size() && depth >= 0; ++i) {
                    const char ch = ir[i];
                    depth += ch == '(' ? 1 : ch == ')' ? -1 : 0;
                    if (depth == 0 && ch == ',')
                        fields.emplace_back();
                    else if (depth >= 0 && ch != ' ')
                        fields.back() += ch;
                }
                REQUIRE(fields.size() == 3);
                CHECK(fields[1] == "1");
            }
            ++shuffled;
        }
        if (exe.kernel_name(k).find("MaxPool") != std::string::npos) {
            // 15 outputs a row, in tiles of 5: five accumulators of 16 lanes.
            CHECK(ir.find("local[f32 * 80]") != std::string::npos);
            ++pools;
        }
    }
    CHECK(shuffled == 2);
    CHECK(pools == 1);

    CHECK(difference_from_unfused(g, exe, random_buffer({1, 48, 37, 29}, 62)) < 1e-4);
}

TEST_CASE("Reshape errors: a target shape whose element count overflows is refused, naming the node") {
    // Found by fuzz_onnx (tests/fuzz/regressions/onnx/reshape_shape_product_overflow.onnx): the product of
    // the dimensions overflowed 64 bits before it was compared with the input's element count.
    Graph g;
    g.opset = 17;
    const int x = g.add_input("x", {{2, 6}, f32});
    Buffer s({2}, i64);
    s.data_as<int64_t>()[0] = int64_t{1} << 62;
    s.data_as<int64_t>()[1] = 3;
    CHECK_THROWS_WITH_AS(node(g, "Reshape", {x, g.add_constant("shape", s)}),
                         doctest::Contains("the shape [4611686018427387904, 3] has more elements than 64 bits can "
                                           "count; give the real shape"),
                         Error);
}
