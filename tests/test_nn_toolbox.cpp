// The toolbox of issue 15 in nn: tape-free inference (bitwise equal to the recorded forward),
// frozen parameters (no gradient written, skipped by optimisers, kept by checkpoints),
// parameter post-accumulate hooks on a real network, and the recipe for accumulating k
// micro-batches with the mean loss (equal to one large batch, in double, to 1e-12).
#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <tapegrad/nn.hpp>
#include <vector>

#include "nn_fixtures.hpp"

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
using tg::Tensor;

namespace {

template <class T>
Tensor<T> randn(std::size_t r, std::size_t c, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> n(0.0, 1.0);
    Tensor<T> t(r, c);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<T>(n(rng));
    return t;
}

template <class T>
Tensor<T> labels(std::size_t m, std::size_t classes, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    Tensor<T> y(m, 1);
    for (std::size_t i = 0; i < m; ++i) y[i] = static_cast<T>(rng() % classes);
    return y;
}

template <class T>
bool bitwise_equal(const Tensor<T>& a, const Tensor<T>& b) {
    return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

template <class T>
Tensor<T> copy(const Tensor<T>& t) {
    return t.clone(std::pmr::get_default_resource());
}

// A module with no tensor path of its own: infer() falls back to a scratch tape under no-grad.
template <class T>
class Scale final : public nn::Module<T> {
public:
    tg::Var<T> forward(tg::Tape<T>&, const tg::Var<T>& x) override { return x * 0.5; }
    tg::Var<T> forward_with(tg::Tape<T>& tape, const tg::Var<T>& x, std::span<const tg::Var<T>>) override {
        return forward(tape, x);
    }
    std::string describe() const override { return "Scale"; }
};

}  // namespace

// ---- tape-free inference ------------------------------------------------------------------------

TEST_CASE_TEMPLATE("modules run on plain tensors with the same bits as the recorded forward pass", T, float,
                   double) {
    for (auto act : {nn::Activation::relu, nn::Activation::tanh, nn::Activation::sigmoid,
                     nn::Activation::leaky_relu, nn::Activation::softplus}) {
        for (bool fold : {false, true}) {
            CAPTURE(nn::to_string(act));
            CAPTURE(fold);
            nn::MLPOptions mo;
            mo.linear.fold_bias = fold;
            nn::MLP<T> net({7, 16, 9, 3}, act, 5, mo);
            const Tensor<T> x = randn<T>(11, 7, 9);
            tg::Tape<T> tape;
            const Tensor<T> recorded = copy(net(tape, tape.constant_ref(x)).value());
            const Tensor<T> inferred = net(x);
            CHECK(bitwise_equal(recorded, inferred));
        }
    }
    nn::Rng rng(1);
    nn::Sequential<T> seq;
    seq.template emplace<nn::Linear<T>>(4, 3, rng, nn::LinearOptions{.bias = false});
    seq.template emplace<Scale<T>>();
    const Tensor<T> x = randn<T>(5, 4, 2);
    tg::Tape<T> tape;
    CHECK(bitwise_equal(copy(seq(tape, tape.constant_ref(x)).value()), seq(x)));
    CHECK_THROWS_WITH_AS(seq(randn<T>(5, 3, 2)), doctest::Contains("expected 4 columns"), tg::Error);
}

TEST_CASE("evaluate() without a tape gives the loss and accuracy of a recorded forward pass, bit for bit") {
    auto data = tapegrad::test::synthetic(1234, 7);
    nn::MLP<float> net({24, 32, 4}, nn::Activation::relu, 3);
    nn::BatchBuffers<float> buf(500, data.features);
    const nn::Evaluation e = nn::evaluate(net, data, buf);
    // The reference: the evaluation loop as it was written with a tape.
    tg::Tape<float> tape;
    double loss_sum = 0;
    std::size_t correct = 0;
    std::vector<std::uint32_t> order(500);
    for (std::size_t b0 = 0; b0 < data.size(); b0 += 500) {
        const std::size_t m = std::min<std::size_t>(500, data.size() - b0);
        for (std::size_t i = 0; i < m; ++i) order[i] = static_cast<std::uint32_t>(b0 + i);
        nn::gather_batch(data, std::span<const std::uint32_t>(order).first(m), buf.x, buf.y);
        const Tensor<float> xv = buf.x_rows(m), yv = buf.y_rows(m);
        tape.reset();
        auto logits = net(tape, tape.constant_ref(xv));
        auto loss = tg::softmax_cross_entropy(logits, tape.constant_ref(yv));
        loss_sum += static_cast<double>(loss.item()) * static_cast<double>(m);
        correct += nn::count_correct(logits.value(), yv);
    }
    CHECK(e.loss == loss_sum / static_cast<double>(data.size()));
    CHECK(e.accuracy == static_cast<double>(correct) / static_cast<double>(data.size()));
    CHECK(e.samples == data.size());
}

// ---- frozen parameters ---------------------------------------------------------------------------

TEST_CASE("a frozen parameter gets no gradient: backward leaves grad as it was, the others unchanged") {
    nn::MLP<double> net({6, 8, 3}, nn::Activation::tanh, 2);
    nn::MLP<double> ref({6, 8, 3}, nn::Activation::tanh, 2);
    auto ps = net.parameters();
    CHECK(ps[0]->requires_grad());
    net.freeze();
    for (auto* p : ps) CHECK_FALSE(p->requires_grad());
    net.unfreeze();
    ps[0]->requires_grad(false);
    ps[1]->requires_grad(false);  // W0, b0 frozen: only the last layer trains
    net.zero_grad();
    ps[0]->grad.fill(7.0);  // a stale gradient is left alone, not overwritten or added to
    const Tensor<double> x = randn<double>(5, 6, 1), y = labels<double>(5, 3, 2);
    tg::Tape<double> tape, tape_ref;
    tape.backward(tg::softmax_cross_entropy(net(tape, tape.constant_ref(x)), tape.constant_ref(y)));
    tape_ref.backward(
        tg::softmax_cross_entropy(ref(tape_ref, tape_ref.constant_ref(x)), tape_ref.constant_ref(y)));
    for (std::size_t i = 0; i < ps[0]->size(); ++i) CHECK(ps[0]->grad[i] == 7.0);
    for (std::size_t i = 0; i < ps[1]->size(); ++i) CHECK(ps[1]->grad[i] == 0.0);  // zero_grad()'s zero
    // The unfrozen layer's gradient is exactly the one of the unfrozen network.
    auto rs = ref.parameters();
    CHECK(bitwise_equal(ps[2]->grad.tensor(), rs[2]->grad.tensor()));
    CHECK(bitwise_equal(ps[3]->grad.tensor(), rs[3]->grad.tensor()));
    // No VJP ran for the frozen leaves: they are constants on the tape.
    std::size_t differentiable_leaves = 0;
    for (std::uint32_t i = 0; i < tape.size(); ++i)
        differentiable_leaves += tape.node(i).op == nullptr && tape.node(i).requires_grad;
    CHECK(differentiable_leaves == 2);
}

TEST_CASE("optimisers skip frozen parameters: no update, no moment or momentum change, no weight decay") {
    auto run = [](auto make_opt) {
        nn::MLP<double> net({4, 5, 2}, nn::Activation::relu, 3);
        auto ps = net.parameters();
        ps[0]->requires_grad(false);
        const Tensor<double> w0 = copy(ps[0]->value), w1 = copy(ps[2]->value);
        auto opt = make_opt(ps);
        std::vector<Tensor<double>> state0;
        for (std::size_t step = 0; step < 3; ++step) {
            for (auto* p : ps) p->grad.fill(0.25);  // a gradient even on the frozen one
            opt->step();
        }
        CHECK(bitwise_equal(ps[0]->value, w0));
        CHECK_FALSE(bitwise_equal(ps[2]->value, w1));
        for (const auto& s : opt->state())
            if (s.name.ends_with("/W0"))
                for (std::size_t i = 0; i < s.tensor->size(); ++i) CHECK((*s.tensor)[i] == 0.0);
    };
    run([](auto ps) {
        return std::make_unique<nn::SGD<double>>(
            ps, nn::SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1});
    });
    run([](auto ps) {
        return std::make_unique<nn::Adam<double>>(ps, nn::AdamOptions{.lr = 0.1, .weight_decay = 0.1});
    });
    run([](auto ps) { return std::make_unique<nn::AdamW<double>>(ps, nn::AdamWOptions{.lr = 0.1}); });
}

