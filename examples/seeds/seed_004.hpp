// Seed 004 — "Stochastic GD" with sensitivities (summarised in docs/seeds.md).
//
// Conventions of the document: one sample per update; w_{ji}⁽ᵐ⁾ connects input j to unit i, so
//   nᵢ⁽ᵐ⁾ = Σⱼ w_{ji}⁽ᵐ⁾ aⱼ⁽ᵐ⁻¹⁾ + bᵢ⁽ᵐ⁾,   i.e.  n⁽ᵐ⁾ = (W⁽ᵐ⁾)ᵀ a⁽ᵐ⁻¹⁾ + b⁽ᵐ⁾
// with W⁽ᵐ⁾ of shape s⁽ᵐ⁻¹⁾×s⁽ᵐ⁾ (matmul(W, a, /*ta=*/true) on the tape), a⁽ᵐ⁾ = f(n⁽ᵐ⁾),
// a⁽⁰⁾ = p the input, and J = (y − a)ᵀ(y − a), with no ½. f = σ here.
//
// The sensitivities s⁽ᵐ⁾ = ∂J/∂n⁽ᵐ⁾, coded literally (with Ḟ a diagonal matrix) in
// sensitivities():
//   s⁽ᴹ⁾ = −2 Ḟ⁽ᴹ⁾(n⁽ᴹ⁾)(y − a)
//   s⁽ᵐ⁾ = Ḟ⁽ᵐ⁾(n⁽ᵐ⁾) W⁽ᵐ⁺¹⁾ s⁽ᵐ⁺¹⁾,   Ḟ⁽ᵐ⁾(n) = diag(ḟ⁽ᵐ⁾(n₁), …, ḟ⁽ᵐ⁾(n_s))
//   ∂J/∂W⁽ᵐ⁾ = a⁽ᵐ⁻¹⁾ s⁽ᵐ⁾ᵀ,   ∂J/∂b⁽ᵐ⁾ = s⁽ᵐ⁾
//   W⁽ᵐ⁾(k+1) = W⁽ᵐ⁾(k) − α a⁽ᵐ⁻¹⁾ s⁽ᵐ⁾ᵀ,   b⁽ᵐ⁾(k+1) = b⁽ᵐ⁾(k) − α s⁽ᵐ⁾
// The document defines and later writes F⁽ᵐ⁾ = diag(f(n)) where it means Ḟ = diag(ḟ(n));
// sensitivities(p, /*literal_F=*/true) follows that literal reading, which is wrong.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common.hpp"

