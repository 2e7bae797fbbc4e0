#pragma once
// Tensor expressions: placeholders, computes defined by lambdas, reduction axes and reducers.
#include <array>
#include <functional>
#include <initializer_list>
#include <type_traits>

#include "kiln/ir/analysis.hpp"
#include "kiln/ir/operation.hpp"
#include "kiln/ir/printer.hpp"

namespace kiln {

class Tensor {
public:
    Tensor() = default;
    explicit Tensor(OpPtr op) : op_(std::move(op)) {}

    template <typename... Idx> Expr operator()(const Idx&... idx) const {
        return access(std::vector<Expr>{Expr(idx)...});
    }

    Expr access(std::vector<Expr> idx) const {
        if (idx.size() != op_->shape.size())
            detail::fail("tensor '", op_->name, "' has ", op_->shape.size(), " dimension(s) but is indexed with ",
                         idx.size(), " index(es); give one index per dimension");
        for (size_t d = 0; d < idx.size(); ++d) {
            if (!idx[d].type().is_scalar() || !(idx[d].type().is_integer() || idx[d].type().is_bool()))
                detail::fail("tensor '", op_->name, "': index ", d, " has type ", idx[d].type().str(),
                             "; indices must be scalar integers (cast floats with kiln::cast(kiln::i32, x))");
            if (idx[d].type() != i32) idx[d] = cast(i32, idx[d]);
        }
        return make_expr<Call>(op_->dtype, Intrinsic::TensorAccess, std::move(idx), op_);
    }

    const OpPtr& op() const { return op_; }
    const std::string& name() const { return op_->name; }
    Type dtype() const { return op_->dtype; }
    size_t ndim() const { return op_->shape.size(); }
    const std::vector<Expr>& shape() const { return op_->shape; }
    const IterVar& axis(size_t i) const {
        if (op_->kind != OpKind::Compute)
            detail::fail("tensor '", op_->name, "' is a placeholder and has no loop axes");
        if (i >= op_->axis.size())
            detail::fail("tensor '", op_->name, "' has ", op_->axis.size(), " axes; there is no axis ", i);
        return op_->axis[i];
    }
    const IterVar& reduce_axis(size_t i) const {
        if (i >= op_->reduce_axis.size())
            detail::fail("tensor '", op_->name, "' has ", op_->reduce_axis.size(),
                         " reduction axes; there is no reduction axis ", i);
        return op_->reduce_axis[i];
    }
    const std::vector<IterVar>& axes() const { return op_->axis; }
    const std::vector<IterVar>& reduce_axes() const { return op_->reduce_axis; }
    bool defined() const { return op_ != nullptr; }
    bool same_as(const Tensor& o) const { return op_ == o.op_; }

private:
    OpPtr op_;
};

namespace detail {
inline void check_shape(const std::vector<Expr>& shape, const std::string& name) {
    if (shape.empty() || shape.size() > 6)
        fail("tensor '", name, "' has ", shape.size(), " dimensions; kiln supports 1 to 6");
    for (size_t d = 0; d < shape.size(); ++d) {
        if (!shape[d].type().is_integer() || !shape[d].type().is_scalar())
            fail("tensor '", name, "': dimension ", d, " has type ", shape[d].type().str(), "; shapes are integers");
        if (auto* c = as_const_int(shape[d]); c && *c <= 0)
            fail("tensor '", name, "': dimension ", d, " is ", *c, "; every dimension must be positive");
    }
}
inline std::vector<Expr> to_i32(std::vector<Expr> v) {
    for (auto& e : v)
        if (e.type() != i32) e = cast(i32, e);
    return v;
}
inline std::string default_axis_name(size_t ndim, size_t d) {
    static const char* names[5][5] = {
            {"i"}, {"i", "j"}, {"b", "i", "j"}, {"n", "c", "h", "w"}, {"n", "c", "d", "h", "w"}};
    if (ndim <= 5) return names[ndim - 1][d];
    return "ax" + std::to_string(d);
}
}  // namespace detail

inline Tensor placeholder(std::vector<Expr> shape, Type dtype = f32, const std::string& name = "placeholder") {
    shape = detail::to_i32(std::move(shape));
    detail::check_shape(shape, name);
    if (dtype.is_vector() || dtype.is_handle())
        detail::fail("tensor '", name, "': element type ", dtype.str(), " is not a scalar type");
    auto op = std::make_shared<OperationNode>();
    op->name = name;
    op->kind = OpKind::Placeholder;
    op->dtype = dtype;
    op->shape = std::move(shape);
    return Tensor(op);
}

inline IterVar reduce_axis(Expr min, Expr extent, const std::string& name = "k") {
    if (!extent.type().is_integer() || !min.type().is_integer())
        detail::fail("reduce_axis '", name, "': bounds must be integers");
    if (auto* c = as_const_int(extent); c && *c <= 0)
        detail::fail("reduce_axis '", name, "': extent is ", *c, "; it must be positive");
    return IterVar(Var(name), Range{cast(i32, min), cast(i32, extent)}, IterKind::Reduce);
}
inline IterVar reduce_axis(Expr extent, const std::string& name = "k") {
    return reduce_axis(Expr(0), std::move(extent), name);
}

// A commutative, associative reduction: combine(lhs, rhs) and its identity for a given type.
class Reducer {
public:
    Reducer(std::string name, std::function<Expr(Expr, Expr)> combine, std::function<Expr(Type)> identity)
            : name_(std::move(name)), combine_(std::move(combine)), identity_(std::move(identity)) {}

