// Numerical stability of the activations and losses at extreme arguments (seed 001's remark:
// σ′ = σ(1 − σ) of a rounded σ loses everything for large |x|; the engine must not).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <tapegrad/tapegrad.hpp>
#include <vector>

namespace tg = tapegrad;
using tg::Tensor;

namespace {

// σ′(x) = e^{−|x|}/(1 + e^{−|x|})², in long double, then rounded to double (0 below double's range).
double exact_sigmoid_grad(double x) {
    long double e = std::exp(-std::fabs(static_cast<long double>(x)));
    long double d = 1.0L + e;
    return static_cast<double>(e / (d * d));
}

double rel_err(double got, double want) {
    if (got == want) return 0;
    return std::fabs(got - want) / std::max(std::fabs(want), std::numeric_limits<double>::min());
}

bool all_finite(const Tensor<double>& t) {
    for (std::size_t i = 0; i < t.size(); ++i)
        if (!std::isfinite(t[i])) return false;
    return true;
}

}  // namespace

TEST_CASE("sigmoid_grad matches the exact σ′ to 1e-12 at ±30, ±100 and ±800 without overflow") {
    const std::vector<double> xs{-800, -100, -30, 30, 100, 800};
    Tensor<double> x(1, xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) x[i] = xs[i];
    Tensor<double> d = tg::sigmoid_grad(x);
    for (std::size_t i = 0; i < xs.size(); ++i) {
        CAPTURE(xs[i]);
        REQUIRE(std::isfinite(d[i]));
        CHECK(d[i] >= 0);
        CHECK(rel_err(d[i], exact_sigmoid_grad(xs[i])) <= 1e-12);
    }
    // σ′(±30) ≈ 9.4e-14 is far from zero: the naive σ(1 − σ) would give 0 at +30 (σ rounds to 1).
    CHECK(d[2] > 9e-14);
    CHECK(d[3] == d[2]);
}

TEST_CASE("the gradient of sigmoid through the tape is the exact σ′ at large arguments") {
    const std::vector<double> xs{-800, -100, -30, 30, 100, 800};
    Tensor<double> x(xs.size(), 1);
    for (std::size_t i = 0; i < xs.size(); ++i) x[i] = xs[i];
    tg::Tape<double> tape;
    auto X = tape.variable(x, "X");
    auto Y = tg::sigmoid(X);
    tape.backward(tg::sum(Y));
    const Tensor<double>& g = tape.grad(X);
    for (std::size_t i = 0; i < xs.size(); ++i) {
        CAPTURE(xs[i]);
        CHECK(std::isfinite(Y.value()[i]));
        CHECK(rel_err(g[i], exact_sigmoid_grad(xs[i])) <= 1e-12);
    }
    CHECK(Y.value()[0] == 0.0);  // σ(−800) underflows to 0, not NaN
    CHECK(Y.value()[5] == 1.0);
}

TEST_CASE("sigmoid's second derivative stays finite at large arguments") {
    Tensor<double> x(1, 4, {-800, -30, 30, 800});
    tg::Tape<double> tape;
    auto X = tape.variable(x, "X");
    auto D = tg::sigmoid_grad(X);
    tape.backward(tg::sum(D));
    const Tensor<double>& g = tape.grad(X);
    CHECK(all_finite(g));
    // σ″(x) = σ′(x)(σ(−x) − σ(x)) ≈ −sign(x)·e^{−|x|} for large |x|.
    CHECK(g[1] > 0);
    CHECK(g[2] < 0);
    CHECK(rel_err(g[2], -exact_sigmoid_grad(30) * std::tanh(15.0)) <= 1e-12);
}

