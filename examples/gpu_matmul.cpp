// A matmul on a GPU: tiles of C per block, a 2 x 2 micro-tile per thread in registers, and the tiles of A and B
// staged in the block's shared memory for each step of the reduction. Runs on the first OpenCL device (PoCL
// runs OpenCL on the CPU) and, with `cuda` as argument, on the first CUDA GPU; checked against a plain loop.
//   ./gpu_matmul [opencl|cuda]
#include <kiln/build.hpp>

#include <cmath>
#include <iostream>
#include <random>

int main(int argc, char** argv) {
    const std::string kind = argc > 1 ? argv[1] : "opencl";
    const int64_t M = 300, N = 200, K = 150;  // not multiples of the tiles
    auto A = kiln::placeholder({M, K}, kiln::f32, "A");
    auto B = kiln::placeholder({K, N}, kiln::f32, "B");
    auto k = kiln::reduce_axis(0, K, "k");
    auto C = kiln::compute(
            {M, N}, [&](kiln::Expr i, kiln::Expr j) { return kiln::sum(A(i, k) * B(k, j), {k}); }, "C");

    kiln::Schedule s(C);
    auto AA = s.cache_read(A, "shared", {C});
    auto BB = s.cache_read(B, "shared", {C});
    auto CL = s.cache_write(C, "local");
    auto [by, yi] = s[C].split(s[C].axis(0), 32);
    auto [ty, yr] = s[C].split(yi, 2);
    auto [bx, xi] = s[C].split(s[C].axis(1), 32);
    auto [tx, xr] = s[C].split(xi, 2);
    s[C].reorder(by, bx, ty, tx, yr, xr);
    s[C].bind(by, kiln::thread_axis("blockIdx.y")).bind(bx, kiln::thread_axis("blockIdx.x"));
    s[C].bind(ty, kiln::thread_axis("threadIdx.y")).bind(tx, kiln::thread_axis("threadIdx.x"));
    s[CL].compute_at(s[C], tx);
    auto [ko, ki] = s[CL].split(s[CL].reduce_axis(0), 8);
    s[CL].reorder(ko, ki, s[CL].axis(0), s[CL].axis(1));
    for (auto& T : {AA, BB}) {
        s[T].compute_at(s[CL], ko);
        auto fused = s[T].fuse(s[T].axis(0), s[T].axis(1));
        auto [rest, mine] = s[T].split(fused, 256);
        auto [t_y, t_x] = s[T].split(mine, 16);
        s[T].bind(t_y, kiln::thread_axis("threadIdx.y")).bind(t_x, kiln::thread_axis("threadIdx.x"));
    }

    const kiln::Target target = kind == "cuda" ? kiln::Target::cuda() : kiln::Target::opencl();
    kiln::Kernel kernel = kiln::build(s, {A, B, C}, {.target = target});
    const std::string& source = kernel.source();
    std::cout << source.substr(source.find(kind == "cuda" ? "extern" : "__kernel")).substr(0, 600) << "...\n\n";
    if (!kiln::Target::enabled(kind)) {
        std::cout << "no " << kind << " device here (" << kiln::Device::describe_all() << "); the kernel was built"
                  << (kernel.compiled().ptx.empty() ? "" : " and compiled to PTX") << " but not run\n";
        return 0;
    }

    kiln::Buffer a({M, K}), b({K, N});
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1, 1);
    for (auto* buf : {&a, &b})
        for (int64_t i = 0; i < buf->size(); ++i) buf->data_as<float>()[i] = dist(rng);
    kiln::Device device = kiln::Device::get(kind);
    auto da = kiln::DeviceBuffer::from(a, device), db = kiln::DeviceBuffer::from(b, device);
    kiln::DeviceBuffer dc(device, {M, N});
    kernel(da, db, dc);
    kiln::Buffer c = dc.to_host();

    double worst = 0;
    for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
            double want = 0;
            for (int64_t q = 0; q < K; ++q) want += double(a.at<float>(i, q)) * b.at<float>(q, j);
            worst = std::max(worst, std::abs(c.at<float>(i, j) - want));
        }
    std::cout << "C = A B, " << M << " x " << N << " x " << K << ", on " << device.str() << ": largest error " << worst
              << "\n";
    return worst < 1e-3 ? 0 : 1;
}
