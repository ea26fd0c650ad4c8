// Transformer ops: GELU (exact and tanh), layer norm, embedding, where / masked_fill, the causal
// mask, and scaled dot-product attention composed from batched matmul + softmax.
//
// Integer data given as tensors of the same T (embedding indices, masks, conditions) must hold
// integers: an index an integer in [0, rows), a mask or a condition only 0 and 1, else an Error
// naming the op, the value and its position. A 0/1 mask or condition is converted to a MaskTensor
// and recorded as the boolean ops of mask.hpp (where_mask, masked_fill_mask); int64 indices and
// bool masks are taken directly by the overloads of index.hpp and mask.hpp.
//
// Mask conventions: masked_fill(x, mask, v) fills where mask = 1 (torch.Tensor.masked_fill);
// where(cond, a, b) takes a where cond = 1; scaled_dot_product_attention's attn_mask is PyTorch 2's
// boolean convention: 1 = attend, 0 = masked out (nn.MultiheadAttention's is the opposite).
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <optional>
#include <string_view>
#include <type_traits>
#include <tapegrad/core/broadcast.hpp>
#include <tapegrad/core/engine_ops.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>
#include <tapegrad/ops/activations.hpp>
#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/linalg.hpp>
#include <tapegrad/ops/mask.hpp>
#include <tapegrad/ops/math.hpp>
#include <tapegrad/ops/reduce_axes.hpp>
#include <tapegrad/ops/views.hpp>

