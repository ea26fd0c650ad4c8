// The plumbing of the tape, tested apart from the maths with mock ops (f = 2x, f = x·y with
// call counters): adjoint routing, fan-out, skipping, shapes, deep chains, misuse, memory.
#include <doctest/doctest.h>

#include <string>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
using tg::Shape;
using tg::Tensor;

namespace {

// y = 2x; counts its VJP calls.
struct MockDouble {
    static constexpr std::string_view name = "mock_double";
    static constexpr std::size_t arity = 1;
    int* calls = nullptr;
    Shape shape(Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = 2 * x[i];
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V&, const V&) const {
        if constexpr (tg::is_tensor<V>::value) ++*calls;
        return tg::scale(g, 2.0);
    }
};

// z = x·y elementwise, with per-input VJP counters (to observe the needs-gradient mask).
struct MockMul {
    static constexpr std::string_view name = "mock_mul";
    static constexpr std::size_t arity = 2;
    int* calls0 = nullptr;
    int* calls1 = nullptr;
    Shape shape(Shape a, Shape b) const {
        if (a != b) tg::fail("mock_mul: shapes differ: {} and {}", a, b);
        return a;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& a, const Tensor<T>& b) const {
        for (std::size_t i = 0; i < a.size(); ++i) out[i] = a[i] * b[i];
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V&, const V&, const V& b) const {
        ++*calls0;
        return g * b;
    }
    template <class V>
    V vjp(tg::In<1>, const V& g, const V&, const V& a, const V&) const {
        ++*calls1;
        return g * a;
    }
};

// An op with one non-differentiable input.
struct MockGate {
    static constexpr std::string_view name = "mock_gate";
    static constexpr std::size_t arity = 2;
    Shape shape(Shape a, Shape) const { return a; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& a, const Tensor<T>&) const {
        for (std::size_t i = 0; i < a.size(); ++i) out[i] = a[i];
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V&, const V&, const V&) const {
        return g;
    }
};

struct WrongDouble {  // y = 2x with a VJP that forgets the factor 2
    static constexpr std::string_view name = "wrong_double";
    static constexpr std::size_t arity = 1;
    Shape shape(Shape x) const { return x; }
    void forward(Tensor<double>& out, const Tensor<double>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = 2 * x[i];
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V&, const V&) const {
        return g;
    }
};

// The message an op function raises: the error, then the caller's file and line.
std::string error_at(const std::string& what, int line) {
    return fmt::format("{}\n  at {}:{} (in ", what, __FILE__, line);
}

Tensor<double> full(std::size_t r, std::size_t c, double v) { return Tensor<double>::filled(r, c, v); }

}  // namespace

TEST_CASE("a two-layer graph gives the hand-derived gradients") {
    tg::Tape<double> tape;
    Tensor<double> x(2, 3, {1, 2, 3, 4, 5, 6});
    Tensor<double> w(3, 1, {0.5, -1, 2});
    auto X = tape.constant(x, "X");
    auto W = tape.variable(w, "W");
    auto A = tg::matmul(X, W).named("A");
    auto E = tg::apply(tg::SumTo{{1, 1}}, A * A).named("E");
    tape.backward(E);
    // E = Σ (Xw)², dE/dw = 2 Xᵀ X w
    const auto& g = tape.grad(W);
    Tensor<double> a(2, 1);
    tg::gemm(false, false, 1.0, x, w, 0.0, a);
    for (std::size_t j = 0; j < 3; ++j) {
        double expect = 0;
        for (std::size_t i = 0; i < 2; ++i) expect += 2 * x(i, j) * a[i];
        CHECK(g[j] == doctest::Approx(expect).epsilon(1e-14));
    }
    CHECK(tape.explain(W) == "∂E/∂A = A + A\n∂E/∂W = Xᵀ · ∂E/∂A");
    CHECK(tape.explain(W, {.ascii = true, .shapes = true}) == "dE/dA = A + A    (2×1)\ndE/dW = X^T . dE/dA    (3×1)");
}

