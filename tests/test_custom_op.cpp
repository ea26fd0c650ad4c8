// A user op declared outside the library (public headers only), exactly like the built-in ops:
// Swish(x) = x·σ(x). It records, differentiates once and twice, gradchecks and explains itself.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <random>
#include <span>
#include <string_view>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
using tg::Tensor;

namespace user {

// Y = X ⊙ σ(X).  dX = dY ⊙ (σ(X) + X ⊙ σ′(X)).
struct Swish {
    static constexpr std::string_view name = "swish";
    static constexpr std::size_t arity = 1;
    static constexpr tg::Notation notation{"swish({0})", "swish({0})", tg::Prec::Atom};
    tg::Shape shape(tg::Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) {
            const T e = std::exp(-std::abs(x[i]));
            out[i] = x[i] * (x[i] >= 0 ? T(1) / (T(1) + e) : e / (T(1) + e));
        }
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V&, const V& x) const {
        return g * (tg::sigmoid(x) + x * tg::sigmoid_grad(x));
    }
};

template <tg::Value V>
V swish(const V& x) {
    return tg::apply(Swish{}, x);
}

}  // namespace user

TEST_CASE("a user-declared Swish computes x·σ(x) in float and double without overflow") {
    Tensor<double> x(1, 5, {-800, -1, 0, 2, 800});
    Tensor<double> y = user::swish(x);
    for (std::size_t i = 1; i < 4; ++i)
        CHECK(y[i] == doctest::Approx(x[i] / (1 + std::exp(-x[i]))).epsilon(1e-15));
    CHECK(y[0] == 0.0);  // −800·σ(−800) underflows to −0, not NaN
    CHECK(y[4] == 800.0);
    Tensor<float> yf = user::swish(x.cast<float>());
    CHECK(yf[3] == doctest::Approx(y[3]).epsilon(1e-6));
}

TEST_CASE("a user-declared Swish passes the gradient check on random shapes") {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> u(-3, 3);
    std::uniform_int_distribution<std::size_t> d(1, 6);
    for (int trial = 0; trial < 10; ++trial) {
        Tensor<double> x(d(rng), d(rng)), w(x.cols(), d(rng));
        for (std::size_t i = 0; i < x.size(); ++i) x[i] = u(rng);
        for (std::size_t i = 0; i < w.size(); ++i) w[i] = u(rng);
        auto r = tg::gradcheck(
            [](tg::Tape<double>&, std::span<const tg::Var<double>> v) {
                return user::swish(tg::matmul(v[0], v[1]));
            },
            {x, w});
        INFO(fmt::format("{}", r));
        CHECK(r.passed);
        CHECK(r.max_rel_err() <= 1e-6);
    }
}

TEST_CASE("a user-declared Swish can be differentiated twice") {
    Tensor<double> x(3, 2, {0.5, -1.0, 1.5, 2.0, -0.5, 0.25});
    auto r = tg::gradcheck(
        [](tg::Tape<double>& tape, std::span<const tg::Var<double>> v) {
            tape.backward(tg::sum(user::swish(v[0])), {.create_graph = true});
            return tape.grad_var(v[0]);  // swish′(x), a graph
        },
        {x});
    INFO(fmt::format("{}", r));
    CHECK(r.passed);
    CHECK(r.max_rel_err() <= 1e-6);
}

TEST_CASE("explain prints a user-declared op's VJP and the op in its own notation") {
    tg::Tape<double> tape;
    auto X = tape.constant(Tensor<double>(4, 3), "X");
    auto W = tape.variable(Tensor<double>(3, 2), "W");
    auto T = tape.constant(Tensor<double>(4, 2), "T");
    auto A = tg::matmul(X, W).named("A");
    auto E = tg::sum(user::swish(A)).named("E");
    tape.backward(E);
    CHECK(tape.explain(W) == "∂E/∂A = σ(A) + A ⊙ σ′(A)\n∂E/∂W = Xᵀ · ∂E/∂A");
    CHECK(tape.explain(W, {.ascii = true}) == "dE/dA = sigmoid(A) + A * sigmoid'(A)\ndE/dW = X^T . dE/dA");

    auto J = tg::sse_half(user::swish(A), T).named("J");
    tape.backward(J);
    const std::string s = tape.explain(W);
    MESSAGE(s);
    CHECK(s.find("swish(A) − T") != std::string::npos);
    CHECK(s.find("σ(A) + A ⊙ σ′(A)") != std::string::npos);
}
