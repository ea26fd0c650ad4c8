// Convolutional layers and their ops end to end: a conv → max-pool → batch-norm pipeline against
// PyTorch fixtures in double (tests/conv_fixtures.hpp, from scripts/conv_fixtures.py), batch
// norm's running statistics and modes, dropout's mask, train()/eval() through Sequential,
// torch's initialisation and parameter counts, gradcheck of a small CNN's parameters, and the
// buffers in a checkpoint.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <string>
#include <tapegrad/nn.hpp>
#include <tapegrad/nn/conv.hpp>
#include <vector>

#include "conv_fixtures.hpp"
#include "count_new.hpp"

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
using tg::Shape;
using tg::Tensor;

namespace {

Tensor<double> det(Shape s, double a, double b) {
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = std::sin(a * double(i) + b);
    return t;
}
double max_diff(const Tensor<double>& t, const std::vector<double>& v) {
    REQUIRE(t.size() == v.size());
    double m = 0;
    for (std::size_t i = 0; i < v.size(); ++i) m = std::max(m, std::abs(t[i] - v[i]));
    return m;
}

const tg::Conv2dParams kConv{{2, 1}, {1, 1}, {1, 2}, 1};
const tg::Pool2dParams kPool{{2, 2}, {1, 1}, {1, 1}, {1, 1}, true};

}  // namespace

TEST_CASE(
    "conv2d → max_pool2d → batch_norm matches PyTorch in double: outputs, running statistics, gradients") {
    const Tensor<double> x = det({2, 3, 5, 4}, 0.37, 0.1), w = det({4, 3, 3, 2}, 0.71, 0.3);
    const Tensor<double> b = det({4}, 1.3, 0.2), gamma = det({4}, 0.9, 0.5), beta = det({4}, 0.4, 0.8);
    Tensor<double> rm(Shape{4}), rv = Tensor<double>::filled(Shape{4}, 1.0);
    std::int64_t tracked = 0;
    tg::BatchNormOptions<double> o;
    o.running_mean = &rm, o.running_var = &rv, o.num_batches_tracked = &tracked, o.momentum = std::nullopt;

    const Tensor<double> z = tg::max_pool2d(tg::conv2d(x, w, b, kConv), kPool);
    REQUIRE(z.shape() == Shape{2, 4, 4, 5});
    const Tensor<double> o1 = tg::batch_norm(z, gamma, beta, o);
    CHECK(max_diff(o1, conv_fixtures::k_o1) < 1e-12);
    (void)tg::batch_norm(Tensor<double>(z * 1.5 + 0.25), gamma, beta,
                         o);  // a second batch: cumulative average
    CHECK(tracked == 2);
    CHECK(max_diff(rm, conv_fixtures::k_rm) < 1e-12);
    CHECK(max_diff(rv, conv_fixtures::k_rv) < 1e-12);
    o.training = false;
    CHECK(max_diff(tg::batch_norm(z, gamma, beta, o), conv_fixtures::k_o3) < 1e-12);

    // Gradients of ⟨bn(maxpool(conv(x, w) + b)), u⟩ with torch's default BatchNorm2d (training).
    tg::Tape<double> tape;
    auto xv = tape.variable(x), wv = tape.variable(w);
    auto zv = tg::max_pool2d(tg::conv2d(xv, wv, tape.constant(b), kConv), kPool);
    auto out = tg::batch_norm(zv, tape.constant(gamma), tape.constant(beta));
    tape.backward(tg::sum(out * tape.constant(det(out.shape(), 0.23, 0.6))));
    CHECK(max_diff(tape.grad(xv), conv_fixtures::k_dx) < 1e-12);
    CHECK(max_diff(tape.grad(wv), conv_fixtures::k_dw) < 1e-12);
}

