// Seed 001: a sigmoid network with the logistic cost, column vectors, no bias. Prints the tape's
// ∇J beside the document's (y − a)·aᵀ / δ recursion and finite differences, handles J's sign
// (a log-likelihood, maximised), shows why the stable σ′ matters, prints explain(), and writes
// seed_001.dot (+ .svg).
//
//   ./build/examples/seed_001_logistic [--out DIR]
#include <cmath>

#include "seeds/seed_001.hpp"

using namespace seeds;

namespace {

// σ′ three ways at z, against the exact 1/(2(1 + cosh z)) in long double.
template <class F>
void sigma_prime_row(double z) {
    const long double exact = 0.5L / (1.0L + std::cosh(static_cast<long double>(z)));
    const F s = F(1) / (F(1) + std::exp(-F(z)));  // σ rounded to F
    const F naive = s * (F(1) - s);               // σ(1 − σ) from the rounded σ
    tg::Tensor<F> zt(1, 1, {F(z)});
    const F stable = tg::sigmoid_grad(zt)[0];      // the engine's σ′ = σ(z)σ(−z)
    auto rel = [&](long double v) { return static_cast<double>(std::abs(v - exact) / exact); };
    fmt::print("  {:>6} z = {:>4}   exact {:.6Le}   σ(1−σ) {:.6e} (rel. err {:.1e})   σ(z)σ(−z) {:.6e} (rel. err {:.1e})\n",
               sizeof(F) == 4 ? "float" : "double", z, exact, static_cast<double>(naive),
               rel(naive), static_cast<double>(stable), rel(stable));
}

}  // namespace

int main(int argc, char** argv) {
    Args args = parse_args(argc, argv);
    // n₁ = 3 inputs, a hidden layer of 4, k = 3 with n₃ = 2 outputs; m = 5 samples as columns.
    s001::Problem p = s001::make_problem(5, {3, 4, 2}, 2015);

    fmt::print("Seed 001 — logistic cost, column vectors: z2 = θ1·X, a2 = σ(z2), z3 = θ2·a2,\n"
               "J = (1/m) Σ y log σ(z3) + (1 − y) log(1 − σ(z3)).   m = {}, θ1 {}, θ2 {}\n\n",
               p.X.cols(), p.theta[0].shape(), p.theta[1].shape());
    fmt::print("Sign: J is the log-likelihood without the minus sign, so it is MAXIMISED; the tape\n"
               "differentiates J itself (tape.grad(θ) = ∇J) and the update is the ascent θ ← θ + α∇J.\n\n");

    std::vector<Gradients> g = s001::compare(p);
    fmt::print("∂J/∂θ: the tape, eqs. 6/9 ((y − a)·aᵀ and the δ recursion), central differences\n");
    print_gradients(g);

    tg::Tape<double> tape;
    s001::Net n = s001::build(tape, p, p.theta);
    tape.backward(n.J);

    // eq. 6: σ′ cancels — the tape's ∂J/∂z3 is (1/m)(y − σ(z3)).
    {
        const Mat& dz = tape.grad(n.z.back());
        Mat expect = map(minus(p.y, map(n.z.back().value(), sigma)), [&](double v) { return v / static_cast<double>(p.X.cols()); });
        fmt::print("\neq. 6: the tape's ∂J/∂z3 against (1/m)(y − a3): relative error {:.2e}\n", rel_err(dz, expect));
    }

    // The sign, with the library's loss: binary_cross_entropy_with_logits = mean(−…) = −J/n_k.
    {
        tg::Tape<double> t2;
        s001::Net n2 = s001::build(t2, p, p.theta);
        auto bce = tg::binary_cross_entropy_with_logits(n2.z.back(), t2.constant(p.y));
        t2.backward(bce);
        const double nk = static_cast<double>(p.y.rows());
        Mat minus_grad = map(tape.grad(n.theta[0]), [&](double v) { return -v / nk; });
        fmt::print("binary_cross_entropy_with_logits = {:.10f} = −J/n_k = {:.10f}; its ∂/∂θ1 against −∇J/n_k: "
                   "relative error {:.2e}\n",
                   bce.item(), -n.J.item() / nk, rel_err(t2.grad(n2.theta[0]), minus_grad));
        std::vector<Mat> up;
        for (std::size_t l = 0; l < p.theta.size(); ++l)
            up.push_back(map(p.theta[l], [](double v) { return v; }));
        const double alpha = 0.5;
        for (std::size_t l = 0; l < p.theta.size(); ++l) up[l] = axpy(p.theta[l], -alpha, tape.grad(n.theta[l]));
        fmt::print("ascent θ ← θ + α∇J, α = {}: J {:.6f} → {:.6f} (increases)\n", alpha, n.J.item(), s001::cost(p, up));
    }

    // Why the stable σ′ matters (eq. 4's remark).
    fmt::print("\nσ′(z) at large z: σ(1 − σ) from a rounded σ loses everything; σ(z)σ(−z) does not\n");
    for (double z : {10.0, 20.0, 30.0, 40.0}) {
        sigma_prime_row<float>(z);
        sigma_prime_row<double>(z);
    }

    fmt::print("\nexplain(θ2):\n{}\n", tape.explain(n.theta[1]));
    fmt::print("\nexplain(θ1):\n{}\n", tape.explain(n.theta[0]));
    fmt::print("\nexplain(θ1) via z3 only:\n{}\n", tape.explain(n.theta[0], {.via = {"z3"}}));
    fmt::print("\nexplain(θ1) with δ⁽ˡ⁾ = ∂J/∂z⁽ˡ⁾ (eq. 9: δ⁽ˡ⁺¹⁾ a⁽ˡ⁾ᵀ; this δ3 includes the 1/m):\n{}\n",
               tape.explain(n.theta[0], {.via = {"z3", "z2"}, .adjoint_names = {{"z3", "δ3"}, {"z2", "δ2"}}}));
    write_graph(tape, args, "seed_001", "seed 001: logistic cost, column vectors");

    const bool ok = worst(g, &Gradients::tape_vs_closed) < 1e-10 && worst(g, &Gradients::tape_vs_fd) < 1e-6;
    fmt::print("\n{}\n", ok ? "agreement: yes" : "agreement: NO");
    return ok ? 0 : 1;
}
