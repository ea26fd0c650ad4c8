// The convolutional workloads of issue 12: the Fashion-MNIST demo CNN (examples/fashion_cnn.cpp:
// conv 1→32 3×3 pad 1, ReLU, maxpool 2, conv 32→64 3×3 pad 1, ReLU, maxpool 2, 3136→128→10)
// and LeNet-5 as in torch's classic (conv 1→6 5×5 pad 2, ReLU, maxpool 2, conv 6→16 5×5, ReLU,
// maxpool 2, 400→120→84→10), one Adam(1e-3) training step on a batch of 128, built with
// tapegrad::nn as a user writes it. bench/pytorch_bench.py --cnn times the same steps in PyTorch.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

#include <tapegrad/nn.hpp>
#include <tapegrad/tapegrad.hpp>

namespace bench {

namespace tg = tapegrad;

class CnnNet {
public:
    // kind: "cnn" (the demo's network) or "lenet".
    explicit CnnNet(std::string_view kind, std::uint64_t seed = 42) {
        namespace nn = tg::nn;
        nn::Rng rng(seed);
        const nn::LinearOptions lin{.init = nn::Init::torch_default, .bias_init = nn::Init::torch_default};
        net_.emplace<nn::Unflatten<float>>(tg::Shape{1, 28, 28});
        if (kind == "lenet") {
            net_.emplace<nn::Conv2d<float>>(1, 6, 5, rng, nn::Conv2dOptions{.padding = {2, 2}});
            net_.emplace<nn::ActivationLayer<float>>(nn::Activation::relu);
            net_.emplace<nn::MaxPool2d<float>>(2);
            net_.emplace<nn::Conv2d<float>>(6, 16, 5, rng);
            net_.emplace<nn::ActivationLayer<float>>(nn::Activation::relu);
            net_.emplace<nn::MaxPool2d<float>>(2);
            net_.emplace<nn::Flatten<float>>();
            net_.emplace<nn::Linear<float>>(400, 120, rng, lin);
            net_.emplace<nn::ActivationLayer<float>>(nn::Activation::relu);
            net_.emplace<nn::Linear<float>>(120, 84, rng, lin);
            net_.emplace<nn::ActivationLayer<float>>(nn::Activation::relu);
            net_.emplace<nn::Linear<float>>(84, 10, rng, lin);
        } else {
            const nn::Conv2dOptions pad1{.padding = {1, 1}};
            net_.emplace<nn::Conv2d<float>>(1, 32, 3, rng, pad1);
            net_.emplace<nn::ActivationLayer<float>>(nn::Activation::relu);
            net_.emplace<nn::MaxPool2d<float>>(2);
            net_.emplace<nn::Conv2d<float>>(32, 64, 3, rng, pad1);
            net_.emplace<nn::ActivationLayer<float>>(nn::Activation::relu);
            net_.emplace<nn::MaxPool2d<float>>(2);
            net_.emplace<nn::Flatten<float>>();
            net_.emplace<nn::Linear<float>>(3136, 128, rng, lin);
            net_.emplace<nn::ActivationLayer<float>>(nn::Activation::relu);
            net_.emplace<nn::Linear<float>>(128, 10, rng, lin);
        }
        opt_ = std::make_unique<nn::Adam<float>>(net_.parameters(), nn::AdamOptions{.lr = 1e-3});
    }

    // One Adam step on x (m × 784) with labels y (m × 1); returns the loss before the update.
    float step(const tg::Tensor<float>& x, const tg::Tensor<float>& y) {
        tape_.reset();
        auto logits = net_(tape_, tape_.constant_ref(x));
        auto loss = tg::softmax_cross_entropy(logits, tape_.constant_ref(y));
        tape_.backward(loss);
        opt_->step();
        opt_->zero_grad();
        return loss.item();
    }

    tg::nn::Sequential<float>& net() noexcept { return net_; }

private:
    tg::nn::Sequential<float> net_;
    std::unique_ptr<tg::nn::Adam<float>> opt_;
    tg::Tape<float> tape_{std::size_t(64) << 20};
};

// Forward and backward (what a training step runs: conv1 dW, db; conv2 dX, dW, db) of the demo
// CNN's two conv layers on a batch of 128, median ms over `reps`, per layer.
struct ConvLayerTimes {
    double fwd_ms[2], bwd_ms[2];
};
inline ConvLayerTimes time_cnn_convs(int reps) {
    auto now = [] { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); };
    auto median_ms = [&](auto&& body) {
        body();  // warm-up (scratch buffers sized)
        std::vector<double> t;
        for (int r = 0; r < reps; ++r) {
            const double t0 = now();
            body();
            t.push_back((now() - t0) * 1e3);
        }
        std::sort(t.begin(), t.end());
        return t[t.size() / 2];
    };
    auto filled = [](tg::Shape s, float v) {
        tg::Tensor<float> t(s);
        for (std::size_t i = 0; i < t.size(); ++i) t[i] = v * float(int(i % 17) - 8);
        return t;
    };
    const tg::Conv2dParams pad1{{1, 1}, {1, 1}, {1, 1}, 1};
    const std::size_t in[2] = {1, 32}, out[2] = {32, 64}, hw[2] = {28, 14};
    ConvLayerTimes r{};
    for (int l = 0; l < 2; ++l) {
        const tg::Tensor<float> x = filled({128, in[l], hw[l], hw[l]}, 0.05f);
        const tg::Tensor<float> w = filled({out[l], in[l], 3, 3}, 0.01f), b = filled({out[l]}, 0.1f);
        tg::Tensor<float> y({128, out[l], hw[l], hw[l]}), dx(x.shape()), dw(w.shape()), db(b.shape());
        const tg::Tensor<float> g = filled(y.shape(), 0.001f);
        const tg::Conv2dBias op{pad1};
        r.fwd_ms[l] = median_ms([&] { op.forward(y, x, w, b); });
        r.bwd_ms[l] = median_ms([&] {
            if (l > 0) op.vjp_into(tg::In<0>{}, dx, false, g, y, x, w, b);
            op.vjp_into(tg::In<1>{}, dw, false, g, y, x, w, b);
            op.vjp_into(tg::In<2>{}, db, false, g, y, x, w, b);
        });
    }
    return r;
}

}  // namespace bench
