// Layers: shapes, reproducible initialisation, bias folding, and parameter gradients through
// tg::gradcheck (functional call with the parameters as the checked inputs), in double.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <type_traits>
#include <vector>

#include <tapegrad/nn.hpp>

namespace tg = tapegrad;
namespace nn = tapegrad::nn;

namespace {

tg::Tensor<double> random_tensor(std::size_t r, std::size_t c, std::uint64_t seed) {
    nn::Rng rng(seed);
    tg::Tensor<double> t(r, c);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = rng.uniform(-1, 1);
    return t;
}

std::vector<tg::Tensor<double>> values_of(nn::Module<double>& m) {
    std::vector<tg::Tensor<double>> v;
    for (auto* p : m.parameters()) v.push_back(p->value);
    return v;
}

}  // namespace

TEST_CASE("an MLP has the layer shapes and parameter names its sizes describe") {
    nn::MLP<float> net({784, 256, 128, 10}, nn::Activation::relu, 42);
    auto ps = net.parameters();
    REQUIRE(ps.size() == 6);
    CHECK(ps[0]->name == "W0");
    CHECK(ps[0]->shape() == tg::Shape{784, 256});
    CHECK(ps[1]->name == "b0");
    CHECK(ps[1]->shape() == tg::Shape{1, 256});
    CHECK(ps[5]->shape() == tg::Shape{1, 10});
    CHECK(net.parameter_count() == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
    CHECK(net.describe() == "Sequential(Linear(784→256), relu, Linear(256→128), relu, Linear(128→10))");
    tg::Tape<float> tape;
    auto y = net(tape, tape.constant(tg::Tensor<float>(5, 784)));
    CHECK(y.shape() == tg::Shape{5, 10});
}

TEST_CASE("the same seed gives bitwise the same weights, another seed other weights") {
    nn::MLP<double> a({20, 8, 3}, nn::Activation::tanh, 7), b({20, 8, 3}, nn::Activation::tanh, 7);
    nn::MLP<double> c({20, 8, 3}, nn::Activation::tanh, 8);
    CHECK(tg::max_abs_diff(a.parameters()[0]->value, b.parameters()[0]->value) == 0.0);
    CHECK(tg::max_abs_diff(a.parameters()[2]->value, b.parameters()[2]->value) == 0.0);
    CHECK(tg::max_abs_diff(a.parameters()[0]->value, c.parameters()[0]->value) > 0.0);
}

TEST_CASE("initialisers draw with the documented spread") {
    nn::Rng rng(1);
    tg::Tensor<double> w(400, 300);
    nn::initialize(w, nn::Init::he_uniform, 400, 300, std::sqrt(2.0), rng);
    double mx = 0, s2 = 0;
    for (std::size_t i = 0; i < w.size(); ++i) {
        mx = std::max(mx, std::abs(w[i]));
        s2 += w[i] * w[i];
    }
    const double bound = std::sqrt(2.0) * std::sqrt(3.0 / 400);
    CHECK(mx <= bound);
    CHECK(mx > 0.99 * bound);
    CHECK(std::sqrt(s2 / w.size()) == doctest::Approx(std::sqrt(2.0 / 400)).epsilon(0.02));  // He: Var = 2/fan_in
    nn::initialize(w, nn::Init::xavier_normal, 400, 300, 1.0, rng);
    s2 = 0;
    for (std::size_t i = 0; i < w.size(); ++i) s2 += w[i] * w[i];
    CHECK(std::sqrt(s2 / w.size()) == doctest::Approx(std::sqrt(2.0 / 700)).epsilon(0.02));
    nn::initialize(w, nn::Init::xavier_uniform, 400, 300, 1.0, rng);
    mx = 0;
    for (std::size_t i = 0; i < w.size(); ++i) mx = std::max(mx, std::abs(w[i]));
    CHECK(mx <= std::sqrt(6.0 / 700));
    nn::initialize(w, nn::Init::he_normal, 400, 300, 1.0, rng);
    s2 = 0;
    for (std::size_t i = 0; i < w.size(); ++i) s2 += w[i] * w[i];
    CHECK(std::sqrt(s2 / w.size()) == doctest::Approx(1.0 / 20).epsilon(0.02));
}

TEST_CASE("Linear computes x times W plus the bias row") {
    nn::Rng rng(3);
    nn::Linear<double> lin(2, 3, rng, {.bias_init = nn::Init::torch_default});
    tg::Tensor<double> x(2, 2, {1, 2, -1, 0.5});
    tg::Tape<double> tape;
    auto y = lin(tape, tape.constant(x));
    const auto& W = lin.weight().value;
    const auto& b = lin.bias().value;
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 3; ++j)
            CHECK(y.value()(i, j) == doctest::Approx(x(i, 0) * W(0, j) + x(i, 1) * W(1, j) + b(0, j)));
    CHECK_THROWS_AS(lin(tape, tape.constant(tg::Tensor<double>(2, 5))), tg::Error);
}