TEST_CASE("adjoints are routed to the right inputs and fan-out accumulates") {
    tg::Tape<double> tape;
    int c0 = 0, c1 = 0;
    auto a = tape.variable(full(2, 2, 3.0), "a");
    auto b = tape.variable(full(2, 2, 5.0), "b");
    // z = a·b + a·a  (a fans out three times): dz/da = b + 2a = 11, dz/db = a = 3
    auto ab = tg::apply(MockMul{&c0, &c1}, a, b);
    auto aa = tg::apply(MockMul{&c0, &c1}, a, a);
    auto z = tg::apply(tg::SumTo{{1, 1}}, ab + aa);
    tape.backward(z);
    for (std::size_t i = 0; i < 4; ++i) {
        CHECK(tape.grad(a)[i] == 11.0);
        CHECK(tape.grad(b)[i] == 3.0);
    }
    CHECK(c0 == 2);
    CHECK(c1 == 2);
    CHECK(tape.grad(a).shape() == Shape{2, 2});
}

TEST_CASE("a VJP is computed only for inputs that need a gradient") {
    tg::Tape<double> tape;
    int c0 = 0, c1 = 0;
    auto a = tape.variable(full(1, 3, 2.0));
    auto k = tape.constant(full(1, 3, 4.0));
    auto z = tg::apply(tg::SumTo{{1, 1}}, tg::apply(MockMul{&c0, &c1}, a, k));
    tape.backward(z);
    CHECK(c0 == 1);
    CHECK(c1 == 0);  // the constant's adjoint is never computed
    CHECK(tape.grad(a)[0] == 4.0);
    CHECK_THROWS_WITH_AS(tape.grad(k), doctest::Contains("does not require a gradient"), tg::Error);
}

TEST_CASE("branches that lead to no differentiable leaf are skipped") {
    tg::Tape<double> tape;
    int calls = 0;
    auto c = tape.constant(full(2, 2, 1.0));
    auto x = tape.variable(full(2, 2, 1.0));
    auto dead = tg::apply(MockDouble{&calls}, tg::apply(MockDouble{&calls}, c));  // constants only
    auto live = tg::apply(MockDouble{&calls}, x);
    auto z = tg::apply(tg::SumTo{{1, 1}}, dead + live);
    calls = 0;
    tape.backward(z);
    CHECK(calls == 1);  // only the live mock's VJP ran
    CHECK(tape.grad(x)[0] == 2.0);
    // A node after the loss, or not on its path, gets zeros.
    auto other = tape.variable(full(1, 1, 7.0));
    CHECK(tape.grad(other)[0] == 0.0);
}

TEST_CASE("broadcast inputs receive adjoints summed back to their own shape") {
    tg::Tape<double> tape;
    auto m = tape.variable(full(3, 4, 1.0));
    auto row = tape.variable(full(1, 4, 1.0));
    auto col = tape.variable(full(3, 1, 1.0));
    auto s = tape.variable(full(1, 1, 1.0));
    auto z = tg::apply(tg::SumTo{{1, 1}}, ((m + row) + col) + s);
    tape.backward(z);
    CHECK(tape.grad(m).shape() == Shape{3, 4});
    CHECK(tape.grad(row).shape() == Shape{1, 4});
    CHECK(tape.grad(col).shape() == Shape{3, 1});
    CHECK(tape.grad(s).shape() == Shape{1, 1});
    CHECK(tape.grad(row)[0] == 3.0);
    CHECK(tape.grad(col)[0] == 4.0);
    CHECK(tape.grad(s)[0] == 12.0);
}

