// 2-D convolution on NCHW tensors (PyTorch's conv2d: cross-correlation, stride, zero padding,
// dilation, groups), through im2col + GEMM, and the im2col / col2im pair as ops of their own.
//
// Shapes: x N×C×H×W, w O×(C/G)×kh×kw, y N×O×OH×OW with
//   OH = ⌊(H + 2·ph − dh·(kh−1) − 1) / sh⌋ + 1   (and likewise OW)
// For image n and group g (Cg = C/G input and Og = O/G output channels, K = Cg·kh·kw, P = OH·OW):
//   cols = im2col(x[n, g])                      K×P
//   y[n, g] = W_g · cols                        (Og×K)·(K×P)
// so that
//   dx[n, g] = col2im(W_gᵀ · dy[n, g])          (K×Og)·(Og×P), scattered back (adding overlaps)
//   dW_g     = Σₙ dy[n, g] · colsᵀ              (Og×P)·(P×K)
//
// Three ops form a family closed under differentiation, so that every order works:
//   y  = conv2d(x, w)                 dx = conv2d_input_grad(dy, w)     dw = conv2d_weight_grad(x, dy)
//   z  = conv2d_input_grad(g, w)      dg = conv2d(dz, w)                dw = conv2d_weight_grad(dz, g)
//   z  = conv2d_weight_grad(x, g)     dx = conv2d_input_grad(g, dz)     dg = conv2d(x, dz)
// (each is bilinear; the second line and third lines are the first one's VJPs read as functions
// of their two arguments). With a bias, conv2d_bias writes b into the output rows and the GEMM
// adds W·cols (β = 1); db = Σ_{n,y,x} dY (sum_to 1×O×1×1). In the numeric sweep the adjoints are
// written in place (vjp_into): dX straight into X's adjoint, dW into the parameter's buffer.
//
// Memory: the batch is processed one image at a time (a chunk of one) through one reused,
// per-thread scratch buffer of K·P elements = (C/G)·kh·kw·OH·OW (for conv2d_weight_grad and
// conv2d_input_grad likewise); it grows to the largest layer's size once and is then reused,
// so the extra memory does not grow with the batch and a steady-state step allocates nothing.
// A 1×1 kernel with stride 1, no padding and dilation 1 skips im2col (cols is x itself).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <string_view>
#include <tapegrad/core/engine_ops.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/parallel.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>
#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/views.hpp>
#include <vector>