namespace tapegrad {

// ---- GELU ---------------------------------------------------------------------------------------

enum class GeluApprox : std::uint8_t { None, Tanh };

namespace detail {
inline constexpr double kGeluC = 0.7978845608028654;  // √(2/π)
inline constexpr double kGeluA = 0.044715;
inline constexpr double kInvSqrt2 = 0.7071067811865476;
inline constexpr double kInvSqrt2Pi = 0.3989422804014327;  // 1/√(2π)

// exp(x) in float written so that GCC vectorises a loop of it (no calls, no branches): Cephes'
// expf, 2ⁿ·p(r) with n = round(x/ln 2) and r = x − n·ln 2 (Cody–Waite, two parts), p of degree 7;
// within 2 ulp of expf on [−87, 88], inputs clamped to that range (exp(−87) ≈ 1.6e−38 is still a
// normal float). libm's tanhf took 30 % of a GPT training step; this path does the same work in
// a few SIMD instructions per element.
[[gnu::always_inline]] inline float exp_vec(float x) {
    // The clamp as bit masks: GCC 12 does not if-convert two float selects in this loop.
    const std::int32_t lo = -static_cast<std::int32_t>(x < -87.0f), hi = -static_cast<std::int32_t>(x > 88.0f);
    std::int32_t b = std::bit_cast<std::int32_t>(x);
    b = (b & ~(lo | hi)) | (std::bit_cast<std::int32_t>(-87.0f) & lo) | (std::bit_cast<std::int32_t>(88.0f) & hi);
    x = std::bit_cast<float>(b);
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest (1.5·2²³)
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    const float z = r * r;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * z + r + 1.0f;
    return y * std::bit_cast<float>((static_cast<std::int32_t>(n) + 127) << 23);
}
// gelu_tanh in float through one exponential: ½x(1 + tanh u) = x·σ(2u) = x·s, s = 1/(1 + e),
// e = exp(−2u); gelu_tanh′ = ½(1 + t) + ½x(1 − t²)u′ = s + 2x·s·(1 − s)·u′ with 1 − s = e·s
// (no cancellation). Same function as the tanh form, without libm's scalar tanhf.
[[gnu::always_inline]] inline float gelu_tanh_f(float x) {
    const float u = float(kGeluC) * (x + float(kGeluA) * x * x * x);
    return x / (1.0f + exp_vec(-2.0f * u));
}
[[gnu::always_inline]] inline float gelu_tanh_grad_f(float x) {
    const float u = float(kGeluC) * (x + float(kGeluA) * x * x * x);
    const float e = exp_vec(-2.0f * u);
    const float s = 1.0f / (1.0f + e);
    const float du = float(kGeluC) * (1.0f + float(3 * kGeluA) * x * x);
    return s + 2.0f * x * s * (e * s) * du;
}

template <class T>
T gelu_value(T x, GeluApprox a) {
    if (a == GeluApprox::None) return T(0.5) * x * std::erfc(-x * T(kInvSqrt2));
    const T u = T(kGeluC) * (x + T(kGeluA) * x * x * x);
    return T(0.5) * x * (T(1) + std::tanh(u));
}
// gelu′: exact Φ(x) + x·φ(x);  tanh: ½(1 + t) + ½x(1 − t²)·u′,  t = tanh u, u′ = c(1 + 3a x²).
template <class T>
T gelu_grad_value(T x, GeluApprox a) {
    if (a == GeluApprox::None)
        return T(0.5) * std::erfc(-x * T(kInvSqrt2)) + x * T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
    const T u = T(kGeluC) * (x + T(kGeluA) * x * x * x);
    const T t = std::tanh(u);
    const T du = T(kGeluC) * (T(1) + T(3 * kGeluA) * x * x);
    return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du;
}
}  // namespace detail

// Y = gelu′(X).  dX = dY ⊙ gelu″(X), written with ops:
//   exact: gelu″ = φ(x)(2 − x²), φ(x) = exp(−x²/2)/√(2π);
//   tanh:  gelu″ = (1 − t²)(u′ − x·t·u′² + ½x·u″),  t = tanh u, u′ = c(1 + 3a x²), u″ = 6ac·x.
struct GeluGrad {
    static constexpr std::string_view name = "gelu_grad";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    GeluApprox approximate = GeluApprox::None;
    Notation notation() const {
        return approximate == GeluApprox::None ? Notation{"gelu′({0})", "gelu'({0})", Prec::Atom}
                                               : Notation{"gelu_tanh′({0})", "gelu_tanh'({0})", Prec::Atom};
    }
    Shape shape(Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        if constexpr (std::is_same_v<T, float>)
            if (approximate == GeluApprox::Tanh) {
                float* __restrict o = out.data();
                const float* __restrict p = x.data();
                for (std::size_t i = 0, n = x.size(); i < n; ++i) o[i] = detail::gelu_tanh_grad_f(p[i]);
                return;
            }
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = detail::gelu_grad_value(x[i], approximate);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const {
        const V x2 = apply(Square{}, x);
        if (approximate == GeluApprox::None) {
            const V phi = apply(Scale{detail::kInvSqrt2Pi}, apply(Exp{}, apply(Scale{-0.5}, x2)));
            return apply(Mul{}, g, apply(Mul{}, phi, apply(Shift{2}, apply(Neg{}, x2))));
        }
        const double c = detail::kGeluC, a = detail::kGeluA;
        const V u = apply(Scale{c}, apply(Add{}, x, apply(Scale{a}, apply(Mul{}, x2, x))));
        const V t = apply(Tanh{}, u);
        const V du = apply(Shift{c}, apply(Scale{3 * a * c}, x2));
        const V sech2 = apply(TanhGrad{}, u);  // 1 − t²
        // u′ − x·t·u′² + ½x·u″ = u′ − x·t·u′² + 3ac·x²
        const V inner = apply(Add{}, apply(Sub{}, du, apply(Mul{}, apply(Mul{}, x, t), apply(Square{}, du))),
                              apply(Scale{3 * a * c}, x2));
        return apply(Mul{}, g, apply(Mul{}, sech2, inner));
    }
};

// Y = gelu(X) = X·Φ(X) (exact, erf) or ½X(1 + tanh(√(2/π)(X + 0.044715X³))) (approximate = Tanh),
// as torch.nn.functional.gelu(x, approximate="none" | "tanh").   dX = dY ⊙ gelu′(X).
struct Gelu {
    static constexpr std::string_view name = "gelu";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    GeluApprox approximate = GeluApprox::None;
    Notation notation() const {
        return approximate == GeluApprox::None ? Notation{"gelu({0})", "gelu({0})", Prec::Atom}
                                               : Notation{"gelu_tanh({0})", "gelu_tanh({0})", Prec::Atom};
    }
    Shape shape(Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        if constexpr (std::is_same_v<T, float>)
            if (approximate == GeluApprox::Tanh) {  // float: the vectorised form (detail::gelu_tanh_f)
                float* __restrict o = out.data();
                const float* __restrict p = x.data();
                for (std::size_t i = 0, n = x.size(); i < n; ++i) o[i] = detail::gelu_tanh_f(p[i]);
                return;
            }
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = detail::gelu_value(x[i], approximate);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const {
        return apply(Mul{}, g, apply(GeluGrad{approximate}, x));
    }
    template <class T>
    void vjp_into(In<0>, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>&,
                  const Tensor<T>& x) const {
        const GeluApprox a = approximate;
        if constexpr (std::is_same_v<T, float>)
            if (a == GeluApprox::Tanh) {
                if (dst.size() == g.size() && x.size() == g.size()) {  // the common case, as plain loops
                    float* __restrict d = dst.data();
                    const float* __restrict pg = g.data();
                    const float* __restrict px = x.data();
                    const std::size_t n = g.size();
                    if (add)
                        for (std::size_t i = 0; i < n; ++i) d[i] += pg[i] * detail::gelu_tanh_grad_f(px[i]);
                    else
                        for (std::size_t i = 0; i < n; ++i) d[i] = pg[i] * detail::gelu_tanh_grad_f(px[i]);
                    return;
                }
                write_broadcast_vjp(dst, add, g, x, [](float u, float v) { return u * detail::gelu_tanh_grad_f(v); });
                return;
            }
        write_broadcast_vjp(dst, add, g, x, [a](T u, T v) { return u * detail::gelu_grad_value(v, a); });
    }
};

// ---- layer norm ---------------------------------------------------------------------------------

namespace detail {
// The last k axes of a rank-r shape, kept as unit axes.
inline AxisSet last_axes(std::size_t k, std::size_t r) {
    std::uint8_t m = 0;
    for (std::size_t a = r - k; a < r; ++a) m = static_cast<std::uint8_t>(m | (1u << a));
    return AxisSet{m, true};
}
}  // namespace detail

// X̂ = (X − μ)/√(σ² + ε), μ and σ² (biased) over the last k axes (the normalized shape).
// dX = r ⊙ (dX̂ − mean(dX̂) − X̂ ⊙ mean(dX̂ ⊙ X̂)),  r = 1/√(σ² + ε), means over the last k axes
// (kept as unit axes, stretched back). r is recomputed from X with ops in the VJP, so that the
// recorded reading differentiates it again (second order).
struct LayerNormalize {
    static constexpr std::string_view name = "layer_normalize";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"normalize({0})", "normalize({0})", Prec::Atom};
    std::size_t k = 1;
    double eps = 1e-5;

