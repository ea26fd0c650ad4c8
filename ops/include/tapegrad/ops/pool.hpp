// Pooling on NCHW tensors, PyTorch's semantics: max_pool2d (kernel, stride defaulting to the
// kernel, padding, dilation, ceil_mode), avg_pool2d (count_include_pad, ceil_mode) and global
// average pooling adaptive_avg_pool2d to 1×1.
//
// Output extent (torch's pooling_output_shape), per spatial axis:
//   out = ⌊(in + 2p − d·(k−1) − 1 + (ceil_mode ? s−1 : 0)) / s⌋ + 1,
//   minus one when ceil_mode and the last window would start in the right padding
//   ((out−1)·s ≥ in + p).
// Padding must be at most ⌊k/2⌋ (undilated k, torch's rule).
//
// max_pool2d: y = x at the window's argmax (the first maximum in row-major window order, as
// torch; padding never wins). Nothing is saved: the argmax is recomputed from x in the VJPs.
//   y = max_pool2d(x)                 dx = max_pool2d_backward(dy, x)   (dy scattered to the argmax)
//   z = max_pool2d_backward(g, x)     dg = max_pool2d_gather(dz, x)     (dz read at the argmax)
//   z = max_pool2d_gather(v, x)       dv = max_pool2d_backward(dz, x)
// and the argmax is piecewise constant in x: the x-adjoints of the last two are 0.
// avg_pool2d is linear: y = avg_pool2d(x), dx = avg_pool2d_backward(dy) (each window's adjoint
// divided by its divisor and spread over it), and the two are each other's VJP.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <string_view>
#include <type_traits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <tapegrad/core/engine_ops.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/parallel.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>
#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/reductions.hpp>