TEST_CASE("tanh_grad is accurate where 1 − tanh² rounds to zero") {
    Tensor<double> x(1, 2, {20, -20});
    Tensor<double> d = tg::tanh_grad(x);
    // tanh′(20) = 4e^{−40}/(1 + e^{−40})²
    long double e = std::exp(-40.0L);
    double want = static_cast<double>(4 * e / ((1 + e) * (1 + e)));
    CHECK(rel_err(d[0], want) <= 1e-12);
    CHECK(d[1] == d[0]);
}

TEST_CASE("softplus, log_sigmoid and sigmoid are finite and exact at ±1000") {
    Tensor<double> x(1, 2, {1000, -1000});
    Tensor<double> sp = tg::softplus(x);
    CHECK(sp[0] == 1000.0);
    CHECK(sp[1] == 0.0);
    Tensor<double> ls = tg::log_sigmoid(x);
    CHECK(ls[0] == 0.0);
    CHECK(ls[1] == -1000.0);
    Tensor<double> s = tg::sigmoid(x);
    CHECK(s[0] == 1.0);
    CHECK(s[1] == 0.0);

    tg::Tape<double> tape;
    auto X = tape.variable(x, "X");
    tape.backward(tg::sum(tg::log_sigmoid(X)));
    // d log σ(x)/dx = σ(−x): 0 at +1000, 1 at −1000.
    CHECK(tape.grad(X)[0] == 0.0);
    CHECK(tape.grad(X)[1] == 1.0);
}

TEST_CASE("binary_cross_entropy_with_logits is finite and exact at logits ±1000") {
    Tensor<double> z(1, 4, {1000, -1000, 1000, -1000});
    Tensor<double> y(1, 4, {0, 1, 1, 0});
    tg::Tape<double> tape;
    auto Z = tape.variable(z, "Z");
    auto L = tg::binary_cross_entropy_with_logits(Z, tape.constant(y));
    CHECK(L.item() == doctest::Approx(500.0).epsilon(1e-15));  // (1000 + 1000 + 0 + 0) / 4
    tape.backward(L);
    const Tensor<double>& g = tape.grad(Z);
    REQUIRE(all_finite(g));
    // dL/dz = (σ(z) − y)/4.
    CHECK(g[0] == 0.25);
    CHECK(g[1] == -0.25);
    CHECK(g[2] == 0.0);
    CHECK(g[3] == 0.0);
}

TEST_CASE("softmax and log_softmax are finite and correct for logits ±1000") {
    Tensor<double> z(2, 3, {1000, -1000, 0, -1000, -1000, -1000});
    Tensor<double> s = tg::softmax(z);
    Tensor<double> ls = tg::log_softmax(z);
    CHECK(all_finite(s));
    CHECK(all_finite(ls));
    CHECK(s(0, 0) == 1.0);
    CHECK(s(0, 1) == 0.0);
    CHECK(s(0, 2) == 0.0);
    CHECK(ls(0, 0) == 0.0);
    CHECK(ls(0, 1) == -2000.0);
    CHECK(ls(0, 2) == -1000.0);
    for (std::size_t j = 0; j < 3; ++j) {
        CHECK(s(1, j) == doctest::Approx(1.0 / 3).epsilon(1e-15));
        CHECK(ls(1, j) == doctest::Approx(-std::log(3.0)).epsilon(1e-15));
    }

    tg::Tape<double> tape;
    auto Z = tape.variable(z, "Z");
    tape.backward(tg::sum(tg::log_softmax(Z) * tape.constant(Tensor<double>(2, 3, {0, 1, 0, 1, 0, 0}))));
    const Tensor<double>& g = tape.grad(Z);
    REQUIRE(all_finite(g));
    // d/dZ Σ T ⊙ log_softmax(Z) = T − softmax(Z)·rowsum(T)
    CHECK(g(0, 0) == -1.0);
    CHECK(g(0, 1) == 1.0);
    CHECK(g(0, 2) == 0.0);
    CHECK(g(1, 0) == doctest::Approx(2.0 / 3).epsilon(1e-15));
}

