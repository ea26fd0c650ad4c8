// Seed 004: stochastic gradient descent with sensitivities, n = Wᵀa + b, J = (y − a)ᵀ(y − a).
// Prints the tape's gradients beside the sensitivity recursion (with Ḟ as a diagonal matrix) and
// finite differences, shows that the literal F (instead of Ḟ) is wrong, performs one stochastic
// update and checks it equals W − α a sᵀ and b − α s, prints explain(), and writes
// seed_004.dot (+ .svg).
//
//   ./build/examples/seed_004_sgd_sensitivities [--out DIR]
#include "seeds/seed_004.hpp"

using namespace seeds;

int main(int argc, char** argv) {
    Args args = parse_args(argc, argv);
    // s⁽⁰⁾ = 3 inputs, layers of 4 and 2 units (M = 2), one sample.
    s004::Problem p = s004::make_problem({3, 4, 2}, 2018);
    const std::size_t M = p.W.size();

    fmt::print("Seed 004 — n⁽ᵐ⁾ = W⁽ᵐ⁾ᵀa⁽ᵐ⁻¹⁾ + b⁽ᵐ⁾ (w_ji: input j → unit i), a = σ(n), J = (y − a)ᵀ(y − a)\n\n");

    std::vector<Gradients> g = s004::compare(p);
    fmt::print("∂J/∂W = a⁽ᵐ⁻¹⁾s⁽ᵐ⁾ᵀ, ∂J/∂b = s⁽ᵐ⁾: the tape, the sensitivity recursion with Ḟ, central differences\n");
    print_gradients(g, 3);

    tg::Tape<double> tape;
    s004::Net n = s004::build(tape, p, p.params());
    tape.backward(n.J);

    // F versus Ḟ.
    {
        std::vector<Mat> literal = s004::closed_form(p, /*literal_F=*/true);
        std::vector<Mat> s = s004::sensitivities(p);
        fmt::print("\nThe document writes s⁽ᵐ⁾ = F⁽ᵐ⁾(n⁽ᵐ⁾) W⁽ᵐ⁺¹⁾ s⁽ᵐ⁺¹⁾ with F = diag(f(n)); the exact form uses\n"
                   "Ḟ = diag(ḟ(n)), the Jacobian of a = f(n):\n");
        for (std::size_t m = 1; m <= M; ++m)
            fmt::print("  s{}: tape ∂J/∂n{} vs Ḟ form {:.2e}   vs literal F form {:.2e}\n", m, m,
                       rel_err(tape.grad(n.n[m - 1]), s[m]), rel_err(tape.grad(n.n[m - 1]), literal[M + m - 1]));
    }

    // One stochastic update: the document's rule against W − α ∂J/∂W from the tape.
    {
        const double alpha = 0.1;
        std::vector<Mat> doc = s004::sgd_step(p, alpha);
        std::vector<Mat> params = p.params(), by_tape;
        for (std::size_t m = 0; m < M; ++m) by_tape.push_back(axpy(params[m], alpha, tape.grad(n.W[m])));
        for (std::size_t m = 0; m < M; ++m) by_tape.push_back(axpy(params[M + m], alpha, tape.grad(n.b[m])));
        fmt::print("\nOne stochastic update, α = {}:\n", alpha);
        for (std::size_t k = 0; k < 2 * M; ++k)
            fmt::print("  {}(k+1): tape {} vs document {}  relative error {:.2e}\n",
                       k < M ? fmt::format("W{}", k + 1) : fmt::format("b{}", k - M + 1),
                       k < M ? "W − α∂J/∂W" : "b − α∂J/∂b", k < M ? "W − α a sᵀ" : "b − α s   ",
                       rel_err(by_tape[k], doc[k]));
        fmt::print("  J(k) = {:.8f} → J(k+1) = {:.8f}\n", n.J.item(), s004::cost(p, doc));
    }

    fmt::print("\nexplain(W1) — ∂J/∂n⁽ᵐ⁾ is the document's sensitivity s⁽ᵐ⁾:\n{}\n", tape.explain(n.W[0]));
    fmt::print("\nexplain(W2) via n2 — s⁽²⁾ = −2Ḟ(y − a): e = y − a is used twice in eᵀe, so the fan-out reads\n"
               "e + e; then ∂J/∂W⁽²⁾ = a⁽¹⁾s⁽²⁾ᵀ:\n{}\n", tape.explain(n.W[1], {.via = {"n2"}}));
    fmt::print("\nexplain(b1) via n2:\n{}\n", tape.explain(n.b[0], {.via = {"n2"}}));
    const tg::ExplainOptions sens{.via = {"n2", "n1"}, .adjoint_names = {{"n2", "s2"}, {"n1", "s1"}}};
    fmt::print("\nexplain(W1), explain(b1) with the sensitivities s⁽ᵐ⁾ = ∂J/∂n⁽ᵐ⁾ named as in the document:\n{}\n{}\n",
               tape.explain(n.W[0], sens), tape.explain(n.b[0], sens));
    write_graph(tape, args, "seed_004", "seed 004: SGD with sensitivities, n = Wᵀa + b");

    const bool ok = worst(g, &Gradients::tape_vs_closed) < 1e-10 && worst(g, &Gradients::tape_vs_fd) < 1e-6;
    fmt::print("\n{}\n", ok ? "agreement: yes" : "agreement: NO");
    return ok ? 0 : 1;
}
