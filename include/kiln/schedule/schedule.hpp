#pragma once
// Schedules: how to compute. A Schedule holds one Stage per compute in the pipeline; each Stage
// records its loop transformations (split, fuse, reorder), loop kinds and where it is computed.
// Nothing here changes what is computed; lowering (lower/) turns the record into loops.
#include <algorithm>
#include <map>
#include <tuple>
#include <string_view>
#include <unordered_map>

#include "kiln/arith/const_bound.hpp"
#include "kiln/te/tensor.hpp"

namespace kiln {

// What a split does when the factor does not divide the extent.
enum class TailStrategy : std::uint8_t {
    GuardWithIf,   // the last outer iteration runs a guarded partial tile (default; loop partitioning removes the guard
                   // from full tiles)
    ShiftInwards,  // the last tile is shifted back to end at the extent and recomputes some points; no guard (pure
                   // stages only)
    Exact,         // the factor must divide the extent; lowering fails otherwise
};

enum class AttachType : std::uint8_t { Root, Inline, Scope };

struct SplitRelation {
    IterVar parent, outer, inner;
    Expr factor;  // defined when split by factor
    Expr nparts;  // defined when split by number of parts
    TailStrategy tail;
};
struct FuseRelation {
    IterVar outer, inner, fused;
};
struct Relation {
    enum Kind { Split, Fuse } kind;
    SplitRelation split;
    FuseRelation fuse;
};

struct StageNode {
    OpPtr origin;  // the op the user's Tensor handle points to
    OpPtr op;      // the op as rewritten by cache_write, cache_read and rfactor
    std::vector<IterVar> all_iter_vars;
    std::vector<IterVar> leaf_iter_vars;
    std::vector<Relation> relations;
    std::unordered_map<const IterVarNode*, ForKind> for_kind;
    std::unordered_map<const IterVarNode*, std::map<std::string, std::string>> annotations;
    AttachType attach = AttachType::Root;
    StageNode* attach_stage = nullptr;
    IterVar attach_ivar;
    bool is_output = false;
    std::vector<int> storage_order;  // empty: row-major in the tensor's own dimension order
    std::string scope;               // GPU memory: "shared" (one copy per block), "local"/"" (each thread's)

    const std::string& name() const { return op->name; }
    bool is_reduction() const { return op->body.as<Reduce>() != nullptr; }
    bool owns(const IterVar& iv) const {
        return std::any_of(all_iter_vars.begin(), all_iter_vars.end(), [&](const IterVar& x) { return x.same_as(iv); });
    }
    int leaf_index(const IterVar& iv) const {
        for (size_t i = 0; i < leaf_iter_vars.size(); ++i)
            if (leaf_iter_vars[i].same_as(iv)) return static_cast<int>(i);
        return -1;
    }
};

class Schedule;

// A GPU thread index a loop can be bound to (Stage::bind), as TVM's te.thread_axis: "blockIdx.x|y|z" (the
// grid) or "threadIdx.x|y|z" (the threads of one block).
struct ThreadAxis {
    std::string tag;
    bool is_block() const { return tag.rfind("blockIdx.", 0) == 0; }
    int dim() const { return tag.back() - 'x'; }
};

inline ThreadAxis thread_axis(const std::string& tag) {
    static const char* const tags[] = {"blockIdx.x",  "blockIdx.y",  "blockIdx.z",
                                       "threadIdx.x", "threadIdx.y", "threadIdx.z"};
    for (const char* t : tags)
        if (tag == t) return {tag};
    detail::fail("thread_axis: '", tag,
                 "' is not a GPU thread index; use blockIdx.x, blockIdx.y or blockIdx.z for the grid and "
                 "threadIdx.x, threadIdx.y or threadIdx.z for the threads of a block");
}

// A handle to one stage of a schedule; every primitive checks its rule and says what to do instead.
class Stage {
public:
    Stage(StageNode* node, Schedule* sched) : node_(node), sched_(sched) {}