    Shape shape(Shape x) const {
        if (k == 0 || k > x.rank()) fail("layer_norm: cannot normalize the last {} axes of {}", k, x);
        return x;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        const Shape s = x.shape();
        std::size_t n = 1;
        for (std::size_t a = s.rank() - k; a < s.rank(); ++a) n *= s[a];
        if (n == 0) return;
        const std::size_t rows = x.size() / n;
        const T* p = x.data();
        T* o = out.data();
        for (std::size_t r = 0; r < rows; ++r, p += n, o += n) {
            T mu = 0;
            for (std::size_t j = 0; j < n; ++j) mu += p[j];
            mu /= static_cast<T>(n);
            T var = 0;
            for (std::size_t j = 0; j < n; ++j) var += (p[j] - mu) * (p[j] - mu);
            var /= static_cast<T>(n);
            const T rs = T(1) / std::sqrt(var + static_cast<T>(eps));
            for (std::size_t j = 0; j < n; ++j) o[j] = (p[j] - mu) * rs;
        }
    }
    template <class V>
    V vjp(In<0>, const V& g, const V& y, const V& x) const {
        const detail::AxisSet ax = detail::last_axes(k, x.shape().rank());
        const V xc = apply(Sub{}, x, apply(MeanAxes{ax}, x));
        const V rstd = apply(Pow{-0.5}, apply(Shift{eps}, apply(MeanAxes{ax}, apply(Square{}, xc))));
        const V inner = apply(Sub{}, apply(Sub{}, g, apply(MeanAxes{ax}, g)),
                              apply(Mul{}, y, apply(MeanAxes{ax}, apply(Mul{}, g, y))));
        return apply(Mul{}, rstd, inner);
    }
};

// ---- embedding ----------------------------------------------------------------------------------

namespace detail {
// Index `v` at flat position i of indices `s`, checked: an integer in [0, rows).
template <class T>
std::size_t checked_index(std::string_view op, T v, std::size_t i, const Shape& s, std::size_t rows) {
    if (!(v >= T(0) && v < static_cast<T>(rows)) || v != std::floor(v))
        fail("{}: index {} at position {} of the indices {} is not an integer in [0, {})", op, v, i, s, rows);
    return static_cast<std::size_t>(v);
}
inline constexpr std::ptrdiff_t kNoPadding = -1;
}  // namespace detail

struct EmbeddingBackward;

// Y[p, :] = W[I[p], :]    I: indices (any shape, integer values), W: (rows, dim), Y: I.shape + (dim).
// dW = scatter-add of dY's rows into the rows used (none into padding_idx); I has no gradient.
// With zero_padding, the rows at padding_idx read as 0 (the VJP of EmbeddingBackward: the adjoint
// that the padding row never received).
struct Embedding {
    static constexpr std::string_view name = "embedding";
    static constexpr std::size_t arity = 2;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"{1}[{0}]", "{1}[{0}]", Prec::Postfix};
    std::ptrdiff_t padding_idx = detail::kNoPadding;
    bool zero_padding = false;

