// The autodiff toolbox of issue 15 at the engine level: detach / stop_gradient, the no-grad
// scope, and gradient hooks (on Vars and on gradient buffers), in both the numeric and the
// recorded reading. Closed forms in double; the nn side (frozen parameters, tape-free
// inference, micro-batch accumulation) is in test_nn_toolbox.cpp.
#include <doctest/doctest.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <tapegrad/tapegrad.hpp>
#include <type_traits>
#include <vector>

namespace tg = tapegrad;
using tg::Tensor;
using tg::Var;

namespace {

Tensor<double> mat(std::size_t r, std::size_t c, std::initializer_list<double> v) {
    return Tensor<double>(r, c, v);
}

void check_equal(const Tensor<double>& a, const Tensor<double>& b) {
    REQUIRE(a.shape() == b.shape());
    for (std::size_t i = 0; i < a.size(); ++i) {
        CAPTURE(i);
        CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-14));
    }
}

Tensor<double> map(const Tensor<double>& x, double (*f)(double)) {
    Tensor<double> y(x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = f(x[i]);
    return y;
}

const Tensor<double> kX = mat(2, 2, {1.0, -2.0, 0.5, 3.0});

}  // namespace

// ---- detach / stop_gradient --------------------------------------------------------------------

TEST_CASE("detach returns x's value without copying it, and requires no gradient") {
    tg::Tape<double> tape;
    auto x = tape.variable(kX, "x");
    auto d = tg::detach(x);
    CHECK(d.value().data() == x.value().data());
    CHECK_FALSE(tape.node(d.id()).requires_grad);
    CHECK(tg::stop_gradient(x).value().data() == x.value().data());
    // Tensors: a view of the same storage (torch's detach shares storage too).
    CHECK(tg::detach(kX).data() == kX.data());
}

TEST_CASE("no gradient flows back through detach: d/dx Σ x ⊙ detach(x) = x, not 2x") {
    tg::Tape<double> tape;
    auto x = tape.variable(kX);
    tape.backward(tg::sum(x * tg::detach(x)));
    check_equal(tape.grad(x), kX);

    // A loss reached only through stop_gradient: the gradient is zero.
    tape.reset();
    auto y = tape.variable(kX);
    auto loss = tg::sum(tg::square(tg::stop_gradient(y)));
    CHECK_FALSE(tape.node(loss.id()).requires_grad);
    tape.backward(loss);
    check_equal(tape.grad(y), Tensor<double>(kX.shape()));
}

TEST_CASE("detach stays a stop in the recorded reading: d²/dx² Σ x² ⊙ sg(x) = 2x, not 6x") {
    // f = Σ x²·sg(x):  f′ = 2x·sg(x) (value 2x²);  f″ = 2·sg(x) = 2x (a stop for the second sweep);
    // without the stop f = Σ x³, f″ = 6x.
    for (bool stop : {true, false}) {
        CAPTURE(stop);
        tg::Tape<double> tape;
        auto x = tape.variable(kX);
        auto s = stop ? tg::stop_gradient(x) : x;
        tape.backward(tg::sum(tg::square(x) * s), {.create_graph = true});
        auto g = tape.grad_var(x);
        check_equal(g.value(), stop ? map(kX, [](double v) { return 2 * v * v; })
                                    : map(kX, [](double v) { return 3 * v * v; }));
        tape.backward(tg::sum(g));
        check_equal(tape.grad(x),
                    stop ? map(kX, [](double v) { return 2 * v; }) : map(kX, [](double v) { return 6 * v; }));
    }
}

TEST_CASE("explain shows detach(A) and sg(A) in the formula") {
    tg::Tape<double> tape;
    auto X = tape.constant(mat(2, 3, {1, 2, 3, 4, 5, 6}), "X");
    auto W = tape.variable(Tensor<double>(3, 2), "W");
    auto A = tg::matmul(X, W).named("A");
    auto E = tg::sum(A * tg::detach(A)).named("E");
    tape.backward(E);
    const std::string e = tape.explain(W);
    CAPTURE(e);
    CHECK(e.find("detach(A)") != std::string::npos);
    CHECK(e.find("Xᵀ") != std::string::npos);

    auto F = tg::sum(A * tg::stop_gradient(A)).named("F");
    tape.backward(F);
    const std::string f = tape.explain(W);
    CAPTURE(f);
    CHECK(f.find("sg(A)") != std::string::npos);
    // The symbolic reading on its own.
    CHECK(tg::detach(tg::Sym::atom("Z", {2, 2})).text == "detach(Z)");
}

