// Functional transforms (core/functional.hpp): grad, value_and_grad, vjp, jvp, jacrev, jacfwd,
// jacobian — against closed forms and central finite differences, in double; jvp over every
// row of the op table; jacrev == jacfwd on random graphs; nesting without perturbation confusion.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <tapegrad/core/functional.hpp>
#include <tapegrad/tapegrad.hpp>

#include "op_cases.hpp"

namespace tg = tapegrad;
using tg::Shape;
using tg::Tensor;
using tg::Var;
using VarSpan = std::span<const Var<double>>;

namespace {

Tensor<double> randn(Shape s, std::mt19937_64& rng) {
    std::normal_distribution<double> n(0.0, 1.0);
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = n(rng);
    return t;
}

double max_rel_diff(const Tensor<double>& a, const Tensor<double>& b) {
    REQUIRE(a.shape() == b.shape());
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        worst = std::max(worst, std::abs(a[i] - b[i]) / std::max({1.0, std::abs(a[i]), std::abs(b[i])}));
    return worst;
}

Tensor<double> scalar(double v) { return Tensor<double>(Shape{1, 1}, {v}); }

}  // namespace

TEST_CASE("grad and value_and_grad: closed forms, on tensors and on Vars") {
    std::mt19937_64 rng(1);
    const Tensor<double> x = randn({3, 4}, rng);
    auto f = [](const Var<double>& v) { return tg::sum(tg::tanh(v)); };
    const Tensor<double> g = tg::grad(f)(x);
    auto [y, g2] = tg::value_and_grad(f)(x);
    double want_y = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double t = std::tanh(x[i]);
        want_y += t;
        CHECK(g[i] == doctest::Approx(1 - t * t).epsilon(1e-14));
        CHECK(g2[i] == g[i]);
    }
    CHECK(y.item() == doctest::Approx(want_y).epsilon(1e-14));

    // Second derivative by nesting: d²/dx² Σ tanh(x) = −2 tanh(x)(1 − tanh²(x)).
    auto gsum = [&](const Var<double>& v) { return tg::sum(tg::grad(f)(v)); };
    const Tensor<double> h = tg::grad(gsum)(x);
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double t = std::tanh(x[i]);
        CHECK(h[i] == doctest::Approx(-2 * t * (1 - t * t)).epsilon(1e-12));
    }
    CHECK_THROWS_WITH_AS(tg::grad([](const Var<double>& v) { return tg::tanh(v); })(x),
                         doctest::Contains("grad: f must return a one-element value"), tg::Error);
}

TEST_CASE("vjp: the pullback is Jᵀ·ct, callable several times; on Vars it is recorded") {
    std::mt19937_64 rng(2);
    const Tensor<double> x = randn({2, 3}, rng), ct1 = randn({2, 3}, rng), ct2 = randn({2, 3}, rng);
    auto f = [](const Var<double>& v) { return tg::sigmoid(v) * 3.0; };
    auto [y, pullback] = tg::vjp(f, x);
    for (const Tensor<double>* ct : {&ct1, &ct2}) {
        const Tensor<double> g = pullback(*ct);
        for (std::size_t i = 0; i < x.size(); ++i) {
            const double s = 1 / (1 + std::exp(-x[i]));
            CHECK(y[i] == doctest::Approx(3 * s).epsilon(1e-14));
            CHECK(g[i] == doctest::Approx((*ct)[i] * 3 * s * (1 - s)).epsilon(1e-13));
        }
    }
    CHECK_THROWS_WITH_AS(pullback(randn({3, 2}, rng)), doctest::Contains("vjp: the cotangent has shape"), tg::Error);

    // On Vars: d/dx ⟨vjp(f, x).pullback(c), 1⟩ = Σ c ⊙ f″(x) for an elementwise f.
    const Tensor<double> d = tg::grad([&](const Var<double>& v) {
        auto [yv, pb] = tg::vjp(f, v);
        return tg::sum(pb(v.tape().constant(ct1)));
    })(x);
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double s = 1 / (1 + std::exp(-x[i]));
        CHECK(d[i] == doctest::Approx(ct1[i] * 3 * s * (1 - s) * (1 - 2 * s)).epsilon(1e-12));
    }
}

TEST_CASE("jvp: J·v against closed forms, and the error for a tangent of the wrong shape") {
    std::mt19937_64 rng(3);
    const Tensor<double> x = randn({3, 3}, rng), v = randn({3, 3}, rng), w = randn({3, 2}, rng);
    // f(x) = tanh(x)·W: J·v = ((1 − tanh²x) ⊙ v)·W.
    auto f = [&](const Var<double>& a) { return tg::matmul(tg::tanh(a), a.tape().constant(w)); };
    auto [y, ydot] = tg::jvp(f, x, v);
    REQUIRE(ydot.shape() == Shape{3, 2});
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 2; ++j) {
            double yy = 0, dd = 0;
            for (std::size_t k = 0; k < 3; ++k) {
                const double t = std::tanh(x(i, k));
                yy += t * w(k, j);
                dd += (1 - t * t) * v(i, k) * w(k, j);
            }
            CHECK(y(i, j) == doctest::Approx(yy).epsilon(1e-14));
            CHECK(ydot(i, j) == doctest::Approx(dd).epsilon(1e-13));
        }
    CHECK_THROWS_WITH_AS(tg::jvp(f, x, randn({2, 3}, rng)), doctest::Contains("jvp: tangent 0 has shape"), tg::Error);
    // A function that ignores its input: J·v = 0.
    auto [y0, d0] = tg::jvp([&](const Var<double>& a) { return a.tape().constant(w); }, x, v);
    for (std::size_t i = 0; i < d0.size(); ++i) CHECK(d0[i] == 0.0);
}

