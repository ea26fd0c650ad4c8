// N-D surfaces of issue 11 (branch ndio): affine at any rank (one GEMM over the flattened leading
// axes, no copy of a contiguous X), nn::Linear on (…, in) through it, and explain() / to_dot /
// anomaly reports on N-D graphs (shapes printed (2×3×4), Σ over axes, permute, reshape, N-D
// element indices) pinned.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include <tapegrad/nn.hpp>
#include <tapegrad/tapegrad.hpp>

#include "test_errors.hpp"

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
using tg::Shape;
using tg::Tensor;

namespace {

Tensor<double> ramp(const Shape& s, double from, double step) {
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = from + step * static_cast<double>(i);
    return t;
}

std::string message_of(auto&& f) {
    try {
        f();
    } catch (const tg::Error& e) {
        return e.what();
    }
    return "<no error>";
}

// A copy of contiguous t with shape s (the same elements in the same order).
template <class T>
Tensor<T> reshaped(const Tensor<T>& t, const Shape& s) {
    Tensor<T> o(s);
    std::copy_n(t.data(), t.size(), o.data());
    return o;
}

}  // namespace

TEST_CASE("affine on (…, k) equals affine on the (M×k) matrix of its rows, values and gradients bitwise") {
    for (const Shape& xs : {Shape{2, 3, 4}, Shape{2, 1, 3, 4}, Shape{1, 2, 2, 1, 4}}) {
        CAPTURE(xs);
        const Tensor<double> x = ramp(xs, -1.0, 0.037), w = ramp(Shape{4, 5}, 0.4, -0.031),
                             b = ramp(Shape{1, 5}, 0.2, 0.1);
        const std::size_t m = xs.numel() / 4;
        tg::Tape<double> nd, flat;
        auto X = nd.variable(x, "X"), W = nd.variable(w, "W"), B = nd.variable(b, "b");
        auto Y = tg::affine(X, W, B);
        CHECK(Y.shape() == xs.with(xs.rank() - 1, 5));
        auto X2 = flat.variable(reshaped(x, Shape{m, 4}), "X"), W2 = flat.variable(w, "W"),
             B2 = flat.variable(b, "b");
        auto Y2 = tg::affine(X2, W2, B2);
        REQUIRE(Y2.shape() == Shape{m, 5});
        for (std::size_t i = 0; i < m * 5; ++i) CHECK(Y.value().data()[i] == Y2.value().data()[i]);
        // A loss that weighs every output differently, so that each gradient entry is distinct.
        const Tensor<double> c = ramp(Y.shape(), 0.5, 0.01);
        nd.backward(tg::sum(Y * nd.constant(c)));
        flat.backward(tg::sum(Y2 * flat.constant(reshaped(c, Shape{m, 5}))));
        const Tensor<double> gx = nd.grad(X), gx2 = flat.grad(X2);
        REQUIRE(gx.shape() == xs);
        for (std::size_t i = 0; i < xs.numel(); ++i) CHECK(gx.data()[i] == gx2.data()[i]);
        CHECK(tg::max_abs_diff(nd.grad(W), flat.grad(W2)) == 0.0);
        CHECK(tg::max_abs_diff(nd.grad(B), flat.grad(B2)) == 0.0);
    }
}

TEST_CASE("affine on a contiguous rank-3 X allocates its output only: no copy of X, one node") {
    const Tensor<float> x = Tensor<float>(Shape{8, 16, 32}), w(Shape{32, 24}), b(Shape{24});
    tg::Tape<float> t3, t2;
    auto X = t3.constant(x), W = t3.constant(w), B = t3.constant(b);
    auto X2 = t2.constant(reshaped(x, Shape{128, 32})), W2 = t2.constant(w), B2 = t2.constant(b);
    const std::size_t before3 = t3.arena().bytes_used(), before2 = t2.arena().bytes_used();
    const std::size_t nodes3 = t3.size();
    auto Y = tg::affine(X, W, B);
    auto Y2 = tg::affine(X2, W2, B2);
    CHECK(Y.shape() == Shape{8, 16, 24});
    CHECK(Y2.shape() == Shape{128, 24});
    CHECK(t3.size() == nodes3 + 1);
    // The (8·16×24) output and a node's bookkeeping (a rank-3 node keeps a little more than a
    // 2-D one), as for the 2-D product of the same rows; a copy of X would add 16 KiB.
    const std::size_t out_bytes = 128 * 24 * sizeof(float), x_bytes = 128 * 32 * sizeof(float);
    CHECK(t2.arena().bytes_used() - before2 >= out_bytes);
    CHECK(t3.arena().bytes_used() - before3 >= out_bytes);
    CHECK(t3.arena().bytes_used() - before3 < out_bytes + 256);
    CHECK(t3.arena().bytes_used() - before3 < t2.arena().bytes_used() - before2 + x_bytes / 4);
}

