// explain(): the symbolic reading of the ops' own VJP rules, pinned for the five seed networks
// (Unicode and ASCII), fan-out, generated names, shapes on request, and the rendering's algebra
// (signs and constant factors folded, mixed products parenthesised).
#include <doctest/doctest.h>

#include <cctype>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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

namespace {

// y = 2x with a VJP written for tensors only (as a user might): no symbolic reading.
struct TensorOnlyDouble {
    static constexpr std::string_view name = "tensor_only_double";
    static constexpr std::size_t arity = 1;
    tg::Shape shape(tg::Shape x) const { return x; }
    template <class T>
    void forward(tg::Tensor<T>& out, const tg::Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = 2 * x[i];
    }
    template <class T>
    tg::Tensor<T> vjp(tg::In<0>, const tg::Tensor<T>& g, const tg::Tensor<T>&, const tg::Tensor<T>&) const {
        return tg::scale(g, 2.0);
    }
};

}  // namespace

TEST_CASE("explain raises an error naming an op whose VJP runs on tensors only, instead of printing 0") {
    tg::Tape<double> tape;
    auto W = tape.variable(Mat(2, 2), "W");
    auto X = tape.constant(Mat(3, 2), "X");
    auto E = tg::sum(tg::apply(TensorOnlyDouble{}, tg::matmul(X, W))).named("E");
    tape.backward(E);
    CHECK(tape.grad(W)(0, 0) == 0.0);  // X is zero: the numeric reading runs
    CHECK_THROWS_WITH_AS(tape.explain(W), doctest::Contains("tensor_only_double"), tg::Error);
    CHECK_THROWS_WITH_AS(tape.explain(W), doctest::Contains("input 0"), tg::Error);
    CHECK_THROWS_WITH_AS(tape.explain(W), doctest::Contains("t2 (3×2)"), tg::Error);  // the input X · W
}

TEST_CASE("explain accepts a tensors-only op that is off the path to the explained variable") {
    tg::Tape<double> tape;
    auto u = tape.variable(Mat(2, 2), "u");
    auto x = tape.variable(Mat(2, 2), "x");
    auto E = (tg::sum(tg::apply(TensorOnlyDouble{}, u)) + tg::sum(tg::sigmoid(x))).named("E");
    tape.backward(E);
    CHECK(tape.explain(x) == "∂E/∂x = σ′(x)");
    CHECK_THROWS_AS(tape.explain(u), tg::Error);
}

TEST_CASE("explain keeps the brackets a transpose flag needs and simplifies a double transpose") {
    tg::Tape<double> tape;
    auto P = tape.constant(Mat(2, 2), "P");
    auto X = tape.constant(Mat(2, 3), "X");
    auto W = tape.variable(Mat(3, 2), "W");
    tape.backward(tg::sum(tg::sigmoid(tg::matmul(P, tg::matmul(X, W), false, true))).named("E"));  // P · (X · W)ᵀ
    CHECK(tape.explain(W) == "∂E/∂W = Xᵀ · σ′(P · (X · W)ᵀ)ᵀ · P");
    CHECK(tape.explain(W, {.ascii = true}) == "dE/dW = X^T . sigmoid'(P . (X . W)^T)^T . P");

    // (Aᵀ)ᵀ is A, in the forward values and in the adjoints.
    tg::Tape<double> t2;
    auto A = t2.variable(Mat(2, 2), "A");
    auto B = t2.constant(Mat(2, 2), "B");
    t2.backward(tg::sum(tg::sigmoid(tg::matmul(tg::transpose(A), B, true, false))).named("E"));
    CHECK(t2.explain(A) == "∂E/∂A = (B · σ′(A · B)ᵀ)ᵀ");
    t2.backward(tg::sum(tg::sigmoid(tg::transpose(tg::transpose(A)))).named("E"));
    CHECK(t2.explain(A) == "∂E/∂A = σ′(A)");
}

// ---- property: every rendering parses back to the same expression --------------------------------
// Random expression trees are built with the Sym constructors (each paired with the value it
// stands for, computed on random matrices), rendered in both notations, parsed back by the small
// reader below, evaluated, and compared with that value. A missing bracket changes the value.

