// Activation checkpointing around stateful layers (issue 15, item 6): the recomputation replays
// the dropout masks of the first run and does not update batch norm's running statistics (or
// num_batches_tracked) a second time (core/recompute.hpp; nn::Dropout, nn::BatchNorm2d). Every
// comparison is bitwise against the same network run without checkpoint().
#include <doctest/doctest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <tapegrad/core/checkpoint_op.hpp>
#include <tapegrad/core/recompute.hpp>
#include <tapegrad/nn/conv.hpp>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
using tg::Shape;
using tg::Tensor;
using tg::Var;

namespace {

Tensor<double> randn(Shape s, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> n(0.0, 1.0);
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = n(rng);
    return t;
}

Tensor<double> copy(const Tensor<double>& t) { return t.clone(std::pmr::get_default_resource()); }

void check_bitwise(const Tensor<double>& a, const Tensor<double>& b) {
    REQUIRE(a.shape() == b.shape());
    std::size_t differ = 0;
    for (std::size_t i = 0; i < a.size(); ++i) differ += a[i] != b[i];
    CHECK(differ == 0);
}

// conv → BN → tanh → dropout → BN → dropout: two of each stateful layer in one segment; the
// dropouts with different seeds, the second BN without affine parameters.
struct Net {
    nn::Rng rng{5};
    nn::Conv2d<double> conv{2, 3, 3, rng, nn::Conv2dOptions{.padding = {1, 1}}};
    nn::BatchNorm2d<double> bn1{3};
    nn::Dropout<double> drop1{0.4, 11};
    nn::BatchNorm2d<double> bn2{3, nn::BatchNormLayerOptions{.affine = false}};
    nn::Dropout<double> drop2{0.3, 12};

    Var<double> first(const Var<double>& x) {
        tg::Tape<double>& t = x.tape();
        return drop1(t, tg::tanh(bn1(t, conv(t, x))));
    }
    Var<double> second(const Var<double>& x) {
        tg::Tape<double>& t = x.tape();
        return drop2(t, bn2(t, x));
    }
    std::vector<nn::Parameter<double>*> parameters() {
        return {&conv.weight(), &conv.bias(), &bn1.weight(), &bn1.bias()};
    }
    void set_training(bool on) {
        for (nn::Module<double>* m : std::initializer_list<nn::Module<double>*>{&conv, &bn1, &drop1, &bn2, &drop2})
            m->set_training(on);
    }
};

enum class Mode { plain, one_segment, two_segments, nested };

// One training step of ⟨net(x), u⟩: the input's gradient and every parameter's.
struct Step {
    Tensor<double> y, dx;
    std::vector<Tensor<double>> dp;
};

Step step(Net& net, Mode mode, const Tensor<double>& x, const Tensor<double>& u) {
    for (auto* p : net.parameters()) p->zero_grad();
    tg::Tape<double> tape;
    Var<double> xv = tape.variable(x);
    Var<double> y;
    auto first = [&net](const Var<double>& a) { return net.first(a); };
    auto second = [&net](const Var<double>& a) { return net.second(a); };
    auto both = [&net](const Var<double>& a) { return net.second(net.first(a)); };
    auto nested = [first, second](const Var<double>& a) { return second(tg::checkpoint(first, a)); };
    switch (mode) {
        case Mode::plain: y = both(xv); break;
        case Mode::one_segment: y = tg::checkpoint(both, xv); break;
        case Mode::two_segments: y = tg::checkpoint(second, tg::checkpoint(first, xv)); break;
        case Mode::nested: y = tg::checkpoint(nested, xv); break;
    }
    tape.backward(tg::sum(y * tape.constant(u)));
    Step s{copy(y.value()), copy(tape.grad(xv)), {}};
    for (auto* p : net.parameters()) s.dp.push_back(copy(p->grad.tensor()));
    return s;
}

}  // namespace

TEST_CASE("checkpoint around dropout and batch norm: bitwise the gradients, running statistics and counters of the plain run") {
    const Tensor<double> x = randn({4, 2, 5, 5}, 1), u = randn({4, 3, 5, 5}, 2);
    for (Mode mode : {Mode::one_segment, Mode::two_segments, Mode::nested}) {
        CAPTURE(static_cast<int>(mode));
        Net plain, ckpt;
        // Three training steps (masks of counters 0, 1, 2), then one in eval mode (running
        // statistics read, dropout the identity).
        for (int k = 0; k < 4; ++k) {
            CAPTURE(k);
            if (k == 3) {
                plain.set_training(false);
                ckpt.set_training(false);
            }
            const Step a = step(plain, Mode::plain, x, u), b = step(ckpt, mode, x, u);
            check_bitwise(a.y, b.y);
            check_bitwise(a.dx, b.dx);
            REQUIRE(a.dp.size() == b.dp.size());
            for (std::size_t i = 0; i < a.dp.size(); ++i) check_bitwise(a.dp[i], b.dp[i]);
            for (nn::BatchNorm2d<double>* bn : {&plain.bn1, &plain.bn2}) CHECK(bn->num_batches_tracked() == std::min(k + 1, 3));
            CHECK(ckpt.bn1.num_batches_tracked() == plain.bn1.num_batches_tracked());
            CHECK(ckpt.bn2.num_batches_tracked() == plain.bn2.num_batches_tracked());
            check_bitwise(ckpt.bn1.running_mean(), plain.bn1.running_mean());
            check_bitwise(ckpt.bn1.running_var(), plain.bn1.running_var());
            check_bitwise(ckpt.bn2.running_mean(), plain.bn2.running_mean());
            check_bitwise(ckpt.bn2.running_var(), plain.bn2.running_var());
            CHECK(plain.drop1.calls() == std::uint64_t(std::min(k + 1, 3)));
            CHECK(ckpt.drop1.calls() == plain.drop1.calls());
            CHECK(ckpt.drop2.calls() == plain.drop2.calls());
        }
        CHECK(tg::detail::recompute::top() == nullptr);
    }
}

