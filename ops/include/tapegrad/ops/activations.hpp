// Activations and their derivative helpers. The helpers (σ′, tanh′, relu′, …) are ops of their
// own: the numeric reading computes f′ in one stable loop, the symbolic reading prints σ′(A),
// and each helper has its own VJP (f″) so that gradients of gradients work. The pointwise ones
// are rows of the pointwise table (pointwise.hpp: f, f′ as a scalar and as ops); relu and
// relu_backward keep their hand-written select loops.
//
// Stability (seed 001): σ is computed from e = exp(−|x|), so it never overflows; σ′ = σ(x)σ(−x)
// = e/(1+e)², never 1 − σ of a rounded σ; softplus = max(x, 0) + log1p(exp(−|x|)); softmax and
// log-softmax subtract each row's maximum.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include <fmt/format.h>
#include <tapegrad/core/engine_ops.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>
#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/pointwise.hpp>
#include <tapegrad/ops/reduce_axes.hpp>
#include <tapegrad/ops/reductions.hpp>

namespace tapegrad {

namespace detail {

// σ(x) = 1/(1+e^−x), from e = e^−|x| ∈ (0, 1]: no overflow for any x.
template <class T>
T stable_sigmoid(T x) {
    const T e = std::exp(-std::abs(x));
    return x >= 0 ? T(1) / (T(1) + e) : e / (T(1) + e);
}
// σ′(x) = σ(x)σ(−x) = e/(1+e)², e = e^−|x|: no cancellation, no overflow.
template <class T>
T stable_sigmoid_grad(T x) {
    const T e = std::exp(-std::abs(x));
    const T d = T(1) + e;
    return e / (d * d);
}
// tanh′(x) = 1 − tanh²(x) = 4e/(1+e)², e = e^−2|x|: accurate where 1 − tanh² rounds to 0.
template <class T>
T stable_tanh_grad(T x) {
    const T e = std::exp(T(-2) * std::abs(x));
    const T d = T(1) + e;
    return T(4) * e / (d * d);
}
// softplus(x) = log(1 + eˣ) = max(x, 0) + log1p(e^−|x|).
template <class T>
T stable_softplus(T x) {
    return std::max(x, T(0)) + std::log1p(std::exp(-std::abs(x)));
}

}  // namespace detail

// Rows of the pointwise table (pointwise.hpp), one line per member:
// clang-format off

// Y = σ(X).  dX = dY ⊙ σ′(X).
struct SigmoidDef {
    static constexpr std::string_view name = "sigmoid";
    static constexpr Notation notation{"σ({0})", "sigmoid({0})", Prec::Atom};
    template <class T> static T f(T x) { return detail::stable_sigmoid(x); }
    template <class T> static T df(T x) { return detail::stable_sigmoid_grad(x); }
    template <class V> static V df_op(const V& x, const V& y);  // σ′(X), below
};
using Sigmoid = Pointwise<SigmoidDef>;

// Y = σ′(X) = σ(X) ⊙ σ(−X).  dX = dY ⊙ σ″(X),  σ″ = σ′ ⊙ (σ(−X) − σ(X)).
struct SigmoidGradDef {
    static constexpr std::string_view name = "sigmoid_grad";
    static constexpr Notation notation{"σ′({0})", "sigmoid'({0})", Prec::Atom};
    template <class T> static T f(T x) { return detail::stable_sigmoid_grad(x); }
    template <class T> static T df(T x) {
        return f(x) * (detail::stable_sigmoid(-x) - detail::stable_sigmoid(x));
    }
    template <class V> static V df_op(const V& x, const V& y) {
        V d = apply(Sub{}, apply(Sigmoid{}, apply(Neg{}, x)), apply(Sigmoid{}, x));
        return apply(Mul{}, y, d);
    }
};
using SigmoidGrad = Pointwise<SigmoidGradDef>;

template <class V> V SigmoidDef::df_op(const V& x, const V&) { return apply(SigmoidGrad{}, x); }

// Y = tanh(X).  dX = dY ⊙ tanh′(X).
struct TanhDef {
    static constexpr std::string_view name = "tanh";
    static constexpr Notation notation{"tanh({0})", "tanh({0})", Prec::Atom};
    template <class T> static T f(T x) { return std::tanh(x); }
    template <class T> static T df(T x) { return detail::stable_tanh_grad(x); }
    template <class V> static V df_op(const V& x, const V& y);  // tanh′(X), below
};
using Tanh = Pointwise<TanhDef>;

// Y = tanh′(X) = 1 − tanh²(X) = 4e/(1+e)², e = e^−2|X| (accurate where 1 − tanh² rounds to 0).
// dX = dY ⊙ tanh″(X),  tanh″ = −2·tanh(X) ⊙ tanh′(X).
struct TanhGradDef {
    static constexpr std::string_view name = "tanh_grad";
    static constexpr Notation notation{"tanh′({0})", "tanh'({0})", Prec::Atom};
    template <class T> static T f(T x) { return detail::stable_tanh_grad(x); }
    template <class T> static T df(T x) { return T(-2) * (std::tanh(x) * f(x)); }
    template <class V> static V df_op(const V& x, const V& y) {
        return apply(Scale{-2}, apply(Mul{}, apply(Tanh{}, x), y));
    }
};
using TanhGrad = Pointwise<TanhGradDef>;

template <class V> V TanhDef::df_op(const V& x, const V&) { return apply(TanhGrad{}, x); }

// Y = relu′(X) = [X > 0] (0 at the kink).  dX = 0.
struct ReluGradDef {
    static constexpr std::string_view name = "relu_grad";
    static constexpr Notation notation{"relu′({0})", "relu'({0})", Prec::Atom};
    static constexpr bool flat = true;
    template <class T> static T f(T x) { return x > 0 ? T(1) : T(0); }
};
using ReluGrad = Pointwise<ReluGradDef>;

// clang-format on

// Y = G ⊙ relu′(X), fused: relu's VJP in one pass with no relu′ temporary (the MLP's hot path).
//   dG = dY ⊙ relu′(X) = relu_backward(dY, X)        G, X, Y: m×n
//   dX = 0                                             (relu′ is piecewise constant)
// Symbolically it reads exactly as the composition G ⊙ relu′(X).
struct ReluBackward {
    static constexpr std::string_view name = "relu_backward";
    static constexpr std::size_t arity = 2;
    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape g, Shape x) const {
        if (g != x) fail("relu_backward: shapes differ: {} and {}", g, x);
        return g;
    }
    std::optional<Sym> simplify(const Sym& g, const Sym& x) const {
        return apply(Mul{}, g, apply(ReluGrad{}, x));
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& g, const Tensor<T>& x) const {
        // A select, not a branch: the relu mask is random, a branch would mispredict half the time.
        const T* __restrict pg = g.data();
        const T* __restrict px = x.data();
        T* __restrict o = out.data();
        for (std::size_t i = 0, n = g.size(); i < n; ++i) {
            const T gi = pg[i], xi = px[i];  // both loads unconditional, so the select vectorises
            o[i] = xi > T(0) ? gi : T(0);
        }
    }
    template <class V>
    V vjp(In<0>, const V& a, const V&, const V&, const V& x) const {
        return apply(ReluBackward{}, a, x);
    }
    template <class V>
    V vjp(In<1>, const V& a, const V&, const V&, const V&) const {
        return apply(ZerosLike{}, a);
    }
};

