// GPU targets: schedules bound to GPU threads, lowered with the host/device split, printed as OpenCL C and
// CUDA C. OpenCL kernels run on PoCL (OpenCL on this CPU, pocl-opencl-icd, installed by scripts/deps.sh) and are
// held to naive loops; every CUDA kernel is compiled to PTX by NVRTC where it is installed, and run where a GPU is.
#include <cmath>
#include <cstdlib>
#include <functional>

#include <kiln/nn.hpp>

#include "helpers.hpp"

using namespace kiln;
using test::error_of;

namespace {

// The OpenCL device the tests run on. Without one the suite fails, unless KILN_SKIP_OPENCL=1 says that the
// machine has no OpenCL driver on purpose.
bool have_opencl() {
    if (Target::enabled("opencl")) return true;
    const char* skip = std::getenv("KILN_SKIP_OPENCL");
    if (skip && std::string(skip) == "1") {
        MESSAGE("no OpenCL device (", detail::OpenCLAPI::get().unavailable(), "); skipped: KILN_SKIP_OPENCL=1");
        return false;
    }
    FAIL("no OpenCL device: ", detail::OpenCLAPI::get().unavailable(),
         "; run scripts/deps.sh, or set KILN_SKIP_OPENCL=1 to skip the GPU tests");
    return false;
}

// The same schedule compiled to PTX by NVRTC (where installed): the CUDA printer's output must compile.
void check_cuda_compiles(const Schedule& s, const std::vector<Tensor>& args) {
    if (!detail::NVRTC::get().available()) {
        MESSAGE("CUDA not compiled: ", detail::NVRTC::get().unavailable());
        return;
    }
    Kernel k = build(s, args, {.target = Target::cuda()});
    CHECK(k.source().find("extern \"C\" __global__ void") != std::string::npos);
    if (Target::enabled("cuda"))
        MESSAGE("a CUDA GPU is present: ", Device::describe_all());
    else
        CHECK(k.compiled().ptx.find(".entry") != std::string::npos);
}

// Runs `k` on device 0 of its kind with host inputs, returning the outputs (the arguments from `outputs` on).
std::vector<Buffer> run_on_device(const Kernel& k, const std::vector<Buffer>& host, size_t outputs) {
    Device dev = Device::get(k.compiled().device.substr(0, k.compiled().device.find(':')));
    std::vector<DeviceBuffer> d;
    for (size_t i = 0; i < host.size(); ++i)
        d.push_back(i < outputs ? DeviceBuffer::from(host[i], dev)
                                : DeviceBuffer(dev, host[i].shape(), host[i].dtype()));
    std::vector<detail::ArgValue> args;
    for (auto& b : d) args.push_back(detail::to_arg(b));
    k.call(args);
    std::vector<Buffer> out;
    for (size_t i = outputs; i < d.size(); ++i) out.push_back(d[i].to_host());
    return out;
}

// The schedule built and run on every GPU kind present: OpenCL always (PoCL at least), CUDA where there is a GPU.
// The outputs of each run, in that order.
std::vector<std::vector<Buffer>> run_everywhere(const Schedule& s, const std::vector<Tensor>& args,
                                                const std::vector<Buffer>& host, size_t outputs) {
    std::vector<std::vector<Buffer>> runs;
    for (const Target& t : {Target::opencl(), Target::cuda()}) {
        if (t.kind == "cuda" && !Target::enabled("cuda")) continue;
        runs.push_back(run_on_device(build(s, args, {.target = t}), host, outputs));
    }
    return runs;
}

struct Matmul {
    int64_t M, N, K;
    Tensor A, B, C;
    IterVar k;
    Matmul(int64_t m, int64_t n, int64_t kk) : M(m), N(n), K(kk) {
        A = placeholder({M, K}, f32, "A");
        B = placeholder({K, N}, f32, "B");
        k = reduce_axis(0, K, "k");
        C = compute(
                {M, N}, [&](Expr i, Expr j) { return sum(A(i, k) * B(k, j), {k}); }, "C");
    }
    Buffer reference(const Buffer& a, const Buffer& b) const {
        Buffer c({M, N});
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                double acc = 0;
                for (int64_t q = 0; q < K; ++q) acc += double(a.at<float>(i, q)) * b.at<float>(q, j);
                c.at<float>(i, j) = static_cast<float>(acc);
            }
        return c;
    }
};

