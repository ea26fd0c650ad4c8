// Pointwise functions: square, sqrt, exp, log, pow by a constant, abs and its derivative sign.
// Each forward is one loop; each VJP multiplies the adjoint by f′, written with ops so that it
// runs on tensors, Vars and symbols alike.
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
#include <tapegrad/ops/reductions.hpp>

namespace tapegrad {

// Y = X².  dX = dY ⊙ 2X.
struct Square {
    static constexpr std::string_view name = "square";
    static constexpr std::size_t arity = 1;
    static constexpr Notation notation{"{0}²", "{0}^2", Prec::Postfix};
    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] * x[i];
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const {
        return apply(Mul{}, g, apply(Scale{2}, x));
    }
    template <class T>  // the same in one pass into the adjoint (op.hpp)
    void vjp_into(In<0>, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>&, const Tensor<T>& x) const {
        write_broadcast_vjp(dst, add, g, x, [](T u, T v) { return u * (T(2) * v); });
    }
};

// Y = √X.  dX = dY ⊘ (2Y).
struct Sqrt {
    static constexpr std::string_view name = "sqrt";
    static constexpr std::size_t arity = 1;
    static constexpr Notation notation{"√{0}", "sqrt({0})", Prec::Prefix};
    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = std::sqrt(x[i]);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V& y, const V&) const {
        return apply(Div{}, g, apply(Scale{2}, y));
    }
    template <class T>  // the same in one pass into the adjoint (op.hpp)
    void vjp_into(In<0>, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>& y, const Tensor<T>&) const {
        write_broadcast_vjp(dst, add, g, y, [](T u, T v) { return u / (T(2) * v); });
    }
};

// Y = exp(X).  dX = dY ⊙ Y.
struct Exp {
    static constexpr std::string_view name = "exp";
    static constexpr std::size_t arity = 1;
    static constexpr Notation notation{"exp({0})", "exp({0})", Prec::Atom};
    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = std::exp(x[i]);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V& y, const V&) const {
        return apply(Mul{}, g, y);
    }
};

// Y = log(X).  dX = dY ⊘ X.
struct Log {
    static constexpr std::string_view name = "log";
    static constexpr std::size_t arity = 1;
    static constexpr Notation notation{"log({0})", "log({0})", Prec::Atom};
    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = std::log(x[i]);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const {
        return apply(Div{}, g, x);
    }
};

// Y = X^p (p a constant).  dX = dY ⊙ p·X^(p−1).
struct Pow {
    static constexpr std::string_view name = "pow";
    static constexpr std::size_t arity = 1;
    double p = 1;
    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape x) const { return x; }
    std::optional<Sym> simplify(const Sym& x) const {
        bool paren = static_cast<int>(x.prec) < static_cast<int>(Prec::Postfix);
        auto wrap = [&](const std::string& s) { return paren ? "(" + s + ")" : s; };
        std::string k = fmt::format("{:g}", p);
        return Sym(wrap(x.text) + "^" + k, wrap(x.ascii) + "^" + k, Prec::Postfix, x.shape());
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        const T k = static_cast<T>(p);
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = std::pow(x[i], k);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const {
        if (p == 1) return g;
        if (p == 2) return apply(Mul{}, g, apply(Scale{2}, x));
        return apply(Mul{}, g, apply(Scale{p}, apply(Pow{p - 1}, x)));
    }
};

// Y = sign(X) ∈ {−1, 0, 1}, the derivative of |X| (0 at the kink).  dX = 0.
struct Sign {
    static constexpr std::string_view name = "sign";
    static constexpr std::size_t arity = 1;
    static constexpr Notation notation{"sign({0})", "sign({0})", Prec::Atom};
    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = T((x[i] > 0) - (x[i] < 0));
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return apply(ZerosLike{}, g);
    }
};

// Y = |X|.  dX = dY ⊙ sign(X).
struct Abs {
    static constexpr std::string_view name = "abs";
    static constexpr std::size_t arity = 1;
    static constexpr Notation notation{"|{0}|", "abs({0})", Prec::Atom};
    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = std::abs(x[i]);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const {
        return apply(Mul{}, g, apply(Sign{}, x));
    }
    template <class T>  // the same in one pass into the adjoint (op.hpp)
    void vjp_into(In<0>, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>&, const Tensor<T>& x) const {
        write_broadcast_vjp(dst, add, g, x, [](T u, T v) { return u * T((v > 0) - (v < 0)); });
    }
};

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