namespace tapegrad {

// kernel, stride (0: the kernel), padding and dilation as (height, width).
struct Pool2dParams {
    std::array<std::size_t, 2> kernel{1, 1};
    std::array<std::size_t, 2> stride{0, 0};
    std::array<std::size_t, 2> padding{0, 0};
    std::array<std::size_t, 2> dilation{1, 1};
    bool ceil_mode = false;
};

namespace detail {

struct PoolGeom {
    std::size_t n, c, h, w, oh, ow;
    std::size_t kh, kw, sh, sw, ph, pw, dh, dw;
};

inline std::size_t pool_out(std::size_t in, std::size_t k, std::size_t s, std::size_t p, std::size_t d,
                            bool ceil) {
    const std::size_t span = in + 2 * p - d * (k - 1) - 1;  // ≥ 0, checked by the caller
    std::size_t out = (span + (ceil ? s - 1 : 0)) / s + 1;
    if (ceil && (out - 1) * s >= in + p) --out;
    return out;
}

inline PoolGeom pool_geom(std::string_view op, const Shape& x, const Pool2dParams& q) {
    if (x.rank() != 4) fail("{}: input {} is not 4-D (N×C×H×W)", op, x);
    PoolGeom g{};
    g.n = x[0], g.c = x[1], g.h = x[2], g.w = x[3];
    g.kh = q.kernel[0], g.kw = q.kernel[1];
    g.sh = q.stride[0] ? q.stride[0] : g.kh, g.sw = q.stride[1] ? q.stride[1] : g.kw;
    g.ph = q.padding[0], g.pw = q.padding[1];
    g.dh = q.dilation[0], g.dw = q.dilation[1];
    if (g.kh == 0 || g.kw == 0) fail("{}: kernel {}×{} has a 0 (input {})", op, g.kh, g.kw, x);
    if (g.dh == 0 || g.dw == 0) fail("{}: dilation {}×{} has a 0 (input {})", op, g.dh, g.dw, x);
    if (g.ph > g.kh / 2 || g.pw > g.kw / 2)
        fail("{}: padding {}×{} should be at most half the kernel {}×{} (input {})", op, g.ph, g.pw, g.kh,
             g.kw, x);
    const std::size_t eh = g.dh * (g.kh - 1) + 1, ew = g.dw * (g.kw - 1) + 1;
    if (eh > g.h + 2 * g.ph || ew > g.w + 2 * g.pw)
        fail(
            "{}: dilated kernel extent {}×{} exceeds the padded input {}×{} (input {}, padding {}×{}, "
            "dilation "
            "{}×{})",
            op, eh, ew, g.h + 2 * g.ph, g.w + 2 * g.pw, x, g.ph, g.pw, g.dh, g.dw);
    g.oh = pool_out(g.h, g.kh, g.sh, g.ph, g.dh, q.ceil_mode);
    g.ow = pool_out(g.w, g.kw, g.sw, g.pw, g.dw, q.ceil_mode);
    return g;
}

// The first tap index t ≥ 0 with o + t·d ≥ 0, and one past the last with o + t·d < n (t < k).
inline void tap_range(std::ptrdiff_t o, std::size_t d, std::size_t k, std::size_t n, std::size_t& lo,
                      std::size_t& hi) {
    const std::ptrdiff_t dd = std::ptrdiff_t(d);
    lo = o < 0 ? std::size_t((-o + dd - 1) / dd) : 0;
    const std::ptrdiff_t last = std::ptrdiff_t(n) - 1 - o;  // largest t·d allowed
    hi = last < 0 ? 0 : std::min(k, std::size_t(last / dd) + 1);
    if (hi < lo) hi = lo;
}

// Flat index (within one H×W plane) of the first maximum of window (oy, ox) of plane x.
template <class T>
std::size_t pool_argmax(const T* x, const PoolGeom& g, std::size_t oy, std::size_t ox) {
    const std::ptrdiff_t y0 = std::ptrdiff_t(oy * g.sh) - std::ptrdiff_t(g.ph);
    const std::ptrdiff_t x0 = std::ptrdiff_t(ox * g.sw) - std::ptrdiff_t(g.pw);
    std::size_t i0, i1, j0, j1;
    tap_range(y0, g.dh, g.kh, g.h, i0, i1);
    tap_range(x0, g.dw, g.kw, g.w, j0, j1);
    if (i0 >= i1 || j0 >= j1) [[unlikely]]
        return 0;  // not reached: the shape checks leave an input element in every window
    std::size_t best =
        std::size_t(y0 + std::ptrdiff_t(i0 * g.dh)) * g.w + std::size_t(x0 + std::ptrdiff_t(j0 * g.dw));
    T m = x[best];
    if (m != m) return best;  // torch: a NaN wins
    for (std::size_t i = i0; i < i1; ++i) {
        const T* row = x + std::size_t(y0 + std::ptrdiff_t(i * g.dh)) * g.w;
        for (std::size_t j = j0; j < j1; ++j) {
            const std::size_t ix = std::size_t(x0 + std::ptrdiff_t(j * g.dw));
            const T v = row[ix];
            if (!(v <= m)) {  // v > m, or v is NaN: the first maximum stays otherwise
                m = v;
                best = std::size_t(row - x) + ix;
                if (v != v) return best;
            }
        }
    }
    return best;  // every window holds at least one input element (padding ≤ k/2)
}

// The 2×2 window (a, b over c, d) in row-major order through pool_argmax's rule (v replaces the
// maximum m when v > m or v is NaN, unless m is already NaN): its maximum m and the position
// k ∈ {0, 1, 2, 3} of the first maximum, branch-free.
template <class T>
[[gnu::always_inline]] inline T max4(T a, T b, T c, T d, unsigned& k) {
    T m = a;
    k = 0;
    const T v[3] = {b, c, d};
    for (unsigned i = 0; i < 3; ++i) {
        const bool take = !(v[i] <= m) & (m == m);
        m = take ? v[i] : m;
        k = take ? i + 1 : k;
    }
    return m;
}
// each(o, a) for every window o (row-major over oy, ox) of plane x with a = pool_argmax(x, g, oy, ox).
// Windows that lie inside the plane (no padding, no dilation: the usual 2×2 pool) take a
// direct loop with the same tie and NaN rule; the others go through pool_argmax.
template <class T, class F>
void pool_argmax_plane(const T* x, const PoolGeom& g, F&& each) {
    const bool plain = g.ph == 0 && g.pw == 0 && g.dh == 1 && g.dw == 1;
    // the rows and columns of windows that lie wholly inside the plane
    const std::size_t iy = plain ? std::min(g.oh, g.h >= g.kh ? (g.h - g.kh) / g.sh + 1 : 0) : 0;
    const std::size_t ix = plain ? std::min(g.ow, g.w >= g.kw ? (g.w - g.kw) / g.sw + 1 : 0) : 0;
    // Branch-free (the comparisons of real data are unpredictable): v replaces the maximum m
    // when v > m or v is NaN, unless m is already NaN (the first NaN wins) — pool_argmax's rule.
    auto inside = [&](std::size_t base) {
        std::size_t best = base;
        T m = x[best];
        for (std::size_t i = 0; i < g.kh; ++i) {
            const std::size_t r = base + i * g.w;
            for (std::size_t j = 0; j < g.kw; ++j) {
                const T v = x[r + j];
                const bool take = !(v <= m) && m == m;
                m = take ? v : m;
                best = take ? r + j : best;
            }
        }
        return best;
    };
    // The 2×2 window, unrolled (the CNNs' pool).
    auto inside2 = [&](std::size_t base) {
        const std::size_t at[4] = {base, base + 1, base + g.w, base + g.w + 1};
        unsigned k;
        max4(x[at[0]], x[at[1]], x[at[2]], x[at[3]], k);
        return at[k];
    };
    const bool two = g.kh == 2 && g.kw == 2;
    for (std::size_t oy = 0; oy < g.oh; ++oy) {
        std::size_t ox = 0;
        if (oy < iy && two)
            for (; ox < ix; ++ox) each(oy * g.ow + ox, inside2(oy * g.sh * g.w + ox * g.sw));
        else if (oy < iy)
            for (; ox < ix; ++ox) each(oy * g.ow + ox, inside(oy * g.sh * g.w + ox * g.sw));
        for (; ox < g.ow; ++ox) each(oy * g.ow + ox, pool_argmax(x, g, oy, ox));
    }
}

// The CNNs' pool: 2×2 windows at stride 2, no padding, no dilation. Its windows do not
// overlap; the first ⌊h/2⌋ rows and ⌊w/2⌋ columns of them lie inside the plane (ceil_mode adds
// a last row or column that does not, which the general path takes).
inline bool pool_is_2x2(const PoolGeom& g) {
    return g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 && g.dh == 1 && g.dw == 1;
}
// Planes per part of a parallel pool: at least 32 Ki input elements (below, waking a worker
// costs more than it saves).
inline std::size_t pool_grain(const PoolGeom& g) {
    return std::max<std::size_t>(1, (std::size_t(1) << 15) / std::max<std::size_t>(1, g.h * g.w));
}
// f(ox) for ox = 0, 4, 8, … covering [0, n) in blocks of four, n ≥ 4: when n is not a multiple
// of 4 the last block starts at n − 4 and overlaps the one before (the 2×2 kernels write each
// window from x and dy only, so writing it twice writes the same values).
template <class F>
void blocks_of_4(std::size_t n, F&& f) {
    for (std::size_t ox = 0;; ox += 4) {
        ox = std::min(ox, n - 4);
        f(ox);
        if (ox + 4 == n) return;
    }
}
#if defined(__SSE2__)
// Four 2×2 windows at once (float, SSE2: every x86-64): columns 2·ox … 2·ox + 7 of the window's
// two rows split into the taps a, b (top row, even and odd columns) and c, d (bottom row).
// pool_argmax's rule, as lanes: v replaces m when !(v ≤ m) and m is not NaN. Taken as
// (a, b), (c, d), then the two winners: the first maximum of a, b, c, d in that order (a later
// tap wins only when strictly greater) and the first NaN, exactly as the sequential rule.
struct Taps4 {
    __m128 a, b, c, d;
    static Taps4 load(const float* r0, const float* r1) noexcept {
        const __m128 t0 = _mm_loadu_ps(r0), t1 = _mm_loadu_ps(r0 + 4);
        const __m128 u0 = _mm_loadu_ps(r1), u1 = _mm_loadu_ps(r1 + 4);
        return {_mm_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0)), _mm_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 1, 3, 1)),
                _mm_shuffle_ps(u0, u1, _MM_SHUFFLE(2, 0, 2, 0)), _mm_shuffle_ps(u0, u1, _MM_SHUFFLE(3, 1, 3, 1))};
    }
    static __m128 pick(__m128 m, __m128 v) noexcept {
        const __m128 take = _mm_andnot_ps(_mm_cmple_ps(v, m), _mm_cmpeq_ps(m, m));
        return _mm_or_ps(_mm_and_ps(take, v), _mm_andnot_ps(take, m));
    }
    __m128 max() const noexcept { return pick(pick(a, b), pick(c, d)); }
};
#endif

