// A user op declared outside the library (public headers only), exactly like the built-in ops:
// Swish(x) = x·σ(x). It records, differentiates once and twice, gradchecks and explains itself.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <random>
#include <span>
#include <string_view>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
using tg::Tensor;

namespace user {

// Y = X ⊙ σ(X).  dX = dY ⊙ (σ(X) + X ⊙ σ′(X)).
struct Swish {
    static constexpr std::string_view name = "swish";
    static constexpr std::size_t arity = 1;
    static constexpr tg::Notation notation{"swish({0})", "swish({0})", tg::Prec::Atom};
    tg::Shape shape(tg::Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) {
            const T e = std::exp(-std::abs(x[i]));
            out[i] = x[i] * (x[i] >= 0 ? T(1) / (T(1) + e) : e / (T(1) + e));
        }
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V&, const V& x) const {
        return g * (tg::sigmoid(x) + x * tg::sigmoid_grad(x));
    }
};

template <tg::Value V>
V swish(const V& x) {
    return tg::apply(Swish{}, x);
}

// y = x, with a VJP that returns gᵀ: the wrong shape (4×3 for a 3×4 input) unless x is square.
struct TransposedVjp {
    static constexpr std::string_view name = "transposed_vjp";
    static constexpr std::size_t arity = 1;
    tg::Shape shape(tg::Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i];
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V&, const V&) const {
        return tg::transpose(g);
    }
};

// z = x + y (same shapes), whose VJP for y returns a column sum: (1×n) for an (m×n) y.
struct ShrunkVjp {
    static constexpr std::string_view name = "shrunk_vjp";
    static constexpr std::size_t arity = 2;
    tg::Shape shape(tg::Shape x, tg::Shape) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x, const Tensor<T>& y) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] + y[i];
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V&, const V&, const V&) const {
        return g;
    }
    template <class V>
    V vjp(tg::In<1>, const V& g, const V&, const V&, const V&) const {
        return tg::sum_rows(g);
    }
};

// ---- ndint: an op that keeps data for its VJP in the tape's arena (Saved / Keep, saved.hpp) ----
// Y = max of X along its last axis (kept as a unit axis); the argmax is found once, in forward, and
// kept for the VJP: dX = scatter_add(0, last axis, argmax, dY) — written with ops, so it holds in
// every reading (second order, explain()).
inline int max_last_forwards = 0;
struct MaxLast {
    static constexpr std::string_view name = "max_last";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr tg::Notation notation{"max_last({0})", "max_last({0})", tg::Prec::Atom};
    mutable tg::Saved<std::int64_t> arg;  // set by forward; the node's copy of the op keeps it
    tg::Shape shape(tg::Shape x) const {
        if (x.rank() == 0 || x.dim(-1) == 0) tg::fail("max_last: {} has no last axis to reduce", x);
        return x.with(x.rank() - 1, 1);
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x, tg::Keep keep) const {
        ++max_last_forwards;
        arg = keep.array<std::int64_t>(out.shape());
        const std::size_t n = x.cols();
        for (std::size_t r = 0; r < out.size(); ++r) {
            const T* p = x.data() + r * n;
            std::size_t k = 0;
            for (std::size_t j = 1; j < n; ++j)
                if (p[j] > p[k]) k = j;
            out[r] = p[k];
            arg[r] = static_cast<std::int64_t>(k);
        }
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V&, const V& x) const {
        const std::size_t last = x.shape().rank() - 1;
        return tg::apply(tg::ScatterAdd{last, arg}, tg::apply(tg::ZerosLike{}, x), g);
    }
};

}  // namespace user

