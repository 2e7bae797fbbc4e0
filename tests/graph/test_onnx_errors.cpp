// Malformed and unsupported ONNX models: each gives a kiln::Error that names the node, its op type and
// the rule broken. Models are built here with the protobuf API, then damaged.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include <onnx/onnx_pb.h>

#include <kiln/graph.hpp>
#include <kiln/onnx.hpp>

namespace {

::onnx::ModelProto tiny_model(int opset = 17) {
    ::onnx::ModelProto m;
    m.set_ir_version(8);
    auto* op = m.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    auto* g = m.mutable_graph();
    g->set_name("tiny");
    auto* in = g->add_input();
    in->set_name("x");
    auto* tt = in->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(1);
    for (int d : {1, 3, 5, 5}) tt->mutable_shape()->add_dim()->set_dim_value(d);
    auto* w = g->add_initializer();
    w->set_name("w");
    w->set_data_type(1);
    for (int d : {4, 3, 3, 3}) w->add_dims(d);
    for (int i = 0; i < 4 * 3 * 3 * 3; ++i) w->add_float_data(0.01f * static_cast<float>(i % 7));
    auto* conv = g->add_node();
    conv->set_name("conv1");
    conv->set_op_type("Conv");
    conv->add_input("x");
    conv->add_input("w");
    conv->add_output("y");
    auto* relu = g->add_node();
    relu->set_name("relu1");
    relu->set_op_type("Relu");
    relu->add_input("y");
    relu->add_output("z");
    g->add_output()->set_name("z");
    return m;
}

std::string bytes_of(const ::onnx::ModelProto& m) {
    std::string s;
    m.SerializeToString(&s);
    return s;
}

std::string error_of(const std::string& bytes) {
    try {
        auto g = kiln::onnx::load_from_bytes(bytes, {}, "m.onnx");
        auto ex = kiln::graph::compile(g, {.opt_level = 1});
        (void)ex;
    } catch (const kiln::Error& e) { return e.what(); }
    return "";
}

}  // namespace

TEST_CASE("onnx: the tiny model loads and runs") {
    auto g = kiln::onnx::load_from_bytes(bytes_of(tiny_model()), {}, "m.onnx");
    auto ex = kiln::graph::compile(g, {.opt_level = 1});
    kiln::Buffer x({1, 3, 5, 5});
    for (int i = 0; i < 75; ++i) static_cast<float*>(x.data())[i] = 1.0f;
    ex.set_input("x", x);
    ex.run();
    auto out = ex.output(0);
    REQUIRE(out.shape() == std::vector<int64_t>{1, 4, 3, 3});
    // Output channel o sums 27 weights 0.01 * (i % 7) over i in [27 o, 27 o + 27).
    for (int o = 0; o < 4; ++o) {
        double want = 0;
        for (int i = 27 * o; i < 27 * o + 27; ++i) want += 0.01 * (i % 7);
        CHECK(static_cast<float*>(out.data())[o * 9 + 4] == doctest::Approx(want).epsilon(1e-5));
    }
}

TEST_CASE("onnx errors: damaged files") {
    const std::string good = bytes_of(tiny_model());
    CHECK(error_of("") == "ONNX model 'm.onnx': the file is empty");
    CHECK(error_of("this is not a model") ==
          "ONNX model 'm.onnx': is not a valid ONNX protobuf (the file is truncated, corrupt, or not an ONNX model)");
    // Every cut of the file either fails with a kiln::Error or (where the cut leaves a valid prefix) loads.
    for (size_t cut = 1; cut < good.size(); cut += 7) {
        CAPTURE(cut);
        try {
            auto g = kiln::onnx::load_from_bytes(good.substr(0, cut), {}, "m.onnx");
            (void)g;
        } catch (const kiln::Error& e) { CHECK(std::string(e.what()).rfind("ONNX model 'm.onnx'", 0) == 0); }
    }
    // Random byte flips: no crash, only kiln::Error or a model that loads.
    std::mt19937 rng(7);
    for (int t = 0; t < 200; ++t) {
        std::string bad = good;
        for (int k = 0; k < 3; ++k) bad[rng() % bad.size()] = static_cast<char>(rng());
        try {
            auto g = kiln::onnx::load_from_bytes(bad, {}, "m.onnx");
            (void)g;
        } catch (const kiln::Error&) {}
    }
    CHECK_THROWS_AS(kiln::onnx::load("/nonexistent/model.onnx"), kiln::Error);
}