TEST_CASE(
    "batch_norm in training normalises each channel, updates running statistics with momentum and the "
    "unbiased variance") {
    const Tensor<double> x = det({3, 2, 2, 2}, 0.9, 0.2);
    Tensor<double> rm(Shape{2}), rv = Tensor<double>::filled(Shape{2}, 1.0);
    std::int64_t tracked = 0;
    tg::BatchNormOptions<double> o;
    o.running_mean = &rm, o.running_var = &rv, o.num_batches_tracked = &tracked;
    const Tensor<double> y = tg::batch_norm(x, o);
    for (std::size_t c = 0; c < 2; ++c) {
        double m = 0, m2 = 0, s = 0, s2 = 0;
        for (std::size_t n = 0; n < 3; ++n)
            for (std::size_t k = 0; k < 4; ++k) {
                const double v = x[(n * 2 + c) * 4 + k], u = y[(n * 2 + c) * 4 + k];
                m += v / 12, m2 += v * v / 12, s += u / 12, s2 += u * u / 12;
            }
        const double var = m2 - m * m;
        CHECK(s == doctest::Approx(0.0).scale(1.0).epsilon(1e-12));
        CHECK(s2 == doctest::Approx(var / (var + 1e-5)).epsilon(1e-10));
        CHECK(rm[c] == doctest::Approx(0.1 * m).epsilon(1e-12));
        CHECK(rv[c] == doctest::Approx(0.9 + 0.1 * var * 12 / 11).epsilon(1e-12));
    }
    CHECK(tracked == 1);
}