namespace tapegrad {

// stride, padding and dilation as (height, width); groups divides both channel counts.
struct Conv2dParams {
    std::array<std::size_t, 2> stride{1, 1};
    std::array<std::size_t, 2> padding{0, 0};
    std::array<std::size_t, 2> dilation{1, 1};
    std::size_t groups = 1;
};

namespace detail {

// Every extent of one convolution, checked.
struct ConvGeom {
    std::size_t n, c, h, w;  // input
    std::size_t o, kh, kw;   // weight (O × C/G × kh × kw)
    std::size_t oh, ow;      // output spatial extents
    std::size_t g, cg, og;   // groups, channels per group in and out
    std::size_t k() const noexcept { return cg * kh * kw; }
    std::size_t p() const noexcept { return oh * ow; }
};

// The geometry of conv2d(x: xs, w: ws), or an Error naming `op`, the shapes and the parameter.
inline ConvGeom conv_geom(std::string_view op, const Shape& xs, const Shape& ws, const Conv2dParams& p) {
    if (xs.rank() != 4) fail("{}: input {} is not 4-D (N×C×H×W)", op, xs);
    if (ws.rank() != 4) fail("{}: weight {} is not 4-D (O×C/groups×kh×kw)", op, ws);
    const auto [sh, sw] = p.stride;
    const auto [dh, dw] = p.dilation;
    const auto [ph, pw] = p.padding;
    if (sh == 0 || sw == 0) fail("{}: stride {}×{} has a 0 (input {}, weight {})", op, sh, sw, xs, ws);
    if (dh == 0 || dw == 0) fail("{}: dilation {}×{} has a 0 (input {}, weight {})", op, dh, dw, xs, ws);
    if (p.groups == 0) fail("{}: groups = 0 (input {}, weight {})", op, xs, ws);
    ConvGeom g{};
    g.n = xs[0], g.c = xs[1], g.h = xs[2], g.w = xs[3];
    g.o = ws[0], g.kh = ws[2], g.kw = ws[3];
    g.g = p.groups;
    if (g.c % g.g != 0)
        fail("{}: groups = {} does not divide the input's {} channels (input {})", op, g.g, g.c, xs);
    if (g.o % g.g != 0)
        fail("{}: groups = {} does not divide the weight's {} output channels (weight {})", op, g.g, g.o, ws);
    g.cg = g.c / g.g, g.og = g.o / g.g;
    if (ws[1] != g.cg)
        fail("{}: input {} has {} channels; weight {} with groups = {} expects {} (= {}·{})", op, xs, g.c, ws,
             g.g, ws[1] * g.g, ws[1], g.g);
    if (g.kh == 0 || g.kw == 0) fail("{}: empty kernel in weight {}", op, ws);
    const std::size_t eh = dh * (g.kh - 1) + 1, ew = dw * (g.kw - 1) + 1;
    if (eh > g.h + 2 * ph || ew > g.w + 2 * pw)
        fail(
            "{}: dilated kernel extent {}×{} (dilation·(k−1)+1) exceeds the padded input {}×{} (input {}, "
            "weight "
            "{}, padding {}×{}, dilation {}×{})",
            op, eh, ew, g.h + 2 * ph, g.w + 2 * pw, xs, ws, ph, pw, dh, dw);
    g.oh = (g.h + 2 * ph - eh) / sh + 1;
    g.ow = (g.w + 2 * pw - ew) / sw + 1;
    return g;
}

// Whether im2col is the identity (a 1×1 kernel at stride 1, no padding).
inline bool conv_is_pointwise(const ConvGeom& g, const Conv2dParams& p) {
    return g.kh == 1 && g.kw == 1 && p.stride[0] == 1 && p.stride[1] == 1 && p.padding[0] == 0 &&
           p.padding[1] == 0;
}

// The output columns [lo, hi) whose input column ox·s + d lies in [0, w) (lo ≤ hi ≤ ow).
inline void valid_columns(std::ptrdiff_t d, std::ptrdiff_t s, std::ptrdiff_t w, std::size_t ow, std::size_t& lo,
                          std::size_t& hi) {
    const std::ptrdiff_t l = d >= 0 ? 0 : (-d + s - 1) / s;
    const std::ptrdiff_t h = w - 1 - d < 0 ? 0 : (w - 1 - d) / s + 1;
    lo = std::min(std::size_t(l), ow);
    hi = std::max(lo, std::min(std::size_t(h), ow));
}

// The conv rows here are short (LeNet's 10 and 28 columns, the demo CNN's 14 and 28): GCC would
// turn the copy, fill and add loops below into memmove/memset calls, whose call and dispatch
// cost more than the copy itself at these lengths (measured: a third of im2col's time). Inline
// loops vectorise instead.
#if defined(__GNUC__) && !defined(__clang__)
#define TAPEGRAD_INLINE_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define TAPEGRAD_INLINE_LOOPS
#endif

// cols (cg·kh·kw)×(oh·ow) from one image's cg channels x (cg×h×w); zero where the window
// reads padding. Row (c, i, j) holds x[c, oy·sh − ph + i·dh, ox·sw − pw + j·dw] over (oy, ox).
// Each output row splits into padding on the left, a (strided) copy and padding on the right.
template <class T>
TAPEGRAD_INLINE_LOOPS void im2col_image(const T* x, const ConvGeom& g, const Conv2dParams& p, std::size_t channels,
                                        T* cols) {
    const std::ptrdiff_t H = std::ptrdiff_t(g.h), W = std::ptrdiff_t(g.w);
    const std::ptrdiff_t sh = std::ptrdiff_t(p.stride[0]), sw = std::ptrdiff_t(p.stride[1]);
    const std::ptrdiff_t ph = std::ptrdiff_t(p.padding[0]), pw = std::ptrdiff_t(p.padding[1]);
    const std::ptrdiff_t dh = std::ptrdiff_t(p.dilation[0]), dw = std::ptrdiff_t(p.dilation[1]);
    const std::size_t ow = g.ow;
    for (std::size_t c = 0; c < channels; ++c) {
        const T* xc = x + c * g.h * g.w;
        for (std::size_t i = 0; i < g.kh; ++i)
            for (std::size_t j = 0; j < g.kw; ++j) {
                const std::ptrdiff_t di = std::ptrdiff_t(i) * dh - ph, dj = std::ptrdiff_t(j) * dw - pw;
                std::size_t lo, hi;
                valid_columns(dj, sw, W, ow, lo, hi);
                for (std::size_t oy = 0; oy < g.oh; ++oy, cols += ow) {
                    T* __restrict out = cols;
                    const std::ptrdiff_t iy = std::ptrdiff_t(oy) * sh + di;
                    if (iy < 0 || iy >= H) {
                        for (std::size_t ox = 0; ox < ow; ++ox) out[ox] = T(0);
                        continue;
                    }
                    const T* __restrict row = xc + iy * W;  // row[ox·sw + dj] for ox in [lo, hi)
                    for (std::size_t ox = 0; ox < lo; ++ox) out[ox] = T(0);
                    if (sw == 1) {
                        const T* __restrict src = row + dj;
                        for (std::size_t ox = lo; ox < hi; ++ox) out[ox] = src[ox];
                    } else {
                        for (std::size_t ox = lo; ox < hi; ++ox) out[ox] = row[std::ptrdiff_t(ox) * sw + dj];
                    }
                    for (std::size_t ox = hi; ox < ow; ++ox) out[ox] = T(0);
                }
            }
    }
}

// The adjoint of im2col_image: x (channels×h×w) += the columns scattered back, overlaps added.
template <class T>
TAPEGRAD_INLINE_LOOPS void col2im_image_add(const T* cols, const ConvGeom& g, const Conv2dParams& p,
                                            std::size_t channels, T* x) {
    const std::ptrdiff_t H = std::ptrdiff_t(g.h), W = std::ptrdiff_t(g.w);
    const std::ptrdiff_t sh = std::ptrdiff_t(p.stride[0]), sw = std::ptrdiff_t(p.stride[1]);
    const std::ptrdiff_t ph = std::ptrdiff_t(p.padding[0]), pw = std::ptrdiff_t(p.padding[1]);
    const std::ptrdiff_t dh = std::ptrdiff_t(p.dilation[0]), dw = std::ptrdiff_t(p.dilation[1]);
    for (std::size_t c = 0; c < channels; ++c) {
        T* xc = x + c * g.h * g.w;
        for (std::size_t i = 0; i < g.kh; ++i)
            for (std::size_t j = 0; j < g.kw; ++j) {
                const std::ptrdiff_t di = std::ptrdiff_t(i) * dh - ph, dj = std::ptrdiff_t(j) * dw - pw;
                std::size_t lo, hi;
                valid_columns(dj, sw, W, g.ow, lo, hi);
                for (std::size_t oy = 0; oy < g.oh; ++oy, cols += g.ow) {
                    const std::ptrdiff_t iy = std::ptrdiff_t(oy) * sh + di;
                    if (iy < 0 || iy >= H) continue;
                    T* row = xc + iy * W;
                    const T* __restrict in = cols;
                    if (sw == 1) {  // contiguous: vectorises
                        T* __restrict dst = row + dj;
                        for (std::size_t ox = lo; ox < hi; ++ox) dst[ox] += in[ox];
                    } else {
                        for (std::size_t ox = lo; ox < hi; ++ox) row[std::ptrdiff_t(ox) * sw + dj] += in[ox];
                    }
                }
            }
    }
}

#undef TAPEGRAD_INLINE_LOOPS

// The per-thread scratch region the conv kernels reuse (grows to the largest request, once).
template <class T>
T* conv_scratch(std::size_t n) {
    thread_local std::vector<T> buf;
    if (buf.size() < n) buf.resize(n);
    return buf.data();
}

// A non-owning row-major m×n matrix over `p`, for gemm.
template <class T>
Tensor<T> mat(const T* p, std::size_t m, std::size_t n) {
    return Tensor<T>::view(const_cast<T*>(p), Shape{m, n}, std::pmr::get_default_resource());
}

// f(n, gi, cols) for every image n in [n0, n1) and group gi in order, cols the K×P columns of
// x[n, gi]: im2col'd into the calling thread's scratch, or x[n, gi] itself when the kernel is
// pointwise. The prologue the forward and the weight gradient share (each reads x through im2col).
template <class T, class F>
void for_each_image_cols(const T* x, const ConvGeom& g, const Conv2dParams& p, std::size_t n0, std::size_t n1,
                         F&& f) {
    const bool pointwise = conv_is_pointwise(g, p);
    T* cols = pointwise ? nullptr : conv_scratch<T>(g.k() * g.p());
    for (std::size_t n = n0; n < n1; ++n)
        for (std::size_t gi = 0; gi < g.g; ++gi) {
            const T* xi = x + (n * g.c + gi * g.cg) * g.h * g.w;
            if (!pointwise) im2col_image(xi, g, p, g.cg, cols);
            f(n, gi, pointwise ? xi : static_cast<const T*>(cols));
        }
}

// body(n0, n1) over the images [0, g.n): side by side on parallel_for's threads, one range of
// images each with its own scratch, when OpenBLAS would run the per-image GEMM (m·n·k) on one
// thread anyway — OpenBLAS 0.3.21 keeps a GEMM with m·n·k ≤ 65536·4 on one thread
// (interface/gemm.c: SMP_THRESHOLD_MIN · GEMM_MULTITHREAD_THRESHOLD) — and otherwise on the
// caller, image after image, its GEMMs threaded by OpenBLAS. Each image's output is computed by
// the same calls either way: the result does not depend on the thread count.
template <class F>
void for_image_ranges(const ConvGeom& g, std::size_t m, std::size_t n, std::size_t k, F&& body) {
    if (double(m) * double(n) * double(k) <= 65536.0 * 4)
        parallel_for(g.n, 1, body);
    else
        body(std::size_t(0), g.n);
}

// The three kernels, shared by the ops' forwards and their vjp_into (add: accumulate into out).
// y = conv2d(x, w) (+ bias[o] on channel o when bias is given: the bias rows are written
// first and the GEMM adds W·cols with β = 1, as Affine does).
template <class T>
void conv_forward(Tensor<T>& out, const Tensor<T>& x, const Tensor<T>& w, const T* bias, const Conv2dParams& p,
                  std::string_view op) {
    const ConvGeom g = conv_geom(op, x.shape(), w.shape(), p);
    const std::size_t K = g.k(), P = g.p();
    for_image_ranges(g, g.og, P, K, [&](std::size_t n0, std::size_t n1) {
        for_each_image_cols(x.data(), g, p, n0, n1, [&](std::size_t n, std::size_t gi, const T* c) {
            T* yp = out.data() + (n * g.o + gi * g.og) * P;
            if (bias)
                for (std::size_t o = 0; o < g.og; ++o) std::fill_n(yp + o * P, P, bias[gi * g.og + o]);
            Tensor<T> yi = mat(yp, g.og, P);
            gemm(false, false, T(1), mat(w.data() + gi * g.og * K, g.og, K), mat(c, K, P), bias ? T(1) : T(0), yi);
        });
    });
}
// out (x's shape `in`) = (or +=) col2im(W_gᵀ · gy[n, g]) image by image.
template <class T>
void conv_input_grad(Tensor<T>& out, const Tensor<T>& gy, const Tensor<T>& w, const Shape& in,
                     const Conv2dParams& p, bool add, std::string_view op) {
    const ConvGeom g = conv_geom(op, in, w.shape(), p);
    const std::size_t K = g.k(), P = g.p();
    const bool pointwise = conv_is_pointwise(g, p);
    for_image_ranges(g, K, P, g.og, [&](std::size_t n0, std::size_t n1) {
        T* cols = pointwise ? nullptr : conv_scratch<T>(K * P);
        const std::size_t image = g.c * g.h * g.w;
        if (!pointwise && !add) std::fill_n(out.data() + n0 * image, (n1 - n0) * image, T(0));
        for (std::size_t n = n0; n < n1; ++n)
            for (std::size_t gi = 0; gi < g.g; ++gi) {
                T* xi = out.data() + (n * g.c + gi * g.cg) * g.h * g.w;
                Tensor<T> c = mat(pointwise ? xi : cols, K, P);
                gemm(true, false, T(1), mat(w.data() + gi * g.og * K, g.og, K),
                     mat(gy.data() + (n * g.o + gi * g.og) * P, g.og, P), pointwise && add ? T(1) : T(0), c);
                if (!pointwise) col2im_image_add(cols, g, p, g.cg, xi);
            }
    });
}
// out (`wshape`) = (or +=) Σₙ gy[n, g] · im2col(x[n, g])ᵀ: the first image's GEMM overwrites
// (β = 0) unless adding, so that no pass clears out first.
template <class T>
void conv_weight_grad(Tensor<T>& out, const Tensor<T>& x, const Tensor<T>& gy, const Shape& wshape,
                      const Conv2dParams& p, bool add, std::string_view op) {
    const ConvGeom g = conv_geom(op, x.shape(), wshape, p);
    const std::size_t K = g.k(), P = g.p();
    if (g.n == 0 && !add) out.fill(T(0));
    for_each_image_cols(x.data(), g, p, 0, g.n, [&](std::size_t n, std::size_t gi, const T* c) {
        Tensor<T> wg = mat(out.data() + gi * g.og * K, g.og, K);
        gemm(false, true, T(1), mat(gy.data() + (n * g.o + gi * g.og) * P, g.og, P), mat(c, K, P),
             n == 0 && !add ? T(0) : T(1), wg);
    });
}
// Σ r[0, P) in 8 interleaved partial sums, combined pairwise: no serial chain of dependent adds
// (the compiler vectorises the lanes), and a rounding error that grows more slowly than a
// left-to-right sum's.
template <class T>
T lane_sum(const T* __restrict r, std::size_t P) {
    constexpr std::size_t L = 8;
    T acc[L] = {};
    std::size_t k = 0;
    for (; k + L <= P; k += L)
        for (std::size_t l = 0; l < L; ++l) acc[l] += r[k + l];
    for (std::size_t l = 0; k < P; ++k, ++l) acc[l] += r[k];
    for (std::size_t w = L / 2; w > 0; w /= 2)
        for (std::size_t l = 0; l < w; ++l) acc[l] += acc[l + w];
    return acc[0];
}
// out (O elements) = (or +=) Σ over n and positions of gy[n, o]: the bias's adjoint, in one pass
// over gy in memory order (image by image, each channel's plane by lane_sum).
template <class T>
void conv_bias_grad(Tensor<T>& out, const Tensor<T>& gy, bool add) {
    const Shape s = gy.shape();
    const std::size_t N = s[0], O = s[1], P = s[2] * s[3];
    T* o = out.data();
    if (!add) std::fill_n(o, O, T(0));
    for (std::size_t n = 0; n < N; ++n)
        for (std::size_t c = 0; c < O; ++c) o[c] += lane_sum(gy.data() + (n * O + c) * P, P);
}

}  // namespace detail

struct Conv2dInputGrad;
struct Conv2dWeightGrad;

// Y = conv2d(X, W) (no bias: Conv2dBias below adds it in the same pass).
// dX = conv2d_input_grad(dY, W), dW = conv2d_weight_grad(X, dY)  (see the top of this file).
struct Conv2d {
    static constexpr std::string_view name = "conv2d";
    static constexpr std::size_t arity = 2;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"{0} ⋆ {1}", "conv2d({0}, {1})", Prec::Product};
    Conv2dParams p;