// Y = max(X, 0).  dX = dY ⊙ relu′(X)  (as the fused relu_backward).
struct Relu {
    static constexpr std::string_view name = "relu";
    static constexpr std::size_t arity = 1;
    static constexpr Notation notation{"relu({0})", "relu({0})", Prec::Atom};
    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        // cnn12: through restrict pointers, so that the select vectorises (as relu_backward's).
        const T* __restrict px = x.data();
        T* __restrict o = out.data();
        for (std::size_t i = 0, n = x.size(); i < n; ++i) o[i] = px[i] > T(0) ? px[i] : T(0);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const {
        return apply(ReluBackward{}, g, x);
    }
};

// Rows of the pointwise table (pointwise.hpp), one line per member:
// clang-format off

// Y = leaky_relu′(X) = 1 where X > 0, else slope.  dX = 0.
struct LeakyReluGradDef {
    static constexpr std::string_view name = "leaky_relu_grad";
    static constexpr Notation notation{"leaky_relu′({0})", "leaky_relu'({0})", Prec::Atom};
    static constexpr bool flat = true;
    double slope = 0.01;
    template <class T> T f(T x) const { return x > 0 ? T(1) : static_cast<T>(slope); }
};
using LeakyReluGrad = Pointwise<LeakyReluGradDef>;

// Y = X where X > 0, else slope·X.  dX = dY ⊙ leaky_relu′(X).
struct LeakyReluDef {
    static constexpr std::string_view name = "leaky_relu";
    static constexpr Notation notation{"leaky_relu({0})", "leaky_relu({0})", Prec::Atom};
    double slope = 0.01;
    template <class T> T f(T x) const { return x > 0 ? x : static_cast<T>(slope) * x; }
    template <class T> T df(T x) const { return x > 0 ? T(1) : static_cast<T>(slope); }
    template <class V> V df_op(const V& x, const V&) const { return apply(LeakyReluGrad{slope}, x); }
};
using LeakyRelu = Pointwise<LeakyReluDef>;

