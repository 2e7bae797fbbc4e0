// kiln::autotune beside kiln::jit, from an installed kiln: tunes a small kernel into a records file
// (argv[1]) and builds the best record.
#include <kiln/autotune.hpp>

#include <iostream>

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    auto A = kiln::placeholder({37}, kiln::f32, "A");
    auto B = kiln::compute(
            {37}, [&](kiln::Expr i) { return A(i) * 3.0f; }, "B");
    kiln::autotune::Task task{"triple", {A, B}, [&](kiln::Knobs& k) {
                                  kiln::Schedule s(B);
                                  s[B].vectorize(s[B].split(B.axis(0), k.knob("lanes", {4, 8})).second);
                                  return s;
                              }};
    kiln::autotune::TuneOptions opt;
    opt.trials = 2;
    opt.records = argv[1];
    if (kiln::autotune::tune(task, opt).measured != 2) return 1;
    kiln::Buffer a({37}), b({37});
    for (int i = 0; i < 37; ++i) a.data_as<float>()[i] = static_cast<float>(i);
    kiln::autotune::build_best(task, argv[1])(a, b);
    for (int i = 0; i < 37; ++i)
        if (b.data_as<float>()[i] != 3.0f * static_cast<float>(i)) return 1;
    std::cout << "autotune ok\n";
}
