// The three ops the engine itself needs: broadcasting addition (to accumulate fan-out in the
// recorded and symbolic readings), and the pair SumTo / BroadcastTo (to sum an adjoint back
// over the axes its input was stretched along — once, here, rather than in every op).
// They are declared exactly like the ops of ops/.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include <tapegrad/core/broadcast.hpp>
#include <tapegrad/core/op.hpp>

namespace tapegrad {

struct BroadcastTo;

// Σ over broadcast axes:  y = sum_to(x, s).  dx = broadcast(dy, shape(x)).
struct SumTo {
    static constexpr std::string_view name = "sum_to";
    static constexpr std::size_t arity = 1;
    Shape to;

    static constexpr bool any_rank = true;  // NumPy broadcasting at every rank
    Shape shape(Shape x) const {
        if (!broadcastable(to, x)) fail("sum_to: cannot sum {} down to {}", x, to);
        return to;
    }
    Notation notation() const {
        if (to.numel() == 1) return {"Σ({0})", "sum({0})", Prec::Atom};
        if (to.rank() <= 2 && to.rows() == 1) return {"1ᵀ·{0}", "colsum({0})", Prec::Product};
        if (to.rank() <= 2 && to.cols() == 1) return {"{0}·1", "rowsum({0})", Prec::Product};
        return {"sum_to({0})", "sum_to({0})", Prec::Atom};  // over the axes stretched at rank ≥ 3
    }
    std::optional<Sym> simplify(const Sym& x) const {
        if (x.shape() == to) return x;
        return std::nullopt;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        sum_to(out, x);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const;
};

// Stretch x to `to` (NumPy rules):  dx = sum_to(dy, shape(x)).
struct BroadcastTo {
    static constexpr std::string_view name = "broadcast";
    static constexpr std::size_t arity = 1;
    static constexpr Notation notation{"{0}", "{0}", Prec::Atom};
    Shape to;

    static constexpr bool any_rank = true;  // NumPy broadcasting at every rank
    Shape shape(Shape x) const {
        if (!broadcastable(x, to)) fail("broadcast: cannot stretch {} to {}", x, to);
        return to;
    }
    std::optional<Sym> simplify(const Sym& x) const {
        if (x.is_one()) return Sym::one(to);
        return x;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        broadcast_binary(out, x, x, [](T a, T) { return a; });
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const {
        return apply(SumTo{x.shape()}, g);
    }
};

template <class V>
V SumTo::vjp(In<0>, const V& g, const V&, const V& x) const {
    return apply(BroadcastTo{x.shape()}, g);
}

// C = A + B (broadcasting).  dA = dC, dB = dC (summed back by the engine).
struct Add {
    static constexpr std::string_view name = "add";
    static constexpr std::size_t arity = 2;
    static constexpr Notation notation{"{0} + {1}", "{0} + {1}", Prec::Sum};

    static constexpr bool any_rank = true;  // elementwise: every rank
    Shape shape(Shape a, Shape b) const { return broadcast_shape(name, a, b); }
    std::optional<Sym> simplify(const Sym& a, const Sym& b) const {
        if (a.is_zero()) return b;
        if (b.is_zero()) return a;
        return std::nullopt;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& a, const Tensor<T>& b) const {
        broadcast_binary(out, a, b, [](T x, T y) { return x + y; });
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&, const V&) const {
        return g;
    }
    template <class V>
    V vjp(In<1>, const V& g, const V&, const V&, const V&) const {
        return g;
    }
};

// Sums `v` back to shape `s` (no-op when it already has it).
template <Value V>
V reduce_to(const V& v, Shape s) {
    if (v.shape() == s) return v;
    return apply(SumTo{s}, v);
}

}  // namespace tapegrad