    Shape shape(Shape idx, Shape w) const {
        if (w.rank() != 2) fail("embedding: weight {} must be (num_embeddings, embedding_dim)", w);
        if (idx.rank() + 1 > kMaxRank) fail("embedding: indices {} have too many axes", idx);
        std::array<std::size_t, kMaxRank> d{};
        for (std::size_t a = 0; a < idx.rank(); ++a) d[a] = idx[a];
        d[idx.rank()] = w[1];
        return Shape(std::span<const std::size_t>(d.data(), idx.rank() + 1));
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& idx, const Tensor<T>& w) const {
        const std::size_t rows = w.shape()[0], dim = w.shape()[1];
        for (std::size_t i = 0; i < idx.size(); ++i) {
            const std::size_t r = detail::checked_index(name, idx[i], i, idx.shape(), rows);
            T* o = out.data() + i * dim;
            if (zero_padding && static_cast<std::ptrdiff_t>(r) == padding_idx)
                std::fill_n(o, dim, T(0));
            else
                std::copy_n(w.data() + r * dim, dim, o);
        }
    }
    template <class V>
    V vjp(In<1>, const V& g, const V&, const V& idx, const V& w) const;
};

// dW = Σ_p e_{I[p]} dY[p, :]ᵀ (rows at padding_idx left 0)    dY: I.shape + (dim), dW: (rows, dim).
// d(dY) = embedding(I, d(dW)) with the padding rows read as 0.
struct EmbeddingBackward {
    static constexpr std::string_view name = "embedding_backward";
    static constexpr std::size_t arity = 2;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"scatter_add({0}, {1})", "scatter_add({0}, {1})", Prec::Atom};
    std::size_t rows = 0;
    std::ptrdiff_t padding_idx = detail::kNoPadding;

    Shape shape(Shape g, Shape idx) const {
        if (g.rank() != idx.rank() + 1)
            fail("embedding_backward: adjoint {} does not match indices {}", g, idx);
        return Shape{rows, g[g.rank() - 1]};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& g, const Tensor<T>& idx) const {
        const std::size_t dim = out.shape()[1];
        std::fill_n(out.data(), out.size(), T(0));
        for (std::size_t i = 0; i < idx.size(); ++i) {
            const std::size_t r = detail::checked_index("embedding", idx[i], i, idx.shape(), rows);
            if (static_cast<std::ptrdiff_t>(r) == padding_idx) continue;
            T* o = out.data() + r * dim;
            const T* gi = g.data() + i * dim;
            for (std::size_t j = 0; j < dim; ++j) o[j] += gi[j];
        }
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&, const V& idx) const {
        return apply(Embedding{padding_idx, true}, idx, g);
    }
};

template <class V>
V Embedding::vjp(In<1>, const V& g, const V&, const V& idx, const V& w) const {
    return apply(EmbeddingBackward{w.shape()[0], padding_idx}, g, idx);
}

// ---- where / masked_fill / causal mask ----------------------------------------------------------

// Y = X on and below the diagonal of the last two axes (j ≤ i + offset), `value` above it
// (−∞: the causal mask of attention).   dX = dY on and below the diagonal, 0 above.
struct CausalFill {
    static constexpr std::string_view name = "causal_fill";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    double value = -std::numeric_limits<double>::infinity();
    std::ptrdiff_t offset = 0;

