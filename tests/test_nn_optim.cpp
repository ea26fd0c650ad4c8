// Optimisers and schedules against the torch.optim documentation formulas, written out by hand
// below for three steps with fixed gradients, and against values printed by torch 1.13
// (Debian's python3-torch) for the same parameters and gradients in float64.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/nn/checkpoint.hpp>
#include <tapegrad/nn/clip.hpp>
#include <tapegrad/nn/optim.hpp>

#include "test_errors.hpp"

namespace tg = tapegrad;
namespace nn = tapegrad::nn;

namespace {

const std::vector<double> kStart = {1.0, -2.0, 0.5};
const std::vector<std::vector<double>> kGrads = {{0.1, -0.2, 0.3}, {-0.5, 0.4, 0.05}, {0.2, 0.2, -0.1}};

nn::Parameter<double> make_param() { return {tg::Tensor<double>(1, 3, {1.0, -2.0, 0.5}), "p"}; }

// Runs the optimiser for the three fixed gradients; returns the parameter.
template <class Opt, class Options>
std::vector<double> run(Options o) {
    auto p = make_param();
    Opt opt({&p}, o);
    for (const auto& g : kGrads) {
        for (std::size_t i = 0; i < 3; ++i) p.grad.mutable_tensor()[i] = g[i];
        opt.step();
    }
    CHECK(opt.steps() == 3);
    return {p.value[0], p.value[1], p.value[2]};
}

// torch.optim.SGD's documented algorithm, element by element.
std::vector<double> sgd_reference(double lr, double mu, double tau, double wd, bool nesterov) {
    std::vector<double> p = kStart, b(3, 0.0);
    for (std::size_t t = 1; t <= kGrads.size(); ++t)
        for (std::size_t i = 0; i < 3; ++i) {
            double g = kGrads[t - 1][i];
            if (wd != 0) g = g + wd * p[i];
            if (mu != 0) {
                b[i] = t > 1 ? mu * b[i] + (1 - tau) * g : g;
                g = nesterov ? g + mu * b[i] : b[i];
            }
            p[i] = p[i] - lr * g;
        }
    return p;
}

// torch.optim.Adam / AdamW documented algorithm.
std::vector<double> adam_reference(double lr, double b1, double b2, double eps, double wd, bool decoupled,
                                   bool amsgrad) {
    std::vector<double> p = kStart, m(3, 0.0), v(3, 0.0), vmax(3, 0.0);
    for (std::size_t t = 1; t <= kGrads.size(); ++t)
        for (std::size_t i = 0; i < 3; ++i) {
            double g = kGrads[t - 1][i];
            if (decoupled)
                p[i] = p[i] - lr * wd * p[i];
            else if (wd != 0)
                g = g + wd * p[i];
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            // amsgrad: torch keeps the maximum of the raw v and bias-corrects it (its docs write
            // the maximum of the corrected v̂, which differs once t grows; the code is the reference).
            vmax[i] = std::max(vmax[i], v[i]);
            const double mhat = m[i] / (1 - std::pow(b1, double(t)));
            const double vhat = (amsgrad ? vmax[i] : v[i]) / (1 - std::pow(b2, double(t)));
            p[i] = p[i] - lr * mhat / (std::sqrt(vhat) + eps);
        }
    return p;
}

void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol));
}

}  // namespace

TEST_CASE("plain SGD is exactly p minus lr times the gradient") {
    auto p = make_param();
    nn::SGD<double> opt({&p}, {.lr = 0.1});
    for (std::size_t i = 0; i < 3; ++i) p.grad.mutable_tensor()[i] = kGrads[0][i];
    opt.step();
    for (std::size_t i = 0; i < 3; ++i) CHECK(p.value[i] == kStart[i] - 0.1 * kGrads[0][i]);  // bitwise
    check_close(run<nn::SGD<double>>(nn::SGDOptions{.lr = 0.1}), sgd_reference(0.1, 0, 0, 0, false));
    check_close(run<nn::SGD<double>>(nn::SGDOptions{.lr = 0.1}), {1.02, -2.04, 0.47499999999999998});
}

