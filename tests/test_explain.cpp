// explain(): the symbolic reading of the ops' own VJP rules, pinned for the five seed networks
// (Unicode and ASCII), fan-out, generated names, shapes on request, and the rendering's algebra
// (signs and constant factors folded, mixed products parenthesised).
#include <doctest/doctest.h>

#include "../examples/seeds/seed_000.hpp"
#include "../examples/seeds/seed_001.hpp"
#include "../examples/seeds/seed_002.hpp"
#include "../examples/seeds/seed_003.hpp"
#include "../examples/seeds/seed_004.hpp"

using namespace seeds;

TEST_CASE("seed 000: explain prints eq. 16 with eq. 17 in its exact form") {
    s000::Problem p = s000::make_problem(4, {3, 4, 2}, 1);
    tg::Tape<double> tape;
    s000::Net n = s000::build(tape, p, p.W);
    tape.backward(n.E);
    CHECK(tape.explain(n.W[0], {.via = {"A1"}}) ==
          "∂E/∂A1 = (Y − T) ⊙ σ′(A1)\n"
          "∂E/∂W0 = Z0ᵀ · ((∂E/∂A1 · W1ᵀ) ⊙ σ′(A0))");
    CHECK(tape.explain(n.W[0], {.ascii = true, .via = {"A1"}}) ==
          "dE/dA1 = (Y - T) * sigmoid'(A1)\n"
          "dE/dW0 = Z0^T . ((dE/dA1 . W1^T) * sigmoid'(A0))");
    CHECK(tape.explain(n.W[1]) ==
          "∂E/∂Y = Y − T\n"
          "∂E/∂A1 = ∂E/∂Y ⊙ σ′(A1)\n"
          "∂E/∂W1 = Z1ᵀ · ∂E/∂A1");
    CHECK(tape.explain(n.W[0]) ==
          "∂E/∂Y = Y − T\n"
          "∂E/∂A1 = ∂E/∂Y ⊙ σ′(A1)\n"
          "∂E/∂Z1 = ∂E/∂A1 · W1ᵀ\n"
          "∂E/∂A0 = ∂E/∂Z1 ⊙ σ′(A0)\n"
          "∂E/∂W0 = Z0ᵀ · ∂E/∂A0");
}

TEST_CASE("explain appends each adjoint's shape on request") {
    s000::Problem p = s000::make_problem(4, {3, 4, 2}, 1);
    tg::Tape<double> tape;
    s000::Net n = s000::build(tape, p, p.W);
    tape.backward(n.E);
    CHECK(tape.explain(n.W[0], {.ascii = true, .shapes = true}) ==
          "dE/dY = Y - T    (4×2)\n"
          "dE/dA1 = dE/dY * sigmoid'(A1)    (4×2)\n"
          "dE/dZ1 = dE/dA1 . W1^T    (4×4)\n"
          "dE/dA0 = dE/dZ1 * sigmoid'(A0)    (4×4)\n"
          "dE/dW0 = Z0^T . dE/dA0    (4×4)");
}

TEST_CASE("seed 001: explain shows the output adjoint y sigma(-z) - (1 - y) sigma(z), scaled by 1/m") {
    s001::Problem p = s001::make_problem(4, {3, 4, 2}, 1);
    tg::Tape<double> tape;
    s001::Net n = s001::build(tape, p, p.theta);
    tape.backward(n.J);
    CHECK(tape.explain(n.theta[1]) ==
          "∂J/∂z3 = 0.25·(y ⊙ σ(−z3)) − 0.25·((−y + 1) ⊙ σ(z3))\n"
          "∂J/∂θ2 = ∂J/∂z3 · a2ᵀ");
    CHECK(tape.explain(n.theta[1], {.ascii = true}) ==
          "dJ/dz3 = 0.25*(y * sigmoid(-z3)) - 0.25*((-y + 1) * sigmoid(z3))\n"
          "dJ/dθ2 = dJ/dz3 . a2^T");
    CHECK(tape.explain(n.theta[0], {.via = {"z3"}}) ==
          "∂J/∂z3 = 0.25·(y ⊙ σ(−z3)) − 0.25·((−y + 1) ⊙ σ(z3))\n"
          "∂J/∂θ1 = ((θ2ᵀ · ∂J/∂z3) ⊙ σ′(z2)) · Xᵀ");
}

