// kiln::onnx, header-only (nothing compiled once): writes a one-node ONNX model (Relu over [2, 3]) with the
// protobuf API to argv[1], loads it back with onnx::load, compiles it and checks its output.
#include <onnx/onnx_pb.h>

#include <kiln/graph.hpp>
#include <kiln/onnx.hpp>

#include <fstream>
#include <iostream>

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    ::onnx::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(17);
    auto* g = m.mutable_graph();
    g->set_name("relu");
    for (auto [value, list] : {std::pair{"x", g->add_input()}, std::pair{"y", g->add_output()}}) {
        list->set_name(value);
        auto* t = list->mutable_type()->mutable_tensor_type();
        t->set_elem_type(::onnx::TensorProto::FLOAT);
        t->mutable_shape()->add_dim()->set_dim_value(2);
        t->mutable_shape()->add_dim()->set_dim_value(3);
    }
    auto* n = g->add_node();
    n->set_op_type("Relu");
    n->add_input("x");
    n->add_output("y");
    std::ofstream(argv[1], std::ios::binary) << m.SerializeAsString();

    auto exe = kiln::graph::compile(kiln::onnx::load(argv[1]));
    kiln::Buffer x({2, 3}, kiln::f32);
    for (int i = 0; i < 6; ++i) x.data_as<float>()[i] = static_cast<float>(i) - 2.5f;
    exe.set_input("x", x);
    exe.run();
    const float* y = exe.output(0).data_as<float>();
    for (int i = 0; i < 6; ++i)
        if (y[i] != std::max(0.f, static_cast<float>(i) - 2.5f)) return 1;
    std::cout << "onnx ok\n";
}
