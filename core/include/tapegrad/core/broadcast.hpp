// NumPy broadcasting: the shape rule and the three kernels the engine builds on.
//
// Shapes are right-aligned; along each axis the extents are equal, or one of them is 1 (or
// missing) and stretches. (2×1×4) and (3×1) broadcast to (2×3×4); (2×3) and (4×3) do not.
//
// Kernels run in tiers, so that the 2-D programs of today pay nothing for N-D:
//   (a) every operand has the output's element count: one flat loop (the compiler vectorises);
//   (b) after dropping unit axes and coalescing axes that are contiguous in every operand, at
//       most two remain: a loop over rows around a unit-or-zero-stride inner loop — the 1×n
//       row / m×1 column / 1×1 scalar kernels of the 2-D engine;
//   (c) otherwise the same inner loop under an odometer over the outer axes.
// Operands are contiguous (the engine's contract for kernels that do not declare strides).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <tapegrad/core/error.hpp>
#include <tapegrad/core/shape.hpp>
#include <tapegrad/core/tensor.hpp>

namespace tapegrad {

// Whether `from` stretches to `to`. Leading unit axes of `from` beyond `to`'s rank are
// ignored: (1×1×4) and (4) hold the same values.
inline bool broadcastable(const Shape& from, const Shape& to) noexcept {
    const std::size_t rf = from.rank(), rt = to.rank();
    for (std::size_t k = 0; k < rf; ++k) {
        const std::size_t f = from[rf - 1 - k];
        if (k >= rt) {
            if (f != 1) return false;
            continue;
        }
        const std::size_t t = to[rt - 1 - k];
        if (f != t && f != 1) return false;
    }
    return true;
}

Shape broadcast_shape_slow(std::string_view op, const Shape& a, const Shape& b);

// The shape both operands stretch to, or an Error naming the op and both shapes.
[[gnu::always_inline]] inline Shape broadcast_shape(std::string_view op, const Shape& a, const Shape& b) {
    if (a == b) [[likely]]
        return a;
    return broadcast_shape_slow(op, a, b);
}
[[gnu::noinline]] inline Shape broadcast_shape_slow(std::string_view op, const Shape& a, const Shape& b) {
    const std::size_t ra = a.rank(), rb = b.rank(), r = std::max(ra, rb);
    std::array<std::size_t, kMaxRank> d{};
    for (std::size_t k = 0; k < r; ++k) {
        const std::size_t x = k < ra ? a[ra - 1 - k] : 1;
        const std::size_t y = k < rb ? b[rb - 1 - k] : 1;
        if (x != y && x != 1 && y != 1) fail("{}: shapes do not broadcast: {} and {}", op, a, b);
        d[r - 1 - k] = x == 1 ? y : x;
    }
    return Shape(std::span<const std::size_t>(d.data(), r));
}

namespace detail {

// An elementwise loop over the shape of operand 0, every operand's element strides expressed
// in that shape's axes (0 along a stretched axis), with unit axes dropped and mergeable
// neighbours merged. rank ≥ 1 (a scalar loop is one axis of extent 1).
template <std::size_t N>
struct Loop {
    std::size_t rank = 0;
    std::array<std::size_t, kMaxRank> n{};
    std::array<std::array<std::int64_t, kMaxRank>, N> st{};
};

template <std::size_t N>
Loop<N> plan_loop(const Shape& over, const std::array<const Shape*, N>& shapes) {
    const std::size_t r = over.rank();
    std::array<std::array<std::int64_t, kMaxRank>, N> full{};
    for (std::size_t j = 0; j < N; ++j) {
        const Shape& s = *shapes[j];
        const std::size_t rs = s.rank();
        std::int64_t k = 1;
        for (std::size_t a = 0; a < rs; ++a) {  // from the last axis backwards
            const std::size_t src = rs - 1 - a;
            if (a < r) full[j][r - 1 - a] = s[src] == 1 ? 0 : k;
            k *= static_cast<std::int64_t>(s[src]);
        }
    }
    Loop<N> L;
    for (std::size_t a = 0; a < r; ++a) {
        const std::size_t n = over[a];
        if (n == 1) continue;
        bool merge = L.rank > 0;
        for (std::size_t j = 0; merge && j < N; ++j)
            merge = L.st[j][L.rank - 1] == full[j][a] * static_cast<std::int64_t>(n);
        if (merge) {
            L.n[L.rank - 1] *= n;
            for (std::size_t j = 0; j < N; ++j) L.st[j][L.rank - 1] = full[j][a];
        } else {
            L.n[L.rank] = n;
            for (std::size_t j = 0; j < N; ++j) L.st[j][L.rank] = full[j][a];
            ++L.rank;
        }
    }
    if (L.rank == 0) {
        L.rank = 1;
        L.n[0] = over.numel();  // 1, or 0 for an empty shape
    }
    return L;
}

// Calls inner(offsets, count, inner strides) once per row of the loop: tiers (b) and (c).
template <std::size_t N, class Inner>
void run_loop(const Loop<N>& L, Inner&& inner) {
    const std::size_t r = L.rank, n = L.n[r - 1];
    std::array<std::int64_t, N> in{};
    for (std::size_t j = 0; j < N; ++j) in[j] = L.st[j][r - 1];
    std::array<std::int64_t, N> off{};
    if (r == 1) {
        inner(off, n, in);
        return;
    }
    if (r == 2) {
        for (std::size_t i = 0; i < L.n[0]; ++i) {
            for (std::size_t j = 0; j < N; ++j) off[j] = static_cast<std::int64_t>(i) * L.st[j][0];
            inner(off, n, in);
        }
        return;
    }
    std::array<std::size_t, kMaxRank> idx{};
    std::size_t rows = 1;
    for (std::size_t a = 0; a + 1 < r; ++a) rows *= L.n[a];
    for (std::size_t row = 0; row < rows; ++row) {
        inner(off, n, in);
        for (std::size_t a = r - 1; a-- > 0;) {  // odometer over the outer axes
            ++idx[a];
            for (std::size_t j = 0; j < N; ++j) off[j] += L.st[j][a];
            if (idx[a] < L.n[a]) break;
            for (std::size_t j = 0; j < N; ++j) off[j] -= static_cast<std::int64_t>(idx[a]) * L.st[j][a];
            idx[a] = 0;
        }
    }
}

}  // namespace detail

// out = f(a, b) elementwise, a and b broadcast to out's shape (out = broadcast_shape(a, b)).
template <class T, class F>
[[gnu::noinline]] void broadcast_binary_strided(Tensor<T>& out, const Tensor<T>& a, const Tensor<T>& b, F f);

template <class T, class F>
[[gnu::always_inline]] inline void broadcast_binary(Tensor<T>& out, const Tensor<T>& a, const Tensor<T>& b, F f) {
    const std::size_t total = out.size();
    if (a.size() == total && b.size() == total) [[likely]] {  // (a): same elements, same order
        T* o = out.data();
        const T* pa = a.data();
        const T* pb = b.data();
        for (std::size_t i = 0; i < total; ++i) o[i] = f(pa[i], pb[i]);
        return;
    }
    broadcast_binary_strided(out, a, b, f);  // (the general loop, out of line)
}

template <class T, class F>
void broadcast_binary_strided(Tensor<T>& out, const Tensor<T>& a, const Tensor<T>& b, F f) {
    T* o = out.data();
    const T* pa = a.data();
    const T* pb = b.data();
    const Shape so = out.shape(), sa = a.shape(), sb = b.shape();
    const auto L = detail::plan_loop<3>(so, {&so, &sa, &sb});
    detail::run_loop(L, [&](const std::array<std::int64_t, 3>& off, std::size_t n,
                            const std::array<std::int64_t, 3>& in) {
        T* __restrict ro = o + off[0];
        const T* ra = pa + off[1];
        const T* rb = pb + off[2];
        if (in[1] == 1 && in[2] == 1)
            for (std::size_t j = 0; j < n; ++j) ro[j] = f(ra[j], rb[j]);
        else if (in[1] == 1)
            for (std::size_t j = 0; j < n; ++j) ro[j] = f(ra[j], rb[0]);
        else if (in[2] == 1)
            for (std::size_t j = 0; j < n; ++j) ro[j] = f(ra[0], rb[j]);
        else
            for (std::size_t j = 0; j < n; ++j) ro[j] = f(ra[0], rb[0]);
    });
}

// out = `in` summed over the axes along which out's shape stretches to in's.
template <class T>
void sum_to(Tensor<T>& out, const Tensor<T>& in) {
    T* o = out.data();
    const T* p = in.data();
    const Shape si = in.shape(), so = out.shape();
    if (so != si && !broadcastable(so, si)) fail("sum_to: cannot sum {} down to {}", si, so);
    if (out.size() == in.size()) {  // nothing stretched
        std::copy_n(p, in.size(), o);
        return;
    }
    std::fill_n(o, out.size(), T(0));
    const auto L = detail::plan_loop<2>(si, {&si, &so});
    detail::run_loop(L, [&](const std::array<std::int64_t, 2>& off, std::size_t n,
                            const std::array<std::int64_t, 2>& in_st) {
        const T* __restrict rp = p + off[0];
        T* __restrict ro = o + off[1];
        if (in_st[1] == 0) {  // a row summed into one element
            T s = 0;
            for (std::size_t j = 0; j < n; ++j) s += rp[j];
            ro[0] += s;
        } else {  // a row added onto a row
            for (std::size_t j = 0; j < n; ++j) ro[j] += rp[j];
        }
    });
}

// The VJP of an elementwise binary op, written in place (vjp_into, op.hpp): dst = (or, when
// `add`, dst +=) f(g, o) with o broadcast to g's shape, summed over the axes along which dst
// was broadcast. When dst has g's shape (the common case) this is one pass and no temporary.
template <class T, class F>
void write_broadcast_vjp(Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>& o, F f) {
    if (dst.size() != g.size()) {  // dst was broadcast: the full product, then its sums
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
    T* pd = dst.data();
    const T* pg = g.data();
    const T* po = o.data();
    auto row = [&]<bool Add>(std::int64_t og, std::int64_t oo, std::size_t n, std::int64_t so) {
        T* __restrict rd = pd + og;
        const T* __restrict rg = pg + og;
        const T* __restrict ro = po + oo;
        if (so == 1)
            for (std::size_t j = 0; j < n; ++j) rd[j] = Add ? rd[j] + f(rg[j], ro[j]) : f(rg[j], ro[j]);
        else
            for (std::size_t j = 0; j < n; ++j) rd[j] = Add ? rd[j] + f(rg[j], ro[0]) : f(rg[j], ro[0]);
    };
    if (o.size() == g.size()) {  // (a)
        if (add)
            row.template operator()<true>(0, 0, g.size(), 1);
        else
            row.template operator()<false>(0, 0, g.size(), 1);
        return;
    }
    const Shape sg = g.shape(), so = o.shape();
    const auto L = detail::plan_loop<2>(sg, {&sg, &so});
    detail::run_loop(L, [&](const std::array<std::int64_t, 2>& off, std::size_t n,
                            const std::array<std::int64_t, 2>& in) {
        if (add)
            row.template operator()<true>(off[0], off[1], n, in[1]);
        else
            row.template operator()<false>(off[0], off[1], n, in[1]);
    });
}

}  // namespace tapegrad