// The classic shared-memory GEMM (TVM's and CUTLASS's first lesson): a block computes a tile of C, each thread
// a tx x ty micro-tile in registers, and the block's threads stage the tiles of A and B in shared memory for each
// step of the reduction.
Schedule shared_memory_gemm(const Matmul& m, int tile, int per_thread, int kstep) {
    Schedule s(m.C);
    auto AA = s.cache_read(m.A, "shared", {m.C});
    auto BB = s.cache_read(m.B, "shared", {m.C});
    auto CL = s.cache_write(m.C, "local");
    auto [by, yi] = s[m.C].split(s[m.C].axis(0), tile);
    auto [ty, yr] = s[m.C].split(yi, per_thread);
    auto [bx, xi] = s[m.C].split(s[m.C].axis(1), tile);
    auto [tx, xr] = s[m.C].split(xi, per_thread);
    s[m.C].reorder(by, bx, ty, tx, yr, xr);
    s[m.C].bind(by, thread_axis("blockIdx.y"));
    s[m.C].bind(bx, thread_axis("blockIdx.x"));
    s[m.C].bind(ty, thread_axis("threadIdx.y"));
    s[m.C].bind(tx, thread_axis("threadIdx.x"));
    s[CL].compute_at(s[m.C], tx);
    auto [ko, ki] = s[CL].split(s[CL].reduce_axis(0), kstep);
    s[CL].reorder(ko, ki, s[CL].axis(0), s[CL].axis(1));
    const int threads = tile / per_thread;
    for (auto& T : {AA, BB}) {
        s[T].compute_at(s[CL], ko);
        auto fused = s[T].fuse(s[T].axis(0), s[T].axis(1));
        auto [rest, mine] = s[T].split(fused, threads * threads);
        auto [t_y, t_x] = s[T].split(mine, threads);
        s[T].bind(t_y, thread_axis("threadIdx.y"));
        s[T].bind(t_x, thread_axis("threadIdx.x"));
    }
    return s;
}

}  // namespace

TEST_CASE("gpu: an elementwise kernel over symbolic sizes, bound to a 2-D grid") {
    Var n("n"), m("m");
    auto A = placeholder({n, m}, f32, "A");
    auto B = placeholder({n, m}, f32, "B");
    auto C = compute(
            {n, m}, [&](Expr i, Expr j) { return A(i, j) * 2.0f + exp(B(i, j)); }, "C");
    Schedule s(C);
    auto [by, ty] = s[C].split(C.axis(0), 4);
    auto [bx, tx] = s[C].split(C.axis(1), 32);
    s[C].reorder(by, bx, ty, tx);
    s[C].bind(by, thread_axis("blockIdx.y")).bind(bx, thread_axis("blockIdx.x"));
    s[C].bind(ty, thread_axis("threadIdx.y")).bind(tx, thread_axis("threadIdx.x"));
    const std::string ir = to_string(lower(s, {A, B, C}, {.target = Target::opencl()}));
    CHECK(ir.find("bound (i.outer, 0, ((n + 3)/4)) @thread=blockIdx.y") != std::string::npos);
    CHECK(ir.find("// device kernel kernel_kernel0: grid ((m + 31)/32, (n + 3)/4, 1), block (32, 4, 1)") !=
          std::string::npos);
    check_cuda_compiles(s, {A, B, C});
    if (!have_opencl()) return;
    CHECK(build(s, {A, B, C}, {.target = Target::opencl()}).source().find("get_group_id(1)") != std::string::npos);
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{37, 53}, {1, 1}, {5, 100}}) {
        Buffer a = test::random_buffer({rows, cols}, 1), b = test::random_buffer({rows, cols}, 2);
        Buffer want({rows, cols});
        for (int64_t i = 0; i < a.size(); ++i)
            want.data_as<float>()[i] = a.data_as<float>()[i] * 2.0f + std::exp(b.data_as<float>()[i]);
        for (auto& run : run_everywhere(s, {A, B, C}, {a, b, Buffer({rows, cols})}, 2))
            CHECK(test::max_rel_err(run[0].data_as<float>(), want.data_as<float>(), want.size()) < 1e-5);
    }
}

