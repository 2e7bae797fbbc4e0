// A multi-stage pipeline: zero padding -> conv2d (NCHW, 3x3, stride 1) -> + bias -> ReLU.
// The padding stage is inlined into the convolution; the convolution is computed per output row
// inside the ReLU stage (compute_at), so its result never goes to memory, and the bias add is
// fused into that row. The program prints the loop IR, checks the result against a naive loop and
// reports GFLOP/s.
#include <kiln/build.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <vector>

int main() {
    const int N = 1, CI = 16, H = 30, W = 30, CO = 32, KH = 3, KW = 3, P = 1;
    const int OH = H + 2 * P - KH + 1, OW = W + 2 * P - KW + 1;
    using kiln::Expr;

    auto X = kiln::placeholder({N, CI, H, W}, kiln::f32, "X");
    auto Wt = kiln::placeholder({CO, CI, KH, KW}, kiln::f32, "W");
    auto bias = kiln::placeholder({CO}, kiln::f32, "bias");
    auto pad = kiln::compute(
            {N, CI, H + 2 * P, W + 2 * P},
            [&](Expr n, Expr c, Expr h, Expr w) {
                return kiln::if_then_else(h >= P && h < H + P && w >= P && w < W + P, X(n, c, h - P, w - P), 0.0f);
            },
            "pad");
    auto rc = kiln::reduce_axis(0, CI, "rc"), ry = kiln::reduce_axis(0, KH, "ry"), rx = kiln::reduce_axis(0, KW, "rx");
    auto conv = kiln::compute(
            {N, CO, OH, OW},
            [&](Expr n, Expr c, Expr h, Expr w) {
                return kiln::sum(pad(n, rc, h + ry, w + rx) * Wt(c, rc, ry, rx), {rc, ry, rx});
            },
            "conv");
    auto relu = kiln::compute(
            {N, CO, OH, OW},
            [&](Expr n, Expr c, Expr h, Expr w) { return kiln::max(conv(n, c, h, w) + bias(c), 0.0f); }, "relu");

    kiln::Schedule s(relu);
    s[pad].compute_inline();
    s[relu].parallel(relu.axis(1));
    auto [wo, wi] = s[relu].split(relu.axis(3), 16);
    s[relu].vectorize(wi);
    s[conv].compute_at(s[relu], relu.axis(2));
    // Inside one output row: the reduction outermost, the 16-wide column block vectorized.
    auto [cwo, cwi] = s[conv].split(s[conv].axis(3), 16);
    s[conv].reorder(s[conv].reduce_axis(0), s[conv].reduce_axis(1), s[conv].reduce_axis(2), cwo, cwi);
    s[conv].vectorize(cwi);
    s[conv].unroll(s[conv].reduce_axis(2));

    std::cout << kiln::lower(s, {X, Wt, bias, relu}) << "\n";
    auto f = kiln::build(s, {X, Wt, bias, relu});

    kiln::Buffer x({N, CI, H, W}), w({CO, CI, KH, KW}), b({CO}), y({N, CO, OH, OW});
    unsigned seed = 1;
    auto next = [&] {
        seed = seed * 1664525u + 1013904223u;
        return float(seed >> 8) / float(1u << 24) - 0.5f;
    };
    for (int i = 0; i < N * CI * H * W; ++i) x.data_as<float>()[i] = next();
    for (int i = 0; i < CO * CI * KH * KW; ++i) w.data_as<float>()[i] = next();
    for (int i = 0; i < CO; ++i) b.data_as<float>()[i] = next();
    f(x, w, b, y);

    double max_err = 0;
    for (int c = 0; c < CO; ++c)
        for (int h = 0; h < OH; ++h)
            for (int q = 0; q < OW; ++q) {
                double acc = b.at<float>(c);
                for (int ci = 0; ci < CI; ++ci)
                    for (int dy = 0; dy < KH; ++dy)
                        for (int dx = 0; dx < KW; ++dx) {
                            int ih = h + dy - P, iw = q + dx - P;
                            if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                acc += double(x.at<float>(0, ci, ih, iw)) * w.at<float>(c, ci, dy, dx);
                        }
                max_err = std::max(max_err, std::abs(std::max(acc, 0.0) - y.at<float>(0, c, h, q)));
            }
    std::cout << "max |kiln - naive loop| = " << max_err << (max_err < 1e-4 ? "  (match)\n" : "  (MISMATCH)\n");

    double best = 1e30;
    for (int r = 0; r < 20; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        f(x, w, b, y);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::cout << "conv2d+bias+relu: " << 2.0 * N * CO * OH * OW * CI * KH * KW / best / 1e9 << " GFLOP/s on "
              << kiln::num_threads() << " threads\n";
    return max_err < 1e-4 ? 0 : 1;
}