TEST_CASE("onnx errors: limits on what a model may declare, named in the message") {
    auto load_error = [](const ::onnx::ModelProto& m, const kiln::onnx::ImportLimits& limits = {}) {
        try {
            auto g = kiln::onnx::load_from_bytes(bytes_of(m), {.limits = limits}, "m.onnx");
            (void)g;
        } catch (const kiln::Error& e) { return std::string(e.what()); }
        return std::string();
    };
    CHECK(load_error(tiny_model()).empty());
    {  // an initializer that claims 2^36 elements and holds none is refused before anything is allocated
        auto m = tiny_model();
        auto* w = m.mutable_graph()->mutable_initializer(0);
        w->clear_float_data();
        w->clear_dims();
        for (int64_t d : {int64_t{1} << 18, int64_t{1} << 18}) w->add_dims(d);
        CHECK(load_error(m) ==
              "ONNX model 'm.onnx': initializer 'w' would hold more than 2147483648 elements (shape [262144, "
              "262144]), over the limit of 2147483648 (kiln::onnx::LoadOptions::limits.max_tensor_elements); raise "
              "the limit if the model really needs it");
        CHECK(load_error(m, {.max_tensor_elements = int64_t{1} << 40, .max_total_elements = int64_t{1} << 40}) ==
              "ONNX model 'm.onnx': tensor 'w' declares 68719476736 elements of shape [262144, 262144] but holds 0; "
              "the file is corrupt or truncated");
    }
    {  // an input of 10^10 elements
        auto m = tiny_model();
        auto* shape = m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
        shape->mutable_dim(2)->set_dim_value(100000);
        shape->mutable_dim(3)->set_dim_value(100000);
        CHECK(load_error(m).starts_with("ONNX model 'm.onnx': input 'x' would hold more than 2147483648 elements"));
    }
    auto m = tiny_model();
    CHECK(load_error(m, {.max_total_elements = 100}) ==
          "ONNX model 'm.onnx': initializer 'w' brings the model's tensors to 108 elements in all, over the limit of "
          "100 (kiln::onnx::LoadOptions::limits.max_total_elements); raise the limit if the model "
          "really needs it");
    CHECK(load_error(m, {.max_rank = 3})
                  .starts_with("ONNX model 'm.onnx': initializer 'w' has rank 4, over the "
                               "limit of 3 (kiln::onnx::LoadOptions::limits.max_rank)"));
    CHECK(load_error(m, {.max_nodes = 1}) ==
          "ONNX model 'm.onnx' has 2 nodes, over the limit of 1 (kiln::onnx::LoadOptions::limits.max_nodes); raise "
          "the limit if the model really needs it");
    auto* pads = m.mutable_graph()->mutable_node(0)->add_attribute();
    pads->set_name("pads");
    pads->set_type(::onnx::AttributeProto_AttributeType_INTS);
    for (int i = 0; i < 4; ++i) pads->add_ints(1);
    CHECK(load_error(m, {.max_attribute_elements = 3}) ==
          "node 'conv1' (Conv): attribute 'pads' has 4 elements, over the limit of 3 "
          "(kiln::onnx::LoadOptions::limits.max_attribute_elements); raise the limit if the model really needs it");
    CHECK(load_error(m).empty());
}

