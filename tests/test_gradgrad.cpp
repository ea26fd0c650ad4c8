// Gradients of gradients over the whole op library: every row of the op table (op_cases.hpp,
// the same table as the first-order sweep) is differentiated twice through the recorded reading
// and checked against central differences of its first-order gradient, on several random
// shapes; then once more (third order) on one shape per row.
//
// Tolerance 1e-5 (relative, floor 1): the reference is a finite difference of a gradient, not
// of a value. At h = 1e-5 its truncation error is ~h²·f⁗/6 and its rounding error ~ε·|∇f|/h,
// both ~1e-10 for the table's domains; 1e-5 leaves room for the steeper fourth derivatives
// (pow −1.5 near 0.5, log, div by small divisors) without hiding a wrong rule, which errs by O(1).
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/core/hessian.hpp>

#include "op_cases.hpp"

namespace tg = tapegrad;
using tg::Tensor;
using tg::Var;

namespace {

constexpr int kTrials = 8;
constexpr double kTol = 1e-5;

Tensor<double> randn_like(tg::Shape s, std::mt19937_64& rng) {
    std::normal_distribution<double> n(0.0, 1.0);
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = n(rng);
    return t;
}

// ψ(x) = ⟨w, f(x)⟩, a scalar for any f.
tg::GradFn projected(const tg::GradFn& f, const Tensor<double>& w) {
    return [f, w](tg::Tape<double>& t, std::span<const Var<double>> x) {
        return tg::inner(f(t, x), t.constant(w));
    };
}

// T(x)[u, v] along input directions: d/dx ⟨∇⟨∇ψ(x), v⟩, u⟩, by three reverse sweeps, the first
// two recorded.
std::vector<Tensor<double>> third_order(const tg::GradFn& psi, const std::vector<Tensor<double>>& x,
                                        const std::vector<Tensor<double>>& v, const std::vector<Tensor<double>>& u) {
    tg::Tape<double> tape;
    std::vector<Var<double>> xs;
    for (const auto& xi : x) xs.push_back(tape.variable(xi));
    tape.backward(psi(tape, xs), {.create_graph = true});
    Var<double> s;
    for (std::size_t i = 0; i < x.size(); ++i) {
        Var<double> term = tg::inner(tape.grad_var(xs[i]), tape.constant(v[i]));
        s = i == 0 ? term : s + term;
    }
    tape.backward(s, {.create_graph = true});
    Var<double> r;
    for (std::size_t i = 0; i < x.size(); ++i) {
        Var<double> term = tg::inner(tape.grad_var(xs[i]), tape.constant(u[i]));
        r = i == 0 ? term : r + term;
    }
    tape.backward(r);
    std::vector<Tensor<double>> out;
    for (const auto& xi : xs) out.emplace_back(tape.grad(xi));
    return out;
}

}  // namespace

TEST_CASE("every op differentiates twice: the recorded second derivative matches differences of the gradient") {
    std::size_t checked = 0;
    for (const auto& c : tg::test::op_cases()) {
        std::mt19937_64 rng(std::hash<std::string_view>{}(c.label) ^ 0x5eed);
        for (int trial = 0; trial < kTrials; ++trial) {
            auto inputs = c.inputs(rng);
            std::string shapes;
            for (const auto& x : inputs) shapes += fmt::format("{} ", x.shape());
            CAPTURE(c.label);
            CAPTURE(trial);
            CAPTURE(shapes);
            tg::GradgradcheckOptions opt;
            opt.rtol = kTol;
            opt.seed = rng();
            const tg::GradgradcheckReport r = tg::gradgradcheck(c.build, inputs, opt);
            INFO(fmt::format("{}", r));
            CHECK(r.passed);
            CHECK(r.max_rel_err() <= kTol);
            // The recorded reading's first derivative is the numeric reading's, to rounding.
            CHECK(r.first_order_err <= 1e-12);
            for (const auto& in : r.inputs) CHECK(in.checked > 0);
            ++checked;
        }
    }
    CHECK(checked == kTrials * tg::test::op_cases().size());
}

