// Golden messages: every misuse names the stage, axis or tensor, the rule, and what to do instead.
#include <kiln/nn.hpp>
#include <kiln/runtime/npy.hpp>

#include "helpers.hpp"

using namespace kiln;
using test::error_of;

namespace {
struct MM {
    Tensor A = placeholder({64, 64}, f32, "A");
    Tensor B = placeholder({64, 64}, f32, "B");
    IterVar k = reduce_axis(0, 64, "k");
    Tensor C = compute(
            {64, 64}, [&](Expr i, Expr j) { return sum(A(i, k) * B(k, j), {k}); }, "C");
    Tensor D = compute(
            {64, 64}, [&](Expr i, Expr j) { return C(i, j) + 1.0f; }, "D");
};
}  // namespace

TEST_CASE("kiln's own faults are InternalErrors, told apart from the caller's") {
    try {
        detail::internal_fail("codegen met unbound variable 'x'");
        FAIL("internal_fail returned");
    } catch (const InternalError& e) {
        CHECK(std::string(e.what()) ==
              "internal error: codegen met unbound variable 'x' (a fault in kiln, not in the calling program; "
              "please report it with the program that shows it)");
    }
    // A user's mistake is an Error and not an InternalError.
    auto A = placeholder({4}, f32, "A");
    auto B = compute(
            {4}, [&](Expr i) { return A(i); }, "B");
    Schedule s(B);
    bool internal = false;
    try {
        s[B].split(B.axis(0), 0);
    } catch (const InternalError&) { internal = true; } catch (const Error&) {
    }
    CHECK_FALSE(internal);
}

TEST_CASE("schedule rules") {
    MM m;
    Schedule s(m.D);
    CHECK(error_of([&] { s[m.C].vectorize(m.k); }) ==
          "stage 'C': vectorize of axis 'k': it is a reduction axis, and vector lanes of one reduction would race on "
          "the same output; "
          "vectorize a data-parallel axis (or rfactor the reduction first)");
    CHECK(error_of([&] { s[m.C].parallel(m.k); }).find("parallel of axis 'k': it is a reduction axis") !=
          std::string::npos);
    CHECK(error_of([&] { s[m.D].reorder(m.C.axis(0), m.D.axis(1)); }) ==
          "stage 'D': reorder of axis 'i': the axis belongs to stage 'C', not to this stage; schedule it through s[C]");
    auto [o, i] = s[m.C].split(m.C.axis(0), 8);
    CHECK(error_of([&] { s[m.C].split(m.C.axis(0), 4); }) ==
          "stage 'C': split of axis 'i': the axis was already split into 'i.outer' and 'i.inner'; an axis can be split "
          "only once, "
          "so apply split to one of those instead");
    CHECK(error_of([&] { s[m.C].compute_inline(); }) ==
          "stage 'C': compute_inline: it is a reduction and cannot be inlined into its consumers; use compute_at to "
          "compute it inside "
          "a consumer's loop instead");
    CHECK(error_of([&] { s[m.D].compute_inline(); }) ==
          "stage 'D': compute_inline: an output cannot be inlined; it must be stored");
    CHECK(error_of([&] { s[m.C].split(o, 0); }) ==
          "stage 'C': split of axis 'i.outer' by 0: the factor must be positive");
    CHECK(error_of([&] { s[m.C].fuse(o, m.k); }).find("the axes must be adjacent loops") != std::string::npos);
    CHECK(error_of([&] { s.cache_write(m.C, "local"); }).find("call cache_write before other primitives") !=
          std::string::npos);
    CHECK(error_of([&] { s[m.C].annotate(m.C.axis(0), "hint"); }) ==
          "stage 'C': annotate of axis 'i': the axis was already split into 'i.outer' and 'i.inner' and is no longer a "
          "loop, "
          "so apply annotate to one of those instead");
    CHECK(error_of([&] { s[m.D].compute_at(s[m.C], o); }) ==
          "stage 'D': compute_at: it is an output of the schedule and must be computed at the root");
}