TEST_CASE("without the replay the recomputation would differ: each training forward draws another mask") {
    // The property the replay exists for: a second forward of the same dropout layer, as a naive
    // recomputation would run it, gives another mask (so the bitwise test above can fail).
    nn::Dropout<double> d(0.5, 3);
    tg::Tape<double> tape;
    const Tensor<double> x = Tensor<double>::filled(Shape{8, 8}, 1.0);
    const Tensor<double> y0 = copy(d(tape, tape.constant(x)).value()), y1 = copy(d(tape, tape.constant(x)).value());
    std::size_t differ = 0;
    for (std::size_t i = 0; i < y0.size(); ++i) differ += y0[i] != y1[i];
    CHECK(differ > 0);
    CHECK(d.calls() == 2);
}

TEST_CASE("replay() and recomputing() outside, inside and under the recomputation of a checkpoint") {
    CHECK(tg::replay(41) == 41);
    CHECK_FALSE(tg::recomputing());
    std::vector<std::uint64_t> seen;
    std::vector<bool> recomputing;
    std::uint64_t next = 100;
    auto f = [&](const Var<double>& a) {
        seen.push_back(tg::replay(next++));
        recomputing.push_back(tg::recomputing());
        return tg::tanh(a);
    };
    tg::Tape<double> tape;
    Var<double> x = tape.variable(randn({2, 2}, 3));
    Var<double> y = tg::checkpoint(f, x);
    tape.backward(tg::sum(y));
    // The forward drew 100; the recomputation asked for 101 and got 100 back.
    CHECK(seen == std::vector<std::uint64_t>{100, 100});
    CHECK(recomputing == std::vector<bool>{false, true});
    CHECK(next == 102);
    CHECK_FALSE(tg::recomputing());
}

TEST_CASE("a recomputation that draws a different number of values is a clear Error") {
    int draws = 1;
    auto f = [&draws](const Var<double>& a) {
        for (int i = 0; i < draws; ++i) (void)tg::replay(7);
        return tg::tanh(a);
    };
    for (int later : {0, 2}) {
        CAPTURE(later);
        draws = 1;
        tg::Tape<double> tape;
        Var<double> x = tape.variable(randn({2, 2}, 4));
        Var<double> y = tg::checkpoint(f, x);
        draws = later;  // e.g. a dropout layer switched to eval() between forward and backward
        CHECK_THROWS_WITH_AS(tape.backward(tg::sum(y)), doctest::Contains("checkpoint: recomputing the segment"),
                             tg::Error);
        CHECK(tg::detail::recompute::top() == nullptr);
        CHECK(tg::detail::ckpt::scratch<double>().depth == 0);
    }
}

TEST_CASE("the replay state is per thread: two threads checkpointing dropout networks side by side") {
    // Each thread trains its own network, checkpointed, for three steps; the results equal the
    // plain network's run on this thread (the record of one thread's segment never serves the
    // other's recomputation).
    const Tensor<double> x = randn({2, 2, 4, 4}, 5), u = randn({2, 3, 4, 4}, 6);
    auto train = [&](Mode mode, std::vector<Step>& out) {
        Net net;
        for (int k = 0; k < 3; ++k) out.push_back(step(net, mode, x, u));
    };
    std::vector<Step> plain, a, b;
    train(Mode::plain, plain);
    std::thread ta([&] { train(Mode::one_segment, a); });
    std::thread tb([&] { train(Mode::nested, b); });
    ta.join();
    tb.join();
    REQUIRE(a.size() == 3);
    REQUIRE(b.size() == 3);
    for (std::size_t k = 0; k < 3; ++k) {
        CAPTURE(k);
        for (const std::vector<Step>* r : {&a, &b}) {
            check_bitwise((*r)[k].y, plain[k].y);
            check_bitwise((*r)[k].dx, plain[k].dx);
            for (std::size_t i = 0; i < plain[k].dp.size(); ++i) check_bitwise((*r)[k].dp[i], plain[k].dp[i]);
        }
    }
}