TEST_CASE("plain SGD in float is the same single multiply-subtract per element") {
    nn::Parameter<float> p{tg::Tensor<float>(1, 2, {1.5f, -0.25f}), "p"};
    nn::SGD<float> opt({&p}, {.lr = 0.01});
    p.grad.mutable_tensor()[0] = 0.3f;
    p.grad.mutable_tensor()[1] = -7.0f;
    opt.step();
    CHECK(p.value[0] == 1.5f - 0.01f * 0.3f);
    CHECK(p.value[1] == -0.25f - 0.01f * -7.0f);
}

TEST_CASE("SGD with momentum and dampening follows torch's buffer recursion") {
    const auto got = run<nn::SGD<double>>(nn::SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.1});
    check_close(got, sgd_reference(0.1, 0.9, 0.1, 0, false));
    check_close(got, {1.0404, -2.0322, 0.41914999999999997});
}

TEST_CASE("SGD with Nesterov momentum and weight decay matches the documented update") {
    const auto got =
        run<nn::SGD<double>>(nn::SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true});
    check_close(got, sgd_reference(0.1, 0.9, 0, 0.01, true));
    check_close(got, {1.0549973125509999, -2.0616112251019998, 0.39858923480049996});
}

TEST_CASE("SGD with weight decay alone adds lambda times p to the gradient") {
    const auto got = run<nn::SGD<double>>(nn::SGDOptions{.lr = 0.05, .weight_decay = 0.2});
    check_close(got, sgd_reference(0.05, 0, 0, 0.2, false));
}

TEST_CASE("Nesterov without momentum is rejected") {
    auto p = make_param();
    CHECK_THROWS_AS(nn::SGD<double>({&p}, {.lr = 0.1, .nesterov = true}), tg::Error);
    CHECK_THROWS_AS(nn::SGD<double>({&p}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.5, .nesterov = true}),
                    tg::Error);
}

TEST_CASE("Adam with L2 weight decay matches the documented update and torch") {
    const auto got = run<nn::Adam<double>>(nn::AdamOptions{.lr = 0.01, .weight_decay = 0.1});
    check_close(got, adam_reference(0.01, 0.9, 0.999, 1e-8, 0.1, false, false), 1e-10);
    check_close(got, {0.99247891701289193, -1.9853301190099575, 0.47594411263532582}, 1e-10);
}

TEST_CASE("AdamW decays the weights apart from the gradient, with torch's default 1e-2") {
    const auto got = run<nn::AdamW<double>>(nn::AdamWOptions{.lr = 0.01});
    check_close(got, adam_reference(0.01, 0.9, 0.999, 1e-8, 1e-2, true, false), 1e-10);
    check_close(got, {0.99765692343206236, -1.998255137427551, 0.47826498464501793}, 1e-10);
}

TEST_CASE("Adam with amsgrad keeps the running maximum of the second moment") {
    const auto got = run<nn::Adam<double>>(nn::AdamOptions{.lr = 0.01, .amsgrad = true});
    check_close(got, adam_reference(0.01, 0.9, 0.999, 1e-8, 0, false, true), 1e-10);
    check_close(got, {0.99795549188742783, -1.9988534436331664, 0.47841218641827271}, 1e-10);
}

TEST_CASE("Adam's first step moves every weight by about lr against the gradient's sign") {
    nn::Parameter<float> p{tg::Tensor<float>(1, 3, {0.f, 0.f, 0.f}), "p"};
    nn::Adam<float> opt({&p}, {.lr = 1e-3});
    p.grad.mutable_tensor()[0] = 5.f;
    p.grad.mutable_tensor()[1] = -1e-3f;
    p.grad.mutable_tensor()[2] = 0.f;
    opt.step();
    CHECK(p.value[0] == doctest::Approx(-1e-3).epsilon(1e-4));
    CHECK(p.value[1] == doctest::Approx(1e-3).epsilon(1e-4));
    CHECK(p.value[2] == 0.f);
}

