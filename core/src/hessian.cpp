#include <tapegrad/core/hessian.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "check_common.hpp"

namespace tapegrad {

namespace {

using detail::note;
using detail::random_like;

// φ(x) = f(x) when f is scalar, ⟨w, f(x)⟩ otherwise, and its numeric (first-order) gradient.
struct Scalarised {
    const GradFn& f;
    const Tensor<double>* w = nullptr;  // null when f is scalar
    Tape<double> tape;
    std::vector<Var<double>> vars;

    explicit Scalarised(const GradFn& fn) : f(fn) {}

    Var<double> run(Tape<double>& t, std::span<const Var<double>> x) const {
        Var<double> y = f(t, x);
        t.check(y, "gradgradcheck");
        if (w == nullptr) return y;
        if (y.shape() != w->shape()) fail("gradgradcheck: f returned {} once and {} later", w->shape(), y.shape());
        return inner(y, t.constant(*w));
    }
    std::vector<Tensor<double>> gradient(const std::vector<Tensor<double>>& x) {
        tape.reset();
        vars.clear();
        for (const auto& xi : x) vars.push_back(tape.variable(xi));
        tape.backward(run(tape, vars));
        std::vector<Tensor<double>> g;
        for (const auto& v : vars) g.emplace_back(tape.grad(v));
        return g;
    }
};

}  // namespace

GradgradcheckReport gradgradcheck(const GradFn& f, const std::vector<Tensor<double>>& inputs,
                                  const GradgradcheckOptions& opt) {
    std::mt19937_64 rng(opt.seed);
    GradgradcheckReport rep;
    Scalarised phi(f);

    // The output's shape decides whether f needs a projection.
    Tensor<double> w;
    {
        Tape<double> t;
        std::vector<Var<double>> v;
        for (const auto& xi : inputs) v.push_back(t.variable(xi));
        Var<double> y = f(t, v);
        t.check(y, "gradgradcheck");
        rep.output = y.shape();
    }
    if (rep.output != Shape{1, 1}) {
        w = random_like(rep.output, rng);
        phi.w = &w;
    }

    // Numeric gradient at x, and the recorded gradient's value (the first reading of it).
    const std::vector<Tensor<double>> g0 = phi.gradient(inputs);
    HessianOperator<double> hop([&phi](Tape<double>& t, std::span<const Var<double>> x) { return phi.run(t, x); },
                                inputs);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const Tensor<double>& a = hop.gradient()[i];
        for (std::size_t e = 0; e < a.size(); ++e) {
            const double d = std::abs(a[e] - g0[i][e]) / std::max({1.0, std::abs(a[e]), std::abs(g0[i][e])});
            if (!(d <= rep.first_order_err)) rep.first_order_err = std::isnan(d) ? std::numeric_limits<double>::infinity() : d;
        }
    }
    rep.passed = rep.first_order_err <= opt.rtol;

    std::vector<Tensor<double>> x = inputs;
    std::vector<Tensor<double>> u;
    for (const auto& xi : inputs) u.emplace_back(xi.shape());

    // One direction u along input i (u is zero on every other input): compares H·u with the
    // central difference of the gradient along u, component by component over all inputs.
    auto check_direction = [&](InputReport& r, std::size_t i, double h, std::size_t index) {
        for (std::size_t e = 0; e < x[i].size(); ++e) x[i][e] = inputs[i][e] + h * u[i][e];
        const std::vector<Tensor<double>> gp = phi.gradient(x);
        for (std::size_t e = 0; e < x[i].size(); ++e) x[i][e] = inputs[i][e] - h * u[i][e];
        const std::vector<Tensor<double>> gm = phi.gradient(x);
        x[i] = inputs[i];
        const std::vector<Tensor<double>> hu = hop.apply(u);
        for (std::size_t j = 0; j < inputs.size(); ++j) {
            for (std::size_t e = 0; e < inputs[j].size(); ++e) {
                const double fwd = (gp[j][e] - g0[j][e]) / h, bwd = (g0[j][e] - gm[j][e]) / h;
                if (std::abs(fwd - bwd) > opt.kink_tol * std::max({1.0, std::abs(fwd), std::abs(bwd)})) {
                    ++r.kinks;
                    continue;
                }
                note(r, hu[j][e], (gp[j][e] - gm[j][e]) / (2 * h), index);
            }
        }
    };

    for (std::size_t i = 0; i < inputs.size(); ++i) {
        InputReport r;
        r.input = i;
        r.shape = inputs[i].shape();
        const std::size_t n = inputs[i].size();
        if (n <= opt.max_elementwise_inputs) {
            r.method = "elementwise";
            for (std::size_t k = 0; k < n; ++k) {
                u[i][k] = 1;
                check_direction(r, i, opt.eps * std::max(1.0, std::abs(inputs[i][k])), k);
                u[i][k] = 0;
            }
        } else {
            r.method = "directional";
            double xmax = 0;
            for (std::size_t e = 0; e < n; ++e) xmax = std::max(xmax, std::abs(inputs[i][e]));
            for (int p = 0; p < opt.projections; ++p) {
                u[i] = random_like(r.shape, rng);
                double norm = 0;
                for (std::size_t e = 0; e < n; ++e) norm += u[i][e] * u[i][e];
                norm = std::sqrt(norm);
                for (std::size_t e = 0; e < n; ++e) u[i][e] /= norm;
                check_direction(r, i, opt.eps * std::max(1.0, xmax), 0);
            }
            u[i] = Tensor<double>(r.shape);
        }
        r.passed = r.max_rel_err <= opt.rtol && (r.checked > 0 || r.kinks == 0);
        rep.passed = rep.passed && r.passed;
        rep.inputs.push_back(std::move(r));
    }
    return rep;
}

}  // namespace tapegrad
