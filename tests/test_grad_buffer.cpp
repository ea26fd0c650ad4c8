// GradBuffer and the direct-write path: a cleared buffer receives its leaf's adjoint straight
// from the VJP (MatMul/Affine via vjp_into, others via the engine's copy), and everything that
// reads it — the buffer, tape.grad(), a second backward, another tape — sees what the plain
// accumulate-then-add path gives.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <tapegrad/nn.hpp>
#include <tapegrad/tapegrad.hpp>

#include "op_cases.hpp"

namespace tg = tapegrad;
using tg::Tensor;

namespace {

Tensor<double> rand_t(tg::Shape s, std::mt19937_64& rng) {
    std::uniform_real_distribution<double> u(-1.5, 1.5);
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = u(rng);
    return t;
}

double rel_diff(const Tensor<double>& a, const Tensor<double>& b) {
    REQUIRE(a.shape() == b.shape());
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i])));
    return m;
}

// sum(build(x) ⊙ P) for a fixed random projection P: a scalar with a non-trivial adjoint.
tg::Var<double> projected(tg::Tape<double>& tape, const tg::test::OpCase& c, std::span<const tg::Var<double>> x,
                          std::mt19937_64& rng) {
    tg::Var<double> y = c.build(tape, x);
    return tg::sum(y * tape.constant(rand_t(y.shape(), rng)));
}

}  // namespace

TEST_CASE("a GradBuffer reads zeros after clear(), counts modifications, and adds") {
    tg::GradBuffer<double> b(tg::Shape{2, 3});
    CHECK(b.cleared());
    for (std::size_t i = 0; i < 6; ++i) CHECK(b[i] == 0.0);
    CHECK_FALSE(b.cleared());  // reading wrote the zeros
    const auto v0 = b.version();
    (void)b.tensor();
    CHECK(b.version() == v0);  // reading is not a modification
    b.mutable_tensor()[4] = 7.0;
    CHECK(b.version() > v0);
    b.clear();
    CHECK(b.cleared());
    CHECK(b(1, 1) == 0.0);  // the 7 is gone
    Tensor<double> a(2, 3, {1, 2, 3, 4, 5, 6});
    b.clear();
    b.add(a);  // cleared: a copy
    b.add(a);  // then: a sum
    CHECK(b(1, 2) == 12.0);
    CHECK_THROWS_WITH_AS(b.add(Tensor<double>(3, 2)),
                         "GradBuffer: adding a (3×2) gradient into a buffer of shape (2×3)", tg::Error);
    CHECK(fmt::format("{}", b) == "Tensor(2×3) [[2, 4, 6], [8, 10, 12]]");
    b.resize({2, 3});  // same shape: unchanged
    CHECK(b(0, 0) == 2.0);
    b.resize({1, 1});
    CHECK(b.shape() == tg::Shape{1, 1});
    CHECK(b[0] == 0.0);
}

TEST_CASE("every op row: cleared GradBuffer leaves receive exactly the variables' gradients") {
    // The same graph twice: inputs as variables (adjoints in the arena, read with tape.grad)
    // and as External leaves over cleared buffers (adjoints written into the buffers).
    std::size_t checked = 0;
    for (const auto& c : tg::test::op_cases()) {
        std::mt19937_64 rng(std::hash<std::string_view>{}(c.label) ^ 0x5eed);
        for (int trial = 0; trial < 3; ++trial) {
            CAPTURE(c.label);
            CAPTURE(trial);
            const auto inputs = c.inputs(rng);
            const auto seed = rng();
            tg::Tape<double> tv, te;
            std::vector<tg::Var<double>> vv, ve;
            std::vector<tg::GradBuffer<double>> bufs(inputs.size());
            for (std::size_t i = 0; i < inputs.size(); ++i) {
                vv.push_back(tv.variable(inputs[i]));
                bufs[i].resize(inputs[i].shape());
                bufs[i].mutable_tensor().fill(std::numeric_limits<double>::quiet_NaN());  // must be overwritten
                bufs[i].clear();
                ve.push_back(te.external(inputs[i], &bufs[i]));
            }
            std::mt19937_64 p1(seed), p2(seed);
            tv.backward(projected(tv, c, vv, p1));
            te.backward(projected(te, c, ve, p2));
            for (std::size_t i = 0; i < inputs.size(); ++i) {
                CAPTURE(i);
                const Tensor<double>& want = tv.grad(vv[i]);
                CHECK(rel_diff(bufs[i].tensor(), want) <= 1e-13);
                CHECK(rel_diff(te.grad(ve[i]), want) <= 1e-13);
            }
            ++checked;
        }
    }
    CHECK(checked == 3 * tg::test::op_cases().size());
}