    std::pair<IterVar, IterVar> split(const IterVar& parent, Expr factor,
                                      TailStrategy tail = TailStrategy::GuardWithIf);
    std::pair<IterVar, IterVar> split_nparts(const IterVar& parent, Expr nparts,
                                             TailStrategy tail = TailStrategy::GuardWithIf);
    std::tuple<IterVar, IterVar, IterVar, IterVar> tile(const IterVar& x, const IterVar& y, Expr fx, Expr fy);
    IterVar fuse(const IterVar& outer, const IterVar& inner);
    Stage& reorder(const std::vector<IterVar>& order);
    template <typename... IV> Stage& reorder(const IterVar& a, const IV&... rest) {
        return reorder(std::vector<IterVar>{a, rest...});
    }
    Stage& vectorize(const IterVar& iv);
    Stage& unroll(const IterVar& iv);
    Stage& parallel(const IterVar& iv);
    // Runs the loop's iterations on GPU blocks or threads (GPU targets only): bind(bx, thread_axis("blockIdx.x")).
    Stage& bind(const IterVar& iv, const ThreadAxis& thread);
    // Free-form hints for the backends, kept on the loop (for example "pragma", "prefetch").
    Stage& annotate(const IterVar& iv, const std::string& key, const std::string& value = "");
    Stage& compute_at(const Stage& parent, const IterVar& iv);
    Stage& compute_inline();
    Stage& compute_root();
    // Lays the intermediate out in memory in this dimension order (outermost first), like Halide's reorder_storage.
    Stage& reorder_storage(const std::vector<int>& order);
    // Where the intermediate lives on a GPU, as TVM's set_scope: "shared" (one copy per block, filled by its
    // threads together and read by all of them) or "local" (each thread's own; the default for a stage computed
    // inside the thread loops). CPU targets ignore it.
    Stage& set_scope(const std::string& scope);

    const IterVar& axis(size_t i) const;
    const IterVar& reduce_axis(size_t i) const;
    const std::vector<IterVar>& leaf_iter_vars() const { return node_->leaf_iter_vars; }
    const std::string& name() const { return node_->name(); }
    StageNode* node() const { return node_; }

private:
    void check_leaf(const IterVar& iv, const char* primitive) const;
    void set_kind(const IterVar& iv, ForKind k, const char* primitive);

    StageNode* node_;
    Schedule* sched_;
};

class Schedule {
public:
    explicit Schedule(const Tensor& output) : Schedule(std::vector<Tensor>{output}) {}
    explicit Schedule(std::vector<Tensor> outputs);

    Stage operator[](const Tensor& t);
    Stage operator[](const OpPtr& op);

    // A copy of the intermediate read through `readers` only, computed into its own buffer.
    Tensor cache_read(const Tensor& t, const std::string& scope, const std::vector<Tensor>& readers);
    // Computes `t` into a cache stage first (a register or local accumulator for a reduction),
    // then copies it out. Returns the cache tensor; the original stage becomes the copy.
    Tensor cache_write(const Tensor& t, const std::string& scope);
    // Makes the reduction loop `axis` (a leaf of t's reduction) a data-parallel axis of a new
    // stage of partial results; t then reduces over those partials.
    Tensor rfactor(const Tensor& t, const IterVar& axis);

    const std::vector<std::shared_ptr<StageNode>>& stages() const { return stages_; }
    const std::vector<Tensor>& outputs() const { return outputs_; }
    StageNode* find_stage(const OperationNode* op) const;
    StageNode* owner_of(const IterVar& iv) const;
    // Stages whose bodies read `op`; with look_through_inline, readers of inlined readers count instead.
    std::vector<StageNode*> consumers_of(const OperationNode* op, bool look_through_inline = false) const;

private:
    StageNode* stage_for_tensor(const Tensor& t, const char* what);
    void replace_producer(const OpPtr& old_op, const OpPtr& new_op, const std::vector<StageNode*>& in);
    std::shared_ptr<StageNode> make_stage(OpPtr op);

    std::vector<std::shared_ptr<StageNode>> stages_;
    std::vector<Tensor> outputs_;
};

namespace detail {

inline std::vector<OpPtr> producers_of(const OperationNode* op) {
    std::vector<OpPtr> out;
    if (op->kind != OpKind::Compute) return out;
    post_order_visit(op->body, [&](const Expr& e) {
        if (auto* c = e.as<Call>(); c && c->op == Intrinsic::TensorAccess)
            if (std::find(out.begin(), out.end(), c->producer) == out.end()) out.push_back(c->producer);
    });
    return out;
}

inline OpPtr with_body(const OperationNode* op, Expr body) {
    auto n = std::make_shared<OperationNode>(*op);
    n->body = std::move(body);
    if (auto* r = n->body.as<Reduce>()) n->reduce_axis = r->axis;
    return n;
}

// Replaces reads of one producer by another, keeping the indices.
class ProducerReplacer : public IRMutator {
public:
    ProducerReplacer(const OperationNode* from, OpPtr to) : from_(from), to_(std::move(to)) {}
    using IRMutator::mutate;

protected:
    Expr mutate_call(const Call* n, const Expr& e) override {
        Expr r = IRMutator::mutate_call(n, e);
        auto* c = r.as<Call>();
        if (c->op == Intrinsic::TensorAccess && c->producer.get() == from_)
            return make_expr<Call>(to_->dtype, Intrinsic::TensorAccess, c->args, to_);
        return r;
    }

private:
    const OperationNode* from_;
    OpPtr to_;
};

inline std::string join_names(const std::vector<StageNode*>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? (i + 1 == v.size() ? " and '" : ", '") : "'") + v[i]->name() + "'";
    return s;
}

}  // namespace detail