TEST_CASE("Adam's moments never become subnormal: below the smallest normal float they are 0") {
    // One gradient, then zeros: m decays by β1 = 0.9 a step and would pass through the
    // subnormal range (≈ 150 steps of microcode assists per element) on its way to 0.
    nn::Parameter<float> p{tg::Tensor<float>(1, 2, {0.f, 0.f}), "p"};
    nn::Adam<float> opt({&p}, {.lr = 1e-3});
    p.grad.mutable_tensor()[0] = 1e-3f;
    p.grad.mutable_tensor()[1] = -2.f;
    opt.step();
    p.zero_grad();
    bool saw_zero = false;
    for (int step = 0; step < 1200; ++step) {
        opt.step();
        for (const auto& st : opt.state())
            for (std::size_t i = 0; i < 2; ++i) {
                const float v = (*st.tensor)[i];
                CHECK_FALSE(std::fpclassify(v) == FP_SUBNORMAL);
                saw_zero = saw_zero || v == 0.f;
            }
    }
    CHECK(saw_zero);  // m reached 0 (0.9^1200 · 1e-4 is far below 1e-38)
    CHECK(std::isfinite(p.value[0]));
}

TEST_CASE("zero_grad clears every parameter's gradient") {
    auto a = make_param();
    auto b = make_param();
    a.grad.fill(1.0);
    b.grad.fill(2.0);
    nn::SGD<double> opt({&a, &b}, {.lr = 0.1});
    opt.zero_grad();
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(a.grad[i] == 0.0);
        CHECK(b.grad[i] == 0.0);
    }
}

TEST_CASE("StepLR multiplies the learning rate by gamma every step_size epochs") {
    auto p = make_param();
    nn::SGD<double> opt({&p}, {.lr = 0.5});
    nn::StepLR sched(opt, 2, 0.1);
    std::vector<double> lrs;
    for (int e = 0; e < 6; ++e) {
        lrs.push_back(opt.lr());
        sched.step();
    }
    check_close(lrs, {0.5, 0.5, 0.05, 0.05, 0.005, 0.005});
}

TEST_CASE("CosineAnnealingLR follows the closed-form half cosine from lr to eta_min") {
    auto p = make_param();
    nn::Adam<double> opt({&p}, {.lr = 0.1});
    nn::CosineAnnealingLR sched(opt, 4, 0.01);
    std::vector<double> lrs;
    for (int e = 0; e <= 4; ++e) {
        lrs.push_back(opt.lr());
        sched.step();
    }
    const double mid = 0.01 + 0.09 * 0.5;
    check_close(lrs, {0.1, 0.01 + 0.09 * (1 + std::cos(std::numbers::pi / 4)) / 2, mid,
                      0.01 + 0.09 * (1 + std::cos(3 * std::numbers::pi / 4)) / 2, 0.01});
}

