#pragma once
// Statement nodes: the loop IR that lowering produces and the backends consume.
#include <map>

#include "kiln/ir/expr.hpp"

namespace kiln {

enum class StmtKind : std::uint8_t {
    LetStmt,
    For,
    Store,
    Provide,
    Realize,
    Allocate,
    IfThenElse,
    Block,
    Evaluate,
};

struct StmtNode {
    StmtKind kind;
    explicit StmtNode(StmtKind k) : kind(k) {}
    virtual ~StmtNode() = default;
};

class Stmt {
public:
    Stmt() = default;
    explicit Stmt(std::shared_ptr<const StmtNode> n) : node_(std::move(n)) {}
    bool defined() const { return node_ != nullptr; }
    const StmtNode* get() const { return node_.get(); }
    const StmtNode* operator->() const { return node_.get(); }
    StmtKind kind() const { return node_->kind; }
    template <typename T> const T* as() const {
        return node_ && node_->kind == T::kKind ? static_cast<const T*>(node_.get()) : nullptr;
    }
    bool same_as(const Stmt& o) const { return node_ == o.node_; }

private:
    std::shared_ptr<const StmtNode> node_;
};

template <typename T, typename... Args> Stmt make_stmt(Args&&... args) {
    return Stmt(std::make_shared<const T>(std::forward<Args>(args)...));
}

struct LetStmt : StmtNode {
    static constexpr StmtKind kKind = StmtKind::LetStmt;
    Var var;
    Expr value;
    Stmt body;
    LetStmt(Var v, Expr val, Stmt b) : StmtNode(kKind), var(std::move(v)), value(std::move(val)), body(std::move(b)) {}
};

// ThreadBinding: a loop whose iterations are GPU blocks or threads (Stage::bind); its thread tag, such as
// "blockIdx.x", is the loop's annotation kThreadTag, so every pass carries it unchanged.
enum class ForKind : std::uint8_t { Serial, Parallel, Vectorized, Unrolled, ThreadBinding };

inline constexpr const char* kThreadTag = "thread";

inline const char* for_kind_name(ForKind k) {
    switch (k) {
        case ForKind::Serial: return "for";
        case ForKind::Parallel: return "parallel";
        case ForKind::Vectorized: return "vectorized";
        case ForKind::Unrolled: return "unrolled";
        case ForKind::ThreadBinding: return "bound";
    }
    return "?";
}

struct For : StmtNode {
    static constexpr StmtKind kKind = StmtKind::For;
    Var var;
    Expr min, extent;
    ForKind for_kind;
    Stmt body;
    // Backend hints from Stage::annotate, carried unchanged through every pass.
    std::map<std::string, std::string> annotations;
    For(Var v, Expr mn, Expr ext, ForKind k, Stmt b, std::map<std::string, std::string> ann = {})
            : StmtNode(kKind),
              var(std::move(v)),
              min(std::move(mn)),
              extent(std::move(ext)),
              for_kind(k),
              body(std::move(b)),
              annotations(std::move(ann)) {}
};

// Loops whose iterations run at once: the thread pool's (Parallel) or a GPU's (ThreadBinding). No pass
// may split one into pieces or move work across its iterations.
inline bool runs_concurrently(ForKind k) { return k == ForKind::Parallel || k == ForKind::ThreadBinding; }

// The GPU thread a bound loop runs on ("blockIdx.x", "threadIdx.y", ...), or "" for any other loop.
inline const std::string& thread_tag(const For& f) {
    static const std::string none;
    auto it = f.annotations.find(kThreadTag);
    return f.for_kind == ForKind::ThreadBinding && it != f.annotations.end() ? it->second : none;
}

// A store to a flat buffer; lanes whose predicate is false are not written.
struct Store : StmtNode {
    static constexpr StmtKind kKind = StmtKind::Store;
    Var buffer;
    Expr value, index, predicate;
    Store(Var buf, Expr v, Expr idx, Expr pred)
            : StmtNode(kKind),
              buffer(std::move(buf)),
              value(std::move(v)),
              index(std::move(idx)),
              predicate(std::move(pred)) {}
};

// A multi-dimensional write to a tensor, before storage flattening.
struct Provide : StmtNode {
    static constexpr StmtKind kKind = StmtKind::Provide;
    std::shared_ptr<const OperationNode> producer;
    Expr value;
    std::vector<Expr> args;
    Provide(std::shared_ptr<const OperationNode> p, Expr v, std::vector<Expr> a)
            : StmtNode(kKind), producer(std::move(p)), value(std::move(v)), args(std::move(a)) {}
};

// The region of an intermediate tensor that must exist while body runs, before flattening.
struct Realize : StmtNode {
    static constexpr StmtKind kKind = StmtKind::Realize;
    std::shared_ptr<const OperationNode> producer;
    std::vector<Range> bounds;
    Stmt body;
    Realize(std::shared_ptr<const OperationNode> p, std::vector<Range> b, Stmt bd)
            : StmtNode(kKind), producer(std::move(p)), bounds(std::move(b)), body(std::move(bd)) {}
};

struct Allocate : StmtNode {
    static constexpr StmtKind kKind = StmtKind::Allocate;
    Var buffer;
    Type dtype;
    std::vector<Expr> extents;
    Stmt body;
    // Where it lives on a GPU: "shared" (one copy per block, Stage::set_scope), or "" (each thread's own, or
    // device memory at the root). Backends without such memories ignore it.
    std::string scope;
    Allocate(Var buf, Type t, std::vector<Expr> ext, Stmt b, std::string sc = {})
            : StmtNode(kKind),
              buffer(std::move(buf)),
              dtype(t),
              extents(std::move(ext)),
              body(std::move(b)),
              scope(std::move(sc)) {}
};

struct IfThenElse : StmtNode {
    static constexpr StmtKind kKind = StmtKind::IfThenElse;
    Expr cond;
    Stmt then_case, else_case;  // else_case may be undefined
    IfThenElse(Expr c, Stmt t, Stmt e)
            : StmtNode(kKind), cond(std::move(c)), then_case(std::move(t)), else_case(std::move(e)) {}
};

struct Block : StmtNode {
    static constexpr StmtKind kKind = StmtKind::Block;
    std::vector<Stmt> stmts;
    explicit Block(std::vector<Stmt> s) : StmtNode(kKind), stmts(std::move(s)) {}
};

struct Evaluate : StmtNode {
    static constexpr StmtKind kKind = StmtKind::Evaluate;
    Expr value;
    explicit Evaluate(Expr v) : StmtNode(kKind), value(std::move(v)) {}
};

// A sequence that flattens nested blocks and drops undefined parts.
inline Stmt make_block(const std::vector<Stmt>& parts) {
    std::vector<Stmt> out;
    for (const Stmt& s : parts) {
        if (!s.defined()) continue;
        if (auto* b = s.as<Block>())
            out.insert(out.end(), b->stmts.begin(), b->stmts.end());
        else
            out.push_back(s);
    }
    if (out.empty()) return make_stmt<Evaluate>(Expr(0));
    if (out.size() == 1) return out[0];
    return make_stmt<Block>(std::move(out));
}

inline bool is_no_op(const Stmt& s) {
    if (!s.defined()) return true;
    if (auto* e = s.as<Evaluate>()) return is_const(e->value);
    return false;
}

}  // namespace kiln