TEST_CASE("checkpoints keep frozen parameters: their values and their flags") {
    nn::MLP<double> net({3, 4, 2}, nn::Activation::relu, 1);
    net.parameters()[0]->requires_grad(false);
    nn::SGD<double> opt(net.parameters(), {.lr = 0.1});
    const auto bytes = nn::make_checkpoint<double>(net.parameters(), &opt, nn::TrainState{}).serialize();

    nn::MLP<double> other({3, 4, 2}, nn::Activation::relu, 99);
    nn::SGD<double> opt2(other.parameters(), {.lr = 0.1});
    nn::TrainState st;
    nn::restore_checkpoint<double>(nn::Archive::deserialize(bytes, "mem"), other.parameters(), &opt2, st);
    for (std::size_t k = 0; k < 4; ++k) {
        CAPTURE(k);
        CHECK(bitwise_equal(other.parameters()[k]->value, net.parameters()[k]->value));
        CHECK(other.parameters()[k]->requires_grad() == (k != 0));
    }

    // A checkpoint without the flags (written before they existed) leaves them as they are.
    nn::Archive a = nn::Archive::deserialize(bytes, "mem");
    nn::Archive old;
    for (const auto& [name, e] : a.entries()) {
        if (name.starts_with("frozen/")) continue;
        if (e.kind == nn::Archive::Kind::bytes)
            old.put_string(name, a.get_string(name));
        else if (e.kind == nn::Archive::Kind::u64)
            old.put_u64(name, a.get_u64(name));
        else if (e.kind == nn::Archive::Kind::f64 && e.shape.rows() == 1 && !name.starts_with("param/"))
            old.put_f64(name, a.get_f64(name));
        else {
            Tensor<double> t(e.shape);
            a.get(name, t);
            old.put(name, t);
        }
    }
    other.freeze();
    nn::restore_checkpoint<double>(old, other.parameters(), &opt2, st);
    for (auto* p : other.parameters()) CHECK_FALSE(p->requires_grad());
}