namespace seeds::s004 {

struct Problem {
    Mat x, y;            // s⁽⁰⁾×1 input p, s⁽ᴹ⁾×1 target
    std::vector<Mat> W;  // W⁽ᵐ⁾: s⁽ᵐ⁻¹⁾×s⁽ᵐ⁾, m = 1…M
    std::vector<Mat> b;  // b⁽ᵐ⁾: s⁽ᵐ⁾×1
    std::vector<Mat> params() const {
        std::vector<Mat> p = W;
        p.insert(p.end(), b.begin(), b.end());
        return p;
    }
};

// sizes = {s⁽⁰⁾, s⁽¹⁾, …, s⁽ᴹ⁾}.
inline Problem make_problem(const std::vector<std::size_t>& sizes, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    Problem p;
    p.x = random_mat(sizes[0], 1, rng);
    p.y = random_uniform(sizes.back(), 1, rng, 0.05, 0.95);
    for (std::size_t m = 1; m < sizes.size(); ++m) {
        p.W.push_back(random_mat(sizes[m - 1], sizes[m], rng, 1.5 / std::sqrt(static_cast<double>(sizes[m - 1]))));
        p.b.push_back(random_mat(sizes[m], 1, rng, 0.5));
    }
    return p;
}

struct Net {
    std::vector<tg::Var<double>> W, b, n, a;
    tg::Var<double> J;
};

// n⁽ᵐ⁾ = Wᵀa + b on the tape; names W1…, b1…, n1…, a1…, J.
inline Net build(tg::Tape<double>& tape, const Problem& p, const std::vector<Mat>& params) {
    Net net;
    const std::size_t M = p.W.size();
    auto a = tape.constant(p.x, "a0");
    for (std::size_t m = 0; m < M; ++m) {
        net.W.push_back(tape.variable(params[m], fmt::format("W{}", m + 1)));
        net.b.push_back(tape.variable(params[M + m], fmt::format("b{}", m + 1)));
        net.n.push_back((tg::matmul(net.W[m], a, true) + net.b[m]).named(fmt::format("n{}", m + 1)));
        a = tg::sigmoid(net.n[m]).named(fmt::format("a{}", m + 1));
        net.a.push_back(a);
    }
    auto e = (tape.constant(p.y, "y") - a).named("e");
    net.J = tg::matmul(e, e, true).named("J");  // (y − a)ᵀ(y − a)
    return net;
}

inline double cost(const Problem& p, const std::vector<Mat>& params) { return tape_cost(p, params, build); }
inline std::vector<Mat> tape_gradients(const Problem& p) { return tape_gradients_wb(p, build); }

struct Forward {
    std::vector<Mat> n, a;  // a[0] = p; n[m], a[m] for m = 1…M (n[0] unused)
};
inline Forward forward(const Problem& p) {
    Forward f;
    f.n.emplace_back();
    f.a.push_back(p.x);
    for (std::size_t m = 0; m < p.W.size(); ++m) {
        Mat n(p.W[m].cols(), 1);
        for (std::size_t i = 0; i < n.size(); ++i) {
            double s = p.b[m][i];
            for (std::size_t j = 0; j < p.W[m].rows(); ++j) s += p.W[m](j, i) * f.a[m][j];  // Σⱼ w_ji aⱼ + bᵢ
            n[i] = s;
        }
        f.a.push_back(map(n, sigma));
        f.n.push_back(std::move(n));
    }
    return f;
}

// s⁽ᵐ⁾ for m = 1…M (index 0 unused). literal_F: use F = diag(f(n)) as printed, instead of Ḟ.
inline std::vector<Mat> sensitivities(const Problem& p, bool literal_F = false) {
    Forward f = forward(p);
    const std::size_t M = p.W.size();
    auto F = [&](std::size_t m) { return diag(map(f.n[m], literal_F ? sigma : sigma_prime)); };
    std::vector<Mat> s(M + 1);
    s[M] = map(mm(F(M), minus(p.y, f.a[M])), [](double v) { return -2 * v; });  // −2 Ḟ(n)(y − a)
    for (std::size_t m = M; m-- > 1;) s[m] = mm(mm(F(m), p.W[m]), s[m + 1]);       // Ḟ W⁽ᵐ⁺¹⁾ s⁽ᵐ⁺¹⁾
    return s;
}

// ∂J/∂W⁽ᵐ⁾ = a⁽ᵐ⁻¹⁾ s⁽ᵐ⁾ᵀ and ∂J/∂b⁽ᵐ⁾ = s⁽ᵐ⁾, in the order W1…WM, b1…bM.
inline std::vector<Mat> closed_form(const Problem& p, bool literal_F = false) {
    Forward f = forward(p);
    std::vector<Mat> s = sensitivities(p, literal_F);
    std::vector<Mat> g;
    for (std::size_t m = 1; m <= p.W.size(); ++m) g.push_back(mm(f.a[m - 1], tr(s[m])));
    for (std::size_t m = 1; m <= p.W.size(); ++m) g.push_back(s[m]);
    return g;
}

// One stochastic update by the document's rule: W − α a sᵀ, b − α s.
inline std::vector<Mat> sgd_step(const Problem& p, double alpha) {
    Forward f = forward(p);
    std::vector<Mat> s = sensitivities(p);
    std::vector<Mat> next;
    for (std::size_t m = 1; m <= p.W.size(); ++m) next.push_back(axpy(p.W[m - 1], alpha, mm(f.a[m - 1], tr(s[m]))));
    for (std::size_t m = 1; m <= p.W.size(); ++m) next.push_back(axpy(p.b[m - 1], alpha, s[m]));
    return next;
}

inline std::vector<Gradients> compare(const Problem& p) {
    std::vector<Mat> t = tape_gradients(p), c = closed_form(p), params = p.params();
    const std::size_t M = p.W.size();
    std::vector<Gradients> out;
    for (std::size_t k = 0; k < params.size(); ++k) {
        std::string name = k < M ? fmt::format("W{}", k + 1) : fmt::format("b{}", k - M + 1);
        out.push_back({name, t[k], c[k],
                       central_diff([&](const std::vector<Mat>& q) { return cost(p, q); }, params, k)});
    }
    return out;
}

}  // namespace seeds::s004