inline std::shared_ptr<StageNode> Schedule::make_stage(OpPtr op) {
    auto st = std::make_shared<StageNode>();
    st->origin = op;
    st->op = op;
    for (auto& a : op->axis) st->all_iter_vars.push_back(a);
    for (auto& a : op->reduce_axis) st->all_iter_vars.push_back(a);
    st->leaf_iter_vars = st->all_iter_vars;
    return st;
}

inline Schedule::Schedule(std::vector<Tensor> outputs) : outputs_(std::move(outputs)) {
    if (outputs_.empty()) detail::fail("Schedule: give at least one output tensor");
    std::vector<OpPtr> order;
    std::unordered_map<const OperationNode*, int> state;  // 1 visiting, 2 done
    std::function<void(const OpPtr&)> dfs = [&](const OpPtr& op) {
        if (state[op.get()] == 2) return;
        state[op.get()] = 1;
        for (auto& p : detail::producers_of(op.get())) dfs(p);
        state[op.get()] = 2;
        if (op->kind == OpKind::Compute) order.push_back(op);
    };
    for (auto& t : outputs_) {
        if (t.op()->kind != OpKind::Compute)
            detail::fail("Schedule: output '", t.name(),
                         "' is a placeholder; schedule the computes that produce outputs");
        dfs(t.op());
    }
    for (auto& op : order) stages_.push_back(make_stage(op));
    for (auto& t : outputs_) find_stage(t.op().get())->is_output = true;
}

inline StageNode* Schedule::find_stage(const OperationNode* op) const {
    for (auto& s : stages_)
        if (s->origin.get() == op || s->op.get() == op) return s.get();
    return nullptr;
}

inline StageNode* Schedule::owner_of(const IterVar& iv) const {
    for (auto& s : stages_)
        if (s->owns(iv)) return s.get();
    return nullptr;
}

inline std::vector<StageNode*> Schedule::consumers_of(const OperationNode* op, bool look_through_inline) const {
    std::vector<StageNode*> out;
    for (auto& s : stages_)
        for (auto& p : detail::producers_of(s->op.get()))
            if (p.get() == op) {
                if (look_through_inline && s->attach == AttachType::Inline) {
                    for (StageNode* c : consumers_of(s->op.get(), true))
                        if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
                } else if (std::find(out.begin(), out.end(), s.get()) == out.end()) {
                    out.push_back(s.get());
                }
                break;
            }
    return out;
}

inline StageNode* Schedule::stage_for_tensor(const Tensor& t, const char* what) {
    if (!t.defined()) detail::fail(what, ": the tensor is undefined");
    StageNode* st = find_stage(t.op().get());
    if (!st) {
        if (t.op()->kind == OpKind::Placeholder)
            detail::fail(what, ": '", t.name(), "' is a placeholder (an input); only computes have stages");
        detail::fail(what, ": tensor '", t.name(),
                     "' is not part of this schedule; build the Schedule from the outputs that use it");
    }
    return st;
}

inline Stage Schedule::operator[](const Tensor& t) { return Stage(stage_for_tensor(t, "Schedule[]"), this); }
inline Stage Schedule::operator[](const OpPtr& op) { return (*this)[Tensor(op)]; }

inline void Schedule::replace_producer(const OpPtr& old_op, const OpPtr& new_op, const std::vector<StageNode*>& in) {
    for (StageNode* s : in) {
        detail::ProducerReplacer r(old_op.get(), new_op);
        Expr body = r.mutate(s->op->body);
        if (body.same_as(s->op->body)) continue;
        OpPtr before = s->op;
        s->op = detail::with_body(s->op.get(), body);
        // Whoever read the rewritten stage now reads its new op.
        std::vector<StageNode*> all;
        for (auto& t : stages_)
            if (t.get() != s) all.push_back(t.get());
        replace_producer(before, s->op, all);
    }
}