TEST_CASE("a folded bias gives the same outputs and gradients as a separate one") {
    nn::Rng r1(5), r2(5);
    nn::Linear<double> sep(4, 3, r1, {.bias_init = nn::Init::torch_default});
    nn::Linear<double> fold(4, 3, r2, {.fold_bias = true, .bias_init = nn::Init::torch_default});
    REQUIRE(fold.parameters().size() == 1);
    REQUIRE(fold.weight().shape() == tg::Shape{5, 3});
    auto x = random_tensor(6, 4, 11);
    tg::Tape<double> ts, tf;
    auto ys = tg::sum(tg::square(sep(ts, ts.constant(x))));
    auto yf = tg::sum(tg::square(fold(tf, tf.constant(x))));
    CHECK(ys.item() == doctest::Approx(yf.item()).epsilon(1e-13));
    ts.backward(ys);
    tf.backward(yf);
    const auto& gf = fold.weight().grad;
    for (std::size_t j = 0; j < 3; ++j) {
        for (std::size_t i = 0; i < 4; ++i) CHECK(gf(i, j) == doctest::Approx(sep.weight().grad(i, j)).epsilon(1e-12));
        CHECK(gf(4, j) == doctest::Approx(sep.bias().grad(0, j)).epsilon(1e-12));
    }
}

TEST_CASE("Linear's parameter gradients pass gradcheck, separate and folded bias") {
    for (bool fold : {false, true}) {
        nn::Rng rng(9);
        nn::Linear<double> lin(5, 4, rng, {.fold_bias = fold, .bias_init = nn::Init::torch_default});
        auto x = random_tensor(3, 5, 2);
        auto report = tg::gradcheck(
            [&](tg::Tape<double>& t, std::span<const tg::Var<double>> v) {
                return tg::sum(tg::tanh(lin.forward_with(t, t.constant(x), v)));
            },
            values_of(lin));
        INFO(fmt::format("{}", report));
        CHECK(report);
    }
}

TEST_CASE("an MLP's parameter gradients pass gradcheck through a softmax cross-entropy loss") {
    for (auto act : {nn::Activation::tanh, nn::Activation::sigmoid, nn::Activation::softplus}) {
        nn::MLP<double> net({6, 5, 4, 3}, act, 21, {.linear = {.bias_init = nn::Init::torch_default}});
        auto x = random_tensor(4, 6, 5);
        tg::Tensor<double> labels(4, 1, {0, 2, 1, 2});
        auto report = tg::gradcheck(
            [&](tg::Tape<double>& t, std::span<const tg::Var<double>> v) {
                return tg::softmax_cross_entropy(net.forward_with(t, t.constant(x), v), t.constant(labels));
            },
            values_of(net));
        INFO(nn::to_string(act), fmt::format("\n{}", report));
        CHECK(report);
    }
}

TEST_CASE("the gradients an MLP leaves in its parameters equal the functional call's") {
    nn::MLP<double> net({6, 5, 3}, nn::Activation::relu, 4, {.linear = {.bias_init = nn::Init::torch_default}});
    auto x = random_tensor(4, 6, 8);
    tg::Tensor<double> labels(4, 1, {0, 2, 1, 1});
    tg::Tape<double> a;
    a.backward(tg::softmax_cross_entropy(net(a, a.constant(x)), a.constant(labels)));
    tg::Tape<double> b;
    std::vector<tg::Var<double>> vs;
    for (auto* p : net.parameters()) vs.push_back(b.variable(p->value));
    b.backward(tg::softmax_cross_entropy(net.forward_with(b, b.constant(x), vs), b.constant(labels)));
    auto ps = net.parameters();
    for (std::size_t k = 0; k < ps.size(); ++k) CHECK(tg::max_abs_diff(ps[k]->grad.tensor(), b.grad(vs[k])) < 1e-14);
    // A second backward adds into the parameters' gradients (External leaves accumulate).
    const double g0 = ps[0]->grad[0];
    tg::Tape<double> c;
    c.backward(tg::softmax_cross_entropy(net(c, c.constant(x)), c.constant(labels)));
    CHECK(ps[0]->grad[0] == doctest::Approx(2 * g0));
    net.zero_grad();
    CHECK(ps[0]->grad[0] == 0.0);
}