TEST_CASE("compute_at to a stage that does not consume it") {
    auto A = placeholder({8}, f32, "A");
    auto B = compute(
            {8}, [&](Expr i) { return A(i) + 1.0f; }, "B");
    auto C = compute(
            {8}, [&](Expr i) { return B(i) * 2.0f; }, "C");
    auto D = compute(
            {8}, [&](Expr i) { return C(i) - 1.0f; }, "D");
    Schedule s(D);
    CHECK(error_of([&] { s[B].compute_at(s[D], D.axis(0)); }) ==
          "stage 'B': compute_at to stage 'D', which does not consume it; compute a stage at a loop of a stage that "
          "reads it ('C'), or of a stage those readers are computed inside");
    CHECK(error_of([&] { s[B].compute_at(s[C], D.axis(0)); }) ==
          "stage 'B': compute_at axis 'i' is not a loop of stage 'C' (it belongs to stage 'D'); pass one of the "
          "current loops of 'C'");
    s[B].compute_at(s[C], C.axis(0));
    s[C].split(C.axis(0), 4);
    CHECK(error_of([&] { lower(s, {A, D}); }).find("which is no longer one of its loops") != std::string::npos);
}

TEST_CASE("compute_at into a loop that does not enclose every reader") {
    const int R = 6, C = 11;
    auto X = placeholder({R, C}, f32, "X");
    auto k1 = reduce_axis(0, C, "k1");
    auto mx = compute(
            {R}, [&](Expr i) { return max(X(i, k1), {k1}); }, "rowmax");
    auto k2 = reduce_axis(0, C, "k2");
    auto den = compute(
            {R}, [&](Expr i) { return sum(exp(X(i, k2) - mx(i)), {k2}); }, "rowsum");
    auto Y = compute(
            {R, C}, [&](Expr i, Expr j) { return exp(X(i, j) - mx(i)) / den(i); }, "softmax");
    Schedule s(Y);
    s[mx].compute_at(s[Y], Y.axis(0));  // accepted: rowsum may still be attached inside the loop
    CHECK(error_of([&] {
              lower(s, {X, Y});
          }) ==
          "stage 'rowmax' is computed at loop 'i' of stage 'softmax', but stage 'rowsum' also reads it and is computed "
          "outside that "
          "loop (at the root); compute 'rowsum' at loop 'i' of 'softmax' or inside it as well, or compute 'rowmax' at "
          "the root");
    auto [o, in] = s[Y].split(Y.axis(1), 4);
    s[den].compute_at(s[Y], o);
    CHECK(error_of([&] { lower(s, {X, Y}); }) == "");  // loop 'i.outer' lies inside loop 'i'
    s[mx].compute_at(s[Y], o);
    s[den].compute_at(s[Y], Y.axis(0));
    CHECK(error_of([&] {
              lower(s, {X, Y});
          }) ==
          "stage 'rowmax' is computed at loop 'j.outer' of stage 'softmax', but stage 'rowsum' also reads it and is "
          "computed outside that "
          "loop (at loop 'i' of stage 'softmax'); compute 'rowsum' at loop 'j.outer' of 'softmax' or inside it as "
          "well, or compute "
          "'rowmax' at the root");
    // Following the advice works: both at the row loop.
    s[mx].compute_at(s[Y], Y.axis(0));
    auto f = build(s, {X, Y});
    Buffer x = test::random_buffer({R, C}, 3), y({R, C});
    f(x, y);
    for (int i = 0; i < R; ++i) {
        double total = 0;
        for (int j = 0; j < C; ++j) total += y.at<float>(i, j);
        CHECK(total == doctest::Approx(1.0).epsilon(1e-5));
    }
}