TEST_CASE("gpu: a matmul tiled in shared memory matches the reference on shapes the tiles do not divide") {
    Matmul m(67, 45, 53);
    Schedule s = shared_memory_gemm(m, 16, 2, 8);
    const std::string ir = to_string(lower(s, {m.A, m.B, m.C}, {.target = Target::opencl()}));
    CHECK(ir.find("allocate A.shared[f32 * 128] @shared") != std::string::npos);
    // Before and after filling A's tile, and after filling B's: the barrier between the two fills is shared.
    size_t barriers = 0;
    for (size_t at = ir.find("barrier()"); at != std::string::npos; at = ir.find("barrier()", at + 1)) ++barriers;
    CHECK(barriers == 3);
    check_cuda_compiles(s, {m.A, m.B, m.C});
    if (!have_opencl()) return;
    Kernel k = build(s, {m.A, m.B, m.C}, {.target = Target::opencl()});
    CHECK(k.source().find("__local float A_shared") != std::string::npos);
    CHECK(k.source().find("barrier(CLK_LOCAL_MEM_FENCE);") != std::string::npos);
    Buffer a = test::random_buffer({m.M, m.K}, 3), b = test::random_buffer({m.K, m.N}, 4);
    Buffer want = m.reference(a, b);
    for (auto& run : run_everywhere(s, {m.A, m.B, m.C}, {a, b, Buffer({m.M, m.N})}, 2))
        CHECK(test::max_rel_err(run[0].data_as<float>(), want.data_as<float>(), want.size()) < 1e-5);
}

TEST_CASE("gpu: nn::schedule_matmul's GPU schedule, with epilogues, transposed and batched products") {
    struct Case {
        int64_t batch, M, N, K;
        bool transpose_b, bias_relu;
    };
    for (const Case& c :
         {Case{0, 50, 70, 37, false, true}, Case{0, 33, 20, 64, true, false}, Case{3, 17, 23, 40, false, false}}) {
        CAPTURE(c.M);
        const Target gpu = Target::opencl();
        std::vector<int64_t> a_shape{c.M, c.K},
                b_shape = c.transpose_b ? std::vector<int64_t>{c.N, c.K} : std::vector<int64_t>{c.K, c.N};
        if (c.batch) {
            a_shape.insert(a_shape.begin(), c.batch);
            b_shape.insert(b_shape.begin(), c.batch);
        }
        auto shape_of = [](const std::vector<int64_t>& v) { return std::vector<Expr>(v.begin(), v.end()); };
        auto A = placeholder(shape_of(a_shape), f32, "A");
        auto B = placeholder(shape_of(b_shape), f32, "B");
        auto bias = placeholder({c.N}, f32, "bias");
        nn::MatmulOptions opt{.transpose_b = c.transpose_b, .target = gpu};
        if (c.bias_relu) opt.bias = bias;
        Tensor out = nn::matmul(A, B, opt);
        if (c.bias_relu)
            out = compute(
                    {c.M, c.N}, [&](Expr i, Expr j) { return max(out(i, j), 0.0f); }, "relu");
        Schedule s(out);
        nn::schedule_matmul(s, out, gpu);
        std::vector<Tensor> args{A, B};
        if (c.bias_relu) args.push_back(bias);
        args.push_back(out);
        check_cuda_compiles(s, args);
        if (!have_opencl()) return;
        Buffer a = test::random_buffer(a_shape, 8), b = test::random_buffer(b_shape, 9),
               bv = test::random_buffer({c.N}, 10);
        std::vector<Buffer> host{a, b};
        if (c.bias_relu) host.push_back(bv);
        host.push_back(
                Buffer(out.ndim() == 3 ? std::vector<int64_t>{c.batch, c.M, c.N} : std::vector<int64_t>{c.M, c.N}));
        Buffer want(host.back().shape());
        const int64_t batches = std::max<int64_t>(c.batch, 1);
        for (int64_t q = 0; q < batches; ++q)
            for (int64_t i = 0; i < c.M; ++i)
                for (int64_t j = 0; j < c.N; ++j) {
                    double acc = 0;
                    for (int64_t k = 0; k < c.K; ++k) {
                        const float* pa = a.data_as<float>() + q * c.M * c.K;
                        const float* pb = b.data_as<float>() + q * c.K * c.N;
                        acc += double(pa[i * c.K + k]) * (c.transpose_b ? pb[j * c.K + k] : pb[k * c.N + j]);
                    }
                    if (c.bias_relu) acc = std::max(acc + bv.data_as<float>()[j], 0.0);
                    want.data_as<float>()[(q * c.M + i) * c.N + j] = float(acc);
                }
        for (auto& run : run_everywhere(s, args, host, args.size() - 1))
            CHECK(test::max_rel_err(run[0].data_as<float>(), want.data_as<float>(), want.size()) < 1e-5);
    }
    // A product defined for a CPU packs B for its registers, which the GPU schedule does not read.
    auto A = placeholder({64, 32}, f32, "A");
    auto B = placeholder({32, 48}, f32, "B");
    Tensor cpu = nn::matmul(A, B);
    Schedule s(cpu);
    CHECK(error_of([&] { nn::schedule_matmul(s, cpu, Target::opencl()); }) ==
          "nn::schedule_matmul: 'matmul' packs B into panels for a CPU's registers ('matmul.packed_B'); define it with "
          "nn::MatmulOptions::target set to the GPU target, so it reads B as it is and the schedule stages B's "
          "tiles in shared memory");
}