inline Tensor Schedule::cache_read(const Tensor& t, const std::string& scope, const std::vector<Tensor>& readers) {
    if (!t.defined()) detail::fail("cache_read: the tensor is undefined");
    if (readers.empty()) detail::fail("cache_read of '", t.name(), "': name at least one reader stage");
    const OpPtr src = t.op()->kind == OpKind::Compute ? stage_for_tensor(t, "cache_read")->op : t.op();
    std::vector<StageNode*> reader_stages;
    for (auto& r : readers) {
        StageNode* rs = stage_for_tensor(r, "cache_read");
        auto prods = detail::producers_of(rs->op.get());
        if (std::find(prods.begin(), prods.end(), src) == prods.end())
            detail::fail("cache_read of '", t.name(), "': stage '", rs->name(), "' does not read '", t.name(),
                         "'; list only stages that read it");
        reader_stages.push_back(rs);
    }
    std::vector<std::string> names;
    for (size_t d = 0; d < t.ndim(); ++d) names.push_back(detail::default_axis_name(t.ndim(), d) + "." + scope);
    auto op = std::make_shared<OperationNode>();
    op->name = t.name() + "." + scope;
    op->kind = OpKind::Compute;
    op->dtype = t.dtype();
    op->shape = t.shape();
    std::vector<Expr> idx;
    for (size_t d = 0; d < t.ndim(); ++d) {
        op->axis.emplace_back(Var(names[d]), Range{Expr(0), t.shape()[d]}, IterKind::DataPar);
        idx.push_back(op->axis.back().var());
    }
    op->body = Tensor(src).access(idx);
    replace_producer(src, op, reader_stages);
    auto st = make_stage(op);
    if (scope == "shared" || scope == "local") st->scope = scope;
    // Place the cache right before its first reader so the stage list stays topologically sorted.
    auto it = std::find_if(stages_.begin(), stages_.end(), [&](auto& s) {
        return std::find(reader_stages.begin(), reader_stages.end(), s.get()) != reader_stages.end();
    });
    stages_.insert(it, st);
    return Tensor(op);
}

inline Tensor Schedule::cache_write(const Tensor& t, const std::string& scope) {
    StageNode* st = stage_for_tensor(t, "cache_write");
    if (!st->relations.empty() || st->leaf_iter_vars != st->all_iter_vars)
        detail::fail("cache_write of '", t.name(), "': stage '", st->name(),
                     "' has already been split, fused or reordered; call cache_write before other primitives on it");
    const OperationNode* op = st->op.get();
    auto cache = std::make_shared<OperationNode>();
    cache->name = op->name + "." + scope;
    cache->kind = OpKind::Compute;
    cache->dtype = op->dtype;
    cache->shape = op->shape;
    VarMap remap;
    for (auto& a : op->axis) {
        cache->axis.emplace_back(Var(a.name() + ".c"), a.dom(), IterKind::DataPar);
        remap[a.var().get()] = cache->axis.back().var();
    }
    std::vector<IterVar> raxes;
    for (auto& a : op->reduce_axis) {
        raxes.emplace_back(Var(a.name()), a.dom(), IterKind::Reduce);
        remap[a.var().get()] = raxes.back().var();
    }
    if (auto* r = op->body.as<Reduce>()) {
        cache->body = make_expr<Reduce>(r->type, r->combiner, substitute(r->source, remap), raxes,
                                        r->condition.defined() ? substitute(r->condition, remap) : Expr());
        cache->reduce_axis = raxes;
    } else {
        cache->body = substitute(op->body, remap);
    }
    // The original stage keeps its (user-visible) axes and becomes a plain copy.
    auto copy = std::make_shared<OperationNode>(*op);
    std::vector<Expr> idx;
    for (auto& a : op->axis) idx.push_back(a.var());
    copy->body = Tensor(cache).access(idx);
    copy->reduce_axis.clear();
    OpPtr old = st->op;
    st->op = copy;
    st->all_iter_vars.assign(op->axis.begin(), op->axis.end());
    st->leaf_iter_vars = st->all_iter_vars;
    std::vector<StageNode*> others;
    for (auto& s : stages_)
        if (s.get() != st) others.push_back(s.get());
    replace_producer(old, copy, others);
    auto cst = make_stage(cache);
    if (scope == "shared" || scope == "local") cst->scope = scope;
    auto it = std::find_if(stages_.begin(), stages_.end(), [&](auto& s) { return s.get() == st; });
    stages_.insert(it, cst);
    return Tensor(cache);
}