TEST_CASE("definition errors") {
    auto A = placeholder({4, 4}, f32, "A");
    CHECK(error_of([&] { A(1); }) ==
          "tensor 'A' has 2 dimension(s) but is indexed with 1 index(es); give one index per dimension");
    CHECK(error_of([&] {
              placeholder({0, 3}, f32, "Z");
          }) == "tensor 'Z': dimension 0 is 0; every dimension must be positive");
    auto k = reduce_axis(0, 4, "k");
    CHECK(error_of([&] {
              compute(
                      {4}, [&](Expr i) { return sum(A(i, k), {k}) + 1.0f; }, "bad");
          }).find("compute 'bad': a reduction (sum) is nested inside a larger expression") != std::string::npos);
    CHECK(error_of([&] {
              compute(
                      {4, 4}, [&](Expr i) { return A(i, i); }, "arity");
          }) ==
          "compute 'arity': the lambda must take exactly 2 kiln::Expr argument(s), one per dimension of the shape");
    auto B = compute(
            {4}, [&](Expr i) { return A(i, 0); }, "B");
    Schedule s(B);
    CHECK(error_of([&] { lower(s, {B}); }).find("tensor 'A' is read but neither passed as an argument") !=
          std::string::npos);
    CHECK(error_of([&] { lower(s, {A}); }) ==
          "lower: output 'B' is missing from the argument list; pass every output so the kernel can write it");
    auto j = B.axis(0);
    CHECK(error_of([&] {
              s[B].vectorize(j);
              lower(s, {A, B});
          }).empty());
}

TEST_CASE("the C backend refuses f16 tensors, naming the tensor") {
    auto H = placeholder({10}, f16, "H");
    auto G = compute(
            {10}, [&](Expr i) { return cast(f16, H(i) * 2.0f); }, "G");
    Schedule s(G);
    BuildOptions as_c;
    as_c.target.kind = "c";
    CHECK(error_of([&] {
              build(s, {H, G}, as_c);
          }) == "build: the C backend does not handle f16 tensors ('H' of 'kernel'); use the llvm target");
    s[G].bind(G.axis(0), thread_axis("blockIdx.x"));
    CHECK(error_of([&] {
              build(s, {H, G}, {.target = Target::opencl()});
          }) == "build: the opencl backend does not handle f16 tensors ('H' of 'kernel'); use the llvm target");
    BuildOptions as_vulkan;
    as_vulkan.target.kind = "vulkan";
    CHECK(error_of([&] {
              build(lower(Schedule(G), {H, G}), as_vulkan);
          }) == "build: target kind 'vulkan' is not available in this build; the kinds are llvm, c, opencl, cuda");
}

TEST_CASE("an optimisation level outside 0 to 3 is refused, naming the kernel") {
    auto A = placeholder({10}, f32, "A");
    auto B = compute(
            {10}, [&](Expr i) { return A(i) * 2.0f; }, "B");
    Schedule s(B);
    for (int level : {-1, 4}) {
        BuildOptions opt;
        opt.name = "scale";
        opt.opt_level = level;
        CHECK(error_of([&] {
                  build(s, {A, B}, opt);
              }) == "build: kernel 'scale': opt_level is " + std::to_string(level) +
                            "; use 0 (quickest to compile) to 3 (fastest code, the default)");
    }
}

TEST_CASE("call errors") {
    Var n = var("n");
    auto A = placeholder({n, 4}, f32, "A");
    auto B = compute(
            {n, 4}, [&](Expr i, Expr j) { return A(i, j) * 2.0f; }, "B");
    Schedule s(B);
    auto f = build(s, {A, B});
    Buffer a({3, 4}), b({3, 4}), wrong({3, 5}), ints({3, 4}, i32);
    CHECK(error_of([&] { f(a); }) == "kernel: called with 1 argument(s) but it takes 2 (A, B)");
    CHECK(error_of([&] { f(a, static_cast<float*>(nullptr)); }) == "kernel: argument 1 ('B') is a null pointer");
    CHECK(error_of([&] { f(ints, b); }) == "kernel: argument 0 ('A') holds i32 but the kernel expects f32");
    CHECK(error_of([&] { f(a, wrong); }) ==
          "kernel: argument 1 ('B') has size 5 in dimension 1 but the kernel expects 4");
    Buffer b2({2, 4});
    CHECK(error_of([&] { f(a, b2); }) ==
          "kernel: argument 1 ('B') has size 2 in dimension 0 but the kernel expects n = 3");
    CHECK(error_of([&] {
              f(a.data_as<float>(), b.data_as<float>());
          }).find("the size 'n' is only known from arguments passed as raw pointers") != std::string::npos);
    CHECK(error_of([&] { f(a, a); }) ==
          "kernel: output 'B' overlaps argument 'A'; kiln kernels need outputs in their own memory");
    CHECK(error_of([&] { f(a, b); }).empty());
}

