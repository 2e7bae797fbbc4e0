#pragma once
// Loop IR to portable C99: the C source backend (the TVM lesson's microTVM path, and the way to machines
// LLVM's JIT does not reach). A kernel becomes
//     void NAME(void** args, int64_t* sizes)
// (the JIT's packed convention, so the runtime calls either alike) around a static function whose buffer
// arguments are `restrict`. Vector IR is printed lane by lane as short loops over a lane index, which C
// compilers vectorise again; a vector store whose value reads the buffer it writes goes through a
// temporary, so every lane reads before any writes, as a vector instruction does. Parallel loops carry
// `#pragma omp parallel for` (serial where OpenMP is off); scratch buffers are local arrays when small
// and malloc'd otherwise. Integer division and modulo keep kiln's semantics (floor; x / 0 == 0) through
// helpers in the prelude. No LLVM here.
#include <cctype>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "kiln/ir/visitor.hpp"
#include "kiln/lower/lower.hpp"

namespace kiln::codegen {

// The helpers kiln's generated code calls for what C-family languages spell differently from kiln, written
// once for C, OpenCL C and CUDA C: each language's prelude defines KILN_INLINE (how a helper function is
// declared) and KILN_F64 (whether doubles are available) before them.
inline const char* c_family_helpers() {
    return R"(/* Integer division and modulo rounding towards negative infinity, as kiln defines them; x / 0 and x % 0
 * are 0 (C and ONNX leave them undefined; a CPU traps). */
#define KILN_FLOOR_DIV_MOD(T, S)                                                            \
    KILN_INLINE T kiln_div_##S(T a, T b) {                                                  \
        if (b == 0) return 0;                                                               \
        if (b == -1) return (T)(0 - a);                                                     \
        T q = (T)(a / b), r = (T)(a % b);                                                   \
        return (T)(q - ((r != 0) && ((r < 0) != (b < 0))));                                 \
    }                                                                                       \
    KILN_INLINE T kiln_mod_##S(T a, T b) {                                                  \
        if (b == 0 || b == -1) return 0;                                                    \
        T r = (T)(a % b);                                                                   \
        return (T)(r + (((r != 0) && ((r < 0) != (b < 0))) ? b : 0));                       \
    }
KILN_FLOOR_DIV_MOD(int8_t, i8)
KILN_FLOOR_DIV_MOD(int16_t, i16)
KILN_FLOOR_DIV_MOD(int32_t, i32)
KILN_FLOOR_DIV_MOD(int64_t, i64)
#define KILN_UNSIGNED_DIV_MOD(T, S)                                                         \
    KILN_INLINE T kiln_div_##S(T a, T b) { return b == 0 ? 0 : (T)(a / b); }                \
    KILN_INLINE T kiln_mod_##S(T a, T b) { return b == 0 ? 0 : (T)(a % b); }
KILN_UNSIGNED_DIV_MOD(uint8_t, u8)
KILN_UNSIGNED_DIV_MOD(uint16_t, u16)
KILN_UNSIGNED_DIV_MOD(uint32_t, u32)
KILN_UNSIGNED_DIV_MOD(uint64_t, u64)
/* Functions rather than macros, so nested minima evaluate each operand once. */
#define KILN_MIN_MAX(T, S)                                                                  \
    KILN_INLINE T kiln_min_##S(T a, T b) { return a < b ? a : b; }                          \
    KILN_INLINE T kiln_max_##S(T a, T b) { return a > b ? a : b; }
/* Floats: a NaN operand gives NaN, as ONNX's Max, Min and Relu and IEEE 754-2019's maximum do. */
#define KILN_FLOAT_MIN_MAX(T, S)                                                            \
    KILN_INLINE T kiln_min_##S(T a, T b) { return a != a ? a : (a < b ? a : b); }           \
    KILN_INLINE T kiln_max_##S(T a, T b) { return a != a ? a : (a > b ? a : b); }
