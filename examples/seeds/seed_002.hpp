// Seed 002 — "Derivation of the back-propagation algorithm", Rui Zhang
// (summarised in docs/seeds.md).
//
// Conventions of the document: five layers indexed j, i, k, q, p (layers 1…5 here, n_l = 5),
// one sample, column vectors, z⁽ˡ⁺¹⁾ = W⁽ˡ⁾ a⁽ˡ⁾ + b⁽ˡ⁾ with W⁽ˡ⁾_{i←j} = W⁽ˡ⁾(i, j),
// a⁽ˡ⁺¹⁾ = f(z⁽ˡ⁺¹⁾), a⁽¹⁾ = x, h = a⁽⁵⁾, J = ½‖y − h‖². f = σ here (the document keeps it generic).
//
// The document expands ∂J/∂W⁽¹⁾_{i←j} into nested sums over p, q, k (nested_sums(), coded as
// those nested loops), then reorders them ("the trick") into the δ recursion (deltas()):
//   δₚ⁽⁵⁾ = −(yₚ − hₚ) f′(zₚ⁽⁵⁾)
//   δₖ⁽ˡ⁾ = (Σ_q W⁽ˡ⁾_{q←k} δ_q⁽ˡ⁺¹⁾) f′(zₖ⁽ˡ⁾)
//   ∂J/∂W⁽ˡ⁾_{i←j} = δᵢ⁽ˡ⁺¹⁾ aⱼ⁽ˡ⁾,   ∂J/∂bᵢ⁽ˡ⁾ = δᵢ⁽ˡ⁺¹⁾ ("derived in the same way")
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common.hpp"