    Shape shape(Shape x, Shape w) const {
        const detail::ConvGeom g = detail::conv_geom(name, x, w, p);
        return {g.n, g.o, g.oh, g.ow};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x, const Tensor<T>& w) const {
        detail::conv_forward<T>(out, x, w, nullptr, p, name);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x, const V& w) const;
    template <class V>
    V vjp(In<1>, const V& g, const V&, const V& x, const V& w) const;
    // The numeric sweep writes both adjoints in place (no temporary, no extra pass).
    template <class T>
    void vjp_into(In<0>, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>&, const Tensor<T>& x,
                  const Tensor<T>& w) const {
        detail::conv_input_grad(dst, g, w, x.shape(), p, add, name);
    }
    template <class T>
    void vjp_into(In<1>, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>&, const Tensor<T>& x,
                  const Tensor<T>& w) const {
        detail::conv_weight_grad(dst, x, g, w.shape(), p, add, name);
    }
};

// Y = conv2d(X, W) + b (b: O elements, added to every position of channel o), in one kernel.
// dX and dW as conv2d's;  db = Σ_{n, y, x} dY[n, ·, y, x]  (sum_to 1×O×1×1, reshaped to O).
struct Conv2dBias {
    static constexpr std::string_view name = "conv2d_bias";
    static constexpr std::size_t arity = 3;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"{0} ⋆ {1} + {2}", "conv2d({0}, {1}) + {2}", Prec::Sum};
    Conv2dParams p;

    Shape shape(Shape x, Shape w, Shape b) const {
        const detail::ConvGeom g = detail::conv_geom("conv2d", x, w, p);
        if (b.numel() != g.o)
            fail("conv2d: bias {} has {} elements; weight {} has {} output channels", b, b.numel(), w, g.o);
        return {g.n, g.o, g.oh, g.ow};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& b) const {
        detail::conv_forward<T>(out, x, w, b.data(), p, "conv2d");
    }
    template <class V>
    V vjp(In<0>, const V& g, const V& y, const V& x, const V& w, const V&) const {
        return Conv2d{p}.vjp(In<0>{}, g, y, x, w);
    }
    template <class V>
    V vjp(In<1>, const V& g, const V& y, const V& x, const V& w, const V&) const {
        return Conv2d{p}.vjp(In<1>{}, g, y, x, w);
    }
    template <class V>
    V vjp(In<2>, const V& g, const V&, const V&, const V&, const V& b) const {
        const Shape s = g.shape();
        return apply(Reshape{b.shape()}, apply(SumTo{Shape{1, s[1], 1, 1}}, g));
    }
    template <class T, std::size_t I>
        requires(I < 2)
    void vjp_into(In<I> in, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>& y, const Tensor<T>& x,
                  const Tensor<T>& w, const Tensor<T>&) const {
        Conv2d{p}.vjp_into(in, dst, add, g, y, x, w);
    }
    template <class T>
    void vjp_into(In<2>, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>&, const Tensor<T>&,
                  const Tensor<T>&, const Tensor<T>&) const {
        detail::conv_bias_grad(dst, g, add);
    }
};

