// The tapegrad side of the benchmarks: the MLP step as a user writes it with tapegrad::nn
// (MLP + SGD), the same step written directly on the tape and the op library (parameters as
// GradBuffer leaves, cleared in O(1) after the update), the tiny-op chain and the bare sweep.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include <tapegrad/nn.hpp>
#include <tapegrad/tapegrad.hpp>

#include "data.hpp"


namespace bench {

namespace tg = tapegrad;

// The benchmarked MLP as tapegrad::nn builds it (Linear, ReLU, Linear, ReLU, Linear; separate
// biases), its parameters overwritten with `p`; plain SGD through nn::SGD.
class NnMlp {
public:
    NnMlp(const Params& p, float lr) : net_(p.sizes, tg::nn::Activation::relu, /*seed=*/1), opt_(net_.parameters(), {.lr = lr}) {
        auto ps = net_.parameters();
        if (ps.size() != 2 * p.w.size()) tg::fail("bench: nn::MLP has {} parameters, expected {}", ps.size(), 2 * p.w.size());
        for (std::size_t l = 0; l < p.w.size(); ++l) {
            copy_into(*ps[2 * l], p.w[l]);
            copy_into(*ps[2 * l + 1], p.b[l]);
        }
    }

    // One SGD step on batch x with labels y (m × 1); returns the loss before the update.
    float step(const tg::Tensor<float>& x, const tg::Tensor<float>& y) {
        tape_.reset();
        auto logits = net_(tape_, tape_.constant_ref(x));
        auto loss = tg::softmax_cross_entropy(logits, tape_.constant_ref(y));
        opt_.zero_grad();
        tape_.backward(loss);
        opt_.step();
        return loss.item();
    }

    const tg::Tensor<float>& weight(std::size_t l) { return net_.parameters()[2 * l]->value; }
    tg::nn::MLP<float>& net() noexcept { return net_; }

private:
    static void copy_into(tg::nn::Parameter<float>& p, const std::vector<float>& v) {
        if (p.size() != v.size()) tg::fail("bench: parameter {} has {} values, expected {}", p.name, p.size(), v.size());
        std::copy(v.begin(), v.end(), p.value.data());
    }

    tg::nn::MLP<float> net_;
    tg::nn::SGD<float> opt_;
    tg::Tape<float> tape_{std::size_t(4) << 20};
};

// The benchmarked MLP on a tape: A = affine(Z, W, b), ReLU between layers, softmax
// cross-entropy, plain SGD on the parameters' gradient buffers.
class TapeMlp {
public:
    explicit TapeMlp(const Params& p) {
        for (std::size_t l = 0; l + 1 < p.sizes.size(); ++l) {
            const std::size_t in = p.sizes[l], out = p.sizes[l + 1];
            w_.push_back(tg::Tensor<float>::from(std::span<const float>(p.w[l]), {in, out}));
            b_.push_back(tg::Tensor<float>::from(std::span<const float>(p.b[l]), {1, out}));
            gw_.emplace_back(tg::Shape{in, out});
            gb_.emplace_back(tg::Shape{1, out});
        }
    }

    // One SGD step on batch x (m × in) with labels y (m × 1, class indices as floats);
    // returns the loss before the update.
    float step(const tg::Tensor<float>& x, const tg::Tensor<float>& y, float lr) {
        tape_.reset();
        tg::Var<float> h = tape_.constant_ref(x);
        const std::size_t layers = w_.size();
        for (std::size_t l = 0; l < layers; ++l) {
            auto w = tape_.external(w_[l], &gw_[l]);
            auto b = tape_.external(b_[l], &gb_[l]);
            h = tg::affine(h, w, b);
            if (l + 1 < layers) h = tg::relu(h);
        }
        auto loss = tg::softmax_cross_entropy(h, tape_.constant_ref(y));
        tape_.backward(loss);
        const float value = loss.item();
        for (std::size_t l = 0; l < layers; ++l) {
            sgd(w_[l], gw_[l], lr);
            sgd(b_[l], gb_[l], lr);
        }
        return value;
    }

    const tg::Tensor<float>& weight(std::size_t l) const { return w_[l]; }
    tg::Tape<float>& tape() { return tape_; }

private:
    // W ← W − η·G, then G ← 0 (O(1): the next backward writes G instead of adding into it).
    static void sgd(tg::Tensor<float>& w, tg::GradBuffer<float>& g, float lr) {
        float* pw = w.data();
        const float* pg = g.data();
        for (std::size_t k = 0; k < w.size(); ++k) pw[k] -= lr * pg[k];
        g.clear();
    }

    std::vector<tg::Tensor<float>> w_, b_;
    std::vector<tg::GradBuffer<float>> gw_, gb_;
    tg::Tape<float> tape_{std::size_t(4) << 20};
};

// x ← tanh(x·w + b) on 1×1, `steps` times (3 ops each), then the reverse sweep; returns
// ∂x_N/∂w so the work cannot be optimised away. With w = 1, b = 0 the chain's adjoint decays
// only polynomially (x_n ≈ √(3/2n), Π(1 − x_n²) ≈ n^(−3/2)): a contracting chain would reach
// subnormal floats within a few thousand steps and time the CPU's subnormal slow path instead.
inline constexpr float kTinyX0 = 0.5f, kTinyW = 1.0f, kTinyB = 0.0f;
inline float tiny_chain_tapegrad(tg::Tape<float>& tape, std::size_t steps) {
    static const tg::Tensor<float> x0(1, 1, {kTinyX0}), w0(1, 1, {kTinyW}), b0(1, 1, {kTinyB});
    tape.reset();
    auto x = tape.variable(x0);
    auto w = tape.variable(w0);
    auto b = tape.variable(b0);
    for (std::size_t i = 0; i < steps; ++i) x = tg::tanh(tg::matmul(x, w) + b);
    tape.backward(x);
    return tape.grad(w)[0];
}

// The same chain by hand: forward into an array, then the adjoint recursion
//   u_i = x_i·w + b, x_{i+1} = tanh(u_i);  ∂u_i = ∂x_{i+1}·(1 − x_{i+1}²),
//   ∂w += ∂u_i·x_i,  ∂b += ∂u_i,  ∂x_i = ∂u_i·w.
inline float tiny_chain_handwritten(std::vector<float>& xs, std::size_t steps) {
    const float w = kTinyW, b = kTinyB;
    xs[0] = kTinyX0;
    for (std::size_t i = 0; i < steps; ++i) xs[i + 1] = std::tanh(xs[i] * w + b);
    float gx = 1.0f, gw = 0.0f, gb = 0.0f;
    for (std::size_t i = steps; i-- > 0;) {
        const float gu = gx * (1.0f - xs[i + 1] * xs[i + 1]);
        gw += gu * xs[i];
        gb += gu;
        gx = gu * w;
    }
    return gw + 1e-30f * (gb + gx);
}

// The bare engine: x ← x ⊙ w on 1×1, n nodes, then the sweep.
inline float sweep_chain(tg::Tape<float>& tape, std::size_t n) {
    static const tg::Tensor<float> one(1, 1, {1.0f});
    tape.reset();
    auto x = tape.variable(one);
    auto w = tape.variable(one);
    for (std::size_t i = 0; i < n; ++i) x = x * w;
    tape.backward(x);
    return tape.grad(w)[0];
}

}  // namespace bench