TEST_CASE("gpu: softmax and layernorm, one thread per row, their row statistics computed inside the row") {
    const int64_t rows = 19, cols = 37;
    auto X = placeholder({rows, cols}, f32, "X");
    auto j1 = reduce_axis(0, cols, "j1"), j2 = reduce_axis(0, cols, "j2");
    auto rowmax = compute(
            {rows}, [&](Expr i) { return max(X(i, j1), {j1}); }, "rowmax");
    auto ex = compute(
            {rows, cols}, [&](Expr i, Expr j) { return exp(X(i, j) - rowmax(i)); }, "ex");
    auto rowsum = compute(
            {rows}, [&](Expr i) { return sum(ex(i, j2), {j2}); }, "rowsum");
    auto P = compute(
            {rows, cols}, [&](Expr i, Expr j) { return ex(i, j) / rowsum(i); }, "P");
    auto j3 = reduce_axis(0, cols, "j3"), j4 = reduce_axis(0, cols, "j4");
    const float inv = 1.0f / float(cols);
    auto total = compute(
            {rows}, [&](Expr i) { return sum(X(i, j3), {j3}); }, "total");
    auto squares = compute(
            {rows}, [&](Expr i) { return sum((X(i, j4) - total(i) * inv) * (X(i, j4) - total(i) * inv), {j4}); },
            "squares");
    auto L = compute(
            {rows, cols}, [&](Expr i, Expr j) { return (X(i, j) - total(i) * inv) * rsqrt(squares(i) * inv + 1e-5f); },
            "L");

    Schedule s({P, L});
    s[ex].compute_inline();
    for (auto& out : {P, L}) {
        auto [b, t] = s[out].split(out.axis(0), 8);
        s[out].bind(b, thread_axis("blockIdx.x")).bind(t, thread_axis("threadIdx.x"));
        for (auto& stat : out.same_as(P) ? std::vector<Tensor>{rowmax, rowsum} : std::vector<Tensor>{total, squares})
            s[stat].compute_at(s[out], t);
    }
    check_cuda_compiles(s, {X, P, L});
    if (!have_opencl()) return;
    Kernel k = build(s, {X, P, L}, {.target = Target::opencl()});
    CHECK(k.compiled().lowered->device.kernels.size() == 2);
    Buffer x = test::random_buffer({rows, cols}, 5, -3, 3);
    Buffer p({rows, cols}), l({rows, cols});
    for (int64_t i = 0; i < rows; ++i) {
        double mx = -INFINITY, total = 0, mu = 0, sq = 0;
        for (int64_t j = 0; j < cols; ++j) mx = std::max(mx, double(x.at<float>(i, j)));
        for (int64_t j = 0; j < cols; ++j) total += std::exp(x.at<float>(i, j) - mx);
        for (int64_t j = 0; j < cols; ++j) mu += x.at<float>(i, j) / double(cols);
        for (int64_t j = 0; j < cols; ++j) sq += (x.at<float>(i, j) - mu) * (x.at<float>(i, j) - mu) / double(cols);
        for (int64_t j = 0; j < cols; ++j) {
            p.at<float>(i, j) = float(std::exp(x.at<float>(i, j) - mx) / total);
            l.at<float>(i, j) = float((x.at<float>(i, j) - mu) / std::sqrt(sq + 1e-5));
        }
    }
    for (auto& got : run_everywhere(s, {X, P, L}, {x, Buffer({rows, cols}), Buffer({rows, cols})}, 1)) {
        CHECK(test::max_rel_err(got[0].data_as<float>(), p.data_as<float>(), p.size()) < 1e-5);
        CHECK(test::max_rel_err(got[1].data_as<float>(), l.data_as<float>(), l.size()) < 1e-4);
    }
}

