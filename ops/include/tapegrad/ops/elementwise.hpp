// Elementwise arithmetic with broadcasting (a 1×n row, an m×1 column or a 1×1 scalar stretches
// to m×n). VJPs return adjoints in the output's shape; the engine sums them back over the
// stretched axes (engine_ops.hpp), so no op here reduces anything itself.
#pragma once

#include <optional>
#include <string_view>

#include <tapegrad/core/engine_ops.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>

namespace tapegrad {

// Add (C = A + B) lives in core/engine_ops.hpp: the engine uses it to accumulate fan-out.

// Y = −X.  dX = −dY.
struct Neg {
    static constexpr std::string_view name = "neg";
    static constexpr std::size_t arity = 1;
    static constexpr Notation notation{"−{0}", "-{0}", Prec::Prefix};
    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = -x[i];
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return apply(Neg{}, g);
    }
};

// C = A − B.  dA = dC,  dB = −dC.
struct Sub {
    static constexpr std::string_view name = "sub";
    static constexpr std::size_t arity = 2;
    static constexpr Notation notation{"{0} − {1}", "{0} - {1}", Prec::Sum, true};
    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape a, Shape b) const { return broadcast_shape(name, a, b); }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& a, const Tensor<T>& b) const {
        broadcast_binary(out, a, b, [](T x, T y) { return x - y; });
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&, const V&) const {
        return g;
    }
    template <class V>
    V vjp(In<1>, const V& g, const V&, const V&, const V&) const {
        return apply(Neg{}, g);
    }
    // In place (op.hpp): −g, summed to b's shape, with no temporary.
    template <class T>
    void vjp_into(In<1>, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>&, const Tensor<T>&,
                  const Tensor<T>&) const {
        write_broadcast_vjp(dst, add, g, g, [](T u, T) { return -u; });
    }
};

// C = A ⊙ B.  dA = dC ⊙ B,  dB = dC ⊙ A.
struct Mul {
    static constexpr std::string_view name = "mul";
    static constexpr std::size_t arity = 2;
    static constexpr Notation notation{"{0} ⊙ {1}", "{0} * {1}", Prec::Product};
    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape a, Shape b) const { return broadcast_shape(name, a, b); }
    // 1 ⊙ X = X (the seed of a scalar loss is 1; it should not clutter explain()).
    std::optional<Sym> simplify(const Sym& a, const Sym& b) const {
        if (a.is_one()) return b;
        if (b.is_one()) return a;
        return std::nullopt;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& a, const Tensor<T>& b) const {
        broadcast_binary(out, a, b, [](T x, T y) { return x * y; });
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&, const V& b) const {
        return apply(Mul{}, g, b);
    }
    template <class V>
    V vjp(In<1>, const V& g, const V&, const V& a, const V&) const {
        return apply(Mul{}, g, a);
    }
    // In place (op.hpp): g ⊙ (the other input), summed to the input's shape, in one pass.
    template <class T>
    void vjp_into(In<0>, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>&, const Tensor<T>&,
                  const Tensor<T>& b) const {
        write_broadcast_vjp(dst, add, g, b, [](T u, T v) { return u * v; });
    }
    template <class T>
    void vjp_into(In<1>, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>&, const Tensor<T>& a,
                  const Tensor<T>&) const {
        write_broadcast_vjp(dst, add, g, a, [](T u, T v) { return u * v; });
    }
};

// C = A ⊘ B.  dA = dC ⊘ B,  dB = −dC ⊙ C ⊘ B  (= −dC ⊙ A ⊘ B²).
struct Div {
    static constexpr std::string_view name = "div";
    static constexpr std::size_t arity = 2;
    static constexpr Notation notation{"{0} ⊘ {1}", "{0} / {1}", Prec::Product, true};
    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape a, Shape b) const { return broadcast_shape(name, a, b); }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& a, const Tensor<T>& b) const {
        broadcast_binary(out, a, b, [](T x, T y) { return x / y; });
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&, const V& b) const {
        return apply(Div{}, g, b);
    }
    template <class T>
    void vjp_into(In<0>, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>&, const Tensor<T>&,
                  const Tensor<T>& b) const {
        write_broadcast_vjp(dst, add, g, b, [](T u, T v) { return u / v; });
    }
    template <class V>
    V vjp(In<1>, const V& g, const V& y, const V&, const V& b) const {
        return apply(Neg{}, apply(Div{}, apply(Mul{}, g, y), b));
    }
};