// y = max_pool2d(x) through 2×2 stride-2 windows (pool_is_2x2): each output row from two input
// rows, no index kept; windows outside the plane (ceil_mode) through pool_argmax.
template <class T>
void max_pool_2x2(T* out, const T* x, const PoolGeom& g, std::size_t nc0, std::size_t nc1) {
    const std::size_t plane = g.h * g.w, oplane = g.oh * g.ow;
    const std::size_t iy = std::min(g.oh, g.h / 2), ix = std::min(g.ow, g.w / 2);
    for (std::size_t nc = nc0; nc < nc1; ++nc) {
        const T* xp = x + nc * plane;
        T* op = out + nc * oplane;
        for (std::size_t oy = 0; oy < g.oh; ++oy) {
            T* __restrict o = op + oy * g.ow;
            std::size_t ox = 0;
            if (oy < iy) {
                const T* __restrict r0 = xp + 2 * oy * g.w;
                const T* __restrict r1 = r0 + g.w;
#if defined(__SSE2__)
                if constexpr (std::is_same_v<T, float>)
                    if (ix >= 4) {
                        blocks_of_4(ix, [&](std::size_t b) {
                            _mm_storeu_ps(o + b, Taps4::load(r0 + 2 * b, r1 + 2 * b).max());
                        });
                        ox = ix;
                    }
#endif
                unsigned k;
                for (; ox < ix; ++ox) o[ox] = max4(r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1], k);
            }
            for (; ox < g.ow; ++ox) o[ox] = xp[pool_argmax(xp, g, oy, ox)];
        }
    }
}
// dx = dy scattered to the 2×2 windows' argmax (pool_is_2x2 with every window inside the
// plane): each window's four entries written once (dy at the argmax, 0 elsewhere), the odd last
// row and column (in no window) zeroed; no clearing pass, no read-modify-write.
// The argmax is the first tap equal to the maximum m, or the first NaN when m is NaN (then no
// tap equals m): masks rather than max4's index, so that the taps select without branches (the
// comparisons of real data are unpredictable).
template <class T>
void max_pool_2x2_backward(T* out, const T* gy, const T* x, const PoolGeom& g, std::size_t nc0, std::size_t nc1) {
    const std::size_t plane = g.h * g.w, oplane = g.oh * g.ow;
    for (std::size_t nc = nc0; nc < nc1; ++nc) {
        const T* xp = x + nc * plane;
        const T* gp = gy + nc * oplane;
        T* op = out + nc * plane;
        for (std::size_t oy = 0; oy < g.oh; ++oy) {
            const T* __restrict r0 = xp + 2 * oy * g.w;
            const T* __restrict r1 = r0 + g.w;
            T* __restrict d0 = op + 2 * oy * g.w;
            T* __restrict d1 = d0 + g.w;
            const T* __restrict gr = gp + oy * g.ow;
            std::size_t ox = 0;
#if defined(__SSE2__)
            if constexpr (std::is_same_v<T, float>)
                if (g.ow >= 4) {
                    blocks_of_4(g.ow, [&](std::size_t b) {
                        const Taps4 t = Taps4::load(r0 + 2 * b, r1 + 2 * b);
                        const __m128 m = t.max();
                        auto first = [&](__m128 v, __m128 before) {  // v is m or NaN, no earlier tap was
                            return _mm_andnot_ps(before, _mm_or_ps(_mm_cmpeq_ps(v, m), _mm_cmpunord_ps(v, v)));
                        };
                        const __m128 ea = first(t.a, _mm_setzero_ps());
                        const __m128 eb = first(t.b, ea);
                        const __m128 eab = _mm_or_ps(ea, eb);
                        const __m128 ec = first(t.c, eab);
                        const __m128 ed = _mm_andnot_ps(_mm_or_ps(eab, ec), _mm_castsi128_ps(_mm_set1_epi32(-1)));
                        const __m128 v = _mm_loadu_ps(gr + b);
                        const __m128 va = _mm_and_ps(ea, v), vb = _mm_and_ps(eb, v);
                        const __m128 vc = _mm_and_ps(ec, v), vd = _mm_and_ps(ed, v);
                        _mm_storeu_ps(d0 + 2 * b, _mm_unpacklo_ps(va, vb));
                        _mm_storeu_ps(d0 + 2 * b + 4, _mm_unpackhi_ps(va, vb));
                        _mm_storeu_ps(d1 + 2 * b, _mm_unpacklo_ps(vc, vd));
                        _mm_storeu_ps(d1 + 2 * b + 4, _mm_unpackhi_ps(vc, vd));
                    });
                    ox = g.ow;
                }
#endif
            for (; ox < g.ow; ++ox) {
                const T a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
                unsigned k;
                const T m = max4(a, b, c, d, k);
                const bool ea = (a == m) | (a != a);
                const bool eb = (!ea) & ((b == m) | (b != b));
                const bool ec = (!(ea | eb)) & ((c == m) | (c != c));
                const bool ed = !(ea | eb | ec);
                const T v = gr[ox];
                d0[2 * ox] = ea ? v : T(0);
                d0[2 * ox + 1] = eb ? v : T(0);
                d1[2 * ox] = ec ? v : T(0);
                d1[2 * ox + 1] = ed ? v : T(0);
            }
            if (g.w % 2) d0[g.w - 1] = d1[g.w - 1] = T(0);
        }
        if (g.h % 2) std::fill_n(op + (g.h - 1) * g.w, g.w, T(0));
    }
}