namespace seeds::s002 {

inline constexpr std::size_t kLayers = 5;

struct Problem {
    Mat x, y;             // s₁×1 input, s₅×1 target
    std::vector<Mat> W;   // W⁽ˡ⁾: s_{l+1}×s_l, l = 1…4 (index 0…3)
    std::vector<Mat> b;   // b⁽ˡ⁾: s_{l+1}×1
    // parameters as one list for finite differences: W1…W4, b1…b4
    std::vector<Mat> params() const {
        std::vector<Mat> p = W;
        p.insert(p.end(), b.begin(), b.end());
        return p;
    }
};

// sizes = {s₁, …, s₅}.
inline Problem make_problem(const std::vector<std::size_t>& sizes, std::uint64_t seed) {
    if (sizes.size() != kLayers) tg::fail("seed 002: the document's network has five layers, got {}", sizes.size());
    std::mt19937_64 rng(seed);
    Problem p;
    p.x = random_mat(sizes[0], 1, rng);
    p.y = random_uniform(sizes[4], 1, rng, 0.05, 0.95);
    for (std::size_t l = 0; l + 1 < kLayers; ++l) {
        p.W.push_back(random_mat(sizes[l + 1], sizes[l], rng, 1.5 / std::sqrt(static_cast<double>(sizes[l]))));
        p.b.push_back(random_mat(sizes[l + 1], 1, rng, 0.5));
    }
    return p;
}

struct Net {
    std::vector<tg::Var<double>> W, b, z, a;  // z[l], a[l]: layer l + 2
    tg::Var<double> J;
};

// The network on the tape; names W1…W4, b1…b4, z2…z5, a2…a4, h, J.
inline Net build(tg::Tape<double>& tape, const Problem& p, const std::vector<Mat>& params) {
    Net n;
    auto a = tape.constant(p.x, "x");
    for (std::size_t l = 0; l + 1 < kLayers; ++l) {
        n.W.push_back(tape.variable(params[l], fmt::format("W{}", l + 1)));
        n.b.push_back(tape.variable(params[l + kLayers - 1], fmt::format("b{}", l + 1)));
        n.z.push_back((tg::matmul(n.W[l], a) + n.b[l]).named(fmt::format("z{}", l + 2)));
        a = tg::sigmoid(n.z[l]).named(l + 2 == kLayers ? std::string("h") : fmt::format("a{}", l + 2));
        n.a.push_back(a);
    }
    n.J = tg::sse_half(tape.constant(p.y, "y"), a).named("J");  // ½‖y − h‖²
    return n;
}

inline double cost(const Problem& p, const std::vector<Mat>& params) { return tape_cost(p, params, build); }
inline std::vector<Mat> tape_gradients(const Problem& p) { return tape_gradients_wb(p, build); }

// Forward in plain loops; a[0] = x, z[l] and a[l] for layers l + 1 (z[0] unused).
struct Forward {
    std::vector<Mat> z, a;
};
inline Forward forward(const Problem& p) {
    Forward f;
    f.z.emplace_back();
    f.a.push_back(p.x);
    for (std::size_t l = 0; l + 1 < kLayers; ++l) {
        Mat z(p.W[l].rows(), 1);
        for (std::size_t i = 0; i < z.size(); ++i) {
            double s = p.b[l][i];
            for (std::size_t j = 0; j < p.W[l].cols(); ++j) s += p.W[l](i, j) * f.a[l][j];
            z[i] = s;
        }
        f.a.push_back(map(z, sigma));
        f.z.push_back(std::move(z));
    }
    return f;
}

// ∂J/∂W⁽¹⁾_{i←j} as the document's expanded nested sums, before the trick:
//   Σ_p Σ_q Σ_k −(yₚ − hₚ) f′(zₚ⁽⁵⁾) W⁽⁴⁾_{p←q} f′(z_q⁽⁴⁾) W⁽³⁾_{q←k} f′(zₖ⁽³⁾) W⁽²⁾_{k←i} f′(zᵢ⁽²⁾) aⱼ⁽¹⁾
inline Mat nested_sums(const Problem& p) {
    Forward f = forward(p);
    const Mat &W1 = p.W[0], &W2 = p.W[1], &W3 = p.W[2], &W4 = p.W[3];
    Mat g(W1.rows(), W1.cols());
    for (std::size_t i = 0; i < W1.rows(); ++i)
        for (std::size_t j = 0; j < W1.cols(); ++j) {
            double total = 0;
            for (std::size_t pp = 0; pp < W4.rows(); ++pp)
                for (std::size_t q = 0; q < W4.cols(); ++q)
                    for (std::size_t k = 0; k < W3.cols(); ++k)
                        total += -(p.y[pp] - f.a[4][pp]) * sigma_prime(f.z[4][pp]) * W4(pp, q) *
                                 sigma_prime(f.z[3][q]) * W3(q, k) * sigma_prime(f.z[2][k]) * W2(k, i) *
                                 sigma_prime(f.z[1][i]) * f.a[0][j];
            g(i, j) = total;
        }
    return g;
}

// The δ recursion after the trick: δ[l] for layers l = 2…5 (δ[0], δ[1] unused).
inline std::vector<Mat> deltas(const Problem& p, const Forward& f) {
    std::vector<Mat> d(kLayers);
    Mat& top = d[kLayers - 1];
    top = Mat(f.z[kLayers - 1].rows(), 1);
    for (std::size_t pp = 0; pp < top.size(); ++pp)
        top[pp] = -(p.y[pp] - f.a[kLayers - 1][pp]) * sigma_prime(f.z[kLayers - 1][pp]);
    for (std::size_t l = kLayers - 1; l-- > 1;) {
        const Mat& W = p.W[l];  // W⁽ˡ⁺¹⁾ in layer numbering 1…5 (W[l] maps layer l+1 → l+2)
        d[l] = Mat(W.cols(), 1);
        for (std::size_t k = 0; k < W.cols(); ++k) {
            double s = 0;
            for (std::size_t q = 0; q < W.rows(); ++q) s += W(q, k) * d[l + 1][q];
            d[l][k] = s * sigma_prime(f.z[l][k]);
        }
    }
    return d;
}

// ∂J/∂W⁽ˡ⁾_{i←j} = δᵢ⁽ˡ⁺¹⁾ aⱼ⁽ˡ⁾ and ∂J/∂bᵢ⁽ˡ⁾ = δᵢ⁽ˡ⁺¹⁾, in the order W1…W4, b1…b4.
inline std::vector<Mat> closed_form(const Problem& p) {
    Forward f = forward(p);
    std::vector<Mat> d = deltas(p, f);
    std::vector<Mat> g;
    for (std::size_t l = 0; l + 1 < kLayers; ++l) {
        Mat w(p.W[l].rows(), p.W[l].cols());
        for (std::size_t i = 0; i < w.rows(); ++i)
            for (std::size_t j = 0; j < w.cols(); ++j) w(i, j) = d[l + 1][i] * f.a[l][j];
        g.push_back(std::move(w));
    }
    for (std::size_t l = 0; l + 1 < kLayers; ++l) g.push_back(d[l + 1]);
    return g;
}

inline std::vector<Gradients> compare(const Problem& p) {
    std::vector<Mat> t = tape_gradients(p), c = closed_form(p), params = p.params();
    std::vector<Gradients> out;
    for (std::size_t k = 0; k < params.size(); ++k) {
        std::string name = k < kLayers - 1 ? fmt::format("W{}", k + 1) : fmt::format("b{}", k - kLayers + 2);
        out.push_back({name, t[k], c[k],
                       central_diff([&](const std::vector<Mat>& q) { return cost(p, q); }, params, k)});
    }
    return out;
}

}  // namespace seeds::s002
