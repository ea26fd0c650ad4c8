// Weight initialisers, as torch.nn.init defines them, drawn from the portable Rng (so a seed
// gives the same weights on every platform). For a fan_in × fan_out weight W (y = x·W):
//
//   xavier_uniform  W ~ U(−a, a),   a = gain · √(6 / (fan_in + fan_out))
//   xavier_normal   W ~ N(0, σ²),   σ = gain · √(2 / (fan_in + fan_out))
//   he_uniform      W ~ U(−a, a),   a = gain · √(3 / fan_in)      (kaiming_uniform_, fan_in mode)
//   he_normal       W ~ N(0, σ²),   σ = gain / √fan_in            (kaiming_normal_, fan_in mode)
//   torch_default   W ~ U(−a, a),   a = 1 / √fan_in               (nn.Linear's reset_parameters,
//                                                                  for the weight and the bias)
// gain: 1 for identity/sigmoid, 5/3 for tanh, √2 for relu, √(2 / (1 + slope²)) for leaky relu.
#pragma once

#include <cmath>
#include <cstddef>
#include <string_view>

#include <tapegrad/core/error.hpp>
#include <tapegrad/core/tensor.hpp>
#include <tapegrad/nn/random.hpp>

namespace tapegrad::nn {

enum class Init { xavier_uniform, xavier_normal, he_uniform, he_normal, torch_default, zeros };

inline std::string_view to_string(Init i) noexcept {
    switch (i) {
        case Init::xavier_uniform: return "xavier_uniform";
        case Init::xavier_normal: return "xavier_normal";
        case Init::he_uniform: return "he_uniform";
        case Init::he_normal: return "he_normal";
        case Init::torch_default: return "torch_default";
        case Init::zeros: return "zeros";
    }
    return "?";
}

// Fills `w` (its values drawn in row-major order) according to `init`.
template <class T>
void initialize(Tensor<T>& w, Init init, std::size_t fan_in, std::size_t fan_out, double gain, Rng& rng) {
    if (fan_in == 0 && init != Init::zeros) fail("initialize: fan_in is 0 for a tensor of shape {}", w.shape());
    const double fi = static_cast<double>(fan_in), fo = static_cast<double>(fan_out);
    auto uniform = [&](double a) {
        for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<T>(rng.uniform(-a, a));
    };
    auto normal = [&](double s) {
        for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<T>(s * rng.normal());
    };
    switch (init) {
        case Init::xavier_uniform: uniform(gain * std::sqrt(6.0 / (fi + fo))); break;
        case Init::xavier_normal: normal(gain * std::sqrt(2.0 / (fi + fo))); break;
        case Init::he_uniform: uniform(gain * std::sqrt(3.0 / fi)); break;
        case Init::he_normal: normal(gain / std::sqrt(fi)); break;
        case Init::torch_default: uniform(1.0 / std::sqrt(fi)); break;
        case Init::zeros: w.fill(T(0)); break;
    }
}

}  // namespace tapegrad::nn