// Z = conv2d_input_grad(G, W): the adjoint of conv2d's input, shaped like X (`in`).
//   Z[n, g] = col2im(W_gᵀ · G[n, g]).     dG = conv2d(dZ, W),  dW = conv2d_weight_grad(dZ, G).
struct Conv2dInputGrad {
    static constexpr std::string_view name = "conv2d_input_grad";
    static constexpr std::size_t arity = 2;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"{0} ⋆ᵀ {1}", "conv2d_input_grad({0}, {1})", Prec::Product};
    Conv2dParams p;
    Shape in;  // X's shape

    Shape shape(Shape gs, Shape w) const {
        const detail::ConvGeom g = detail::conv_geom(name, in, w, p);
        if (gs != Shape{g.n, g.o, g.oh, g.ow})
            fail("{}: adjoint {} does not match conv2d({}, {})'s output ({}×{}×{}×{})", name, gs, in, w, g.n,
                 g.o, g.oh, g.ow);
        return in;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& gy, const Tensor<T>& w) const {
        detail::conv_input_grad(out, gy, w, in, p, false, name);
    }
    template <class V>
    V vjp(In<0>, const V& dz, const V&, const V&, const V& w) const {
        return apply(Conv2d{p}, dz, w);
    }
    template <class V>
    V vjp(In<1>, const V& dz, const V&, const V& gy, const V& w) const;
};