namespace {

using tg::Shape;
using tg::Sym;

// A value of the reader: a matrix, a scalar that broadcasts, or the ones vector "1" (whose
// length and orientation come from the product it stands in).
struct Val {
    std::size_t r = 0, c = 0;
    std::vector<double> v;
    enum class Tag { Matrix, Scalar, OnesCol, OnesRow } tag = Tag::Matrix;
    double at(std::size_t i, std::size_t j) const {
        if (tag == Tag::Matrix) return v[i * c + j];
        return tag == Tag::Scalar ? v[0] : 1.0;
    }
};

Val matrix(std::size_t r, std::size_t c, double fill = 0) { return {r, c, std::vector<double>(r * c, fill)}; }
Val scalar(double x) { return {1, 1, {x}, Val::Tag::Scalar}; }

template <class F>
Val elementwise(const Val& a, const Val& b, F f) {
    const bool am = a.tag == Val::Tag::Matrix, bm = b.tag == Val::Tag::Matrix;
    if (!am && !bm) return scalar(f(a.at(0, 0), b.at(0, 0)));
    const Val& m = am ? a : b;
    if (am && bm && (a.r != b.r || a.c != b.c)) throw std::runtime_error("elementwise: shapes differ");
    Val out = matrix(m.r, m.c);
    for (std::size_t i = 0; i < m.r; ++i)
        for (std::size_t j = 0; j < m.c; ++j) out.v[i * m.c + j] = f(a.at(i, j), b.at(i, j));
    return out;
}
template <class F>
Val map(const Val& a, F f) {
    Val out = a;
    if (a.tag == Val::Tag::OnesCol || a.tag == Val::Tag::OnesRow) out = scalar(1);
    for (double& x : out.v) x = f(x);
    return out;
}
Val transpose(const Val& a) {
    if (a.tag == Val::Tag::OnesCol) return Val{0, 0, {}, Val::Tag::OnesRow};
    if (a.tag != Val::Tag::Matrix) return a;
    Val out = matrix(a.c, a.r);
    for (std::size_t i = 0; i < a.r; ++i)
        for (std::size_t j = 0; j < a.c; ++j) out.v[j * a.r + i] = a.v[i * a.c + j];
    return out;
}
Val product(const Val& a0, const Val& b0) {  // "·": a matrix product, or a scalar factor
    if (a0.tag == Val::Tag::Scalar || b0.tag == Val::Tag::Scalar)
        return elementwise(a0, b0, [](double x, double y) { return x * y; });
    Val a = a0, b = b0;
    if (b.tag == Val::Tag::OnesCol) b = matrix(a.c, 1, 1.0);
    if (a.tag == Val::Tag::OnesRow) a = matrix(1, b.r, 1.0);
    if (a.tag != Val::Tag::Matrix || b.tag != Val::Tag::Matrix || a.c != b.r)
        throw std::runtime_error("product: shapes do not chain");
    Val out = matrix(a.r, b.c);
    for (std::size_t i = 0; i < a.r; ++i)
        for (std::size_t k = 0; k < a.c; ++k)
            for (std::size_t j = 0; j < b.c; ++j) out.v[i * b.c + j] += a.v[i * a.c + k] * b.v[k * b.c + j];
    return out;
}
Val reduce(const Val& a, int axis) {  // -1: all
    if (axis < 0) {
        double s = 0;
        for (double x : a.v) s += x;
        return matrix(1, 1, s);
    }
    return axis == 0 ? product(Val{0, 0, {}, Val::Tag::OnesRow}, a) : product(a, Val{0, 0, {}, Val::Tag::OnesCol});
}
double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }
Val g_of(const Val& a, const Val& b) {  // the test's two-argument function g(a, b) = a ⊙ b − b
    return elementwise(elementwise(a, b, [](double x, double y) { return x * y; }), b,
                       [](double x, double y) { return x - y; });
}

