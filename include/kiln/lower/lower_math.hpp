#pragma once
// Pass: math lowering. exp, log, tanh, sigmoid and erf of f32 (and pow with a small constant exponent)
// become arithmetic in the loop IR itself: range reduction, a polynomial, and the exponent set through the
// bits. They then vectorise with the loop around them. Left as calls, LLVM turns a vector exp into one
// libm call per lane (about 13 ns an element); these run at a few cycles per vector.
//
// Each function keeps libm's special values: NaN in gives NaN out, infinities and zeros map as libm maps
// them, denormal inputs are handled, and exp returns denormals rather than flushing them. The error bounds
// (measured over every 509th f32 bit pattern against the double-precision libm result, rounded to f32)
// are stated in docs/schedule_primitives.md, and tests/correctness/test_math.cpp holds them.
// f64 and other pow calls stay as they are, for LLVM and libm.
#include <cmath>
#include <limits>

#include "kiln/ir/analysis.hpp"

namespace kiln::passes {

namespace math {

namespace detail {

inline Expr k(const Expr& like, double v) { return make_const(like.type(), v); }

// Horner's rule, highest coefficient first.
inline Expr horner(const Expr& x, std::initializer_list<double> coefficients) {
    Expr acc;
    for (double c : coefficients) acc = acc.defined() ? acc * x + k(x, c) : k(x, c);
    return acc;
}

// Binds `value` to a fresh variable so the body can use it many times without copying the expression.
template <typename Body> Expr let(const std::string& name, const Expr& value, Body body) {
    if (value.as<VarNode>() || is_const(value)) return body(value);
    Var v(name, value.type());
    return make_expr<Let>(v, value, body(Expr(v)));
}

// 2^n for an integer-valued i32 n in [-126, 127], from the exponent field.
inline Expr exp2_int(const Expr& n) {
    const Type f = f32.with_lanes(n.type().lanes);
    return reinterpret(f, (n + make_int(n.type(), 127)) * make_int(n.type(), 1 << 23));
}

}  // namespace detail

// e^x, at most 1 ulp from the correctly rounded result.
inline Expr exp_f32(const Expr& x) {
    using namespace detail;
    return let("exp_x", x, [&](const Expr& xv) {
        // Past 89 the result is inf and below -104 it is 0; clamping keeps n where both halves of 2^n
        // below are normal numbers, so results down to the smallest denormal come out right.
        Expr xc = kiln::min(kiln::max(xv, k(xv, -104.0)), k(xv, 89.0));
        return let("exp_n", kiln::floor(xc * k(xv, 1.44269504088896341) + k(xv, 0.5)), [&](const Expr& n) {
            // Cody and Waite: ln 2 in two parts, the first with few enough bits that n * part is exact.
            Expr r = xc - n * k(xv, 0.693359375) - n * k(xv, -2.12194440e-4);
            Expr p = let("exp_r", r, [&](const Expr& rv) {
                Expr q = horner(rv, {1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                                     1.6666665459e-1, 5.0000001201e-1});
                return q * (rv * rv) + rv + k(rv, 1.0);
            });
            return let("exp_ni", cast(i32.with_lanes(n.type().lanes), n), [&](const Expr& ni) {
                Expr half = ni / make_int(ni.type(), 2);
                Expr scaled = p * exp2_int(half) * exp2_int(ni - half);
                return select(xv == xv, scaled, xv);
            });
        });
    });
}

// The natural logarithm, at most 1 ulp from the correctly rounded result.
inline Expr log_f32(const Expr& x) {
    using namespace detail;
    const Type it = i32.with_lanes(x.type().lanes);
    return let("log_x", x, [&](const Expr& xv) {
        return let("log_tiny", xv < k(xv, std::numeric_limits<float>::min()), [&](const Expr& tiny) {
            // A denormal is scaled by 2^23 into the normal range first.
            Expr scaled = select(tiny, xv * k(xv, 8388608.0), xv);
            return let("log_bits", reinterpret(it, scaled), [&](const Expr& bits) {
                // x = m * 2^e with m in [0.5, 1): the exponent field, and the mantissa given the exponent of 0.5.
                Expr m = reinterpret(xv.type(), bits % make_int(it, 1 << 23) + make_int(it, 0x3f000000));
                return let("log_m", m, [&](const Expr& mv) {
                    return let("log_low", mv < k(mv, 0.707106781186547524), [&](const Expr& low) {
                        // m in [sqrt(0.5), sqrt(2)) after moving a factor of two into e, so f = m - 1 is small.
                        Expr e = bits / make_int(it, 1 << 23) - make_int(it, 126) -
                                 select(low, make_int(it, 1), make_int(it, 0)) -
                                 select(tiny, make_int(it, 23), make_int(it, 0));
                        Expr f = select(low, mv + mv - k(mv, 1.0), mv - k(mv, 1.0));
                        return let("log_f", f, [&](const Expr& fv) {
                            return let("log_e", cast(xv.type(), e), [&](const Expr& ev) {
                                Expr z = fv * fv;
                                Expr y = fv * z *
                                         horner(fv, {7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1,
                                                     -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
                                                     2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1});
                                y = y + ev * k(xv, -2.12194440e-4) - k(xv, 0.5) * z;
                                Expr r = fv + y + ev * k(xv, 0.693359375);
                                const double inf = std::numeric_limits<double>::infinity();
                                Expr special = select(xv == k(xv, 0.0), k(xv, -inf),
                                                      k(xv, std::numeric_limits<double>::quiet_NaN()));
                                return select(xv == k(xv, inf), xv, select(xv > k(xv, 0.0), r, special));
                            });
                        });
                    });
                });
            });
        });
    });
}

// The hyperbolic tangent, at most 2 ulp from the correctly rounded result.
inline Expr tanh_f32(const Expr& x) {
    using namespace detail;
    return let("tanh_x", x, [&](const Expr& xv) {
        // Small |x|: an odd polynomial. Larger: 1 - 2 / (e^2|x| + 1), which goes to 1 as exp overflows.
        Expr z = xv * xv;
        Expr small = horner(z, {-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1,
                                -3.33332819422e-1}) *
                             z * xv +
                     xv;
        return let("tanh_a", kiln::abs(xv), [&](const Expr& a) {
            Expr big = k(xv, 1.0) - k(xv, 2.0) / (exp_f32(a + a) + k(xv, 1.0));
            return select(a < k(xv, 0.625), small, select(xv < k(xv, 0.0), -big, big));
        });
    });
}

// 1 / (1 + e^-x), at most 2 ulp from the correctly rounded result. For negative x it is computed as
// e^x / (1 + e^x), so it keeps its relative accuracy down to the denormals instead of flushing to 0.
inline Expr sigmoid_f32(const Expr& x) {
    using namespace detail;
    return let("sigmoid_x", x, [&](const Expr& xv) {
        return let("sigmoid_e", exp_f32(-kiln::abs(xv)),
                   [&](const Expr& e) { return select(xv < k(xv, 0.0), e, k(xv, 1.0)) / (k(xv, 1.0) + e); });
    });
}

// The error function, a rational function of x on [-4, 4], where it reaches 1 in f32; at most 5 ulp from
// the correctly rounded result. The coefficients are those of Eigen's and XLA's float erf.
inline Expr erf_f32(const Expr& x) {
    using namespace detail;
    return let("erf_x", kiln::min(kiln::max(x, k(x, -4.0)), k(x, 4.0)), [&](const Expr& xc) {
        return let("erf_z", xc * xc, [&](const Expr& z) {
            // x times a ratio near 2/sqrt(pi), not (x * p) / q: x * p would go denormal for the smallest x.
            Expr p = horner(z,
                            {-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
                             -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02});
            Expr q = horner(z, {-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                                -7.37332916720468e-03, -1.42647390514189e-02});
            return select(x == x, xc * (p / q), x);
        });
    });
}

// x^y where y is a small integer constant (or 1/2): products, a reciprocal or a square root, exact or
// within 1 ulp per product. Undefined when another exponent should stay a pow call.
inline Expr pow_by_constant(const Expr& x, const Expr& y) {
    auto* c = kiln::detail::const_scalar(y).as<FloatImm>();
    if (!c) return Expr();
    const double e = c->value;
    if (e == 0.5) {
        // sqrt(-inf) is NaN where pow(-inf, 0.5) is inf.
        const double inf = std::numeric_limits<double>::infinity();
        return detail::let("pow_x", x, [&](const Expr& xv) {
            return select(xv == detail::k(xv, -inf), detail::k(xv, inf), kiln::sqrt(xv));
        });
    }
    if (e != std::trunc(e) || std::abs(e) > 4) return Expr();
    if (e == 0) return detail::k(x, 1.0);
    return detail::let("pow_x", x, [&](const Expr& xv) {
        Expr p = xv;
        for (int i = 1; i < static_cast<int>(std::abs(e)); ++i) p = p * xv;
        return e > 0 ? p : detail::k(xv, 1.0) / p;
    });
}

}  // namespace math

namespace detail {

class LowerMath : public IRMutator {
public:
    using IRMutator::mutate;

protected:
    Expr mutate_call(const Call* n, const Expr& e) override {
        Expr r = IRMutator::mutate_call(n, e);
        auto* c = r.as<Call>();
        if (!c || c->type.element_of() != f32) return r;
        switch (c->op) {
            case Intrinsic::Exp: return math::exp_f32(c->args[0]);
            case Intrinsic::Log: return math::log_f32(c->args[0]);
            case Intrinsic::Tanh: return math::tanh_f32(c->args[0]);
            case Intrinsic::Sigmoid: return math::sigmoid_f32(c->args[0]);
            case Intrinsic::Erf: return math::erf_f32(c->args[0]);
            case Intrinsic::Pow: {
                Expr p = math::pow_by_constant(c->args[0], c->args[1]);
                return p.defined() ? p : r;
            }
            default: return r;
        }
    }
};

}  // namespace detail

inline Stmt lower_math(const Stmt& s) { return detail::LowerMath().mutate(s); }

}  // namespace kiln::passes