TEST_CASE("seed 002: explain prints the delta recursion through five layers") {
    s002::Problem p = s002::make_problem({3, 4, 3, 4, 2}, 1);
    tg::Tape<double> tape;
    s002::Net n = s002::build(tape, p, p.params());
    tape.backward(n.J);
    CHECK(tape.explain(n.W[0]) ==
          "∂J/∂h = −(y − h)\n"
          "∂J/∂z5 = ∂J/∂h ⊙ σ′(z5)\n"
          "∂J/∂a4 = W4ᵀ · ∂J/∂z5\n"
          "∂J/∂z4 = ∂J/∂a4 ⊙ σ′(z4)\n"
          "∂J/∂a3 = W3ᵀ · ∂J/∂z4\n"
          "∂J/∂z3 = ∂J/∂a3 ⊙ σ′(z3)\n"
          "∂J/∂a2 = W2ᵀ · ∂J/∂z3\n"
          "∂J/∂z2 = ∂J/∂a2 ⊙ σ′(z2)\n"
          "∂J/∂W1 = ∂J/∂z2 · xᵀ");
    CHECK(tape.explain(n.b[0], {.via = {"z2"}}) ==
          "∂J/∂z2 = −((W2ᵀ · ((W3ᵀ · ((W4ᵀ · ((y − h) ⊙ σ′(z5))) ⊙ σ′(z4))) ⊙ σ′(z3))) ⊙ σ′(z2))\n"
          "∂J/∂b1 = ∂J/∂z2");
    CHECK(tape.explain(n.W[3], {.ascii = true}) ==
          "dJ/dh = -(y - h)\n"
          "dJ/dz5 = dJ/dh * sigmoid'(z5)\n"
          "dJ/dW4 = dJ/dz5 . a4^T");
}

TEST_CASE("seed 003: explain prints the four delta equations, the bias adjoint summed over the batch") {
    s003::Problem p = s003::make_problem(4, {3, 4, 2}, 1);
    tg::Tape<double> tape;
    s003::Net n = s003::build(tape, p, p.params());
    tape.backward(n.J);
    CHECK(tape.explain(n.W[0]) ==
          "∂J/∂a3 = 0.25·(a3 − y)\n"
          "∂J/∂z3 = ∂J/∂a3 ⊙ tanh′(z3)\n"
          "∂J/∂a2 = W2ᵀ · ∂J/∂z3\n"
          "∂J/∂z2 = ∂J/∂a2 ⊙ tanh′(z2)\n"
          "∂J/∂W1 = ∂J/∂z2 · xᵀ");
    CHECK(tape.explain(n.b[0], {.via = {"z2"}}) ==
          "∂J/∂z2 = 0.25·((W2ᵀ · ((a3 − y) ⊙ tanh′(z3))) ⊙ tanh′(z2))\n"
          "∂J/∂b1 = ∂J/∂z2·1");
    CHECK(tape.explain(n.b[1], {.ascii = true}) ==
          "dJ/da3 = 0.25*(a3 - y)\n"
          "dJ/dz3 = dJ/da3 * tanh'(z3)\n"
          "dJ/db2 = rowsum(dJ/dz3)");
}

TEST_CASE("seed 004: explain prints the sensitivities with W s for n = W^T a + b") {
    s004::Problem p = s004::make_problem({3, 4, 2}, 1);
    tg::Tape<double> tape;
    s004::Net n = s004::build(tape, p, p.params());
    tape.backward(n.J);
    CHECK(tape.explain(n.W[0]) ==
          "∂J/∂e = e + e\n"
          "∂J/∂a2 = −∂J/∂e\n"
          "∂J/∂n2 = ∂J/∂a2 ⊙ σ′(n2)\n"
          "∂J/∂a1 = W2 · ∂J/∂n2\n"
          "∂J/∂n1 = ∂J/∂a1 ⊙ σ′(n1)\n"
          "∂J/∂W1 = a0 · ∂J/∂n1ᵀ");
    CHECK(tape.explain(n.W[1], {.via = {"n2"}}) ==
          "∂J/∂n2 = −((e + e) ⊙ σ′(n2))\n"
          "∂J/∂W2 = a1 · ∂J/∂n2ᵀ");
    CHECK(tape.explain(n.b[0], {.ascii = true, .via = {"n2"}}) ==
          "dJ/dn2 = -((e + e) * sigmoid'(n2))\n"
          "dJ/db1 = (W2 . dJ/dn2) * sigmoid'(n1)");
}

TEST_CASE("fan-out is shown as a sum of terms, one per use") {
    tg::Tape<double> tape;
    auto X = tape.constant(Mat(3, 2), "X");
    auto Z = tape.constant(Mat(3, 2), "Z");
    auto W = tape.variable(Mat(2, 2), "W");
    auto E = tg::sum(tg::matmul(X, W) + tg::matmul(Z, W)).named("E");
    tape.backward(E);
    CHECK(tape.explain(W) == "∂E/∂W = Xᵀ · 1 + Zᵀ · 1");

    auto A = tg::matmul(X, W).named("A");
    auto E2 = tg::sum(tg::square(A) - tg::tanh(A)).named("E2");
    tape.backward(E2);
    CHECK(tape.explain(W) == "∂E2/∂A = 2·A − tanh′(A)\n∂E2/∂W = Xᵀ · ∂E2/∂A");
    CHECK(tape.explain(W, {.ascii = true, .shapes = true}) ==
          "dE2/dA = 2*A - tanh'(A)    (3×2)\ndE2/dW = X^T . dE2/dA    (2×2)");
}

