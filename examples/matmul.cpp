// The TVM lesson's matmul in kiln: split 32x32, reorder, vectorize. Prints the loop IR, runs it,
// checks it against Eigen and reports GFLOP/s.
#include <kiln/build.hpp>

#include <Eigen/Dense>
#include <chrono>
#include <iostream>

int main() {
    const int M = 1024, N = 1024, K = 1024;
    auto A = kiln::placeholder({M, K}, kiln::f32, "A");
    auto B = kiln::placeholder({K, N}, kiln::f32, "B");
    auto k = kiln::reduce_axis(0, K, "k");
    auto C = kiln::compute(
            {M, N}, [&](kiln::Expr i, kiln::Expr j) { return kiln::sum(A(i, k) * B(k, j), {k}); }, "C");

    kiln::Schedule s(C);
    auto [xo, xi] = s[C].split(C.axis(0), 32);
    auto [yo, yi] = s[C].split(C.axis(1), 32);
    s[C].reorder(xo, yo, xi, yi);
    s[C].vectorize(yi);

    std::cout << kiln::lower(s, {A, B, C}) << "\n";
    auto f = kiln::build(s, {A, B, C});
    std::cout << "compiled for " << kiln::host_target().cpu << " in " << f.compile_ms() << " ms\n";

    using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    RowMat a = RowMat::Random(M, K), b = RowMat::Random(K, N), c(M, N);
    f(a, b, c);
    RowMat ref = a * b;
    const double err = (c - ref).cwiseAbs().maxCoeff();
    std::cout << "max |kiln - Eigen| = " << err << (err < 1e-3 ? "  (match)\n" : "  (MISMATCH)\n");
    double best = 1e30;
    for (int r = 0; r < 5; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        f(a, b, c);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::cout << "lesson schedule: " << 2.0 * M * N * K / best / 1e9 << " GFLOP/s\n";
    return err < 1e-3 ? 0 : 1;
}
