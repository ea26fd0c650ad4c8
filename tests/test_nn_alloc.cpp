// The training step (tape reset, MLP forward, softmax cross-entropy, backward, optimiser step,
// zero_grad) allocates nothing on the heap once warm: batch tensors are reused, node memory
// comes from the tape's arena, optimiser state is allocated with the optimiser.
#include <doctest/doctest.h>

#include <tapegrad/nn.hpp>

#include "count_new.hpp"

using tapegrad::test::g_news;

namespace tg = tapegrad;
namespace nn = tapegrad::nn;

TEST_CASE("training steps allocate nothing on the heap after the first ones") {
    nn::Dataset d;
    d.features = 64;
    d.images.resize(1000 * 64);
    d.labels.resize(1000);
    nn::Rng rng(1);
    for (auto& v : d.images) v = static_cast<std::uint8_t>(rng.below(256));
    for (auto& l : d.labels) l = static_cast<std::uint8_t>(rng.below(10));

    for (int which = 0; which < 3; ++which) {
        CAPTURE(which);
        nn::MLP<float> net({64, 32, 16, 10}, nn::Activation::relu, 2, {.linear = {.fold_bias = which == 2}});
        std::unique_ptr<nn::Optimizer<float>> opt;
        if (which == 0)
            opt = std::make_unique<nn::Adam<float>>(net.parameters(), nn::AdamOptions{});
        else
            opt = std::make_unique<nn::SGD<float>>(net.parameters(), nn::SGDOptions{.lr = 0.1, .momentum = 0.9});
        tg::Tape<float> tape;
        nn::BatchBuffers<float> buf(100, d.features);
        nn::TrainState st;
        long before = 0, during = 0;
        nn::train_epoch(net, *opt, tape, d, 100, st, buf, [&](const nn::BatchReport& r) {
            if (r.batch == 2) before = g_news.load();
            if (r.batch == 9) during = g_news.load() - before;
            return true;
        });
        CHECK(during == 0);
        CHECK(st.epoch == 1);
    }
}
