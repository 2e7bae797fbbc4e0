// The f32 math functions of math lowering (lower/lower_math.hpp), against double-precision libm rounded to
// f32: the error bounds docs/schedule_primitives.md states, over a spread of the whole float range, with
// libm's special values, and vectorised code with no libm call left in it.
#include <bit>
#include <cmath>
#include <functional>
#include <limits>

#include "helpers.hpp"

using namespace kiln;

namespace {

// The distance in units in the last place between two floats of the same sign class, counting across
// zero and through the denormals.
int64_t ulp_distance(float a, float b) {
    auto ordered = [](float f) {
        const int32_t i = std::bit_cast<int32_t>(f);
        return i < 0 ? int64_t{std::numeric_limits<int32_t>::min()} - i : int64_t{i};
    };
    return std::abs(ordered(a) - ordered(b));
}

// Every 509th bit pattern (finite values of both signs, denormals included), then the special values.
std::vector<float> inputs() {
    std::vector<float> v;
    for (uint64_t bits = 0; bits < (uint64_t{1} << 32); bits += 509) {
        const float f = std::bit_cast<float>(static_cast<uint32_t>(bits));
        if (std::isfinite(f)) v.push_back(f);
    }
    const float inf = std::numeric_limits<float>::infinity();
    for (float f : {0.f,
                    -0.f,
                    inf,
                    -inf,
                    std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::denorm_min(),
                    -std::numeric_limits<float>::denorm_min(),
                    std::numeric_limits<float>::min(),
                    std::numeric_limits<float>::max(),
                    -std::numeric_limits<float>::max(),
                    1.f,
                    -1.f,
                    88.7f,
                    88.73f,
                    -87.3f,
                    -103.9f,
                    -104.f,
                    0.625f,
                    -0.625f,
                    4.f,
                    -4.f})
        v.push_back(f);
    return v;
}

struct Accuracy {
    int64_t max_ulp = 0;
    float worst_input = 0;
    int special_mismatches = 0;
};

// Runs y = f(x) as a kernel vectorised by 16 (with a tail) over `xs`.
Accuracy measure(const std::function<Expr(Expr)>& f, const std::function<double(double)>& reference,
                 const std::vector<float>& xs, std::string* llvm_ir = nullptr) {
    const int n = static_cast<int>(xs.size());
    auto X = placeholder({n}, f32, "X");
    auto Y = compute(
            {n}, [&](Expr i) { return f(X(i)); }, "Y");
    Schedule s(Y);
    auto [o, in] = s[Y].split(Y.axis(0), 16);
    s[Y].vectorize(in);
    auto k = build(s, {X, Y}, {.keep_llvm_ir = llvm_ir != nullptr});
    if (llvm_ir) *llvm_ir = k.llvm_ir();
    Buffer x({n}, f32), y({n}, f32);
    std::copy(xs.begin(), xs.end(), x.data_as<float>());
    k(x, y);
    Accuracy acc;
    for (int i = 0; i < n; ++i) {
        const float want = static_cast<float>(reference(xs[i])), got = y.data_as<float>()[i];
        if (!std::isfinite(want) || !std::isfinite(got)) {
            const bool same = (std::isnan(want) && std::isnan(got)) || want == got;
            if (!same) {
                ++acc.special_mismatches;
                MESSAGE("f(", xs[i], ") = ", got, ", libm gives ", want);
            }
            continue;
        }
        const int64_t d = ulp_distance(got, want);
        if (d > acc.max_ulp) acc.max_ulp = d, acc.worst_input = xs[i];
    }
    return acc;
}

double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double exp_ref(double x) { return std::exp(x); }
double log_ref(double x) { return std::log(x); }
double tanh_ref(double x) { return std::tanh(x); }
double erf_ref(double x) { return std::erf(x); }

}  // namespace

TEST_CASE("math lowering: exp, log, tanh, sigmoid and erf within their stated ulp bounds over the float range") {
    const std::vector<float> xs = inputs();
    struct Case {
        const char* name;
        std::function<Expr(Expr)> f;
        double (*reference)(double);
        int64_t bound;
    };
    const Case cases[] = {
            {"exp", [](Expr x) { return kiln::exp(x); }, exp_ref, 1},
            {"log", [](Expr x) { return kiln::log(x); }, log_ref, 1},
            {"tanh", [](Expr x) { return kiln::tanh(x); }, tanh_ref, 2},
            {"sigmoid", [](Expr x) { return kiln::sigmoid(x); }, sigmoid_ref, 2},
            {"erf", [](Expr x) { return kiln::erf(x); }, erf_ref, 5},
    };
    for (const Case& c : cases) {
        const std::string name = c.name;
        CAPTURE(name);
        std::string ir;
        const Accuracy acc = measure(c.f, c.reference, xs, &ir);
        MESSAGE(std::string(c.name), ": at most ", acc.max_ulp, " ulp (at ", acc.worst_input, ")");
        CHECK(acc.max_ulp <= c.bound);
        CHECK(acc.special_mismatches == 0);
        // Vector code throughout: no call to libm, no LLVM math intrinsic that would become one.
        CHECK(ir.find("@expf") == std::string::npos);
        CHECK(ir.find("@llvm.exp.") == std::string::npos);
        CHECK(ir.find("@llvm.log.") == std::string::npos);
        CHECK(ir.find("@tanhf") == std::string::npos);
        CHECK(ir.find("@erff") == std::string::npos);
        CHECK(ir.find("<16 x float>") != std::string::npos);
    }
}

TEST_CASE("math lowering: pow by a small constant exponent is products, a reciprocal or a square root") {
    const std::vector<float> xs = {0.f,
                                   -0.f,
                                   1.5f,
                                   -2.25f,
                                   3.f,
                                   1e-20f,
                                   -7e15f,
                                   std::numeric_limits<float>::infinity(),
                                   -std::numeric_limits<float>::infinity(),
                                   std::numeric_limits<float>::quiet_NaN(),
                                   0.3f,
                                   17.f,
                                   -0.1f};
    for (double e : {0.0, 1.0, 2.0, 3.0, 4.0, -1.0, -2.0, 0.5}) {
        CAPTURE(e);
        const Accuracy acc = measure([&](Expr x) { return kiln::pow(x, make_const(f32, e)); },
                                     [&](double x) { return std::pow(x, e); }, xs);
        CHECK(acc.max_ulp <= 2);
        CHECK(acc.special_mismatches == 0);
    }
    // Any other exponent stays a pow call, exact as libm's.
    const Accuracy acc = measure([](Expr x) { return kiln::pow(kiln::abs(x), make_const(f32, 1.7)); },
                                 [](double x) { return std::pow(std::abs(x), static_cast<double>(1.7f)); }, xs);
    CHECK(acc.max_ulp <= 1);
}

TEST_CASE("math lowering: the loop IR shows the polynomial after lower_math and the call before it") {
    auto X = placeholder({37}, f32, "X");
    auto Y = compute(
            {37}, [&](Expr i) { return kiln::exp(X(i)); }, "Y");
    Schedule s(Y);
    std::ostringstream before, after;
    before << lower(s, {X, Y}, {.after = "loop_partition"});
    after << lower(s, {X, Y}, {.after = "lower_math"});
    CHECK(before.str().find("exp(") != std::string::npos);
    CHECK(after.str().find("exp(") == std::string::npos);
    CHECK(after.str().find("reinterpret<f32>(") != std::string::npos);
}