TEST_CASE("unnamed nodes get generated names and unnamed intermediates are written out") {
    tg::Tape<double> tape;
    auto x = tape.variable(Mat(3, 2));           // node 0: v0
    auto w = tape.variable(Mat(2, 2), "W");      // node 1
    auto a = tg::matmul(x, w);                   // node 2, written out as v0 · W
    auto e = tg::sum(tg::sigmoid(a) * a);        // nodes 3–5: the loss is t5
    tape.backward(e);
    CHECK(tape.explain(w) == "∂t5/∂W = v0ᵀ · (σ(v0 · W) + (v0 · W) ⊙ σ′(v0 · W))");
    CHECK(tape.explain(x) == "∂t5/∂v0 = (σ(v0 · W) + (v0 · W) ⊙ σ′(v0 · W)) · Wᵀ");
    CHECK(tape.explain(w, {.shapes = true}) == "∂t5/∂W = v0ᵀ · (σ(v0 · W) + (v0 · W) ⊙ σ′(v0 · W))    (2×2)");

    tg::Tape<double> t2;
    auto c = t2.constant(Mat(2, 3));  // c0
    auto v = t2.variable(Mat(3, 1));  // v1
    t2.backward(tg::sum(tg::matmul(c, v)));
    CHECK(t2.explain(v) == "∂t3/∂v1 = c0ᵀ · 1");
}

TEST_CASE("the rendering folds signs and constant factors as on paper") {
    tg::Tape<double> tape;
    auto x = tape.variable(Mat(2, 2), "x");
    auto y = -(-x);
    tape.backward(tg::sum(y * y).named("E"));
    CHECK(tape.explain(x) == "∂E/∂x = x + x");  // −(−x) = x

    auto D = (x - 1.0).named("D");
    tape.backward(tg::sse_half(D, tape.constant(Mat(2, 2), "T")).named("E"));
    CHECK(tape.explain(x) == "∂E/∂D = D − T\n∂E/∂x = ∂E/∂D");  // 0.5 ⊙ 2·(D − T) = D − T

    tape.backward(tg::sum(tg::exp(-x) / 4.0).named("E"));
    CHECK(tape.explain(x) == "∂E/∂x = −0.25·exp(−x)");
    CHECK(tape.explain(x, {.ascii = true}) == "dE/dx = -0.25*exp(-x)");
}

TEST_CASE("explain of a node the loss does not depend on is zero") {
    tg::Tape<double> tape;
    auto x = tape.variable(Mat(2, 2), "x");
    auto u = tape.variable(Mat(2, 2), "u");
    auto E = tg::sum(tg::sigmoid(x)).named("E");
    (void)u;
    tape.backward(E);
    CHECK(tape.explain(u) == "∂E/∂u = 0");
    CHECK(tape.explain(x) == "∂E/∂x = σ′(x)");
}

TEST_CASE("adjoint_names print the documents' delta and sensitivity symbols") {
    s002::Problem p = s002::make_problem({3, 4, 3, 4, 2}, 1);
    tg::Tape<double> tape;
    s002::Net n = s002::build(tape, p, p.params());
    tape.backward(n.J);
    const tg::ExplainOptions delta{.via = {"z5", "z4", "z3", "z2"},
                                   .adjoint_names = {{"z5", "δ5"}, {"z4", "δ4"}, {"z3", "δ3"}, {"z2", "δ2"}}};
    CHECK(tape.explain(n.W[0], delta) ==
          "δ5 = −((y − h) ⊙ σ′(z5))\n"
          "δ4 = (W4ᵀ · δ5) ⊙ σ′(z4)\n"
          "δ3 = (W3ᵀ · δ4) ⊙ σ′(z3)\n"
          "δ2 = (W2ᵀ · δ3) ⊙ σ′(z2)\n"
          "∂J/∂W1 = δ2 · xᵀ");

    s004::Problem q = s004::make_problem({3, 4, 2}, 1);
    tg::Tape<double> t4;
    s004::Net m = s004::build(t4, q, q.params());
    t4.backward(m.J);
    const tg::ExplainOptions sens{.via = {"n2", "n1"}, .adjoint_names = {{"n2", "s2"}, {"n1", "s1"}}};
    CHECK(t4.explain(m.W[0], sens) == "s2 = −((e + e) ⊙ σ′(n2))\ns1 = (W2 · s2) ⊙ σ′(n1)\n∂J/∂W1 = a0 · s1ᵀ");
    CHECK(t4.explain(m.b[1], sens) == "s2 = −((e + e) ⊙ σ′(n2))\n∂J/∂b2 = s2");
    CHECK(t4.explain(m.W[1], {.ascii = true, .via = {"n2"}, .adjoint_names = {{"n2", "s2"}}}) ==
          "s2 = -((e + e) * sigmoid'(n2))\ndJ/dW2 = a1 . s2^T");
}