TEST_CASE("vjp_into writes what vjp returns, overwriting (β = 0, garbage never read) or adding") {
    std::mt19937_64 rng(7);
    auto dim = [&] { return std::uniform_int_distribution<std::size_t>(1, 40)(rng); };
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (int trial = 0; trial < 20; ++trial) {
        CAPTURE(trial);
        const std::size_t m = dim(), k = dim(), n = dim();
        for (int flags = 0; flags < 4; ++flags) {
            const tg::MatMul op{(flags & 1) != 0, (flags & 2) != 0};
            CAPTURE(flags);
            const Tensor<double> a = rand_t(op.ta ? tg::Shape{k, m} : tg::Shape{m, k}, rng);
            const Tensor<double> b = rand_t(op.tb ? tg::Shape{n, k} : tg::Shape{k, n}, rng);
            const Tensor<double> y = tg::apply(op, a, b);
            const Tensor<double> g = rand_t(y.shape(), rng);
            Tensor<double> da = Tensor<double>::filled(a.rows(), a.cols(), nan);
            Tensor<double> db = Tensor<double>::filled(b.rows(), b.cols(), nan);
            op.vjp_into(tg::In<0>{}, da, false, g, y, a, b);
            op.vjp_into(tg::In<1>{}, db, false, g, y, a, b);
            CHECK(rel_diff(da, op.vjp(tg::In<0>{}, g, y, a, b)) <= 1e-14);
            CHECK(rel_diff(db, op.vjp(tg::In<1>{}, g, y, a, b)) <= 1e-14);
            const Tensor<double> ra = rand_t(a.shape(), rng);
            Tensor<double> acc = ra;
            op.vjp_into(tg::In<0>{}, acc, true, g, y, a, b);
            CHECK(rel_diff(acc, ra + op.vjp(tg::In<0>{}, g, y, a, b)) <= 1e-14);
        }
        const tg::Affine af;
        const Tensor<double> x = rand_t({m, k}, rng), w = rand_t({k, n}, rng), bias = rand_t({1, n}, rng);
        const Tensor<double> y = tg::apply(af, x, w, bias);
        CHECK(rel_diff(y, tg::matmul(x, w) + bias) <= 1e-14);
        const Tensor<double> g = rand_t(y.shape(), rng);
        Tensor<double> dx = Tensor<double>::filled(m, k, nan), dw = Tensor<double>::filled(k, n, nan);
        af.vjp_into(tg::In<0>{}, dx, false, g, y, x, w, bias);
        af.vjp_into(tg::In<1>{}, dw, false, g, y, x, w, bias);
        CHECK(rel_diff(dx, af.vjp(tg::In<0>{}, g, y, x, w, bias)) <= 1e-14);
        CHECK(rel_diff(dw, af.vjp(tg::In<1>{}, g, y, x, w, bias)) <= 1e-14);
        const Tensor<double> rw = rand_t(w.shape(), rng);
        Tensor<double> acc = rw;
        af.vjp_into(tg::In<1>{}, acc, true, g, y, x, w, bias);
        CHECK(rel_diff(acc, rw + af.vjp(tg::In<1>{}, g, y, x, w, bias)) <= 1e-14);
    }
}