// Expected values printed by torch 1.13's clip_grad_norm_ / clip_grad_value_ for the same
// float64 gradients (a: 2×2, b: 1×3).
TEST_CASE("clip_grad_norm and clip_grad_value match torch.nn.utils") {
    auto make = [] {
        auto a = std::make_unique<nn::Parameter<double>>(tg::Tensor<double>(2, 2), "a");
        auto b = std::make_unique<nn::Parameter<double>>(tg::Tensor<double>(1, 3), "b");
        a->grad.mutable_tensor() = tg::Tensor<double>(2, 2, {3, -4, 1, 2});
        b->grad.mutable_tensor() = tg::Tensor<double>(1, 3, {0.5, -0.5, 2});
        return std::pair{std::move(a), std::move(b)};
    };
    struct Case {
        double p, max_norm, total;
        std::vector<double> a, b;
    };
    const double inf = std::numeric_limits<double>::infinity();
    const Case cases[] = {
        {2, 1, 5.873670062235365,
         {0.5107538314987422, -0.6810051086649896, 0.1702512771662474, 0.3405025543324948},
         {0.0851256385831237, -0.0851256385831237, 0.3405025543324948}},
        {1, 2, 13.0,
         {0.46153842603550577, -0.615384568047341, 0.15384614201183525, 0.3076922840236705},
         {0.07692307100591762, -0.07692307100591762, 0.3076922840236705}},
        {inf, 3, 4.0,
         {2.249999437500141, -2.9999992500001875, 0.7499998125000469, 1.4999996250000938},
         {0.37499990625002344, -0.37499990625002344, 1.4999996250000938}},
        {3, 100, 4.7658748637245365, {3, -4, 1, 2}, {0.5, -0.5, 2}},  // below max_norm: untouched
    };
    for (const Case& c : cases) {
        CAPTURE(c.p);
        auto [a, b] = make();
        std::vector<nn::Parameter<double>*> ps{a.get(), b.get()};
        CHECK(nn::clip_grad_norm(ps, c.max_norm, {.norm_type = c.p}) == doctest::Approx(c.total).epsilon(1e-14));
        for (std::size_t i = 0; i < 4; ++i) CHECK(a->grad[i] == doctest::Approx(c.a[i]).epsilon(1e-14));
        for (std::size_t i = 0; i < 3; ++i) CHECK(b->grad[i] == doctest::Approx(c.b[i]).epsilon(1e-14));
    }
    {
        auto [a, b] = make();
        std::vector<nn::Parameter<double>*> ps{a.get()};
        nn::clip_grad_value(ps, 1.5);
        const double want[] = {1.5, -1.5, 1.0, 1.5};
        for (std::size_t i = 0; i < 4; ++i) CHECK(a->grad[i] == want[i]);
    }
    {  // a cleared gradient counts as zero and stays cleared; bad arguments and NaN norms are Errors
        auto [a, b] = make();
        b->zero_grad();
        std::vector<nn::Parameter<double>*> ps{a.get(), b.get()};
        CHECK(nn::clip_grad_norm(ps, 1.0) == doctest::Approx(std::sqrt(30.0)).epsilon(1e-14));
        CHECK(b->grad.cleared());
        CHECK_THROWS_WITH_AS(nn::clip_grad_norm(ps, -1.0), "clip_grad_norm: invalid max_norm -1", tg::Error);
        CHECK_THROWS_WITH_AS(nn::clip_grad_norm(ps, 1.0, {.norm_type = 0.5}),
                             "clip_grad_norm: norm_type must be ≥ 1 or infinity, not 0.5", tg::Error);
        a->grad.mutable_tensor()[0] = std::nan("");
        CHECK_THROWS_WITH_AS(nn::clip_grad_norm(ps, 1.0, {.error_if_nonfinite = true}),
                             "clip_grad_norm: the total 2-norm of the gradients is nan", tg::Error);
    }
}

// ---- every option is checked, NaN and infinities included (issue 16, defect 9) -----------------

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();


// `set(value)` builds the optimiser (or schedule) with one option set to `value`; each bad value
// must raise an Error "<who>: invalid <option> <value>".
void check_rejects(const std::string& who, const std::string& option, std::initializer_list<double> bad, auto&& set) {
    for (double v : bad) {
        const std::string want = fmt::format("{}: invalid {} {}", who, option, v);
        CAPTURE(want);
        const std::string e = error_of([&] { set(v); });
        CHECK(e.rfind(want, 0) == 0);
    }
}

}  // namespace

TEST_CASE("SGD rejects NaN, infinite and negative options, naming the option and the value") {
    auto p = make_param();
    std::vector<nn::Parameter<double>*> ps{&p};
    check_rejects("SGD", "lr", {kNaN, kInf, -kInf, -0.1}, [&](double v) { nn::SGD<double>(ps, {.lr = v}); });
    check_rejects("SGD", "momentum", {kNaN, kInf, -kInf, -0.5},
                  [&](double v) { nn::SGD<double>(ps, {.momentum = v}); });
    check_rejects("SGD", "dampening", {kNaN, kInf, -kInf, -0.5, 1.5},
                  [&](double v) { nn::SGD<double>(ps, {.momentum = 0.9, .dampening = v}); });
    check_rejects("SGD", "weight_decay", {kNaN, kInf, -kInf, -1e-4},
                  [&](double v) { nn::SGD<double>(ps, {.weight_decay = v}); });
    // The edges of each range are accepted.
    CHECK_NOTHROW(nn::SGD<double>(ps, {.lr = 0, .momentum = 0, .dampening = 1, .weight_decay = 0}));
    CHECK_NOTHROW(nn::SGD<double>(ps, {.lr = 10, .momentum = 0.99, .dampening = 0, .weight_decay = 1}));
}