// Z = conv2d_weight_grad(X, G): the adjoint of conv2d's weight, shaped like W (`wshape`).
//   Z_g = Σₙ G[n, g] · im2col(X[n, g])ᵀ.   dX = conv2d_input_grad(G, dZ),  dG = conv2d(X, dZ).
struct Conv2dWeightGrad {
    static constexpr std::string_view name = "conv2d_weight_grad";
    static constexpr std::size_t arity = 2;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"{0} ⋆ʷ {1}", "conv2d_weight_grad({0}, {1})", Prec::Product};
    Conv2dParams p;
    Shape wshape;

    Shape shape(Shape x, Shape gs) const {
        const detail::ConvGeom g = detail::conv_geom(name, x, wshape, p);
        if (gs != Shape{g.n, g.o, g.oh, g.ow})
            fail("{}: adjoint {} does not match conv2d({}, {})'s output ({}×{}×{}×{})", name, gs, x, wshape,
                 g.n, g.o, g.oh, g.ow);
        return wshape;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x, const Tensor<T>& gy) const {
        detail::conv_weight_grad(out, x, gy, wshape, p, false, name);
    }
    template <class V>
    V vjp(In<0>, const V& dz, const V&, const V& x, const V& gy) const {
        return apply(Conv2dInputGrad{p, x.shape()}, gy, dz);
    }
    template <class V>
    V vjp(In<1>, const V& dz, const V&, const V& x, const V&) const {
        return apply(Conv2d{p}, x, dz);
    }
};

