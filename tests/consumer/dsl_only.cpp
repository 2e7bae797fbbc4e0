// Describes and lowers kernels with the DSL and operator headers alone: no LLVM is included here.
#include <kiln/kiln.hpp>
#include <kiln/nn.hpp>

#include <iostream>
#include <sstream>

int main() {
    auto A = kiln::placeholder({64, 64}, kiln::f32, "A");
    auto B = kiln::compute(
            {64, 64}, [&](kiln::Expr i, kiln::Expr j) { return A(j, i) * 2.0f; }, "B");
    kiln::Schedule s(B);
    auto [io, ii] = s[B].split(B.axis(0), 8);
    s[B].parallel(io);
    std::ostringstream os;
    os << kiln::lower(s, {A, B});
    if (os.str().find("parallel (i.outer") == std::string::npos) return 1;

    auto W = kiln::placeholder({64, 64}, kiln::f32, "W");
    auto Y = kiln::nn::matmul(A, W, {.transpose_b = true});
    kiln::Schedule sy(Y);
    kiln::nn::schedule_matmul(sy, Y);
    if (kiln::to_string(kiln::lower(sy, {A, W, Y})).find("matmul.local") == std::string::npos) return 1;
    std::cout << "consumer ok\n";
}