    Shape shape(Shape x) const {
        if (x.rank() < 2) fail("causal_fill: {} has rank {}; the mask needs the last two axes", x, x.rank());
        return x;
    }
    std::optional<Sym> simplify(const Sym& x) const {
        const std::string v = std::isinf(value) ? (value < 0 ? "−∞" : "∞") : fmt::format("{:g}", value);
        const std::string va = std::isinf(value) ? (value < 0 ? "-inf" : "inf") : fmt::format("{:g}", value);
        return Sym(fmt::format("causal({}, {})", x.str(false), v),
                   fmt::format("causal({}, {})", x.str(true), va), Prec::Atom, x.shape());
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        const Shape s = x.shape();
        const std::size_t rows = s[s.rank() - 2], cols = s[s.rank() - 1];
        const std::size_t mats = rows * cols == 0 ? 0 : x.size() / (rows * cols);
        const T v = static_cast<T>(value);
        for (std::size_t m = 0; m < mats; ++m)
            for (std::size_t i = 0; i < rows; ++i) {
                const std::size_t base = (m * rows + i) * cols;
                for (std::size_t j = 0; j < cols; ++j)
                    out[base + j] = static_cast<std::ptrdiff_t>(j) <= static_cast<std::ptrdiff_t>(i) + offset
                                        ? x[base + j]
                                        : v;
            }
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return apply(CausalFill{0.0, offset}, g);
    }
};

// The additive causal mask of n × n scores: 0 on and below the diagonal, −∞ above
// (torch.nn.Transformer.generate_square_subsequent_mask). Data: no gradient through it.
template <class T>
Tensor<T> causal_mask(std::size_t n) {
    Tensor<T> m(Shape{n, n});
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j)
            m[i * n + j] = j <= i ? T(0) : -std::numeric_limits<T>::infinity();
    return m;
}
// The boolean causal mask in attention's convention (1 = attend): 1 on and below the diagonal.
template <class T>
Tensor<T> causal_attend_mask(std::size_t n) {
    Tensor<T> m(Shape{n, n});
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j) m[i * n + j] = j <= i ? T(1) : T(0);
    return m;
}

// ---- functions ----------------------------------------------------------------------------------

// gelu(x, approximate): "none" (erf, the default) or "tanh", as torch.
template <Value V>
V gelu(const V& x, std::string_view approximate = "none", SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    if (approximate != "none" && approximate != "tanh")
        fail("gelu: approximate must be \"none\" or \"tanh\", not \"{}\" (input {})", approximate, x.shape());
    return apply(Gelu{approximate == "tanh" ? GeluApprox::Tanh : GeluApprox::None}, x);
}

// torch.nn.functional.layer_norm: normalize over the trailing axes `normalized_shape`, then
// ⊙ weight + bias (each of shape normalized_shape, broadcast).
template <Value V>
V layer_norm(const V& x, const Shape& normalized_shape, const V* weight = nullptr, const V* bias = nullptr,
             double eps = 1e-5, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape s = x.shape();
    const std::size_t k = normalized_shape.rank();
    bool ok = k >= 1 && k <= s.rank();
    for (std::size_t a = 0; ok && a < k; ++a) ok = s[s.rank() - k + a] == normalized_shape[a];
    if (!ok)
        fail("layer_norm: normalized_shape {} is not the trailing shape of the input {}", normalized_shape,
             s);
    if (weight && weight->shape() != normalized_shape)
        fail("layer_norm: weight {} must have the normalized shape {}", weight->shape(), normalized_shape);
    if (bias && bias->shape() != normalized_shape)
        fail("layer_norm: bias {} must have the normalized shape {}", bias->shape(), normalized_shape);
    V y = apply(LayerNormalize{k, eps}, x);
    if (weight) y = apply(Mul{}, y, *weight);
    if (bias) y = apply(Add{}, y, *bias);
    return y;
}
template <Value V>
V layer_norm(const V& x, const Shape& normalized_shape, const V& weight, const V& bias, double eps = 1e-5,
             SourceLocation loc = SourceLocation::current()) {
    return layer_norm(x, normalized_shape, &weight, &bias, eps, loc);
}