// ---- the no-grad scope -------------------------------------------------------------------------

TEST_CASE("inside a NoGradGuard ops compute the same values and record constant nodes") {
    tg::Tape<double> tape;
    auto w = tape.variable(kX, "w");
    auto with = tg::tanh(tg::matmul(w, w) + w);
    std::size_t before = tape.size();
    Var<double> without;
    {
        tg::NoGradGuard g(tape);
        CHECK_FALSE(tape.grad_enabled());
        without = tg::tanh(tg::matmul(w, w) + w);
    }
    CHECK(tape.grad_enabled());
    CHECK(tape.size() - before == 3);  // constant nodes, not no nodes (docs/toolbox.md says why)
    for (std::uint32_t i = static_cast<std::uint32_t>(before); i < tape.size(); ++i)
        CHECK_FALSE(tape.node(i).requires_grad);
    for (std::size_t i = 0; i < kX.size(); ++i) CHECK(with.value()[i] == without.value()[i]);  // bitwise
}

TEST_CASE("a value computed under no-grad and used afterwards is a constant") {
    tg::Tape<double> tape;
    auto w = tape.variable(kX, "w");
    Var<double> h;
    {
        auto g = tape.no_grad();
        h = w * 2.0;
    }
    tape.backward(tg::sum(h * w));  // ∂/∂w Σ h ⊙ w with h constant: h = 2w (not 4w)
    check_equal(tape.grad(w), map(kX, [](double v) { return 2 * v; }));
}

TEST_CASE("no-grad scopes nest, restore the previous mode, and are exception-safe") {
    tg::Tape<double> tape;
    {
        auto outer = tape.no_grad();
        {
            tg::NoGradGuard inner(tape);
            CHECK_FALSE(tape.grad_enabled());
            {
                tg::GradModeGuard enable(tape, true);  // torch.enable_grad()
                CHECK(tape.grad_enabled());
            }
            CHECK_FALSE(tape.grad_enabled());
        }
        CHECK_FALSE(tape.grad_enabled());  // the outer scope is still on
    }
    CHECK(tape.grad_enabled());
    auto w = tape.variable(kX);
    CHECK_THROWS_AS(
        [&] {
            auto g = tape.no_grad();
            (void)tg::matmul(w, tape.constant(Tensor<double>(3, 3)));  // shape error inside the scope
        }(),
        tg::Error);
    CHECK(tape.grad_enabled());
    static_assert(!std::is_copy_constructible_v<tg::NoGradGuard<double>>);
}

TEST_CASE("leaves made inside a no-grad scope keep their kind (torch.no_grad's rule)") {
    tg::Tape<double> tape;
    tg::GradBuffer<double> gb;
    Var<double> v, p;
    {
        auto g = tape.no_grad();
        v = tape.variable(kX);
        p = tape.external(kX, &gb);
        CHECK_FALSE(tape.node((v * v).id()).requires_grad);
    }
    CHECK(tape.node(v.id()).requires_grad);
    tape.backward(tg::sum(v * p));
    check_equal(tape.grad(v), kX);
    check_equal(gb.tensor(), kX);
}

// ---- hooks on Vars ------------------------------------------------------------------------------

TEST_CASE("Var hooks see the complete adjoint, in reverse tape order, several in registration order") {
    // y = 3x, used twice: E = Σ y ⊙ y + Σ y;  ∂E/∂y = 2y + 1 (both uses summed), ∂E/∂x = 3(2y + 1).
    tg::Tape<double> tape;
    auto x = tape.variable(kX, "x");
    auto y = x * 3.0;
    auto z = y * y;
    auto E = tg::sum(z) + tg::sum(y);
    std::vector<std::string> order;
    Tensor<double> seen_y, seen_x;
    tape.register_hook(x, [&](const Tensor<double>& g) {
        order.push_back("x");
        seen_x = g.clone(std::pmr::get_default_resource());
    });
    tape.register_hook(y, [&](const Tensor<double>& g) {
        order.push_back("y1");
        seen_y = g.clone(std::pmr::get_default_resource());
    });
    tape.register_hook(z, [&](const Tensor<double>&) { order.push_back("z"); });
    tape.register_hook(y, [&](const Tensor<double>&) { order.push_back("y2"); });
    tape.backward(E);
    CHECK(order == std::vector<std::string>{"z", "y1", "y2", "x"});
    const Tensor<double> dy = map(kX, [](double v) { return 6 * v + 1; });
    check_equal(seen_y, dy);
    check_equal(seen_x, map(kX, [](double v) { return 18 * v + 3; }));
    check_equal(tape.grad(x), seen_x);
}

