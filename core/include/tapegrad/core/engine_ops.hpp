// The three ops the engine itself needs: broadcasting addition (to accumulate fan-out in the
// recorded and symbolic readings), and the pair SumTo / BroadcastTo (to sum an adjoint back
// over the axes its input was stretched along — once, here, rather than in every op).
// They are declared exactly like the ops of ops/.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include <tapegrad/core/op.hpp>

namespace tapegrad {

// Broadcasting: a 1×n row, an m×1 column or a 1×1 scalar stretches to m×n.
inline bool broadcastable(Shape from, Shape to) noexcept {
    return (from.rows == to.rows || from.rows == 1) && (from.cols == to.cols || from.cols == 1);
}

inline Shape broadcast_shape(std::string_view op, Shape a, Shape b) {
    auto dim = [](std::size_t x, std::size_t y, bool& ok) {
        if (x == y) return x;
        if (x == 1) return y;
        if (y == 1) return x;
        ok = false;
        return x;
    };
    bool ok = true;
    Shape s{dim(a.rows, b.rows, ok), dim(a.cols, b.cols, ok)};
    if (!ok) fail("{}: shapes do not broadcast: {} and {}", op, a, b);
    return s;
}

// out(i, j) = f(a(i', j'), b(i'', j'')) with broadcast indices. Same-shape and row-broadcast
// cases run as flat loops the compiler vectorises.
template <class T, class F>
void broadcast_binary(Tensor<T>& out, const Tensor<T>& a, const Tensor<T>& b, F f) {
    const std::size_t m = out.rows(), n = out.cols();
    T* o = out.data();
    const T* pa = a.data();
    const T* pb = b.data();
    if (a.shape() == out.shape() && b.shape() == out.shape()) {
        for (std::size_t i = 0; i < m * n; ++i) o[i] = f(pa[i], pb[i]);
        return;
    }
    const std::size_t ars = a.rows() == 1 ? 0 : a.cols(), acs = a.cols() == 1 ? 0 : 1;
    const std::size_t brs = b.rows() == 1 ? 0 : b.cols(), bcs = b.cols() == 1 ? 0 : 1;
    for (std::size_t i = 0; i < m; ++i) {
        const T* ra = pa + i * ars;
        const T* rb = pb + i * brs;
        T* ro = o + i * n;
        if (acs == 1 && bcs == 1) {
            for (std::size_t j = 0; j < n; ++j) ro[j] = f(ra[j], rb[j]);
        } else {
            for (std::size_t j = 0; j < n; ++j) ro[j] = f(ra[j * acs], rb[j * bcs]);
        }
    }
}

// out = sum of `in` over the axes along which `out` was broadcast to in's shape.
template <class T>
void sum_to(Tensor<T>& out, const Tensor<T>& in) {
    const std::size_t m = in.rows(), n = in.cols();
    T* o = out.data();
    const T* p = in.data();
    if (out.shape() == in.shape()) {
        std::copy_n(p, m * n, o);
    } else if (out.rows() == 1 && out.cols() == n) {  // 1×n: sum over rows
        std::copy_n(p, n, o);
        for (std::size_t i = 1; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) o[j] += p[i * n + j];
    } else if (out.cols() == 1 && out.rows() == m) {  // m×1: sum over columns
        for (std::size_t i = 0; i < m; ++i) {
            T s = 0;
            for (std::size_t j = 0; j < n; ++j) s += p[i * n + j];
            o[i] = s;
        }
    } else {  // 1×1
        // Anything else is not a sum over broadcast axes (the op SumTo checks its shapes; a
        // direct call with a wrong pair must not silently fold everything into one element).
        if (out.size() != 1) [[unlikely]]
            fail("sum_to: cannot sum {} down to {}", in.shape(), out.shape());
        T s = 0;
        for (std::size_t i = 0; i < m * n; ++i) s += p[i];
        o[0] = s;
    }
}

// The VJP of an elementwise binary op, written in place (vjp_into, op.hpp): dst = (or, when
// `add`, dst +=) f(g, o) with o broadcast to g's shape, summed over the axes along which dst
// was broadcast. When dst has g's shape (the common case) this is one pass and no temporary.
template <class T, class F>
void write_broadcast_vjp(Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>& o, F f) {
    if (dst.shape() != g.shape()) {  // dst was broadcast: the full product, then its sums
        Tensor<T> t = Tensor<T>::uninit_like(g.shape(), g);
        broadcast_binary(t, g, o, f);
        if (!add) {
            sum_to(dst, t);
            return;
        }
        Tensor<T> r = Tensor<T>::uninit_like(dst.shape(), g);
        sum_to(r, t);
        T* d = dst.data();
        for (std::size_t i = 0, e = dst.size(); i < e; ++i) d[i] += r[i];
        return;
    }
    const std::size_t m = g.rows(), n = g.cols();
    const std::size_t ors = o.rows() == 1 ? 0 : o.cols(), ocs = o.cols() == 1 ? 0 : 1;
    auto rows = [&]<bool Add>() {
        for (std::size_t i = 0; i < m; ++i) {
            T* __restrict rd = dst.data() + i * n;
            const T* __restrict rg = g.data() + i * n;
            const T* __restrict ro = o.data() + i * ors;
            if (ocs == 1)
                for (std::size_t j = 0; j < n; ++j) rd[j] = Add ? rd[j] + f(rg[j], ro[j]) : f(rg[j], ro[j]);
            else
                for (std::size_t j = 0; j < n; ++j) rd[j] = Add ? rd[j] + f(rg[j], ro[0]) : f(rg[j], ro[0]);
        }
    };
    if (add)
        rows.template operator()<true>();
    else
        rows.template operator()<false>();
}

struct BroadcastTo;

// Σ over broadcast axes:  y = sum_to(x, s).  dx = broadcast(dy, shape(x)).
struct SumTo {
    static constexpr std::string_view name = "sum_to";
    static constexpr std::size_t arity = 1;
    Shape to;

    Shape shape(Shape x) const {
        if (!broadcastable(to, x)) fail("sum_to: cannot sum {} down to {}", x, to);
        return to;
    }
    Notation notation() const {
        if (to.rows == 1 && to.cols == 1) return {"Σ({0})", "sum({0})", Prec::Atom};
        if (to.rows == 1) return {"1ᵀ·{0}", "colsum({0})", Prec::Product};
        return {"{0}·1", "rowsum({0})", Prec::Product};
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

// Stretch a row, column or scalar to `to`:  dx = sum_to(dy, shape(x)).
struct BroadcastTo {
    static constexpr std::string_view name = "broadcast";
    static constexpr std::size_t arity = 1;
    static constexpr Notation notation{"{0}", "{0}", Prec::Atom};
    Shape to;

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
