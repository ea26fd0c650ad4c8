#include <tapegrad/core/gradcheck.hpp>

#include <algorithm>
#include <cmath>
#include <random>

#include "check_common.hpp"

namespace tapegrad {

namespace {

using detail::note;
using detail::random_like;

double dot(const Tensor<double>& a, const Tensor<double>& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
}

struct Evaluator {
    const GradFn& f;
    Tape<double> tape;
    std::vector<Var<double>> vars;

    explicit Evaluator(const GradFn& fn) : f(fn) {}

    Var<double> run(const std::vector<Tensor<double>>& x) {
        tape.reset();
        vars.clear();
        for (std::size_t i = 0; i < x.size(); ++i) vars.push_back(tape.variable(x[i]));
        Var<double> y = f(tape, vars);
        tape.check(y, "gradcheck");
        return y;
    }
    // A contiguous heap copy (the output may be a strided view of an input).
    Tensor<double> value(const std::vector<Tensor<double>>& x) {
        return run(x).value().clone(std::pmr::get_default_resource());
    }
};

}  // namespace

GradcheckReport gradcheck(const GradFn& f, const std::vector<Tensor<double>>& inputs,
                          const GradcheckOptions& opt) {
    std::mt19937_64 rng(opt.seed);
    Evaluator ev(f);
    Var<double> y = ev.run(inputs);
    const Shape ys = y.shape();
    const Tensor<double> y0 = y.value().clone(std::pmr::get_default_resource());
    GradcheckReport rep;
    rep.output = ys;

    // Output seeds: unit vectors (full Jacobian) or random projections.
    std::vector<Tensor<double>> seeds;
    if (ys.size() <= opt.max_jacobian_outputs) {
        for (std::size_t k = 0; k < ys.size(); ++k) {
            Tensor<double> e(ys);
            e[k] = 1;
            seeds.push_back(std::move(e));
        }
    } else {
        for (int p = 0; p < opt.projections; ++p) seeds.push_back(random_like(ys, rng));
    }
    // Analytic: seedᵀ·J for every seed and input.
    std::vector<std::vector<Tensor<double>>> analytic(seeds.size());
    for (std::size_t s = 0; s < seeds.size(); ++s) {
        Var<double> yy = ev.run(inputs);
        ev.tape.backward(yy, seeds[s]);
        for (std::size_t i = 0; i < inputs.size(); ++i) analytic[s].emplace_back(ev.tape.grad(ev.vars[i]));
    }

    std::vector<Tensor<double>> x = inputs;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        InputReport r;
        r.input = i;
        r.shape = inputs[i].shape();
        const std::size_t n = inputs[i].size();
        if (n <= opt.max_elementwise_inputs) {
            r.method = "elementwise";
            for (std::size_t e = 0; e < n; ++e) {
                const double x0 = inputs[i][e];
                const double h = opt.eps * std::max(1.0, std::abs(x0));
                x[i][e] = x0 + h;
                Tensor<double> yp = ev.value(x);
                x[i][e] = x0 - h;
                Tensor<double> ym = ev.value(x);
                x[i][e] = x0;
                for (std::size_t s = 0; s < seeds.size(); ++s) {
                    const double fp = dot(seeds[s], yp), fm = dot(seeds[s], ym), f0 = dot(seeds[s], y0);
                    const double fwd = (fp - f0) / h, bwd = (f0 - fm) / h;
                    if (std::abs(fwd - bwd) > opt.kink_tol * std::max({1.0, std::abs(fwd), std::abs(bwd)})) {
                        ++r.kinks;
                        continue;
                    }
                    note(r, analytic[s][i][e], (fp - fm) / (2 * h), e);
                }
            }
        } else {
            r.method = "directional";
            for (int p = 0; p < opt.projections; ++p) {
                Tensor<double> u = random_like(r.shape, rng);
                double norm = std::sqrt(dot(u, u));
                for (std::size_t e = 0; e < n; ++e) u[e] /= norm;
                double xmax = 0;
                for (std::size_t e = 0; e < n; ++e) xmax = std::max(xmax, std::abs(inputs[i][e]));
                const double h = opt.eps * std::max(1.0, xmax);
                for (std::size_t e = 0; e < n; ++e) x[i][e] = inputs[i][e] + h * u[e];
                Tensor<double> yp = ev.value(x);
                for (std::size_t e = 0; e < n; ++e) x[i][e] = inputs[i][e] - h * u[e];
                Tensor<double> ym = ev.value(x);
                x[i] = inputs[i];
                for (std::size_t s = 0; s < seeds.size(); ++s) {
                    const double fp = dot(seeds[s], yp), fm = dot(seeds[s], ym), f0 = dot(seeds[s], y0);
                    const double fwd = (fp - f0) / h, bwd = (f0 - fm) / h;
                    if (std::abs(fwd - bwd) > opt.kink_tol * std::max({1.0, std::abs(fwd), std::abs(bwd)})) {
                        ++r.kinks;
                        continue;
                    }
                    // ⟨w, J·u⟩ (finite differences) against ⟨Jᵀ·w, u⟩ (the tape).
                    note(r, dot(analytic[s][i], u), (fp - fm) / (2 * h), 0);
                }
            }
        }
        r.passed = r.max_rel_err <= opt.rtol && r.checked > 0;
        rep.passed = rep.passed && r.passed;
        rep.inputs.push_back(std::move(r));
    }
    return rep;
}

}  // namespace tapegrad
