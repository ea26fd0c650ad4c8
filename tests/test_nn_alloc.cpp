// The training step (tape reset, MLP forward, softmax cross-entropy, backward, optimiser step,
// zero_grad) allocates nothing on the heap once warm: batch tensors are reused, node memory
// comes from the tape's arena, optimiser state is allocated with the optimiser.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include <tapegrad/nn.hpp>

namespace {
std::atomic<long> g_news{0};
}

// GCC pairs the replaced operator new with free() after inlining and warns; the pairing is
// malloc/free, which is correct.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
    ++g_news;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
    ++g_news;
    const std::size_t al = static_cast<std::size_t>(a);
    if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

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