TEST_CASE("onnx errors: what the model asks for") {
    {
        auto m = tiny_model(9);
        CHECK(error_of(bytes_of(m)) ==
              "ONNX model 'm.onnx': uses opset 9; kiln supports opsets 11 to 22 (convert it with "
              "onnx.version_converter)");
    }
    {
        auto m = tiny_model();
        m.mutable_graph()->mutable_node(1)->set_op_type("Frobnicate");
        const std::string e = error_of(bytes_of(m));
        CHECK(e.rfind("node 'relu1' (Frobnicate): operator 'Frobnicate' is not supported; kiln supports ", 0) == 0);
    }
    {
        auto m = tiny_model();
        auto* a = m.mutable_graph()->mutable_node(0)->add_attribute();
        a->set_name("strides_typo");
        a->set_type(::onnx::AttributeProto_AttributeType_INTS);
        a->add_ints(2);
        CHECK(error_of(bytes_of(m)) ==
              "node 'conv1' (Conv): unknown attribute 'strides_typo'; Conv accepts auto_pad, dilations, group, "
              "kernel_shape, pads, strides");
        // The node is a field of the error too, for a program that reports it on its own.
        try {
            kiln::onnx::load_from_bytes(bytes_of(m), {}, "m.onnx");
            FAIL("the typo was accepted");
        } catch (const kiln::Error& e) { CHECK(e.node() == "node 'conv1' (Conv)"); }
    }
    {
        auto m = tiny_model();
        m.mutable_graph()
                ->mutable_input(0)
                ->mutable_type()
                ->mutable_tensor_type()
                ->mutable_shape()
                ->mutable_dim(0)
                ->set_dim_param("batch");
        CHECK(error_of(bytes_of(m)) ==
              "ONNX model 'm.onnx': input 'x' has dimension 0 unbound ('batch'); kiln compiles static shapes, so give "
              "the input's shape, "
              "e.g. {{\"x\", {1, 3, 224, 224}}}");
        kiln::onnx::LoadOptions o;
        o.shapes["x"] = {2, 3, 5, 5};
        auto g = kiln::onnx::load_from_bytes(bytes_of(m), o, "m.onnx");
        CHECK(g.type_of(g.outputs[0]).shape == std::vector<int64_t>{2, 4, 3, 3});
    }
    {
        auto m = tiny_model();
        m.mutable_graph()->mutable_node(1)->set_input(0, "nothing");
        CHECK(error_of(bytes_of(m)) ==
              "node 'relu1' (Relu): input 'nothing' is not a graph input, an initializer or the output of an earlier "
              "node "
              "(nodes must be in topological order)");
    }
    {
        auto m = tiny_model();
        m.mutable_graph()->mutable_initializer(0)->mutable_float_data()->RemoveLast();
        CHECK(error_of(bytes_of(m)) ==
              "ONNX model 'm.onnx': tensor 'w' declares 108 elements of shape [4, 3, 3, 3] but holds 107; the file is "
              "corrupt or truncated");
    }
    {
        auto m = tiny_model();
        m.mutable_graph()->mutable_initializer(0)->set_dims(1, 2);
        m.mutable_graph()->mutable_initializer(0)->mutable_float_data()->Truncate(4 * 2 * 9);
        CHECK(error_of(bytes_of(m)) ==
              "node 'conv1' (Conv): weight W has 2 input channels per group but X has 3 channels in 1 group(s)");
    }
    {
        auto m = tiny_model();
        auto* a = m.mutable_graph()->mutable_node(0)->add_attribute();
        a->set_name("pads");
        a->set_type(::onnx::AttributeProto_AttributeType_INTS);
        for (int p : {1, 1}) a->add_ints(p);
        CHECK(error_of(bytes_of(m)) ==
              "node 'conv1' (Conv): strides, dilations and pads must have 2, 2 and 4 values for 2 spatial dimensions");
    }
    {
        auto m = tiny_model();
        m.mutable_graph()->mutable_node(0)->set_domain("com.microsoft");
        CHECK(error_of(bytes_of(m)) ==
              "node 'conv1' (Conv): operator domain 'com.microsoft' is not supported; kiln implements the default ONNX "
              "domain");
    }
    {
        auto m = tiny_model();
        m.mutable_graph()->mutable_node(1)->set_op_type("kiln.ToBlocked");
        CHECK(error_of(bytes_of(m)) ==
              "node 'relu1' (kiln.ToBlocked): 'kiln.ToBlocked' is one of kiln's internal operators, which its passes "
              "insert; a model cannot use it");
    }
    {
        auto m = tiny_model();
        m.mutable_graph()->mutable_output(0)->set_name("missing");
        CHECK(error_of(bytes_of(m)) == "ONNX model 'm.onnx': output 'missing' is not computed by any node");
    }
}

TEST_CASE("graph errors: executor misuse") {
    auto g = kiln::onnx::load_from_bytes(bytes_of(tiny_model()), {}, "m.onnx");
    auto ex = kiln::graph::compile(g, {.opt_level = 0});
    CHECK_THROWS_WITH_AS(ex.set_input("y", kiln::Buffer({1, 3, 5, 5})),
                         "set_input: the model has no input 'y'; its inputs are x", kiln::Error);
    CHECK_THROWS_WITH_AS(ex.set_input("x", kiln::Buffer({1, 3, 5, 4})),
                         "set_input: input 'x' is f32[1, 3, 5, 5] but the buffer is f32[1, 3, 5, 4]; pass a buffer of "
                         "the model's input type",
                         kiln::Error);
    CHECK_THROWS_WITH_AS(ex.output(1), "output: the model has 1 output(s); there is no output 1", kiln::Error);
    CHECK_THROWS_WITH_AS(kiln::graph::compile(g, {.opt_level = 4}), "graph::compile: opt_level is 4; use 0 to 3",
                         kiln::Error);
}

