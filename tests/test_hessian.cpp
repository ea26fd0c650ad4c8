// Second order against known answers: Hessians in closed form (quadratic form, logistic
// regression), a two-layer MLP's Hessian against finite differences of its gradient, third
// derivatives by differentiating three times, and the misuses the second-order API rejects.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <random>
#include <span>
#include <vector>

#include <tapegrad/core/hessian.hpp>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
using tg::Shape;
using tg::Tensor;
using tg::Var;

namespace {

using Vars = std::span<const Var<double>>;

template <class T = double>
Tensor<T> randn(std::size_t r, std::size_t c, std::mt19937_64& rng, double sd = 1.0) {
    std::normal_distribution<double> n(0.0, sd);
    Tensor<T> t(r, c);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<T>(n(rng));
    return t;
}

// Numeric gradient of a scalar f over all inputs, flattened input by input.
std::vector<double> flat_gradient(const tg::GradFn& f, const std::vector<Tensor<double>>& x) {
    tg::Tape<double> tape;
    std::vector<Var<double>> v;
    for (const auto& xi : x) v.push_back(tape.variable(xi));
    tape.backward(f(tape, v));
    std::vector<double> g;
    for (const auto& vi : v)
        for (double e : tape.grad(vi).span()) g.push_back(e);
    return g;
}

// Central differences of the gradient: column k is [∇f(x + h·eₖ) − ∇f(x − h·eₖ)] / 2h.
Tensor<double> fd_hessian(const tg::GradFn& f, std::vector<Tensor<double>> x, double h = 1e-5) {
    std::size_t n = 0;
    for (const auto& xi : x) n += xi.size();
    Tensor<double> H(n, n);
    std::size_t col = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        for (std::size_t k = 0; k < x[i].size(); ++k, ++col) {
            const double x0 = x[i][k];
            x[i][k] = x0 + h;
            std::vector<double> gp = flat_gradient(f, x);
            x[i][k] = x0 - h;
            std::vector<double> gm = flat_gradient(f, x);
            x[i][k] = x0;
            for (std::size_t r = 0; r < n; ++r) H(r, col) = (gp[r] - gm[r]) / (2 * h);
        }
    }
    return H;
}

double max_abs(const Tensor<double>& a) {
    double m = 0;
    for (double e : a.span()) m = std::max(m, std::abs(e));
    return m;
}

}  // namespace

TEST_CASE("the Hessian of a quadratic form xᵀAx is A + Aᵀ, and its products with v are (A + Aᵀ)v") {
    std::mt19937_64 rng(1);
    const std::size_t n = 5;
    const Tensor<double> A = randn(n, n, rng);  // not symmetric
    const Tensor<double> x = randn(n, 1, rng);
    auto f = [&](tg::Tape<double>& t, Vars v) { return tg::matmul(tg::matmul(v[0], t.constant(A), true), v[0]); };

    const Tensor<double> H = tg::hessian(f, x);
    REQUIRE(H.shape() == Shape{n, n});
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < n; ++j) CHECK(H(i, j) == doctest::Approx(A(i, j) + A(j, i)).epsilon(1e-12));

    for (int trial = 0; trial < 3; ++trial) {
        const Tensor<double> v = randn(n, 1, rng);
        const Tensor<double> hv = tg::hvp(f, x, v);
        REQUIRE(hv.shape() == Shape{n, 1});
        for (std::size_t i = 0; i < n; ++i) {
            double want = 0;
            for (std::size_t j = 0; j < n; ++j) want += (A(i, j) + A(j, i)) * v[j];
            CHECK(hv[i] == doctest::Approx(want).epsilon(1e-12));
        }
    }
}

TEST_CASE("a quadratic form's Hessian-vector product also comes out right in float") {
    std::mt19937_64 rng(2);
    const std::size_t n = 4;
    const Tensor<float> A = randn<float>(n, n, rng);
    const Tensor<float> x = randn<float>(n, 1, rng);
    const Tensor<float> v = randn<float>(n, 1, rng);
    auto f = [&](tg::Tape<float>& t, std::span<const Var<float>> in) {
        return tg::matmul(tg::matmul(in[0], t.constant(A), true), in[0]);
    };
    const Tensor<float> hv = tg::hvp(f, x, v);
    for (std::size_t i = 0; i < n; ++i) {
        double want = 0;
        for (std::size_t j = 0; j < n; ++j) want += double(A(i, j) + A(j, i)) * v[j];
        CHECK(hv[i] == doctest::Approx(want).epsilon(1e-5));
    }
}