TEST_CASE("nn operator errors") {
    auto A = placeholder({8, 5}, f32, "A");
    auto B = placeholder({6, 9}, f32, "B");
    CHECK(error_of([&] { nn::matmul(A, B); }) ==
          "nn::matmul 'matmul': the reduction dimensions differ: 'A' has K = 5 but 'B' has K = 6 (B is [K,N]); "
          "pass operands whose inner dimensions match");
    auto Bi = placeholder({5, 9}, i32, "Bi");
    CHECK(error_of([&] { nn::matmul(A, Bi); }) ==
          "nn::matmul 'matmul': 'A' is f32 but 'Bi' is i32; cast one so both have the same element type");
    auto B2 = placeholder({5, 9}, f32, "B2");
    auto bias = placeholder({8}, f32, "bias");
    CHECK(error_of([&] { nn::matmul(A, B2, {.bias = bias}); }) ==
          "nn::matmul 'matmul': bias 'bias' must have shape [9]");
    auto V = placeholder({5}, f32, "V");
    CHECK(error_of([&] { nn::matmul(A, V); }).find("must both be matrices [M,K] x [K,N]") != std::string::npos);

    // B packed by pack_matmul_weight: 9 columns in one panel of 16 (8 rows).
    auto Bp = placeholder({1, 5, 16}, f32, "Bp");
    CHECK(error_of([&] { nn::matmul(A, Bp); }) ==
          "nn::matmul 'matmul': 'Bp' (rank 3) is B packed by pack_matmul_weight, 1 panel(s) of 16 columns, so .columns "
          "must give N, "
          "from 1 to 16, not 0; pass the N that B was packed with");
    CHECK(error_of([&] { nn::matmul(A, Bp, {.transpose_b = true, .columns = 9}); }) ==
          "nn::matmul 'matmul': 'Bp' (rank 3) is B packed by pack_matmul_weight, which has already transposed it; "
          "leave transpose_b off");
    CHECK(error_of([&] { nn::matmul(A, Bp, {.columns = 9}); }).empty());
    CHECK(error_of([&] { nn::pack_matmul_weight(V, 8); }) ==
          "nn::pack_matmul_weight 'matmul': B must be a matrix [K,N] (or [N,K] with transpose_b) or a batch of them "
          "[b,K,N]");
    CHECK(error_of([&] { nn::pack_matmul_weight(B2, 0); }) ==
          "nn::pack_matmul_weight 'matmul': the panel width follows from constant sizes; B has N = 9 and rows = 0; "
          "pass a B of "
          "constant shape and the product's row count (1 or more)");

    auto plain = compute(
            {8, 5}, [&](Expr i, Expr j) { return A(i, j) * 2.0f; }, "plain");
    Schedule s(plain);
    CHECK(error_of([&] { nn::schedule_matmul(s, plain); }) ==
          "nn::schedule_matmul: 'plain' is not computed from an nn::matmul; define it with kiln::nn::matmul");

    Var n("n");
    auto As = placeholder({n, 5}, f32, "As");
    auto C = nn::matmul(As, B2);
    Schedule s2(C);
    CHECK(error_of([&] { nn::schedule_matmul(s2, C); }) ==
          "nn::schedule_matmul: dimension 0 of 'matmul' is symbolic (n); the default schedule picks tile sizes from "
          "constant "
          "shapes, so bind the size or write a schedule");

    auto k = reduce_axis(0, 9, "r");
    auto C3 = nn::matmul(A, B2);
    auto rowsum = compute(
            {8}, [&](Expr i) { return sum(C3(i, k), {k}); }, "rowsum");
    auto outp = compute(
            {8, 9}, [&](Expr i, Expr j) { return C3(i, j) / rowsum(i); }, "normalized");
    Schedule s3(outp);
    CHECK(error_of([&] { nn::schedule_matmul(s3, outp); }) ==
          "nn::schedule_matmul: stage 'rowsum' between 'matmul' and the output 'normalized' is a reduction; only "
          "elementwise "
          "stages can be fused as an epilogue, so schedule it separately");

    // An epilogue of another rank must keep the product's columns last and its rows, in order, before them.
    auto C4 = nn::matmul(A, B2);
    auto columns_first = compute(
            {9, 2, 4}, [&](Expr j, Expr a, Expr b) { return C4(a * 4 + b, j); }, "columns_first");
    Schedule s4(columns_first);
    CHECK(error_of([&] { nn::schedule_matmul(s4, columns_first); }) ==
          "nn::schedule_matmul: output 'columns_first' (rank 3) does not lay out the rows and columns of 'matmul' "
          "(rank 2); its last "
          "axis must be the product's columns and the others its rows, in order");
}