TEST_CASE("a chain of a million nodes goes forward and backward without recursion") {
    tg::Tape<double> tape(std::size_t(64) << 20);
    int calls = 0;
    auto x = tape.variable(full(1, 1, 1.0));
    auto y = x;
    const int n = 1'000'000;
    for (int i = 0; i < n; ++i) y = (i % 2 == 0) ? tg::apply(MockDouble{&calls}, y) : tg::scale(y, 0.5);
    REQUIRE(tape.size() == std::size_t(n) + 1);
    tape.backward(y);
    CHECK(y.item() == 1.0);
    CHECK(tape.grad(x)[0] == 1.0);
    CHECK(calls == n / 2);
}

TEST_CASE("a second backward on the same tape recomputes, and external leaves accumulate") {
    tg::Tape<double> tape;
    Tensor<double> w = full(2, 1, 3.0);
    tg::GradBuffer<double> wgrad;
    auto W = tape.external(w, &wgrad, "W");
    auto v = tape.variable(full(2, 1, 2.0), "v");
    auto z = tg::apply(tg::SumTo{{1, 1}}, W * v);
    tape.backward(z);
    CHECK(tape.grad(v)[0] == 3.0);
    CHECK(wgrad[0] == 2.0);
    tape.backward(z);
    CHECK(tape.grad(v)[0] == 3.0);  // tape adjoints start from zero on every backward
    CHECK(wgrad[0] == 4.0);         // parameter storage accumulates, like PyTorch's .grad
    // The parameter's value was used in place, not copied.
    w[0] = 10.0;
    CHECK(W.value()[0] == 10.0);
}

TEST_CASE("tensor extents are 32-bit: a larger one is an Error, not a wrapped shape") {
    CHECK_THROWS_WITH_AS(Tensor<float>::uninit({std::size_t(1) << 32, 1}, std::pmr::get_default_resource()),
                         "tensor: shape (4294967296×1) has an extent above 2³² − 1", tg::Error);
    CHECK_THROWS_WITH_AS(Tensor<float>(1, std::size_t(1) << 33), "tensor: shape (1×8589934592) has an extent above 2³² − 1",
                         tg::Error);
    Tensor<float> t(3, 4);
    CHECK(t.shape() == tg::Shape{3, 4});
    CHECK(sizeof(Tensor<float>) == 32);
}

TEST_CASE("a non-scalar output is seeded with a user adjoint") {
    tg::Tape<double> tape;
    auto x = tape.variable(Tensor<double>(1, 3, {1, 2, 3}));
    auto y = x * x;
    // Both misuses name the caller's line (backward captures it as the op functions do).
    const int line = __LINE__ + 1;
    CHECK_THROWS_WITH_AS(tape.backward(y), doctest::Contains(error_at("backward: the loss has shape (1×3), not (1×1); pass a seed adjoint of that shape", line).c_str()), tg::Error);
    tape.backward(y, Tensor<double>(1, 3, {1, 10, 100}));
    CHECK(tape.grad(x)[0] == 2.0);
    CHECK(tape.grad(x)[1] == 40.0);
    CHECK(tape.grad(x)[2] == 600.0);
    const int line2 = __LINE__ + 1;
    CHECK_THROWS_WITH_AS(tape.backward(y, Tensor<double>(3, 1)), doctest::Contains(error_at("backward: seed adjoint has shape (3×1), output has shape (1×3)", line2).c_str()), tg::Error);
}