TEST_CASE("a Var hook's replacement is what flows on; the next hook receives it") {
    // E = Σ y ⊙ y, y = 3x: ∂E/∂y = 2y = 6x. Hook 1 doubles it (12x), hook 2 sees 12x and adds 1.
    tg::Tape<double> tape;
    auto x = tape.variable(kX);
    auto y = x * 3.0;
    Tensor<double> second;
    tape.register_hook(y, [](const Tensor<double>& g) -> std::optional<Tensor<double>> { return g * 2.0; });
    tape.register_hook(y, [&](const Tensor<double>& g) -> std::optional<Tensor<double>> {
        second = g.clone(std::pmr::get_default_resource());
        return g + 1.0;
    });
    tape.register_hook(y,
                       [](const Tensor<double>&) -> std::optional<Tensor<double>> { return std::nullopt; });
    tape.backward(tg::sum(y * y));
    check_equal(second, map(kX, [](double v) { return 12 * v; }));
    check_equal(tape.grad(x), map(kX, [](double v) { return 3 * (12 * v + 1); }));
}

TEST_CASE("a hook on a leaf replaces its gradient, also for a parameter's buffer") {
    for (bool cleared : {true, false}) {
        CAPTURE(cleared);
        tg::Tape<double> tape;
        tg::GradBuffer<double> gb(kX.shape());
        if (!cleared) gb.fill(1.0);
        auto p = tape.external(kX, &gb, "p");
        tape.register_hook(p,
                           [](const Tensor<double>& g) -> std::optional<Tensor<double>> { return g * 0.5; });
        tape.backward(tg::sum(p * p));  // ∂/∂p = 2p → p by the hook
        check_equal(tape.grad(p), kX);
        check_equal(gb.tensor(), cleared ? kX : kX + 1.0);
    }
}

TEST_CASE("hooks work in the recorded reading: a generic hook's replacement is differentiable") {
    // y = x², E = Σ y; the hook replaces ∂E/∂y = g by g ⊙ y. Then ∂E/∂x = (g ⊙ y)·2x = 2x³,
    // and in the recorded reading d/dx Σ 2x³ = 6x².
    // (Hooks stay on y for every backward through it, as torch's do: `active` turns this one off
    // for the second-order sweep, which passes through y again.)
    tg::Tape<double> tape;
    auto x = tape.variable(kX);
    auto y = tg::square(x);
    bool active = true;
    tape.register_hook(y, [y, &active](const auto& g) -> std::optional<std::decay_t<decltype(g)>> {
        if (!active) return std::nullopt;
        if constexpr (std::is_same_v<std::decay_t<decltype(g)>, Var<double>>)
            return g * y;
        else
            return g * y.value();
    });
    tape.backward(tg::sum(y), {.create_graph = true});
    auto gx = tape.grad_var(x);
    check_equal(gx.value(), map(kX, [](double v) { return 2 * v * v * v; }));
    active = false;
    tape.backward(tg::sum(gx));
    check_equal(tape.grad(x), map(kX, [](double v) { return 6 * v * v; }));

    // The same hook in the numeric reading.
    active = true;
    tape.backward(tg::sum(y));
    check_equal(tape.grad(x), map(kX, [](double v) { return 2 * v * v * v; }));
}

TEST_CASE("hooks that cannot serve a reading raise a clear Error") {
    tg::Tape<double> tape;
    auto x = tape.variable(kX, "x");
    auto y = tg::square(x);
    // A Tensor-only hook may observe the recorded sweep, but not replace the adjoint there.
    int calls = 0;
    tape.register_hook(y, [&](const Tensor<double>&) { ++calls; });
    tape.backward(tg::sum(y), {.create_graph = true});
    CHECK(calls == 1);
    tape.register_hook(y, [](const Tensor<double>& g) -> std::optional<Tensor<double>> { return g; });
    CHECK_THROWS_WITH_AS(tape.backward(tg::sum(y), {.create_graph = true}),
                         doctest::Contains("cannot record"), tg::Error);

    tape.reset();  // hooks belong to one recording
    auto x2 = tape.variable(kX, "x");
    auto y2 = tg::square(x2);
    tape.register_hook(y2, [](const Var<double>& g) -> std::optional<Var<double>> { return g; });
    CHECK_THROWS_WITH_AS(tape.backward(tg::sum(y2)), doctest::Contains("takes a Var only"), tg::Error);

    tape.reset();
    auto x3 = tape.variable(kX, "x");
    tape.register_hook(
        x3, [](const Tensor<double>&) -> std::optional<Tensor<double>> { return Tensor<double>(1, 1); });
    CHECK_THROWS_WITH_AS(tape.backward(tg::sum(x3)), doctest::Contains("replacement of shape (1×1)"),
                         tg::Error);

    auto c = tape.constant(kX, "c");
    CHECK_THROWS_WITH_AS(tape.register_hook(c, [](const Tensor<double>&) {}),
                         doctest::Contains("does not require a gradient"), tg::Error);
}