// Reads a rendering (either notation) back: sums < products < prefix minus < postfix, left to right.
struct Reader {
    std::string_view s;
    const std::map<std::string, Val>& names;
    std::size_t i = 0;

    void space() {
        while (i < s.size() && s[i] == ' ') ++i;
    }
    bool eat(std::string_view t) {
        space();
        if (s.substr(i).starts_with(t)) {
            i += t.size();
            return true;
        }
        return false;
    }
    [[noreturn]] void fail(std::string_view what) const {
        throw std::runtime_error(std::string(what) + " at " + std::to_string(i) + " in: " + std::string(s));
    }
    Val all() {
        Val v = sum();
        space();
        if (i != s.size()) fail("trailing text");
        return v;
    }
    Val sum() {
        Val v = term();
        for (;;) {
            if (eat("+")) v = elementwise(v, term(), [](double x, double y) { return x + y; });
            else if (eat("−") || eat("-")) v = elementwise(v, term(), [](double x, double y) { return x - y; });
            else return v;
        }
    }
    Val term() {
        Val v = unary();
        for (;;) {
            if (eat("·") || eat(".")) v = product(v, unary());
            else if (eat("⊙") || eat("*")) v = elementwise(v, unary(), [](double x, double y) { return x * y; });
            else if (eat("⊘") || eat("/")) v = elementwise(v, unary(), [](double x, double y) { return x / y; });
            else return v;
        }
    }
    Val unary() {
        if (eat("−") || eat("-")) return map(unary(), [](double x) { return -x; });
        Val v = primary();
        for (;;) {
            if (eat("ᵀ") || eat("^T")) v = transpose(v);
            else if (eat("²") || eat("^2")) v = map(v, [](double x) { return x * x; });
            else return v;
        }
    }
    Val call1(Val (*f)(const Val&)) {
        Val v = f(sum());
        if (!eat(")")) fail("expected )");
        return v;
    }
    Val primary() {
        space();
        if (eat("(")) {
            Val v = sum();
            if (!eat(")")) fail("expected )");
            return v;
        }
        if (eat("|")) {
            Val v = map(sum(), [](double x) { return std::abs(x); });
            if (!eat("|")) fail("expected |");
            return v;
        }
        if (eat("σ(") || eat("sigmoid(")) return call1([](const Val& a) { return map(a, sigmoid); });
        if (eat("abs(")) return call1([](const Val& a) { return map(a, [](double x) { return std::abs(x); }); });
        if (eat("Σ(") || eat("sum(")) return call1([](const Val& a) { return reduce(a, -1); });
        if (eat("colsum(")) return call1([](const Val& a) { return reduce(a, 0); });
        if (eat("rowsum(")) return call1([](const Val& a) { return reduce(a, 1); });
        if (eat("g(")) {
            Val a = sum();
            if (!eat(",")) fail("expected ,");
            Val b = sum();
            if (!eat(")")) fail("expected )");
            return g_of(a, b);
        }
        const std::size_t start = i;
        if (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) != 0)) {
            while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) != 0 || s[i] == '.' || s[i] == 'e'))
                ++i;
            const std::string num(s.substr(start, i - start));
            if (num == "1") return Val{0, 0, {}, Val::Tag::OnesCol};
            return scalar(std::stod(num));
        }
        while (i < s.size() && std::isalnum(static_cast<unsigned char>(s[i])) != 0) ++i;
        const auto it = names.find(std::string(s.substr(start, i - start)));
        if (start == i || it == names.end()) fail("unknown token");
        return it->second;
    }
};

struct Gen {
    std::mt19937 rng;
    std::map<std::string, Val> names;
    std::vector<std::unique_ptr<Sym>> keep;  // operands outlive the render() calls