inline Tensor Schedule::rfactor(const Tensor& t, const IterVar& axis) {
    StageNode* st = stage_for_tensor(t, "rfactor");
    auto* red = st->op->body.as<Reduce>();
    if (!red)
        detail::fail("rfactor of '", t.name(), "': stage '", st->name(),
                     "' is not a reduction; rfactor needs a reduction stage");
    if (!axis.defined() || !axis.is_reduce() || st->leaf_index(axis) < 0)
        detail::fail("rfactor of '", t.name(), "': axis '", axis.defined() ? axis.name() : std::string("?"),
                     "' is not a reduction loop of stage '", st->name(),
                     "'; pass a reduction axis of this stage (or one split from it)");
    for (auto& rel : st->relations) {
        if (rel.kind == Relation::Fuse || !rel.split.parent.is_reduce())
            detail::fail("rfactor of '", t.name(), "': stage '", st->name(),
                         "' has transformed data-parallel axes; rfactor may only follow splits of reduction axes");
    }
    // Extents of the reduction leaves, derived from the splits.
    std::unordered_map<const IterVarNode*, Expr> ext;
    std::unordered_map<const IterVarNode*, Expr> value;  // reduction root var -> expression in leaves
    for (auto& a : red->axis) ext[a.get()] = a.dom().extent;
    for (auto& rel : st->relations) {
        auto& s = rel.split;
        Expr pe = ext.at(s.parent.get());
        Expr f = s.factor.defined() ? s.factor : (pe + s.nparts - 1) / s.nparts;
        ext[s.outer.get()] = s.factor.defined() ? (pe + f - 1) / f : s.nparts;
        ext[s.inner.get()] = f;
    }
    // New reduction vars for the remaining leaves; the chosen axis becomes data-parallel.
    VarMap leaf_sub;
    std::vector<IterVar> new_reduce;
    IterVar rf_axis(Var(axis.name() + ".rf"), Range{Expr(0), ext.at(axis.get())}, IterKind::DataPar);
    for (auto& l : st->leaf_iter_vars) {
        if (!l.is_reduce()) continue;
        if (l.same_as(axis)) {
            leaf_sub[l.var().get()] = rf_axis.var();
            continue;
        }
        new_reduce.emplace_back(Var(l.name()), Range{Expr(0), ext.at(l.get())}, IterKind::Reduce);
        leaf_sub[l.var().get()] = new_reduce.back().var();
    }
    // Express each original reduction variable in the new ones, guarding split tails.
    std::function<Expr(const IterVar&)> value_of = [&](const IterVar& iv) -> Expr {
        auto it = leaf_sub.find(iv.var().get());
        if (it != leaf_sub.end()) return it->second;
        for (auto& rel : st->relations)
            if (rel.split.parent.same_as(iv)) {
                Expr f = ext.at(rel.split.inner.get());
                return value_of(rel.split.outer) * f + value_of(rel.split.inner);
            }
        detail::internal_fail("rfactor lost reduction axis '", iv.name(), "'");
    };
    VarMap sub;
    Expr cond = red->condition;
    for (auto& a : red->axis) {
        Expr v = value_of(a);
        sub[a.var().get()] = a.dom().min + v;
        if (!arith::can_prove(v < a.dom().extent, {})) {
            // A split tail, as likely to hold as split's own guards, so loop partitioning frees the full tiles of it.
            Expr in_range = likely(v < a.dom().extent);
            cond = cond.defined() ? (cond && in_range) : in_range;
        }
    }
    auto rf = std::make_shared<OperationNode>();
    rf->name = st->name() + ".rf";
    rf->kind = OpKind::Compute;
    rf->dtype = st->op->dtype;
    rf->shape.push_back(ext.at(axis.get()));
    rf->axis.push_back(rf_axis);
    VarMap data_sub;
    std::vector<Expr> data_idx;
    for (auto& a : st->op->axis) {
        rf->shape.push_back(a.dom().extent);
        rf->axis.emplace_back(Var(a.name() + ".rf"), a.dom(), IterKind::DataPar);
        data_sub[a.var().get()] = rf->axis.back().var();
        data_idx.push_back(a.var());
    }
    for (auto& [k, v] : data_sub) sub[k] = v;
    if (cond.defined()) cond = substitute(cond, sub);
    if (new_reduce.empty()) {
        rf->body = substitute(red->source, sub);
        if (cond.defined()) rf->body = select(cond, rf->body, red->combiner->identity);
    } else {
        rf->body = make_expr<Reduce>(red->type, red->combiner, substitute(red->source, sub), new_reduce, cond);
        rf->reduce_axis = new_reduce;
    }
    // The original stage now reduces the partial results over the factored axis.
    IterVar r(Var(axis.name()), Range{Expr(0), ext.at(axis.get())}, IterKind::Reduce);
    std::vector<Expr> rf_idx{r.var()};
    rf_idx.insert(rf_idx.end(), data_idx.begin(), data_idx.end());
    auto merged = std::make_shared<OperationNode>(*st->op);
    merged->body =
            make_expr<Reduce>(red->type, red->combiner, Tensor(rf).access(rf_idx), std::vector<IterVar>{r}, Expr());
    merged->reduce_axis = {r};
    OpPtr old = st->op;
    st->op = merged;
    st->relations.clear();
    st->all_iter_vars.assign(merged->axis.begin(), merged->axis.end());
    st->all_iter_vars.push_back(r);
    st->leaf_iter_vars = st->all_iter_vars;
    st->for_kind.clear();
    std::vector<StageNode*> others;
    for (auto& s : stages_)
        if (s.get() != st) others.push_back(s.get());
    replace_producer(old, merged, others);
    auto rst = make_stage(rf);
    auto it = std::find_if(stages_.begin(), stages_.end(), [&](auto& s) { return s.get() == st; });
    stages_.insert(it, rst);
    return Tensor(rf);
}