// Y = softplus(X) = log(1 + exp(X)).  dX = dY ⊙ σ(X).
struct SoftplusDef {
    static constexpr std::string_view name = "softplus";
    static constexpr Notation notation{"softplus({0})", "softplus({0})", Prec::Atom};
    template <class T> static T f(T x) { return detail::stable_softplus(x); }
    template <class T> static T df(T x) { return detail::stable_sigmoid(x); }
    template <class V> static V df_op(const V& x, const V&) { return apply(Sigmoid{}, x); }
};
using Softplus = Pointwise<SoftplusDef>;

// clang-format on

namespace detail {
// The geometry of a softmax along one axis of a contiguous x: `outer` blocks of `n` × `inner`
// elements, the axis of extent n at stride `inner`. A rank-0 input is one element (axis 0 or −1).
struct SoftmaxAxis {
    std::size_t axis = 0, outer = 1, n = 1, inner = 1;
    bool last = true;  // the last axis (or rank ≤ 1): the rows of today's 2-D kernel
};
inline SoftmaxAxis softmax_axis(std::string_view op, std::ptrdiff_t axis, const Shape& x) {
    const std::size_t r = x.rank();
    SoftmaxAxis a;
    a.axis = detail::axis_of(op, axis, r == 0 ? 1 : r, x);
    if (r == 0) return a;
    a.n = x[a.axis];
    for (std::size_t k = a.axis + 1; k < r; ++k) a.inner *= x[k];
    for (std::size_t k = 0; k < a.axis; ++k) a.outer *= x[k];
    a.last = a.axis + 1 == r;
    return a;
}
// Shape rule of softmax / log_softmax: the last axis keeps today's message.
inline Shape softmax_shape(std::string_view op, std::ptrdiff_t axis, const Shape& x) {
    const SoftmaxAxis a = softmax_axis(op, axis, x);
    if (a.last && x.cols() == 0) fail("{}: input {} has no columns", op, x);
    if (a.n == 0) fail("{}: input {} has no elements along axis {}", op, x, a.axis);
    return x;
}
// Σ over the softmax axis, kept as a unit axis: X·1 (SumTo to m×1) for today's 2-D rows, else
// Σ_{axis k}.
template <class V>
V softmax_axis_sum(const V& v, std::ptrdiff_t axis, const Shape& x) {
    const SoftmaxAxis a = softmax_axis("softmax", axis, x);
    if (a.last && x.rank() <= 2) return apply(SumTo{{x.rows(), 1}}, v);
    if (x.rank() == 0) return v;
    return apply(SumAxes{AxisSet{static_cast<std::uint8_t>(1u << a.axis), true}}, v);
}
// Writes softmax (log_softmax with Log) of each of x's lines along the axis into out.
template <bool Log, class T>
void softmax_kernel(const SoftmaxAxis& a, T* out, const T* x) {
    const std::size_t n = a.n;
    if (a.inner == 1) {  // contiguous lines: today's row-wise loop
        for (std::size_t i = 0; i < a.outer; ++i) {
            const T* r = x + i * n;
            T* o = out + i * n;
            const T mx = *std::max_element(r, r + n);
            T s = 0;
            if constexpr (Log) {
                for (std::size_t j = 0; j < n; ++j) s += std::exp(r[j] - mx);
                const T ls = std::log(s);
                for (std::size_t j = 0; j < n; ++j) o[j] = (r[j] - mx) - ls;
            } else {
                for (std::size_t j = 0; j < n; ++j) s += (o[j] = std::exp(r[j] - mx));
                const T inv = T(1) / s;
                for (std::size_t j = 0; j < n; ++j) o[j] *= inv;
            }
        }
        return;
    }
    const std::size_t st = a.inner;
    for (std::size_t i = 0; i < a.outer; ++i)
        for (std::size_t c = 0; c < st; ++c) {
            const T* r = x + i * n * st + c;
            T* o = out + i * n * st + c;
            T mx = r[0];
            for (std::size_t j = 1; j < n; ++j) mx = std::max(mx, r[j * st]);
            T s = 0;
            if constexpr (Log) {
                for (std::size_t j = 0; j < n; ++j) s += std::exp(r[j * st] - mx);
                const T ls = std::log(s);
                for (std::size_t j = 0; j < n; ++j) o[j * st] = (r[j * st] - mx) - ls;
            } else {
                for (std::size_t j = 0; j < n; ++j) s += (o[j * st] = std::exp(r[j * st] - mx));
                const T inv = T(1) / s;
                for (std::size_t j = 0; j < n; ++j) o[j * st] *= inv;
            }
        }
}
}  // namespace detail