TEST_CASE("logistic regression's Hessian is Xᵀ·diag(p(1 − p))·X, from the fused loss and from composed ones") {
    std::mt19937_64 rng(3);
    const std::size_t m = 24, d = 4;
    const Tensor<double> X = randn(m, d, rng);
    Tensor<double> y(m, 1);
    for (std::size_t i = 0; i < m; ++i) y[i] = (X(i, 0) - 0.5 * X(i, 2) + 0.3 * randn(1, 1, rng)[0]) > 0 ? 1.0 : 0.0;
    const Tensor<double> w = randn(d, 1, rng, 0.5);

    // H = Σᵢ pᵢ(1 − pᵢ)·xᵢxᵢᵀ for the summed loss, p = σ(X·w).
    Tensor<double> Hk(d, d);
    for (std::size_t i = 0; i < m; ++i) {
        double z = 0;
        for (std::size_t k = 0; k < d; ++k) z += X(i, k) * w[k];
        const double p = 1 / (1 + std::exp(-z));
        for (std::size_t a = 0; a < d; ++a)
            for (std::size_t b = 0; b < d; ++b) Hk(a, b) += p * (1 - p) * X(i, a) * X(i, b);
    }

    auto fused = [&](tg::Tape<double>& t, Vars v) {
        auto z = tg::matmul(t.constant(X), v[0]);
        return tg::binary_cross_entropy_with_logits(z, t.constant(y)) * double(m);  // mean → sum
    };
    auto softplus_form = [&](tg::Tape<double>& t, Vars v) {
        auto z = tg::matmul(t.constant(X), v[0]);
        return tg::sum(tg::softplus(z) - t.constant(y) * z);
    };
    auto log_sigmoid_form = [&](tg::Tape<double>& t, Vars v) {
        auto z = tg::matmul(t.constant(X), v[0]);
        auto yy = t.constant(y);
        return -tg::sum(yy * tg::log_sigmoid(z) + (1.0 - yy) * tg::log_sigmoid(-z));
    };
    auto sigmoid_form = [&](tg::Tape<double>& t, Vars v) {
        auto p = tg::sigmoid(tg::matmul(t.constant(X), v[0]));
        auto yy = t.constant(y);
        return -tg::sum(yy * tg::log(p) + (1.0 - yy) * tg::log(1.0 - p));
    };

    const Tensor<double> v = randn(d, 1, rng);
    Tensor<double> hv_want(d, 1);
    for (std::size_t a = 0; a < d; ++a)
        for (std::size_t b = 0; b < d; ++b) hv_want[a] += Hk(a, b) * v[b];

    const std::vector<tg::GradFn> forms = {fused, softplus_form, log_sigmoid_form, sigmoid_form};
    const char* names[] = {"binary_cross_entropy_with_logits", "softplus", "log_sigmoid", "sigmoid + log"};
    for (std::size_t k = 0; k < forms.size(); ++k) {
        CAPTURE(names[k]);
        const Tensor<double> H = tg::hessian(forms[k], w);
        CHECK(tg::max_abs_diff(H, Hk) < 1e-10 * std::max(1.0, max_abs(Hk)));
        const Tensor<double> hv = tg::hvp(forms[k], w, v);
        CHECK(tg::max_abs_diff(hv, hv_want) < 1e-10 * std::max(1.0, max_abs(hv_want)));
    }
}