TEST_CASE("explain prints the backprop formula of an MLP's weights with the parameters' names") {
    nn::MLP<double> net({4, 3, 2}, nn::Activation::sigmoid, 1);
    tg::Tape<double> tape;
    auto x = tape.constant(tg::Tensor<double>(5, 4), "X");
    auto t = tape.constant(tg::Tensor<double>(5, 2), "T");
    auto loss = tg::sse_half(net(tape, x), t).named("E");
    tape.backward(loss);
    std::string w0, b1;
    for (std::uint32_t id = 0; id < tape.size(); ++id) {
        if (tape.display_name(id) == "W0") w0 = tape.explain(tape.var_of(id));
        if (tape.display_name(id) == "b1") b1 = tape.explain(tape.var_of(id));
    }
    INFO(w0, "\n", b1);
    // Seed 001's δ rule: ∂E/∂W0 = Xᵀ·((δ1·W1ᵀ) ⊙ σ′(A0)), δ1 = Y − T for the half squared error.
    CHECK(w0.find("Xᵀ · (((σ(X · W0 + b0) · W1 + b1 − T) · W1ᵀ) ⊙ σ′(X · W0 + b0))") != std::string::npos);
    CHECK(b1.find("1ᵀ·(σ(X · W0 + b0) · W1 + b1 − T)") != std::string::npos);
}

// ---- a folded bias leaves no dangling view on the tape (issue 16, defect 6) ----------------------

TEST_CASE("a folded-bias Linear keeps a smaller batch's nodes intact when a larger batch follows on the same tape") {
    nn::Rng r1(5), r2(5);
    nn::Linear<double> fold(4, 3, r1, {.fold_bias = true, .bias_init = nn::Init::torch_default});
    nn::Linear<double> sep(4, 3, r2, {.bias_init = nn::Init::torch_default});
    const auto xs = random_tensor(2, 4, 1), xl = random_tensor(7, 4, 2);

    tg::Tape<double> tape;
    const auto vs = tape.constant(xs), vl = tape.constant(xl);
    const auto first = static_cast<std::uint32_t>(tape.size());
    const auto ys = fold(tape, vs);
    const auto after_small = static_cast<std::uint32_t>(tape.size());
    const auto yl = fold(tape, vl);  // a larger batch: the column of ones grows
    (void)fold(tape, tape.constant(random_tensor(40, 4, 3)));  // and again

    // The column of ones the small batch recorded still reads as ones.
    int ones_columns = 0;
    for (std::uint32_t id = first; id < after_small; ++id) {
        const auto& node = tape.node(id);
        if (node.op || node.kind != tg::NodeKind::Constant) continue;
        ++ones_columns;
        REQUIRE(node.value.shape() == tg::Shape{2, 1});
        for (std::size_t i = 0; i < node.value.size(); ++i) CHECK(node.value[i] == 1.0);
    }
    CHECK(ones_columns == 1);

    // And the gradients are those of the separate bias, on a tape of its own.
    auto loss = tg::sum(tg::square(ys)) + tg::sum(tg::square(yl));
    tape.backward(loss);
    tg::Tape<double> ts;
    auto ls = tg::sum(tg::square(sep(ts, ts.constant(xs)))) + tg::sum(tg::square(sep(ts, ts.constant(xl))));
    ts.backward(ls);
    CHECK(loss.item() == doctest::Approx(ls.item()).epsilon(1e-13));
    const auto& gf = fold.weight().grad;
    for (std::size_t j = 0; j < 3; ++j) {
        for (std::size_t i = 0; i < 4; ++i) CHECK(gf(i, j) == doctest::Approx(sep.weight().grad(i, j)).epsilon(1e-12));
        CHECK(gf(4, j) == doctest::Approx(sep.bias().grad(0, j)).epsilon(1e-12));
    }
}

// ---- a Parameter cannot move away from the tape's pointer (issue 16, defect 7) -------------------

// A tape keeps the address of a parameter's gradient buffer: a Parameter that could move (in a
// reallocating std::vector, say) would leave the tape writing into the old address.
static_assert(!std::is_move_constructible_v<nn::Parameter<float>>);
static_assert(!std::is_copy_constructible_v<nn::Parameter<float>>);
static_assert(!std::is_move_assignable_v<nn::Parameter<double>>);
static_assert(!std::is_copy_assignable_v<nn::Parameter<double>>);
static_assert(!std::is_move_constructible_v<nn::Linear<float>>);
static_assert(!std::is_move_constructible_v<nn::MLP<float>>);

TEST_CASE("parameters held through unique_ptr keep their gradients while the vector holding them grows") {
    std::vector<std::unique_ptr<nn::Parameter<double>>> ps;
    ps.push_back(std::make_unique<nn::Parameter<double>>(tg::Tensor<double>(1, 2, {2.0, -3.0}), "p0"));
    tg::Tape<double> tape;
    auto v = ps[0]->var(tape);
    for (int i = 1; i < 50; ++i)  // reallocates the vector several times
        ps.push_back(std::make_unique<nn::Parameter<double>>(tg::Tensor<double>(1, 1), fmt::format("p{}", i)));
    tape.backward(tg::sum(tg::square(v)));
    CHECK(ps[0]->grad[0] == 4.0);
    CHECK(ps[0]->grad[1] == -6.0);
}