    std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); }
    std::size_t dim() { return 1 + pick(3); }
    const Sym* hold(Sym s) { return keep.emplace_back(std::make_unique<Sym>(std::move(s))).get(); }

    std::pair<Sym, Val> leaf(Shape sh) {
        std::string name = "X";
        name += std::to_string(names.size());
        Val v = matrix(sh.rows(), sh.cols());
        std::uniform_real_distribution<double> u(-1, 1);
        for (double& x : v.v) x = u(rng);
        names[name] = v;
        return {Sym::atom(name, sh), v};
    }
    // An expression of shape sh. `constants`: whether a constant (0, 2, …) may appear in it: not
    // under a product, a transpose or a reduction, where a bare number reads as a scalar factor.
    std::pair<Sym, Val> make(Shape sh, int depth, bool constants) {
        const std::size_t choice = depth <= 0 ? 0 : pick(16);
        static constexpr double factors[] = {-1, 2, 0.5, -3, 0.25};
        auto mul = [](double x, double y) { return x * y; };
        switch (choice) {
            case 1:
                if (constants) {
                    const double c = factors[pick(5)];
                    return {Sym::number(c, sh), scalar(c)};
                }
                return leaf(sh);
            case 2: {
                if (!constants || pick(4) != 0) return leaf(sh);
                return {Sym::zero(sh), scalar(0)};
            }
            case 3: {
                const double c = factors[pick(5)];
                auto [x, v] = make(sh, depth - 1, constants);
                return {tg::sym::scale(c, x, sh), map(v, [c](double e) { return c * e; })};
            }
            case 4: {
                auto [x, v] = make(sh, depth - 1, constants);
                static constexpr tg::Notation neg{"−{0}", "-{0}", tg::Prec::Prefix};
                return {tg::render(neg, {hold(x)}, sh), map(v, [](double e) { return -e; })};
            }
            case 5:
            case 6: {
                auto [a, va] = make(sh, depth - 1, constants);
                auto [b, vb] = make(sh, depth - 1, constants);
                if (choice == 5) return {tg::sym::add(a, b, sh), elementwise(va, vb, std::plus<>())};
                return {tg::sym::sub(a, b, sh), elementwise(va, vb, std::minus<>())};
            }
            case 7: {
                auto [a, va] = make(sh, depth - 1, constants);
                auto [b, vb] = make(sh, depth - 1, constants);
                return {tg::sym::hadamard(a, b, sh), elementwise(va, vb, mul)};
            }
            case 8: {  // a denominator kept away from zero: 2 + σ(·)
                auto [a, va] = make(sh, depth - 1, constants);
                auto [b, vb] = make(sh, depth - 1, constants);
                static constexpr tg::Notation two_plus_sigma{"(2 + σ({0}))", "(2 + sigmoid({0}))", tg::Prec::Atom};
                const Sym den = tg::render(two_plus_sigma, {hold(b)}, sh);
                const Val vden = map(vb, [](double e) { return 2 + sigmoid(e); });
                return {tg::sym::divide(a, den, sh), elementwise(va, vden, std::divides<>())};
            }
            case 9:
            case 10: {  // a product, possibly with transpose flags (the patterns of matmul)
                const std::size_t k = dim();
                const bool ta = pick(2) != 0, tb = pick(2) != 0;
                auto [a, va] = make(ta ? Shape{k, sh.rows()} : Shape{sh.rows(), k}, depth - 1, false);
                auto [b, vb] = make(tb ? Shape{sh.cols(), k} : Shape{k, sh.cols()}, depth - 1, false);
                static constexpr tg::Notation flags[4] = {{"{0} · {1}", "{0} . {1}", tg::Prec::Product},
                                                          {"{0}ᵀ · {1}", "{0}^T . {1}", tg::Prec::Product},
                                                          {"{0} · {1}ᵀ", "{0} . {1}^T", tg::Prec::Product},
                                                          {"{0}ᵀ · {1}ᵀ", "{0}^T . {1}^T", tg::Prec::Product}};
                const Val p = product(ta ? transpose(va) : va, tb ? transpose(vb) : vb);
                if (choice == 10 && !ta && !tb) {  // affine: a · b + c
                    auto [c, vc] = make(sh, depth - 1, false);
                    static constexpr tg::Notation affine{"{0} · {1} + {2}", "{0} . {1} + {2}", tg::Prec::Sum};
                    return {tg::render(affine, {hold(a), hold(b), hold(c)}, sh), elementwise(p, vc, std::plus<>())};
                }
                return {tg::render(flags[(ta ? 1 : 0) + (tb ? 2 : 0)], {hold(a), hold(b)}, sh), p};
            }
            case 11: {
                auto [x, v] = make({sh.cols(), sh.rows()}, depth - 1, false);
                return {tg::sym::transpose(x, sh), transpose(v)};
            }
            case 12: {  // Σ, 1ᵀ·X, X·1 where the shape allows
                if (sh.rows() != 1 && sh.cols() != 1) return make(sh, depth, constants);
                const int axis = sh.rows() == 1 && sh.cols() == 1 && pick(2) == 0 ? -1 : sh.rows() == 1 ? 0 : 1;
                const Shape from = axis < 0 ? Shape{dim(), dim()} : axis == 0 ? Shape{dim(), sh.cols()} : Shape{sh.rows(), dim()};
                auto [x, v] = make(from, depth - 1, false);
                std::vector<int> axes;
                if (axis >= 0) axes.push_back(axis);
                return {tg::sym::reduce(x, axes, sh), reduce(v, axis)};
            }
            case 13: {
                auto [x, v] = make(sh, depth - 1, constants);
                static constexpr tg::Notation sigma{"σ({0})", "sigmoid({0})", tg::Prec::Atom};
                return {tg::render(sigma, {hold(x)}, sh), map(v, sigmoid)};
            }
            case 14: {
                auto [x, v] = make(sh, depth - 1, constants);
                static constexpr tg::Notation square{"{0}²", "{0}^2", tg::Prec::Postfix};
                static constexpr tg::Notation abs{"|{0}|", "abs({0})", tg::Prec::Atom};
                if (pick(2) == 0) return {tg::render(square, {hold(x)}, sh), map(v, [](double e) { return e * e; })};
                return {tg::render(abs, {hold(x)}, sh), map(v, [](double e) { return std::abs(e); })};
            }
            case 15: {
                auto [a, va] = make(sh, depth - 1, constants);
                auto [b, vb] = make(sh, depth - 1, constants);
                return {tg::render_call("g", {hold(a), hold(b)}, sh), g_of(va, vb)};
            }
            default: return leaf(sh);
        }
    }
};