inline void Stage::check_leaf(const IterVar& iv, const char* primitive) const {
    if (!iv.defined()) detail::fail("stage '", name(), "': ", primitive, " was given an undefined axis");
    if (node_->leaf_index(iv) >= 0) return;
    if (node_->owns(iv)) {
        for (auto& rel : node_->relations) {
            if (rel.kind == Relation::Split && rel.split.parent.same_as(iv))
                detail::fail("stage '", name(), "': ", primitive, " of axis '", iv.name(),
                             "': the axis was already split into '", rel.split.outer.name(), "' and '",
                             rel.split.inner.name(), "'",
                             std::string_view(primitive) == "split" ? "; an axis can be split only once"
                                                                    : " and is no longer a loop",
                             ", so apply ", primitive, " to one of those instead");
            if (rel.kind == Relation::Fuse && (rel.fuse.outer.same_as(iv) || rel.fuse.inner.same_as(iv)))
                detail::fail("stage '", name(), "': ", primitive, " of axis '", iv.name(),
                             "': the axis was fused into '", rel.fuse.fused.name(), "'; use the fused axis instead");
        }
    }
    StageNode* owner = sched_->owner_of(iv);
    if (owner)
        detail::fail("stage '", name(), "': ", primitive, " of axis '", iv.name(), "': the axis belongs to stage '",
                     owner->name(), "', not to this stage; schedule it through s[", owner->name(), "]");
    detail::fail("stage '", name(), "': ", primitive, " of axis '", iv.name(),
                 "': the axis is not a loop of this stage; use the ",
                 "axes of this tensor (T.axis(i), T.reduce_axis(i)) or the results of its split/fuse");
}

inline const IterVar& Stage::axis(size_t i) const {
    if (i >= node_->op->axis.size())
        detail::fail("stage '", name(), "' has ", node_->op->axis.size(), " axes; there is no axis ", i);
    return node_->op->axis[i];
}
inline const IterVar& Stage::reduce_axis(size_t i) const {
    if (i >= node_->op->reduce_axis.size())
        detail::fail("stage '", name(), "' has ", node_->op->reduce_axis.size(),
                     " reduction axes; there is no reduction axis ", i);
    return node_->op->reduce_axis[i];
}

inline std::pair<IterVar, IterVar> Stage::split(const IterVar& parent, Expr factor, TailStrategy tail) {
    check_leaf(parent, "split");
    if (!factor.type().is_integer())
        detail::fail("stage '", name(), "': split of axis '", parent.name(), "': the factor must be an integer");
    if (auto* c = as_const_int(factor); c && *c <= 0)
        detail::fail("stage '", name(), "': split of axis '", parent.name(), "' by ", *c,
                     ": the factor must be positive");
    if (tail == TailStrategy::ShiftInwards && node_->is_reduction())
        detail::fail("stage '", name(), "': split of axis '", parent.name(),
                     "' with ShiftInwards: a reduction stage would ",
                     "accumulate the shifted points twice; use TailStrategy::GuardWithIf");
    if (tail == TailStrategy::ShiftInwards && parent.is_reduce())
        detail::fail("stage '", name(), "': split of reduction axis '", parent.name(),
                     "' with ShiftInwards would count points twice; use GuardWithIf");
    IterVar outer(Var(parent.name() + ".outer"), Range{}, parent.kind());
    IterVar inner(Var(parent.name() + ".inner"), Range{}, parent.kind());
    Relation rel{Relation::Split, SplitRelation{parent, outer, inner, cast(i32, factor), Expr(), tail}, {}};
    node_->relations.push_back(rel);
    node_->all_iter_vars.push_back(outer);
    node_->all_iter_vars.push_back(inner);
    auto& leaves = node_->leaf_iter_vars;
    auto pos = leaves.begin() + node_->leaf_index(parent);
    pos = leaves.erase(pos);
    leaves.insert(pos, {outer, inner});
    return {outer, inner};
}

inline std::pair<IterVar, IterVar> Stage::split_nparts(const IterVar& parent, Expr nparts, TailStrategy tail) {
    check_leaf(parent, "split_nparts");
    if (auto* c = as_const_int(nparts); c && *c <= 0)
        detail::fail("stage '", name(), "': split_nparts of axis '", parent.name(), "' into ", *c,
                     " parts: the count must be positive");
    if (tail == TailStrategy::ShiftInwards)
        detail::fail("stage '", name(), "': split_nparts of axis '", parent.name(),
                     "': ShiftInwards applies to split by factor only");
    IterVar outer(Var(parent.name() + ".outer"), Range{}, parent.kind());
    IterVar inner(Var(parent.name() + ".inner"), Range{}, parent.kind());
    node_->relations.push_back(
            Relation{Relation::Split, SplitRelation{parent, outer, inner, Expr(), cast(i32, nparts), tail}, {}});
    node_->all_iter_vars.push_back(outer);
    node_->all_iter_vars.push_back(inner);
    auto& leaves = node_->leaf_iter_vars;
    auto pos = leaves.erase(leaves.begin() + node_->leaf_index(parent));
    leaves.insert(pos, {outer, inner});
    return {outer, inner};
}