// Every row of the op table: jvp against central differences of the forward pass along v.
// (Every row has a recorded VJP — test_gradgrad differentiates each twice — so none is excluded.)
TEST_CASE("jvp matches central finite differences for every row of the op table") {
    const double h = 1e-6;
    std::size_t checked = 0;
    for (const auto& c : tg::test::op_cases()) {
        CAPTURE(c.label);
        std::mt19937_64 rng(7);
        const std::vector<Tensor<double>> x = c.inputs(rng);
        std::vector<Tensor<double>> v;
        for (const auto& xi : x) v.push_back(randn(xi.shape(), rng));
        auto f = [&](VarSpan xs) { return c.build(xs[0].tape(), xs); };
        auto [y, ydot] = tg::jvp(f, x, v);
        auto forward = [&](double t) {
            tg::Tape<double> tape;
            std::vector<Var<double>> xs;
            for (std::size_t i = 0; i < x.size(); ++i) {
                Tensor<double> xi = x[i].clone(std::pmr::get_default_resource());
                for (std::size_t k = 0; k < xi.size(); ++k) xi[k] += t * v[i][k];
                xs.push_back(tape.variable(xi));
            }
            return c.build(tape, xs).value().clone(std::pmr::get_default_resource());
        };
        const Tensor<double> yp = forward(h), ym = forward(-h);
        Tensor<double> fd(y.shape());
        for (std::size_t k = 0; k < fd.size(); ++k) fd[k] = (yp[k] - ym[k]) / (2 * h);
        CHECK(max_rel_diff(ydot, fd) < 1e-6);
        ++checked;
    }
    CHECK(checked == tg::test::op_cases().size());
}

namespace {
// A random differentiable program of x (m×n) with fan-out: elementwise unary and binary ops,
// a product with a constant, and a final change of shape, so that in and out sizes differ.
Var<double> random_program(std::uint64_t seed, const Var<double>& x) {
    std::mt19937_64 rng(seed);
    tg::Tape<double>& tape = x.tape();
    std::vector<Var<double>> pool{x};
    auto pick = [&] { return pool[std::uniform_int_distribution<std::size_t>(0, pool.size() - 1)(rng)]; };
    const std::size_t n = x.shape().cols();
    const int steps = std::uniform_int_distribution<int>(3, 8)(rng);
    for (int s = 0; s < steps; ++s) {
        Var<double> a = pick(), b = pick();
        switch (std::uniform_int_distribution<int>(0, 7)(rng)) {
            case 0: pool.push_back(tg::tanh(a)); break;
            case 1: pool.push_back(tg::sigmoid(a)); break;
            case 2: pool.push_back(tg::softplus(a)); break;
            case 3: pool.push_back(a * b); break;
            case 4: pool.push_back(a + b * 0.5); break;
            case 5: pool.push_back(tg::matmul(a, tape.constant(randn({n, n}, rng)))); break;
            case 6: pool.push_back(tg::softmax(a)); break;
            default: pool.push_back(tg::square(a) - b); break;
        }
    }
    Var<double> out = pool.back();
    switch (std::uniform_int_distribution<int>(0, 3)(rng)) {
        case 0: return tg::sum_rows(out);
        case 1: return tg::matmul(out, tape.constant(randn({n, n + 2}, rng)));
        case 2: return tg::sum(out);
        default: return out;
    }
}
}  // namespace

TEST_CASE("jacrev == jacfwd == jacobian on random graphs, and they match finite differences") {
    for (std::uint64_t seed = 0; seed < 40; ++seed) {
        CAPTURE(seed);
        std::mt19937_64 rng(seed * 7919 + 1);
        const Tensor<double> x = randn({std::uniform_int_distribution<std::size_t>(1, 3)(rng),
                                        std::uniform_int_distribution<std::size_t>(1, 4)(rng)},
                                       rng);
        auto f = [seed](const Var<double>& v) { return random_program(seed, v); };
        const Tensor<double> jr = tg::jacrev(f)(x), jf = tg::jacfwd(f)(x), j = tg::jacobian(f)(x);
        tg::Tape<double> probe;
        const Shape ys = f(probe.variable(x)).shape();
        REQUIRE(jr.shape().rank() == ys.rank() + 2);
        for (std::size_t k = 0; k < ys.rank(); ++k) CHECK(jr.shape()[k] == ys[k]);
        CHECK(jr.shape()[ys.rank()] == x.shape()[0]);
        CHECK(max_rel_diff(jr, jf) < 1e-12);
        CHECK(max_rel_diff(jr, j) < 1e-12);
        // One column by central differences.
        const std::size_t col = seed % x.size(), m = ys.numel(), n = x.size();
        auto fwd = [&](double t) {
            tg::Tape<double> tp;
            Tensor<double> xp = x.clone(std::pmr::get_default_resource());
            xp[col] += t;
            return f(tp.variable(xp)).value().clone(std::pmr::get_default_resource());
        };
        const Tensor<double> yp = fwd(1e-6), ym = fwd(-1e-6);
        for (std::size_t i = 0; i < m; ++i)
            CHECK(jr[i * n + col] == doctest::Approx((yp[i] - ym[i]) / 2e-6).epsilon(1e-6));
    }
}