TEST_CASE("affine's errors name the op and the shapes at every rank") {
    tg::Tape<double> t;
    auto x = t.variable(Tensor<double>(Shape{2, 3, 4}), "x");
    auto w = t.variable(Tensor<double>(Shape{4, 5}), "w");
    CHECK(contains(message_of([&] {
                       (void)tg::affine(x, t.variable(Tensor<double>(Shape{3, 5}), "w3"), t.constant(Tensor<double>(Shape{5})));
                   }),
                   "affine: inner dimensions differ: (2×3×4)·(3×5)"));
    CHECK(contains(message_of([&] { (void)tg::affine(x, w, t.constant(Tensor<double>(Shape{2, 5}))); }),
                   "affine: the bias has shape (2×5); (2×3×4)·(4×5) needs a bias of shape (1×5)"));
    CHECK(contains(message_of([&] { (void)tg::affine(x, w, t.constant(Tensor<double>(Shape{1, 1, 5}))); }),
                   "affine: the bias has shape (1×1×5)"));
    CHECK(contains(message_of([&] {
                       (void)tg::affine(x, t.variable(Tensor<double>(Shape{1, 4, 5}), "w"), t.constant(Tensor<double>(Shape{5})));
                   }),
                   "affine: the weight has shape (1×4×5); it must be a matrix (in×out), X being (2×3×4)"));
}

TEST_CASE("nn::Linear on (…, in) records one affine node and gives (…, out)") {
    nn::Rng rng(5);
    nn::Linear<double> lin(4, 3, rng);
    tg::Tape<double> t;
    auto x = t.constant(ramp(Shape{2, 5, 4}, -1, 0.05), "x");
    const std::size_t before = t.size();
    auto y = lin(t, x);
    CHECK(y.shape() == Shape{2, 5, 3});
    CHECK(t.size() - before == 3);  // W0 and b0 as leaves, then the affine node
    CHECK(contains(tg::to_dot(t), "affine (2×5×3)"));
    // The same rows through a 2-D input give the same values.
    auto x2 = t.constant(ramp(Shape{10, 4}, -1, 0.05));
    auto y2 = lin(t, x2);
    for (std::size_t i = 0; i < 30; ++i) CHECK(y.value().data()[i] == y2.value().data()[i]);
    // The layer's tensor (inference) path too.
    const Tensor<double> yi = lin.infer(ramp(Shape{2, 5, 4}, -1, 0.05));
    REQUIRE(yi.shape() == Shape{2, 5, 3});
    for (std::size_t i = 0; i < 30; ++i) CHECK(yi.data()[i] == y2.value().data()[i]);
}

// ---- explain(), to_dot and anomaly reports on an N-D graph -------------------------------------

TEST_CASE("explain() prints N-D shapes and the N-D ops readably: reshape, permute, Σ over axes, affine") {
    tg::Tape<double> tape;
    auto X = tape.variable(ramp(Shape{2, 3, 4}, -1, 0.1), "X");
    auto W = tape.variable(ramp(Shape{4, 5}, -0.3, 0.05), "W");
    auto b = tape.variable(Tensor<double>(Shape{5}), "b");
    auto A = tg::affine(X, W, b).named("A");
    auto P = tg::permute(A, {2, 0, 1}).named("P");
    auto R = tg::reshape(P, {5, 6}).named("R");
    auto S = tg::sum(tg::tanh(R), {1}, false);  // unnamed: its formula is written out
    auto E = tg::sum(tg::square(S)).named("E");
    tape.backward(E);
    CHECK(tape.explain(X, {.shapes = true}) ==
          "∂E/∂R = reshape(2·Σ_{axis 1}(tanh(R))) ⊙ tanh′(R)    (5×6)\n"
          "∂E/∂P = reshape(∂E/∂R)    (5×2×3)\n"
          "∂E/∂A = permute(∂E/∂P, [1,2,0])    (2×3×5)\n"
          "∂E/∂X = reshape(reshape(∂E/∂A) · Wᵀ)    (2×3×4)");
    CHECK(tape.explain(W, {.ascii = true}) ==
          "dE/dR = reshape(2*sum_{axis 1}(tanh(R))) * tanh'(R)\n"
          "dE/dP = reshape(dE/dR)\n"
          "dE/dA = permute(dE/dP, [1,2,0])\n"
          "dE/dW = reshape(X)^T . reshape(dE/dA)");
}