TEST_CASE("a user op keeps its argmax for the VJP in the tape's arena, found once, in forward") {
    Tensor<double> x(tg::Shape{2, 2, 3}, {1, 5, 2, 7, 0, 3, -1, -2, -3, 4, 4.5, 4});
    tg::Tape<double> tape;
    auto v = tape.variable(x);
    const std::size_t before = tape.arena().bytes_used();
    user::max_last_forwards = 0;
    auto y = tg::apply(user::MaxLast{}, v);
    CHECK(tape.arena().bytes_used() >= before + 4 * sizeof(std::int64_t));  // the argmax, in the arena
    CHECK(fmt::format("{}", y.value()) == "Tensor(2×2×1) [[[5], [7]], [[-1], [4.5]]]");
    tape.backward(tg::sum(y * y), {.create_graph = true});
    CHECK(user::max_last_forwards == 1);  // the VJP read the kept argmax; nothing recomputed it
    CHECK(fmt::format("{}", tape.grad(v)) ==
          "Tensor(2×2×3) [[[0, 10, 0], [14, 0, 0]], [[-2, 0, 0], [0, 9, 0]]]");
    // Second order through the kept indices: d/dx Σ 2·max = 2 at each argmax.
    tape.backward(tg::sum(tape.grad_var(v)));
    CHECK(fmt::format("{}", tape.grad(v)) == "Tensor(2×2×3) [[[0, 2, 0], [2, 0, 0]], [[2, 0, 0], [0, 2, 0]]]");
    // On plain tensors (no tape) the kept data is scratch, freed when the call returns.
    CHECK(fmt::format("{}", tg::apply(user::MaxLast{}, x)) == "Tensor(2×2×1) [[[5], [7]], [[-1], [4.5]]]");
    // explain() prints the VJP written with ops.
    tg::Tape<double> t2;
    auto w = t2.variable(x, "X");
    t2.backward(tg::sum(tg::apply(user::MaxLast{}, w)));
    const std::string e = t2.explain(w);
    INFO(e);
    CHECK(e.find("scatter_add") != std::string::npos);
}

TEST_CASE("a user op that keeps data passes the gradient check at ranks 1 to 4") {
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> u(-3, 3);
    std::uniform_int_distribution<std::size_t> d(1, 4);
    for (std::size_t rank = 1; rank <= 4; ++rank) {
        std::vector<std::size_t> dims;
        for (std::size_t k = 0; k < rank; ++k) dims.push_back(d(rng));
        Tensor<double> x(tg::Shape::from_range(dims.begin(), dims.end()));
        for (std::size_t i = 0; i < x.size(); ++i) x[i] = u(rng);
        auto r = tg::gradcheck(
            [](tg::Tape<double>&, std::span<const tg::Var<double>> v) {
                return tg::tanh(tg::apply(user::MaxLast{}, v[0]));
            },
            {x});
        INFO(fmt::format("{}", r));
        CHECK(r.passed);
    }
}

TEST_CASE("a user-declared Swish computes x·σ(x) in float and double without overflow") {
    Tensor<double> x(1, 5, {-800, -1, 0, 2, 800});
    Tensor<double> y = user::swish(x);
    for (std::size_t i = 1; i < 4; ++i)
        CHECK(y[i] == doctest::Approx(x[i] / (1 + std::exp(-x[i]))).epsilon(1e-15));
    CHECK(y[0] == 0.0);  // −800·σ(−800) underflows to −0, not NaN
    CHECK(y[4] == 800.0);
    Tensor<float> yf = user::swish(x.cast<float>());
    CHECK(yf[3] == doctest::Approx(y[3]).epsilon(1e-6));
}

TEST_CASE("a user-declared Swish passes the gradient check on random shapes") {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> u(-3, 3);
    std::uniform_int_distribution<std::size_t> d(1, 6);
    for (int trial = 0; trial < 10; ++trial) {
        Tensor<double> x(d(rng), d(rng)), w(x.cols(), d(rng));
        for (std::size_t i = 0; i < x.size(); ++i) x[i] = u(rng);
        for (std::size_t i = 0; i < w.size(); ++i) w[i] = u(rng);
        auto r = tg::gradcheck(
            [](tg::Tape<double>&, std::span<const tg::Var<double>> v) {
                return user::swish(tg::matmul(v[0], v[1]));
            },
            {x, w});
        INFO(fmt::format("{}", r));
        CHECK(r.passed);
        CHECK(r.max_rel_err() <= 1e-6);
    }
}

TEST_CASE("a user-declared Swish can be differentiated twice") {
    Tensor<double> x(3, 2, {0.5, -1.0, 1.5, 2.0, -0.5, 0.25});
    auto r = tg::gradcheck(
        [](tg::Tape<double>& tape, std::span<const tg::Var<double>> v) {
            tape.backward(tg::sum(user::swish(v[0])), {.create_graph = true});
            return tape.grad_var(v[0]);  // swish′(x), a graph
        },
        {x});
    INFO(fmt::format("{}", r));
    CHECK(r.passed);
    CHECK(r.max_rel_err() <= 1e-6);
}

