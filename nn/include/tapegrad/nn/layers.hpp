// Layers built only on the public op API: Linear, activation layers, Sequential, and the MLP
// builder. A network is a Module: net(tape, x) records its forward pass on `tape` and returns
// the output Var; the parameters enter the tape as External leaves, so backward() leaves
// ∂E/∂p in each Parameter's grad.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numbers>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>
#include <tapegrad/ops/activations.hpp>
#include <tapegrad/ops/structure.hpp>
#include <tapegrad/nn/init.hpp>
#include <tapegrad/nn/parameter.hpp>
#include <tapegrad/nn/random.hpp>

namespace tapegrad::nn {

// ---- activations -------------------------------------------------------------------------------

enum class Activation { identity, relu, leaky_relu, sigmoid, tanh, softplus };

inline std::string_view to_string(Activation a) noexcept {
    switch (a) {
        case Activation::identity: return "identity";
        case Activation::relu: return "relu";
        case Activation::leaky_relu: return "leaky_relu";
        case Activation::sigmoid: return "sigmoid";
        case Activation::tanh: return "tanh";
        case Activation::softplus: return "softplus";
    }
    return "?";
}

// The initialisation gain torch.nn.init.calculate_gain gives for an activation.
inline double gain_for(Activation a, double slope = 0.01) noexcept {
    switch (a) {
        case Activation::relu: return std::numbers::sqrt2;
        case Activation::leaky_relu: return std::sqrt(2.0 / (1.0 + slope * slope));
        case Activation::tanh: return 5.0 / 3.0;
        default: return 1.0;
    }
}

// φ(x) for the activation `a` (leaky relu's negative slope is `slope`).
template <Value V>
V activate(Activation a, const V& x, double slope = 0.01) {
    switch (a) {
        case Activation::identity: return x;
        case Activation::relu: return tapegrad::relu(x);
        case Activation::leaky_relu: return tapegrad::leaky_relu(x, slope);
        case Activation::sigmoid: return tapegrad::sigmoid(x);
        case Activation::tanh: return tapegrad::tanh(x);
        case Activation::softplus: return tapegrad::softplus(x);
    }
    return x;
}

template <class T>
class ActivationLayer final : public Module<T> {
public:
    explicit ActivationLayer(Activation a, double slope = 0.01) : act_(a), slope_(slope) {}
    Var<T> forward(Tape<T>&, const Var<T>& x) override { return activate(act_, x, slope_); }
    Var<T> forward_with(Tape<T>& tape, const Var<T>& x, std::span<const Var<T>> params) override {
        if (!params.empty()) fail("{}: takes no parameters, {} given", describe(), params.size());
        return forward(tape, x);
    }
    std::string describe() const override { return std::string(to_string(act_)); }
    Activation activation() const noexcept { return act_; }

private:
    Activation act_;
    double slope_;
};

// ---- Linear ------------------------------------------------------------------------------------

struct LinearOptions {
    bool bias = true;
    // Keep the bias as the last row of W and append a column of ones to x (seed 000's
    // convention: [x 1]·W), instead of a separate 1×n row b broadcast-added to x·W.
    bool fold_bias = false;
    Init init = Init::he_uniform;
    double gain = std::numbers::sqrt2;
    Init bias_init = Init::zeros;
};

// y = x·W + b        x: m×in, W: in×out, b: 1×out (broadcast over the m rows), y: m×out
// folded: y = [x 1]·W,  W: (in+1)×out with b as its last row.
// The gradients come from the ops' VJPs: dW = xᵀ·dy, db = 1ᵀ·dy (the engine's sum over the
// broadcast rows), dx = dy·Wᵀ.
template <class T>
class Linear final : public Module<T> {
public:
    // `index` names the parameters W<index>, b<index>.
    Linear(std::size_t in, std::size_t out, Rng& rng, LinearOptions opt = {}, std::size_t index = 0)
        : in_(in), out_(out), opt_(opt) {
        if (in == 0 || out == 0) fail("Linear: zero-sized layer {}→{}", in, out);
        const bool fold = opt.bias && opt.fold_bias;
        w_ = Parameter<T>(Tensor<T>(fold ? in + 1 : in, out), fmt::format("W{}", index));
        Tensor<T> top = Tensor<T>::view(w_.value.data(), {in, out}, std::pmr::get_default_resource());
        initialize(top, opt.init, in, out, opt.gain, rng);
        if (opt.bias) {
            Tensor<T> b(1, out);
            initialize(b, opt.bias_init, in, out, 1.0, rng);
            if (fold)
                std::copy_n(b.data(), out, w_.value.data() + in * out);
            else
                b_ = Parameter<T>(std::move(b), fmt::format("b{}", index));
        }
    }

    Var<T> forward(Tape<T>& tape, const Var<T>& x) override {
        const bool separate = opt_.bias && !opt_.fold_bias;
        return compute(tape, x, w_.var(tape), separate ? b_.var(tape) : Var<T>{});
    }
    Var<T> forward_with(Tape<T>& tape, const Var<T>& x, std::span<const Var<T>> params) override {
        const bool separate = opt_.bias && !opt_.fold_bias;
        if (params.size() != (separate ? 2u : 1u))
            fail("{}: forward_with needs {} parameter Vars, {} given", describe(), separate ? 2 : 1, params.size());
        return compute(tape, x, params[0], separate ? params[1] : Var<T>{});
    }

