// kiln::jit: the backend and the importer compiled once by kiln's build, so this file sees their
// declarations only and includes no LLVM or protobuf header (check_no_llvm.cmake checks that too).
// Loads the model onnx_header_only wrote (argv[1]), compiles it and checks its output; builds a kernel.
#include <kiln/build.hpp>
#include <kiln/graph.hpp>
#include <kiln/onnx.hpp>

#include <iostream>
#include <vector>

#if defined(KILN_SEPARATE_IMPLEMENTATION) && (defined(LLVM_VERSION_MAJOR) || defined(GOOGLE_PROTOBUF_VERSION))
#error "a file of a program that links kiln::jit sees LLVM or protobuf"
#endif

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    auto exe = kiln::graph::compile(kiln::onnx::load(argv[1], {{"x", {2, 3}}}));
    kiln::Buffer x({2, 3}, kiln::f32);
    for (int i = 0; i < 6; ++i) x.data_as<float>()[i] = static_cast<float>(i) - 2.5f;
    exe.set_input(0, x);
    exe.run();
    for (int i = 0; i < 6; ++i)
        if (exe.output(0).data_as<float>()[i] != std::max(0.f, static_cast<float>(i) - 2.5f)) return 1;

    auto A = kiln::placeholder({5}, kiln::f32, "A");
    auto B = kiln::compute(
            {5}, [&](kiln::Expr i) { return A(i) * 3.0f; }, "B");
    kiln::Schedule s(B);
    auto f = kiln::build(s, {A, B});
    std::vector<float> a = {1, 2, 3, 4, 5}, b(5);
    f(a.data(), b.data());
    if (b[4] != 15.f) return 1;
    std::cout << "jit ok\n";
}
