// Fashion-MNIST with a convolutional network (issue 12's demo):
//   conv(1→32, 3×3, pad 1)–ReLU–maxpool 2 → conv(32→64, 3×3, pad 1)–ReLU–maxpool 2 → flatten →
//   linear 3136→128–ReLU → linear 128→10,
// torch's initialisation, softmax cross-entropy, Adam 1e-3, batch 128, 10 epochs, cosine schedule.
//
//   fashion_cnn [--epochs 10] [--batch 128] [--lr 1e-3] [--optimizer sgd|momentum|adam|adamw]
//               [--seed 42] [--precision float|double] [--threads 1] [--limit N]
//               [--checkpoint PATH] [--resume PATH] [--max-steps N] [--out runs-cnn]
//               [--data DIR] [--schedule cosine|none] [--ddp] [--log-steps N]
//
// `--epochs 5 --schedule none` is PyTorch's recipe of the issue (constant rate, 5 epochs); the
// default is 10 epochs with a cosine schedule over them (torch's CosineAnnealingLR stepped after
// each epoch): 92.03 / 92.01 / 91.62 % for seeds 42 / 1 / 2, where 5 epochs with either schedule
// end near 90.5 % (README, docs/nn.md).
// The progress bar, history CSV/SVG, checkpoints (which also hold the layers' buffers: none in
// this network, batch norm's running statistics in others) and the data-parallel mode
// (`mpirun -np N … fashion_cnn --ddp`, docs/distributed.md) are the MLP demo's:
// examples/fashion_common.hpp.
#include "fashion_common.hpp"

namespace {

using namespace fashion;

// ---- the recipe: the defaults of the options, and the network ----
Options recipe() {
    Options o;
    o.epochs = 10;
    o.batch = 128;
    o.optimizer = "adam";  // lr 1e-3
    o.schedule = "cosine";
    o.seed = 42;
    o.out = "runs-cnn";
    return o;
}

template <class T>
struct BuildCNN {
    Network<T> operator()(const Options& o, const nn::Dataset& train) const {
        if (train.features != 784) tg::fail("expected 28×28 images, got {} features", train.features);
        auto net = std::make_unique<nn::Sequential<T>>();
        nn::Rng rng(o.seed);
        const nn::Conv2dOptions pad1{.padding = {1, 1}};
        const nn::LinearOptions torch_linear{.init = nn::Init::torch_default,
                                             .bias_init = nn::Init::torch_default};
        net->template emplace<nn::Unflatten<T>>(tg::Shape{1, 28, 28});
        net->template emplace<nn::Conv2d<T>>(1, 32, 3, rng, pad1);
        net->template emplace<nn::ActivationLayer<T>>(nn::Activation::relu);
        net->template emplace<nn::MaxPool2d<T>>(2);
        net->template emplace<nn::Conv2d<T>>(32, 64, 3, rng, pad1);
        net->template emplace<nn::ActivationLayer<T>>(nn::Activation::relu);
        net->template emplace<nn::MaxPool2d<T>>(2);
        net->template emplace<nn::Flatten<T>>();
        net->template emplace<nn::Linear<T>>(3136, 128, rng, torch_linear);
        net->template emplace<nn::ActivationLayer<T>>(nn::Activation::relu);
        net->template emplace<nn::Linear<T>>(128, 10, rng, torch_linear);
        std::string header = "network " + net->describe();
        return {std::move(net), std::move(header), "CNN"};
    }
};

}  // namespace

int main(int argc, char** argv) {
    return fashion::demo_main<BuildCNN>({.name = "fashion_cnn", .defaults = recipe(), .tape_bytes = std::size_t(64) << 20},
                                        argc, argv);
}
