// Reductions: sums over all elements, over rows or over columns, and the mean. The sums are the
// engine's SumTo (core/engine_ops.hpp), whose notation already reads Σ(X), 1ᵀ·X and X·1; the
// mean is its own op so that explain() reads mean(X).
#pragma once

#include <optional>
#include <string_view>
#include <tapegrad/core/engine_ops.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>
#include <tapegrad/ops/elementwise.hpp>

namespace tapegrad {

// A tensor of zeros shaped like X; used as the adjoint of a piecewise-constant function.
// Y = 0·X.  dX = 0 (zeros like dY).
struct ZerosLike {
    static constexpr std::string_view name = "zeros_like";
    static constexpr std::size_t arity = 1;
    static constexpr Notation notation{"0", "0", Prec::Atom};
    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape x) const { return x; }
    std::optional<Sym> simplify(const Sym& x) const {
        Sym z("0", "0", Prec::Atom, x.shape());
        z.kind = Sym::Kind::Zero;
        return z;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>&) const {
        out.fill(T(0));
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return apply(ZerosLike{}, g);
    }
};

// y = (1/N)·Σᵢⱼ Xᵢⱼ   X: m×n, y: 1×1, N = m·n.
// dX = (1/N)·dy stretched to m×n.
struct Mean {
    static constexpr std::string_view name = "mean";
    static constexpr std::size_t arity = 1;
    static constexpr Notation notation{"mean({0})", "mean({0})", Prec::Atom};
    static constexpr bool any_rank = true;  // the mean of every element, at any rank
    Shape shape(Shape x) const {
        if (x.empty()) fail("mean: empty input {}", x);  // not x.size() == 0: it may wrap
        return {1, 1};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        T s = 0;
        for (std::size_t i = 0; i < x.size(); ++i) s += x[i];
        out[0] = s / static_cast<T>(x.size());
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const {
        return apply(Scale{1.0 / static_cast<double>(x.shape().size())}, apply(BroadcastTo{x.shape()}, g));
    }
};

// Σ of every element: m×n → 1×1.
template <Value V>
V sum(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(SumTo{{1, 1}}, x);
}
// Σ over the rows (a column sum, 1ᵀ·X): m×n → 1×n.
template <Value V>
V sum_rows(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(SumTo{{1, x.shape().cols()}}, x);
}
// Σ over the columns (a row sum, X·1): m×n → m×1.
template <Value V>
V sum_cols(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(SumTo{{x.shape().rows(), 1}}, x);
}
// Mean of every element: m×n → 1×1.
template <Value V>
V mean(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Mean{}, x);
}
template <Value V>
V zeros_like(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(ZerosLike{}, x);
}

}  // namespace tapegrad