TEST_CASE("both softmax cross-entropies are finite and correct for logits ±1000") {
    Tensor<double> z(2, 3, {1000, -1000, 0, 0, 1000, -1000});
    Tensor<double> labels(2, 1, {1, 1});
    Tensor<double> onehot(2, 3, {0, 1, 0, 0, 1, 0});

    tg::Tape<double> tape;
    auto Z = tape.variable(z, "Z");
    auto L = tg::softmax_cross_entropy(Z, tape.constant(labels, "y"));
    CHECK(L.item() == 1000.0);  // (2000 + 0) / 2
    tape.backward(L);
    Tensor<double> g = tape.grad(Z).clone(std::pmr::get_default_resource());
    REQUIRE(all_finite(g));
    // (softmax(Z) − onehot)/2
    CHECK(g(0, 0) == 0.5);
    CHECK(g(0, 1) == -0.5);
    CHECK(g(0, 2) == 0.0);
    CHECK(g(1, 0) == 0.0);
    CHECK(g(1, 1) == 0.0);

    tg::Tape<double> tape2;
    auto Z2 = tape2.variable(z, "Z");
    auto L2 = tg::softmax_cross_entropy_probs(Z2, tape2.constant(onehot, "T"));
    CHECK(L2.item() == 1000.0);
    tape2.backward(L2);
    const Tensor<double>& g2 = tape2.grad(Z2);
    REQUIRE(all_finite(g2));
    for (std::size_t i = 0; i < g.size(); ++i) CHECK(g2[i] == doctest::Approx(g[i]).epsilon(1e-15));
}

TEST_CASE("softmax_cross_entropy equals the composed probabilities form on ordinary logits") {
    Tensor<double> z(3, 4, {0.1, -0.2, 0.3, 1.5, 2.0, -1.0, 0.0, 0.5, -0.3, 0.7, 0.2, -2.0});
    Tensor<double> labels(3, 1, {3, 0, 1});
    Tensor<double> t = tg::one_hot(labels, 4);
    CHECK(t(0, 3) == 1.0);
    CHECK(tg::sum(t).item() == 3.0);
    const double fused = tg::softmax_cross_entropy(z, labels).item();
    CHECK(fused == doctest::Approx(tg::softmax_cross_entropy_probs(z, t).item()).epsilon(1e-14));
    // −(1/m)·Σ log softmax(Z)ᵢ,ₗᵢ computed naively
    double naive = 0;
    for (std::size_t i = 0; i < 3; ++i) {
        double s = 0;
        for (std::size_t j = 0; j < 4; ++j) s += std::exp(z(i, j));
        naive -= std::log(std::exp(z(i, static_cast<std::size_t>(labels[i]))) / s);
    }
    CHECK(fused == doctest::Approx(naive / 3).epsilon(1e-14));
}

TEST_CASE("a plain number works on either side of every arithmetic operator") {
    Tensor<double> xv(1, 3, {0.5, -2.0, 4.0});
    tg::Tape<double> tape;
    auto x = tape.variable(xv, "x");
    auto y = tg::sum(10.0 / x + (3.0 - x) + 2.0 * x + (1.0 + x));
    // y = Σ 10/x + 3 − x + 2x + 1 + x = Σ 10/x + 2x + 4
    double want = 0;
    for (std::size_t i = 0; i < 3; ++i) want += 10.0 / xv[i] + 2.0 * xv[i] + 4.0;
    CHECK(y.item() == doctest::Approx(want).epsilon(1e-15));
    tape.backward(y);
    const Tensor<double> g = tape.grad(x);
    for (std::size_t i = 0; i < 3; ++i) CHECK(g[i] == doctest::Approx(-10.0 / (xv[i] * xv[i]) + 2.0).epsilon(1e-15));
    CHECK(tape.explain(x).find("10 ⊘ x") != std::string::npos);
    const Tensor<double> direct = 10.0 / xv;  // on plain tensors too
    CHECK(direct[1] == -5.0);
}
