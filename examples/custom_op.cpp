// A user's own op, declared outside the library with the public headers only, exactly as the
// built-in ops are: Swish(x) = x·σ(x). It records on a tape, differentiates (also twice),
// passes the gradient check and explains itself.
#include <fmt/format.h>

#include <cmath>
#include <optional>
#include <span>
#include <string_view>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace myops {

// Y = X ⊙ σ(X)     X, Y: m×n.
// dX = dY ⊙ (σ(X) + X ⊙ σ′(X))     (σ′ = σ(X)σ(−X), the library's stable helper).
struct Swish {
    static constexpr std::string_view name = "swish";
    static constexpr std::size_t arity = 1;
    static constexpr tg::Notation notation{"swish({0})", "swish({0})", tg::Prec::Atom};

    tg::Shape shape(tg::Shape x) const { return x; }

    template <class T>
    void forward(tg::Tensor<T>& out, const tg::Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) {
            const T e = std::exp(-std::abs(x[i]));
            const T s = x[i] >= 0 ? T(1) / (T(1) + e) : e / (T(1) + e);
            out[i] = x[i] * s;
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

}  // namespace myops

int main() {
    tg::Tensor<double> x(4, 3, {0.5, -1.0, 1.5, 2.0, -0.5, 0.25, 1.0, -2.0, 0.0, 0.3, -0.7, 1.2});
    tg::Tensor<double> w(3, 2, {0.1, -0.3, 0.8, 0.2, -0.5, 0.4});
    tg::Tensor<double> t(4, 1, {1, 0, 1, 1});

    // In a graph, next to built-in ops.
    tg::Tape<double> tape;
    auto X = tape.constant(x, "X");
    auto W = tape.variable(w, "W");
    auto A = tg::matmul(X, W).named("A");
    auto H = myops::swish(A).named("H");
    auto E = tg::softmax_cross_entropy(H, tape.constant(t, "y")).named("E");
    tape.backward(E);
    fmt::print("E = {:.6f}\ndE/dW =\n{}\n\n{}\n\n", E.item(), tape.grad(W), tape.explain(W));

    // Against central finite differences, through tg::gradcheck like any built-in op.
    auto f = [&](tg::Tape<double>& tp, std::span<const tg::Var<double>> v) {
        return tg::sum(myops::swish(tg::matmul(tp.constant(x), v[0])));
    };
    auto report = tg::gradcheck(f, {w});
    fmt::print("{}", report);

    // Its VJP is written with ops, so the gradient is itself differentiable.
    auto g = [&](tg::Tape<double>& tp, std::span<const tg::Var<double>> v) {
        auto y = tg::sum(myops::swish(v[0]));
        tp.backward(y, {.create_graph = true});
        return tg::sum(tg::square(tp.grad_var(v[0])));
    };
    auto report2 = tg::gradcheck(g, {x});
    fmt::print("second order: {}", report2);
    return report && report2 ? 0 : 1;
}