double max_diff(const Val& got, const Val& want) {
    double d = 0;
    for (std::size_t i = 0; i < want.r; ++i)
        for (std::size_t j = 0; j < want.c; ++j) d = std::max(d, std::abs(got.at(i, j) - want.at(i, j)));
    return d;
}

}  // namespace

TEST_CASE("every rendering of a random expression tree parses back to the same value, in both notations") {
    int checked = 0;
    for (std::uint32_t seed = 1; seed <= 600; ++seed) {
        Gen gen{std::mt19937(seed), {}, {}};
        const int depth = 1 + static_cast<int>(seed % 5);
        const Shape sh{gen.dim(), gen.dim()};
        INFO("seed ", seed);  // rerun one tree: set the loop's bounds to it
        auto [tree, want] = gen.make(sh, depth, true);
        if (want.tag == Val::Tag::Matrix && (want.r != sh.rows() || want.c != sh.cols())) FAIL("generator shape");
        for (const bool ascii : {false, true}) {
            const std::string& text = tree.str(ascii);
            const std::string shown = (ascii ? std::string("ascii: ") : std::string("unicode: ")).append(text);
            INFO(shown);
            Val got;
            try {
                got = Reader{text, gen.names}.all();
            } catch (const std::exception& e) {
                FAIL(std::string(e.what()));
            }
            const Val full = want.tag == Val::Tag::Matrix ? want : matrix(sh.rows(), sh.cols(), want.at(0, 0));
            double scale = 1;
            for (double x : full.v) scale = std::max(scale, std::abs(x));
            if (got.tag == Val::Tag::Matrix) REQUIRE((got.r == sh.rows() && got.c == sh.cols()));
            REQUIRE(max_diff(got, full) <= 1e-12 * scale);
            ++checked;
        }
    }
    CHECK(checked == 1200);
}
