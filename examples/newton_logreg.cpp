// Newton's method for logistic regression, with the Hessian never formed: each step solves
// H·d = −g by conjugate gradients, and every H·v that CG asks for is one Hessian-vector product
// from the tape (reverse over reverse: the gradient recorded as a graph, then differentiated).
//
//   E(w) = mean_i BCE(xᵢ·w, yᵢ) + ½λ‖w‖²      g = ∇E(w)      H·v = ∇⟨g, v⟩
//
// Newton converges quadratically near the optimum: ‖g‖ roughly squares from step to step.
#include <cmath>
#include <random>
#include <span>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/core/hessian.hpp>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
using tg::Tensor;

namespace {

double dot(const Tensor<double>& a, const Tensor<double>& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
}

// Solves H·d = b by conjugate gradients, H symmetric positive definite, given only v ↦ H·v.
// Stops when ‖r‖ ≤ tol·‖b‖. Returns the number of iterations (H·v products).
int conjugate_gradients(tg::HessianOperator<double>& H, const Tensor<double>& b, Tensor<double>& d, double tol,
                        int max_iter) {
    d = Tensor<double>(b.shape());
    Tensor<double> r = b, p = b;
    double rr = dot(r, r);
    const double stop = tol * tol * rr;
    int k = 0;
    while (k < max_iter && rr > stop) {
        const Tensor<double> hp = H.apply(p);
        const double alpha = rr / dot(p, hp);
        for (std::size_t i = 0; i < d.size(); ++i) {
            d[i] += alpha * p[i];
            r[i] -= alpha * hp[i];
        }
        const double rr_new = dot(r, r);
        for (std::size_t i = 0; i < p.size(); ++i) p[i] = r[i] + (rr_new / rr) * p[i];
        rr = rr_new;
        ++k;
    }
    return k;
}

}  // namespace

int main() {
    // Synthetic, non-separable data: y ~ Bernoulli(σ(x·w_true)), with a bias column of ones.
    const std::size_t m = 400, d = 6;
    const double lambda = 1e-3;
    std::mt19937_64 rng(7);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    const Tensor<double> w_true(d, 1, {0.5, 2.0, -1.5, 1.0, 0.0, -0.75});
    Tensor<double> X(m, d), y(m, 1);
    for (std::size_t i = 0; i < m; ++i) {
        X(i, 0) = 1.0;
        for (std::size_t k = 1; k < d; ++k) X(i, k) = normal(rng);
        double z = 0;
        for (std::size_t k = 0; k < d; ++k) z += X(i, k) * w_true[k];
        y[i] = uniform(rng) < 1 / (1 + std::exp(-z)) ? 1.0 : 0.0;
    }

    auto loss = [&](tg::Tape<double>& t, std::span<const tg::Var<double>> w) {
        auto z = tg::matmul(t.constant_ref(X), w[0]);
        return tg::binary_cross_entropy_with_logits(z, t.constant_ref(y)) + tg::sum(tg::square(w[0])) * (0.5 * lambda);
    };

    fmt::print("Newton-CG on logistic regression: {} samples, {} features (bias included), λ = {:g}\n", m, d, lambda);
    fmt::print("{:>4}  {:>20}  {:>10}  {:>8}  {:>10}\n", "step", "loss", "‖g‖", "CG iters", "‖d‖");
    Tensor<double> w(d, 1);
    int total_hvp = 0;
    for (int step = 0; step < 20; ++step) {
        tg::HessianOperator<double> H(loss, w);  // records E(w) and ∇E(w) once per step
        const Tensor<double>& g = H.gradient()[0];
        const double gnorm = std::sqrt(dot(g, g));
        if (gnorm < 1e-12) {
            fmt::print("{:>4}  {:>20.15f}  {:>10.3e}  {:>8}  {:>10}\n", step, H.value(), gnorm, "-", "-");
            break;
        }
        Tensor<double> minus_g(g.shape());
        for (std::size_t i = 0; i < g.size(); ++i) minus_g[i] = -g[i];
        Tensor<double> dir;
        const int iters = conjugate_gradients(H, minus_g, dir, 1e-10, 50);
        total_hvp += iters;
        fmt::print("{:>4}  {:>20.15f}  {:>10.3e}  {:>8}  {:>10.3e}\n", step, H.value(), gnorm, iters,
                   std::sqrt(dot(dir, dir)));
        for (std::size_t i = 0; i < d; ++i) w[i] += dir[i];  // full Newton step: E is convex
    }
    fmt::print("{} Hessian-vector products in all, Hessian never formed\n", total_hvp);
    fmt::print("w      = [");
    for (std::size_t i = 0; i < d; ++i) fmt::print("{}{:7.3f}", i ? ", " : "", w[i]);
    fmt::print("]\nw_true = [");
    for (std::size_t i = 0; i < d; ++i) fmt::print("{}{:7.3f}", i ? ", " : "", w_true[i]);
    fmt::print("]\n");
}
