// Batch normalisation and dropout, PyTorch's semantics.
//
// batch_norm over axis 1 (channels) of an N×C (BatchNorm1d), N×C×L or N×C×H×W (BatchNorm2d)
// input; statistics over every other axis, M = numel / C values per channel.
//   training:  x̂ = (x − μ) / √(σ² + ε), μ and σ² the batch's (biased σ² for normalising);
//              running_mean ← (1 − m)·running_mean + m·μ, running_var ← (1 − m)·running_var +
//              m·σ²·M/(M − 1) (unbiased); m = momentum, or 1/num_batches_tracked when momentum
//              is none (the cumulative average); num_batches_tracked += 1.
//   eval:      x̂ = (x − running_mean) / √(running_var + ε).
//   y = x̂ ⊙ γ + β (γ, β per channel, when given).
// The training normalisation is one op (batch_norm_normalize) with the closed-form VJP,
//   dx = (1/√(σ² + ε)) ⊙ (dy − mean_c(dy) − x̂ ⊙ mean_c(dy ⊙ x̂)),
// written with ops (mean_c: sum_to the per-channel shape, over M), so that it is itself
// differentiable (gradients of gradients) and explainable.
//
// dropout(p) in training: y = x ⊙ mask / (1 − p), mask_i = [u_i ≥ p] with u_i the i-th uniform
// of Philox(seed, counter) — the same mask for the same (seed, counter) on any machine and
// thread count; p = 1 gives zeros. Linear and self-adjoint: dx = dropout(dy) with the same mask.
// Identity in eval.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <tapegrad/core/engine_ops.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/philox.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>
#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/math.hpp>
#include <tapegrad/ops/reduce_axes.hpp>
#include <tapegrad/ops/views.hpp>

namespace tapegrad {

namespace detail {
// The per-channel shape of x (1 everywhere but axis 1), or an Error naming `op`.
inline Shape channel_shape(std::string_view op, const Shape& x) {
    if (x.rank() < 2) fail("{}: input {} has rank {}; expected N×C, N×C×L or N×C×H×W", op, x, x.rank());
    std::array<std::size_t, kMaxRank> d{};
    for (std::size_t k = 0; k < x.rank(); ++k) d[k] = k == 1 ? x[1] : 1;
    return Shape(std::span<const std::size_t>(d.data(), x.rank()));
}
// Per-channel biased mean and variance of x (N×C×S flattened), in double.
template <class T, class F>
void channel_stats(const Tensor<T>& x, F&& each) {
    const Shape s = x.shape();
    const std::size_t n = s[0], c = s[1], inner = s.numel() / (n * c != 0 ? n * c : 1);
    const double m = double(n * inner);
    for (std::size_t ch = 0; ch < c; ++ch) {
        double sum = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const T* p = x.data() + (i * c + ch) * inner;
            for (std::size_t j = 0; j < inner; ++j) sum += double(p[j]);
        }
        const double mean = sum / m;
        double ss = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const T* p = x.data() + (i * c + ch) * inner;
            for (std::size_t j = 0; j < inner; ++j) ss += (double(p[j]) - mean) * (double(p[j]) - mean);
        }
        each(ch, mean, ss / m);
    }
}
// mean over everything but axis 1, kept in the per-channel shape.
template <Value V>
V channel_mean(const V& z, const Shape& cs) {
    return apply(Scale{double(cs.numel()) / double(z.shape().numel())}, apply(SumTo{cs}, z));
}
}  // namespace detail

// x̂ = (x − μ_c) / √(σ²_c + ε) with the batch's per-channel statistics.
// dx = (1/√(σ²_c + ε)) ⊙ (dx̂ − mean_c(dx̂) − x̂ ⊙ mean_c(dx̂ ⊙ x̂)).
struct BatchNormNormalize {
    static constexpr std::string_view name = "batch_norm_normalize";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"x̂({0})", "bn_normalize({0})", Prec::Atom};
    double eps = 1e-5;

    Shape shape(Shape x) const {
        const Shape cs = detail::channel_shape(name, x);
        if (x.numel() / (cs.numel() ? cs.numel() : 1) <= 1)
            fail("batch_norm: expected more than 1 value per channel when training, got input {}", x);
        return x;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        const Shape s = x.shape();
        const std::size_t n = s[0], c = s[1], inner = s.numel() / (n * c);
        detail::channel_stats(x, [&](std::size_t ch, double mean, double var) {
            const T mu = T(mean), inv = T(1.0 / std::sqrt(var + eps));
            for (std::size_t i = 0; i < n; ++i) {
                const T* p = x.data() + (i * c + ch) * inner;
                T* o = out.data() + (i * c + ch) * inner;
                for (std::size_t j = 0; j < inner; ++j) o[j] = (p[j] - mu) * inv;
            }
        });
    }
    template <class V>
    V vjp(In<0>, const V& g, const V& y, const V& x) const {
        const Shape cs = detail::channel_shape(name, x.shape());
        const V xc = x - detail::channel_mean(x, cs);
        const V inv = 1.0 / sqrt(detail::channel_mean(xc * xc, cs) + eps);
        return inv * (g - detail::channel_mean(g, cs) - y * detail::channel_mean(g * y, cs));
    }
};