TEST_CASE("a two-layer MLP's Hessian over both weight matrices matches finite differences of its gradient") {
    std::mt19937_64 rng(4);
    const Tensor<double> X = randn(6, 3, rng);
    const Tensor<double> T = randn(6, 2, rng);
    const std::vector<Tensor<double>> params = {randn(3, 4, rng, 0.7), randn(1, 4, rng, 0.3), randn(4, 2, rng, 0.7)};

    auto tanh_net = [&](tg::Tape<double>& t, Vars p) {
        auto h = tg::tanh(tg::matmul(t.constant(X), p[0]) + p[1]);  // bias row broadcast over 6 rows
        return tg::sse_half(tg::matmul(h, p[2]), t.constant(T));
    };
    auto sigmoid_net = [&](tg::Tape<double>& t, Vars p) {
        auto h = tg::sigmoid(tg::matmul(t.constant(X), p[0]) + p[1]);
        return tg::mse(tg::matmul(h, p[2]), t.constant(T));
    };
    for (const tg::GradFn& f : {tg::GradFn(tanh_net), tg::GradFn(sigmoid_net)}) {
        const Tensor<double> H = tg::hessian(f, params);
        REQUIRE(H.shape() == Shape{24, 24});
        const Tensor<double> Hfd = fd_hessian(f, params);
        const double scale = std::max(1.0, max_abs(H));
        CHECK(tg::max_abs_diff(H, Hfd) < 1e-7 * scale);
        // Symmetric, as a Hessian must be: the rows are reverse-over-reverse products.
        double asym = 0;
        for (std::size_t i = 0; i < 24; ++i)
            for (std::size_t j = 0; j < 24; ++j) asym = std::max(asym, std::abs(H(i, j) - H(j, i)));
        CHECK(asym < 1e-12 * scale);
        // The cross block ∂²f/∂W0∂W1 is not zero: the layers interact.
        double cross = 0;
        for (std::size_t i = 0; i < 12; ++i)
            for (std::size_t j = 16; j < 24; ++j) cross = std::max(cross, std::abs(H(i, j)));
        CHECK(cross > 1e-3);
    }
}

TEST_CASE("third derivatives come from differentiating three times: exp(x)·x³, σ(x) and tanh(x)") {
    const Tensor<double> x0(1, 5, {-2.0, -0.7, 0.1, 0.9, 1.6});
    struct Case {
        const char* name;
        Var<double> (*f)(const Var<double>&);
        double (*d3)(double);
    };
    const Case cases[] = {
        {"exp(x)·x³", [](const Var<double>& x) { return tg::exp(x) * x * x * x; },
         [](double x) { return std::exp(x) * (x * x * x + 9 * x * x + 18 * x + 6); }},
        // σ‴ = σ(1 − σ)(1 − 6σ + 6σ²)
        {"σ(x)", [](const Var<double>& x) { return tg::sigmoid(x); },
         [](double x) {
             const double s = 1 / (1 + std::exp(-x));
             return s * (1 - s) * (1 - 6 * s + 6 * s * s);
         }},
        // tanh‴ = (1 − t²)(6t² − 2)
        {"tanh(x)", [](const Var<double>& x) { return tg::tanh(x); },
         [](double x) {
             const double t = std::tanh(x);
             return (1 - t * t) * (6 * t * t - 2);
         }},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        tg::Tape<double> tape;
        auto x = tape.variable(x0, "x");
        // f acts elementwise, so each gradient of Σ f(xᵢ) holds the next derivative at each xᵢ.
        tape.backward(tg::sum(c.f(x)), {.create_graph = true});
        auto d1 = tape.grad_var(x);
        tape.backward(tg::sum(d1), {.create_graph = true});
        auto d2 = tape.grad_var(x);
        tape.backward(tg::sum(d2));
        const Tensor<double>& d3 = tape.grad(x);
        for (std::size_t i = 0; i < x0.size(); ++i) CHECK(d3[i] == doctest::Approx(c.d3(x0[i])).epsilon(1e-10));
    }
}

