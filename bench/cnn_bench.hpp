// The convolutional workloads of issue 12: the Fashion-MNIST demo CNN (examples/fashion_cnn.cpp:
// conv 1→32 3×3 pad 1, ReLU, maxpool 2, conv 32→64 3×3 pad 1, ReLU, maxpool 2, 3136→128→10)
// and LeNet-5 as in torch's classic (conv 1→6 5×5 pad 2, ReLU, maxpool 2, conv 6→16 5×5, ReLU,
// maxpool 2, 400→120→84→10), one Adam(1e-3) training step on a batch of 128, built with
// tapegrad::nn as a user writes it. bench/pytorch_bench.py --cnn times the same steps in PyTorch.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

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

}  // namespace bench
