// A user's program: builds a small graph, checks its gradient against the closed form, and
// checks that misuse surfaces as tapegrad::Error. Exit status 0 when everything holds.
#include <cmath>
#include <cstdio>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

int main() {
    // E = sum((X·W) ⊙ (X·W)):  dE/dW = Xᵀ·(2·X·W)
    tg::Tape<double> tape;
    tg::Tensor<double> x(2, 2, {1, 2, 3, 4});
    tg::Tensor<double> w(2, 1, {0.5, -1});
    auto X = tape.constant(x, "X");
    auto W = tape.variable(w, "W");
    auto Y = tg::matmul(X, W);
    auto E = tg::sum(Y * Y);
    tape.backward(E);
    const tg::Tensor<double>& g = tape.grad(W);
    // X·W = (-1.5, -2.5);  dW = Xᵀ·(-3, -5) = (1·-3 + 3·-5, 2·-3 + 4·-5) = (-18, -26)
    if (std::abs(g[0] + 18) > 1e-12 || std::abs(g[1] + 26) > 1e-12) {
        std::printf("consumer: wrong gradient %g %g\n", g[0], g[1]);
        return 1;
    }
    try {
        (void)tg::matmul(W, W);  // (2×1)·(2×1)
        std::printf("consumer: no error for a shape mismatch\n");
        return 1;
    } catch (const tg::Error& e) {
        std::printf("consumer: expected error: %s\n", e.what());
    }
    std::printf("consumer: ok\n");
    return 0;
}
