// Seed 000 — "Derivation of Batch Back Propagation" (summarised in docs/seeds.md).
//
// Conventions of the document: samples are rows. X is N×K; Z⁰ = [1, X] (a first column of ones,
// the bias folded into W), K⁰ = K + 1. Wˡ is Kˡ×Kˡ⁺¹, Aˡ = Zˡ Wˡ, Zˡ⁺¹ = fˡ(Aˡ), Y = Zᴸ, E(Y).
// The document leaves f and E generic; here f = σ at every layer and E = ½‖Y − T‖², so that
// ∂E/∂Y = Y − T.
//
// Its result, coded literally in closed_form():
//   (15)  ∂E/∂Aᴸ⁻¹ = ∂E/∂Y ⊙ f′(Aᴸ⁻¹)
//   (16)  ∂E/∂Wˡ   = (Zˡ)ᵀ ∂E/∂Aˡ
//   (17)  ∂E/∂Aˡ   = (∂E/∂Aˡ⁺¹ (Wˡ⁺¹)ᵀ) ⊙ f′(Aˡ)      — the exact form
// Eq. 17 as printed, ∂E/∂Aˡ⁺¹ (∂_A fˡ(Aˡ) Wˡ⁺¹)ᵀ, puts the transpose around the wrong factor:
// read literally it is (N×Kˡ⁺²)·(Kˡ⁺²×N) = N×N, not the N×Kˡ⁺¹ of ∂E/∂Aˡ (literal_eq17()).
// Update rule: Wˡ ← Wˡ − η ∂E/∂Wˡ.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common.hpp"

namespace seeds::s000 {

struct Problem {
    Mat X;               // N×K, without the ones column
    Mat T;               // N×Kᴸ targets
    std::vector<Mat> W;  // Wˡ: Kˡ×Kˡ⁺¹, K⁰ = K + 1
};

// sizes = {K, K¹, …, Kᴸ}: K input features, then the width of every layer.
inline Problem make_problem(std::size_t N, const std::vector<std::size_t>& sizes, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    Problem p;
    p.X = random_mat(N, sizes[0], rng);
    p.T = random_uniform(N, sizes.back(), rng, 0.05, 0.95);
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
        const std::size_t in = l == 0 ? sizes[0] + 1 : sizes[l];
        p.W.push_back(random_mat(in, sizes[l + 1], rng, 1.0 / std::sqrt(static_cast<double>(in))));
    }
    return p;
}

struct Net {
    std::vector<tg::Var<double>> W, A, Z;  // Z[0] = [1, X], Z[L] = Y
    tg::Var<double> E;
};

// The document's network on the tape, with the document's names (Z0, W0, A0, Z1, …, Y, E).
inline Net build(tg::Tape<double>& tape, const Problem& p, const std::vector<Mat>& W) {
    Net n;
    const std::size_t L = W.size();
    auto ones = tape.constant(Mat::filled(p.X.rows(), 1, 1.0), "1");
    n.Z.push_back(tg::concat_cols(ones, tape.constant(p.X, "X")).named("Z0"));
    for (std::size_t l = 0; l < L; ++l) {
        n.W.push_back(tape.variable(W[l], fmt::format("W{}", l)));
        n.A.push_back(tg::matmul(n.Z[l], n.W[l]).named(fmt::format("A{}", l)));
        n.Z.push_back(tg::sigmoid(n.A[l]).named(l + 1 == L ? std::string("Y") : fmt::format("Z{}", l + 1)));
    }
    n.E = tg::sse_half(n.Z[L], tape.constant(p.T, "T")).named("E");
    return n;
}

// E(W) through the tape's forward pass (for finite differences).
inline double cost(const Problem& p, const std::vector<Mat>& W) {
    tg::Tape<double> tape;
    return build(tape, p, W).E.item();
}

// ∂E/∂Wˡ from the tape.
inline std::vector<Mat> tape_gradients(const Problem& p, const std::vector<Mat>& W) {
    tg::Tape<double> tape;
    Net n = build(tape, p, W);
    tape.backward(n.E);
    std::vector<Mat> g;
    for (auto& w : n.W) g.push_back(tape.grad(w));
    return g;
}

// The forward pass in plain loops: Z⁰ = [1, X], Aˡ = Zˡ Wˡ, Zˡ⁺¹ = σ(Aˡ).
struct Forward {
    std::vector<Mat> Z, A;
};
inline Forward forward(const Problem& p, const std::vector<Mat>& W) {
    Forward f;
    f.Z.push_back(with_ones(p.X));
    for (std::size_t l = 0; l < W.size(); ++l) {
        f.A.push_back(mm(f.Z[l], W[l]));
        f.Z.push_back(map(f.A[l], sigma));
    }
    return f;
}

// Eqs. 15–17 (17 in its exact form), coded literally: returns ∂E/∂Aˡ for every l.
inline std::vector<Mat> deltas(const Problem& p, const std::vector<Mat>& W, const Forward& f) {
    const std::size_t L = W.size();
    std::vector<Mat> dA(L);
    dA[L - 1] = had(minus(f.Z[L], p.T), map(f.A[L - 1], sigma_prime));                // (15)
    for (std::size_t l = L - 1; l-- > 0;)
        dA[l] = had(mm(dA[l + 1], tr(W[l + 1])), map(f.A[l], sigma_prime));           // (17)
    return dA;
}

// ∂E/∂Wˡ = (Zˡ)ᵀ ∂E/∂Aˡ (eq. 16).
inline std::vector<Mat> closed_form(const Problem& p, const std::vector<Mat>& W) {
    Forward f = forward(p, W);
    std::vector<Mat> dA = deltas(p, W, f);
    std::vector<Mat> g;
    for (std::size_t l = 0; l < W.size(); ++l) g.push_back(mm(tr(f.Z[l]), dA[l]));  // (16)
    return g;
}

// Eq. 17 read literally for layer l: ∂E/∂Aˡ⁺¹ (∂_A fˡ(Aˡ) Wˡ⁺¹)ᵀ, with ∂_A f the matrix of
// f′ values. Its shape is N×N whatever the layer widths.
inline Mat literal_eq17(const Problem& p, const std::vector<Mat>& W, std::size_t l) {
    Forward f = forward(p, W);
    std::vector<Mat> dA = deltas(p, W, f);
    return mm(dA[l + 1], tr(mm(map(f.A[l], sigma_prime), W[l + 1])));
}

inline std::vector<Gradients> compare(const Problem& p) {
    std::vector<Mat> t = tape_gradients(p, p.W), c = closed_form(p, p.W);
    std::vector<Gradients> out;
    for (std::size_t l = 0; l < p.W.size(); ++l)
        out.push_back({fmt::format("W{}", l), t[l], c[l],
                       central_diff([&](const std::vector<Mat>& w) { return cost(p, w); }, p.W, l)});
    return out;
}

}  // namespace seeds::s000
