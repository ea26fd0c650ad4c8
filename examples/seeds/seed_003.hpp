// Seed 003 — "Derivation of BP Algorithm", Lifu Huang (summarised in docs/seeds.md).
//
// Conventions of the document: column vectors, biases kept apart, z⁽ˡ⁺¹⁾ = W⁽ˡ⁾a⁽ˡ⁾ + b⁽ˡ⁾,
// a⁽ˡ⁾ = f(z⁽ˡ⁾), a⁽¹⁾ = x, h = a⁽ⁿˡ⁾, and the batch cost
//   J(W, b) = (1/m) Σᵢ J(W, b; x⁽ⁱ⁾, y⁽ⁱ⁾),   J(W, b; x, y) = ½‖h(x) − y‖²          (eq. 1)
// The m samples are the columns of X; f = tanh here (the document keeps f generic).
//
// The four equations, coded literally per sample in closed_form() and averaged over the batch:
//   δ⁽ⁿˡ⁾ = −(y − a⁽ⁿˡ⁾) ⊙ f′(z⁽ⁿˡ⁾)                  (10)
//   δ⁽ˡ⁾ = ((W⁽ˡ⁾)ᵀ δ⁽ˡ⁺¹⁾) ⊙ f′(z⁽ˡ⁾)                 (11)
//   ∇_{W⁽ˡ⁾} J = δ⁽ˡ⁺¹⁾ (a⁽ˡ⁾)ᵀ                          (12)
//   ∇_{b⁽ˡ⁾} J = δ⁽ˡ⁺¹⁾                                 (13)
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common.hpp"

namespace seeds::s003 {

struct Problem {
    Mat X, Y;            // s₁×m inputs and s_nl×m targets, one sample per column
    std::vector<Mat> W;  // W⁽ˡ⁾: s_{l+1}×s_l
    std::vector<Mat> b;  // b⁽ˡ⁾: s_{l+1}×1
    std::vector<Mat> params() const {
        std::vector<Mat> p = W;
        p.insert(p.end(), b.begin(), b.end());
        return p;
    }
};

inline Problem make_problem(std::size_t m, const std::vector<std::size_t>& sizes, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    Problem p;
    p.X = random_mat(sizes[0], m, rng);
    p.Y = random_uniform(sizes.back(), m, rng, -0.9, 0.9);
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
        p.W.push_back(random_mat(sizes[l + 1], sizes[l], rng, 1.0 / std::sqrt(static_cast<double>(sizes[l]))));
        p.b.push_back(random_mat(sizes[l + 1], 1, rng, 0.3));
    }
    return p;
}

struct Net {
    std::vector<tg::Var<double>> W, b, z, a;
    tg::Var<double> J;
};

// The batch on the tape: the bias column b⁽ˡ⁾ broadcasts over the m columns, and the engine sums
// its adjoint back over them. Names W1…, b1…, z2…, a2…, J.
inline Net build(tg::Tape<double>& tape, const Problem& p, const std::vector<Mat>& params) {
    Net n;
    const std::size_t L = p.W.size();
    auto a = tape.constant(p.X, "x");
    for (std::size_t l = 0; l < L; ++l) {
        n.W.push_back(tape.variable(params[l], fmt::format("W{}", l + 1)));
        n.b.push_back(tape.variable(params[L + l], fmt::format("b{}", l + 1)));
        n.z.push_back((tg::matmul(n.W[l], a) + n.b[l]).named(fmt::format("z{}", l + 2)));
        a = tg::tanh(n.z[l]).named(fmt::format("a{}", l + 2));
        n.a.push_back(a);
    }
    const double m = static_cast<double>(p.X.cols());
    n.J = tg::scale(tg::sse_half(a, tape.constant(p.Y, "y")), 1.0 / m).named("J");  // (1/m) Σ ½‖h − y‖²
    return n;
}

inline double cost(const Problem& p, const std::vector<Mat>& params) { return tape_cost(p, params, build); }
inline std::vector<Mat> tape_gradients(const Problem& p) { return tape_gradients_wb(p, build); }

inline double tanh_prime(double z) {
    const double t = std::tanh(z);
    return 1 - t * t;
}

// Eqs. 10–13 for each sample, averaged: returns ∇W⁽¹⁾…, ∇b⁽¹⁾….
inline std::vector<Mat> closed_form(const Problem& p) {
    const std::size_t L = p.W.size(), m = p.X.cols();
    std::vector<Mat> gW, gb;
    for (std::size_t l = 0; l < L; ++l) {
        gW.emplace_back(p.W[l].rows(), p.W[l].cols());
        gb.emplace_back(p.b[l].rows(), 1);
    }
    for (std::size_t s = 0; s < m; ++s) {
        std::vector<Mat> a{Mat(p.X.rows(), 1)}, z;
        for (std::size_t i = 0; i < p.X.rows(); ++i) a[0][i] = p.X(i, s);
        for (std::size_t l = 0; l < L; ++l) {
            Mat zl = mm(p.W[l], a[l]);
            for (std::size_t i = 0; i < zl.size(); ++i) zl[i] += p.b[l][i];
            a.push_back(map(zl, [](double v) { return std::tanh(v); }));
            z.push_back(std::move(zl));
        }
        Mat y(p.Y.rows(), 1);
        for (std::size_t i = 0; i < y.size(); ++i) y[i] = p.Y(i, s);
        Mat delta = had(map(minus(y, a[L]), [](double v) { return -v; }), map(z[L - 1], tanh_prime));  // (10)
        for (std::size_t l = L; l-- > 0;) {
            Mat gw = mm(delta, tr(a[l]));                                                           // (12)
            for (std::size_t i = 0; i < gw.size(); ++i) gW[l][i] += gw[i] / static_cast<double>(m);
            for (std::size_t i = 0; i < delta.size(); ++i) gb[l][i] += delta[i] / static_cast<double>(m);  // (13)
            if (l > 0) delta = had(mm(tr(p.W[l]), delta), map(z[l - 1], tanh_prime));              // (11)
        }
    }
    gW.insert(gW.end(), gb.begin(), gb.end());
    return gW;
}

inline std::vector<Gradients> compare(const Problem& p) {
    std::vector<Mat> t = tape_gradients(p), c = closed_form(p), params = p.params();
    const std::size_t L = p.W.size();
    std::vector<Gradients> out;
    for (std::size_t k = 0; k < params.size(); ++k) {
        std::string name = k < L ? fmt::format("W{}", k + 1) : fmt::format("b{}", k - L + 1);
        out.push_back({name, t[k], c[k],
                       central_diff([&](const std::vector<Mat>& q) { return cost(p, q); }, params, k)});
    }
    return out;
}

}  // namespace seeds::s003
