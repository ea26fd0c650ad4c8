// Seed 001 — "Back Propagation", Marc Emanuel (summarised in docs/seeds.md).
//
// Conventions of the document: column vectors, samples q = 1…m as the columns of X (n₁×m), no
// bias; z⁽²⁾ = θ⁽¹⁾ X, a⁽ˡ⁾ = σ(z⁽ˡ⁾), z⁽ˡ⁺¹⁾ = θ⁽ˡ⁾ a⁽ˡ⁾ up to the output layer k.
//   J = (1/m) Σ_q Σ_i yᵢ log σ(zᵢ⁽ᵏ⁾) + (1 − yᵢ) log(1 − σ(zᵢ⁽ᵏ⁾))            (eq. 1)
// J is the log-likelihood written WITHOUT the minus sign: it is maximised (θ ← θ + α ∇J); the
// usual cross-entropy loss is −J. The tape differentiates J itself, so tape.grad(θ) is ∇J.
//
// The document's result, coded literally in closed_form():
//   δ⁽ᵏ⁾ = y − a⁽ᵏ⁾                                   (eq. 6: σ′ cancels against log σ)
//   ∂J/∂θ⁽ᵏ⁻¹⁾ = (1/m) Σ_q δ⁽ᵏ⁾ a⁽ᵏ⁻¹⁾ᵀ
//   δ⁽ˡ⁺¹⁾ = (θ⁽ˡ⁺¹⁾ᵀ δ⁽ˡ⁺²⁾) ⊙ σ′(z⁽ˡ⁺¹⁾),  ∂J/∂θ⁽ˡ⁾ = (1/m) Σ_q δ⁽ˡ⁺¹⁾ a⁽ˡ⁾ᵀ   (eq. 9)
// with a⁽¹⁾ = X and σ′(z) = 1/(2(1 + cosh z)) (eq. 4, the form the document recommends).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common.hpp"

namespace seeds::s001 {

struct Problem {
    Mat X;                   // n₁×m, one sample per column
    Mat y;                   // n_k×m labels in {0, 1}
    std::vector<Mat> theta;  // θ⁽ˡ⁾: n_{l+1}×n_l, l = 1…k−1 (stored from index 0)
};

// sizes = {n₁, n₂, …, n_k}.
inline Problem make_problem(std::size_t m, const std::vector<std::size_t>& sizes, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    Problem p;
    p.X = random_mat(sizes[0], m, rng);
    p.y = random_bits(sizes.back(), m, rng);
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l)
        p.theta.push_back(random_mat(sizes[l + 1], sizes[l], rng, 1.5 / std::sqrt(static_cast<double>(sizes[l]))));
    return p;
}

struct Net {
    std::vector<tg::Var<double>> theta, z, a;  // theta[l] is θ⁽ˡ⁺¹⁾; z[l] is z⁽ˡ⁺²⁾, a[l] is a⁽ˡ⁺²⁾
    tg::Var<double> J;
};

// Eq. 1–3 on the tape, names as in the document: θ1, z2, a2, θ2, z3, …, J. log σ(z) and
// log(1 − σ(z)) = log σ(−z) are computed stably from z (log_sigmoid).
inline Net build(tg::Tape<double>& tape, const Problem& p, const std::vector<Mat>& theta) {
    Net n;
    const std::size_t L = theta.size();
    auto a = tape.constant(p.X, "X");
    for (std::size_t l = 0; l < L; ++l) {
        n.theta.push_back(tape.variable(theta[l], fmt::format("θ{}", l + 1)));
        n.z.push_back(tg::matmul(n.theta[l], a).named(fmt::format("z{}", l + 2)));
        if (l + 1 < L) {
            a = tg::sigmoid(n.z[l]).named(fmt::format("a{}", l + 2));
            n.a.push_back(a);
        }
    }
    auto z = n.z.back();
    auto y = tape.constant(p.y, "y");
    auto ll = y * tg::log_sigmoid(z) + (1.0 - y) * tg::log_sigmoid(-z);
    n.J = tg::scale(tg::sum(ll), 1.0 / static_cast<double>(p.X.cols())).named("J");
    return n;
}

inline double cost(const Problem& p, const std::vector<Mat>& theta) {
    tg::Tape<double> tape;
    return build(tape, p, theta).J.item();
}

inline std::vector<Mat> tape_gradients(const Problem& p, const std::vector<Mat>& theta) {
    tg::Tape<double> tape;
    Net n = build(tape, p, theta);
    tape.backward(n.J);
    std::vector<Mat> g;
    for (auto& t : n.theta) g.push_back(tape.grad(t));
    return g;
}

// σ′(z) = 1/(2(1 + cosh z)), the document's second form (eq. 4).
inline double sigma_prime_cosh(double z) { return 0.5 / (1.0 + std::cosh(z)); }

// Eqs. 6 and 9, one sample (column q) at a time, summed over q and divided by m.
inline std::vector<Mat> closed_form(const Problem& p, const std::vector<Mat>& theta) {
    const std::size_t L = theta.size(), m = p.X.cols();
    std::vector<Mat> g;
    for (const Mat& t : theta) g.emplace_back(t.rows(), t.cols());
    for (std::size_t q = 0; q < m; ++q) {
        // forward for sample q: a[0] = x_q, z[l] = θ a[l], a[l+1] = σ(z[l])
        std::vector<Mat> a{Mat(p.X.rows(), 1)}, z;
        for (std::size_t i = 0; i < p.X.rows(); ++i) a[0][i] = p.X(i, q);
        for (std::size_t l = 0; l < L; ++l) {
            z.push_back(mm(theta[l], a[l]));
            a.push_back(map(z[l], sigma));
        }
        Mat delta(a[L].rows(), 1);
        for (std::size_t i = 0; i < delta.size(); ++i) delta[i] = p.y(i, q) - a[L][i];  // (6): y − a⁽ᵏ⁾
        for (std::size_t l = L; l-- > 0;) {
            // ∂J/∂θ_{r,s} += δ_r a_s
            for (std::size_t r = 0; r < g[l].rows(); ++r)
                for (std::size_t s = 0; s < g[l].cols(); ++s) g[l](r, s) += delta[r] * a[l][s] / static_cast<double>(m);
            if (l == 0) break;
            // (9): δ⁽ˡ⁾_s = Σ_r θ_{r,s} δ_r · σ′(z_s)
            Mat next(theta[l].cols(), 1);
            for (std::size_t s = 0; s < next.size(); ++s) {
                double acc = 0;
                for (std::size_t r = 0; r < theta[l].rows(); ++r) acc += theta[l](r, s) * delta[r];
                next[s] = acc * sigma_prime_cosh(z[l - 1][s]);
            }
            delta = next;
        }
    }
    return g;
}

inline std::vector<Gradients> compare(const Problem& p) {
    std::vector<Mat> t = tape_gradients(p, p.theta), c = closed_form(p, p.theta);
    std::vector<Gradients> out;
    for (std::size_t l = 0; l < p.theta.size(); ++l)
        out.push_back({fmt::format("θ{}", l + 1), t[l], c[l],
                       central_diff([&](const std::vector<Mat>& th) { return cost(p, th); }, p.theta, l)});
    return out;
}

}  // namespace seeds::s001