TEST_CASE("nn::conv2d errors") {
    auto x = placeholder({1, 8, 10, 10}, f32, "x");
    auto w = placeholder({16, 8, 3, 3}, f32, "w");
    CHECK(error_of([&] {
              nn::conv2d(x, placeholder({16, 3, 3, 3}, f32, "w3"));
          }) ==
          "nn::conv2d 'conv2d': weight 'w3' has 3 input channels per group, but the data has 8 channels in 1 group(s), "
          "so it needs 8; "
          "check the weight's shape [OC, IC/groups, KH, KW] and groups");
    CHECK(error_of([&] { nn::conv2d(x, w, {.groups = 3}); }) ==
          "nn::conv2d 'conv2d': groups = 3 must divide both the input channels (8) and the output channels (16)");
    CHECK(error_of([&] {
              nn::conv2d(x, w, {.stride = {0, 1}});
          }) == "nn::conv2d 'conv2d': stride (0, 1) must be at least 1 in both directions");
    CHECK(error_of([&] {
              nn::conv2d(x, w, {.padding = {1, -1, 1, 1}});
          }) == "nn::conv2d 'conv2d': padding values must be zero or more; got -1");
    CHECK(error_of([&] {
              nn::conv2d(x, w, {.dilation = {1, 0}});
          }) == "nn::conv2d 'conv2d': dilation (1, 0) must be at least 1 (1 means no dilation)");
    CHECK(error_of([&] {
              nn::conv2d(x, placeholder({16, 8, 13, 3}, f32, "wbig"));
          }) ==
          "nn::conv2d 'conv2d': the 13x3 kernel is larger than the padded input (10x10); the output would be empty; "
          "pad the input or use a "
          "smaller kernel");
    CHECK(error_of([&] {
              nn::conv2d(x, w, {.dilation = {5, 1}});
          }) ==
          "nn::conv2d 'conv2d': the 3x3 kernel (11x3 with dilation) is larger than the padded input (10x10); the "
          "output would be empty; pad "
          "the input or use a smaller kernel");
    CHECK(error_of([&] { nn::conv2d(x, w, {.bias = placeholder({8}, f32, "b")}); }) ==
          "nn::conv2d 'conv2d': bias 'b' must have shape [16], one value per output channel");
    CHECK(error_of([&] {
              nn::conv2d(x, placeholder({16, 8, 3, 3}, i32, "wi"));
          }) ==
          "nn::conv2d 'conv2d': data 'x' is f32 but weight 'wi' is i32; cast one so both have the same element type");
    CHECK(error_of([&] {
              nn::conv2d(placeholder({8, 10, 10}, f32, "x3"), w);
          }) == "nn::conv2d 'conv2d': data 'x3' has rank 3; it must be NCHW (use nn::conv2d_nchwc for blocked data)");
    Var n("n");
    CHECK(error_of([&] {
              nn::conv2d(placeholder({1, 8, n, 10}, f32, "xs"), w);
          }) ==
          "nn::conv2d 'conv2d': dimension 2 of 'xs' is symbolic (n); convolutions choose their blocked layout from "
          "constant shapes, so bind "
          "the size");

    auto xb = placeholder({1, 1, 10, 10, 8}, f32, "xb");
    auto wp = placeholder({1, 1, 3, 3, 8, 16}, f32, "wp");
    CHECK(error_of([&] { nn::conv2d_nchwc(xb, wp, 8); }) ==
          "nn::conv2d_nchwc 'conv2d': weight 'wp' is already packed, which hides the number of output channels; set "
          ".out_channels");
    CHECK(error_of([&] {
              nn::conv2d_nchwc(xb, placeholder({1, 1, 3, 3, 8, 8}, f32, "wp8"), 8, {.out_channels = 16});
          }) ==
          "nn::conv2d_nchwc 'conv2d': packed weight 'wp8' is [1, 1, 3, 3, 8, 8] but this convolution reads [1, 1, 3, "
          "3, 8, 16]; pack it "
          "with nn::pack_conv2d_weight using the same channels, groups and target");
    CHECK(error_of([&] {
              nn::conv2d_nchwc(placeholder({1, 1, 10, 10, 16}, f32, "xb16"), w, 8);
          }) ==
          "nn::conv2d_nchwc 'conv2d': data 'xb16' is blocked as [1, 1, 10, 10, 16], but 8 channels need [1, 1, 10, 10, "
          "8] for this "
          "convolution; convert with nn::nchw_to_nchwc(x, nn::conv2d_layout(...).data_block)");
    CHECK(error_of([&] { nn::nchwc_to_nchw(xb, 9); }) ==
          "nn::nchwc_to_nchw 'to_nchw': 'xb' holds 8 channels, so 9 is out of range");

    auto plain = compute(
            {4}, [&](Expr i) { return x(0, i, 0, 0) * 2.0f; }, "plain");
    Schedule s(plain);
    CHECK(error_of([&] { nn::schedule_conv2d(s, plain); }) ==
          "nn::schedule_conv2d: 'plain' is not computed from an nn::conv2d; define it with kiln::nn::conv2d or "
          "conv2d_nchwc");
}

TEST_CASE("npy files: a header is checked against the bytes that follow it, before anything is allocated") {
    auto npy = [](const std::string& header, size_t data_bytes) {
        std::string h = header;
        while ((10 + h.size() + 1) % 16) h += ' ';
        h += '\n';
        std::string f = std::string("\x93NUMPY\x01\x00", 8);
        f += static_cast<char>(h.size() & 0xff);
        f += static_cast<char>(h.size() >> 8);
        return f + h + std::string(data_bytes, '\0');
    };
    auto err = [](const std::string& bytes) { return error_of([&] { npy::load_from_bytes(bytes, "x.npy"); }); };
    CHECK(err(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24)) == "");
    CHECK(err(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }", 24)) ==
          "npy 'x.npy': the header declares more elements than the file holds (24 bytes of data)");
    CHECK(err(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 77777777777777, 777777777), }", 0)) ==
          "npy 'x.npy': the shape is too large");
    CHECK(err(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", 24)) ==
          "npy 'x.npy': the shape holds 'x', not a size");
    CHECK(err(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 23)) ==
          "npy 'x.npy': the header declares more elements than the file holds (23 bytes of data)");
    CHECK(err("\x93NUMPY") == "npy 'x.npy': not a .npy file (bad magic)");
}