// out (y-shaped) = v at the argmax of x, window by window.
template <class T>
void pool_gather(T* out, const T* v, const T* x, const PoolGeom& g) {
    const std::size_t plane = g.h * g.w, oplane = g.oh * g.ow;
    for (std::size_t nc = 0; nc < g.n * g.c; ++nc) {
        const T* vp = v + nc * plane;
        T* op = out + nc * oplane;
        pool_argmax_plane(x + nc * plane, g, [&](std::size_t o, std::size_t a) { op[o] = vp[a]; });
    }
}

// Window (oy, ox)'s clipped bounds and torch's avg_pool2d divisor.
struct AvgWindow {
    std::size_t y0, y1, x0, x1;
    std::size_t divisor;
};
inline AvgWindow avg_window(const PoolGeom& g, std::size_t oy, std::size_t ox, bool count_include_pad) {
    std::ptrdiff_t hs = std::ptrdiff_t(oy * g.sh) - std::ptrdiff_t(g.ph);
    std::ptrdiff_t ws = std::ptrdiff_t(ox * g.sw) - std::ptrdiff_t(g.pw);
    std::ptrdiff_t he = std::min(hs + std::ptrdiff_t(g.kh), std::ptrdiff_t(g.h + g.ph));
    std::ptrdiff_t we = std::min(ws + std::ptrdiff_t(g.kw), std::ptrdiff_t(g.w + g.pw));
    const std::size_t pool_size = std::size_t((he - hs) * (we - ws));
    hs = std::max<std::ptrdiff_t>(hs, 0), ws = std::max<std::ptrdiff_t>(ws, 0);
    he = std::min(he, std::ptrdiff_t(g.h)), we = std::min(we, std::ptrdiff_t(g.w));
    AvgWindow a{std::size_t(hs), std::size_t(he), std::size_t(ws), std::size_t(we), pool_size};
    if (!count_include_pad) a.divisor = std::size_t((he - hs) * (we - ws));
    return a;
}

}  // namespace detail