// Y = c·X.  dX = c·dY.
struct Scale {
    static constexpr std::string_view name = "scale";
    static constexpr std::size_t arity = 1;
    double c = 1;
    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        const T k = static_cast<T>(c);
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = k * x[i];
    }
    std::optional<Sym> simplify(const Sym& x) const { return scaled(c, x, x.shape()); }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return apply(Scale{c}, g);
    }
};

// Y = X + c.  dX = dY.
struct Shift {
    static constexpr std::string_view name = "shift";
    static constexpr std::size_t arity = 1;
    double c = 0;
    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape x) const { return x; }
    std::optional<Sym> simplify(const Sym& x) const {
        bool neg = c < 0;
        std::string k = fmt::format("{:g}", neg ? -c : c);
        std::string op = neg ? " − " : " + ";
        return Sym(x.text + op + k, x.ascii + (neg ? " - " : " + ") + k, Prec::Sum, x.shape());
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        const T k = static_cast<T>(c);
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] + k;
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return g;
    }
};

// Y = c ⊘ X (a plain number over a tensor, elementwise: `c / x`).
// dX = −dY ⊙ Y ⊘ X   (= −c·dY ⊘ X², reusing the output as Div's divisor rule does)
struct RDiv {
    static constexpr std::string_view name = "rdiv";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;  // elementwise: every rank
    double c = 1;
    Shape shape(Shape x) const { return x; }
    std::optional<Sym> simplify(const Sym& x) const {
        const bool paren = static_cast<int>(x.prec) <= static_cast<int>(Prec::Product);
        auto wrap = [&](const std::string& t) { return paren ? "(" + t + ")" : t; };
        const std::string k = fmt::format("{:g}", c);
        return Sym(k + " ⊘ " + wrap(x.text), k + " / " + wrap(x.ascii), Prec::Product, x.shape());
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        const T k = static_cast<T>(c);
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = k / x[i];
    }
    template <class V>
    V vjp(In<0>, const V& g, const V& y, const V& x) const {
        return apply(Neg{}, apply(Div{}, apply(Mul{}, g, y), x));
    }
};

template <Value V>
V add(const V& a, const V& b, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Add{}, a, b);
}
template <Value V>
V sub(const V& a, const V& b, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Sub{}, a, b);
}
template <Value V>
V mul(const V& a, const V& b, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Mul{}, a, b);
}
template <Value V>
V div(const V& a, const V& b, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Div{}, a, b);
}
template <Value V>
V neg(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Neg{}, x);
}
template <Value V>
V scale(const V& x, double c, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Scale{c}, x);
}
template <Value V>
V shift(const V& x, double c, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Shift{c}, x);
}

// Operators: elementwise (⊙ for *, as in PyTorch); matrix products are matmul().
template <Value V>
V operator+(const V& a, const V& b) {
    return apply(Add{}, a, b);
}
template <Value V>
V operator-(const V& a, const V& b) {
    return apply(Sub{}, a, b);
}
template <Value V>
V operator*(const V& a, const V& b) {
    return apply(Mul{}, a, b);
}
template <Value V>
V operator/(const V& a, const V& b) {
    return apply(Div{}, a, b);
}
template <Value V>
V operator-(const V& x) {
    return apply(Neg{}, x);
}
template <Value V>
V operator*(const V& x, double c) {
    return apply(Scale{c}, x);
}
template <Value V>
V operator*(double c, const V& x) {
    return apply(Scale{c}, x);
}
template <Value V>
V operator/(const V& x, double c) {
    return apply(Scale{1.0 / c}, x);
}
template <Value V>
V operator+(const V& x, double c) {
    return apply(Shift{c}, x);
}
template <Value V>
V operator+(double c, const V& x) {
    return apply(Shift{c}, x);
}
template <Value V>
V operator-(const V& x, double c) {
    return apply(Shift{-c}, x);
}
template <Value V>
V operator-(double c, const V& x) {
    return apply(Shift{c}, apply(Neg{}, x));
}
template <Value V>
V operator/(double c, const V& x) {
    return apply(RDiv{c}, x);
}

}  // namespace tapegrad