TEST_CASE("gpu: a reduction to a scalar in two kernels, partial sums in device memory between them") {
    const int64_t n = 1000;
    auto X = placeholder({n}, f32, "X");
    auto k = reduce_axis(0, n, "k");
    auto S = compute(
            {1}, [&](Expr) { return sum(X(k), {k}); }, "S");
    Schedule s(S);
    auto [ko, ki] = s[S].split(k, 64);
    auto partial = s.rfactor(S, ko);  // partial[ko] = sum over ki: one thread each
    auto [pb, pt] = s[partial].split(s[partial].axis(0), 8);
    s[partial].bind(pb, thread_axis("blockIdx.x")).bind(pt, thread_axis("threadIdx.x"));
    s[S].bind(s[S].axis(0), thread_axis("blockIdx.x"));
    const LoweredFunc f = lower(s, {X, S}, {.target = Target::opencl()});
    REQUIRE(f.device.kernels.size() == 2);
    REQUIRE(f.device.temporaries.size() == 1);
    check_cuda_compiles(s, {X, S});
    if (!have_opencl()) return;
    Buffer x = test::random_buffer({n}, 6);
    double want = 0;
    for (int64_t i = 0; i < n; ++i) want += x.data_as<float>()[i];
    for (auto& got : run_everywhere(s, {X, S}, {x, Buffer({1})}, 1))
        CHECK(std::abs(got[0].data_as<float>()[0] - want) < 1e-4 * (1 + std::abs(want)));
}

TEST_CASE("gpu: random legal schedules of a matmul and an elementwise pipeline match the reference") {
    if (!have_opencl()) return;
    std::mt19937 rng(7);
    auto pick = [&](std::vector<int> v) { return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)]; };
    int checked = 0;
    for (int trial = 0; trial < 110; ++trial) {
        CAPTURE(trial);
        const bool gemm = trial % 2 == 0;
        if (gemm) {
            Matmul m(pick({1, 7, 33, 40}), pick({1, 5, 16, 29}), pick({1, 9, 17}));
            const int tile = pick({4, 8, 16}), per_thread = pick({1, 2, 4}), kstep = pick({1, 4, 8});
            Schedule s = [&] {
                if (trial % 4 == 0) return shared_memory_gemm(m, tile, std::min(tile, per_thread), kstep);
                // Registers only: each thread accumulates its micro-tile, reading A and B from device memory.
                Schedule r(m.C);
                auto CL = r.cache_write(m.C, "local");
                auto [bo, bi] = r[m.C].split(r[m.C].axis(0), tile);
                auto [to, ti] = r[m.C].split(r[m.C].axis(1), per_thread);
                r[m.C].reorder(bo, to, bi, ti);
                r[m.C].bind(bo, thread_axis("blockIdx.x")).bind(to, thread_axis("threadIdx.y"));
                r[m.C].bind(bi, thread_axis("threadIdx.x"));
                r[CL].compute_at(r[m.C], bi);
                if (pick({0, 1})) r[CL].unroll(r[CL].axis(1));
                return r;
            }();
            Buffer a = test::random_buffer({m.M, m.K}, trial), b = test::random_buffer({m.K, m.N}, trial + 1000);
            Buffer want = m.reference(a, b);
            for (auto& run : run_everywhere(s, {m.A, m.B, m.C}, {a, b, Buffer({m.M, m.N})}, 2))
                CHECK(test::max_rel_err(run[0].data_as<float>(), want.data_as<float>(), want.size()) < 1e-5);
        } else {
            const int64_t rows = pick({1, 3, 30}), cols = pick({1, 7, 65});
            auto A = placeholder({rows, cols}, f32, "A");
            auto T = compute(
                    {rows, cols}, [&](Expr i, Expr j) { return A(i, j) * A(i, j) + 1.0f; }, "T");
            auto U = compute(
                    {rows, cols}, [&](Expr i, Expr j) { return sqrt(T(i, j)) - A(i, j); }, "U");
            Schedule s(U);
            auto [yo, yi] = s[U].split(U.axis(0), pick({1, 2, 8}));
            auto [xo, xi] = s[U].split(U.axis(1), pick({1, 4, 32}));
            s[U].reorder(yo, xo, yi, xi);
            s[U].bind(yo, thread_axis("blockIdx.y")).bind(xo, thread_axis("blockIdx.x"));
            s[U].bind(yi, thread_axis("threadIdx.y"));
            if (pick({0, 1})) {
                s[U].bind(xi, thread_axis("threadIdx.x"));
            } else {
                auto [xs, xv] = s[U].split(xi, pick({1, 2, 4}));
                s[U].bind(xs, thread_axis("threadIdx.x")).vectorize(xv);
            }
            switch (pick({0, 1, 2})) {
                case 0: s[T].compute_inline(); break;
                case 1: s[T].compute_at(s[U], s[U].leaf_iter_vars()[3]); break;
                default: {  // a kernel of its own, in device memory
                    auto [o, i] = s[T].split(T.axis(1), 16);
                    s[T].bind(T.axis(0), thread_axis("blockIdx.x")).bind(o, thread_axis("blockIdx.y"));
                    s[T].bind(i, thread_axis("threadIdx.x"));
                }
            }
            Buffer a = test::random_buffer({rows, cols}, trial);
            Buffer want({rows, cols});
            for (int64_t i = 0; i < a.size(); ++i) {
                const float v = a.data_as<float>()[i];
                want.data_as<float>()[i] = std::sqrt(v * v + 1.0f) - v;
            }
            for (auto& run : run_everywhere(s, {A, U}, {a, Buffer({rows, cols})}, 1))
                CHECK(test::max_rel_err(run[0].data_as<float>(), want.data_as<float>(), want.size()) < 1e-5);
        }
        ++checked;
    }
    CHECK(checked == 110);
}

