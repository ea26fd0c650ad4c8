// The training step (tape reset, MLP forward, softmax cross-entropy, backward, optimiser step,
// zero_grad) allocates nothing on the heap once warm: batch tensors are reused, node memory
// comes from the tape's arena, optimiser state is allocated with the optimiser.
#include <doctest/doctest.h>

#include <cmath>
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

// gpt13: begin
// A GPT training step as examples/char_gpt runs it (forward, cross-entropy, backward, gradient
// clipping, AdamW with parameter groups, warm-up + cosine schedule, zero_grad): nothing on the
// heap once warm, untied and tied.
TEST_CASE("GPT training steps (clip, AdamW groups, warm-up + cosine) allocate nothing on the heap after the first ones") {
    constexpr std::size_t kV = 20, kB = 4, kT = 16;
    for (const bool tied : {false, true}) {
        CAPTURE(tied);
        nn::Rng rng(3);
        nn::GPT<float> gpt({.vocab_size = kV, .block_size = kT, .n_layer = 2, .n_head = 2, .n_embd = 32,
                            .tie_weights = tied},
                           rng);
        const auto params = gpt.parameters();
        nn::AdamW<float> opt(nn::adamw_param_groups<float>(params, 0.1, nn::gpt_linear_weight<float>),
                             {.lr = 1e-3, .beta2 = 0.99});
        nn::WarmupCosineLR sched(opt, {.warmup_iters = 2, .lr_decay_iters = 20, .min_lr = 1e-4});
        tg::Tape<float> tape;
        tg::Tensor<float> x(tg::Shape{kB, kT}), y(tg::Shape{kB * kT, 1});
        auto step = [&] {
            for (std::size_t i = 0; i < x.size(); ++i) {
                x[i] = float(rng.below(kV));
                y[i] = float(rng.below(kV));
            }
            tape.reset();
            const auto logits = gpt(tape, tape.constant_ref(x));
            const auto loss = tg::softmax_cross_entropy(tg::reshape(logits, tg::Shape{kB * kT, kV}), tape.constant_ref(y));
            tape.backward(loss);
            nn::clip_grad_norm<float>(params, 1.0);
            opt.step();
            opt.zero_grad();
            sched.step();
            return loss.item();
        };
        for (int k = 0; k < 3; ++k) step();
        const long before = g_news.load();
        float last = 0;
        for (int k = 0; k < 5; ++k) last = step();
        const long during = g_news.load() - before;
        CHECK(during == 0);
        CHECK(std::isfinite(last));
    }
}
// gpt13: end
