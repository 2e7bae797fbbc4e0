// Describes and lowers a kernel with the DSL header alone: no LLVM is included here.
#include <kiln/kiln.hpp>

#include <iostream>
#include <sstream>

int main() {
    auto A = kiln::placeholder({64, 64}, kiln::f32, "A");
    auto B = kiln::compute({64, 64}, [&](kiln::Expr i, kiln::Expr j) { return A(j, i) * 2.0f; }, "B");
    kiln::Schedule s(B);
    auto [io, ii] = s[B].split(B.axis(0), 8);
    s[B].parallel(io);
    std::ostringstream os;
    os << kiln::lower(s, {A, B});
    if (os.str().find("parallel (i.outer") == std::string::npos) return 1;
    std::cout << "consumer ok\n";
}