// y = x ⊙ mask / (1 − p), mask from Philox(seed, counter).  dx = dropout(dy) (the same mask).
struct Dropout {
    static constexpr std::string_view name = "dropout";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"dropout({0})", "dropout({0})", Prec::Atom};
    double p = 0.5;
    std::uint64_t seed = 0, counter = 0;

    Shape shape(Shape x) const {
        if (!(p >= 0 && p <= 1)) fail("dropout: probability {} outside [0, 1] (input {})", p, x);
        return x;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        const Philox rng(seed, counter);
        const T k = p < 1 ? T(1.0 / (1.0 - p)) : T(0);
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = rng.uniform<double>(i) >= p ? x[i] * k : T(0);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return apply(Dropout{*this}, g);
    }
};

// Running statistics and options of batch_norm (PyTorch's F.batch_norm / BatchNorm*d).
template <class T>
struct BatchNormOptions {
    Tensor<T>* running_mean = nullptr;  // C elements each, updated in training when given
    Tensor<T>* running_var = nullptr;
    std::int64_t* num_batches_tracked = nullptr;
    bool training = true;
    std::optional<double> momentum = 0.1;  // none: the cumulative average
    double eps = 1e-5;
};

namespace detail {
template <class V, class T>
V batch_norm_impl(const V& x, const V* weight, const V* bias, const BatchNormOptions<T>& o) {
    const Shape xs = x.shape();
    const Shape cs = channel_shape("batch_norm", xs);
    const std::size_t c = xs[1];
    for (const Tensor<T>* r : {o.running_mean, o.running_var})
        if (r && r->size() != c)
            fail("batch_norm: running statistics of {} for input {} with {} channels", r->shape(), xs, c);
    for (const V* p : {weight, bias})
        if (p && p->shape().numel() != c)
            fail("batch_norm: weight or bias {} for input {} with {} channels", p->shape(), xs, c);
    V xhat;
    if (o.training) {
        xhat = apply(BatchNormNormalize{o.eps}, x);
        if (o.num_batches_tracked) ++*o.num_batches_tracked;
        if (o.running_mean || o.running_var) {
            double m;
            if (o.momentum)
                m = *o.momentum;
            else
                m = o.num_batches_tracked ? 1.0 / double(*o.num_batches_tracked) : 1.0;
            const double count = double(xs.numel() / c);
            channel_stats(value_of<V>::get(x), [&](std::size_t ch, double mean, double var) {
                if (o.running_mean)
                    (*o.running_mean)[ch] = T((1 - m) * double((*o.running_mean)[ch]) + m * mean);
                if (o.running_var)
                    (*o.running_var)[ch] =
                        T((1 - m) * double((*o.running_var)[ch]) + m * var * count / (count - 1));
            });
        }
    } else {
        if (!o.running_mean || !o.running_var)
            fail("batch_norm: eval mode needs running_mean and running_var (input {})", xs);
        Tensor<T> mu(cs), inv(cs);
        for (std::size_t ch = 0; ch < c; ++ch) {
            mu[ch] = (*o.running_mean)[ch];
            inv[ch] = T(1.0 / std::sqrt(double((*o.running_var)[ch]) + o.eps));
        }
        xhat = (x - value_of<V>::constant(x, mu)) * value_of<V>::constant(x, inv);
    }
    if (weight) xhat = xhat * apply(Reshape{cs}, *weight);
    if (bias) xhat = xhat + apply(Reshape{cs}, *bias);
    return xhat;
}
}  // namespace detail

// y = batch_norm(x) ⊙ γ + β over axis 1 (see the top of this file). V: a Tensor or a Var.
template <class V, class T = typename detail::value_of<V>::type>
V batch_norm(const V& x, const V& weight, const V& bias, const BatchNormOptions<T>& o = {},
             SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return detail::batch_norm_impl(x, &weight, &bias, o);
}
// Without the affine part (affine=False).
template <class V, class T = typename detail::value_of<V>::type>
V batch_norm(const V& x, const BatchNormOptions<T>& o = {}, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return detail::batch_norm_impl<V, T>(x, nullptr, nullptr, o);
}

// Inverted dropout in training (mask from Philox(seed, counter)); the identity in eval.
template <Value V>
V dropout(const V& x, double p, bool training, std::uint64_t seed, std::uint64_t counter = 0,
          SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    if (!(p >= 0 && p <= 1)) fail("dropout: probability {} outside [0, 1] (input {})", p, x.shape());
    if (!training || p == 0) return x;
    return apply(Dropout{p, seed, counter}, x);
}

}  // namespace tapegrad