// Softmax along `axis` (default: the last, i.e. each row of a matrix):
// Yᵢ = exp(Xᵢ − max X) / Σ exp(X − max X) along the axis     X, Y: any shape.
// dX = Y ⊙ (dY − Σ_axis(dY ⊙ Y))     (the sum kept as a unit axis, stretched back; X·1 in 2-D).
struct Softmax {
    static constexpr std::string_view name = "softmax";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"softmax({0})", "softmax({0})", Prec::Atom};
    std::ptrdiff_t axis = -1;

    std::string attributes() const { return fmt::format("axis {}", axis); }  // as given: −1 is the last

    Shape shape(Shape x) const { return detail::softmax_shape(name, axis, x); }
    std::optional<Sym> simplify(const Sym& x) const {
        const detail::SoftmaxAxis a = detail::softmax_axis(name, axis, x.shape());
        if (a.last) return std::nullopt;
        return Sym(fmt::format("softmax_{{axis {}}}({})", a.axis, x.str(false)),
                   fmt::format("softmax_{{axis {}}}({})", a.axis, x.str(true)), Prec::Atom, x.shape());
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        detail::softmax_kernel<false>(detail::softmax_axis(name, axis, x.shape()), out.data(), x.data());
    }
    template <class V>
    V vjp(In<0>, const V& g, const V& y, const V&) const {
        V s = detail::softmax_axis_sum(apply(Mul{}, g, y), axis, y.shape());
        return apply(Mul{}, y, apply(Sub{}, g, s));
    }
};

// Log-softmax along `axis` (default the last): Y = (X − max) − log Σ exp(X − max) along the axis.
// dX = dY − softmax(X) ⊙ Σ_axis dY     (the sum kept as a unit axis, stretched back; dY·1 in 2-D).
struct LogSoftmax {
    static constexpr std::string_view name = "log_softmax";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"log_softmax({0})", "log_softmax({0})", Prec::Atom};
    std::ptrdiff_t axis = -1;

    std::string attributes() const { return fmt::format("axis {}", axis); }  // as given: −1 is the last

    Shape shape(Shape x) const { return detail::softmax_shape(name, axis, x); }
    std::optional<Sym> simplify(const Sym& x) const {
        const detail::SoftmaxAxis a = detail::softmax_axis(name, axis, x.shape());
        if (a.last) return std::nullopt;
        return Sym(fmt::format("log_softmax_{{axis {}}}({})", a.axis, x.str(false)),
                   fmt::format("log_softmax_{{axis {}}}({})", a.axis, x.str(true)), Prec::Atom, x.shape());
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        detail::softmax_kernel<true>(detail::softmax_axis(name, axis, x.shape()), out.data(), x.data());
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const {
        V s = detail::softmax_axis_sum(g, axis, x.shape());
        return apply(Sub{}, g, apply(Mul{}, apply(Softmax{axis}, x), s));
    }
};

template <Value V>
V sigmoid(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Sigmoid{}, x);
}
// σ′(x) = σ(x)σ(−x), computed without cancellation.
template <Value V>
V sigmoid_grad(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(SigmoidGrad{}, x);
}
template <Value V>
V tanh(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Tanh{}, x);
}
// tanh′(x) = 1 − tanh²(x).
template <Value V>
V tanh_grad(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(TanhGrad{}, x);
}
template <Value V>
V relu(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Relu{}, x);
}
// relu′(x) = [x > 0].
template <Value V>
V relu_grad(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(ReluGrad{}, x);
}
// g ⊙ relu′(x) in one pass (relu's VJP).
template <Value V>
V relu_backward(const V& g, const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(ReluBackward{}, g, x);
}
template <Value V>
V leaky_relu(const V& x, double slope = 0.01, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(LeakyRelu{slope}, x);
}
template <Value V>
V leaky_relu_grad(const V& x, double slope = 0.01, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(LeakyReluGrad{slope}, x);
}
template <Value V>
V softplus(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Softplus{}, x);
}
// log σ(x) = −softplus(−x) (stable for any x).
template <Value V>
V log_sigmoid(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Neg{}, apply(Softplus{}, apply(Neg{}, x)));
}
// Softmax along `axis` (default the last: each row of a matrix).
template <Value V>
V softmax(const V& x, std::ptrdiff_t axis = -1, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Softmax{axis}, x);
}
template <Value V>
V softmax(const V& x, SourceLocation loc) {
    return softmax(x, -1, loc);
}
// Log-softmax along `axis` (default the last).
template <Value V>
V log_softmax(const V& x, std::ptrdiff_t axis = -1, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(LogSoftmax{axis}, x);
}
template <Value V>
V log_softmax(const V& x, SourceLocation loc) {
    return log_softmax(x, -1, loc);
}

}  // namespace tapegrad