KILN_FLOAT_MIN_MAX(float, f32)
KILN_MIN_MAX(int8_t, i8)
KILN_MIN_MAX(int16_t, i16)
KILN_MIN_MAX(int32_t, i32)
KILN_MIN_MAX(int64_t, i64)
KILN_MIN_MAX(uint8_t, u8)
KILN_MIN_MAX(uint16_t, u16)
KILN_MIN_MAX(uint32_t, u32)
KILN_MIN_MAX(uint64_t, u64)
/* The same bits read as another type of the same width (a union: C99, OpenCL C and CUDA all allow it). */
#define KILN_REINTERPRET(F, FS, T, TS) \
    KILN_INLINE T kiln_bits_##FS##_##TS(F x) { union { F from; T to; } u; u.from = x; return u.to; }
KILN_REINTERPRET(float, f32, int32_t, i32)
KILN_REINTERPRET(int32_t, i32, float, f32)
KILN_REINTERPRET(float, f32, uint32_t, u32)
KILN_REINTERPRET(uint32_t, u32, float, f32)
KILN_INLINE float kiln_fmod_floor_f32(float a, float b) { return a - floorf(a / b) * b; }
KILN_INLINE float kiln_sigmoid_f32(float x) { return 1.0f / (1.0f + expf(-x)); }
#if KILN_F64
KILN_FLOAT_MIN_MAX(double, f64)
KILN_REINTERPRET(double, f64, int64_t, i64)
KILN_REINTERPRET(int64_t, i64, double, f64)
KILN_REINTERPRET(double, f64, uint64_t, u64)
KILN_REINTERPRET(uint64_t, u64, double, f64)
KILN_INLINE double kiln_fmod_floor_f64(double a, double b) { return a - floor(a / b) * b; }
KILN_INLINE double kiln_sigmoid_f64(double x) { return 1.0 / (1.0 + exp(-x)); }
#endif
)";
}

// What every C file kiln writes starts with: headers, then the helpers.
inline std::string c_prelude() {
    return std::string(R"(#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KILN_INLINE static inline
#define KILN_F64 1
)") + c_family_helpers();
}

class CodeGenC {
public:
    virtual ~CodeGenC() = default;

    // Appends the kernel `symbol` (and its static helpers) to the source.
    void compile(const LoweredFunc& f, const std::string& symbol) {
        check_types(f, "C");
        std::vector<std::pair<Var, Type>> buffers;
        for (auto& a : f.args) buffers.push_back({a.buffer, a.op->dtype});
        const std::string params = bind_params(buffers, f.size_vars, "");
        out_ << "static void " << symbol << "_impl(" << (params.empty() ? "void" : params) << ") {\n"
             << print_body(f.body) << "}\n\n";
        out_ << "void " << symbol << "(void** args, int64_t* sizes) {\n    " << symbol << "_impl(";
        for (size_t i = 0; i < f.args.size(); ++i)
            out_ << (i ? ", " : "") << "(" << storage_type(f.args[i].op->dtype) << "*)args[" << i << "]";
        for (size_t j = 0; j < f.size_vars.size(); ++j)
            out_ << (f.args.empty() && j == 0 ? "" : ", ") << "(" << scalar_type(f.size_vars[j].type()) << ")sizes["
                 << j << "]";
        out_ << ");\n    (void)sizes;\n}\n\n";
        forget_bindings();
    }

    std::string source() const { return out_.str(); }

