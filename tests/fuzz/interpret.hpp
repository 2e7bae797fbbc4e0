#pragma once
// A naive interpreter of tensor expressions: every element of every stage evaluated from its definition,
// in double precision, with no schedule, no lowering and no code generation. What the structured fuzzer
// holds kiln's compiled kernels to.
#include <kiln/te/tensor.hpp>

#include <cmath>
#include <map>
#include <unordered_map>
#include <vector>

namespace fuzz {

using kiln::Expr;
using kiln::ExprKind;

class Interpreter {
public:
    // The value of every placeholder, row-major.
    std::map<const kiln::OperationNode*, std::vector<double>> inputs;

    const std::vector<double>& values(const kiln::OpPtr& op) {
        if (op->kind == kiln::OpKind::Placeholder) return inputs.at(op.get());
        auto it = memo_.find(op.get());
        if (it != memo_.end()) return it->second;
        std::vector<int64_t> shape = dims(op);
        int64_t n = 1;
        for (auto d : shape) n *= d;
        std::vector<double> out(static_cast<size_t>(n));
        std::vector<int64_t> idx(shape.size(), 0);
        for (int64_t flat = 0; flat < n; ++flat) {
            Env env;
            for (size_t d = 0; d < shape.size(); ++d) env[op->axis[d].var().get()] = static_cast<double>(idx[d]);
            out[static_cast<size_t>(flat)] = eval(op->body, env);
            for (size_t d = shape.size(); d-- > 0;)
                if (++idx[d] < shape[d])
                    break;
                else
                    idx[d] = 0;
        }
        return memo_.emplace(op.get(), std::move(out)).first->second;
    }

    static std::vector<int64_t> dims(const kiln::OpPtr& op) {
        std::vector<int64_t> s;
        for (auto& d : op->shape) s.push_back(*kiln::as_const_int(d));
        return s;
    }

private:
    using Env = std::unordered_map<const kiln::VarNode*, double>;
    std::unordered_map<const kiln::OperationNode*, std::vector<double>> memo_;

    static double as_type(double v, kiln::Type t) {
        if (t.is_float()) return t.bits == 32 ? static_cast<double>(static_cast<float>(v)) : v;
        return std::trunc(v);
    }

    double eval(const Expr& e, Env& env) {
        switch (e.kind()) {
            case ExprKind::IntImm: return static_cast<double>(e.as<kiln::IntImm>()->value);
            case ExprKind::FloatImm: return e.as<kiln::FloatImm>()->value;
            case ExprKind::Var: return env.at(e.as<kiln::VarNode>());
            case ExprKind::Cast: return as_type(eval(e.as<kiln::Cast>()->value, env), e.type());
            case ExprKind::Not: return eval(e.as<kiln::Not>()->a, env) == 0 ? 1 : 0;
            case ExprKind::Select: {
                auto* s = e.as<kiln::Select>();
                const double t = eval(s->t, env), f = eval(s->f, env);  // both arms, as select means
                return eval(s->cond, env) != 0 ? t : f;
            }
            case ExprKind::Let: {
                auto* l = e.as<kiln::Let>();
                env[l->var.get()] = eval(l->value, env);
                return eval(l->body, env);
            }
            case ExprKind::Call: return call(e.as<kiln::Call>(), env);
            case ExprKind::Reduce: return reduce(e.as<kiln::Reduce>(), env);
            default: break;
        }
        auto* b = dynamic_cast<const kiln::BinaryNode*>(e.get());
        if (!b) throw std::runtime_error("interpreter: unsupported expression " + kiln::to_string(e));
        const double x = eval(b->a, env), y = eval(b->b, env);
        const bool is_float = b->a.type().is_float();
        switch (e.kind()) {
            case ExprKind::Add: return x + y;
            case ExprKind::Sub: return x - y;
            case ExprKind::Mul: return x * y;
            case ExprKind::Div: return is_float ? x / y : (y == 0 ? 0 : std::floor(x / y));
            case ExprKind::Mod: return is_float ? std::fmod(x, y) : (y == 0 ? 0 : x - std::floor(x / y) * y);
            case ExprKind::Min: return std::min(x, y);
            case ExprKind::Max: return std::max(x, y);
            case ExprKind::EQ: return x == y;
            case ExprKind::NE: return x != y;
            case ExprKind::LT: return x < y;
            case ExprKind::LE: return x <= y;
            case ExprKind::GT: return x > y;
            case ExprKind::GE: return x >= y;
            case ExprKind::And: return x != 0 && y != 0;
            case ExprKind::Or: return x != 0 || y != 0;
            default: throw std::runtime_error("interpreter: unsupported operator in " + kiln::to_string(e));
        }
    }

    double call(const kiln::Call* c, Env& env) {
        using kiln::Intrinsic;
        if (c->op == Intrinsic::TensorAccess) {
            const auto& v = values(c->producer);
            const auto shape = dims(c->producer);
            int64_t flat = 0;
            for (size_t d = 0; d < shape.size(); ++d) {
                const auto i = static_cast<int64_t>(eval(c->args[d], env));
                if (i < 0 || i >= shape[d])
                    throw std::runtime_error("interpreter: " + c->producer->name + " read out of range");
                flat = flat * shape[d] + i;
            }
            return v[static_cast<size_t>(flat)];
        }
        if (c->op == Intrinsic::IfThenElse)
            return eval(c->args[0], env) != 0 ? eval(c->args[1], env) : eval(c->args[2], env);
        const double x = eval(c->args[0], env);
        switch (c->op) {
            case Intrinsic::Likely: return x;
            case Intrinsic::Exp: return std::exp(x);
            case Intrinsic::Log: return std::log(x);
            case Intrinsic::Sqrt: return std::sqrt(x);
            case Intrinsic::Rsqrt: return 1 / std::sqrt(x);
            case Intrinsic::Tanh: return std::tanh(x);
            case Intrinsic::Sigmoid: return 1 / (1 + std::exp(-x));
            case Intrinsic::Erf: return std::erf(x);
            case Intrinsic::Abs: return std::abs(x);
            case Intrinsic::Floor: return std::floor(x);
            case Intrinsic::Ceil: return std::ceil(x);
            case Intrinsic::Round: return std::nearbyint(x);
            case Intrinsic::Pow: return std::pow(x, eval(c->args[1], env));
            case Intrinsic::Fma: return x * eval(c->args[1], env) + eval(c->args[2], env);
            default: throw std::runtime_error("interpreter: unsupported call");
        }
    }

    double reduce(const kiln::Reduce* r, Env& env) {
        double acc = eval(r->combiner->identity, env);
        std::vector<int64_t> lo, ext;
        for (auto& a : r->axis) {
            lo.push_back(*kiln::as_const_int(a.dom().min));
            ext.push_back(*kiln::as_const_int(a.dom().extent));
        }
        std::vector<int64_t> at(r->axis.size(), 0);
        for (;;) {
            for (size_t d = 0; d < at.size(); ++d) env[r->axis[d].var().get()] = static_cast<double>(lo[d] + at[d]);
            if (!r->condition.defined() || eval(r->condition, env) != 0) {
                const double v = eval(r->source, env);
                env[r->combiner->lhs.get()] = acc;
                env[r->combiner->rhs.get()] = v;
                acc = eval(r->combiner->combine, env);
            }
            size_t d = at.size();
            while (d-- > 0) {
                if (++at[d] < ext[d]) break;
                at[d] = 0;
            }
            if (d == static_cast<size_t>(-1)) break;
        }
        return acc;
    }
};

}  // namespace fuzz