TEST_CASE("Adam and AdamW reject NaN, infinite and out-of-range options, naming the option and the value") {
    auto p = make_param();
    std::vector<nn::Parameter<double>*> ps{&p};
    check_rejects("Adam", "lr", {kNaN, kInf, -kInf, -1e-3}, [&](double v) { nn::Adam<double>(ps, {.lr = v}); });
    check_rejects("Adam", "beta1", {kNaN, kInf, -kInf, -0.1, 1.0}, [&](double v) { nn::Adam<double>(ps, {.beta1 = v}); });
    check_rejects("Adam", "beta2", {kNaN, kInf, -kInf, -0.1, 1.0}, [&](double v) { nn::Adam<double>(ps, {.beta2 = v}); });
    check_rejects("Adam", "eps", {kNaN, kInf, -kInf, -1e-8}, [&](double v) { nn::Adam<double>(ps, {.eps = v}); });
    check_rejects("Adam", "weight_decay", {kNaN, kInf, -kInf, -0.01},
                  [&](double v) { nn::Adam<double>(ps, {.weight_decay = v}); });
    check_rejects("AdamW", "lr", {kNaN, kInf, -kInf, -1e-3}, [&](double v) { nn::AdamW<double>(ps, {.lr = v}); });
    check_rejects("AdamW", "beta1", {kNaN, kInf, -kInf, -0.1, 1.0}, [&](double v) { nn::AdamW<double>(ps, {.beta1 = v}); });
    check_rejects("AdamW", "beta2", {kNaN, kInf, -kInf, -0.1, 1.0}, [&](double v) { nn::AdamW<double>(ps, {.beta2 = v}); });
    check_rejects("AdamW", "eps", {kNaN, kInf, -kInf, -1e-8}, [&](double v) { nn::AdamW<double>(ps, {.eps = v}); });
    check_rejects("AdamW", "weight_decay", {kNaN, kInf, -kInf, -0.01},
                  [&](double v) { nn::AdamW<double>(ps, {.weight_decay = v}); });
    CHECK_NOTHROW(nn::Adam<double>(ps, {.lr = 0, .beta1 = 0, .beta2 = 0, .eps = 0, .weight_decay = 0}));
}

TEST_CASE("set_lr rejects NaN, infinite and negative rates and leaves the rate unchanged") {
    auto p = make_param();
    nn::SGD<double> sgd({&p}, {.lr = 0.5});
    check_rejects("SGD", "lr", {kNaN, kInf, -kInf, -0.5}, [&](double v) { sgd.set_lr(v); });
    CHECK(sgd.lr() == 0.5);
    nn::AdamW<double> adamw({&p});
    check_rejects("AdamW", "lr", {kNaN, kInf, -1.0}, [&](double v) { adamw.set_lr(v); });
    CHECK(adamw.lr() == 1e-3);
    sgd.set_lr(0);
    CHECK(sgd.lr() == 0);
}

TEST_CASE("the schedules reject NaN, infinite and negative factors, naming the option and the value") {
    auto p = make_param();
    nn::SGD<double> sgd({&p}, {.lr = 0.5});
    check_rejects("StepLR", "gamma", {kNaN, kInf, -kInf, -0.1}, [&](double v) { nn::StepLR(sgd, 2, v); });
    check_rejects("CosineAnnealingLR", "eta_min", {kNaN, kInf, -kInf, -0.1},
                  [&](double v) { nn::CosineAnnealingLR(sgd, 10, v); });
    CHECK(sgd.lr() == 0.5);
    CHECK_NOTHROW(nn::StepLR(sgd, 2, 0.0));
    CHECK_NOTHROW(nn::CosineAnnealingLR(sgd, 10, 0.0));
}

// ---- gpttrain: per-parameter step counts, parameter groups, warm-up + cosine schedule ----------