template <class V>
V Conv2d::vjp(In<0>, const V& g, const V&, const V& x, const V& w) const {
    return apply(Conv2dInputGrad{p, x.shape()}, g, w);
}
template <class V>
V Conv2d::vjp(In<1>, const V& g, const V&, const V& x, const V& w) const {
    return apply(Conv2dWeightGrad{p, w.shape()}, x, g);
}
template <class V>
V Conv2dInputGrad::vjp(In<1>, const V& dz, const V&, const V& gy, const V& w) const {
    return apply(Conv2dWeightGrad{p, w.shape()}, dz, gy);
}

// ---- im2col / col2im as ops --------------------------------------------------------------------

// Y = im2col(X): X N×C×H×W → Y N×(C·kh·kw)×(OH·OW), row (c, i, j) of image n holding the
// input under kernel tap (i, j) of channel c at every output position (zeros over padding).
// Linear; its adjoint is col2im:  dX = col2im(dY).
struct Im2Col {
    static constexpr std::string_view name = "im2col";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"im2col({0})", "im2col({0})", Prec::Atom};
    std::array<std::size_t, 2> kernel{1, 1};
    Conv2dParams p;  // groups unused

    detail::ConvGeom geom(const Shape& x) const {
        if (x.rank() != 4) fail("im2col: input {} is not 4-D (N×C×H×W)", x);
        Conv2dParams q = p;
        q.groups = 1;
        return detail::conv_geom(name, x, Shape{1, x[1], kernel[0], kernel[1]}, q);
    }
    Shape shape(Shape x) const {
        const detail::ConvGeom g = geom(x);
        return {g.n, g.k(), g.p()};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        const detail::ConvGeom g = geom(x.shape());
        for (std::size_t n = 0; n < g.n; ++n)
            detail::im2col_image(x.data() + n * g.c * g.h * g.w, g, p, g.c, out.data() + n * g.k() * g.p());
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const;
};