TEST_CASE("the one-pass unary VJPs (vjp_into) agree with vjp, including far in the tails") {
    std::mt19937_64 rng(8);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (std::size_t trial = 0; trial < 10; ++trial) {
        CAPTURE(trial);
        Tensor<double> x = rand_t({1 + trial % 4, 1 + trial}, rng);
        x[0] = trial % 2 ? 40.0 : -300.0;  // where 1 − tanh² and 1 − σ would round to 0
        const Tensor<double> g = rand_t(x.shape(), rng), r = rand_t(x.shape(), rng);
        auto check = [&](const auto& op) {
            const Tensor<double> y = tg::apply(op, x);
            const Tensor<double> want = op.vjp(tg::In<0>{}, g, y, x);
            Tensor<double> d = Tensor<double>::filled(x.rows(), x.cols(), nan);
            op.vjp_into(tg::In<0>{}, d, false, g, y, x);
            CHECK(rel_diff(d, want) <= 1e-15);
            CHECK(d[0] != 0.0);  // the tail value survives (4e^−2|x| or e^−|x|, times g)
            Tensor<double> acc = r;
            op.vjp_into(tg::In<0>{}, acc, true, g, y, x);
            CHECK(rel_diff(acc, r + want) <= 1e-15);
        };
        check(tg::Tanh{});
        check(tg::Sigmoid{});
        check(tg::Softplus{});
        check(tg::LeakyRelu{0.1});
        check(tg::Square{});
        check(tg::Abs{});
        Tensor<double> xp = x;  // sqrt: on positive values
        for (std::size_t i = 0; i < xp.size(); ++i) xp[i] = std::abs(xp[i]) + 0.1;
        std::swap(x, xp);
        check(tg::Sqrt{});
        std::swap(x, xp);
    }
    // MatMul's 1×1 shortcut, both ways.
    const Tensor<double> a(1, 1, {1.5}), b(1, 1, {-2.0}), g(1, 1, {3.0});
    Tensor<double> d(1, 1, {nan});
    tg::MatMul{}.vjp_into(tg::In<0>{}, d, false, g, g, a, b);
    CHECK(d[0] == -6.0);
    tg::MatMul{}.vjp_into(tg::In<1>{}, d, true, g, g, a, b);
    CHECK(d[0] == -1.5);
}

TEST_CASE("every pointwise row's one-pass VJP (vjp_into) writes bitwise what its vjp computes") {
    // pointwise.hpp derives both from one row, whose scalar f′ repeats its ops' order of operations:
    // no tolerance, in double and in float, tails included; a flat row (f′ = 0) has no vjp_into.
    auto run = [](auto zero) {
        using T = decltype(zero);
        (void)zero;
        std::mt19937_64 rng(21);
        std::uniform_real_distribution<double> u(-1.5, 1.5);
        const T nan = std::numeric_limits<T>::quiet_NaN();
        for (std::size_t trial = 0; trial < 6; ++trial) {
            CAPTURE(trial);
            Tensor<T> x(tg::Shape{1 + trial % 3, 2 + trial});
            for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<T>(u(rng));
            x[0] = trial % 2 ? T(40) : T(-30);  // far in the tails of σ and tanh
            Tensor<T> pos = x;                  // sqrt, log, pow: on positive values
            for (std::size_t i = 0; i < pos.size(); ++i) pos[i] = std::abs(pos[i]) + T(0.1);
            Tensor<T> g = x, r = x;
            for (std::size_t i = 0; i < g.size(); ++i) {
                g[i] = static_cast<T>(u(rng));
                r[i] = static_cast<T>(u(rng));
            }
            auto check = [&](const auto& op, const Tensor<T>& at) {
                CAPTURE(op.name);
                const Tensor<T> y = tg::apply(op, at);
                const Tensor<T> want = op.vjp(tg::In<0>{}, g, y, at);
                Tensor<T> d(at.shape());
                for (std::size_t i = 0; i < d.size(); ++i) d[i] = nan;
                op.vjp_into(tg::In<0>{}, d, false, g, y, at);
                Tensor<T> acc = r;
                op.vjp_into(tg::In<0>{}, acc, true, g, y, at);
                for (std::size_t i = 0; i < d.size(); ++i) {
                    CAPTURE(i);
                    CHECK(d[i] == want[i]);
                    CHECK(acc[i] == r[i] + want[i]);
                }
            };
            check(tg::Sigmoid{}, x);
            check(tg::SigmoidGrad{}, x);
            check(tg::Tanh{}, x);
            check(tg::TanhGrad{}, x);
            check(tg::LeakyRelu{0.1}, x);
            check(tg::LeakyRelu{}, x);
            check(tg::Softplus{}, x);
            check(tg::Square{}, x);
            check(tg::Exp{}, x);
            check(tg::Abs{}, x);
            check(tg::Sqrt{}, pos);
            check(tg::Log{}, pos);
            for (double p : {1.0, 2.0, 3.0, -0.5, 0.5}) check(tg::Pow{p}, pos);
        }
    };
    run(0.0);
    run(0.0f);
    auto writes_in_place = [](const auto& op) {
        return requires(Tensor<double>& d) { op.vjp_into(tg::In<0>{}, d, false, d, d, d); };
    };
    CHECK_FALSE(writes_in_place(tg::ReluGrad{}));
    CHECK_FALSE(writes_in_place(tg::LeakyReluGrad{0.1}));
    CHECK_FALSE(writes_in_place(tg::Sign{}));
    CHECK(writes_in_place(tg::Exp{}));
}