struct MaxPool2dBackward;
struct MaxPool2dGather;

// y = max over each window of x.  dx = max_pool2d_backward(dy, x).
struct MaxPool2d {
    static constexpr std::string_view name = "max_pool2d";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"maxpool({0})", "max_pool2d({0})", Prec::Atom};
    Pool2dParams q;

    Shape shape(Shape x) const {
        const detail::PoolGeom g = detail::pool_geom(name, x, q);
        return {g.n, g.c, g.oh, g.ow};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        const detail::PoolGeom g = detail::pool_geom(name, x.shape(), q);
        if (detail::pool_is_2x2(g))  // planes side by side on parallel_for's threads (disjoint outputs)
            parallel_for(g.n * g.c, detail::pool_grain(g), [&](std::size_t b, std::size_t e) {
                detail::max_pool_2x2(out.data(), x.data(), g, b, e);
            });
        else
            detail::pool_gather(out.data(), x.data(), x.data(), g);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const;
};

// z = g scattered into zeros shaped like x at each window's argmax (overlapping windows add).
// dg = max_pool2d_gather(dz, x);  dx = 0.
struct MaxPool2dBackward {
    static constexpr std::string_view name = "max_pool2d_backward";
    static constexpr std::size_t arity = 2;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"maxpoolᵀ({0}; {1})", "max_pool2d_backward({0}, {1})", Prec::Atom};
    Pool2dParams q;

    Shape shape(Shape gs, Shape x) const {
        const detail::PoolGeom g = detail::pool_geom(name, x, q);
        if (gs != Shape{g.n, g.c, g.oh, g.ow})
            fail("{}: adjoint {} does not match max_pool2d({})'s output ({}×{}×{}×{})", name, gs, x, g.n, g.c,
                 g.oh, g.ow);
        return x;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& gy, const Tensor<T>& x) const {
        const detail::PoolGeom g = detail::pool_geom(name, x.shape(), q);
        if (detail::pool_is_2x2(g) && g.oh == g.h / 2 && g.ow == g.w / 2)  // every window inside
            return parallel_for(g.n * g.c, detail::pool_grain(g), [&](std::size_t b, std::size_t e) {
                detail::max_pool_2x2_backward(out.data(), gy.data(), x.data(), g, b, e);
            });
        out.fill(T(0));
        const std::size_t plane = g.h * g.w, oplane = g.oh * g.ow;
        for (std::size_t nc = 0; nc < g.n * g.c; ++nc) {
            const T* xp = x.data() + nc * plane;
            const T* gp = gy.data() + nc * oplane;
            T* op = out.data() + nc * plane;
            detail::pool_argmax_plane(xp, g, [&](std::size_t o, std::size_t a) { op[a] += gp[o]; });
        }
    }
    template <class V>
    V vjp(In<0>, const V& dz, const V&, const V&, const V& x) const;
    template <class V>
    V vjp(In<1>, const V&, const V&, const V&, const V& x) const {
        return apply(ZerosLike{}, x);
    }
};