namespace {
tg::Tensor<double> sin_seq(std::size_t rows, std::size_t cols, double a, double b, bool vector = false) {
    tg::Tensor<double> t = vector ? tg::Tensor<double>(tg::Shape{cols}) : tg::Tensor<double>(rows, cols);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = std::sin(a * double(i + 1) + b);
    return t;
}
void set_grad(nn::Parameter<double>& p, const tg::Tensor<double>& g) {
    for (std::size_t i = 0; i < g.size(); ++i) p.grad.mutable_tensor()[i] = g[i];
}
double nanogpt_lr(std::size_t it, std::size_t w, std::size_t d, double base, double min_lr) {
    if (it < w) return base * double(it + 1) / double(w + 1);
    if (it > d) return min_lr;
    const double r = double(it - w) / double(d - w);
    return min_lr + 0.5 * (1.0 + std::cos(std::numbers::pi * r)) * (base - min_lr);
}
}  // namespace

TEST_CASE("AdamW with two parameter groups, a parameter without gradient for two steps and the warm-up cosine "
          "schedule matches torch 1.13 (tests/reference/optim_fixtures.py)") {
    nn::Parameter<double> a{sin_seq(2, 3, 1.0, 0.0), "a"}, b{sin_seq(1, 3, 0.7, 0.2, true), "b"},
        c{sin_seq(2, 2, 1.3, 0.5), "c"};
    nn::AdamW<double> opt({{.params = {&a, &c}, .weight_decay = 0.1}, {.params = {&b}, .lr = 0.02, .weight_decay = 0.0}},
                          {.lr = 0.01, .beta2 = 0.95});
    CHECK(opt.group_count() == 2);
    CHECK(opt.group_of(1) == 0);  // params(): a, c, b
    CHECK(opt.group_of(2) == 1);
    CHECK(opt.group_weight_decay(0) == 0.1);
    nn::WarmupCosineLR sched(opt, {.warmup_iters = 2, .lr_decay_iters = 4, .min_lr = 0.001});
    // torch's param_groups[g]['lr'] before each step (printed by the fixture script)
    const std::vector<double> torch_rates = {0.003333333333333334, 0.006666666666666668, 0.006666666666666668,
                                             0.013333333333333336, 0.010000000000000002, 0.020000000000000004,
                                             0.0055000000000000005, 0.011000000000000001, 0.001, 0.002, 0.001, 0.002};
    std::vector<double> rates;
    for (std::size_t step = 0; step < 6; ++step) {
        rates.push_back(opt.group_lr(0));
        rates.push_back(opt.group_lr(1));
        set_grad(a, sin_seq(2, 3, 0.3 * double(step) + 0.1, 1.0));
        set_grad(b, sin_seq(1, 3, 0.5 * double(step) + 0.2, 0.4, true));
        const bool has_grad = step != 1 && step != 2;  // torch: c.grad = None (here: frozen for the step)
        c.requires_grad(has_grad);
        if (has_grad) set_grad(c, sin_seq(2, 2, 0.9 * double(step) + 0.3, 0.7));
        opt.step();
        sched.step();
    }
    check_close(rates, torch_rates, 1e-15);
    check_close({a.value.data(), a.value.data() + 6},
                {0.8117309164605848, 0.8815293215996208, 0.12177055978078008, -0.7668971662885233,
                 -0.9643836396974454, -0.2847785119525981});
    check_close({b.value.data(), b.value.data() + 3}, {0.729324884218331, 0.9570474961810209, 0.7216343245681447});
    check_close({c.value.data(), c.value.data() + 4},
                {0.9694010975504893, 0.03185399064972356, -0.9571216289395097, -0.5583644769339582});
    // torch's state['step'] per parameter, in params() order a, c, b
    const auto t = opt.param_steps();
    REQUIRE(t.size() == 3);
    CHECK(t[0] == 6);
    CHECK(t[1] == 4);
    CHECK(t[2] == 6);
    CHECK(opt.steps() == 6);
}