// X = col2im(Y): the adjoint of im2col (columns scattered back to N×C×H×W = `in`, overlaps
// added).  dY = im2col(dX).
struct Col2Im {
    static constexpr std::string_view name = "col2im";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"col2im({0})", "col2im({0})", Prec::Atom};
    std::array<std::size_t, 2> kernel{1, 1};
    Conv2dParams p;
    Shape in;

    Shape shape(Shape y) const {
        const Shape want = Im2Col{kernel, p}.shape(in);
        if (y != want) fail("col2im: columns {} do not match im2col of {} (expected {})", y, in, want);
        return in;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& y) const {
        const detail::ConvGeom g = Im2Col{kernel, p}.geom(in);
        out.fill(T(0));
        for (std::size_t n = 0; n < g.n; ++n)
            detail::col2im_image_add(y.data() + n * g.k() * g.p(), g, p, g.c,
                                     out.data() + n * g.c * g.h * g.w);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return apply(Im2Col{kernel, p}, g);
    }
};

template <class V>
V Im2Col::vjp(In<0>, const V& g, const V&, const V& x) const {
    return apply(Col2Im{kernel, p, x.shape()}, g);
}

// ---- functions ---------------------------------------------------------------------------------

// y = conv2d(x, w) + b (b: O elements, added to every position of channel o), PyTorch's conv2d.
template <Value V>
V conv2d(const V& x, const V& w, Conv2dParams p = {}, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Conv2d{p}, x, w);
}
template <Value V>
V conv2d(const V& x, const V& w, const V& b, Conv2dParams p = {},
         SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Conv2dBias{p}, x, w, b);
}
template <Value V>
V im2col(const V& x, std::array<std::size_t, 2> kernel, Conv2dParams p = {},
         SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Im2Col{kernel, p}, x);
}
template <Value V>
V col2im(const V& y, const Shape& in, std::array<std::size_t, 2> kernel, Conv2dParams p = {},
         SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Col2Im{kernel, p, in}, y);
}

}  // namespace tapegrad