// ---- parameter hooks on a network -----------------------------------------------------------------

TEST_CASE(
    "parameter post-accumulate hooks run layer by layer from the output, each with its complete gradient") {
    nn::MLP<double> net({5, 6, 6, 3}, nn::Activation::tanh, 4);
    auto ps = net.parameters();  // W0 b0 W1 b1 W2 b2
    std::vector<std::size_t> layers;
    std::vector<Tensor<double>> seen(ps.size());
    for (std::size_t k = 0; k < ps.size(); ++k)
        ps[k]->register_post_accumulate_grad_hook([&, k](nn::Parameter<double>& p) {
            layers.push_back(k / 2);
            seen[k] = copy(p.grad.tensor());
        });
    ps[1]->requires_grad(false);  // a frozen parameter: no gradient, no hook
    net.zero_grad();
    const Tensor<double> x = randn<double>(4, 5, 3), y = labels<double>(4, 3, 4);
    tg::Tape<double> tape;
    tape.backward(tg::softmax_cross_entropy(net(tape, tape.constant_ref(x)), tape.constant_ref(y)));
    CHECK(layers == std::vector<std::size_t>{2, 2, 1, 1, 0});
    for (std::size_t k = 0; k < ps.size(); ++k)
        if (k != 1) CHECK(bitwise_equal(seen[k], ps[k]->grad.tensor()));
    CHECK(seen[1].empty());
}

// ---- accumulating k micro-batches ------------------------------------------------------------------

TEST_CASE("k micro-batches, each loss weighted by its share m_i/B, accumulate the large batch's gradient") {
    // The recipe (docs/toolbox.md): zero_grad() once; for each micro-batch i of m_i rows,
    // tape.reset(); loss_i = mean loss over the m_i rows · (m_i / B); backward(loss_i); then one
    // step. Σ_i (m_i/B)·mean_i = (1/B)·Σ_rows = the mean over the B rows, so the gradients agree.
    const std::size_t B = 12;
    const Tensor<double> x = randn<double>(B, 6, 11), y = labels<double>(B, 4, 12);
    for (const std::vector<std::size_t>& sizes :
         {std::vector<std::size_t>{4, 4, 4}, std::vector<std::size_t>{5, 4, 3},
          std::vector<std::size_t>{12}}) {
        CAPTURE(sizes.size());
        nn::MLP<double> big({6, 10, 4}, nn::Activation::tanh, 8), acc({6, 10, 4}, nn::Activation::tanh, 8);
        nn::Adam<double> opt_big(big.parameters(), {.lr = 1e-2}), opt_acc(acc.parameters(), {.lr = 1e-2});
        tg::Tape<double> tape;
        for (int step = 0; step < 2; ++step) {
            opt_big.zero_grad();
            tape.reset();
            tape.backward(tg::softmax_cross_entropy(big(tape, tape.constant_ref(x)), tape.constant_ref(y)));

            opt_acc.zero_grad();
            std::size_t r0 = 0;
            for (std::size_t m : sizes) {
                const Tensor<double> xi = tg::slice(x, r0, r0 + m, 0, x.cols()),
                                     yi = tg::slice(y, r0, r0 + m, 0, 1);
                tape.reset();
                auto loss =
                    tg::softmax_cross_entropy(acc(tape, tape.constant_ref(xi)), tape.constant_ref(yi));
                tape.backward(loss * (static_cast<double>(m) / static_cast<double>(B)));
                r0 += m;
            }
            auto pb = big.parameters(), pa = acc.parameters();
            for (std::size_t k = 0; k < pb.size(); ++k) {
                const Tensor<double>& gb = pb[k]->grad.tensor();
                const Tensor<double>& ga = pa[k]->grad.tensor();
                for (std::size_t i = 0; i < gb.size(); ++i) CHECK(std::abs(ga[i] - gb[i]) <= 1e-12);
            }
            opt_big.step();
            opt_acc.step();
        }
        auto pb = big.parameters(), pa = acc.parameters();
        for (std::size_t k = 0; k < pb.size(); ++k)
            for (std::size_t i = 0; i < pb[k]->size(); ++i)
                CHECK(std::abs(pa[k]->value[i] - pb[k]->value[i]) <= 1e-12);
    }
}