// embedding(indices, weight, padding_idx): rows of weight (num_embeddings, dim) picked by the
// integer-valued indices (any shape); out of range → Error naming the index and its position.
template <Value V>
V embedding(const V& indices, const V& weight, std::ptrdiff_t padding_idx = detail::kNoPadding,
            SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    if (weight.shape().rank() == 2 && padding_idx != detail::kNoPadding) {
        const auto rows = static_cast<std::ptrdiff_t>(weight.shape()[0]);
        if (padding_idx < -rows || padding_idx >= rows)
            fail("embedding: padding_idx {} out of range for weight {}", padding_idx, weight.shape());
        if (padding_idx < 0) padding_idx += rows;
    }
    return apply(Embedding{padding_idx}, indices, weight);
}

// where(cond, a, b) with cond a tensor (or Var) of T holding only 0 and 1 (1 takes a): cond is
// converted to a mask (an Error names a value that is neither) and where_mask recorded.
template <Value V>
    requires detail::HasValue<V>
V where(const V& cond, const V& a, const V& b, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const MaskTensor m = detail::mask_of("where", "condition", detail::value_of<V>::get(cond));
    return apply(WhereMask{Saved<bool>::of(m)}, a, b);
}

// x with `value` where mask = 1 (mask of T holding only 0 and 1, broadcast to x; data: no
// gradient through it), recorded as masked_fill_mask.
template <Value V>
    requires detail::HasValue<V>
V masked_fill(const V& x, const V& mask, double value, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const MaskTensor m = detail::mask_of("masked_fill", "mask", detail::value_of<V>::get(mask));
    return apply(MaskedFillMask{Saved<bool>::of(m), value}, x);
}

// x with `value` above the diagonal of its last two axes (default −∞).
template <Value V>
V causal_fill(const V& x, double value = -std::numeric_limits<double>::infinity(),
              SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(CausalFill{value, 0}, x);
}

namespace detail {
template <Value V>
V sdpa(const V& q, const V& k, const V& v, const V* attn_mask, bool causal) {
    constexpr std::string_view op = "scaled_dot_product_attention";
    const Shape sq = q.shape(), sk = k.shape(), sv = v.shape();
    if (sq.rank() < 2 || sk.rank() != sq.rank() || sv.rank() != sq.rank())
        fail("{}: q {}, k {}, v {} must have one rank ≥ 2 ((B, H, T, D) for multi-head)", op, sq, sk, sv);
    const std::size_t r = sq.rank();
    if (sq[r - 1] != sk[r - 1]) fail("{}: q {} and k {} differ in the last axis (the head dim)", op, sq, sk);
    if (sk[r - 2] != sv[r - 2]) fail("{}: k {} and v {} differ in the sequence length", op, sk, sv);
    const double d = static_cast<double>(sq[r - 1]);
    V s = apply(Scale{1.0 / std::sqrt(d)}, apply(MatMul{false, true}, q, k));
    if constexpr (HasValue<V>) {  // (the overload taking a mask takes no Sym)
        if (attn_mask) {
            if (!broadcastable(attn_mask->shape(), s.shape()))
                fail("{}: attn_mask {} does not broadcast to the scores {}", op, attn_mask->shape(), s.shape());
            // −∞ where the mask is 0 (not attended)
            const MaskTensor m = mask_of(op, "attn_mask", value_of<V>::get(*attn_mask), true);
            s = apply(MaskedFillMask{Saved<bool>::of(m), -std::numeric_limits<double>::infinity()}, s);
        }
    }
    if (causal) s = apply(CausalFill{}, s);
    return apply(MatMul{}, apply(Softmax{-1}, s), v);
}
}  // namespace detail

// softmax(Q·Kᵀ/√d [masked]) · V over the last two axes, Q (…, T, D), K (…, S, D), V (…, S, Dv),
// batch_first (B, H, T, D). attn_mask (0/1 values, broadcast to the scores (…, T, S)): 1 = attend
// (PyTorch 2's boolean attn_mask). causal: query i attends to keys j ≤ i. A row with every key
// masked out gives NaN, as PyTorch (softmax of a row of −∞).
template <Value V>
V scaled_dot_product_attention(const V& q, const V& k, const V& v, bool causal = false,
                               SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return detail::sdpa<V>(q, k, v, nullptr, causal);
}
template <Value V>
    requires detail::HasValue<V>
V scaled_dot_product_attention(const V& q, const V& k, const V& v, const V& attn_mask, bool causal = false,
                               SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return detail::sdpa<V>(q, k, v, &attn_mask, causal);
}

}  // namespace tapegrad
