// Gradient clipping, as torch.nn.utils.clip_grad_norm_ and clip_grad_value_ (PyTorch 1.13):
// applied to the parameters' gradient buffers between backward() and the optimiser's step().
//
//   total = ‖(‖g₁‖ₚ, …, ‖gₙ‖ₚ)‖ₚ  (p = ∞: the largest |gᵢⱼ|)
//   every g ← g · min(1, max_norm / (total + 1e-6))
//
// A cleared gradient (zero_grad() with no backward since) counts as zero and stays cleared.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include <tapegrad/core/error.hpp>
#include <tapegrad/nn/parameter.hpp>

namespace tapegrad::nn {

struct ClipNormOptions {
    double norm_type = 2;             // p ≥ 1, or std::numeric_limits<double>::infinity()
    bool error_if_nonfinite = false;  // true: a NaN or infinite total norm raises Error
};

// Scales the gradients so that their joint p-norm is at most max_norm; returns the norm they
// had before (computed in double).
template <class T>
double clip_grad_norm(std::span<Parameter<T>* const> params, double max_norm, ClipNormOptions opt = {}) {
    const double p = opt.norm_type;
    if (!(max_norm >= 0)) fail("clip_grad_norm: invalid max_norm {}", max_norm);
    if (!(p >= 1)) fail("clip_grad_norm: norm_type must be ≥ 1 or infinity, not {}", p);
    const bool inf = std::isinf(p);
    double total = 0;
    for (const Parameter<T>* q : params) {
        if (q == nullptr) fail("clip_grad_norm: null parameter");
        if (q->grad.cleared()) continue;
        const Tensor<T>& g = q->grad.tensor();
        double s = 0;
        for (std::size_t i = 0; i < g.size(); ++i) {
            const double a = std::abs(static_cast<double>(g[i]));
            s = inf ? std::max(s, a) : s + (p == 2 ? a * a : std::pow(a, p));
        }
        if (inf) {
            total = std::max(total, s);
        } else {
            // ‖(‖g₁‖, …)‖ₚ = (Σ ‖gᵢ‖ₚᵖ)^(1/p): the per-parameter sums add directly.
            total += s;
        }
    }
    if (!inf) total = p == 2 ? std::sqrt(total) : std::pow(total, 1 / p);
    if (opt.error_if_nonfinite && !std::isfinite(total))
        fail("clip_grad_norm: the total {}-norm of the gradients is {}", p, total);
    const double coef = max_norm / (total + 1e-6);
    if (coef < 1) {
        const T c = static_cast<T>(coef);
        for (Parameter<T>* q : params) {
            if (q->grad.cleared()) continue;
            Tensor<T>& g = q->grad.mutable_tensor();
            for (std::size_t i = 0; i < g.size(); ++i) g[i] *= c;
        }
    }
    return total;
}
template <class T>
double clip_grad_norm(const std::vector<Parameter<T>*>& params, double max_norm, ClipNormOptions opt = {}) {
    return clip_grad_norm(std::span<Parameter<T>* const>(params), max_norm, opt);
}

// Clamps every gradient element into [−clip_value, clip_value].
template <class T>
void clip_grad_value(std::span<Parameter<T>* const> params, double clip_value) {
    if (!(clip_value >= 0)) fail("clip_grad_value: invalid clip_value {}", clip_value);
    const T v = static_cast<T>(clip_value);
    for (Parameter<T>* q : params) {
        if (q == nullptr) fail("clip_grad_value: null parameter");
        if (q->grad.cleared()) continue;
        Tensor<T>& g = q->grad.mutable_tensor();
        for (std::size_t i = 0; i < g.size(); ++i) g[i] = std::clamp(g[i], -v, v);
    }
}
template <class T>
void clip_grad_value(const std::vector<Parameter<T>*>& params, double clip_value) {
    clip_grad_value(std::span<Parameter<T>* const>(params), clip_value);
}

}  // namespace tapegrad::nn