TEST_CASE("a parameter frozen for some steps gets Adam's bias correction for its own step count") {
    // p frozen at the first step, q never: after step 2, p has taken one step: its update is a
    // first step's (≈ lr against the gradient's sign), where a shared t = 2 would give lr·(1−β₁)/(1−β₁²)·…
    nn::Parameter<double> p{tg::Tensor<double>(1, 1, {0.0}), "p"}, q{tg::Tensor<double>(1, 1, {0.0}), "q"};
    nn::Adam<double> opt({&p, &q}, {.lr = 0.1});
    p.requires_grad(false);
    q.grad.mutable_tensor()[0] = 1.0;
    opt.step();
    CHECK(p.value[0] == 0.0);
    p.requires_grad(true);
    p.grad.mutable_tensor()[0] = 3.0;
    opt.step();
    CHECK(p.value[0] == doctest::Approx(-0.1).epsilon(1e-9));  // m̂ = g, v̂ = g²: exactly −lr·g/(|g|+ε)
    CHECK(opt.param_steps()[0] == 1);
    CHECK(opt.param_steps()[1] == 2);
}

TEST_CASE("SGD parameter groups use their own lr and weight decay, the options' where a group gives none") {
    nn::Parameter<double> p{tg::Tensor<double>(1, 2, {1.0, 2.0}), "p"}, q{tg::Tensor<double>(1, 1, {4.0}), "q"};
    nn::SGD<double> opt({{.params = {&p}}, {.params = {&q}, .lr = 0.5, .weight_decay = 0.25}},
                        {.lr = 0.1, .weight_decay = 0.0});
    p.grad.fill(1.0);
    q.grad.fill(2.0);
    opt.step();
    CHECK(p.value[0] == doctest::Approx(0.9));
    CHECK(p.value[1] == doctest::Approx(1.9));
    CHECK(q.value[0] == doctest::Approx(4.0 - 0.5 * (2.0 + 0.25 * 4.0)));
    // a schedule scales each group from its own initial rate
    nn::StepLR sched(opt, 1, 0.1);
    sched.step();
    CHECK(opt.group_lr(0) == doctest::Approx(0.01));
    CHECK(opt.group_lr(1) == doctest::Approx(0.05));
    CHECK_THROWS_WITH_AS(opt.set_group_lr(2, 0.1), doctest::Contains("no parameter group 2"), tg::Error);
    nn::Parameter<double> r{tg::Tensor<double>(1, 1, {0.0}), "r"};
    CHECK_THROWS_WITH_AS(nn::SGD<double>({{.params = {&r}}, {.params = {&r}}}, {}), doctest::Contains("listed twice"),
                         tg::Error);
    CHECK_THROWS_WITH_AS(nn::SGD<double>({{.params = {&r}, .weight_decay = -1.0}}, {}),
                         doctest::Contains("weight_decay"), tg::Error);
}

TEST_CASE("adamw_param_groups decays matrices and embedding tables, not biases or LayerNorm parameters") {
    nn::Parameter<double> w{tg::Tensor<double>(4, 3), "W0"}, bias{tg::Tensor<double>(1, 3), "b0"},
        ln{tg::Tensor<double>(tg::Shape{3}), "ln.weight"}, emb{tg::Tensor<double>(10, 3), "wte.weight"};
    const auto g = nn::adamw_param_groups<double>({&w, &bias, &ln, &emb}, 0.1);
    REQUIRE(g.size() == 2);
    CHECK(g[0].params == std::vector<nn::Parameter<double>*>{&w, &emb});
    CHECK(g[1].params == std::vector<nn::Parameter<double>*>{&bias, &ln});
    CHECK(*g[0].weight_decay == 0.1);
    CHECK(*g[1].weight_decay == 0.0);
    nn::AdamW<double> opt(g, {.lr = 1e-3});
    CHECK(opt.group_weight_decay(1) == 0.0);
    const auto only_named_w = nn::adamw_param_groups<double>(
        {&w, &emb}, 0.1, [](const nn::Parameter<double>& p) { return p.name.starts_with("W"); });
    CHECK(only_named_w[0].params == std::vector<nn::Parameter<double>*>{&w});
}