    static std::string scalar_type(Type t) {
        switch (t.code) {
            case TypeCode::Bool: return "int";
            case TypeCode::Int: return "int" + std::to_string(t.bits) + "_t";
            case TypeCode::UInt: return "uint" + std::to_string(t.bits) + "_t";
            case TypeCode::Float: return t.bits == 64 ? "double" : "float";
            case TypeCode::Handle: return "void*";
        }
        return "void";
    }
    // Booleans are stored as bytes.
    static std::string storage_type(Type t) {
        return t.element_of().is_bool() ? "uint8_t" : scalar_type(t.element_of());
    }

protected:
    // C-family languages have no f16 arithmetic without extensions kiln does not use.
    static void check_types(const LoweredFunc& f, const std::string& backend) {
        for (auto& a : f.args)
            if (a.op->dtype.bits == 16 && a.op->dtype.is_float())
                kiln::detail::fail("build: the ", backend, " backend does not handle f16 tensors ('", a.op->name,
                                   "' of '", f.name, "'); use the llvm target");
    }

    // A kernel's parameters, pointers to its buffers (each `pointer_prefix T* restrict name`) then its sizes,
    // with their names bound for the body.
    std::string bind_params(const std::vector<std::pair<Var, Type>>& buffers, const std::vector<Var>& sizes,
                            const std::string& pointer_prefix) {
        std::string params;
        for (auto& [buf, t] : buffers)
            params += (params.empty() ? "" : ", ") + pointer_prefix + storage_type(t) + "* restrict " +
                      bind_buffer(buf, t);
        for (auto& v : sizes) params += (params.empty() ? "" : ", ") + scalar_type(v.type()) + " " + bind_var(v);
        return params;
    }
    std::string print_body(const Stmt& s) {
        indent_ = 1;
        body_.str("");
        print(s);
        return body_.str();
    }
    void forget_bindings() {
        vars_.clear();
        buffers_.clear();
    }

    struct Binding {
        std::string name;
        bool per_lane = false;  // a vector held as an array, read as name[lane]
    };