inline std::tuple<IterVar, IterVar, IterVar, IterVar> Stage::tile(const IterVar& x, const IterVar& y, Expr fx,
                                                                  Expr fy) {
    auto [xo, xi] = split(x, fx);
    auto [yo, yi] = split(y, fy);
    reorder({xo, yo, xi, yi});
    return {xo, yo, xi, yi};
}

inline IterVar Stage::fuse(const IterVar& outer, const IterVar& inner) {
    check_leaf(outer, "fuse");
    check_leaf(inner, "fuse");
    int a = node_->leaf_index(outer), b = node_->leaf_index(inner);
    if (b != a + 1)
        detail::fail("stage '", name(), "': fuse of '", outer.name(), "' and '", inner.name(),
                     "': the axes must be adjacent loops, ", "outer first (they are at positions ", a, " and ", b,
                     "); reorder them first");
    if (outer.kind() != inner.kind())
        detail::fail("stage '", name(), "': fuse of '", outer.name(), "' and '", inner.name(),
                     "': cannot fuse a reduction axis with a data-parallel axis");
    IterVar fused(Var(outer.name() + "." + inner.name() + ".fused"), Range{}, outer.kind());
    node_->relations.push_back(Relation{Relation::Fuse, {}, FuseRelation{outer, inner, fused}});
    node_->all_iter_vars.push_back(fused);
    auto& leaves = node_->leaf_iter_vars;
    leaves.erase(leaves.begin() + a, leaves.begin() + a + 2);
    leaves.insert(leaves.begin() + a, fused);
    return fused;
}

inline Stage& Stage::reorder(const std::vector<IterVar>& order) {
    std::vector<int> pos;
    for (auto& iv : order) {
        check_leaf(iv, "reorder");
        int p = node_->leaf_index(iv);
        if (std::find(pos.begin(), pos.end(), p) != pos.end())
            detail::fail("stage '", name(), "': reorder names axis '", iv.name(), "' twice; name each axis once");
        pos.push_back(p);
    }
    std::vector<int> slots = pos;
    std::sort(slots.begin(), slots.end());
    auto leaves = node_->leaf_iter_vars;
    for (size_t i = 0; i < order.size(); ++i) leaves[slots[i]] = order[i];
    node_->leaf_iter_vars = leaves;
    return *this;
}

inline void Stage::set_kind(const IterVar& iv, ForKind k, const char* primitive) {
    check_leaf(iv, primitive);
    auto it = node_->for_kind.find(iv.get());
    if (it != node_->for_kind.end() && it->second != k)
        detail::fail("stage '", name(), "': ", primitive, " of axis '", iv.name(), "': the axis is already marked ",
                     for_kind_name(it->second), "; a loop has one kind (split it to combine kinds)");
    node_->for_kind[iv.get()] = k;
}

inline Stage& Stage::vectorize(const IterVar& iv) {
    check_leaf(iv, "vectorize");
    if (iv.is_reduce())
        detail::fail("stage '", name(), "': vectorize of axis '", iv.name(),
                     "': it is a reduction axis, and vector lanes of one ",
                     "reduction would race on the same output; vectorize a data-parallel axis (or rfactor the "
                     "reduction first)");
    set_kind(iv, ForKind::Vectorized, "vectorize");
    return *this;
}
inline Stage& Stage::unroll(const IterVar& iv) {
    set_kind(iv, ForKind::Unrolled, "unroll");
    return *this;
}
inline Stage& Stage::parallel(const IterVar& iv) {
    check_leaf(iv, "parallel");
    if (iv.is_reduce())
        detail::fail("stage '", name(), "': parallel of axis '", iv.name(),
                     "': it is a reduction axis, and threads would race ",
                     "on the same output; parallelize a data-parallel axis, or rfactor the reduction and parallelize "
                     "the factored axis");
    set_kind(iv, ForKind::Parallel, "parallel");
    return *this;
}
inline Stage& Stage::bind(const IterVar& iv, const ThreadAxis& thread) {
    check_leaf(iv, "bind");
    thread_axis(thread.tag);  // a ThreadAxis built by hand is checked too
    if (iv.is_reduce())
        detail::fail("stage '", name(), "': bind of axis '", iv.name(), "' to ", thread.tag,
                     ": it is a reduction axis, and the threads would race on the same output; bind a data-parallel "
                     "axis, or rfactor the reduction and bind the factored axis");
    for (auto& [other, ann] : node_->annotations) {
        auto tag = ann.find(kThreadTag);
        if (other != iv.get() && tag != ann.end() && tag->second == thread.tag)
            detail::fail("stage '", name(), "': bind of axis '", iv.name(), "' to ", thread.tag,
                         ": another axis of this stage is already bound to it; bind each axis to its own thread "
                         "index, or fuse the two axes and bind the fused one");
    }
    set_kind(iv, ForKind::ThreadBinding, "bind");
    auto& tag = node_->annotations[iv.get()][kThreadTag];
    if (!tag.empty() && tag != thread.tag)
        detail::fail("stage '", name(), "': bind of axis '", iv.name(), "' to ", thread.tag,
                     ": it is already bound to ", tag, "; a loop runs on one thread index");
    tag = thread.tag;
    return *this;
}
inline Stage& Stage::set_scope(const std::string& scope) {
    if (scope != "shared" && scope != "local" && scope != "global")
        detail::fail("stage '", name(), "': set_scope('", scope,
                     "'): the memory scopes are \"shared\" (one copy per GPU block), \"local\" (each thread's) and "
                     "\"global\" (device memory)");
    if (node_->is_output && scope != "global")
        detail::fail("stage '", name(), "': set_scope('", scope,
                     "'): it is an output of the schedule, which the "
                     "kernel writes to device memory; cache_write it and set the scope of the cache");
    node_->scope = scope == "global" ? "" : scope;
    return *this;
}
inline Stage& Stage::annotate(const IterVar& iv, const std::string& key, const std::string& value) {
    check_leaf(iv, "annotate");
    node_->annotations[iv.get()][key] = value;
    return *this;
}