TEST_CASE("the elementwise binary VJPs written in place agree with vjp for every broadcast pair") {
    std::mt19937_64 rng(11);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const char* kinds[] = {"mn", "1n", "m1", "11"};
    for (int trial = 0; trial < 6; ++trial) {
        const std::size_t m = 2 + trial % 3, n = 3 + trial % 2;
        auto shape = [&](std::string_view k) -> tg::Shape {
            if (k == "mn") return {m, n};
            if (k == "1n") return {1, n};
            if (k == "m1") return {m, 1};
            return {1, 1};
        };
        for (const char* ka : kinds)
            for (const char* kb : kinds) {
                CAPTURE(trial);
                CAPTURE(ka);
                CAPTURE(kb);
                Tensor<double> a = rand_t(shape(ka), rng), b = rand_t(shape(kb), rng);
                for (std::size_t i = 0; i < b.size(); ++i) b[i] += b[i] >= 0 ? 0.5 : -0.5;  // away from 0 for div
                auto check = [&](const auto& op, auto in, const Tensor<double>& x) {
                    const Tensor<double> y = tg::apply(op, a, b);
                    const Tensor<double> g = rand_t(y.shape(), rng);
                    const Tensor<double> want = tg::reduce_to(op.vjp(in, g, y, a, b), x.shape());
                    Tensor<double> d = Tensor<double>::filled(x.rows(), x.cols(), nan);
                    op.vjp_into(in, d, false, g, y, a, b);
                    CHECK(rel_diff(d, want) <= 1e-14);
                    const Tensor<double> r = rand_t(x.shape(), rng);
                    Tensor<double> acc = r;
                    op.vjp_into(in, acc, true, g, y, a, b);
                    CHECK(rel_diff(acc, r + want) <= 1e-14);
                };
                check(tg::Mul{}, tg::In<0>{}, a);
                check(tg::Mul{}, tg::In<1>{}, b);
                check(tg::Sub{}, tg::In<1>{}, b);
                check(tg::Div{}, tg::In<0>{}, a);
            }
    }
}

TEST_CASE("a parameter used twice in one graph: the second contribution adds into the buffer") {
    std::mt19937_64 rng(3);
    const Tensor<double> x = rand_t({4, 3}, rng), w = rand_t({3, 3}, rng);
    // loss = Σ (x·W·W) ⊙ W-broadcast … W reaches the loss through two matmuls and a mul.
    auto build = [&](tg::Tape<double>& t, tg::Var<double> W) {
        auto h = tg::matmul(tg::matmul(t.constant(x), W), W);
        return tg::sum(tg::tanh(h) * tg::sum_rows(W));
    };
    tg::Tape<double> tv, te;
    auto Wv = tv.variable(w);
    tv.backward(build(tv, Wv));
    tg::GradBuffer<double> buf;
    auto We = te.external(w, &buf, "W");
    te.backward(build(te, We));
    CHECK(te.node(We.id()).adj_in_sink);  // the buffer held W's adjoint: no arena copy, no add pass
    CHECK(rel_diff(buf.tensor(), tv.grad(Wv)) <= 1e-14);
    CHECK(rel_diff(te.grad(We), tv.grad(Wv)) <= 1e-14);
    // Not cleared: a second backward adds; the tape's own adjoint is this backward's only.
    te.backward(build(te, We));
    CHECK(rel_diff(buf.tensor(), tv.grad(Wv) * 2.0) <= 1e-14);
    CHECK(rel_diff(te.grad(We), tv.grad(Wv)) <= 1e-14);
    // Cleared again: written afresh.
    buf.clear();
    te.backward(build(te, We));
    CHECK(rel_diff(buf.tensor(), tv.grad(Wv)) <= 1e-14);
}

TEST_CASE("one buffer on one tape twice (a module applied twice): both leaves' gradients are kept apart") {
    std::mt19937_64 rng(4);
    const Tensor<double> x1 = rand_t({5, 3}, rng), x2 = rand_t({2, 3}, rng), w = rand_t({3, 2}, rng);
    tg::GradBuffer<double> buf;
    tg::Tape<double> t;
    auto W1 = t.external(w, &buf, "W");
    auto l1 = tg::sum(tg::square(tg::matmul(t.constant(x1), W1)));
    auto W2 = t.external(w, &buf, "W");
    auto l2 = tg::sum(tg::exp(tg::matmul(t.constant(x2), W2)));
    t.backward(l1 + l2);
    tg::Tape<double> r;
    auto V1 = r.variable(w), V2 = r.variable(w);
    r.backward(tg::sum(tg::square(tg::matmul(r.constant(x1), V1))) + tg::sum(tg::exp(tg::matmul(r.constant(x2), V2))));
    CHECK(rel_diff(t.grad(W1), r.grad(V1)) <= 1e-14);
    CHECK(rel_diff(t.grad(W2), r.grad(V2)) <= 1e-14);
    CHECK(rel_diff(buf.tensor(), r.grad(V1) + r.grad(V2)) <= 1e-14);
}