TEST_CASE("permute prints its axis order in explain(), forward and adjoint (the inverse order)") {
    tg::Tape<double> tape;
    auto X = tape.variable(ramp(Shape{2, 3, 4}, -1, 0.1), "X");
    auto E = tg::sum(tg::tanh(tg::permute(X, {2, 0, 1}))).named("E");  // the permute unnamed: written out
    tape.backward(E);
    CHECK(tape.explain(X) == "∂E/∂X = permute(tanh′(permute(X, [2,0,1])), [1,2,0])");
    CHECK(tape.explain(X, {.ascii = true}) == "dE/dX = permute(tanh'(permute(X, [2,0,1])), [1,2,0])");
    // transpose(x, i, j) is a permute: its order is printed too.
    tg::Tape<double> t2;
    auto Y = t2.variable(ramp(Shape{2, 3, 4}, -1, 0.1), "Y");
    auto F = tg::sum(tg::square(tg::transpose(Y, 0, 2))).named("F");
    t2.backward(F);
    CHECK(contains(t2.explain(Y), "permute(Y, [2,1,0])"));
}

TEST_CASE("to_dot labels every node of an N-D graph with its op and its N-D shape") {
    tg::Tape<double> tape;
    auto X = tape.variable(Tensor<double>(Shape{2, 3, 4}), "X");
    auto P = tg::permute(X, {2, 0, 1}).named("P");
    auto S = tg::sum(P, {0, 2}, true).named("S");
    auto E = tg::sum(tg::reshape(S, {-1})).named("E");
    tape.backward(E);
    const std::string dot = tg::to_dot(tape);
    CHECK(contains(dot, "[label=\"X\\nvariable (2×3×4)\""));
    CHECK(contains(dot, "[label=\"P\\npermute [2,0,1] (4×2×3)\""));
    CHECK(contains(dot, "[label=\"S\\nsum_axes axes 0,2, keepdim (1×2×1)\""));
    CHECK(contains(dot, "reshape (2)\""));
    CHECK(contains(dot, "[label=\"E\\nsum_to (1×1)\""));

    // the other ops with parameters: slice, select, concat, softmax along an axis
    tg::Tape<double> t2;
    auto Y = t2.variable(Tensor<double>(Shape{2, 3, 4}), "Y");
    auto A = tg::slice_axis(Y, 2, 1, 4, 2).named("A");
    auto B = tg::select(Y, 0, 1).named("B");
    auto C = tg::concat({Y, Y}, 1).named("C");
    auto D = tg::softmax(Y, 1).named("D");
    t2.backward(tg::sum(A) + tg::sum(B) + tg::sum(C) + tg::sum(D));
    const std::string d2 = tg::to_dot(t2);
    CHECK(contains(d2, "[label=\"A\\nslice_axis axis 2, 1:4:2 (2×3×2)\""));
    CHECK(contains(d2, "[label=\"B\\nselect axis 0, index 1 (3×4)\""));
    CHECK(contains(d2, "[label=\"C\\nconcat axis 1 (2×6×4)\""));
    CHECK(contains(d2, "[label=\"D\\nsoftmax axis 1 (2×3×4)\""));
}

TEST_CASE("anomaly reports give the N-D index of the first non-finite element") {
    tg::Tape<double> tape;
    tape.set_anomaly_mode(true);
    Tensor<double> y = ramp(Shape{2, 3, 4}, 1, 1);
    y.data()[17] = -1;  // 17 = 1·12 + 1·4 + 1: element (1, 1, 1)
    auto Y = tape.variable(y, "Y");
    const std::string e = message_of([&] { (void)tg::log(Y); });
    CHECK(contains(e, "anomaly: forward of 'log' produced NaN at (1, 1, 1) of its (2×3×4) output (inputs (2×3×4))"));

    Tensor<double> z = ramp(Shape{2, 1, 2, 3}, 1, 1);
    z.data()[10] = 0;  // 10 = 1·6 + 0·6 + 1·3 + 1: element (1, 0, 1, 1)
    auto Z = tape.variable(z, "Z");
    const std::string e2 = message_of([&] { (void)tg::log(Z); });
    CAPTURE(e2);
    CHECK(contains(e2, "anomaly: forward of 'log' produced"));
    CHECK(contains(e2, "at (1, 0, 1, 1) of its (2×1×2×3) output"));
}

// ---- the README's N-D examples ----------------------------------------------------------------

