// Transformer layers (nn/transformer.hpp): a tiny pre-LN block's parameter gradients against
// finite differences (gradcheck, double), a tiny GPT whose loss decreases over Adam steps on a
// fixed batch, and the errors of the layers (head count, sequence length, vocabulary).
#include <doctest/doctest.h>

#include <random>
#include <tapegrad/nn.hpp>
#include <tapegrad/nn/transformer.hpp>
#include <tapegrad/tapegrad.hpp>
#include <vector>

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
using tg::Shape;
using tg::Tensor;

namespace {
std::vector<Tensor<double>> values_of(tg::nn::Module<double>& m) {
    std::vector<Tensor<double>> v;
    for (auto* p : m.parameters()) v.push_back(p->value.clone(std::pmr::get_default_resource()));
    return v;
}
Tensor<double> random(Shape s, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = u(rng);
    return t;
}
}  // namespace

TEST_CASE("a tiny pre-LN TransformerBlock's parameter gradients pass gradcheck (causal, 2 heads)") {
    nn::Rng rng(3);
    nn::TransformerBlock<double> block(4, 2, rng);
    const Tensor<double> x = random(Shape{2, 3, 4}, 7), c = random(Shape{2, 3, 4}, 8);
    auto report = tg::gradcheck(
        [&](tg::Tape<double>& t, std::span<const tg::Var<double>> v) {
            return tg::sum(block.forward_with(t, t.constant(x), v) * t.constant(c));
        },
        values_of(block));
    INFO(fmt::format("{}", report));
    CHECK(report);
    CHECK(block.parameters().size() == 12);  // ln1 (2), qkv (2), proj (2), ln2 (2), fc (2), out (2)
}

TEST_CASE("a tiny GPT's loss decreases over Adam steps on a fixed batch") {
    nn::Rng rng(1);
    nn::GPT<double> gpt({.vocab_size = 7, .block_size = 4, .n_layer = 1, .n_head = 2, .n_embd = 8}, rng);
    const Tensor<double> idx(Shape{2, 4}, {0, 1, 2, 3, 4, 5, 6, 0});
    const Tensor<double> tgt(Shape{8}, {1, 2, 3, 4, 5, 6, 0, 1});
    nn::Adam<double> opt(gpt.parameters(), {.lr = 1e-2});
    std::vector<double> losses;
    for (int step = 0; step < 30; ++step) {
        tg::Tape<double> tape;
        opt.zero_grad();
        auto logits = gpt(tape, tape.constant(idx));
        REQUIRE(logits.shape() == Shape{2, 4, 7});
        auto loss = tg::softmax_cross_entropy(tg::reshape(logits, Shape{8, 7}), tape.constant(tgt));
        losses.push_back(loss.value().item());
        tape.backward(loss);
        opt.step();
    }
    INFO("first ", losses.front(), " last ", losses.back());
    CHECK(losses.back() < 0.5 * losses.front());
    CHECK(losses[10] < losses.front());

    tg::Tape<double> tape;
    CHECK_THROWS_WITH_AS(
        gpt(tape, tape.constant(Tensor<double>(Shape{1, 5}))),
        doctest::Contains("GPT: sequence of length 5 (indices (1×5)) is longer than the positional "
                          "table (4)"),
        tg::Error);
    CHECK_THROWS_WITH_AS(gpt(tape, tape.constant(Tensor<double>(Shape{1, 2}, {0, 7}))),
                         doctest::Contains("embedding: index 7 at position 1"), tg::Error);
    CHECK_THROWS_WITH_AS(nn::MultiheadAttention<double>(6, 4, rng),
                         doctest::Contains("MultiheadAttention: 4 heads do not divide the model width 6"),
                         tg::Error);
}