TEST_CASE("HessianOperator records the gradient once and answers many products consistently") {
    std::mt19937_64 rng(5);
    const Tensor<double> a = randn(3, 2, rng), b = randn(2, 3, rng);
    auto f = [](tg::Tape<double>&, Vars v) { return tg::sum(tg::square(tg::matmul(v[0], v[1]))); };
    tg::HessianOperator<double> op(f, {a, b});
    CHECK(op.inputs() == 2);
    CHECK(op.gradient().size() == 2);
    CHECK(op.value() > 0);
    const Tensor<double> H = op.dense();
    const std::size_t nodes = op.tape().size();
    const std::vector<Tensor<double>> u = {randn(3, 2, rng), randn(2, 3, rng)};
    const std::vector<Tensor<double>> hu1 = op.apply(u);
    const std::vector<Tensor<double>> hu2 = op.apply(u);
    CHECK(op.tape().size() - nodes == 2 * 5);  // per product: 2 constants, 2 inner, 1 add
    for (std::size_t i = 0; i < 2; ++i) CHECK(tg::max_abs_diff(hu1[i], hu2[i]) == 0);
    const std::vector<Tensor<double>> hu3 = tg::hvp(f, {a, b}, {u[0], u[1]});  // one-shot form
    for (std::size_t i = 0; i < 2; ++i) CHECK(tg::max_abs_diff(hu1[i], hu3[i]) < 1e-12);
    // Dense column combination: H·u = Σₖ H[:, k]·uₖ.
    std::vector<double> flat_u;
    for (const auto& t : u)
        for (double e : t.span()) flat_u.push_back(e);
    std::size_t row = 0;
    for (const auto& blk : hu1) {
        for (std::size_t r = 0; r < blk.size(); ++r, ++row) {
            double want = 0;
            for (std::size_t k = 0; k < flat_u.size(); ++k) want += H(row, k) * flat_u[k];
            CHECK(blk[r] == doctest::Approx(want).epsilon(1e-12));
        }
    }
}

TEST_CASE("a function linear in its input has a zero Hessian") {
    const Tensor<double> x(2, 2, {1, 2, 3, 4});
    auto f = [](tg::Tape<double>& t, Vars v) { return tg::sum(tg::matmul(t.constant(Tensor<double>(2, 2, {1, -1, 2, 0})), v[0])); };
    const Tensor<double> H = tg::hessian(f, x);
    CHECK(max_abs(H) == 0);
}

namespace {

// y = x³ whose VJP, in the recorded reading, freezes 3x² as a constant: first derivative right,
// second derivative wrong. gradgradcheck must notice.
struct FrozenCube {
    static constexpr std::string_view name = "frozen_cube";
    static constexpr std::size_t arity = 1;
    Shape shape(Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] * x[i] * x[i];
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V&, const V& x) const {
        if constexpr (tg::is_var<V>::value) {
            Tensor<typename V::value_type> d(x.shape());
            for (std::size_t i = 0; i < d.size(); ++i) d[i] = 3 * x.value()[i] * x.value()[i];
            return g * x.tape().constant(d);
        } else {
            return g * x * x * 3.0;
        }
    }
};

// y = 2x with a VJP that exists for tensors only.
struct TensorOnly {
    static constexpr std::string_view name = "tensor_only";
    static constexpr std::size_t arity = 1;
    Shape shape(Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = 2 * x[i];
    }
    template <class T>
    Tensor<T> vjp(tg::In<0>, const Tensor<T>& g, const Tensor<T>&, const Tensor<T>&) const {
        return tg::scale(g, 2.0);
    }
};

}  // namespace

TEST_CASE("gradgradcheck fails an op whose recorded VJP has the right value but the wrong derivative") {
    const Tensor<double> x(1, 3, {0.5, -1.2, 2.0});
    auto bad = [](tg::Tape<double>&, Vars v) { return tg::sum(tg::apply(FrozenCube{}, v[0])); };
    auto good = [](tg::Tape<double>&, Vars v) { return tg::sum(v[0] * v[0] * v[0]); };
    const tg::GradgradcheckReport rb = tg::gradgradcheck(bad, {x});
    CHECK(rb.first_order_err < 1e-12);  // the first derivative is right…
    CHECK_FALSE(rb);                     // …the second is not
    CHECK(rb.max_rel_err() > 0.1);
    const tg::GradgradcheckReport rg = tg::gradgradcheck(good, {x});
    CHECK(rg);
    CHECK(rg.max_rel_err() < 1e-8);
    CHECK(fmt::format("{}", rb).find("FAIL") != std::string::npos);
}

