// Seed 003: the four δ equations with biases, on a batch with the mean cost. Prints the tape's
// gradients beside eqs. 10–13 (per sample, averaged) and finite differences, prints explain(),
// and writes seed_003.dot (+ .svg).
//
//   ./build/examples/seed_003_four_deltas [--out DIR]
#include "seeds/seed_003.hpp"

using namespace seeds;

int main(int argc, char** argv) {
    Args args = parse_args(argc, argv);
    // layers 3 → 4 → 2, m = 6 samples as columns, f = tanh.
    s003::Problem p = s003::make_problem(6, {3, 4, 2}, 2016);

    fmt::print("Seed 003 — z⁽ˡ⁺¹⁾ = W⁽ˡ⁾a⁽ˡ⁾ + b⁽ˡ⁾, a = tanh(z), J = (1/m) Σ ½‖h(x) − y‖²,   m = {}\n\n", p.X.cols());

    std::vector<Gradients> g = s003::compare(p);
    fmt::print("∇W, ∇b: the tape, eqs. 10–13 (δ⁽ˡ⁺¹⁾(a⁽ˡ⁾)ᵀ and δ⁽ˡ⁺¹⁾, averaged over samples), central differences\n");
    print_gradients(g, 3);

    tg::Tape<double> tape;
    s003::Net n = s003::build(tape, p, p.params());
    tape.backward(n.J);
    fmt::print("\nexplain(W1) — ∂J/∂z⁽ˡ⁾ is the batch of the document's δ⁽ˡ⁾ (divided by m):\n{}\n",
               tape.explain(n.W[0]));
    fmt::print("\nexplain(b1) — the bias adjoint sums δ over the batch (·1):\n{}\n", tape.explain(n.b[0]));
    const tg::ExplainOptions delta{.via = {"z3", "z2"}, .adjoint_names = {{"z3", "δ3"}, {"z2", "δ2"}}};
    fmt::print("\nexplain(W1), explain(W2) with δ⁽ˡ⁾ = ∂J/∂z⁽ˡ⁾ (eqs. 10–12; the 1/m of the batch mean sits in δ3):\n{}\n{}\n",
               tape.explain(n.W[0], delta), tape.explain(n.W[1], delta));
    fmt::print("\nexplain(W2), ASCII:\n{}\n", tape.explain(n.W[1], {.ascii = true}));
    write_graph(tape, args, "seed_003", "seed 003: four δ equations, batch mean cost");

    const bool ok = worst(g, &Gradients::tape_vs_closed) < 1e-10 && worst(g, &Gradients::tape_vs_fd) < 1e-6;
    fmt::print("\n{}\n", ok ? "agreement: yes" : "agreement: NO");
    return ok ? 0 : 1;
}
