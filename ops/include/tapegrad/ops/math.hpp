// Pointwise functions: square, sqrt, exp, log, pow by a constant, abs and its derivative sign.
// Each is a row of the pointwise table (pointwise.hpp): f, and f′ as a scalar and as ops, from
// which the forward loop, the VJP (on tensors, Vars and symbols alike) and the one-pass VJP into
// the adjoint are derived.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>
#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/pointwise.hpp>
#include <tapegrad/ops/reductions.hpp>

namespace tapegrad {

// Rows of the pointwise table (pointwise.hpp), one line per member:
// clang-format off

// Y = X².  dX = dY ⊙ 2X.
struct SquareDef {
    static constexpr std::string_view name = "square";
    static constexpr Notation notation{"{0}²", "{0}^2", Prec::Postfix};
    template <class T> static T f(T x) { return x * x; }
    template <class T> static T df(T x) { return T(2) * x; }
    template <class V> static V df_op(const V& x, const V&) { return apply(Scale{2}, x); }
};
using Square = Pointwise<SquareDef>;

// Y = √X.  dX = dY ⊘ (2Y).
struct SqrtDef {
    static constexpr std::string_view name = "sqrt";
    static constexpr Notation notation{"√{0}", "sqrt({0})", Prec::Prefix};
    static constexpr pointwise::Of of = pointwise::Of::Y;
    static constexpr pointwise::Chain chain = pointwise::Chain::Over;
    template <class T> static T f(T x) { return std::sqrt(x); }
    template <class T> static T df(T y) { return T(2) * y; }  // 1/f′
    template <class V> static V df_op(const V&, const V& y) { return apply(Scale{2}, y); }
};
using Sqrt = Pointwise<SqrtDef>;

// Y = exp(X).  dX = dY ⊙ Y.
struct ExpDef {
    static constexpr std::string_view name = "exp";
    static constexpr Notation notation{"exp({0})", "exp({0})", Prec::Atom};
    static constexpr pointwise::Of of = pointwise::Of::Y;
    template <class T> static T f(T x) { return std::exp(x); }
    template <class T> static T df(T y) { return y; }
    template <class V> static const V& df_op(const V&, const V& y) { return y; }
};
using Exp = Pointwise<ExpDef>;

// Y = log(X).  dX = dY ⊘ X.
struct LogDef {
    static constexpr std::string_view name = "log";
    static constexpr Notation notation{"log({0})", "log({0})", Prec::Atom};
    static constexpr pointwise::Chain chain = pointwise::Chain::Over;
    template <class T> static T f(T x) { return std::log(x); }
    template <class T> static T df(T x) { return x; }  // 1/f′
    template <class V> static const V& df_op(const V& x, const V&) { return x; }
};
using Log = Pointwise<LogDef>;

struct PowDef;
using Pow = Pointwise<PowDef>;

// Y = X^p (p a constant).  dX = dY ⊙ p·X^(p−1)  (dY for p = 1, dY ⊙ 2X for p = 2).
struct PowDef {
    static constexpr std::string_view name = "pow";
    double p = 1;
    std::optional<Sym> simplify(const Sym& x) const {
        bool paren = static_cast<int>(x.prec) < static_cast<int>(Prec::Postfix);
        auto wrap = [&](const std::string& s) { return paren ? "(" + s + ")" : s; };
        std::string k = fmt::format("{:g}", p);
        return Sym(wrap(x.text) + "^" + k, wrap(x.ascii) + "^" + k, Prec::Postfix, x.shape());
    }
    template <class T> T f(T x) const { return std::pow(x, static_cast<T>(p)); }
    template <class T>
    T df(T x) const {
        if (p == 1) return T(1);
        if (p == 2) return T(2) * x;
        return static_cast<T>(p) * std::pow(x, static_cast<T>(p - 1));
    }
    template <class V>
    std::optional<V> df_op(const V& x, const V&) const {
        if (p == 1) return std::nullopt;  // f′ = 1: dX is dY itself
        if (p == 2) return apply(Scale{2}, x);
        return apply(Scale{p}, apply(Pow{p - 1}, x));
    }
};

// Y = sign(X) ∈ {−1, 0, 1}, the derivative of |X| (0 at the kink).  dX = 0.
struct SignDef {
    static constexpr std::string_view name = "sign";
    static constexpr Notation notation{"sign({0})", "sign({0})", Prec::Atom};
    static constexpr bool flat = true;
    template <class T> static T f(T x) { return T((x > 0) - (x < 0)); }
};
using Sign = Pointwise<SignDef>;

// Y = |X|.  dX = dY ⊙ sign(X).
struct AbsDef {
    static constexpr std::string_view name = "abs";
    static constexpr Notation notation{"|{0}|", "abs({0})", Prec::Atom};
    template <class T> static T f(T x) { return std::abs(x); }
    template <class T> static T df(T x) { return T((x > 0) - (x < 0)); }
    template <class V> static V df_op(const V& x, const V&) { return apply(Sign{}, x); }
};
using Abs = Pointwise<AbsDef>;

// clang-format on

template <Value V>
V square(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Square{}, x);
}
template <Value V>
V sqrt(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Sqrt{}, x);
}
template <Value V>
V exp(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Exp{}, x);
}
template <Value V>
V log(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Log{}, x);
}
template <Value V>
V pow(const V& x, double p, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Pow{p}, x);
}
template <Value V>
V sign(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Sign{}, x);
}
template <Value V>
V abs(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Abs{}, x);
}

}  // namespace tapegrad