TEST_CASE("hooks are dropped by reset() and cost nothing when absent") {
    tg::Tape<double> tape;
    int calls = 0;
    auto x = tape.variable(kX);
    tape.register_hook(x, [&](const Tensor<double>&) { ++calls; });
    tape.backward(tg::sum(x));
    CHECK(calls == 1);
    tape.reset();
    auto x2 = tape.variable(kX);
    tape.backward(tg::sum(x2));
    CHECK(calls == 1);
}

// ---- hooks on gradient buffers (post-accumulate) ----------------------------------------------

TEST_CASE(
    "post-accumulate hooks run when a buffer's gradient is complete, in reverse tape order, mid-sweep") {
    // E = Σ tanh(tanh(x·W1)·W2): W2's gradient is complete first; when its hook runs, the sweep
    // has not reached W1 yet (its buffer is still cleared). Each parameter enters the tape where
    // it is used, as nn's layers record them: a leaf's hook runs when the sweep reaches the leaf.
    const Tensor<double> w1 = mat(2, 2, {0.3, -0.2, 0.1, 0.4}), w2 = mat(2, 1, {0.5, -0.7});
    for (bool create_graph : {false, true}) {
        CAPTURE(create_graph);
        tg::GradBuffer<double> g1(w1.shape()), g2(w2.shape());
        std::vector<std::string> order;
        bool w1_written_when_w2_done = true;
        Tensor<double> at_hook2;
        g2.register_post_accumulate_hook([&](tg::GradBuffer<double>& b) {
            order.push_back("W2");
            w1_written_when_w2_done = !g1.cleared();
            at_hook2 = b.tensor().clone(std::pmr::get_default_resource());
        });
        g1.register_post_accumulate_hook([&](tg::GradBuffer<double>&) { order.push_back("W1"); });
        tg::Tape<double> tape;
        auto x = tape.constant(kX);
        auto h = tg::tanh(tg::matmul(x, tape.external(w1, &g1, "W1")));
        auto E = tg::sum(tg::tanh(tg::matmul(h, tape.external(w2, &g2, "W2"))));
        tape.backward(E, {.create_graph = create_graph});
        CHECK(order == std::vector<std::string>{"W2", "W1"});
        CHECK_FALSE(w1_written_when_w2_done);  // in both readings: the hook runs during the sweep
        check_equal(at_hook2, g2.tensor());
    }
}

TEST_CASE("with create_graph, post-accumulate hooks run mid-sweep and the gradient graph stays differentiable") {
    // E = Σ tanh(tanh(x·W1)·W2), recorded reading. When W2's hook runs, W2's buffer holds its
    // gradient and W1's is untouched; afterwards the recorded gradients differentiate again as
    // without hooks: ∂/∂W Σ (∂E/∂W1)² matches a hook-free tape.
    const Tensor<double> w1 = mat(2, 2, {0.3, -0.2, 0.1, 0.4}), w2 = mat(2, 1, {0.5, -0.7});
    auto run = [&](bool hooked, std::vector<std::string>& order, Tensor<double>& d1, Tensor<double>& d2) {
        tg::GradBuffer<double> g1(w1.shape()), g2(w2.shape());
        tg::Tape<double> tape;
        if (hooked) {
            g2.register_post_accumulate_hook([&](tg::GradBuffer<double>& b) {
                order.push_back(order.empty() && g1.cleared() && !b.cleared() ? "W2 (W1 pending)" : "W2");
            });
            g1.register_post_accumulate_hook([&](tg::GradBuffer<double>&) { order.push_back("W1"); });
        }
        auto x = tape.constant(kX);
        auto W1 = tape.external(w1, &g1, "W1");
        auto W2 = tape.external(w2, &g2, "W2");
        auto h = tg::tanh(tg::matmul(x, W1));
        auto E = tg::sum(tg::tanh(tg::matmul(h, W2)));
        tape.backward(E, {.create_graph = true});
        Tensor<double> first = g1.tensor().clone(std::pmr::get_default_resource());
        auto gW1 = tape.grad_var(W1);
        check_equal(gW1.value(), first);
        g1.clear();
        g2.clear();
        tape.backward(tg::sum(tg::square(gW1)));
        d1 = g1.tensor().clone(std::pmr::get_default_resource());
        d2 = g2.tensor().clone(std::pmr::get_default_resource());
    };
    std::vector<std::string> order, none;
    Tensor<double> a1, a2, b1, b2;
    run(true, order, a1, a2);
    run(false, none, b1, b2);
    // The second (numeric) backward runs the hooks again, in the same order.
    CHECK(order == std::vector<std::string>{"W2 (W1 pending)", "W1", "W2", "W1"});
    check_equal(a1, b1);
    check_equal(a2, b2);
}

