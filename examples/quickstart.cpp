// A first graph: a tiny sigmoid layer with a squared-error loss, its gradients, the formula
// the reverse sweep applied, and a gradient check against finite differences.
#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

int main() {
    tg::Tensor<double> x(3, 2, {0.5, -1.0, 1.5, 2.0, -0.5, 0.25});
    tg::Tensor<double> w(2, 2, {0.1, -0.3, 0.8, 0.2});
    tg::Tensor<double> t(3, 2, {1, 0, 0, 1, 1, 0});

    tg::Tape<double> tape;
    auto X = tape.constant(x, "X");
    auto W = tape.variable(w, "W");
    auto A = tg::matmul(X, W).named("A");
    auto D = (A * A - tape.constant(t, "T")).named("D");
    auto E = tg::sum(D * D).named("E");
    tape.backward(E);

    fmt::print("E = {:.6f}\n", E.item());
    fmt::print("dE/dW = {}\n\n{}\n\n", tape.grad(W), tape.explain(W));

    auto report = tg::gradcheck(
        [&](tg::Tape<double>& tp, std::span<const tg::Var<double>> v) {
            auto a = tg::matmul(tp.constant(x), v[0]);
            auto d = a * a - tp.constant(t);
            return tg::sum(d * d);
        },
        {w});
    fmt::print("{}", report);
    return report ? 0 : 1;
}