TEST_CASE("WarmupCosineLR follows nanoGPT's get_lr per iteration, then stays at min_lr") {
    auto p = make_param();
    nn::AdamW<double> opt({&p}, {.lr = 6e-4});
    nn::WarmupCosineLR sched(opt, {.warmup_iters = 10, .lr_decay_iters = 50, .min_lr = 6e-5});
    for (std::size_t it = 0; it <= 60; ++it) {
        CHECK(sched.iteration() == it);
        CHECK(opt.lr() == doctest::Approx(nanogpt_lr(it, 10, 50, 6e-4, 6e-5)).epsilon(1e-14));
        sched.step();
    }
    sched.set_iteration(10);
    CHECK(opt.lr() == doctest::Approx(6e-4).epsilon(1e-15));  // the peak, at the end of the warm-up
    sched.set_iteration(30);
    CHECK(opt.lr() == doctest::Approx(6e-5 + 0.5 * (6e-4 - 6e-5)).epsilon(1e-14));  // halfway down
    CHECK_THROWS_WITH_AS(nn::WarmupCosineLR(opt, {.warmup_iters = 5, .lr_decay_iters = 4}),
                         doctest::Contains("lr_decay_iters 4 is below warmup_iters 5"), tg::Error);
}

TEST_CASE("checkpoints keep each parameter's Adam step count and each group's rate; older ones still load") {
    nn::Parameter<double> p{tg::Tensor<double>(1, 2, {1.0, 2.0}), "p"}, q{tg::Tensor<double>(1, 1, {3.0}), "q"};
    nn::AdamW<double> opt({{.params = {&p}}, {.params = {&q}, .lr = 0.5}}, {.lr = 0.1});
    for (int s = 0; s < 3; ++s) {
        q.requires_grad(s != 1);
        p.grad.fill(0.5);
        q.grad.fill(-1.0);
        opt.step();
    }
    q.requires_grad(true);
    opt.set_group_lr(1, 0.25);
    const nn::Archive a = nn::make_checkpoint<double>({&p, &q}, &opt, {});
    CHECK(a.get_u64("optimizer/step/p") == std::vector<std::uint64_t>{3});
    CHECK(a.get_u64("optimizer/step/q") == std::vector<std::uint64_t>{2});

    nn::AdamW<double> fresh({{.params = {&p}}, {.params = {&q}, .lr = 0.5}}, {.lr = 0.1});
    nn::TrainState st;
    nn::restore_checkpoint<double>(nn::Archive::deserialize(a.serialize(), "ck"), {&p, &q}, &fresh, st);
    CHECK(fresh.param_steps()[0] == 3);
    CHECK(fresh.param_steps()[1] == 2);
    CHECK(fresh.group_lr(0) == 0.1);
    CHECK(fresh.group_lr(1) == 0.25);

    // A checkpoint written before per-parameter counts and group rates: every parameter gets the
    // optimiser's count, every group optimizer/lr's rate.
    nn::Archive old;
    for (const auto& [name, e] : a.entries()) {
        if (name.starts_with("optimizer/step/") || name == "optimizer/group_lr") continue;
        using K = nn::Archive::Kind;
        if (e.kind == K::bytes) old.put_string(name, a.get_string(name));
        if (e.kind == K::u64) old.put_u64(name, a.get_u64(name));
        if (e.kind == K::f64 && name.starts_with("optimizer/lr")) old.put_f64(name, a.get_f64(name));
        if (e.kind == K::f64 && !name.starts_with("optimizer/lr")) {
            tg::Tensor<double> t(e.shape);
            a.get(name, t);
            old.put(name, t);
        }
    }
    nn::AdamW<double> older({{.params = {&p}}, {.params = {&q}, .lr = 0.5}}, {.lr = 0.1});
    nn::restore_checkpoint<double>(old, {&p, &q}, &older, st);
    CHECK(older.param_steps()[0] == 3);
    CHECK(older.param_steps()[1] == 3);
    CHECK(older.group_lr(1) == 0.1);

    nn::AdamW<double> one_group({&p, &q}, {.lr = 0.1});  // 1 group: the file has 2
    CHECK_THROWS_WITH_AS(nn::restore_checkpoint<double>(a, {&p, &q}, &one_group, st),
                         doctest::Contains("rates of 2 parameter groups, the optimizer has 1"), tg::Error);
}
