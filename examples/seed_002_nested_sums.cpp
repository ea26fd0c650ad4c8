// Seed 002: a five-layer network, one weight's gradient expanded as nested sums and reordered
// into the δ recursion. Prints the tape's gradients beside the nested sums (as nested loops),
// the δ recursion and finite differences, prints explain(), and writes seed_002.dot (+ .svg).
//
//   ./build/examples/seed_002_nested_sums [--out DIR]
#include "seeds/seed_002.hpp"

using namespace seeds;

int main(int argc, char** argv) {
    Args args = parse_args(argc, argv);
    // s₁…s₅ = 3, 4, 3, 4, 2 (layers j, i, k, q, p).
    s002::Problem p = s002::make_problem({3, 4, 3, 4, 2}, 2016);

    fmt::print("Seed 002 — five layers j, i, k, q, p; z⁽ˡ⁺¹⁾ = W⁽ˡ⁾a⁽ˡ⁾ + b⁽ˡ⁾, a = σ(z), h = a⁽⁵⁾, J = ½‖y − h‖²\n\n");

    std::vector<Gradients> g = s002::compare(p);
    fmt::print("∂J/∂W, ∂J/∂b: the tape, the δ recursion (δᵢ⁽ˡ⁺¹⁾aⱼ⁽ˡ⁾, δᵢ⁽ˡ⁺¹⁾), central differences\n");
    print_gradients(g, 2);

    tg::Tape<double> tape;
    s002::Net n = s002::build(tape, p, p.params());
    tape.backward(n.J);
    const Mat nested = s002::nested_sums(p);
    fmt::print("\n∂J/∂W⁽¹⁾_(i←j) as the expanded nested sums Σ_p Σ_q Σ_k (before the trick), against the tape:\n"
               "  W1(0,0): nested sums {:.12e}, tape {:.12e}; relative error over W1 {:.2e}\n",
               nested(0, 0), tape.grad(n.W[0])(0, 0), rel_err(nested, tape.grad(n.W[0])));

    fmt::print("\nexplain(W1) — the δ recursion; ∂J/∂z⁽ˡ⁾ is the document's δ⁽ˡ⁾:\n{}\n", tape.explain(n.W[0]));
    const tg::ExplainOptions delta{.via = {"z5", "z4", "z3", "z2"},
                                   .adjoint_names = {{"z5", "δ5"}, {"z4", "δ4"}, {"z3", "δ3"}, {"z2", "δ2"}}};
    fmt::print("\nexplain(W1), explain(b1) in the document's notation, δ⁽ˡ⁾ = ∂J/∂z⁽ˡ⁾:\n{}\n{}\n",
               tape.explain(n.W[0], delta), tape.explain(n.b[0], delta));
    fmt::print("\nexplain(W1) via z3 only:\n{}\n", tape.explain(n.W[0], {.via = {"z3"}}));
    write_graph(tape, args, "seed_002", "seed 002: five layers, nested sums");

    const bool ok = worst(g, &Gradients::tape_vs_closed) < 1e-10 && worst(g, &Gradients::tape_vs_fd) < 1e-6 &&
                    rel_err(nested, tape.grad(n.W[0])) < 1e-10;
    fmt::print("\n{}\n", ok ? "agreement: yes" : "agreement: NO");
    return ok ? 0 : 1;
}