TEST_CASE("gpu: the rules of thread binding, shared memory and devices, each with its golden message") {
    Var n("n");
    auto A = placeholder({n, 64}, f32, "A");
    auto B = compute(
            {n, 64}, [&](Expr i, Expr j) { return A(i, j) + 1.0f; }, "B");
    auto C = compute(
            {n, 64}, [&](Expr i, Expr j) { return B(i, j) * 2.0f; }, "C");
    auto lower_for = [&](Schedule& s, Target t = Target::opencl()) {
        return error_of([&] { lower(s, {A, C}, {.target = t}); });
    };

    CHECK(error_of([] { thread_axis("threadIdx.w"); }) ==
          "thread_axis: 'threadIdx.w' is not a GPU thread index; use blockIdx.x, blockIdx.y or blockIdx.z for the "
          "grid and threadIdx.x, threadIdx.y or threadIdx.z for the threads of a block");
    {
        Schedule s(C);
        s[B].compute_inline();
        auto [o, i] = s[C].split(C.axis(0), 4);
        s[C].bind(o, thread_axis("blockIdx.x"));
        CHECK(error_of([&] { s[C].bind(i, thread_axis("blockIdx.x")); }) ==
              "stage 'C': bind of axis 'i.inner' to blockIdx.x: another axis of this stage is already bound to it; "
              "bind each axis to its own thread index, or fuse the two axes and bind the fused one");
        CHECK(error_of([&] { s[C].bind(o, thread_axis("blockIdx.y")); }) ==
              "stage 'C': bind of axis 'i.outer' to blockIdx.y: it is already bound to blockIdx.x; a loop runs on one "
              "thread index");
        // CPU targets have no GPU threads.
        CHECK(lower_for(s, Target{}) ==
              "lower: stage 'C': axis 'i.outer' is bound to blockIdx.x, which only GPU targets have; lower for "
              "Target::opencl() or Target::cuda(), or use parallel() on the CPU");
        // A loop around the bound ones would run whole in every thread.
        s[C].reorder(C.axis(1), o, i);
        CHECK(lower_for(s) ==
              "lower: stage 'C': loop 'j' is outside its GPU thread bindings and not bound; on a GPU target every loop "
              "around a bound loop must be bound too: bind it (to blockIdx or threadIdx) or reorder it inside the "
              "bound loops");
    }
    {
        Schedule s(C);
        s[B].compute_inline();
        s[C].parallel(C.axis(0));
        CHECK(lower_for(s) ==
              "lower: stage 'C': axis 'i' is parallel, which is the CPU's thread pool; on a opencl target bind it to "
              "GPU threads instead: bind(axis, kiln::thread_axis(\"blockIdx.x\"))");
    }
    {
        // No loop bound at all: one thread would compute everything.
        Schedule s(C);
        s[B].compute_inline();
        CHECK(lower_for(s) ==
              "lower: stage 'C' has no loop bound to a GPU thread, so one thread would compute all of it; bind its "
              "outer loops: s[C].bind(axis, kiln::thread_axis(\"blockIdx.x\")), and an inner one to threadIdx.x");
    }
    {
        // threadIdx.x with two extents in one kernel: B's loop of 16 inside C's of 32.
        Schedule s(C);
        auto [o, i] = s[C].split(C.axis(1), 32);
        s[C].bind(C.axis(0), thread_axis("blockIdx.x")).bind(o, thread_axis("blockIdx.y"));
        s[C].bind(i, thread_axis("threadIdx.x"));
        s[B].compute_at(s[C], o);
        auto [bo, bi] = s[B].split(B.axis(1), 16);
        s[B].bind(bi, thread_axis("threadIdx.x"));
        CHECK(lower_for(s) ==
              "lower: threadIdx.x is bound to loop 'j.inner' of stage 'B' (extent 16) and to loop 'j.inner' of stage "
              "'C' (extent 32) in one kernel; a thread index has one extent per kernel: split the axes by the same "
              "factor, or bind them to different thread indices");
    }
    {
        // Threads of a block: a constant number, within the device's limit.
        Schedule s(C);
        s[B].compute_inline();
        s[C].bind(C.axis(0), thread_axis("threadIdx.y")).bind(C.axis(1), thread_axis("threadIdx.x"));
        CHECK(lower_for(s) ==
              "lower: stage 'C': threadIdx.y is bound to loop 'i' of extent n, which is not a constant; the threads of "
              "a block are a fixed number: split the axis by a constant factor and bind the inner axis to threadIdx.y");
        Schedule s2(C);
        s2[B].compute_inline();
        auto [o, i] = s2[C].split(C.axis(0), 32);
        s2[C].reorder(o, i, C.axis(1));
        s2[C].bind(o, thread_axis("blockIdx.x")).bind(i, thread_axis("threadIdx.y"));
        s2[C].bind(C.axis(1), thread_axis("threadIdx.x"));
        Target small = Target::opencl();
        small.max_threads_per_block = 1024;
        CHECK(lower_for(s2, small) ==
              "lower: stage 'C': a block of 64 x 32 x 1 = 2048 threads exceeds the device's limit of 1024 threads per "
              "block; split the axes bound to threadIdx by smaller factors");
    }
    {
        // Shared memory: within the block's, and inside a block.
        Matmul m(64, 64, 64);
        Schedule s = shared_memory_gemm(m, 16, 1, 16);
        Target tiny = Target::opencl();
        tiny.max_shared_memory_per_block = 1024;
        CHECK(error_of([&] {
                  lower(s, {m.A, m.B, m.C}, {.target = tiny});
              }) ==
              "lower: stage 'C': its kernel needs 2048 bytes of shared memory ('A.shared' 1024, 'B.shared' 1024) and "
              "the device has 1024 per block; split the axes the shared stages are computed at by smaller factors");
        Schedule root(C);
        root[B].set_scope("shared");
        auto [o, i] = root[C].split(C.axis(1), 32);
        root[C].bind(C.axis(0), thread_axis("blockIdx.x")).bind(o, thread_axis("blockIdx.y"));
        root[C].bind(i, thread_axis("threadIdx.x"));
        auto [bo, bi] = root[B].split(B.axis(1), 32);
        root[B].bind(B.axis(0), thread_axis("blockIdx.x")).bind(bo, thread_axis("blockIdx.y"));
        root[B].bind(bi, thread_axis("threadIdx.x"));
        CHECK(lower_for(root) ==
              "lower: stage 'B' is in shared memory but computed outside the loops bound to blockIdx, where there is "
              "no block to hold it: compute_at it inside the loop bound to blockIdx (or inside the threadIdx loops, "
              "at a reduction loop), or set_scope(\"global\")");
        CHECK(error_of([&] { root[B].set_scope("texture"); }) ==
              "stage 'B': set_scope('texture'): the memory scopes are \"shared\" (one copy per GPU block), \"local\" "
              "(each thread's) and \"global\" (device memory)");
        CHECK(error_of([&] { root[C].set_scope("shared"); }) ==
              "stage 'C': set_scope('shared'): it is an output of the schedule, which the kernel writes to device "
              "memory; cache_write it and set the scope of the cache");
    }
    {
        auto k = reduce_axis(0, 8, "k");
        auto R = compute(
                {4}, [&](Expr i) { return sum(A(i, k), {k}); }, "R");
        Schedule s(R);
        CHECK(error_of([&] { s[R].bind(k, thread_axis("threadIdx.x")); }) ==
              "stage 'R': bind of axis 'k' to threadIdx.x: it is a reduction axis, and the threads would race on the "
              "same output; bind a data-parallel axis, or rfactor the reduction and bind the factored axis");
    }
    // Devices: a kind that is not a GPU, and an index past the devices there are.
    CHECK(error_of([] { Device::get("llvm"); }) == "Device: 'llvm' is not a GPU kind; use \"opencl\" or \"cuda\"");
    CHECK(error_of([] { Device::get("opencl", 99); }).rfind("Device: there is no opencl device 99; ", 0) == 0);
    if (!Target::enabled("cuda"))
        CHECK(error_of([] { Device::get("cuda"); }).find("there is no cuda device 0") != std::string::npos);
    if (!have_opencl()) return;
    // Arguments: device memory for GPU kernels, host memory for CPU kernels.
    Schedule s(C);
    s[B].compute_inline();
    auto [o, i] = s[C].split(C.axis(1), 32);
    s[C].bind(C.axis(0), thread_axis("blockIdx.x")).bind(o, thread_axis("blockIdx.y"));
    s[C].bind(i, thread_axis("threadIdx.x"));
    Kernel gpu = build(s, {A, C}, {.target = Target::opencl()});
    Buffer a({3, 64}), c({3, 64});
    CHECK(error_of([&] { gpu(a, c); }) ==
          "kernel: argument 0 ('A') is in host memory but the kernel runs on opencl:0; copy it there: "
          "kiln::DeviceBuffer::from(buffer, kiln::Device::get(\"opencl\"))");
    Device dev = Device::get("opencl");
    DeviceBuffer da = DeviceBuffer::from(a, dev), dc(dev, {3, 64}), wrong(dev, {4, 64});
    CHECK(error_of([&] { gpu(da, wrong); }) ==
          "kernel: argument 1 ('C') has size 4 in dimension 0 but the kernel expects n = 3");
    CHECK(error_of([&] { gpu(da, da); }) ==
          "kernel: output 'C' is the same DeviceBuffer as argument 'A'; kiln kernels need outputs in their own memory");
    Schedule cpu(C);
    Kernel host = build(cpu, {A, C});
    CHECK(error_of([&] { host(da, c); }) ==
          "kernel: argument 0 ('A') is a DeviceBuffer on opencl:0 but the kernel runs on this CPU; copy it to host "
          "memory with to_host()");
    CHECK(error_of([&] {
              da.copy_to(Buffer({2, 2}));
          }) ==
          "DeviceBuffer::copy_to: the host buffer is f32[2, 2] but the device buffer is f32[3, 64]; give a host "
          "buffer of the same shape and type");
    // A function lowered for the CPU has no device kernels to build.
    CHECK(error_of([&] {
              build(lower(cpu, {A, C}), {.target = Target::opencl()});
          }) ==
          "build: kernel 'kernel' was not lowered for a GPU target, so it has no device kernels; lower it with "
          "kiln::LowerOptions{.target = kiln::Target::opencl()}, or build the schedule directly");
    gpu(da, dc);
    Buffer back = dc.to_host();
    CHECK(back.at<float>(2, 63) == 2.0f);
}

TEST_CASE("gpu: targets list the GPU kinds and say which can run here") {
    auto kinds = Target::list_kinds();
    CHECK(std::find(kinds.begin(), kinds.end(), "opencl") != kinds.end());
    CHECK(std::find(kinds.begin(), kinds.end(), "cuda") != kinds.end());
    CHECK(Target::enabled("opencl") == !Device::list("opencl").empty());
    CHECK(Target::enabled("cuda") == !Device::list("cuda").empty());
    const Target t = Target::cuda().with_device_limits();
    if (!Target::enabled("cuda")) {
        CHECK(t.max_threads_per_block == 1024);
        CHECK(t.max_shared_memory_per_block == 49152);
        CHECK(t.thread_warp_size == 32);
    }
    Target given = Target::opencl();
    given.max_threads_per_block = 64;
    CHECK(given.with_device_limits().max_threads_per_block == 64);
    if (Target::enabled("opencl")) CHECK(Target::opencl().with_device_limits().max_threads_per_block > 0);
}