TEST_CASE("explain prints a user-declared op's VJP and the op in its own notation") {
    tg::Tape<double> tape;
    auto X = tape.constant(Tensor<double>(4, 3), "X");
    auto W = tape.variable(Tensor<double>(3, 2), "W");
    auto T = tape.constant(Tensor<double>(4, 2), "T");
    auto A = tg::matmul(X, W).named("A");
    auto E = tg::sum(user::swish(A)).named("E");
    tape.backward(E);
    CHECK(tape.explain(W) == "∂E/∂A = σ(A) + A ⊙ σ′(A)\n∂E/∂W = Xᵀ · ∂E/∂A");
    CHECK(tape.explain(W, {.ascii = true}) == "dE/dA = sigmoid(A) + A * sigmoid'(A)\ndE/dW = X^T . dE/dA");

    auto J = tg::sse_half(user::swish(A), T).named("J");
    tape.backward(J);
    const std::string s = tape.explain(W);
    MESSAGE(s);
    CHECK(s.find("swish(A) − T") != std::string::npos);
    CHECK(s.find("σ(A) + A ⊙ σ′(A)") != std::string::npos);
}

TEST_CASE("a VJP that returns the wrong shape is an Error naming the op, the input and both shapes") {
    // Before: the numeric sweep summed the twelve entries of gᵀ into element (0, 0).
    const Tensor<double> x0(3, 4, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
    const char* expected =
        "transposed_vjp: the VJP of input 0 returned an adjoint of shape (4×3) for an input of shape (3×4)";
    for (bool create_graph : {false, true}) {
        CAPTURE(create_graph);
        tg::Tape<double> tape;
        auto x = tape.variable(x0, "x");
        auto loss = tg::sum(tg::apply(user::TransposedVjp{}, x) * tape.constant(x0));
        CHECK_THROWS_WITH_AS(tape.backward(loss, {.create_graph = create_graph}), doctest::Contains(expected), tg::Error);
    }
    // An adjoint smaller than its input (that the input would broadcast *to*) is refused too,
    // in both readings, with the input's index.
    for (bool create_graph : {false, true}) {
        tg::Tape<double> tape;
        auto a = tape.variable(x0, "a");
        auto b = tape.variable(x0, "b");
        auto loss = tg::sum(tg::apply(user::ShrunkVjp{}, a, b));
        CHECK_THROWS_WITH_AS(tape.backward(loss, {.create_graph = create_graph}),
                             doctest::Contains("shrunk_vjp: the VJP of input 1 returned an adjoint of shape (1×4) for an input of shape (3×4)"),
                             tg::Error);
    }
    // A square input: gᵀ has the right shape, and the engine takes it as given.
    tg::Tape<double> tape;
    auto x = tape.variable(Tensor<double>(2, 2, {1, 2, 3, 4}), "x");
    tape.backward(tg::sum(tg::apply(user::TransposedVjp{}, x) * tape.constant(Tensor<double>(2, 2, {1, 2, 3, 4}))));
    CHECK(tape.grad(x)[1] == 3.0);
    CHECK(tape.grad(x)[2] == 2.0);
}

namespace user {
// A VJP written to the protocol (template on V, const, (In<i>, g, y, x…)) is seen as one.
// Near misses — `y` left out, the member not const, parameters taken by non-const
// reference — are not silently "no VJP" but a compile-time error naming the expected
// signature: tests/compile_fail/vjp_*.cpp, built by ctest (compile_fail_*), must fail to compile.
struct GoodVjp {
    static constexpr std::string_view name = "good_vjp";
    static constexpr std::size_t arity = 1;
    tg::Shape shape(tg::Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = 3 * x[i];
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V& /*y*/, const V& /*x*/) const {
        return tg::scale(g, 3.0);
    }
};
// No member vjp at all: a non-differentiable op, as before (no diagnostic).
struct NoVjp {
    static constexpr std::string_view name = "no_vjp";
    static constexpr std::size_t arity = 1;
    tg::Shape shape(tg::Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i];
    }
};
}  // namespace user

TEST_CASE("an op whose vjp follows the protocol compiles and differentiates; one without vjp stays non-differentiable") {
    static_assert(tg::has_vjp_v<user::GoodVjp, Tensor<double>, 0>);
    static_assert(tg::declares_vjp_v<user::GoodVjp>);
    static_assert(!tg::declares_vjp_v<user::NoVjp>);
    static_assert(tg::declares_vjp_v<user::Swish>);
    tg::Tape<double> tape;
    auto x = tape.variable(Tensor<double>(1, 2, {1, 2}), "x");
    tape.backward(tg::sum(tg::apply(user::GoodVjp{}, x)));
    CHECK(tape.grad(x)[0] == 3.0);
    auto k = tape.constant(Tensor<double>(1, 2, {1, 2}));
    CHECK(tg::apply(user::NoVjp{}, k).value()[1] == 2.0);
    CHECK_THROWS_WITH_AS(tg::apply(user::NoVjp{}, x),
                         "no_vjp: input 0 is not differentiable but requires a gradient (make it a constant)", tg::Error);
}
