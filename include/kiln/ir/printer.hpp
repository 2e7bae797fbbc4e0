#pragma once
// Prints IR as readable pseudo-code, close to TVM's TIR script:
//   for (i.outer, 0, 32) { ... C[(i*1024) + j] = ... }
#include <ostream>
#include <sstream>

#include "kiln/ir/operation.hpp"
#include "kiln/ir/stmt.hpp"

namespace kiln {

class IRPrinter {
public:
    explicit IRPrinter(std::ostream& os) : os_(os) {}

    void print(const Expr& e) {
        if (!e.defined()) {
            os_ << "<undefined>";
            return;
        }
        switch (e.kind()) {
            case ExprKind::IntImm: {
                auto* n = e.as<IntImm>();
                if (n->type.is_bool())
                    os_ << (n->value ? "true" : "false");
                else {
                    os_ << n->value;
                    if (n->type != i32) os_ << "_" << n->type.str();
                }
                return;
            }
            case ExprKind::FloatImm: {
                auto* n = e.as<FloatImm>();
                std::ostringstream s;
                s.precision(9);
                s << n->value;
                std::string str = s.str();
                if (str.find_first_of(".eEn") == std::string::npos) str += ".0";
                os_ << str;
                if (n->type != f32) os_ << "_" << n->type.str();
                return;
            }
            case ExprKind::Var: os_ << e.as<VarNode>()->name; return;
            case ExprKind::Not:
                os_ << "!";
                print(e.as<Not>()->a);
                return;
            case ExprKind::Select: {
                auto* n = e.as<Select>();
                os_ << "select(";
                print(n->cond);
                os_ << ", ";
                print(n->t);
                os_ << ", ";
                print(n->f);
                os_ << ")";
                return;
            }
            case ExprKind::Cast:
                os_ << e.type().str() << "(";
                print(e.as<Cast>()->value);
                os_ << ")";
                return;
            case ExprKind::Ramp: {
                auto* n = e.as<Ramp>();
                os_ << "ramp(";
                print(n->base);
                os_ << ", ";
                print(n->stride);
                os_ << ", " << n->lanes << ")";
                return;
            }
            case ExprKind::Shuffle: {
                auto* n = e.as<Shuffle>();
                os_ << "shuffle(";
                for (size_t i = 0; i < n->vectors.size(); ++i) {
                    if (i) os_ << ", ";
                    print(n->vectors[i]);
                }
                os_ << "; ";
                for (size_t i = 0; i < n->indices.size(); ++i) os_ << (i ? " " : "") << n->indices[i];
                os_ << ")";
                return;
            }
            case ExprKind::Broadcast: {
                auto* n = e.as<Broadcast>();
                os_ << "x" << n->lanes << "(";
                print(n->value);
                os_ << ")";
                return;
            }
            case ExprKind::Load: {
                auto* n = e.as<Load>();
                os_ << n->buffer.name() << "[";
                print(n->index);
                os_ << "]";
                if (n->predicate.defined()) {
                    os_ << " if ";
                    print(n->predicate);
                }
                return;
            }
            case ExprKind::Let: {
                auto* n = e.as<Let>();
                os_ << "(let " << n->var.name() << " = ";
                print(n->value);
                os_ << " in ";
                print(n->body);
                os_ << ")";
                return;
            }
            case ExprKind::Call: {
                auto* n = e.as<Call>();
                os_ << (n->op == Intrinsic::TensorAccess ? n->producer->name : intrinsic_name(n->op));
                if (n->op == Intrinsic::Reinterpret) os_ << "<" << n->type.element_of().str() << ">";
                os_ << "(";
                for (size_t i = 0; i < n->args.size(); ++i) {
                    if (i) os_ << ", ";
                    print(n->args[i]);
                }
                os_ << ")";
                return;
            }
            case ExprKind::Reduce: {
                auto* n = e.as<Reduce>();
                os_ << n->combiner->name << "(";
                print(n->source);
                os_ << ", axis=[";
                for (size_t i = 0; i < n->axis.size(); ++i) os_ << (i ? ", " : "") << n->axis[i].name();
                os_ << "]";
                if (n->condition.defined()) {
                    os_ << ", where=";
                    print(n->condition);
                }
                os_ << ")";
                return;
            }
            default: break;
        }
        auto* b = static_cast<const BinaryNode*>(e.get());
        const char* op = "?";
        switch (e.kind()) {
            case ExprKind::Add: op = " + "; break;
            case ExprKind::Sub: op = " - "; break;
            case ExprKind::Mul: op = "*"; break;
            case ExprKind::Div: op = "/"; break;
            case ExprKind::Mod: op = " % "; break;
            case ExprKind::EQ: op = " == "; break;
            case ExprKind::NE: op = " != "; break;
            case ExprKind::LT: op = " < "; break;
            case ExprKind::LE: op = " <= "; break;
            case ExprKind::GT: op = " > "; break;
            case ExprKind::GE: op = " >= "; break;
            case ExprKind::And: op = " && "; break;
            case ExprKind::Or: op = " || "; break;
            case ExprKind::Min:
                os_ << "min(";
                print(b->a);
                os_ << ", ";
                print(b->b);
                os_ << ")";
                return;
            case ExprKind::Max:
                os_ << "max(";
                print(b->a);
                os_ << ", ";
                print(b->b);
                os_ << ")";
                return;
            default: break;
        }
        os_ << "(";
        print(b->a);
        os_ << op;
        print(b->b);
        os_ << ")";
    }