// z = v read at each window's argmax of x (v shaped like x, z like max_pool2d(x)).
// dv = max_pool2d_backward(dz, x);  dx = 0.
struct MaxPool2dGather {
    static constexpr std::string_view name = "max_pool2d_gather";
    static constexpr std::size_t arity = 2;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"maxpool({0}; {1})", "max_pool2d_gather({0}, {1})", Prec::Atom};
    Pool2dParams q;

    Shape shape(Shape v, Shape x) const {
        if (v != x) fail("{}: values {} and input {} differ in shape", name, v, x);
        const detail::PoolGeom g = detail::pool_geom(name, x, q);
        return {g.n, g.c, g.oh, g.ow};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& v, const Tensor<T>& x) const {
        detail::pool_gather(out.data(), v.data(), x.data(), detail::pool_geom(name, x.shape(), q));
    }
    template <class V>
    V vjp(In<0>, const V& dz, const V&, const V&, const V& x) const {
        return apply(MaxPool2dBackward{q}, dz, x);
    }
    template <class V>
    V vjp(In<1>, const V&, const V&, const V&, const V& x) const {
        return apply(ZerosLike{}, x);
    }
};

template <class V>
V MaxPool2d::vjp(In<0>, const V& g, const V&, const V& x) const {
    return apply(MaxPool2dBackward{q}, g, x);
}
template <class V>
V MaxPool2dBackward::vjp(In<0>, const V& dz, const V&, const V&, const V& x) const {
    return apply(MaxPool2dGather{q}, dz, x);
}

struct AvgPool2dBackward;