TEST_CASE("perturbation confusion: d/dx [x · d/dy (x + y)] at y = x is 1, for grad and for jvp") {
    for (double x0 : {-1.5, 0.0, 0.3, 2.0}) {
        const Tensor<double> x = scalar(x0);
        // With grad inside grad.
        const Tensor<double> a = tg::grad([](const Var<double>& xv) {
            Var<double> inner = tg::grad([&](const Var<double>& yv) { return xv + yv; })(xv);
            return xv * inner;
        })(x);
        CHECK(a.item() == 1.0);
        // With jvp inside grad: the tangent of y ↦ x + y along 1 is 1.
        const Tensor<double> b = tg::grad([](const Var<double>& xv) {
            auto [y, t] = tg::jvp([&](const Var<double>& yv) { return xv + yv; }, xv, scalar(1.0));
            return xv * t;
        })(x);
        CHECK(b.item() == 1.0);
        // And jvp inside jvp: d/dx [x · (d/dy (x·y))(y = x)] = d/dx [x²] = 2x along tangent 1.
        auto [c, cdot] = tg::jvp(
            [](const Var<double>& xv) {
                auto [y, t] = tg::jvp([&](const Var<double>& yv) { return xv * yv; }, xv, scalar(1.0));
                return xv * t;
            },
            x, scalar(1.0));
        CHECK(c.item() == doctest::Approx(x0 * x0));
        CHECK(cdot.item() == doctest::Approx(2 * x0));
    }
}

TEST_CASE("jvp of a gradient is a Hessian-vector product (forward-over-reverse)") {
    std::mt19937_64 rng(5);
    const Tensor<double> x = randn({2, 3}, rng), v = randn({2, 3}, rng), w = randn({3, 3}, rng);
    auto f = [&](const Var<double>& a) {
        return tg::sum(tg::softplus(tg::matmul(a, a.tape().constant(w))) * tg::tanh(a));
    };
    auto [g, hv] = tg::jvp([&](const Var<double>& a) { return tg::grad(f)(a); }, x, v);
    const Tensor<double> want = tg::hvp([&](tg::Tape<double>&, VarSpan xs) { return f(xs[0]); }, x, v);
    CHECK(max_rel_diff(hv, want) < 1e-12);
    CHECK(max_rel_diff(g, tg::grad(f)(x)) < 1e-14);
}

TEST_CASE("BackwardOptions::first_node: nodes before it are not swept: nothing passes through them to their inputs or buffers") {
    std::mt19937_64 rng(6);
    const Tensor<double> p = randn({2, 2}, rng), x = randn({2, 2}, rng);
    tg::GradBuffer<double> gp;
    tg::Tape<double> tape;
    Var<double> pv = tape.external(p, &gp);
    Var<double> h = tg::tanh(pv);
    Var<double> xv = tape.variable(x);
    Var<double> y = tg::sum(h * xv);
    tape.backward(y, tg::BackwardOptions{.first_node = xv.id()});
    for (std::size_t i = 0; i < x.size(); ++i) CHECK(tape.grad(xv)[i] == doctest::Approx(std::tanh(p[i])));
    // h (before the first node) receives its adjoint from the product, but passes nothing on.
    for (std::size_t i = 0; i < x.size(); ++i) CHECK(tape.grad(h)[i] == x[i]);
    CHECK(tape.node(pv.id()).adj.empty());
    for (std::size_t i = 0; i < p.size(); ++i) CHECK(gp.tensor()[i] == 0.0);
    // The same in the recorded reading.
    tape.backward(y, tg::BackwardOptions{.create_graph = true, .first_node = xv.id()});
    CHECK(tape.node(pv.id()).adj_var == tg::kNoNode);
    CHECK(tape.grad_var(xv).value()[3] == doctest::Approx(std::tanh(p[3])));
    for (std::size_t i = 0; i < p.size(); ++i) CHECK(gp.tensor()[i] == 0.0);
    // And from 0, the whole tape: the buffer gets 1 − tanh²(p) ⊙ x.
    tape.backward(y);
    for (std::size_t i = 0; i < p.size(); ++i)
        CHECK(gp.tensor()[i] == doctest::Approx((1 - std::pow(std::tanh(p[i]), 2)) * x[i]));
}
