// Activation checkpointing (core/checkpoint_op.hpp): the same gradients as without, nested
// segments, parameters inside segments, second order refused with a clear Error, and the memory:
// the caller's arena holds only the segments' boundaries, the scratch region is rewound.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <span>
#include <vector>

#include <tapegrad/core/checkpoint_op.hpp>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
using tg::Shape;
using tg::Tensor;
using tg::Var;

namespace {

Tensor<double> randn(Shape s, std::mt19937_64& rng, double scale = 1.0) {
    std::normal_distribution<double> n(0.0, scale);
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

// A stack of tanh(x·Wₗ + bₗ) layers whose weights are parameters (External leaves).
struct Stack {
    std::vector<Tensor<double>> w, b;
    std::vector<tg::GradBuffer<double>> gw, gb;
    Stack(std::size_t layers, std::size_t width, std::mt19937_64& rng) : gw(layers), gb(layers) {
        for (std::size_t l = 0; l < layers; ++l) {
            w.push_back(randn({width, width}, rng, 1.0 / std::sqrt(double(width))));
            b.push_back(randn({1, width}, rng, 0.1));
        }
    }
    Var<double> layer(std::size_t l, const Var<double>& x) {
        tg::Tape<double>& t = x.tape();
        return tg::tanh(tg::matmul(x, t.external(w[l], &gw[l])) + t.external(b[l], &gb[l]));
    }
    Var<double> range(std::size_t from, std::size_t to, Var<double> x) {
        for (std::size_t l = from; l < to; ++l) x = layer(l, x);
        return x;
    }
    void clear() {
        for (auto& g : gw) g.clear();
        for (auto& g : gb) g.clear();
    }
};

// The whole stack, checkpointed in segments of `seg` layers (0: no checkpointing).
Var<double> run(Stack& s, const Var<double>& x, std::size_t seg) {
    const std::size_t L = s.w.size();
    if (seg == 0) return s.range(0, L, x);
    Var<double> h = x;
    for (std::size_t from = 0; from < L; from += seg) {
        const std::size_t to = std::min(L, from + seg);
        h = tg::checkpoint([&s, from, to](const Var<double>& a) { return s.range(from, to, a); }, h);
    }
    return h;
}

}  // namespace

TEST_CASE("checkpointed segments give the gradients of the plain graph, inputs and parameters") {
    std::mt19937_64 rng(11);
    Stack s(8, 5, rng);
    const Tensor<double> x = randn({4, 5}, rng), w = randn({4, 5}, rng);
    std::vector<Tensor<double>> gx, gw, gb;
    Tensor<double> y0;
    for (std::size_t seg : {0u, 1u, 3u, 8u}) {
        CAPTURE(seg);
        s.clear();
        tg::Tape<double> tape;
        Var<double> xv = tape.variable(x);
        Var<double> y = run(s, xv, seg);
        tape.backward(tg::inner(y, tape.constant(w)));
        if (seg == 0) {
            y0 = y.value().clone(std::pmr::get_default_resource());
            gx.push_back(tape.grad(xv).clone(std::pmr::get_default_resource()));
            for (std::size_t l = 0; l < 8; ++l) {
                gw.push_back(s.gw[l].tensor().clone(std::pmr::get_default_resource()));
                gb.push_back(s.gb[l].tensor().clone(std::pmr::get_default_resource()));
            }
            continue;
        }
        CHECK(max_rel_diff(y.value(), y0) == 0.0);  // the same kernels in the same order
        CHECK(max_rel_diff(tape.grad(xv), gx[0]) < 1e-14);
        for (std::size_t l = 0; l < 8; ++l) {
            CHECK(max_rel_diff(s.gw[l].tensor(), gw[l]) < 1e-14);
            CHECK(max_rel_diff(s.gb[l].tensor(), gb[l]) < 1e-14);
        }
    }
}

TEST_CASE("checkpoint: several inputs, a constant among them, a parameter used inside and outside") {
    std::mt19937_64 rng(12);
    const Tensor<double> a = randn({3, 4}, rng), b = randn({3, 4}, rng), c = randn({4, 4}, rng),
                         p = randn({4, 4}, rng);
    tg::GradBuffer<double> gp_plain, gp_ckpt;
    auto seg = [](const Var<double>& x, const Var<double>& y, const Var<double>& m, const Var<double>& w) {
        return tg::matmul(tg::sigmoid(x * y), m) + tg::matmul(tg::tanh(x), w);
    };
    Tensor<double> ga0, gb0;
    for (int ck = 0; ck < 2; ++ck) {
        tg::Tape<double> tape;
        tg::GradBuffer<double>& gp = ck ? gp_ckpt : gp_plain;
        Var<double> av = tape.variable(a), bv = tape.variable(b), cv = tape.constant(c), pv = tape.external(p, &gp);
        Var<double> y = ck ? tg::checkpoint(
                                 [](const Var<double>& x, const Var<double>& yy, const Var<double>& m,
                                    const Var<double>& w) { return tg::matmul(tg::sigmoid(x * yy), m) + tg::matmul(tg::tanh(x), w); },
                                 av, bv, cv, pv)
                           : seg(av, bv, cv, pv);
        // p used again outside the segment.
        tape.backward(tg::sum(tg::square(y)) + tg::sum(tg::matmul(av, pv)));
        if (ck == 0) {
            ga0 = tape.grad(av).clone(std::pmr::get_default_resource());
            gb0 = tape.grad(bv).clone(std::pmr::get_default_resource());
        } else {
            CHECK(max_rel_diff(tape.grad(av), ga0) < 1e-14);
            CHECK(max_rel_diff(tape.grad(bv), gb0) < 1e-14);
        }
    }
    CHECK(max_rel_diff(gp_ckpt.tensor(), gp_plain.tensor()) < 1e-14);
}

TEST_CASE("checkpoint passes the gradient check, and nests") {
    std::mt19937_64 rng(13);
    const Tensor<double> x = randn({3, 3}, rng), w = randn({3, 3}, rng);
    auto inner = [](const Var<double>& a) { return tg::softplus(a) * tg::tanh(a); };
    auto outer = [&w, inner](const Var<double>& a) {
        Var<double> h = tg::checkpoint(inner, tg::matmul(a, a.tape().constant(w)));
        return tg::checkpoint(inner, h + a);
    };
    auto report = tg::gradcheck(
        [&](tg::Tape<double>&, std::span<const Var<double>> v) { return tg::sum(tg::checkpoint(outer, v[0])); }, {x});
    CHECK(static_cast<bool>(report));
    // Nested equals plain.
    tg::Tape<double> t1, t2;
    Var<double> x1 = t1.variable(x), x2 = t2.variable(x);
    t1.backward(tg::sum(tg::checkpoint(outer, x1)));
    Var<double> h = tg::matmul(x2, t2.constant(w));
    h = inner(h);
    t2.backward(tg::sum(inner(h + x2)));
    CHECK(max_rel_diff(t1.grad(x1), t2.grad(x2)) < 1e-14);
    CHECK(tg::detail::ckpt::scratch<double>().depth == 0);
}

TEST_CASE("second order through a checkpointed segment is a clear Error; so is explain()") {
    std::mt19937_64 rng(14);
    const Tensor<double> x = randn({2, 3}, rng);
    tg::Tape<double> tape;
    Var<double> xv = tape.variable(x);
    Var<double> loss = tg::sum(tg::checkpoint([](const Var<double>& a) { return tg::tanh(a); }, xv));
    CHECK_THROWS_WITH_AS(tape.backward(loss, {.create_graph = true}),
                         doctest::Contains("checkpoint: a checkpointed segment"), tg::Error);
    tape.backward(loss);  // the first-order sweep still works afterwards
    for (std::size_t i = 0; i < x.size(); ++i) CHECK(tape.grad(xv)[i] == doctest::Approx(1 - std::pow(std::tanh(x[i]), 2)));
    CHECK_THROWS_WITH_AS(tape.explain(xv), doctest::Contains("explain: a checkpointed segment"), tg::Error);
    // An error inside f (a shape error) surfaces, and leaves the scratch regions usable.
    CHECK_THROWS_AS(tg::checkpoint([](const Var<double>& a) { return tg::matmul(a, a); }, xv), tg::Error);
    CHECK(tg::detail::ckpt::scratch<double>().depth == 0);
}

TEST_CASE("the memory comes back: the caller's arena keeps segment boundaries, the scratch region is rewound") {
    tg::release_checkpoint_scratch<double>();
    std::mt19937_64 rng(15);
    const std::size_t L = 32, width = 64, seg = 4;
    Stack s(L, width, rng);
    const Tensor<double> x = randn({32, width}, rng);
    auto arena_after = [&](std::size_t segment, bool backward) {
        tg::Tape<double> tape;
        Var<double> y = run(s, tape.constant(x), segment);
        if (backward) tape.backward(tg::sum(y));
        return tape.arena().bytes_used();
    };
    const std::size_t plain = arena_after(0, false), ckpt = arena_after(seg, false);
    // Without: 3 values per layer (product, sum, tanh); with: one per segment.
    CHECK(ckpt * 4 < plain);
    const std::size_t scratch = tg::checkpoint_scratch_bytes<double>();
    CHECK(scratch > 0);
    CHECK(tg::detail::ckpt::scratch<double>().tapes.at(0)->arena().bytes_used() == 0);  // rewound
    // Forward and backward: the scratch region does not grow with the number of segments.
    const std::size_t plain_fb = arena_after(0, true), ckpt_fb = arena_after(seg, true);
    const std::size_t scratch_fb = tg::checkpoint_scratch_bytes<double>();
    Stack s2(2 * L, width, rng);
    {
        tg::Tape<double> tape;
        tape.backward(tg::sum(run(s2, tape.constant(x), seg)));
    }
    CHECK(tg::checkpoint_scratch_bytes<double>() == scratch_fb);
    MESSAGE("arena bytes, forward+backward: plain ", plain_fb, ", checkpointed ", ckpt_fb, " + scratch ", scratch_fb);
    CHECK(2 * (ckpt_fb + scratch_fb) < plain_fb);  // at least 50% less
    tg::release_checkpoint_scratch<double>();
    CHECK(tg::checkpoint_scratch_bytes<double>() == 0);
}

TEST_CASE("a segment whose inputs are constants still gives the parameters it records their gradients") {
    std::mt19937_64 rng(16);
    Stack s(6, 4, rng);
    const Tensor<double> x = randn({3, 4}, rng);
    std::vector<Tensor<double>> gw;
    for (std::size_t seg : {0u, 2u, 6u}) {
        CAPTURE(seg);
        s.clear();
        tg::Tape<double> tape;
        Var<double> y = run(s, tape.constant(x), seg);
        CHECK(tape.node(y.id()).requires_grad);
        tape.backward(tg::sum(tg::square(y)));
        for (std::size_t l = 0; l < 6; ++l) {
            if (seg == 0)
                gw.push_back(s.gw[l].tensor().clone(std::pmr::get_default_resource()));
            else
                CHECK(max_rel_diff(s.gw[l].tensor(), gw[l]) < 1e-14);
        }
    }
    // A segment of constants only, with nothing differentiable inside: a constant node.
    tg::Tape<double> tape;
    Var<double> c = tg::checkpoint([](const Var<double>& a) { return tg::tanh(a); }, tape.constant(x));
    CHECK_FALSE(tape.node(c.id()).requires_grad);
}

TEST_CASE("every second-order path through a checkpoint is the same clear Error; first-order transforms work") {
    // Second order needs the segment's VJP recorded on the caller's tape, which checkpointing
    // avoids: backward(create_graph), jvp (a VJP differentiated by its cotangent), grad of grad
    // and jacfwd all refuse with the checkpoint's message. grad, vjp and jacrev on tensors are
    // first order: they work and agree with the closed form 1 − tanh².
    std::mt19937_64 rng(17);
    const Tensor<double> x = randn({2, 3}, rng), v = randn({2, 3}, rng);
    auto seg = [](const Var<double>& a) { return tg::tanh(a); };
    auto f = [seg](const Var<double>& a) { return tg::checkpoint(seg, a); };
    auto loss = [f](const Var<double>& a) { return tg::sum(f(a)); };
    const auto msg = doctest::Contains("checkpoint: a checkpointed segment");
    CHECK_THROWS_WITH_AS(tg::jvp(f, x, v), msg, tg::Error);
    CHECK_THROWS_WITH_AS(tg::jacfwd(f)(x), msg, tg::Error);
    auto grad_of_grad = [loss](const Var<double>& a) { return tg::sum(tg::grad(loss)(a)); };
    CHECK_THROWS_WITH_AS(tg::grad(grad_of_grad)(x), msg, tg::Error);
    {
        tg::Tape<double> tape;
        Var<double> xv = tape.variable(x);
        CHECK_THROWS_WITH_AS(tg::jvp(f, xv, v), msg, tg::Error);
    }
    CHECK(tg::detail::ckpt::scratch<double>().depth == 0);

    const Tensor<double> g = tg::grad(loss)(x);
    auto [y, pullback] = tg::vjp(f, x);
    const Tensor<double> pb = pullback(v);
    const Tensor<double> J = tg::jacrev(f)(x);
    REQUIRE(J.shape() == Shape{2, 3, 2, 3});
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double d = 1 - std::pow(std::tanh(x[i]), 2);
        CHECK(y[i] == doctest::Approx(std::tanh(x[i])).epsilon(1e-15));
        CHECK(g[i] == doctest::Approx(d).epsilon(1e-14));
        CHECK(pb[i] == doctest::Approx(d * v[i]).epsilon(1e-14));
        for (std::size_t k = 0; k < x.size(); ++k) CHECK(J[i * x.size() + k] == doctest::Approx(i == k ? d : 0.0));
    }
}