TEST_CASE("tape.grad of a leaf written into its buffer: a snapshot while the buffer is unchanged, an Error after") {
    std::mt19937_64 rng(5);
    const Tensor<double> x = rand_t({3, 4}, rng), w = rand_t({4, 2}, rng);
    tg::GradBuffer<double> buf;
    tg::Tape<double> a, b;
    auto Wa = a.external(w, &buf, "W");
    a.backward(tg::sum(tg::matmul(a.constant(x), Wa)));
    auto Wb = b.external(w, &buf, "W");
    b.backward(tg::sum(tg::matmul(b.constant(x), Wb)));  // buffer not cleared: b adds
    CHECK_THROWS_WITH_AS(a.grad(Wa),
                         "grad: the gradient of 'W' was written into its cleared gradient buffer, which has "
                         "changed since (cleared, updated, or added to by another backward()); read tape.grad() "
                         "before that, or read the buffer",
                         tg::Error);
    CHECK(rel_diff(b.grad(Wb), tg::matmul(x, Tensor<double>::filled(3, 2, 1.0), true, false)) <= 1e-14);

    // Read before the buffer changes: the snapshot stays.
    buf.clear();
    tg::Tape<double> c;
    auto Wc = c.external(w, &buf, "W");
    c.backward(tg::sum(tg::matmul(c.constant(x), Wc)));
    const Tensor<double> snap = c.grad(Wc);
    const Tensor<double>& kept = c.grad(Wc);
    buf.clear();
    buf.mutable_tensor().fill(42.0);
    CHECK(rel_diff(kept, snap) == 0.0);
    CHECK(rel_diff(snap, tg::matmul(x, Tensor<double>::filled(3, 2, 1.0), true, false)) <= 1e-14);
}

TEST_CASE("anomaly mode catches an overflow that a VJP writes straight into a cleared buffer") {
    // loss = Σ (c·W) ⊙ P with c, P ≈ 1e200 and W ≈ 1e-300: every forward value and ∂loss/∂(c·W)
    // = P are finite, but ∂loss/∂W = cᵀ·P ≈ 1e400 overflows in the GEMM that MatMul runs into
    // the buffer itself.
    tg::Tape<double> t;
    t.set_anomaly_mode(true);
    const Tensor<double> c = Tensor<double>::filled(2, 2, 1e200), p = Tensor<double>::filled(2, 2, 1e200);
    const Tensor<double> w = Tensor<double>::filled(2, 2, 1e-300);
    tg::GradBuffer<double> buf;
    auto W = t.external(w, &buf, "W");
    auto loss = tg::sum(tg::matmul(t.constant(c), W) * t.constant(p));
    REQUIRE(std::isfinite(loss.item()));
    try {
        t.backward(loss);
        FAIL("no anomaly raised");
    } catch (const tg::Error& e) {
        const std::string m = e.what();
        CAPTURE(m);
        CHECK(m.find("anomaly: the VJP of 'matmul' produced +Inf at (0, 0) in the adjoint of its input 1") == 0);
        CHECK(m.find("the input: variable W (2×2)") != std::string::npos);
    }
}

TEST_CASE("nn: zero_grad costs nothing, and a parameter the loss does not reach reads zero") {
    namespace nn = tapegrad::nn;
    nn::Rng rng(9);
    nn::Linear<double> used(3, 2, rng, {}, 0), unused(3, 2, rng, {}, 1);
    nn::SGD<double> opt({&used.weight(), &used.bias(), &unused.weight(), &unused.bias()},
                        {.lr = 0.1, .weight_decay = 0.5});
    std::mt19937_64 g(1);
    const Tensor<double> x = rand_t({4, 3}, g);
    const Tensor<double> before = unused.weight().value;
    for (int step = 0; step < 3; ++step) {
        tg::Tape<double> t;
        (void)unused(t, t.constant(x));  // on the tape, but not on the way to the loss
        t.backward(tg::sum(tg::square(used(t, t.constant(x)))));
        for (std::size_t i = 0; i < 6; ++i) CHECK(unused.weight().grad[i] == 0.0);
        opt.step();
        opt.zero_grad();
        CHECK(used.weight().grad.cleared());
        for (std::size_t i = 0; i < 6; ++i) CHECK(used.weight().grad[i] == 0.0);
    }
    // Weight decay alone moved the unused weights: w ← w − lr·λ·w, three times.
    for (std::size_t i = 0; i < 6; ++i)
        CHECK(unused.weight().value[i] == doctest::Approx(before[i] * std::pow(1 - 0.1 * 0.5, 3)).epsilon(1e-14));
}