    void print(const Stmt& s) {
        if (!s.defined()) return;
        switch (s.kind()) {
            case StmtKind::LetStmt: {
                auto* n = s.as<LetStmt>();
                indent();
                os_ << "let " << n->var.name() << " = ";
                print(n->value);
                os_ << "\n";
                print(n->body);
                return;
            }
            case StmtKind::For: {
                auto* n = s.as<For>();
                indent();
                os_ << for_kind_name(n->for_kind) << " (" << n->var.name() << ", ";
                print(n->min);
                os_ << ", ";
                print(n->extent);
                os_ << ")";
                for (auto& [key, value] : n->annotations) os_ << " @" << key << (value.empty() ? "" : "=" + value);
                os_ << " {\n";
                nested(n->body);
                indent();
                os_ << "}\n";
                return;
            }
            case StmtKind::Store: {
                auto* n = s.as<Store>();
                indent();
                os_ << n->buffer.name() << "[";
                print(n->index);
                os_ << "] = ";
                print(n->value);
                if (n->predicate.defined()) {
                    os_ << " if ";
                    print(n->predicate);
                }
                os_ << "\n";
                return;
            }
            case StmtKind::Provide: {
                auto* n = s.as<Provide>();
                indent();
                os_ << n->producer->name << "(";
                for (size_t i = 0; i < n->args.size(); ++i) {
                    if (i) os_ << ", ";
                    print(n->args[i]);
                }
                os_ << ") = ";
                print(n->value);
                os_ << "\n";
                return;
            }
            case StmtKind::Realize: {
                auto* n = s.as<Realize>();
                indent();
                os_ << "realize " << n->producer->name << "(";
                for (size_t i = 0; i < n->bounds.size(); ++i) {
                    if (i) os_ << ", ";
                    os_ << "[";
                    print(n->bounds[i].min);
                    os_ << ", +";
                    print(n->bounds[i].extent);
                    os_ << ")";
                }
                os_ << ") {\n";
                nested(n->body);
                indent();
                os_ << "}\n";
                return;
            }
            case StmtKind::Allocate: {
                auto* n = s.as<Allocate>();
                indent();
                os_ << "allocate " << n->buffer.name() << "[" << n->dtype.str();
                for (auto& e : n->extents) {
                    os_ << " * ";
                    print(e);
                }
                os_ << "]" << (n->scope.empty() ? "" : " @" + n->scope) << "\n";
                print(n->body);
                return;
            }
            case StmtKind::IfThenElse: {
                auto* n = s.as<IfThenElse>();
                indent();
                os_ << "if (";
                print(n->cond);
                os_ << ") {\n";
                nested(n->then_case);
                if (n->else_case.defined()) {
                    indent();
                    os_ << "} else {\n";
                    nested(n->else_case);
                }
                indent();
                os_ << "}\n";
                return;
            }
            case StmtKind::Block:
                for (auto& c : s.as<Block>()->stmts) print(c);
                return;
            case StmtKind::Evaluate:
                indent();
                print(s.as<Evaluate>()->value);
                os_ << "\n";
                return;
        }
    }

private:
    void indent() {
        for (int i = 0; i < depth_; ++i) os_ << "  ";
    }
    void nested(const Stmt& s) {
        ++depth_;
        print(s);
        --depth_;
    }

    std::ostream& os_;
    int depth_ = 0;
};

inline std::ostream& operator<<(std::ostream& os, const Expr& e) {
    IRPrinter(os).print(e);
    return os;
}
inline std::ostream& operator<<(std::ostream& os, const Stmt& s) {
    IRPrinter(os).print(s);
    return os;
}

template <typename T> std::string to_string(const T& node) {
    std::ostringstream os;
    os << node;
    return os.str();
}

// An expression as a user wrote it: without the parentheses the printer puts around the whole.
inline std::string to_plain_string(const Expr& e) {
    std::string s = to_string(e);
    if (s.size() < 2 || s.front() != '(' || s.back() != ')') return s;
    int depth = 0;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
        depth += s[i] == '(' ? 1 : s[i] == ')' ? -1 : 0;
        if (depth == 0) return s;  // the first parenthesis closes before the end
    }
    return s.substr(1, s.size() - 2);
}

}  // namespace kiln
