#include <doctest/doctest.h>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

TEST_CASE("a two-layer graph gives the hand-derived gradients") {
    tg::Tape<double> tape;
    tg::Tensor<double> x(2, 3, {1, 2, 3, 4, 5, 6});
    tg::Tensor<double> w(3, 1, {0.5, -1, 2});
    auto X = tape.constant(x, "X");
    auto W = tape.variable(w, "W");
    auto A = tg::matmul(X, W).named("A");
    auto E = tg::apply(tg::SumTo{{1, 1}}, A * A).named("E");
    tape.backward(E);
    // E = Σ (Xw)², dE/dw = 2 Xᵀ X w
    auto g = tape.grad(W);
    tg::Tensor<double> a(2, 1);
    tg::gemm(false, false, 1.0, x, w, 0.0, a);
    for (std::size_t j = 0; j < 3; ++j) {
        double expect = 0;
        for (std::size_t i = 0; i < 2; ++i) expect += 2 * x(i, j) * a[i];
        CHECK(g[j] == doctest::Approx(expect));
    }
    MESSAGE(tape.explain(W));
    MESSAGE(tape.explain(W, {.ascii = true, .shapes = true}));
}