inline Stage& Stage::compute_at(const Stage& parent, const IterVar& iv) {
    if (node_->is_output)
        detail::fail("stage '", name(),
                     "': compute_at: it is an output of the schedule and must be computed at the root");
    if (parent.node_ == node_)
        detail::fail("stage '", name(), "': compute_at to itself; name the stage that consumes it");
    auto consumers = sched_->consumers_of(node_->op.get(), true);
    // The parent reads this stage, or computes a reader inside its loops (a copy of a matrix's panel made per
    // outer tile of the product that contains the tile reading it), as Halide allows.
    auto computed_inside_parent = [&](const StageNode* reader) {
        for (const StageNode* s = reader; s->attach == AttachType::Scope; s = s->attach_stage)
            if (s->attach_stage == parent.node_) return true;
        return false;
    };
    if (std::find(consumers.begin(), consumers.end(), parent.node_) == consumers.end() &&
        std::none_of(consumers.begin(), consumers.end(), computed_inside_parent))
        detail::fail("stage '", name(), "': compute_at to stage '", parent.name(),
                     "', which does not consume it; compute a stage at ", "a loop of a stage that reads it",
                     consumers.empty() ? std::string() : " (" + detail::join_names(consumers) + ")",
                     ", or of a stage those readers are computed inside");
    // With several readers, the loop must enclose all of them (Halide's rule): the others are computed at this
    // loop or inside it. They may be attached after this call, so lowering checks it (infer_bound).
    if (parent.node_->leaf_index(iv) < 0) {
        StageNode* owner = sched_->owner_of(iv);
        detail::fail("stage '", name(), "': compute_at axis '", iv.defined() ? iv.name() : std::string("?"),
                     "' is not a loop of stage '", parent.name(), "'",
                     owner && owner != parent.node_ ? " (it belongs to stage '" + owner->name() + "')" : std::string(),
                     "; pass one of the current loops of '", parent.name(), "'");
    }
    node_->attach = AttachType::Scope;
    node_->attach_stage = parent.node_;
    node_->attach_ivar = iv;
    return *this;
}

inline Stage& Stage::compute_inline() {
    if (node_->is_output)
        detail::fail("stage '", name(), "': compute_inline: an output cannot be inlined; it must be stored");
    if (node_->is_reduction())
        detail::fail("stage '", name(),
                     "': compute_inline: it is a reduction and cannot be inlined into its consumers; ",
                     "use compute_at to compute it inside a consumer's loop instead");
    node_->attach = AttachType::Inline;
    node_->attach_stage = nullptr;
    return *this;
}

inline Stage& Stage::compute_root() {
    node_->attach = AttachType::Root;
    node_->attach_stage = nullptr;
    return *this;
}

inline Stage& Stage::reorder_storage(const std::vector<int>& order) {
    const size_t n = node_->op->shape.size();
    std::vector<int> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    bool ok = order.size() == n;
    for (size_t i = 0; ok && i < n; ++i) ok = sorted[i] == static_cast<int>(i);
    if (!ok)
        detail::fail("stage '", name(), "': reorder_storage needs a permutation of its ", n, " dimensions (0 to ",
                     n - 1, ")");
    if (node_->is_output)
        detail::fail("stage '", name(),
                     "': reorder_storage: outputs keep the caller's layout; reorder an intermediate's storage");
    node_->storage_order = order;
    return *this;
}

}  // namespace kiln