    std::vector<Parameter<T>*> parameters() override {
        if (opt_.bias && !opt_.fold_bias) return {&w_, &b_};
        return {&w_};
    }
    std::string describe() const override {
        return fmt::format("Linear({}→{}{})", in_, out_,
                           !opt_.bias ? ", no bias" : opt_.fold_bias ? ", bias folded" : "");
    }

    Parameter<T>& weight() noexcept { return w_; }
    Parameter<T>& bias() {
        if (!opt_.bias || opt_.fold_bias) fail("Linear: {} has no separate bias parameter", describe());
        return b_;
    }
    std::size_t in_features() const noexcept { return in_; }
    std::size_t out_features() const noexcept { return out_; }

private:
    Var<T> compute(Tape<T>& tape, const Var<T>& x, const Var<T>& w, const Var<T>& b) {
        if (x.cols() != in_) fail("{}: input has shape {}, expected {} columns", describe(), x.shape(), in_);
        if (w.shape() != w_.shape()) fail("{}: weight has shape {}, expected {}", describe(), w.shape(), w_.shape());
        if (!opt_.bias) return matmul(x, w);
        if (opt_.fold_bias) {
            const std::size_t m = x.rows();
            if (ones_.rows() < m) ones_ = Tensor<T>::filled(m, 1, T(1));
            Tensor<T> ones_m = Tensor<T>::view(ones_.data(), {m, 1}, std::pmr::get_default_resource());
            return matmul(concat_cols(x, tape.constant_ref(ones_m)), w);
        }
        return affine(x, w, b);
    }

    std::size_t in_, out_;
    LinearOptions opt_;
    Parameter<T> w_, b_;
    Tensor<T> ones_;  // column of ones for the folded bias, grown to the largest batch seen
};

// ---- Sequential --------------------------------------------------------------------------------

template <class T>
class Sequential : public Module<T> {
public:
    Sequential() = default;

    Module<T>& add(std::unique_ptr<Module<T>> m) {
        layers_.push_back(std::move(m));
        return *layers_.back();
    }
    template <class M, class... Args>
    M& emplace(Args&&... args) {
        auto m = std::make_unique<M>(std::forward<Args>(args)...);
        M& ref = *m;
        layers_.push_back(std::move(m));
        return ref;
    }

    Var<T> forward(Tape<T>& tape, const Var<T>& x) override {
        Var<T> h = x;
        for (auto& l : layers_) h = l->forward(tape, h);
        return h;
    }
    Var<T> forward_with(Tape<T>& tape, const Var<T>& x, std::span<const Var<T>> params) override {
        Var<T> h = x;
        std::size_t at = 0;
        for (auto& l : layers_) {
            const std::size_t k = l->parameters().size();
            if (at + k > params.size())
                fail("Sequential: forward_with got {} parameter Vars, the layers need more", params.size());
            h = l->forward_with(tape, h, params.subspan(at, k));
            at += k;
        }
        if (at != params.size()) fail("Sequential: forward_with got {} parameter Vars, the layers take {}", params.size(), at);
        return h;
    }
    std::vector<Parameter<T>*> parameters() override {
        std::vector<Parameter<T>*> ps;
        for (auto& l : layers_)
            for (Parameter<T>* p : l->parameters()) ps.push_back(p);
        return ps;
    }
    std::string describe() const override {
        std::string s = "Sequential(";
        for (std::size_t i = 0; i < layers_.size(); ++i) s += (i ? ", " : "") + layers_[i]->describe();
        return s + ")";
    }
    std::size_t size() const noexcept { return layers_.size(); }
    Module<T>& operator[](std::size_t i) { return *layers_.at(i); }

private:
    std::vector<std::unique_ptr<Module<T>>> layers_;
};

// ---- MLP ---------------------------------------------------------------------------------------

struct MLPOptions {
    LinearOptions linear{};       // options of every layer (init and gain replaced when choose_init)
    bool choose_init = true;      // He-uniform for relu-like activations, Xavier-uniform otherwise,
                                  // with torch's calculate_gain; false keeps linear.init and linear.gain
    double slope = 0.01;          // leaky relu's negative slope
    Activation output = Activation::identity;  // after the last layer (identity: logits)
};

// sizes = {in, h1, …, out}: Linear(in→h1), φ, Linear(h1→h2), φ, …, Linear(→out) [, output φ].
// Parameters are named W0, b0, W1, b1, …; weights drawn from Rng(seed) layer by layer.
template <class T>
class MLP final : public Sequential<T> {
public:
    MLP(std::vector<std::size_t> sizes, Activation act, std::uint64_t seed, MLPOptions opt = {})
        : sizes_(std::move(sizes)) {
        if (sizes_.size() < 2) fail("MLP: need at least an input and an output size, got {} sizes", sizes_.size());
        Rng rng(seed);
        LinearOptions lo = opt.linear;
        if (opt.choose_init) {
            const bool relu_like = act == Activation::relu || act == Activation::leaky_relu;
            lo.init = relu_like ? Init::he_uniform : Init::xavier_uniform;
            lo.gain = gain_for(act, opt.slope);
        }
        for (std::size_t i = 0; i + 1 < sizes_.size(); ++i) {
            this->template emplace<Linear<T>>(sizes_[i], sizes_[i + 1], rng, lo, i);
            const bool last = i + 2 == sizes_.size();
            const Activation a = last ? opt.output : act;
            if (a != Activation::identity) this->template emplace<ActivationLayer<T>>(a, opt.slope);
        }
    }
    const std::vector<std::size_t>& sizes() const noexcept { return sizes_; }

private:
    std::vector<std::size_t> sizes_;
};

}  // namespace tapegrad::nn
