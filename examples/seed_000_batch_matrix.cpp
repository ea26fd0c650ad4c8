// Seed 000: batch backpropagation in matrix form, samples as rows, bias folded into W.
// Builds the document's network on the tape, prints the tape's gradient beside the document's
// eqs. 15–17 coded literally and central finite differences, shows that eq. 17 as printed is
// ill-shaped, prints explain() (the document's formulas, produced by the engine), takes one
// update step W ← W − η ∂E/∂W, and writes the graph as seed_000.dot (+ .svg).
//
//   ./build/examples/seed_000_batch_matrix [--out DIR]
#include "seeds/seed_000.hpp"

using namespace seeds;

int main(int argc, char** argv) {
    Args args = parse_args(argc, argv);
    // N = 5 samples, K = 3 features (K⁰ = 4 with the ones column), widths K¹ = 4, K² = 2.
    s000::Problem p = s000::make_problem(5, {3, 4, 2}, 2017);

    fmt::print("Seed 000 — batch backprop, samples as rows: Z0 = [1, X] (N×K⁰), Aˡ = Zˡ·Wˡ, Zˡ⁺¹ = σ(Aˡ),\n"
               "E = ½‖Y − T‖².   N = {}, K⁰ = {}, widths {}×{} and {}×{}\n\n",
               p.X.rows(), p.X.cols() + 1, p.W[0].rows(), p.W[0].cols(), p.W[1].rows(), p.W[1].cols());

    std::vector<Gradients> g = s000::compare(p);
    fmt::print("∂E/∂Wˡ: the tape, eq. 16 with eqs. 15/17 (exact form), central differences\n");
    print_gradients(g);

    // Eq. 17 as printed versus the exact form.
    fmt::print("\nEq. 17 as printed: ∂E/∂A⁰ = ∂E/∂A¹ (∂_A f⁰(A⁰) W¹)ᵀ — the exact form is (∂E/∂A¹ (W¹)ᵀ) ⊙ f′(A⁰)\n");
    for (const s000::Problem& q : {p, s000::make_problem(4, {3, 4, 2}, 2017)}) {
        s000::Forward f = s000::forward(q, q.W);
        std::vector<Mat> dA = s000::deltas(q, q.W, f);
        Mat literal = s000::literal_eq17(q, q.W, 0);
        tg::Tape<double> tape;
        s000::Net n = s000::build(tape, q, q.W);
        tape.backward(n.E);
        const Mat& exact = tape.grad(n.A[0]);
        fmt::print("  N = {}: literal ∂E/∂A¹ {} · (f′(A⁰) {} · W¹ {})ᵀ is {}", q.X.rows(), dA[1].shape(),
                   f.A[0].shape(), q.W[1].shape(), literal.shape());
        if (literal.shape() == exact.shape())
            fmt::print(", the shape of ∂E/∂A⁰ only because N = K¹; its values are wrong: relative error {:.2e}",
                       rel_err(literal, exact));
        else
            fmt::print(", but ∂E/∂A⁰ is {}: ill-shaped", exact.shape());
        fmt::print("\n         exact form against the tape: relative error {:.2e}\n", rel_err(dA[0], exact));
    }

    // explain(): the formulas the reverse sweep applied, in the document's names.
    tg::Tape<double> tape;
    s000::Net n = s000::build(tape, p, p.W);
    tape.backward(n.E);
    fmt::print("\nexplain(W1):\n{}\n", tape.explain(n.W[1]));
    fmt::print("\nexplain(W0), every named node:\n{}\n", tape.explain(n.W[0]));
    fmt::print("\nexplain(W0) via A1 only — eq. 17 substituted into eq. 16:\n{}\n",
               tape.explain(n.W[0], {.via = {"A1"}}));
    fmt::print("\nthe same in ASCII with shapes:\n{}\n", tape.explain(n.W[0], {.ascii = true, .shapes = true, .via = {"A1"}}));
    write_graph(tape, args, "seed_000", "seed 000: batch backprop, samples as rows");

    // One batch update W ← W − η ∂E/∂W.
    const double eta = 0.5;
    std::vector<Mat> next;
    for (std::size_t l = 0; l < p.W.size(); ++l) next.push_back(axpy(p.W[l], eta, tape.grad(n.W[l])));
    fmt::print("\nupdate W ← W − η ∂E/∂W with η = {}: E {:.6f} → {:.6f}\n", eta, n.E.item(), s000::cost(p, next));

    const bool ok = worst(g, &Gradients::tape_vs_closed) < 1e-10 && worst(g, &Gradients::tape_vs_fd) < 1e-6;
    fmt::print("\n{}\n", ok ? "agreement: yes" : "agreement: NO");
    return ok ? 0 : 1;
}