    Expr operator()(Expr source, std::vector<IterVar> axes, Expr where = Expr()) const {
        if (axes.empty()) detail::fail(name_, "(): give at least one reduction axis");
        for (auto& a : axes)
            if (!a.is_reduce())
                detail::fail(name_, "(): axis '", a.name(),
                             "' is not a reduction axis; create it with kiln::reduce_axis");
        if (source.type().is_float() && source.type().bits == 16) source = cast(f32, source);
        Type t = source.type();
        auto c = std::make_shared<CommReducer>();
        c->name = name_;
        c->lhs = Var("x", t);
        c->rhs = Var("y", t);
        c->combine = combine_(c->lhs, c->rhs);
        if (c->combine.type() != t) c->combine = cast(t, c->combine);
        c->identity = cast(t, identity_(t));
        if (where.defined() && !where.type().is_bool()) where = where != make_int(where.type(), 0);
        return make_expr<Reduce>(t, std::move(c), std::move(source), std::move(axes), std::move(where));
    }
    Expr operator()(Expr source, std::initializer_list<IterVar> axes, Expr where = Expr()) const {
        return (*this)(std::move(source), std::vector<IterVar>(axes), std::move(where));
    }
    Expr operator()(Expr source, const IterVar& axis, Expr where = Expr()) const {
        return (*this)(std::move(source), std::vector<IterVar>{axis}, std::move(where));
    }

private:
    std::string name_;
    std::function<Expr(Expr, Expr)> combine_;
    std::function<Expr(Type)> identity_;
};

inline Reducer comm_reducer(std::function<Expr(Expr, Expr)> combine, std::function<Expr(Type)> identity,
                            std::string name = "reduce") {
    return Reducer(std::move(name), std::move(combine), std::move(identity));
}

namespace detail {
inline double lowest_of(Type t) {
    if (t.is_float()) return -std::numeric_limits<double>::infinity();
    if (t.is_uint() || t.is_bool()) return 0;
    return -std::ldexp(1.0, t.bits - 1);
}
inline double highest_of(Type t) {
    if (t.is_float()) return std::numeric_limits<double>::infinity();
    if (t.is_uint()) return std::ldexp(1.0, t.bits) - 1;
    if (t.is_bool()) return 1;
    return std::ldexp(1.0, t.bits - 1) - 1;
}
inline const Reducer& sum_reducer() {
    static const Reducer r(
            "sum", [](Expr a, Expr b) { return a + b; }, [](Type t) { return make_const(t, 0); });
    return r;
}
inline const Reducer& prod_reducer() {
    static const Reducer r(
            "prod", [](Expr a, Expr b) { return a * b; }, [](Type t) { return make_const(t, 1); });
    return r;
}
inline const Reducer& max_reducer() {
    static const Reducer r(
            "max", [](Expr a, Expr b) { return kiln::max(a, b); }, [](Type t) { return make_const(t, lowest_of(t)); });
    return r;
}
inline const Reducer& min_reducer() {
    static const Reducer r(
            "min", [](Expr a, Expr b) { return kiln::min(a, b); }, [](Type t) { return make_const(t, highest_of(t)); });
    return r;
}
}  // namespace detail

inline Expr sum(Expr e, std::vector<IterVar> axes, Expr where = Expr()) {
    return detail::sum_reducer()(std::move(e), std::move(axes), std::move(where));
}
inline Expr sum(Expr e, std::initializer_list<IterVar> axes, Expr where = Expr()) {
    return sum(std::move(e), std::vector<IterVar>(axes), std::move(where));
}
inline Expr sum(Expr e, const IterVar& axis, Expr where = Expr()) {
    return sum(std::move(e), std::vector<IterVar>{axis}, std::move(where));
}
inline Expr prod(Expr e, std::vector<IterVar> axes, Expr where = Expr()) {
    return detail::prod_reducer()(std::move(e), std::move(axes), std::move(where));
}
inline Expr prod(Expr e, std::initializer_list<IterVar> axes, Expr where = Expr()) {
    return prod(std::move(e), std::vector<IterVar>(axes), std::move(where));
}
inline Expr prod(Expr e, const IterVar& axis, Expr where = Expr()) {
    return prod(std::move(e), std::vector<IterVar>{axis}, std::move(where));
}
inline Expr max(Expr e, std::vector<IterVar> axes, Expr where = Expr()) {
    return detail::max_reducer()(std::move(e), std::move(axes), std::move(where));
}
inline Expr max(Expr e, std::initializer_list<IterVar> axes, Expr where = Expr()) {
    return max(std::move(e), std::vector<IterVar>(axes), std::move(where));
}
inline Expr max(Expr e, const IterVar& axis, Expr where = Expr()) {
    return max(std::move(e), std::vector<IterVar>{axis}, std::move(where));
}
inline Expr min(Expr e, std::vector<IterVar> axes, Expr where = Expr()) {
    return detail::min_reducer()(std::move(e), std::move(axes), std::move(where));
}
inline Expr min(Expr e, std::initializer_list<IterVar> axes, Expr where = Expr()) {
    return min(std::move(e), std::vector<IterVar>(axes), std::move(where));
}
inline Expr min(Expr e, const IterVar& axis, Expr where = Expr()) {
    return min(std::move(e), std::vector<IterVar>{axis}, std::move(where));
}

namespace detail {

// A reduction may only stand at the top of a compute body, as in TVM: it defines the stage.
inline void check_body(const Expr& body, const std::string& name) {
    const Reduce* top = body.as<Reduce>();
    post_order_visit(body, [&](const Expr& e) {
        if (auto* r = e.as<Reduce>(); r && r != top)
            fail("compute '", name, "': a reduction (", r->combiner->name,
                 ") is nested inside a larger expression; a reduction must be the whole body of a compute, "
                 "so compute it in its own stage and use that tensor here");
    });
}

template <typename F, size_t... I> constexpr bool invocable_with(std::index_sequence<I...>) {
    return std::is_invocable_v<F&, decltype((void)I, Expr())...>;
}
template <typename F, size_t N>
concept invocable_with_n = invocable_with<F>(std::make_index_sequence<N>{});

template <size_t N, typename F, size_t... I>
Expr invoke_with_axes(F& f, const std::vector<IterVar>& axes, std::index_sequence<I...>) {
    return Expr(f(Expr(axes[I].var())...));
}

}  // namespace detail

// Defines a tensor by a function of its indices. The lambda takes one kiln::Expr per dimension.
template <typename F>
Tensor compute(std::vector<Expr> shape, F&& fn, const std::string& name = "compute",
               std::vector<std::string> axis_names = {}) {
    shape = detail::to_i32(std::move(shape));
    detail::check_shape(shape, name);
    auto op = std::make_shared<OperationNode>();
    op->name = name;
    op->kind = OpKind::Compute;
    op->shape = shape;
    for (size_t d = 0; d < shape.size(); ++d) {
        std::string an = d < axis_names.size() ? axis_names[d] : detail::default_axis_name(shape.size(), d);
        op->axis.emplace_back(Var(an), Range{Expr(0), shape[d]}, IterKind::DataPar);
    }
    Expr body;
    auto try_arity = [&]<size_t N>() {
        if constexpr (detail::invocable_with_n<F, N>) {
            if (N == shape.size()) body = detail::invoke_with_axes<N>(fn, op->axis, std::make_index_sequence<N>{});
        }
    };
    [&]<size_t... N>(std::index_sequence<N...>) { (try_arity.template operator()<N + 1>(), ...); }
    (std::make_index_sequence<6>{});
    if (!body.defined())
        detail::fail("compute '", name, "': the lambda must take exactly ", shape.size(),
                     " kiln::Expr argument(s), one per dimension of the shape");
    detail::check_body(body, name);
    if (body.type().is_vector()) detail::fail("compute '", name, "': the body is a vector; write scalar expressions");
    op->dtype = body.type();
    op->body = body;
    if (auto* r = body.as<Reduce>()) op->reduce_axis = r->axis;
    return Tensor(op);
}

// The same compute, marked with an operator tag (see OperationNode::tag). Call it on a fresh tensor,
// before any other compute reads it: readers hold the untagged operation.
inline Tensor with_tag(const Tensor& t, std::string tag) {
    if (t.op()->kind != OpKind::Compute)
        detail::fail("with_tag: '", t.name(), "' is a placeholder; only computes carry tags");
    auto op = std::make_shared<OperationNode>(*t.op());
    op->tag = std::move(tag);
    return Tensor(op);
}

}  // namespace kiln