TEST_CASE("backward with create_graph rejects an op whose VJP runs on tensors only, instead of dropping it") {
    tg::Tape<double> tape;
    auto x = tape.variable(Tensor<double>(1, 2, {1, 2}));
    auto loss = tg::sum(tg::apply(TensorOnly{}, x));
    tape.backward(loss);  // the numeric reading is fine
    CHECK(tape.grad(x)[0] == 2.0);
    CHECK_THROWS_WITH_AS(tape.backward(loss, {.create_graph = true}), doctest::Contains("tensor_only"), tg::Error);
}

TEST_CASE("the second-order helpers reject mismatched directions and non-scalar functions") {
    const Tensor<double> x(2, 2, {1, 2, 3, 4});
    auto f = [](tg::Tape<double>&, Vars v) { return tg::sum(tg::square(v[0])); };
    CHECK_THROWS_WITH_AS(tg::hvp(f, x, Tensor<double>(2, 3)), doctest::Contains("(2×3)"), tg::Error);
    tg::HessianOperator<double> op(f, x);
    CHECK_THROWS_AS(op.apply(std::vector<Tensor<double>>{x, x}), tg::Error);
    auto g = [](tg::Tape<double>&, Vars v) { return tg::square(v[0]); };
    CHECK_THROWS_WITH_AS(tg::hessian(g, x), doctest::Contains("scalar"), tg::Error);
    // gradgradcheck projects a non-scalar output instead: ∂²(w·x²)/∂x² = 2·diag(w).
    CHECK(tg::gradgradcheck(g, {x}));
}

TEST_CASE("second and third derivatives of the stable forms stay finite and exact at extreme arguments") {
    const Tensor<double> x0(1, 7, {-800, -40, -3, 0.5, 3, 40, 800});
    auto sig = [](double x) { return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x)); };
    auto dsig = [&](double x) { return sig(x) * sig(-x); };              // σ′ without cancellation
    auto sech2 = [](double x) { return 1 / (std::cosh(x) * std::cosh(x)); };  // 1 − tanh², 0 beyond overflow
    struct Case {
        const char* name;
        std::function<Var<double>(const Var<double>&)> f;
        std::function<double(double)> d2, d3;
    };
    const Case cases[] = {
        {"σ", [](const Var<double>& x) { return tg::sigmoid(x); },
         [&](double x) { return dsig(x) * (1 - 2 * sig(x)); },
         [&](double x) { return dsig(x) * (1 - 6 * dsig(x)); }},  // 1 − 6σ + 6σ² = 1 − 6σσ(−x)
        {"softplus", [](const Var<double>& x) { return tg::softplus(x); }, dsig,
         [&](double x) { return dsig(x) * (1 - 2 * sig(x)); }},
        {"log σ", [](const Var<double>& x) { return tg::log_sigmoid(x); }, [&](double x) { return -dsig(x); },
         [&](double x) { return -dsig(x) * (1 - 2 * sig(x)); }},
        {"tanh", [](const Var<double>& x) { return tg::tanh(x); },
         [&](double x) { return -2 * std::tanh(x) * sech2(x); },
         [&](double x) { return sech2(x) * (6 * std::tanh(x) * std::tanh(x) - 2); }},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        tg::Tape<double> tape;
        auto x = tape.variable(x0);
        tape.backward(tg::sum(c.f(x)), {.create_graph = true});
        tape.backward(tg::sum(tape.grad_var(x)), {.create_graph = true});
        const Tensor<double> d2 = tape.grad(x);
        tape.backward(tg::sum(tape.grad_var(x)));
        const Tensor<double>& d3 = tape.grad(x);
        for (std::size_t i = 0; i < x0.size(); ++i) {
            CAPTURE(x0[i]);
            const double w2 = c.d2(x0[i]), w3 = c.d3(x0[i]);
            REQUIRE(std::isfinite(d2[i]));
            REQUIRE(std::isfinite(d3[i]));
            // Relative: at ±40 the answers are ~1e-18 (σ) and ~1e-34 (tanh), not to be lost to 0.
            CHECK(std::abs(d2[i] - w2) <= 1e-10 * std::abs(w2) + 1e-300);
            CHECK(std::abs(d3[i] - w3) <= 1e-10 * std::abs(w3) + 1e-300);
        }
    }
}