    std::string unique(const std::string& base) {
        std::string s;
        for (char c : base) s += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
        if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) s = "v" + s;
        return s + "_" + std::to_string(counter_++);
    }
    std::string bind_var(const Var& v, bool per_lane = false) {
        Binding b{unique(v.name()), per_lane};
        vars_[v.get()] = b;
        return b.name;
    }
    std::string bind_buffer(const Var& buf, Type t) {
        const std::string name = unique(buf.name());
        buffers_[buf.get()] = {name, t};
        return name;
    }
    const std::string& buffer_name(const Var& buf) const {
        auto it = buffers_.find(buf.get());
        if (it == buffers_.end()) kiln::detail::internal_fail("the C backend met unknown buffer '", buf.name(), "'");
        return it->second.first;
    }

    // ---- expressions: `lane` names the lane index inside a lane loop, or is empty for scalar code ----

    static std::string suffix(Type t) { return (t.is_float() ? "f" : t.is_int() ? "i" : "u") + std::to_string(t.bits); }

    static std::string literal(Type t, double fv, int64_t iv, bool is_float) {
        char buf[64];
        if (t.is_float()) {
            const double v = is_float ? fv : static_cast<double>(iv);
            if (std::isnan(v)) return t.bits == 64 ? "((double)NAN)" : "((float)NAN)";
            if (std::isinf(v))
                return std::string(v < 0 ? "(-" : "(") + (t.bits == 64 ? "(double)INFINITY)" : "INFINITY)");
            std::snprintf(buf, sizeof buf, "%a", t.bits == 64 ? v : static_cast<double>(static_cast<float>(v)));
            return std::string(buf) + (t.bits == 64 ? "" : "f");
        }
        if (t.is_bool()) return iv ? "1" : "0";
        // Plain decimals for 32-bit ints (C's int); suffixes or casts where the width must show.
        if (t.is_int() && t.bits <= 32) return iv == INT32_MIN ? "(-2147483647 - 1)" : std::to_string(iv);
        if (t.is_uint() && t.bits <= 32) return std::to_string(static_cast<uint64_t>(iv)) + "u";
        if (t.is_uint()) return "UINT64_C(" + std::to_string(static_cast<uint64_t>(iv)) + ")";
        return iv == INT64_MIN ? "INT64_MIN" : "INT64_C(" + std::to_string(iv) + ")";
    }

    std::string expr(const Expr& e, const std::string& lane) {
        const Type t = e.type();
        switch (e.kind()) {
            case ExprKind::IntImm: return literal(t, 0, e.as<IntImm>()->value, false);
            case ExprKind::FloatImm: return literal(t, e.as<FloatImm>()->value, 0, true);
            case ExprKind::Var: {
                auto it = vars_.find(e.as<VarNode>());
                if (it == vars_.end())
                    kiln::detail::internal_fail("the C backend met unbound variable '", e.as<VarNode>()->name, "'");
                return it->second.per_lane ? it->second.name + "[" + lane + "]" : it->second.name;
            }
            case ExprKind::Not: return "(!" + expr(e.as<Not>()->a, lane) + ")";
            case ExprKind::Select: {
                auto* n = e.as<Select>();
                return lazy(n->cond, n->t, n->f, lane);
            }
            case ExprKind::Cast: {
                auto* n = e.as<Cast>();
                const std::string v = expr(n->value, lane);
                if (t.is_bool()) return "(" + v + " != 0)";
                return "((" + scalar_type(t.element_of()) + ")" + v + ")";
            }
            case ExprKind::Ramp: {
                auto* n = e.as<Ramp>();
                const std::string step = is_const_int(n->stride, 1) ? lane : expr(n->stride, "") + " * " + lane;
                return "(" + expr(n->base, "") + " + " + step + ")";
            }
            case ExprKind::Broadcast: return expr(e.as<Broadcast>()->value, "");
            case ExprKind::Load: {
                auto* n = e.as<Load>();
                if (!n->predicate.defined()) return element(n, lane);
                const std::string predicate = expr(n->predicate, lane);
                ++conditional_;
                const std::string v = element(n, lane);
                --conditional_;
                return "(" + predicate + " ? " + v + " : 0)";
            }
            case ExprKind::Let: {
                // C99 has no expression that binds a name, so the binding is hoisted in front of the statement
                // being printed. Inside one side of a conditional only the declaration is hoisted and the value
                // assigned where it stood, `(x = value, body)`: evaluating it (a load, perhaps out of bounds) on
                // the side not taken would be wrong, and substituting it would repeat it at every use.
                auto* n = e.as<Let>();
                const std::string value = expr(n->value, lane);
                const std::string name = bind_var(n->var);
                const std::string type = scalar_type(n->value.type().element_of());
                if (conditional_ == 0) {
                    pending_.push_back(type + " " + name + " = " + value + ";");
                    return expr(n->body, lane);
                }
                pending_.push_back(type + " " + name + ";");
                return "(" + name + " = " + value + ", " + expr(n->body, lane) + ")";
            }
            case ExprKind::Call: return call(e.as<Call>(), lane);
            case ExprKind::Reduce: kiln::detail::internal_fail("a reduction reached the C backend");
            case ExprKind::Shuffle: {
                // Lane `lane` of the result is lane k of the concatenation, k from a table; it names its
                // source vector and the lane in it.
                auto* n = e.as<Shuffle>();
                const int width = n->vectors[0].type().lanes;
                std::string table = "((const int[]){";
                for (size_t i = 0; i < n->indices.size(); ++i) table += (i ? ", " : "") + std::to_string(n->indices[i]);
                const std::string k = table + "})[" + (lane.empty() ? "0" : lane) + "]";
                std::string out = expr(n->vectors.back(),
                                       "(" + k + " - " + std::to_string(width * (n->vectors.size() - 1)) + ")");
                for (size_t v = n->vectors.size() - 1; v-- > 0;)
                    out = "(" + k + " < " + std::to_string(width * (v + 1)) + " ? " +
                          expr(n->vectors[v], "(" + k + " - " + std::to_string(width * v) + ")") + " : " + out + ")";
                return out;
            }
            default: return binary(static_cast<const BinaryNode*>(e.get()), lane);
        }
    }

    // `c ? t : f`, which evaluates only the side taken, as the JIT's branches do.
    std::string lazy(const Expr& c, const Expr& t, const Expr& f, const std::string& lane) {
        const std::string cond = expr(c, lane);
        ++conditional_;
        const std::string a = expr(t, lane), b = expr(f, lane);
        --conditional_;
        return "(" + cond + " ? " + a + " : " + b + ")";
    }

    std::string element(const Load* n, const std::string& lane) {
        const std::string v = buffer_name(n->buffer) + "[" + expr(n->index, lane) + "]";
        return n->type.element_of().is_bool() ? "(" + v + " != 0)" : v;
    }

    std::string binary(const BinaryNode* n, const std::string& lane) {
        const Type t = n->a.type().element_of();
        const std::string a = expr(n->a, lane), b = expr(n->b, lane);
        // C computes narrow integers as int; kiln's (like LLVM's) wrap at their width.
        auto narrow = [&](const std::string& v) {
            return t.is_integer() && t.bits < 32 ? "((" + scalar_type(t) + ")" + v + ")" : v;
        };
        switch (n->kind) {
            case ExprKind::Add: return narrow("(" + a + " + " + b + ")");
            case ExprKind::Sub: return narrow("(" + a + " - " + b + ")");
            case ExprKind::Mul: return narrow("(" + a + " * " + b + ")");
            case ExprKind::Div:
                if (t.is_float()) return "(" + a + " / " + b + ")";
                return "kiln_div_" + suffix(t) + "(" + a + ", " + b + ")";
            case ExprKind::Mod:
                if (t.is_float()) return "kiln_fmod_floor_" + suffix(t) + "(" + a + ", " + b + ")";
                return "kiln_mod_" + suffix(t) + "(" + a + ", " + b + ")";
            case ExprKind::Min: return "kiln_min_" + suffix(t) + "(" + a + ", " + b + ")";
            case ExprKind::Max: return "kiln_max_" + suffix(t) + "(" + a + ", " + b + ")";
            case ExprKind::EQ: return "(" + a + " == " + b + ")";
            case ExprKind::NE: return "(" + a + " != " + b + ")";
            case ExprKind::LT: return "(" + a + " < " + b + ")";
            case ExprKind::LE: return "(" + a + " <= " + b + ")";
            case ExprKind::GT: return "(" + a + " > " + b + ")";
            case ExprKind::GE: return "(" + a + " >= " + b + ")";
            case ExprKind::And: return "(" + a + " && " + b + ")";
            case ExprKind::Or: return "(" + a + " || " + b + ")";
            default: kiln::detail::internal_fail("unknown binary operator in the C backend");
        }
    }

    std::string call(const Call* n, const std::string& lane) {
        const Type t = n->type.element_of();
        const bool f64 = t.is_float() && t.bits == 64;
        auto math = [&](const char* name) {
            return std::string(name) + (f64 ? "" : "f") + "(" + expr(n->args[0], lane) + ")";
        };
        switch (n->op) {
            case Intrinsic::Exp: return math("exp");
            case Intrinsic::Log: return math("log");
            case Intrinsic::Sqrt: return math("sqrt");
            case Intrinsic::Abs: return math("fabs");
            case Intrinsic::Floor: return math("floor");
            case Intrinsic::Ceil: return math("ceil");
            case Intrinsic::Round:
                return math("nearbyint");  // to nearest even in the default rounding mode, as roundeven
            case Intrinsic::Tanh: return math("tanh");
            case Intrinsic::Erf: return math("erf");
            case Intrinsic::Rsqrt: return std::string(f64 ? "(1.0 / " : "(1.0f / ") + math("sqrt") + ")";
            case Intrinsic::Sigmoid: return "kiln_sigmoid_" + suffix(t) + "(" + expr(n->args[0], lane) + ")";
            case Intrinsic::Pow:
                return std::string(f64 ? "pow(" : "powf(") + expr(n->args[0], lane) + ", " + expr(n->args[1], lane) +
                       ")";
            case Intrinsic::Fma:
                return std::string(f64 ? "fma(" : "fmaf(") + expr(n->args[0], lane) + ", " + expr(n->args[1], lane) +
                       ", " + expr(n->args[2], lane) + ")";
            case Intrinsic::Reinterpret:
                return "kiln_bits_" + suffix(n->args[0].type().element_of()) + "_" + suffix(t) + "(" +
                       expr(n->args[0], lane) + ")";
            case Intrinsic::Likely: return expr(n->args[0], lane);
            case Intrinsic::Barrier: kiln::detail::internal_fail("a GPU barrier reached the C backend");
            case Intrinsic::IfThenElse: return lazy(n->args[0], n->args[1], n->args[2], lane);
            case Intrinsic::TensorAccess: kiln::detail::internal_fail("a tensor access reached the C backend");
        }
        return "";
    }

    // ---- statements ----

    void line(const std::string& s) { body_ << std::string(4 * indent_, ' ') << s << "\n"; }
    void flush_pending() {
        for (auto& p : pending_) line(p);
        pending_.clear();
    }

    static bool reads_buffer(const Expr& e, const Var& buf) {
        bool found = false;
        post_order_visit(e, [&](const Expr& x) {
            if (auto* l = x.as<Load>()) found |= l->buffer.get() == buf.get();
        });
        return found;
    }

    void print(const Stmt& s) {
        switch (s.kind()) {
            case StmtKind::LetStmt: {
                auto* n = s.as<LetStmt>();
                line("{");
                ++indent_;
                const Type t = n->value.type();
                if (t.is_scalar()) {
                    const std::string v = expr(n->value, "");
                    flush_pending();
                    line(scalar_type(t) + " " + bind_var(n->var) + " = " + v + ";");
                } else {
                    const std::string name = unique(n->var.name());
                    line(scalar_type(t.element_of()) + " " + name + "[" + std::to_string(t.lanes) + "];");
                    lane_loop(t.lanes,
                              [&](const std::string& l) { return name + "[" + l + "] = " + expr(n->value, l) + ";"; });
                    vars_[n->var.get()] = {name, true};
                }
                print(n->body);
                --indent_;
                line("}");
                return;
            }
            case StmtKind::For: return print_for(s.as<For>());
            case StmtKind::Store: return print_store(s.as<Store>());
            case StmtKind::Allocate: return print_allocate(s.as<Allocate>());
            case StmtKind::IfThenElse: {
                auto* n = s.as<IfThenElse>();
                const std::string c = expr(n->cond, "");
                flush_pending();
                line("if (" + c + ") {");
                ++indent_;
                print(n->then_case);
                --indent_;
                if (n->else_case.defined()) {
                    line("} else {");
                    ++indent_;
                    print(n->else_case);
                    --indent_;
                }
                line("}");
                return;
            }
            case StmtKind::Block:
                for (auto& c : s.as<Block>()->stmts) print(c);
                return;
            case StmtKind::Evaluate: return print_evaluate(s.as<Evaluate>());
            case StmtKind::Provide:
            case StmtKind::Realize:
                kiln::detail::internal_fail("an unflattened tensor statement reached the C backend");
        }
    }

    // `for (int lane = 0; lane < lanes; ++lane) { <let bindings> <statement> }`
    template <typename F> void lane_loop(int lanes, F&& statement) {
        const std::string l = "lane_" + std::to_string(counter_++);
        line("for (int " + l + " = 0; " + l + " < " + std::to_string(lanes) + "; ++" + l + ") {");
        ++indent_;
        const std::string s = statement(l);
        flush_pending();
        line(s);
        --indent_;
        line("}");
    }

    // A value computed for nothing: in C, nothing to print.
    virtual void print_evaluate(const Evaluate*) {}

    virtual void print_for(const For* n) {
        const std::string type = scalar_type(n->var.type());
        const std::string lo = expr(n->min, ""), extent = expr(n->extent, "");
        flush_pending();
        const std::string var = bind_var(n->var);
        const std::string end = var + "_end";
        line("{");
        ++indent_;
        line("const " + type + " " + end + " = " + lo + " + " + extent + ";");
        if (n->for_kind == ForKind::Parallel) body_ << "#pragma omp parallel for schedule(static)\n";
        line("for (" + type + " " + var + " = " + lo + "; " + var + " < " + end + "; ++" + var + ") {");
        ++indent_;
        print(n->body);
        --indent_;
        line("}");
        --indent_;
        line("}");
    }

    void print_store(const Store* n) {
        const Type t = n->value.type();
        const std::string buf = buffer_name(n->buffer);
        const bool as_bool = t.element_of().is_bool();
        auto stored = [&](const std::string& v) { return as_bool ? "(uint8_t)(" + v + ")" : v; };
        if (t.is_scalar()) {
            const std::string index = expr(n->index, ""), value = expr(n->value, "");
            flush_pending();
            line(buf + "[" + index + "] = " + stored(value) + ";");
            return;
        }
        auto guarded = [&](const std::string& l, const std::string& assignment) {
            return n->predicate.defined() ? "if (" + expr(n->predicate, l) + ") " + assignment : assignment;
        };
        if (!reads_buffer(n->value, n->buffer)) {
            lane_loop(t.lanes, [&](const std::string& l) {
                return guarded(l, buf + "[" + expr(n->index, l) + "] = " + stored(expr(n->value, l)) + ";");
            });
            return;
        }
        line("{");
        ++indent_;
        const std::string tmp = unique("value");
        line(scalar_type(t.element_of()) + " " + tmp + "[" + std::to_string(t.lanes) + "];");
        lane_loop(t.lanes, [&](const std::string& l) { return tmp + "[" + l + "] = " + expr(n->value, l) + ";"; });
        lane_loop(t.lanes, [&](const std::string& l) {
            return guarded(l, buf + "[" + expr(n->index, l) + "] = " + stored(tmp + "[" + l + "]") + ";");
        });
        --indent_;
        line("}");
    }

    virtual void print_allocate(const Allocate* n) {
        Expr total = n->extents[0];
        for (size_t i = 1; i < n->extents.size(); ++i) total = total * n->extents[i];
        const std::string type = storage_type(n->dtype);
        const std::string count = expr(total, "");
        flush_pending();
        line("{");
        ++indent_;
        const std::string name = bind_buffer(n->buffer, n->dtype);
        auto* c = as_const_int(total);
        const bool on_stack = c && *c * std::max(1, n->dtype.bytes()) <= 64 * 1024;
        if (on_stack)
            line(type + " " + name + "[" + std::to_string(std::max<int64_t>(*c, 1)) + "];");
        else
            line(type + "* restrict " + name + " = (" + type + "*)malloc((size_t)(" + count + ") * sizeof(" + type +
                 "));");
        print(n->body);
        if (!on_stack) line("free(" + name + ");");
        --indent_;
        line("}");
    }

    std::ostringstream out_, body_;
    int indent_ = 0;
    int counter_ = 0;
    int conditional_ = 0;  // inside one side of a conditional expression
    std::vector<std::string> pending_;
    std::unordered_map<const VarNode*, Binding> vars_;
    std::unordered_map<const VarNode*, std::pair<std::string, Type>> buffers_;
};

// One kernel as a C file of its own: the prelude, then `void symbol(void** args, int64_t* sizes)`.
inline std::string emit_c(const LoweredFunc& f, const std::string& symbol) {
    CodeGenC cg;
    cg.compile(f, symbol);
    return std::string(c_prelude()) + "\n" + cg.source();
}

}  // namespace kiln::codegen