namespace {

// The tiny model run at opt level 3 on x[n, c, h, w] = sin(index): its outputs, or the kiln::Error it gave.
struct Outcome {
    std::string error;
    std::vector<kiln::Buffer> outputs;
    kiln::Buffer input;
};
Outcome run_tiny(const ::onnx::ModelProto& m) {
    Outcome o;
    try {
        auto g = kiln::onnx::load_from_bytes(bytes_of(m), {}, "m.onnx");
        auto ex = kiln::graph::compile(g, {.opt_level = 3});
        const auto& t = g.type_of(g.inputs.at(0));
        o.input = kiln::Buffer(t.shape, kiln::f32);
        for (int64_t i = 0; i < o.input.size(); ++i)
            o.input.data_as<float>()[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i)));
        ex.set_input(0, o.input);
        ex.run();
        for (size_t i = 0; i < ex.num_outputs(); ++i) o.outputs.push_back(ex.output(i));
    } catch (const kiln::Error& e) { o.error = e.what(); }
    return o;
}

// The tiny model's convolution (no padding, stride 1) at one output point, from its definition.
double tiny_conv(const ::onnx::ModelProto& m, const kiln::Buffer& x, int64_t o, int64_t y, int64_t xx) {
    const auto& w = m.graph().initializer(0);
    const int64_t H = x.dim(2), W = x.dim(3);
    double acc = 0;
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t ky = 0; ky < 3; ++ky)
            for (int64_t kx = 0; kx < 3; ++kx)
                acc += static_cast<double>(w.float_data(static_cast<int>(((o * 3 + c) * 3 + ky) * 3 + kx))) *
                       x.data_as<float>()[(c * H + y + ky) * W + xx + kx];
    return acc;
}

}  // namespace

TEST_CASE("onnx: each kind of semantic mutation of a model gives a clear error or a correct result") {
    auto attr = [](::onnx::ModelProto& m, const char* name, std::vector<int64_t> v) {
        auto* a = m.mutable_graph()->mutable_node(0)->add_attribute();
        a->set_name(name);
        if (v.size() == 1 && std::string(name) == "group") {
            a->set_type(::onnx::AttributeProto_AttributeType_INT);
            a->set_i(v[0]);
        } else {
            a->set_type(::onnx::AttributeProto_AttributeType_INTS);
            for (auto x : v) a->add_ints(x);
        }
    };
    SUBCASE("attributes set to 0, -1 and 10^9") {
        auto m0 = tiny_model(), m1 = tiny_model(), m2 = tiny_model();
        attr(m0, "strides", {0, 0});
        attr(m1, "group", {-1});
        attr(m2, "pads", {1000000000, 0, 0, 0});
        CHECK(run_tiny(m0).error == "node 'conv1' (Conv): strides, dilations and kernel_shape must be at least 1");
        CHECK(run_tiny(m1).error ==
              "node 'conv1' (Conv): group = -1 must divide the input channels (3) and the output channels (4)");
        CHECK(run_tiny(m2).error ==
              "node 'conv1' (Conv): output 'y' would hold more than 2147483648 elements (shape [1, 4, 1000000003, "
              "3]), over the limit of 2147483648 (kiln::onnx::LoadOptions::limits.max_tensor_elements); raise the "
              "limit if the model really needs it");
    }
    SUBCASE("input dimensions set to 0 and 100000") {
        auto m0 = tiny_model(), m1 = tiny_model();
        auto dim = [](::onnx::ModelProto& m) {
            return m.mutable_graph()
                    ->mutable_input(0)
                    ->mutable_type()
                    ->mutable_tensor_type()
                    ->mutable_shape()
                    ->mutable_dim(2);
        };
        dim(m0)->set_dim_value(0);
        dim(m1)->set_dim_value(100000);
        CHECK(run_tiny(m0).error ==
              "ONNX model 'm.onnx': input 'x' has dimension 2 of size 0; every dimension must be at least 1");
        const Outcome big = run_tiny(m1);
        REQUIRE(big.error == "");
        REQUIRE(big.outputs[0].shape() == std::vector<int64_t>{1, 4, 99998, 3});
        for (int64_t y : {int64_t{0}, int64_t{12345}, int64_t{99997}})
            CHECK(big.outputs[0].data_as<float>()[(2 * 99998 + y) * 3 + 1] ==
                  doctest::Approx(std::max(0.0, tiny_conv(m1, big.input, 2, y, 1))).epsilon(1e-4));
    }
    SUBCASE("op types changed") {
        auto m0 = tiny_model(), m1 = tiny_model();
        m0.mutable_graph()->mutable_node(1)->set_op_type("Sigmoid");
        m1.mutable_graph()->mutable_node(1)->set_op_type("Relux");
        const Outcome sig = run_tiny(m0);
        REQUIRE(sig.error == "");
        CHECK(sig.outputs[0].data_as<float>()[9 + 4] ==
              doctest::Approx(1 / (1 + std::exp(-tiny_conv(m0, sig.input, 1, 1, 1)))).epsilon(1e-5));
        CHECK(run_tiny(m1).error.starts_with(
                "node 'relu1' (Relux): operator 'Relux' is not supported; kiln supports Abs, Add, AveragePool"));
    }
    SUBCASE("initializers removed or filled with NaN") {
        auto m0 = tiny_model(), m1 = tiny_model();
        m0.mutable_graph()->clear_initializer();
        for (auto& v : *m1.mutable_graph()->mutable_initializer(0)->mutable_float_data()) v = NAN;
        CHECK(run_tiny(m0).error ==
              "node 'conv1' (Conv): input 'w' is not a graph input, an initializer or the output of an earlier node "
              "(nodes must be in topological order)");
        const Outcome nan = run_tiny(m1);
        REQUIRE(nan.error == "");
        for (int64_t i = 0; i < nan.outputs[0].size(); ++i) CHECK(std::isnan(nan.outputs[0].data_as<float>()[i]));
    }
    SUBCASE("inputs rewired") {
        auto m = tiny_model();
        m.mutable_graph()->mutable_node(1)->set_input(0, "x");  // Relu of the input; the convolution is dead
        const Outcome o = run_tiny(m);
        REQUIRE(o.error == "");
        REQUIRE(o.outputs[0].shape() == std::vector<int64_t>{1, 3, 5, 5});
        for (int64_t i = 0; i < 75; ++i)
            CHECK(o.outputs[0].data_as<float>()[i] == std::max(0.f, o.input.data_as<float>()[i]));
    }
    SUBCASE("outputs duplicated") {
        auto m = tiny_model();
        m.mutable_graph()->add_output()->set_name("z");
        const Outcome o = run_tiny(m);
        CHECK(o.error == "");
        REQUIRE(o.outputs.size() == 2);
        for (int64_t i = 0; i < o.outputs[0].size(); ++i)
            CHECK(o.outputs[1].data_as<float>()[i] == o.outputs[0].data_as<float>()[i]);
    }
}