TEST_CASE("misusing a Var raises tapegrad::Error, never undefined behaviour") {
    tg::Tape<double> tape, other;
    auto a = tape.variable(full(2, 2, 1.0));
    auto b = other.variable(full(2, 2, 1.0));
    CHECK_THROWS_WITH_AS(a + b, "add: the Var belongs to another tape", tg::Error);
    CHECK_THROWS_WITH_AS(tape.grad(b), "grad: the Var belongs to another tape", tg::Error);
    tape.reset();
    CHECK_FALSE(a.valid());
    // Errors raised through a public op function also name the user's line.
    const int line = __LINE__ + 1;
    CHECK_THROWS_WITH_AS(tg::neg(a), doctest::Contains(error_at("neg: the Var was created before its tape was reset", line).c_str()), tg::Error);
    const int line_b = __LINE__ + 1;
    CHECK_THROWS_WITH_AS(tape.backward(a), doctest::Contains(error_at("backward: the Var was created before its tape was reset", line_b).c_str()), tg::Error);
    CHECK_THROWS_WITH_AS(a.value(), "Var: the Var was created before its tape was reset", tg::Error);
    tg::Var<double> empty;
    CHECK_THROWS_WITH_AS(tape.grad(empty), "grad: the Var is empty (default-constructed)", tg::Error);
    // A Var of the new generation works.
    auto c = tape.variable(full(1, 1, 2.0));
    tape.backward(c * c);
    CHECK(tape.grad(c)[0] == 4.0);
}

TEST_CASE("a Var kept from the previous iteration is refused by a tape declared in the loop body") {
    // Each iteration's tape lives at the same address and starts afresh: only a generation
    // drawn from one process-wide counter tells the two apart.
    tg::Var<double> kept;
    for (int k = 0; k < 3; ++k) {
        tg::Tape<double> tape;
        auto a = tape.variable(full(2, 2, 1.0), "a");
        auto b = tape.variable(full(2, 2, 2.0), "b");
        auto c = a * b;
        (void)(c + a);  // node 3: the kept Var's index (2) is in range on every tape
        if (k > 0) {
            // The premise of the defect is the same address as the previous iteration's tape
            // (as compilers place it); the other case is refused as well, as another tape.
            const std::string why = kept.tape_ptr() == &tape ? "the Var was created before its tape was reset"
                                                              : "the Var belongs to another tape";
            // (Only the live tape is asked: the old one no longer exists.)
            CHECK_THROWS_WITH_AS(a + kept, ("add: " + why).c_str(), tg::Error);
            CHECK_THROWS_WITH_AS(tape.grad(kept), ("grad: " + why).c_str(), tg::Error);
            CHECK_THROWS_WITH_AS(tape.backward(kept, full(2, 2, 1.0)), doctest::Contains(("backward: " + why).c_str()), tg::Error);
            if (kept.tape_ptr() == &tape) {
                CHECK_FALSE(kept.valid());
                CHECK_THROWS_AS((void)kept.value(), tg::Error);
            }
        }
        kept = c;
    }
}

TEST_CASE("two tapes never share a generation, and a reset draws a fresh one") {
    tg::Tape<double> t1, t2;
    CHECK(t1.generation() != t2.generation());
    const auto g = t1.generation();
    t1.reset();
    CHECK(t1.generation() != g);
    CHECK(t1.generation() != t2.generation());
}

namespace {
template <class Tp>
constexpr bool binds_temporary_constant = requires(Tp& t) { t.constant_ref(Tensor<double>(2, 2)); };
template <class Tp>
constexpr bool binds_temporary_external = requires(Tp& t, tg::GradBuffer<double>* g) { t.external(Tensor<double>(2, 2), g); };
template <class Tp>
constexpr bool binds_lvalue_constant = requires(Tp& t, const Tensor<double>& x) { t.constant_ref(x); };
template <class Tp>
constexpr bool binds_lvalue_external = requires(Tp& t, Tensor<double>& x, tg::GradBuffer<double>* g) { t.external(x, g); };
}  // namespace

TEST_CASE("constant_ref and external refuse a temporary at compile time, and take an lvalue") {
    // A temporary would be destroyed at the end of the statement while the tape still refers
    // to its storage: the rvalue overloads are deleted.
    static_assert(!binds_temporary_constant<tg::Tape<double>>);
    static_assert(!binds_temporary_external<tg::Tape<double>>);
    static_assert(binds_lvalue_constant<tg::Tape<double>>);
    static_assert(binds_lvalue_external<tg::Tape<double>>);
    tg::Tape<double> tape;
    const Tensor<double> x = full(2, 2, 3.0);
    Tensor<double> w = full(2, 2, 2.0);
    tg::GradBuffer<double> gw;
    auto X = tape.constant_ref(x);
    auto W = tape.external(w, &gw);
    tape.backward(tg::sum(X * W));
    CHECK(X.value().data() == x.data());
    CHECK(gw[0] == 3.0);
}