TEST_CASE("batch_norm refuses one value per channel in training, and bad statistics shapes") {
    auto message = [](auto f) {
        try {
            f();
        } catch (const tg::Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(message([] {
              tg::batch_norm(Tensor<double>(Shape{1, 3, 1, 1}));
          }).find("batch_norm: expected more than 1 value per channel when training, got input (1×3×1×1)") !=
          std::string::npos);
    Tensor<double> rm(Shape{2}), rv(Shape{2});
    tg::BatchNormOptions<double> o;
    o.running_mean = &rm, o.running_var = &rv;
    CHECK(message([&] {
              tg::batch_norm(Tensor<double>(Shape{4, 3}), o);
          }).find("running statistics of (2)") != std::string::npos);
    o.training = false;
    o.running_mean = nullptr;
    CHECK(message([&] {
              tg::batch_norm(Tensor<double>(Shape{4, 2}), o);
          }).find("eval mode needs running_mean") != std::string::npos);
    CHECK(message([] {
              tg::dropout(Tensor<double>(Shape{2, 2}), 1.5, true, 0);
          }).find("dropout: probability 1.5") != std::string::npos);
}

TEST_CASE(
    "dropout keeps each element with probability 1 − p, scales by 1/(1 − p), and is reproducible from (seed, "
    "counter)") {
    const Tensor<double> x = Tensor<double>::filled(Shape{100, 100}, 1.0);
    const Tensor<double> a = tg::dropout(x, 0.3, true, 42, 5), b = tg::dropout(x, 0.3, true, 42, 5);
    const Tensor<double> c = tg::dropout(x, 0.3, true, 42, 6);
    std::size_t kept = 0, same = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        CHECK((a[i] == 0.0 || a[i] == doctest::Approx(1 / 0.7).epsilon(1e-15)));
        kept += a[i] != 0;
        same += (a[i] != 0) == (c[i] != 0);
        CHECK(a[i] == b[i]);
    }
    CHECK(kept > 6800);  // 7000 expected, σ ≈ 46
    CHECK(kept < 7200);
    CHECK(same < 6500);  // another counter: another mask (≈ 58% agreement)
    CHECK(tg::max_abs_diff(tg::dropout(x, 0.3, false, 42, 5), x) == 0.0);
    const Tensor<double> z = tg::dropout(x, 1.0, true, 1);
    for (std::size_t i = 0; i < z.size(); ++i) CHECK(z[i] == 0.0);
}

TEST_CASE("train() and eval() reach every layer of a Sequential: dropout and batch norm change behaviour") {
    nn::Sequential<double> net;
    net.emplace<nn::BatchNorm2d<double>>(2);
    net.emplace<nn::Dropout<double>>(0.5, 3);
    const Tensor<double> x = det({4, 2, 3, 3}, 0.31, 0.7);
    tg::Tape<double> tape;
    auto y_train = net(tape, tape.constant(x)).value();
    auto& bn = static_cast<nn::BatchNorm2d<double>&>(net[0]);
    CHECK(bn.num_batches_tracked() == 1);
    CHECK(bn.running_mean()[0] != 0.0);
    net.eval();
    CHECK(!net[0].is_training());
    CHECK(!net[1].is_training());
    auto y1 = net(tape, tape.constant(x)).value().clone(std::pmr::get_default_resource());
    auto y2 = net(tape, tape.constant(x)).value();
    CHECK(tg::max_abs_diff(y1, y2) == 0.0);  // eval: deterministic, running statistics not moved
    CHECK(bn.num_batches_tracked() == 1);
    // eval output = (x − running_mean)/√(running_var + ε) (γ = 1, β = 0)
    const double want = (x[0] - bn.running_mean()[0]) / std::sqrt(bn.running_var()[0] + 1e-5);
    CHECK(y1[0] == doctest::Approx(want).epsilon(1e-12));
    net.train();
    CHECK(net[1].is_training());
    std::size_t zeros = 0;
    const Tensor<double> y3 = net(tape, tape.constant(x)).value();
    for (std::size_t i = 0; i < y3.size(); ++i) zeros += y3[i] == 0.0;
    CHECK(zeros > 10);
    (void)y_train;
}

TEST_CASE(
    "Conv2d initialises as torch (bound 1/√fan_in), layers are named by position, the demo CNN has torch's "
    "parameter count") {
    nn::Rng rng(1);
    nn::Sequential<float> net;
    net.emplace<nn::Conv2d<float>>(1, 32, 3, rng, nn::Conv2dOptions{.padding = {1, 1}});
    net.emplace<nn::ActivationLayer<float>>(nn::Activation::relu);
    net.emplace<nn::MaxPool2d<float>>(2);
    net.emplace<nn::Conv2d<float>>(32, 64, 3, rng, nn::Conv2dOptions{.padding = {1, 1}});
    net.emplace<nn::ActivationLayer<float>>(nn::Activation::relu);
    net.emplace<nn::MaxPool2d<float>>(2);
    net.emplace<nn::Flatten<float>>();
    net.emplace<nn::Linear<float>>(3136, 128, rng);
    net.emplace<nn::ActivationLayer<float>>(nn::Activation::relu);
    net.emplace<nn::Linear<float>>(128, 10, rng);
    CHECK(net.parameter_count() == 421642);  // torch: sum(p.numel() for p in net.parameters())
    auto ps = net.parameters();
    REQUIRE(ps.size() == 8);
    CHECK(ps[0]->name == "W0");
    CHECK(ps[2]->name == "W1");
    CHECK(ps[4]->name == "W2");
    CHECK(ps[7]->name == "b3");
    const double bound = 1 / std::sqrt(32.0 * 9);
    double mx = 0;
    for (std::size_t i = 0; i < ps[2]->size(); ++i) mx = std::max(mx, double(std::abs(ps[2]->value[i])));
    CHECK(mx <= bound);
    CHECK(mx > 0.99 * bound);
    tg::Tape<float> tape;
    auto y = net(tape, tape.constant(Tensor<float>(Shape{3, 1, 28, 28})));
    CHECK(y.shape() == Shape{3, 10});
    CHECK(net[0].describe() == "Conv2d(1, 32, kernel_size=(3, 3), padding=(1, 1))");
}

TEST_CASE(
    "a small CNN's parameter gradients pass gradcheck (conv, batch norm, max pool, avg pool, flatten, "
    "linear)") {
    nn::Rng rng(3);
    nn::Sequential<double> net;
    net.emplace<nn::Conv2d<double>>(2, 3, std::array<std::size_t, 2>{3, 2}, rng,
                                    nn::Conv2dOptions{.padding = {1, 0}});
    net.emplace<nn::BatchNorm2d<double>>(3);
    net.emplace<nn::ActivationLayer<double>>(nn::Activation::tanh);
    net.emplace<nn::MaxPool2d<double>>(2);
    net.emplace<nn::Conv2d<double>>(3, 4, 1, rng, nn::Conv2dOptions{.groups = 1});
    net.emplace<nn::AvgPool2d<double>>(tg::Pool2dParams{{2, 2}, {1, 1}});
    net.emplace<nn::Flatten<double>>();
    net.emplace<nn::Linear<double>>(4, 3, rng);
    const Tensor<double> x = det({3, 2, 5, 5}, 0.53, 0.4);
    std::vector<Tensor<double>> values;
    for (auto* p : net.parameters()) values.push_back(p->value);
    auto report = tg::gradcheck(
        [&](tg::Tape<double>& t, std::span<const tg::Var<double>> p) {
            return tg::sum(tg::square(net.forward_with(t, t.constant(x), p)));
        },
        values);
    CAPTURE(report);
    CHECK(report.passed);
}

TEST_CASE("checkpoints keep batch norm's running statistics and counter") {
    nn::Sequential<float> a, b;
    a.emplace<nn::BatchNorm2d<float>>(3);
    b.emplace<nn::BatchNorm2d<float>>(3);
    tg::Tape<float> tape;
    (void)a(tape, tape.constant(det({4, 3, 2, 2}, 0.7, 0.1).cast<float>()));
    nn::Archive ar;
    nn::put_buffers(ar, a);
    const nn::Archive back = nn::Archive::deserialize(ar.serialize(), "test");
    nn::get_buffers(back, b);
    auto& ba = static_cast<nn::BatchNorm2d<float>&>(a[0]);
    auto& bb = static_cast<nn::BatchNorm2d<float>&>(b[0]);
    CHECK(bb.num_batches_tracked() == 1);
    CHECK(tg::max_abs_diff(ba.running_mean(), bb.running_mean()) == 0.0f);
    CHECK(tg::max_abs_diff(ba.running_var(), bb.running_var()) == 0.0f);
    CHECK(bb.running_var()[0] != 1.0f);
    nn::Sequential<float> c;
    c.emplace<nn::BatchNorm2d<float>>(4);
    CHECK_THROWS_AS(nn::get_buffers(back, c), tg::Error);
}

TEST_CASE(
    "a CNN training step (conv, batch norm, max pool, dropout, flatten, linear) allocates nothing on the "
    "heap once warm") {
    nn::Dataset d;
    d.features = 64;
    d.images.resize(1000 * 64);
    d.labels.resize(1000);
    nn::Rng rng(1);
    for (auto& v : d.images) v = static_cast<std::uint8_t>(rng.below(256));
    for (auto& l : d.labels) l = static_cast<std::uint8_t>(rng.below(10));
    nn::Sequential<float> net;
    net.emplace<nn::Unflatten<float>>(Shape{1, 8, 8});
    net.emplace<nn::Conv2d<float>>(1, 4, 3, rng, nn::Conv2dOptions{.padding = {1, 1}});
    net.emplace<nn::BatchNorm2d<float>>(4);
    net.emplace<nn::ActivationLayer<float>>(nn::Activation::relu);
    net.emplace<nn::MaxPool2d<float>>(2);
    net.emplace<nn::Dropout<float>>(0.25, 9);
    net.emplace<nn::Flatten<float>>();
    net.emplace<nn::Linear<float>>(64, 10, rng);
    nn::Adam<float> opt(net.parameters(), nn::AdamOptions{});
    tg::Tape<float> tape;
    nn::BatchBuffers<float> buf(100, d.features);
    nn::TrainState st;
    long before = 0, during = 0;
    nn::train_epoch(net, opt, tape, d, 100, st, buf, [&](const nn::BatchReport& r) {
        if (r.batch == 2) before = tg::test::g_news.load();
        if (r.batch == 9) during = tg::test::g_news.load() - before;
        return true;
    });
    CHECK(during == 0);
    CHECK(st.epoch == 1);
}

TEST_CASE("BatchNorm2d(affine=false) layers in a Sequential get buffer names of their own (no collision)") {
    // Before: position counted only layers with parameters, so two BatchNorm2d(affine=false)
    // with no parameter layer between them were both named running_mean1, … and a checkpoint
    // kept only one of their statistics.
    auto build = [](nn::Sequential<float>& s) {
        nn::Rng rng(3);
        s.emplace<nn::Conv2d<float>>(3, 3, 1, rng);
        s.emplace<nn::BatchNorm2d<float>>(3, nn::BatchNormLayerOptions{.affine = false});
        s.emplace<nn::BatchNorm2d<float>>(3, nn::BatchNormLayerOptions{.momentum = 0.5, .affine = false});
    };
    nn::Sequential<float> a, b;
    build(a);
    build(b);
    std::vector<std::string> names;
    for (const auto& buf : a.buffers()) names.push_back(buf.name);
    REQUIRE(names.size() == 6);
    for (std::size_t i = 0; i < names.size(); ++i)
        for (std::size_t j = 0; j < i; ++j) CHECK(names[i] != names[j]);
    CHECK(names[0] == "running_mean1");
    CHECK(names[3] == "running_mean2");
    tg::Tape<float> tape;
    (void)a(tape, tape.constant(det({4, 3, 2, 2}, 0.7, 0.1).cast<float>()));
    nn::Archive ar;
    nn::put_buffers(ar, a);
    nn::get_buffers(nn::Archive::deserialize(ar.serialize(), "test"), b);
    for (std::size_t l : {1u, 2u}) {
        CAPTURE(l);
        auto& ba = static_cast<nn::BatchNorm2d<float>&>(a[l]);
        auto& bb = static_cast<nn::BatchNorm2d<float>&>(b[l]);
        CHECK(tg::max_abs_diff(ba.running_mean(), bb.running_mean()) == 0.0f);
        CHECK(tg::max_abs_diff(ba.running_var(), bb.running_var()) == 0.0f);
    }
    // the two layers' statistics differ (momenta 0.1 and 0.5), so a collision would show
    CHECK(tg::max_abs_diff(static_cast<nn::BatchNorm2d<float>&>(b[1]).running_var(),
                           static_cast<nn::BatchNorm2d<float>&>(b[2]).running_var()) > 0.0f);
    // explicit indices that collide are refused
    nn::Sequential<float> c;
    c.emplace<nn::BatchNorm2d<float>>(3, nn::BatchNormLayerOptions{.affine = false}, 7);
    CHECK_THROWS_AS((c.emplace<nn::BatchNorm2d<float>>(3, nn::BatchNormLayerOptions{.affine = false}, 7)), tg::Error);
}

TEST_CASE("conv layers infer on tensors (no tape) the same bits as a recorded eval forward") {
    nn::Rng rng(11);
    nn::Sequential<float> net;
    net.emplace<nn::Conv2d<float>>(2, 4, 3, rng, nn::Conv2dOptions{.padding = {1, 1}});
    net.emplace<nn::BatchNorm2d<float>>(4);
    net.emplace<nn::BatchNorm2d<float>>(4, nn::BatchNormLayerOptions{.affine = false});
    net.emplace<nn::ActivationLayer<float>>(nn::Activation::relu);
    net.emplace<nn::MaxPool2d<float>>(2);
    net.emplace<nn::Conv2d<float>>(4, 3, 2, rng, nn::Conv2dOptions{.bias = false});
    net.emplace<nn::AvgPool2d<float>>(tg::Pool2dParams{{2, 2}, {1, 1}});
    net.emplace<nn::Dropout<float>>(0.3);
    net.emplace<nn::Flatten<float>>();
    const Tensor<float> x = det({3, 2, 8, 8}, 0.9, 0.2).cast<float>();
    {  // a training step moves the running statistics away from 0 and 1
        tg::Tape<float> tape;
        (void)net(tape, tape.constant(x));
    }
    net.eval();
    tg::Tape<float> tape;
    const Tensor<float> want = net(tape, tape.constant(x)).value().clone(std::pmr::get_default_resource());
    const Tensor<float> got = net(x);
    REQUIRE(got.shape() == want.shape());
    CHECK(tg::max_abs_diff(got, want) == 0.0f);
    CHECK(tg::max_abs_diff(got, Tensor<float>(got.shape())) > 0.0f);
}

TEST_CASE(
    "Sequential infers its leading batch-independent layers chunk by chunk, with the bits of a recorded forward "
    "of the whole batch") {
    nn::Rng rng(12);
    nn::Sequential<float> net;
    net.emplace<nn::Unflatten<float>>(Shape{1, 9, 9});
    net.emplace<nn::Conv2d<float>>(1, 4, 3, rng, nn::Conv2dOptions{.padding = {1, 1}});
    net.emplace<nn::ActivationLayer<float>>(nn::Activation::relu);
    net.emplace<nn::MaxPool2d<float>>(2);
    net.emplace<nn::Dropout<float>>(0.3);
    net.emplace<nn::Conv2d<float>>(4, 5, 2, rng);
    net.emplace<nn::ActivationLayer<float>>(nn::Activation::tanh);
    net.emplace<nn::Flatten<float>>();
    net.emplace<nn::Linear<float>>(45, 7, rng);
    net.emplace<nn::ActivationLayer<float>>(nn::Activation::relu);
    net.emplace<nn::Linear<float>>(7, 3, rng);
    CHECK_FALSE(net[4].batch_independent());  // dropout in training: the mask depends on the place
    net.eval();
    CHECK(net[4].batch_independent());
    CHECK_FALSE(net[8].batch_independent());  // Linear: one GEMM over the batch
    CHECK_FALSE(net.batch_independent());
    // 150 samples: chunks of 64, 64 and 22 through the first eight layers.
    static_assert(nn::Sequential<float>::kInferChunk < 150);
    const Tensor<float> x = det({150, 81}, 0.37, 0.1).cast<float>();
    tg::Tape<float> tape;
    const Tensor<float> want = net(tape, tape.constant(x)).value().clone(std::pmr::get_default_resource());
    const Tensor<float> got = net(x);
    REQUIRE(got.shape() == Shape{150, 3});
    CHECK(tg::max_abs_diff(got, want) == 0.0f);
    CHECK(tg::max_abs_diff(got, Tensor<float>(got.shape())) > 0.0f);
}

TEST_CASE("avg_pool2d and its VJP match PyTorch's with ceil_mode and count_include_pad both ways") {
    // kernel 3×2, stride 2, padding 1; 6×5 is where ceil_mode adds a row of windows that reach
    // into the padding (count_include_pad then divides by the window clipped to the padded input).
    const std::vector<double>* want[] = {
        &conv_fixtures::k_avg_5x4_floor_exc, &conv_fixtures::k_avg_5x4_floor_inc, &conv_fixtures::k_avg_5x4_ceil_exc,
        &conv_fixtures::k_avg_5x4_ceil_inc,  &conv_fixtures::k_avg_6x5_floor_exc, &conv_fixtures::k_avg_6x5_floor_inc,
        &conv_fixtures::k_avg_6x5_ceil_exc,  &conv_fixtures::k_avg_6x5_ceil_inc};
    const std::vector<double>* want_dx[] = {
        &conv_fixtures::k_avg_5x4_floor_exc_dx, &conv_fixtures::k_avg_5x4_floor_inc_dx,
        &conv_fixtures::k_avg_5x4_ceil_exc_dx,  &conv_fixtures::k_avg_5x4_ceil_inc_dx,
        &conv_fixtures::k_avg_6x5_floor_exc_dx, &conv_fixtures::k_avg_6x5_floor_inc_dx,
        &conv_fixtures::k_avg_6x5_ceil_exc_dx,  &conv_fixtures::k_avg_6x5_ceil_inc_dx};
    int k = 0;
    for (Shape s : {Shape{2, 3, 5, 4}, Shape{2, 3, 6, 5}})
        for (bool ceil : {false, true})
            for (bool inc : {false, true}) {
                CAPTURE(k);
                const tg::Pool2dParams q{{3, 2}, {2, 2}, {1, 1}, {1, 1}, ceil};
                tg::Tape<double> tape;
                auto x = tape.variable(det(s, 0.53, 0.7));
                auto y = tg::avg_pool2d(x, q, inc);
                REQUIRE(y.value().size() == want[k]->size());
                CHECK(max_diff(y.value(), *want[k]) < 1e-12);
                tape.backward(tg::sum(y * tape.constant(det(y.shape(), 0.29, 0.4))));
                CHECK(max_diff(tape.grad(x), *want_dx[k]) < 1e-12);
                ++k;
            }
    CHECK(conv_fixtures::k_avg_6x5_ceil_inc.size() == 72);  // the extra row of windows: 4×3, not 3×3
}
