// float graphs against the same graphs in double, on the same inputs: values and gradients
// agree to float precision (relative 1e-4 of the largest magnitude), for several ops and graphs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <tapegrad/tapegrad.hpp>
#include <vector>

namespace tg = tapegrad;
using tg::Tensor;

namespace {

struct Result {
    double value = 0;
    std::vector<Tensor<double>> grads;
};

// Builds graph `g` (a generic callable: (Tape<T>&, const vector<Var<T>>&) → 1×1 Var<T>) in T,
// with every input a variable, and returns the loss and the gradients in double.
template <class T, class G>
Result run(const G& g, const std::vector<Tensor<double>>& inputs) {
    tg::Tape<T> tape;
    std::vector<tg::Var<T>> x;
    for (const auto& t : inputs) x.push_back(tape.variable(t.template cast<T>()));
    tg::Var<T> loss = g(tape, x);
    tape.backward(loss);
    Result r{static_cast<double>(loss.item()), {}};
    for (const auto& v : x) r.grads.push_back(tape.grad(v).template cast<double>());
    return r;
}

// |a − b| ≤ tol · max(1, max|b|) elementwise.
void check_close(const Tensor<double>& a, const Tensor<double>& b, double tol) {
    REQUIRE(a.shape() == b.shape());
    double scale = 1;
    for (std::size_t i = 0; i < b.size(); ++i) scale = std::max(scale, std::abs(b[i]));
    for (std::size_t i = 0; i < a.size(); ++i) {
        CAPTURE(i);
        CHECK(std::abs(a[i] - b[i]) <= tol * scale);
    }
}

template <class G>
void compare(const G& g, const std::vector<Tensor<double>>& inputs, double tol = 1e-4) {
    Result f = run<float>(g, inputs);
    Result d = run<double>(g, inputs);
    CHECK(std::isfinite(f.value));
    CHECK(std::abs(f.value - d.value) <= tol * std::max(1.0, std::abs(d.value)));
    REQUIRE(f.grads.size() == d.grads.size());
    for (std::size_t i = 0; i < d.grads.size(); ++i) {
        CAPTURE(i);
        check_close(f.grads[i], d.grads[i], tol);
    }
}

Tensor<double> random(std::size_t r, std::size_t c, std::mt19937_64& rng, double lo = -1, double hi = 1) {
    std::uniform_real_distribution<double> u(lo, hi);
    Tensor<double> t(r, c);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = u(rng);
    return t;
}

}  // namespace

TEST_CASE("a sigmoid MLP with a bias row and an mse loss agrees in float and double") {
    std::mt19937_64 rng(1);
    compare(
        [](auto&, const auto& x) {
            auto h = tg::sigmoid(tg::matmul(x[0], x[1]) + x[2]);
            return tg::mse(tg::matmul(h, x[3]), tg::tanh(x[4]));
        },
        {random(8, 5, rng), random(5, 6, rng), random(1, 6, rng), random(6, 3, rng), random(8, 3, rng)});
}

TEST_CASE("a relu network with softmax cross-entropy on class labels agrees in float and double") {
    std::mt19937_64 rng(2);
    compare(
        [](auto& tape, const auto& x) {
            using T = typename std::decay_t<decltype(tape)>::value_type;
            Tensor<T> labels(6, 1, {0, 3, 1, 2, 3, 0});
            auto h = tg::relu(tg::matmul(x[0], x[1], false, true));
            auto logits = tg::leaky_relu(tg::matmul(h, x[2]), 0.05);
            return tg::softmax_cross_entropy(logits, tape.constant(labels));
        },
        {random(6, 4, rng), random(7, 4, rng), random(7, 4, rng)});
}

TEST_CASE("log-softmax, softmax cross-entropy on probabilities and structure ops agree in float and double") {
    std::mt19937_64 rng(3);
    compare(
        [](auto&, const auto& x) {
            auto both = tg::concat_cols(x[0], tg::softplus(x[1]));
            auto top = tg::slice_rows(both, 1, 4);
            auto probs = tg::softmax(tg::concat_rows(x[2], x[2]));
            return tg::softmax_cross_entropy_probs(top, tg::slice_rows(probs, 0, 3)) +
                   tg::sum(tg::log_softmax(both)) * 0.01;
        },
        {random(5, 3, rng), random(5, 2, rng), random(2, 5, rng)});
}

TEST_CASE("pointwise math and binary cross-entropy agree in float and double") {
    std::mt19937_64 rng(4);
    compare(
        [](auto&, const auto& x) {
            auto p = tg::sqrt(x[0]) * tg::log(x[0]) + tg::pow(x[0], 1.5) - tg::exp(x[1]) / x[0];
            auto q = tg::abs(x[1]) + tg::square(x[1]) + tg::log_sigmoid(x[1]) * tg::sigmoid_grad(x[1]);
            return tg::binary_cross_entropy_with_logits(p + q, tg::sigmoid(x[2])) + tg::sse_half(p, q) * 0.1 +
                   tg::mean(tg::sum_rows(p)) + tg::mean(tg::sum_cols(tg::transpose(q)));
        },
        {random(4, 3, rng, 0.5, 2.0), random(4, 3, rng), random(4, 3, rng, -3, 3)});
}

TEST_CASE("float forward values of the stable activations match double at large arguments") {
    Tensor<double> x(1, 6, {-80, -30, -5, 5, 30, 80});
    Tensor<float> xf = x.cast<float>();
    auto close = [](const Tensor<float>& f, const Tensor<double>& d) {
        for (std::size_t i = 0; i < d.size(); ++i) {
            CAPTURE(i);
            REQUIRE(std::isfinite(f[i]));
            CHECK(std::abs(f[i] - d[i]) <= 1e-5 * std::max(std::abs(d[i]), 1e-30));
        }
    };
    close(tg::sigmoid(xf), tg::sigmoid(x));
    close(tg::sigmoid_grad(xf), tg::sigmoid_grad(x));
    close(tg::softplus(xf), tg::softplus(x));
    close(tg::tanh_grad(xf), tg::tanh_grad(x));
}