TEST_CASE("onnx Gather: indices from an input are checked before the kernel runs, compiled and saved alike") {
    ::onnx::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(17);
    auto* g = m.mutable_graph();
    g->set_name("gather");
    auto* in = g->add_input();
    in->set_name("ids");
    in->mutable_type()->mutable_tensor_type()->set_elem_type(7);  // int64
    in->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(3);
    auto* table = g->add_initializer();
    table->set_name("table");
    table->set_data_type(1);
    for (int d : {10, 4}) table->add_dims(d);
    for (int i = 0; i < 40; ++i) table->add_float_data(static_cast<float>(i));
    auto* node = g->add_node();
    node->set_name("embed");
    node->set_op_type("Gather");
    node->add_input("table");
    node->add_input("ids");
    node->add_output("rows");
    auto* relu = g->add_node();  // fused with the Gather into one kernel
    relu->set_name("relu");
    relu->set_op_type("Relu");
    relu->add_input("rows");
    relu->add_output("out");
    g->add_output()->set_name("out");

    auto exe = kiln::graph::compile(kiln::onnx::load_from_bytes(bytes_of(m), {}, "m.onnx"), {.opt_level = 3});
    const std::string saved = (std::filesystem::temp_directory_path() / "kiln_gather_check.kiln").string();
    kiln::graph::save(exe, saved);
    auto loaded = kiln::graph::load_executable(saved);
    std::filesystem::remove(saved);
    for (kiln::graph::Executable* e : {&exe, &loaded}) {
        kiln::Buffer ids({3}, kiln::i64);
        auto* p = ids.data_as<int64_t>();
        p[0] = 1, p[1] = -2, p[2] = 9;  // -2 is row 8, as ONNX counts from the end
        e->set_input(0, ids);
        e->run();
        const float* out = e->output(0).data_as<float>();
        for (int c = 0; c < 4; ++c) {
            CHECK(out[c] == static_cast<float>(4 + c));
            CHECK(out[4 + c] == static_cast<float>(32 + c));
            CHECK(out[8 + c] == static_cast<float>(36 + c));
        }
        p[1] = 10;
        e->set_input(0, ids);
        CHECK_THROWS_WITH_AS(e->run(),
                             "run: node 'embed' (Gather): index 10 at position 1 of 'ids' is outside [-10, 10), the "
                             "extent of the axis it indexes; pass indices inside it",
                             kiln::Error);
        p[1] = -11;
        e->set_input(0, ids);
        CHECK_THROWS_AS(e->run(), kiln::Error);
    }
}