TEST_CASE("shape mismatches name the op and both shapes") {
    tg::Tape<double> tape;
    auto a = tape.variable(Tensor<double>(2, 3));
    auto b = tape.variable(Tensor<double>(4, 5));
    const int line = __LINE__ + 1;
    CHECK_THROWS_WITH_AS(tg::matmul(a, b), doctest::Contains(error_at("matmul: inner dimensions differ: (2×3)·(4×5)", line).c_str()), tg::Error);
    CHECK_THROWS_WITH_AS(a + b, "add: shapes do not broadcast: (2×3) and (4×5)", tg::Error);
    CHECK_THROWS_WITH_AS(tg::apply(MockMul{nullptr, nullptr}, a, b), "mock_mul: shapes differ: (2×3) and (4×5)", tg::Error);
}

TEST_CASE("a non-differentiable input that requires a gradient is refused at record time") {
    tg::Tape<double> tape;
    auto a = tape.variable(full(1, 2, 1.0));
    auto k = tape.constant(full(1, 2, 1.0));
    CHECK_NOTHROW(tg::apply(MockGate{}, a, k));
    CHECK_THROWS_WITH_AS(tg::apply(MockGate{}, a, a),
                         "mock_gate: input 1 is not differentiable but requires a gradient (make it a constant)", tg::Error);
}

TEST_CASE("gradcheck reports agreement, and catches a wrong VJP") {
    auto good = tg::gradcheck(
        [](tg::Tape<double>&, std::span<const tg::Var<double>> x) {
            return tg::apply(tg::SumTo{{1, 1}}, tg::matmul(x[0], x[1]) * tg::matmul(x[0], x[1]));
        },
        {Tensor<double>(2, 3, {0.1, -0.2, 0.3, 0.4, 0.5, -0.6}), Tensor<double>(3, 2, {1, 2, 3, -1, 0.5, 0.25})});
    CHECK(good.passed);
    CHECK(good.max_rel_err() < 1e-8);
    CHECK(fmt::format("{}", good).find("PASS") != std::string::npos);

    auto bad = tg::gradcheck(
        [](tg::Tape<double>&, std::span<const tg::Var<double>> x) { return tg::apply(WrongDouble{}, x[0]); },
        {Tensor<double>(1, 3, {1, 2, 3})});
    CHECK_FALSE(bad.passed);
    CHECK(bad.inputs[0].worst_numeric == doctest::Approx(2.0));
    CHECK(bad.inputs[0].worst_analytic == doctest::Approx(1.0));
    CHECK(fmt::format("{}", bad).find("FAIL") != std::string::npos);
}

TEST_CASE("gradcheck handles large inputs and outputs through projections and the adjoint test") {
    std::vector<double> vals(60 * 50);
    for (std::size_t i = 0; i < vals.size(); ++i) vals[i] = std::sin(double(i));
    Tensor<double> big = Tensor<double>::from(vals, {60, 50});
    tg::GradcheckOptions opt;
    opt.max_elementwise_inputs = 100;  // force the directional (adjoint) test
    auto rep = tg::gradcheck(
        [](tg::Tape<double>&, std::span<const tg::Var<double>> x) { return tg::matmul(x[0], x[0], true, false); },
        {big}, opt);
    CHECK(rep.passed);
    CHECK(rep.inputs[0].method == "directional");
    CHECK(rep.inputs[0].checked == std::size_t(opt.projections) * std::size_t(opt.projections));
}