// y = Σ_window x / divisor (torch's divisor: the window clipped to the padded input when
// count_include_pad, else to the input).  dx = avg_pool2d_backward(dy).
struct AvgPool2d {
    static constexpr std::string_view name = "avg_pool2d";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"avgpool({0})", "avg_pool2d({0})", Prec::Atom};
    Pool2dParams q;  // dilation must be 1
    bool count_include_pad = true;

    detail::PoolGeom geom(const Shape& x) const {
        if (q.dilation[0] != 1 || q.dilation[1] != 1)
            fail("avg_pool2d: dilation {}×{} (avg_pool2d has none; input {})", q.dilation[0], q.dilation[1],
                 x);
        return detail::pool_geom(name, x, q);
    }
    Shape shape(Shape x) const {
        const detail::PoolGeom g = geom(x);
        return {g.n, g.c, g.oh, g.ow};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        const detail::PoolGeom g = geom(x.shape());
        const std::size_t plane = g.h * g.w, oplane = g.oh * g.ow;
        for (std::size_t nc = 0; nc < g.n * g.c; ++nc) {
            const T* xp = x.data() + nc * plane;
            T* op = out.data() + nc * oplane;
            for (std::size_t oy = 0; oy < g.oh; ++oy)
                for (std::size_t ox = 0; ox < g.ow; ++ox) {
                    const detail::AvgWindow a = detail::avg_window(g, oy, ox, count_include_pad);
                    T s = 0;
                    for (std::size_t i = a.y0; i < a.y1; ++i)
                        for (std::size_t j = a.x0; j < a.x1; ++j) s += xp[i * g.w + j];
                    op[oy * g.ow + ox] = s / static_cast<T>(a.divisor);
                }
        }
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const;
};

// dx = each window's dy / divisor, spread over the window (shape `in`).  Its VJP: avg_pool2d.
struct AvgPool2dBackward {
    static constexpr std::string_view name = "avg_pool2d_backward";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"avgpoolᵀ({0})", "avg_pool2d_backward({0})", Prec::Atom};
    Pool2dParams q;
    bool count_include_pad = true;
    Shape in;

    Shape shape(Shape gs) const {
        const Shape want = AvgPool2d{q, count_include_pad}.shape(in);
        if (gs != want) fail("{}: adjoint {} does not match avg_pool2d({})'s output {}", name, gs, in, want);
        return in;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& gy) const {
        const detail::PoolGeom g = AvgPool2d{q, count_include_pad}.geom(in);
        out.fill(T(0));
        const std::size_t plane = g.h * g.w, oplane = g.oh * g.ow;
        for (std::size_t nc = 0; nc < g.n * g.c; ++nc) {
            const T* gp = gy.data() + nc * oplane;
            T* op = out.data() + nc * plane;
            for (std::size_t oy = 0; oy < g.oh; ++oy)
                for (std::size_t ox = 0; ox < g.ow; ++ox) {
                    const detail::AvgWindow a = detail::avg_window(g, oy, ox, count_include_pad);
                    const T v = gp[oy * g.ow + ox] / static_cast<T>(a.divisor);
                    for (std::size_t i = a.y0; i < a.y1; ++i)
                        for (std::size_t j = a.x0; j < a.x1; ++j) op[i * g.w + j] += v;
                }
        }
    }
    template <class V>
    V vjp(In<0>, const V& dz, const V&, const V&) const {
        return apply(AvgPool2d{q, count_include_pad}, dz);
    }
};

template <class V>
V AvgPool2d::vjp(In<0>, const V& g, const V&, const V& x) const {
    return apply(AvgPool2dBackward{q, count_include_pad, x.shape()}, g);
}

// ---- functions ---------------------------------------------------------------------------------

template <Value V>
V max_pool2d(const V& x, Pool2dParams q, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(MaxPool2d{q}, x);
}
template <Value V>
V avg_pool2d(const V& x, Pool2dParams q, bool count_include_pad = true,
             SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(AvgPool2d{q, count_include_pad}, x);
}
// Global average pooling: N×C×H×W → N×C×1×1, the mean of each plane (sum_to, then a scale;
// dx = dy / (H·W) stretched over the plane).
template <Value V>
V adaptive_avg_pool2d(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape s = x.shape();
    if (s.rank() != 4) fail("adaptive_avg_pool2d: input {} is not 4-D (N×C×H×W)", s);
    if (s[2] * s[3] == 0) fail("adaptive_avg_pool2d: input {} has an empty plane", s);
    return apply(Scale{1.0 / static_cast<double>(s[2] * s[3])}, apply(SumTo{Shape{s[0], s[1], 1, 1}}, x));
}

}  // namespace tapegrad
