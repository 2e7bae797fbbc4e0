#pragma once
// Matrix products as compute definitions, with the default CPU schedule.
//
//   auto C = kiln::nn::matmul(A, B, {.bias = b});   // A[M,K] x B[K,N] (+ b[N]); {.transpose_b = true}: B is [N,K]
//   kiln::Schedule s(C);
//   kiln::nn::schedule_matmul(s, C);                  // C, or any elementwise function of it (e.g. a ReLU)
//
//   auto P = kiln::nn::pack_matmul_weight(W, M);       // a constant B packed once (run it, keep the result)
//   auto C = kiln::nn::matmul(A, Wp, {.columns = N});  // Wp: P's values as a placeholder [N/NR][K][NR]
//
// The schedule is the classic register-blocked GEMM: B is packed into column panels of NR values
// ([N/NR][K][NR], a stage of its own), an MR x NR tile of C accumulates in registers (a cache_write stage
// with its rows unrolled and its columns vectorized) across the whole k loop, and the epilogue (bias,
// activation) runs while the tile is copied out.
#include "kiln/nn/schedule_util.hpp"
#include "kiln/schedule/knobs.hpp"
#include "kiln/runtime/thread_pool.hpp"

namespace kiln::nn {

struct MatmulOptions {
    bool transpose_b = false;  // B is [N, K] (a weight matrix stored row per output), as in dense layers
    Tensor bias{};             // optional, shape [N], added to every row
    int64_t columns = 0;       // N; only needed with a B already packed by pack_matmul_weight
    std::string name = "matmul";
    Target target{};  // decides the tile (and so the packed layout of B)
};

namespace detail {

// Fewer rows than this and a product streams B unpacked (schedule_matrix_vector): each element of B is
// used this few times, so packing it, even once ahead, only changes how it is read, and the register tiles
// of one row measured 1.6-1.9x slower than streaming rows of B (ResNet's and MobileNet-V3's classifiers).
constexpr int64_t kMatrixVectorRows = 4;

struct MatmulTile {
    int mr, nr;   // register tile of C: mr rows, nr columns (a multiple of the vector lanes)
    bool pack_b;  // B is packed into [N/nr][K][nr] panels
};

// One rule for the tile, shared by the definition (which lays out the packed B) and the schedule.
// About 16 vector accumulators: 8 x 2 vectors when there are enough rows, otherwise fewer rows and
// wider rows, so that a GEMV still has 16 independent FMA chains.
inline MatmulTile matmul_tile(int64_t M, int64_t N, bool transpose_b, const Target& target) {
    const int lanes = f32_lanes(target);
    MatmulTile t;
    t.mr = static_cast<int>(std::min<int64_t>(M, 8));
    const int64_t n_vectors = std::max<int64_t>(1, (N + lanes - 1) / lanes);
    t.nr = lanes * static_cast<int>(std::min<int64_t>(n_vectors, std::max(2, 16 / t.mr)));
    // Packing costs one pass over B; it pays when many row tiles reuse each panel, and it is the only
    // way to read a transposed B with contiguous vector loads. On a GPU the tiles of B are staged in shared
    // memory instead.
    t.pack_b = !target.is_gpu() && (transpose_b || M >= 4 * t.mr);
    return t;
}

// B's element (k, j) after the batch indices `idx`: B is [K,N], or [N,K] with transpose_b.
inline Expr b_element(const Tensor& B, std::vector<Expr> idx, Expr k, Expr j, bool transpose_b) {
    if (transpose_b) {
        idx.push_back(j);
        idx.push_back(k);
    } else {
        idx.push_back(k);
        idx.push_back(j);
    }
    return B.access(idx);
}

// B as column panels of `panel` values, [(b,) ceil(N/panel), K, panel], zero past column N: each step of
// the k loop of a register tile then reads one contiguous run of B.
inline Tensor pack_panels(const Tensor& B, int panel, const MatmulOptions& opt) {
    const size_t r = B.ndim() - 2;
    Expr K = opt.transpose_b ? B.shape()[r + 1] : B.shape()[r];
    Expr N = opt.transpose_b ? B.shape()[r] : B.shape()[r + 1];
    auto* n = as_const_int(N);
    const bool n_divides = n && *n % panel == 0;
    auto value = [&](std::vector<Expr> idx, Expr x, Expr kk, Expr z) {
        Expr j = x * panel + z;
        Expr v = b_element(B, std::move(idx), kk, j, opt.transpose_b);
        return n_divides ? v : if_then_else(j < N, v, make_const(B.dtype(), 0));
    };
    Expr panels = (N + (panel - 1)) / panel;
    Tensor packed = r == 0 ? compute(
                                     {panels, K, panel}, [&](Expr x, Expr kk, Expr z) { return value({}, x, kk, z); },
                                     opt.name + ".packed_B")
                           : compute(
                                     {B.shape()[0], panels, K, panel},
                                     [&](Expr bb, Expr x, Expr kk, Expr z) { return value({bb}, x, kk, z); },
                                     opt.name + ".packed_B");
    return with_tag(packed, "matmul_pack");
}

}  // namespace detail

// B ([K,N], or [N,K] with transpose_b; batches [b,K,N] alike) in the layout nn::matmul reads, for products
// of `rows` rows (M), which decide the panel width. A constant B is packed once this way (the graph layer
// folds this stage) and passed to matmul with {.columns = N}; otherwise matmul packs it on every call.
inline Tensor pack_matmul_weight(const Tensor& B, int64_t rows, const MatmulOptions& opt = {}) {
    const std::string who = "nn::pack_matmul_weight '" + opt.name + "'";
    if (!B.defined() || (B.ndim() != 2 && B.ndim() != 3))
        kiln::detail::fail(who, ": B must be a matrix [K,N] (or [N,K] with transpose_b) or a batch of them [b,K,N]");
    auto* n = as_const_int(opt.transpose_b ? B.shape()[B.ndim() - 2] : B.shape().back());
    if (!n || rows < 1)
        kiln::detail::fail(who, ": the panel width follows from constant sizes; B has N = ",
                           to_string(opt.transpose_b ? B.shape()[B.ndim() - 2] : B.shape().back()),
                           " and rows = ", rows,
                           "; pass a B of constant shape and the product's row count (1 or more)");
    return detail::pack_panels(B, detail::matmul_tile(rows, *n, opt.transpose_b, opt.target).nr, opt);
}

inline Tensor matmul(const Tensor& A, const Tensor& B, const MatmulOptions& opt = {}) {
    const std::string& name = opt.name;
    if (!A.defined() || !B.defined()) kiln::detail::fail("nn::matmul '", name, "': an operand is undefined");
    const size_t rank = A.ndim();
    // B with one more dimension than A is already packed into panels (pack_matmul_weight).
    const bool prepacked = B.defined() && B.ndim() == rank + 1;
    if ((rank != 2 && rank != 3) || (B.ndim() != rank && !prepacked))
        kiln::detail::fail("nn::matmul '", name, "': operands '", A.name(), "' (rank ", A.ndim(), ") and '", B.name(),
                           "' (rank ", B.ndim(),
                           ") must both be matrices [M,K] x [K,N], or both batches of them [b,M,K] x [b,K,N]");
    if (A.dtype() != B.dtype())
        kiln::detail::fail("nn::matmul '", name, "': '", A.name(), "' is ", A.dtype().str(), " but '", B.name(),
                           "' is ", B.dtype().str(), "; cast one so both have the same element type");
    const size_t r = rank - 2;
    Expr M = A.shape()[r], Ka = A.shape()[r + 1];
    Expr Kb = prepacked ? B.shape()[r + 1] : opt.transpose_b ? B.shape()[r + 1] : B.shape()[r];
    Expr N = prepacked ? Expr(static_cast<int>(opt.columns)) : opt.transpose_b ? B.shape()[r] : B.shape()[r + 1];
    if (prepacked) {
        auto* panels = as_const_int(B.shape()[r]);
        auto* width = as_const_int(B.shape()[r + 2]);
        if (opt.transpose_b)
            kiln::detail::fail("nn::matmul '", name, "': '", B.name(), "' (rank ", B.ndim(),
                               ") is B packed by pack_matmul_weight, which has already ",
                               "transposed it; leave transpose_b off");
        if (!panels || !width)
            kiln::detail::fail("nn::matmul '", name, "': '", B.name(), "' (rank ", B.ndim(),
                               ") is B packed by pack_matmul_weight, [panels, K, width], ",
                               "but its sizes are not constant; pack a B of constant shape");
        if (opt.columns <= (*panels - 1) * *width || opt.columns > *panels * *width)
            kiln::detail::fail("nn::matmul '", name, "': '", B.name(), "' (rank ", B.ndim(),
                               ") is B packed by pack_matmul_weight, ", *panels, " panel(s) of ", *width,
                               " columns, so .columns must give N, from ", (*panels - 1) * *width + 1, " to ",
                               *panels * *width, ", not ", opt.columns, "; pass the N that B was packed with");
    }
    // Shapes are i32 expressions, so structural equality also compares constant sizes by value.
    if (!equal(Ka, Kb))
        kiln::detail::fail("nn::matmul '", name, "': the reduction dimensions differ: '", A.name(),
                           "' has K = ", to_string(Ka), " but '", B.name(), "' has K = ", to_string(Kb),
                           prepacked         ? " (B is packed, [panels,K,width])"
                           : opt.transpose_b ? " (B is [N,K] with transpose_b)"
                                             : " (B is [K,N])",
                           "; pass operands whose inner dimensions match");
    if (rank == 3 && !equal(A.shape()[0], B.shape()[0]))
        kiln::detail::fail("nn::matmul '", name, "': batch sizes differ (", to_string(A.shape()[0]), " and ",
                           to_string(B.shape()[0]), ")");
    if (opt.bias.defined() && (opt.bias.ndim() != 1 || !equal(opt.bias.shape()[0], N)))
        kiln::detail::fail("nn::matmul '", name, "': bias '", opt.bias.name(), "' must have shape [", to_string(N),
                           "]");

    auto* m = as_const_int(M);
    auto* n = as_const_int(N);
    const detail::MatmulTile tile =
            (m && n) ? detail::matmul_tile(*m, *n, opt.transpose_b, opt.target) : detail::MatmulTile{8, 32, true};
    const Tensor packed = prepacked ? B : tile.pack_b ? detail::pack_panels(B, tile.nr, opt) : Tensor();
    const int NR = packed.defined() ? static_cast<int>(*as_const_int(packed.shape().back())) : tile.nr;
    auto k = reduce_axis(0, Ka, "k");
    auto rhs = [&](std::vector<Expr> batch, Expr j) {
        if (!packed.defined()) return detail::b_element(B, std::move(batch), k, j, opt.transpose_b);
        batch.push_back(j / NR);
        batch.push_back(k);
        batch.push_back(j % NR);
        return packed.access(batch);
    };
    Tensor C;
    if (rank == 2)
        C = compute(
                {M, N}, [&](Expr i, Expr j) { return sum(A(i, k) * rhs({}, j), {k}); }, name);
    else
        C = compute(
                {A.shape()[0], M, N}, [&](Expr bb, Expr i, Expr j) { return sum(A(bb, i, k) * rhs({bb}, j), {k}); },
                name);
    C = with_tag(C, "matmul");
    if (!opt.bias.defined()) return C;
    if (rank == 2)
        return compute(
                {M, N}, [&](Expr i, Expr j) { return C(i, j) + opt.bias(j); }, name + ".bias");
    return compute(
            {A.shape()[0], M, N}, [&](Expr bb, Expr i, Expr j) { return C(bb, i, j) + opt.bias(j); }, name + ".bias");
}

// A batch of products: A[b,M,K] x B[b,K,N] (or B[b,N,K] with transpose_b).
inline Tensor batch_matmul(const Tensor& A, const Tensor& B, MatmulOptions opt = {}) {
    if (A.defined() && A.ndim() != 3)
        kiln::detail::fail("nn::batch_matmul '", opt.name, "': '", A.name(), "' has rank ", A.ndim(),
                           "; it takes [b,M,K] operands (use nn::matmul for matrices)");
    if (opt.name == "matmul") opt.name = "batch_matmul";
    return matmul(A, B, opt);
}

namespace detail {

// The loops of `out`, the product or its epilogue, over the product's rows and columns. An epilogue may give
// the rows another shape (ONNX MatMul of [b, h, w, K] by [K, N] is one product of b*h*w rows, read back as
// [b, h, w, N]); its innermost leading axis is then the row loop and the others go outside it. Fusing them all
// into one row loop instead would make the rows of a tile `(f/w)*w + f%w`, whose range interval arithmetic
// cannot narrow to the tile: the product's tile would span every row.
struct RowColumnLoops {
    std::vector<IterVar> outer;  // the epilogue's leading axes outside the rows
    IterVar row, col;
    int64_t rows;  // the row loop's extent
};

inline RowColumnLoops row_and_column_loops(const Tensor& out, const OpPtr& mm, const char* who) {
    const size_t rank = mm->shape.size(), r = rank - 2;
    if (out.ndim() == rank) return {{}, out.axis(r), out.axis(r + 1), const_dim(mm->shape[r], mm->name, r, who)};
    int64_t rows = 1;
    for (size_t d = 0; d + 1 < out.ndim(); ++d) rows *= const_dim(out.shape()[d], out.name(), d, who);
    if (rank != 2 || out.ndim() < 2 || rows != const_dim(mm->shape[0], mm->name, 0, who) ||
        const_dim(out.shape().back(), out.name(), out.ndim() - 1, who) != const_dim(mm->shape[1], mm->name, 1, who))
        kiln::detail::fail(who, ": output '", out.name(), "' (rank ", out.ndim(),
                           ") does not lay out the rows and columns of '", mm->name, "' (rank ", rank,
                           "); its last axis must be the product's columns and the others its rows, in order");
    // The row loop is the innermost leading axis longer than 1 ([s, 1, N] as exported sequence-first).
    size_t row = out.ndim() - 2;
    while (row > 0 && const_dim(out.shape()[row], out.name(), row, who) == 1) --row;
    RowColumnLoops loops{
            {}, out.axis(row), out.axis(out.ndim() - 1), const_dim(out.shape()[row], out.name(), row, who)};
    for (size_t d = 0; d + 1 < out.ndim(); ++d)
        if (d != row) loops.outer.push_back(out.axis(d));
    return loops;
}

// `outer` placed just outside `v`, in order, and fused with it into one loop.
inline IterVar fuse_outside(Stage& st, const std::vector<IterVar>& outer, IterVar v) {
    for (auto it = outer.rbegin(); it != outer.rend(); ++it) v = st.fuse(*it, v);
    return v;
}

// A few rows times a matrix is bound by reading B once. Register tiles would walk B down its columns, a
// short run per row; instead each thread takes a wide block of columns and streams B row by row, with
// the block of C (a few KiB) accumulating in L1.
inline void schedule_matrix_vector(Schedule& s, const Tensor& out, const OpPtr& mm, int64_t N, int64_t K,
                                   const Target& target, const char* who) {
    const size_t r = mm->shape.size() - 2;
    const int lanes = f32_lanes(target);
    const bool batched = mm->shape.size() == 3;
    // About eight column blocks, so the loop shares out among a few threads without depending on how
    // many there are (a kernel compiled once serves every thread count); at least 256 columns wide so
    // each row of B is read in runs of 1 KiB (narrower runs measured 10% slower from memory), at most
    // 4096 columns so the block of C (16 KiB) stays in L1.
    const int64_t n_padded = (N + lanes - 1) / lanes * lanes;
    const int64_t eighth = ((N + 7) / 8 + lanes - 1) / lanes * lanes;
    const int block = static_cast<int>(std::clamp<int64_t>(eighth, std::min<int64_t>(256, n_padded), 4096));
    Tensor CC = Tensor(mm);
    if (out.op().get() != mm.get()) {
        // The epilogue reads a finished row of a column block; the product is computed just before it.
        Stage st = s[out];
        // One row at a time: the product's block is computed at a single row, so fusing the rows is exact.
        RowColumnLoops loops = row_and_column_loops(out, mm, who);
        std::vector<IterVar> order = loops.outer;
        order.insert(order.end(), {loops.row, loops.col});
        st.reorder(order);
        IterVar row = fuse_outside(st, loops.outer, loops.row);
        auto [jo, ji] = st.split(loops.col, block);
        auto [jvo, jvi] = st.split(ji, lanes);
        st.reorder(jo, row, jvo, jvi);
        st.vectorize(jvi);
        st.parallel(batched ? st.fuse(out.axis(0), jo) : jo);
        s[CC].compute_at(st, row);
    }
    Stage cs = s[CC];
    auto [cjo, cji] = cs.split(cs.axis(r + 1), block);
    auto [cvo, cvi] = cs.split(cji, lanes);
    // Up to sixteen rows of B per pass over the block of C: a sixteenth of the loads and stores of C. From
    // cache (a classifier's 960 x 1280 weight, 1 thread), 4 rows per pass ran at 0.40-0.44 ms, 8 at 0.25-0.32,
    // 16 at 0.20-0.25; from memory (4096 x 4096) the three are within noise.
    const int rows_per_pass = K % 16 == 0 ? 16 : K % 8 == 0 ? 8 : K % 4 == 0 ? 4 : 1;
    if (rows_per_pass > 1) {
        auto [ko, ki] = cs.split(cs.reduce_axis(0), rows_per_pass);
        cs.reorder(cjo, cs.axis(r), ko, cvo, ki, cvi);
        cs.unroll(ki);
    } else {
        cs.reorder(cjo, cs.axis(r), cs.reduce_axis(0), cvo, cvi);
    }
    cs.vectorize(cvi);
    if (out.op().get() == mm.get()) cs.parallel(batched ? cs.fuse(cs.axis(0), cjo) : cjo);
}

// The GPU schedule (TVM's and CUTLASS's first lesson): a block computes a kTile x kTile tile of C with kThreads x
// kThreads threads, each a 2 x 2 micro-tile accumulated in registers, and the block's threads stage the tiles of A
// and B of each kStep-long step of the reduction in shared memory. Batches and an epilogue's leading axes run on
// blockIdx.z; B packed ahead (pack_matmul_weight) is staged the same way.
inline void schedule_matmul_gpu(Schedule& s, const Tensor& out, const OpPtr& mm, const OpPtr& pack, const char* who) {
    constexpr int kTile = 32, kPerThread = 2, kThreads = kTile / kPerThread, kStep = 8;
    const size_t r = mm->shape.size() - 2;
    if (pack && pack->kind == OpKind::Compute)
        kiln::detail::fail(who, ": '", mm->name, "' packs B into panels for a CPU's registers ('", pack->name,
                           "'); define it with nn::MatmulOptions::target set to the GPU target, so it reads B as it "
                           "is and the schedule stages B's tiles in shared memory");
    const bool fused = out.op().get() != mm.get();
    Tensor CC = fused ? Tensor(mm) : s.cache_write(out, "local");
    if (fused) s[CC].set_scope("local");
    std::vector<Tensor> shared;
    for (auto& p : kiln::detail::producers_of(CC.op().get())) shared.push_back(s.cache_read(Tensor(p), "shared", {CC}));

    Stage st = s[out];
    RowColumnLoops loops = row_and_column_loops(out, mm, who);
    std::vector<IterVar> outer = loops.outer;
    if (r == 1) outer.insert(outer.begin(), out.axis(0));
    auto [by, yi] = st.split(loops.row, kTile);
    auto [ty, yr] = st.split(yi, kPerThread);
    auto [bx, xi] = st.split(loops.col, kTile);
    auto [tx, xr] = st.split(xi, kPerThread);
    std::vector<IterVar> order = outer;
    order.insert(order.end(), {by, bx, ty, tx, yr, xr});
    st.reorder(order);
    if (!outer.empty())
        st.bind(fuse_outside(st, std::vector<IterVar>(outer.begin(), outer.end() - 1), outer.back()),
                thread_axis("blockIdx.z"));
    st.bind(by, thread_axis("blockIdx.y")).bind(bx, thread_axis("blockIdx.x"));
    st.bind(ty, thread_axis("threadIdx.y")).bind(tx, thread_axis("threadIdx.x"));

    Stage cs = s[CC];
    cs.compute_at(st, tx);
    auto [ko, ki] = cs.split(cs.reduce_axis(0), kStep);
    std::vector<IterVar> inner = {ko, ki};
    for (size_t d = 0; d < CC.ndim(); ++d) inner.push_back(cs.axis(d));
    cs.reorder(inner);
    for (auto& t : shared) {
        Stage ss = s[t];
        ss.compute_at(cs, ko);
        IterVar all = ss.axis(0);
        for (size_t d = 1; d < t.ndim(); ++d) all = ss.fuse(all, ss.axis(d));
        auto [rest, mine] = ss.split(all, kThreads * kThreads);
        auto [t_y, t_x] = ss.split(mine, kThreads);
        ss.bind(t_y, thread_axis("threadIdx.y")).bind(t_x, thread_axis("threadIdx.x"));
    }
}

}  // namespace detail

// Schedules the nn::matmul behind `out`. `out` is the matmul itself or an elementwise function of it (its
// bias add, an activation); those stages are fused into the copy-out of each register tile.
// With `knobs`, the choices become tunable (kiln/autotune): "<matmul>.rows" (the register tile's rows),
// "<matmul>.panels_outer" (whether B's panels or the row tiles form the outer, parallel loop) and
// "<matmul>.k_unroll" (the reduction steps unrolled per iteration); each knob's first value is the
// default this function picks without knobs. For a GPU target (define the product with the same target, so B
// is not packed for a CPU's registers), tiles of A and B in shared memory instead (schedule_matmul_gpu).
inline void schedule_matmul(Schedule& s, const Tensor& out, const Target& target = {}, Knobs* knobs = nullptr) {
    constexpr const char* who = "nn::schedule_matmul";
    OpPtr mm = detail::find_tagged(out, "matmul");
    if (!mm)
        kiln::detail::fail(who, ": '", out.name(),
                           "' is not computed from an nn::matmul; define it with kiln::nn::matmul");
    // B in panels: packed by this kernel (a stage to schedule) or before it (an input of one more dimension).
    OpPtr pack;
    for (auto& p : kiln::detail::producers_of(mm.get()))
        if (p->shape.size() == mm->shape.size() + 1) pack = p;
    detail::inline_epilogue(s, mm, out, who);
    if (target.is_gpu()) return detail::schedule_matmul_gpu(s, out, mm, pack, who);
    const size_t rank = mm->shape.size();
    const size_t r = rank - 2;
    const int64_t M = detail::const_dim(mm->shape[r], mm->name, r, who);
    const int64_t N = detail::const_dim(mm->shape[r + 1], mm->name, r + 1, who);
    const int64_t K = detail::const_dim(mm->reduce_axis[0].dom().extent, mm->name, rank, who);
    detail::MatmulTile tile = detail::matmul_tile(M, N, false, target);
    if (pack) tile.nr = static_cast<int>(*as_const_int(pack->shape.back()));

    if (!pack && M < detail::kMatrixVectorRows) return detail::schedule_matrix_vector(s, out, mm, N, K, target, who);

    Tensor T = out, CC = Tensor(mm);
    if (out.op().get() == mm.get()) CC = s.cache_write(out, "local");
    Stage st = s[T];
    detail::RowColumnLoops loops = detail::row_and_column_loops(T, mm, who);
    // A knob's values: the default first, then the alternatives.
    auto choose = [&](const char* what, int64_t preferred, std::vector<int64_t> others) {
        if (!knobs) return preferred;
        std::vector<int64_t> values{preferred};
        for (int64_t v : others)
            if (std::find(values.begin(), values.end(), v) == values.end()) values.push_back(v);
        return knobs->knob(mm->name + "." + what, values);
    };
    std::vector<int64_t> row_choices;
    for (int64_t r : {1, 2, 4, 6, 8, 12})
        if (r <= loops.rows) row_choices.push_back(r);
    // The outer loop runs the panels of B (each reused by every row tile) unless there are too few of
    // them to share out among threads. (Decided on the default tile, so the knob's values do not depend
    // on the rows knob's.)
    const int64_t row_tiles = (loops.rows + tile.mr - 1) / tile.mr, col_tiles = (N + tile.nr - 1) / tile.nr;
    const bool panels_outer_default = col_tiles >= 8 || col_tiles >= row_tiles;
    tile.mr = static_cast<int>(choose("rows", tile.mr, row_choices));
    auto [io, jo, ii, ji] = st.tile(loops.row, loops.col, tile.mr, tile.nr);
    const bool panels_outer = choose("panels_outer", panels_outer_default, {!panels_outer_default}) != 0;
    IterVar outer = panels_outer ? jo : io, inner = panels_outer ? io : jo;
    std::vector<IterVar> order = loops.outer;
    order.insert(order.end(), {outer, inner, ii, ji});
    st.reorder(order);
    st.vectorize(ji);
    st.parallel(detail::fuse_outside(st, loops.outer, rank == 3 ? st.fuse(T.axis(0), outer) : outer));

    Stage cs = s[CC];
    cs.compute_at(st, inner);
    const IterVar& ci = cs.axis(r);
    const IterVar& cj = cs.axis(r + 1);
    const IterVar& ck = cs.reduce_axis(0);
    // Unrolled reduction steps: only factors of K, so the micro-kernel has no tail.
    std::vector<int64_t> k_choices;
    for (int64_t u : {1, 2, 4, 8})
        if (K % u == 0) k_choices.push_back(u);
    const int64_t k_unroll = choose("k_unroll", K % 4 == 0 ? 4 : 1, k_choices);
    if (k_unroll > 1) {
        auto [ko, ki] = cs.split(ck, static_cast<int>(k_unroll));
        cs.reorder(ko, ki, ci, cj);
        cs.unroll(ki);
    } else {
        cs.reorder(ck, ci, cj);
    }
    cs.unroll(ci);
    cs.vectorize(cj);

    if (pack && pack->kind == OpKind::Compute) {
        Stage ps = s[pack];
        const size_t pr = pack->shape.size();
        ps.vectorize(ps.axis(pr - 1));
        ps.parallel(pr == 4 ? ps.fuse(ps.axis(0), ps.axis(1)) : ps.axis(0));
    }
}

}  // namespace kiln::nn