TEST_CASE("a buffer on the tape twice gets its hook once, after both contributions") {
    // E = Σ (x·W)·W′ where W′ is the same buffer recorded again: the hook sees the full gradient.
    const Tensor<double> w = mat(2, 2, {0.3, -0.2, 0.1, 0.4});
    for (int c = 0; c < 4; ++c) {
        const bool first_used = c % 2 == 0, create_graph = c >= 2;
        CAPTURE(first_used);
        CAPTURE(create_graph);
        tg::GradBuffer<double> g(w.shape());
        int calls = 0;
        Tensor<double> seen;
        g.register_post_accumulate_hook([&](tg::GradBuffer<double>& b) {
            ++calls;
            seen = b.tensor().clone(std::pmr::get_default_resource());
        });
        tg::Tape<double> tape;
        auto x = tape.constant(kX);
        auto Wa = tape.external(w, &g, "W");
        auto Wb = tape.external(w, &g, "W");
        auto E = first_used ? tg::sum(tg::matmul(tg::matmul(x, Wa), Wb)) : tg::sum(tg::matmul(x, Wb));
        tape.backward(E, {.create_graph = create_graph});
        CHECK(calls == 1);
        check_equal(seen, g.tensor());
        // Reference: the same gradient without hooks.
        tg::GradBuffer<double> r(w.shape());
        tg::Tape<double> ref;
        auto xr = ref.constant(kX);
        auto Ra = ref.external(w, &r, "W");
        auto Rb = ref.external(w, &r, "W");
        ref.backward(first_used ? tg::sum(tg::matmul(tg::matmul(xr, Ra), Rb)) : tg::sum(tg::matmul(xr, Rb)));
        check_equal(g.tensor(), r.tensor());
    }
}

TEST_CASE("a buffer the loss does not reach gets no post-accumulate call") {
    tg::GradBuffer<double> g(kX.shape()), h(kX.shape());
    int calls = 0;
    g.register_post_accumulate_hook([&](tg::GradBuffer<double>&) { ++calls; });
    tg::Tape<double> tape;
    auto a = tape.external(kX, &g, "a");
    auto b = tape.external(kX, &h, "b");
    (void)a;
    tape.backward(tg::sum(b));
    CHECK(calls == 0);
    g.clear_post_accumulate_hooks();
    CHECK_FALSE(g.has_post_accumulate_hooks());
}

TEST_CASE("post-accumulate hooks run in place: one may not change its own buffer's hooks") {
    // The sweep calls the hooks by reference (nothing allocated per backward), so registering or
    // clearing hooks of the buffer being run is an Error; another buffer's hooks may change.
    tg::GradBuffer<double> g(kX.shape()), other(kX.shape());
    int what = 0, other_calls = 0;
    g.register_post_accumulate_hook([&](tg::GradBuffer<double>& b) {
        if (what == 0) b.register_post_accumulate_hook([](tg::GradBuffer<double>&) {});
        if (what == 1) b.clear_post_accumulate_hooks();
        if (what == 2) other.register_post_accumulate_hook([&](tg::GradBuffer<double>&) { ++other_calls; });
    });
    for (what = 0; what < 3; ++what) {
        CAPTURE(what);
        tg::Tape<double> tape;
        auto a = tape.external(kX, &g, "a");
        if (what < 2)
            CHECK_THROWS_WITH_AS(tape.backward(tg::sum(a)), doctest::Contains("of the same buffer"), tg::Error);
        else
            tape.backward(tg::sum(a));
    }
    CHECK(other.has_post_accumulate_hooks());
    // After an Error in a hook the buffer's hooks can be changed again.
    g.clear_post_accumulate_hooks();
    CHECK_FALSE(g.has_post_accumulate_hooks());
    CHECK(other_calls == 0);
}