TEST_CASE("the README's N-D first graph prints the explain() output the README shows") {
    tg::Tape<double> tape;
    auto X = tape.constant(tg::randn<double>({8, 5, 16}, /*seed=*/1), "X");
    auto W = tape.variable(tg::randn<double>({16, 4}, 2), "W");
    auto b = tape.variable(tg::Tensor<double>({4}), "b");
    auto A = tg::affine(X, W, b).named("A");
    auto H = tg::tanh(A).named("H");
    auto S = tg::softmax(tg::matmul(H, H, false, true)).named("S");
    auto E = tg::sum(tg::square(tg::mean(S, {0}))).named("E");
    tape.backward(E);
    CHECK(A.shape() == Shape{8, 5, 4});
    CHECK(S.shape() == Shape{8, 5, 5});
    CHECK(tape.explain(W, {.shapes = true}) ==
          "∂E/∂S = 0.125·reshape(2·mean_{axis 0}(S))    (8×5×5)\n"
          "∂E/∂H = (S ⊙ (∂E/∂S − Σ_{axis 2}(∂E/∂S ⊙ S))) · H + (S ⊙ (∂E/∂S − Σ_{axis 2}(∂E/∂S ⊙ S)))ᵀ · H    (8×5×4)\n"
          "∂E/∂A = ∂E/∂H ⊙ tanh′(A)    (8×5×4)\n"
          "∂E/∂W = reshape(X)ᵀ · reshape(∂E/∂A)    (16×4)");
    // And the gradient it explains is right.
    auto f = [](tg::Tape<double>& t, std::span<const tg::Var<double>> v) {
        auto x = t.constant(tg::randn<double>({8, 5, 16}, 1));
        auto h = tg::tanh(tg::affine(x, v[0], v[1]));
        return tg::sum(tg::square(tg::mean(tg::softmax(tg::matmul(h, h, false, true)), {0})));
    };
    CHECK(tg::gradcheck(f, {tg::randn<double>({16, 4}, 2), tg::Tensor<double>({4})}));
}

namespace {
// The README's add-an-op example: y = x ⊙ σ(x), declared for every rank.
struct Swish {
    static constexpr std::string_view name = "swish";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    tg::Shape shape(tg::Shape x) const { return x; }
    template <class T>
    void forward(tg::Tensor<T>& out, const tg::Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] / (1 + std::exp(-x[i]));
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V&, const V& x) const {
        return g * (tg::sigmoid(x) + x * tg::sigmoid_grad(x));
    }
};
struct Swish2d {  // the same without any_rank: a 2-D op
    static constexpr std::string_view name = "swish2d";
    static constexpr std::size_t arity = 1;
    tg::Shape shape(tg::Shape x) const { return x; }
    template <class T>
    void forward(tg::Tensor<T>& out, const tg::Tensor<T>& x) const {
        Swish{}.forward(out, x);
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V& y, const V& x) const {
        return Swish{}.vjp(tg::In<0>{}, g, y, x);
    }
};
}  // namespace

TEST_CASE("the README's user op runs at rank 3 when it declares any_rank, and is refused at rank 3 without") {
    tg::Tape<double> tape;
    auto z = tg::apply(Swish{}, tape.variable(tg::randn<double>({2, 3, 4}, 3), "Z"));
    CHECK(z.shape() == Shape{2, 3, 4});
    auto f = [](tg::Tape<double>&, std::span<const tg::Var<double>> x) { return tg::sum(tg::apply(Swish{}, x[0])); };
    CHECK(tg::gradcheck(f, {tg::randn<double>({2, 3, 4}, 3)}));
    const std::string e = message_of([&] { (void)tg::apply(Swish2d{}, tape.variable(tg::randn<double>({2, 3, 4}, 3))); });
    CHECK(contains(e, "swish2d"));
    CHECK(contains(e, "(2×3×4)"));
}

TEST_CASE("affine refuses X whose flattened rows exceed BLAS's int, without wrapping around") {
    // (2³¹ · 2³¹ · 4 elements wraps to 0 in 64 bits): the row count is checked as it is formed.
    const tg::Sym x = tg::Sym::atom("X", Shape{std::size_t(1) << 31, std::size_t(1) << 31, 3});
    const std::string e = message_of([&] {
        (void)tg::affine(x, tg::Sym::atom("W", Shape{3, 2}), tg::Sym::atom("b", Shape{2}));
    });
    CHECK(contains(e, "affine: (2147483648×2147483648×3)·(3×2) has an extent above 2³¹ − 1"));
    const tg::Sym ok = tg::affine(tg::Sym::atom("X", Shape{4, 1000, 3}), tg::Sym::atom("W", Shape{3, 2}),
                                  tg::Sym::atom("b", Shape{2}));
    CHECK(ok.shape() == Shape{4, 1000, 2});
}