TEST_CASE("every op differentiates three times: the recorded third derivative matches differences of H·v") {
    const double h = 1e-5;
    for (const auto& c : tg::test::op_cases()) {
        std::mt19937_64 rng(std::hash<std::string_view>{}(c.label) ^ 0x3d);
        const auto x = c.inputs(rng);
        CAPTURE(c.label);
        tg::Tape<double> probe;
        std::vector<Var<double>> px;
        for (const auto& xi : x) px.push_back(probe.variable(xi));
        const Tensor<double> w = randn_like(c.build(probe, px).shape(), rng);
        const tg::GradFn psi = projected(c.build, w);

        std::vector<Tensor<double>> u, v;
        for (const auto& xi : x) {
            u.push_back(randn_like(xi.shape(), rng));
            v.push_back(randn_like(xi.shape(), rng));
        }
        const auto t = third_order(psi, x, v, u);
        // [H(x + h·u)·v − H(x − h·u)·v] / 2h
        std::vector<Tensor<double>> xp = x, xm = x;
        for (std::size_t i = 0; i < x.size(); ++i)
            for (std::size_t e = 0; e < x[i].size(); ++e) {
                xp[i][e] += h * u[i][e];
                xm[i][e] -= h * u[i][e];
            }
        const auto hp = tg::hvp(psi, xp, v);
        const auto hm = tg::hvp(psi, xm, v);
        double worst = 0;
        for (std::size_t i = 0; i < x.size(); ++i)
            for (std::size_t e = 0; e < x[i].size(); ++e) {
                const double fd = (hp[i][e] - hm[i][e]) / (2 * h);
                worst = std::max(worst, std::abs(fd - t[i][e]) / std::max({1.0, std::abs(fd), std::abs(t[i][e])}));
            }
        CHECK(worst <= 1e-4);  // FD of a second derivative: one order looser than kTol
    }
}

TEST_CASE("gradgradcheck covers the second-order helpers' own ops, inner and scalar_times") {
    std::mt19937_64 rng(11);
    const Tensor<double> a = randn_like({3, 4}, rng), b = randn_like({3, 4}, rng), s = randn_like({1, 1}, rng);
    auto inner_sq = [](tg::Tape<double>&, std::span<const Var<double>> x) {
        auto i = tg::inner(x[0], x[1]);
        return tg::inner(i, i);  // ⟨a, b⟩², so the second derivative is not constant zero
    };
    CHECK(tg::gradgradcheck(inner_sq, {a, b}).max_rel_err() <= kTol);
    auto scalar_times = [](tg::Tape<double>&, std::span<const Var<double>> x) {
        return tg::apply(tg::detail::ScalarTimes{}, x[0], x[1] * x[1]);
    };
    const tg::GradgradcheckReport r = tg::gradgradcheck(scalar_times, {s, a});
    CHECK(r);
    CHECK(r.max_rel_err() <= kTol);
}

TEST_CASE("create_graph leaves the numeric first-order gradients unchanged and records the gradient as nodes") {
    std::mt19937_64 rng(12);
    const Tensor<double> x0 = randn_like({4, 3}, rng), w0 = randn_like({3, 2}, rng);
    tg::Tape<double> tape;
    auto x = tape.variable(x0), w = tape.variable(w0);
    auto loss = tg::sum(tg::sigmoid(tg::matmul(x, w)));
    tape.backward(loss);
    const Tensor<double> gx = tape.grad(x), gw = tape.grad(w);
    const std::size_t before = tape.size();
    tape.backward(loss, {.create_graph = true});
    CHECK(tape.size() > before);  // the backward pass was recorded
    CHECK(tg::max_abs_diff(tape.grad(x), gx) == 0);
    CHECK(tg::max_abs_diff(tape.grad(w), gw) == 0);
    CHECK(tg::max_abs_diff(tape.grad_var(x).value(), gx) == 0);
    CHECK(tape.grad_var(w).shape() == w0.shape());
    // A plain backward after a recorded one still records nothing.
    const std::size_t after = tape.size();
    tape.backward(loss);
    CHECK(tape.size() == after);
    CHECK_THROWS_AS(tape.grad_var(x), tg::Error);
}

TEST_CASE("a parameter leaf (external) gets its first-order gradient once from a recorded backward") {
    const Tensor<double> w0(2, 2, {0.5, -1.0, 1.5, 0.25});
    tg::GradBuffer<double> grad;
    tg::Tape<double> tape;
    auto w = tape.external(w0, &grad, "W");
    tape.backward(tg::sum(tg::exp(w)), {.create_graph = true});
    for (std::size_t i = 0; i < 4; ++i) CHECK(grad[i] == doctest::Approx(std::exp(w0[i])).epsilon(1e-15));
    // ∂/∂W Σ exp(W) = exp(W) again; the second backward adds it into the storage too.
    auto g = tape.grad_var(w);
    tape.backward(tg::sum(g));
    for (std::size_t i = 0; i < 4; ++i) {
        CHECK(tape.grad(w)[i] == doctest::Approx(std::exp(w0[i])).epsilon(1e-15));
        CHECK(grad[i] == doctest::Approx(2 * std::exp(w0[i])).epsilon(1e-15));
    }
}
