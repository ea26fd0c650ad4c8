// End-to-end training: a synthetic problem that needs a hidden layer (always runs) and the
// first 2,000 Fashion-MNIST images (when the package is installed) reach accuracies that a
// wrong gradient cannot reach.
#include <doctest/doctest.h>

#include <tapegrad/nn.hpp>

#include "nn_fixtures.hpp"

namespace tg = tapegrad;
namespace nn = tapegrad::nn;

namespace {

using tapegrad::test::synthetic;

template <class T>
nn::Evaluation fit(nn::Module<T>& net, nn::Optimizer<T>& opt, const nn::Dataset& train, const nn::Dataset& test,
                   std::size_t epochs, std::size_t batch, double* first_loss = nullptr) {
    tg::Tape<T> tape;
    nn::BatchBuffers<T> buf(batch, train.features);
    nn::TrainState st{.rng = nn::Rng(1)};
    while (st.epoch < epochs)
        nn::train_epoch(net, opt, tape, train, batch, st, buf, [&](const nn::BatchReport& r) {
            if (first_loss && st.step == 1) *first_loss = r.loss;
            return true;
        });
    nn::BatchBuffers<T> eval_buf(500, test.features);
    return nn::evaluate(net, tape, test, eval_buf);
}

}  // namespace

TEST_CASE("an MLP learns a synthetic xor-of-comparisons problem that a linear model cannot") {
    auto train = synthetic(4000, 1), test = synthetic(1000, 2);
    nn::MLP<float> net({24, 64, 64, 4}, nn::Activation::relu, 3);
    nn::Adam<float> opt(net.parameters(), {.lr = 3e-3});
    double first = 0;
    auto e = fit(net, opt, train, test, 40, 64, &first);
    MESSAGE("synthetic: test accuracy ", e.accuracy, ", loss ", e.loss, " (first batch loss ", first, ")");
    CHECK(first > 1.0);  // about log 4 at the start
    CHECK(e.accuracy > 0.85);
    CHECK(e.loss < 0.5);

    nn::MLP<float> linear({24, 4}, nn::Activation::relu, 3);  // no hidden layer
    nn::Adam<float> ol(linear.parameters(), {.lr = 3e-3});
    auto el = fit(linear, ol, train, test, 40, 64);
    MESSAGE("synthetic, linear model: test accuracy ", el.accuracy);
    CHECK(el.accuracy < 0.65);
}

TEST_CASE("SGD with momentum also trains the synthetic problem in double") {
    auto train = synthetic(4000, 1), test = synthetic(1000, 2);
    nn::MLP<double> net({24, 64, 64, 4}, nn::Activation::tanh, 3);
    nn::SGD<double> opt(net.parameters(), {.lr = 0.05, .momentum = 0.9});
    auto e = fit(net, opt, train, test, 40, 64);
    MESSAGE("synthetic, SGD momentum, tanh: test accuracy ", e.accuracy);
    CHECK(e.accuracy > 0.85);
}

TEST_CASE("training on the first 2000 Fashion-MNIST images reaches 75% test accuracy") {
    if (!nn::fashion_mnist_available()) {
        MESSAGE("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist); skipped");
        return;
    }
    auto train = nn::load_fashion_mnist("train");
    train.truncate(2000);
    auto test = nn::load_fashion_mnist("test");
    test.truncate(2000);
    nn::MLP<float> net({784, 128, 10}, nn::Activation::relu, 42);
    nn::Adam<float> opt(net.parameters(), {.lr = 1e-3});
    auto e = fit(net, opt, train, test, 8, 64);
    MESSAGE("Fashion-MNIST slice: test accuracy ", e.accuracy, ", loss ", e.loss);
    CHECK(e.accuracy > 0.75);  // chance is 10%; a sign error in any VJP stays far below
}
