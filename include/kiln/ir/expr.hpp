#pragma once
// Expression nodes. Nodes are immutable and shared through Expr handles; a pass that changes
// nothing returns the very same node, so sharing survives the pipeline.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/ir/type.hpp"

namespace kiln {

enum class ExprKind : std::uint8_t {
    IntImm,
    FloatImm,
    Var,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Min,
    Max,
    EQ,
    NE,
    LT,
    LE,
    GT,
    GE,
    And,
    Or,
    Not,
    Select,
    Cast,
    Ramp,
    Broadcast,
    Load,
    Let,
    Call,
    Reduce,
    Shuffle,
};

struct ExprNode {
    ExprKind kind;
    Type type;
    ExprNode(ExprKind k, Type t) : kind(k), type(t) {}
    virtual ~ExprNode() = default;
};

class Expr {
public:
    Expr() = default;
    explicit Expr(std::shared_ptr<const ExprNode> n) : node_(std::move(n)) {}
    Expr(int v);      // i32 constant
    Expr(int64_t v);  // i64 constant
    Expr(float v);    // f32 constant
    Expr(double v);   // f64 constant

    bool defined() const { return node_ != nullptr; }
    const ExprNode* get() const { return node_.get(); }
    const ExprNode* operator->() const { return node_.get(); }
    Type type() const { return node_->type; }
    ExprKind kind() const { return node_->kind; }
    template <typename T> const T* as() const {
        return node_ && node_->kind == T::kKind ? static_cast<const T*>(node_.get()) : nullptr;
    }
    bool same_as(const Expr& o) const { return node_ == o.node_; }
    const std::shared_ptr<const ExprNode>& ptr() const { return node_; }

private:
    std::shared_ptr<const ExprNode> node_;
};

template <typename T, typename... Args> Expr make_expr(Args&&... args) {
    return Expr(std::make_shared<const T>(std::forward<Args>(args)...));
}

struct IntImm : ExprNode {
    static constexpr ExprKind kKind = ExprKind::IntImm;
    int64_t value;
    IntImm(Type t, int64_t v) : ExprNode(kKind, t), value(v) {}
};

struct FloatImm : ExprNode {
    static constexpr ExprKind kKind = ExprKind::FloatImm;
    double value;
    FloatImm(Type t, double v) : ExprNode(kKind, t), value(v) {}
};

// A variable is identified by its node, never by its name: names are only for printing.
struct VarNode : ExprNode {
    static constexpr ExprKind kKind = ExprKind::Var;
    std::string name;
    VarNode(Type t, std::string n) : ExprNode(kKind, t), name(std::move(n)) {}
};

// A handle that is known to hold a VarNode; it converts to Expr freely.
class Var {
public:
    Var() = default;
    explicit Var(std::string name, Type t = i32) : expr_(make_expr<VarNode>(t, std::move(name))) {}
    explicit Var(const Expr& e) : expr_(e) {
        if (!e.as<VarNode>()) detail::internal_fail("Var built from a non-variable expression");
    }
    operator Expr() const { return expr_; }
    const VarNode* get() const { return static_cast<const VarNode*>(expr_.get()); }
    const VarNode* operator->() const { return get(); }
    const std::string& name() const { return get()->name; }
    Type type() const { return expr_.type(); }
    bool defined() const { return expr_.defined(); }
    bool same_as(const Var& o) const { return expr_.same_as(o.expr_); }
    const Expr& expr() const { return expr_; }

private:
    Expr expr_;
};

struct BinaryNode : ExprNode {
    Expr a, b;
    BinaryNode(ExprKind k, Type t, Expr a_, Expr b_) : ExprNode(k, t), a(std::move(a_)), b(std::move(b_)) {}
};

#define KILN_BINARY_NODE(Name)                                                                 \
    struct Name : BinaryNode {                                                                 \
        static constexpr ExprKind kKind = ExprKind::Name;                                      \
        Name(Type t, Expr a_, Expr b_) : BinaryNode(kKind, t, std::move(a_), std::move(b_)) {} \
    };
KILN_BINARY_NODE(Add)
KILN_BINARY_NODE(Sub)
KILN_BINARY_NODE(Mul)
// Integer Div and Mod round towards negative infinity (floor semantics, Python's // and %).
KILN_BINARY_NODE(Div)
KILN_BINARY_NODE(Mod)
KILN_BINARY_NODE(Min)
KILN_BINARY_NODE(Max)
KILN_BINARY_NODE(EQ)
KILN_BINARY_NODE(NE)
KILN_BINARY_NODE(LT)
KILN_BINARY_NODE(LE)
KILN_BINARY_NODE(GT)
KILN_BINARY_NODE(GE)
KILN_BINARY_NODE(And)
KILN_BINARY_NODE(Or)
#undef KILN_BINARY_NODE

inline bool is_binary(ExprKind k) { return k >= ExprKind::Add && k <= ExprKind::Or; }
inline bool is_comparison(ExprKind k) { return k >= ExprKind::EQ && k <= ExprKind::GE; }

struct Not : ExprNode {
    static constexpr ExprKind kKind = ExprKind::Not;
    Expr a;
    Not(Type t, Expr a_) : ExprNode(kKind, t), a(std::move(a_)) {}
};

// Both arms are evaluated; use if_then_else when an arm must not run (an out-of-bounds read).
struct Select : ExprNode {
    static constexpr ExprKind kKind = ExprKind::Select;
    Expr cond, t, f;
    Select(Type ty, Expr c, Expr t_, Expr f_)
            : ExprNode(kKind, ty), cond(std::move(c)), t(std::move(t_)), f(std::move(f_)) {}
};

struct Cast : ExprNode {
    static constexpr ExprKind kKind = ExprKind::Cast;
    Expr value;
    Cast(Type t, Expr v) : ExprNode(kKind, t), value(std::move(v)) {}
};

// base, base + stride, ..., base + (lanes-1)*stride: the index vector of a vectorized loop.
struct Ramp : ExprNode {
    static constexpr ExprKind kKind = ExprKind::Ramp;
    Expr base, stride;
    int lanes;
    Ramp(Expr b, Expr s, int l)
            : ExprNode(kKind, b.type().with_lanes(l)), base(std::move(b)), stride(std::move(s)), lanes(l) {}
};

struct Broadcast : ExprNode {
    static constexpr ExprKind kKind = ExprKind::Broadcast;
    Expr value;
    int lanes;
    Broadcast(Expr v, int l) : ExprNode(kKind, v.type().with_lanes(l)), value(std::move(v)), lanes(l) {}
};

// A load from a flat buffer. Lanes whose predicate is false are not read (masked load).
struct Load : ExprNode {
    static constexpr ExprKind kKind = ExprKind::Load;
    Var buffer;
    Expr index;
    Expr predicate;  // undefined: all lanes read
    Load(Type t, Var buf, Expr idx, Expr pred)
            : ExprNode(kKind, t), buffer(std::move(buf)), index(std::move(idx)), predicate(std::move(pred)) {}
};

// Lanes picked from equally wide vectors laid end to end: lane i of the result is lane indices[i] of the
// concatenation of `vectors`. A transpose in registers is written with it (lower/transpose_in_registers.hpp).
struct Shuffle : ExprNode {
    static constexpr ExprKind kKind = ExprKind::Shuffle;
    std::vector<Expr> vectors;
    std::vector<int> indices;
    Shuffle(std::vector<Expr> v, std::vector<int> i)
            : ExprNode(kKind, v.at(0).type().with_lanes(static_cast<int>(i.size()))),
              vectors(std::move(v)),
              indices(std::move(i)) {}
};

struct Let : ExprNode {
    static constexpr ExprKind kKind = ExprKind::Let;
    Var var;
    Expr value, body;
    Let(Var v, Expr val, Expr b)
            : ExprNode(kKind, b.type()), var(std::move(v)), value(std::move(val)), body(std::move(b)) {}
};

struct OperationNode;  // a tensor-expression operation (te/operation.hpp)

enum class Intrinsic : std::uint8_t {
    // math
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Tanh,
    Sigmoid,
    Erf,
    Pow,
    Abs,
    Floor,
    Ceil,
    Round,
    Fma,
    Reinterpret,  // the same bits read as the call's type (of equal width): how math lowering reaches exponents
    // control
    IfThenElse,  // lazily evaluated select
    Likely,      // marks a guard that loop partitioning should try to remove
    Barrier,     // Evaluate(barrier): every thread of a GPU block waits here for the others and their shared writes
    // tensor-expression level
    TensorAccess,  // producer(args...) before storage flattening
};

struct Call : ExprNode {
    static constexpr ExprKind kKind = ExprKind::Call;
    Intrinsic op;
    std::vector<Expr> args;
    std::shared_ptr<const OperationNode> producer;  // for TensorAccess only
    Call(Type t, Intrinsic o, std::vector<Expr> a, std::shared_ptr<const OperationNode> p = nullptr)
            : ExprNode(kKind, t), op(o), args(std::move(a)), producer(std::move(p)) {}
};

inline const char* intrinsic_name(Intrinsic op) {
    switch (op) {
        case Intrinsic::Exp: return "exp";
        case Intrinsic::Log: return "log";
        case Intrinsic::Sqrt: return "sqrt";
        case Intrinsic::Rsqrt: return "rsqrt";
        case Intrinsic::Tanh: return "tanh";
        case Intrinsic::Sigmoid: return "sigmoid";
        case Intrinsic::Erf: return "erf";
        case Intrinsic::Pow: return "pow";
        case Intrinsic::Abs: return "abs";
        case Intrinsic::Floor: return "floor";
        case Intrinsic::Ceil: return "ceil";
        case Intrinsic::Round: return "round";
        case Intrinsic::Fma: return "fma";
        case Intrinsic::Reinterpret: return "reinterpret";
        case Intrinsic::IfThenElse: return "if_then_else";
        case Intrinsic::Likely: return "likely";
        case Intrinsic::Barrier: return "barrier";
        case Intrinsic::TensorAccess: return "tensor";
    }
    return "?";
}

// [min, min + extent)
struct Range {
    Expr min, extent;
};

enum class IterKind : std::uint8_t { DataPar, Reduce };

// A loop axis of a tensor expression: a variable, its domain, and whether it reduces.
struct IterVarNode {
    Var var;
    Range dom;
    IterKind kind;
};

class IterVar {
public:
    IterVar() = default;
    IterVar(Var v, Range dom, IterKind kind)
            : node_(std::make_shared<IterVarNode>(IterVarNode{std::move(v), std::move(dom), kind})) {}
    const Var& var() const { return node_->var; }
    const Range& dom() const { return node_->dom; }
    IterKind kind() const { return node_->kind; }
    bool is_reduce() const { return node_->kind == IterKind::Reduce; }
    const std::string& name() const { return node_->var.name(); }
    operator Expr() const { return node_->var; }
    bool defined() const { return node_ != nullptr; }
    bool same_as(const IterVar& o) const { return node_ == o.node_; }
    const IterVarNode* get() const { return node_.get(); }
    bool operator==(const IterVar& o) const { return node_ == o.node_; }

private:
    std::shared_ptr<IterVarNode> node_;
};

// A commutative, associative combiner with its identity: sum, max, min, prod or a user's own.
struct CommReducer {
    std::string name;
    Var lhs, rhs;
    Expr combine;  // in terms of lhs and rhs
    Expr identity;
};

struct Reduce : ExprNode {
    static constexpr ExprKind kKind = ExprKind::Reduce;
    std::shared_ptr<const CommReducer> combiner;
    Expr source;
    std::vector<IterVar> axis;
    Expr condition;  // undefined: every point of the axes takes part
    Reduce(Type t, std::shared_ptr<const CommReducer> c, Expr s, std::vector<IterVar> ax, Expr cond)
            : ExprNode(kKind, t),
              combiner(std::move(c)),
              source(std::move(s)),
              axis(std::move(ax)),
              condition(std::move(cond)) {}
};

// Constant helpers used throughout the passes.
inline const int64_t* as_const_int(const Expr& e) {
    if (auto* i = e.as<IntImm>()) return &i->value;
    return nullptr;
}
// The pointer points into the expression's node: a temporary would leave it dangling at the end of the
// statement (AddressSanitizer found two). Name the expression first.
const int64_t* as_const_int(const Expr&& e) = delete;
inline bool is_const_int(const Expr& e, int64_t v) {
    auto* p = as_const_int(e);
    return p && *p == v;
}
inline bool is_zero(const Expr& e) {
    if (auto* f = e.as<FloatImm>()) return f->value == 0.0;
    if (auto* b = e.as<Broadcast>()) return is_zero(b->value);
    return is_const_int(e, 0);
}
inline bool is_one(const Expr& e) {
    if (auto* f = e.as<FloatImm>()) return f->value == 1.0;
    if (auto* b = e.as<Broadcast>()) return is_one(b->value);
    return is_const_int(e, 1);
}
inline bool is_const(const Expr& e) { return e.as<IntImm>() || e.as<FloatImm>(); }

inline Expr make_const(Type t, double v) {
    if (t.is_vector()) return make_expr<Broadcast>(make_const(t.element_of(), v), t.lanes);
    if (t.is_float()) return make_expr<FloatImm>(t, v);
    if (t.is_bool()) return make_expr<IntImm>(t, v != 0 ? 1 : 0);
    return make_expr<IntImm>(t, static_cast<int64_t>(v));
}
inline Expr make_int(Type t, int64_t v) {
    if (t.is_vector()) return make_expr<Broadcast>(make_int(t.element_of(), v), t.lanes);
    if (t.is_float()) return make_expr<FloatImm>(t, static_cast<double>(v));
    return make_expr<IntImm>(t, v);
}

inline Expr::Expr(int v) : Expr(make_expr<IntImm>(i32, v)) {}
inline Expr::Expr(int64_t v) : Expr(make_expr<IntImm>(i64, v)) {}
inline Expr::Expr(float v) : Expr(make_expr<FloatImm>(f32, v)) {}
inline Expr::Expr(double v) : Expr(make_expr<FloatImm>(f64, v)) {}

}  // namespace kiln