TEST_CASE("explain accepts a parameter, and finds the leaf this tape recorded for it") {
    namespace nn = tapegrad::nn;
    nn::Parameter<double> w(Tensor<double>::filled(3, 2, 0.5), "W");
    nn::Parameter<double> unused(Tensor<double>::filled(3, 2, 0.5), "U");
    tg::Tape<double> t;
    auto X = t.constant(Tensor<double>::filled(4, 3, 1.0), "X");
    auto W = w.var(t);
    auto A = tg::matmul(X, W).named("A");
    auto E = tg::sum(tg::square(A)).named("E");
    t.backward(E);
    const std::string by_var = t.explain(W);
    CHECK(by_var.find("∂E/∂W = Xᵀ · ∂E/∂A") != std::string::npos);
    CHECK(t.explain(w) == by_var);
    CHECK(t.explain(w, E) == by_var);
    CHECK(t.explain(w.grad, {.ascii = true}) == t.explain(W, {.ascii = true}));
    CHECK_THROWS_WITH_AS(t.explain(unused), "explain: parameter 'U' was not used on this tape", tg::Error);
    // After a reset the earlier leaf is gone, as its Var is.
    t.reset();
    CHECK_THROWS_WITH_AS(t.explain(w, E), "explain: parameter 'W' was not used on this tape", tg::Error);
    CHECK_THROWS_WITH_AS(t.explain(w.grad), "explain: the parameter of this gradient buffer was not used on this tape", tg::Error);
}

TEST_CASE("a parameter changed in place between forward and backward is an Error naming it") {
    namespace nn = tapegrad::nn;
    nn::Parameter<double> w(Tensor<double>::filled(2, 2, 1.0), "W");
    const Tensor<double> x = Tensor<double>::filled(3, 2, 1.0);
    {
        tg::Tape<double> t;
        auto loss = tg::sum(tg::matmul(t.constant(x), w.var(t)));
        w.mutable_value()(0, 0) = 7.0;  // the public mutable path: counts as a modification
        CHECK_THROWS_WITH_AS(t.backward(loss), doctest::Contains("backward: parameter 'W' was modified in place after it was recorded"), tg::Error);
        CHECK(w.grad.cleared());  // nothing was written
    }
    // An optimiser step after backward, then a fresh recording: fine, step after step.
    nn::SGD<double> opt({&w}, {.lr = 0.1});
    for (int step = 0; step < 3; ++step) {
        tg::Tape<double> t;
        auto loss = tg::sum(tg::matmul(t.constant(x), w.var(t)));
        t.backward(loss);
        CHECK(w.grad[0] == 3.0);
        opt.step();
        opt.zero_grad();
        // The same tape re-recorded after the step is fine as well...
        t.reset();
        auto again = tg::sum(tg::matmul(t.constant(x), w.var(t)));
        t.backward(again);
        opt.zero_grad();
        // ...but a second backward of the old recording after a step is not.
        opt.step();
        CHECK_THROWS_WITH_AS(t.backward(again), doctest::Contains("parameter 'W'"), tg::Error);
        opt.zero_grad();
    }
    CHECK(w.value(0, 1) == doctest::Approx(1.0 - 3 * 0.1 * 3.0).epsilon(1e-12));  // the second steps had zero gradients
    // A raw buffer: whoever changes the value says so with value_changed().
    Tensor<double> v = Tensor<double>::filled(2, 2, 1.0);
    tg::GradBuffer<double> gv;
    tg::Tape<double> t;
    auto loss = tg::sum(tg::square(t.external(v, &gv, "V")));
    v[0] = 2.0;
    gv.value_changed();
    CHECK_THROWS_WITH_AS(t.backward(loss), doctest::Contains("parameter 'V'"), tg::Error);
}
