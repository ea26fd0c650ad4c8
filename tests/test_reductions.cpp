// Reductions over axes, softmax over an axis and the N-D cross-entropy: shapes, errors, ties,
// explain() — and the differential fixtures from PyTorch (tests/reference/cases.txt, written by
// tests/reference/make_cases.py; no Python at test time).
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <tapegrad/tapegrad.hpp>
#include <type_traits>
#include <vector>

#include "reference_cases.hpp"

namespace tg = tapegrad;
using tg::Shape;
using tg::Tensor;

namespace {

Tensor<double> seq(Shape s, double scale = 0.37) {
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = std::sin(scale * static_cast<double>(i + 1));
    return t;
}

}  // namespace

TEST_CASE("sum and mean over any axes: negative axes, keepdim, rank 0 for a full reduction") {
    const Tensor<double> x = seq({2, 3, 4});
    CHECK(tg::sum(x, {1}).shape() == Shape{2, 4});
    CHECK(tg::sum(x, {1}, true).shape() == Shape{2, 1, 4});
    CHECK(tg::sum(x, {0, -1}).shape() == Shape{3});
    CHECK(tg::sum(x, {0, 1, 2}).shape() == Shape{});
    CHECK(tg::sum(x, {0, 1, 2}, true).shape() == Shape{1, 1, 1});
    CHECK(tg::mean(x, -2).shape() == Shape{2, 4});
    // Σ over axes 0 and 2 by hand.
    const Tensor<double> s = tg::sum(x, {0, 2});
    for (std::size_t j = 0; j < 3; ++j) {
        double e = 0;
        for (std::size_t i = 0; i < 2; ++i)
            for (std::size_t k = 0; k < 4; ++k) e += x[(i * 3 + j) * 4 + k];
        CHECK(s[j] == doctest::Approx(e).epsilon(1e-14));
        CHECK(tg::mean(x, {0, 2})[j] == doctest::Approx(e / 8).epsilon(1e-14));
    }
    // The 2-D functions keep their 1×1 / 1×n / m×1 results.
    const Tensor<double> m = seq({3, 4});
    CHECK(tg::sum(m).shape() == Shape{1, 1});
    CHECK(tg::mean(m).shape() == Shape{1, 1});
    CHECK(tg::sum_rows(m).shape() == Shape{1, 4});
    CHECK(tg::sum_cols(m).shape() == Shape{3, 1});
}

TEST_CASE("reductions name the op and the axes in their errors") {
    const Tensor<double> x = seq({2, 3, 4});
    CHECK_THROWS_WITH_AS(tg::sum(x, {1, -2}), doctest::Contains("sum: axis 1 appears twice in the axes of (2×3×4)"),
                         tg::Error);
    CHECK_THROWS_WITH_AS(tg::mean(x, {3}), doctest::Contains("mean: axis 3 out of range for (2×3×4)"), tg::Error);
    CHECK_THROWS_WITH_AS(tg::amax(x, {-4}), doctest::Contains("amax: axis -4 out of range"), tg::Error);
    CHECK_THROWS_WITH_AS(tg::max(x, 5), doctest::Contains("max: axis 5 out of range"), tg::Error);
    CHECK_THROWS_WITH_AS(tg::amax(Tensor<double>(Shape{2, 0}), {1}),
                         doctest::Contains("amax: no elements along axis 1 of (2×0)"), tg::Error);
    CHECK_THROWS_WITH_AS(tg::softmax(x, 3), doctest::Contains("softmax: axis 3 out of range"), tg::Error);
    // A SumAxes built by hand for a higher rank is refused by its shape rule.
    CHECK_THROWS_WITH_AS(tg::apply(tg::SumAxes{{0b1000, false}}, x),
                         doctest::Contains("sum_axes: axis 3 out of range for (2×3×4)"), tg::Error);
}

TEST_CASE("amax splits the gradient among ties; max(x, dim) sends it to the first; NaN propagates") {
    tg::Tape<double> tape;
    auto x = tape.variable(Tensor<double>(Shape{2, 3}, {1, 5, 5, 2, 2, 2}), "X");
    tape.backward(tg::sum(tg::amax(x, {1})));
    const Tensor<double> g = tape.grad(x);
    CHECK(g[0] == 0);
    CHECK(g[1] == 0.5);
    CHECK(g[2] == 0.5);
    for (std::size_t j = 3; j < 6; ++j) CHECK(g[j] == doctest::Approx(1.0 / 3));

    tg::Tape<double> t2;
    auto y = t2.variable(Tensor<double>(Shape{2, 3}, {1, 5, 5, 2, 2, 2}), "X");
    auto mx = tg::max(y, 1);
    static_assert(std::is_same_v<decltype(mx.indices), tg::IndexTensor>);
    CHECK(mx.indices.shape() == Shape{2});
    CHECK(mx.indices[0] == 1);  // the first of the tied maxima 5, 5
    CHECK(mx.indices[1] == 0);  // the first of 2, 2, 2
    const std::size_t nodes = t2.size();
    const tg::IndexTensor am = tg::argmax(y, 1, true);  // data: records nothing
    CHECK(t2.size() == nodes);
    CHECK(am.shape() == Shape{2, 1});
    CHECK(am[0] == 1);
    CHECK(am[1] == 0);
    auto mn = tg::min(y, 0, true);
    CHECK(mn.values.shape() == Shape{1, 3});
    CHECK(mn.indices.shape() == Shape{1, 3});
    const std::int64_t want_min[] = {0, 1, 1};  // 1 < 2; 2 < 5; 2 < 5
    for (std::size_t j = 0; j < 3; ++j) CHECK(mn.indices[j] == want_min[j]);
    t2.backward(tg::sum(mx.values));
    const Tensor<double> h = t2.grad(y);
    const double want[] = {0, 1, 0, 1, 0, 0};
    for (std::size_t j = 0; j < 6; ++j) CHECK(h[j] == want[j]);

    const double nan = std::numeric_limits<double>::quiet_NaN();
    const Tensor<double> n(Shape{2, 3}, {1, nan, 3, 4, 5, 6});
    CHECK(std::isnan(tg::amax(n, {1})[0]));
    CHECK(tg::amax(n, {1})[1] == 6);
    CHECK(std::isnan(tg::max(n, 1).values[0]));
    CHECK(tg::max(n, 1).indices[0] == 1);  // the NaN
    CHECK(tg::max(n, 1).indices[1] == 2);
    CHECK(std::isnan(tg::min(n, 1).values[0]));
    CHECK(tg::min(n, 1).indices[0] == 1);
    CHECK(tg::argmax(n, 1)[0] == 1);
    CHECK(tg::argmin(n, 1)[0] == 1);
    CHECK(tg::argmin(n, 1)[1] == 0);
    // Two NaNs and ties along axis 0: the first NaN wins, the first of equal values wins.
    const Tensor<double> m(Shape{3, 2}, {7, nan, 7, 1, nan, nan});
    CHECK(tg::argmax(m, 0)[0] == 2);
    CHECK(tg::argmax(m, 0)[1] == 0);
    CHECK(tg::argmin(m, 0)[0] == 2);
    const Tensor<double> tie(Shape{4}, {3, 9, 9, 3});
    CHECK(tg::argmax(tie, 0).shape() == Shape{});
    CHECK(tg::argmax(tie, 0)[0] == 1);
    CHECK(tg::argmin(tie, -1)[0] == 0);
    // A strided view (a transpose) is read in its own order.
    const Tensor<double> w(Shape{2, 3}, {1, 8, 3, 4, 5, 9});
    const tg::IndexTensor wt = tg::argmax(tg::transpose(w, 0, 1), 1);
    CHECK(wt.shape() == Shape{3});
    CHECK(wt[0] == 1);
    CHECK(wt[1] == 0);
    CHECK(wt[2] == 1);
    CHECK_THROWS_WITH_AS(tg::argmax(Tensor<double>(Shape{2, 0}), 1),
                         doctest::Contains("argmax: no elements along axis 1 of (2×0)"), tg::Error);
    CHECK_THROWS_WITH_AS(tg::argmin(w, 2), doctest::Contains("argmin: axis 2 out of range"), tg::Error);
}

TEST_CASE("logsumexp stays finite for large logits; var and std follow torch's correction") {
    const Tensor<double> big(Shape{2, 2}, {1000, 1000, -1000, -1001});
    const Tensor<double> l = tg::logsumexp(big, {1});
    CHECK(l[0] == doctest::Approx(1000 + std::log(2.0)).epsilon(1e-15));
    CHECK(l[1] == doctest::Approx(-1000 + std::log1p(std::exp(-1.0))).epsilon(1e-15));
    const Tensor<double> v(Shape{4}, {1, 2, 3, 4});
    CHECK(tg::var(v, {0})[0] == doctest::Approx(5.0 / 3));
    CHECK(tg::var(v, {0}, 0.0)[0] == doctest::Approx(1.25));
    CHECK(tg::std(v, {0}, 0.0)[0] == doctest::Approx(std::sqrt(1.25)));
}

TEST_CASE("softmax over the last axis of a matrix gives today's results exactly; over axis 0 its transpose") {
    const Tensor<double> x = seq({3, 5}, 1.3);
    const Tensor<double> a = tg::softmax(x);
    const Tensor<double> b = tg::softmax(x, 1);
    const Tensor<double> c = tg::softmax(x, -1);
    for (std::size_t i = 0; i < x.size(); ++i) {
        CHECK(a[i] == b[i]);
        CHECK(a[i] == c[i]);
    }
    // softmax over axis 0 equals the row-wise softmax of the transpose, transposed back.
    const Tensor<double> s0 = tg::softmax(x, 0);
    const Tensor<double> st = tg::contiguous(tg::transpose(tg::softmax(tg::contiguous(tg::transpose(x, 0, 1))), 0, 1));
    for (std::size_t i = 0; i < x.size(); ++i) CHECK(s0[i] == doctest::Approx(st[i]).epsilon(1e-15));
}

TEST_CASE("the 2-D softmax_cross_entropy call keeps its result; the N-D form agrees with it") {
    const Tensor<double> z = seq({4, 3}, 0.9);
    const Tensor<double> col(Shape{4, 1}, {0, 2, 1, 2});
    const Tensor<double> vec(Shape{4}, {0, 2, 1, 2});
    const Tensor<double> a = tg::softmax_cross_entropy(z, col);
    CHECK(a.shape() == Shape{1, 1});
    const Tensor<double> b = tg::softmax_cross_entropy(z, vec);
    CHECK(b.shape() == Shape{});
    CHECK(b[0] == doctest::Approx(a[0]).epsilon(1e-15));
    const Tensor<double> none = tg::softmax_cross_entropy(z, vec, {.reduction = tg::Reduction::none});
    CHECK(none.shape() == Shape{4});
    // ignore_index: the mean divides by the number of positions kept.
    const Tensor<double> ign(Shape{4}, {0, -100, 1, -100});
    const Tensor<double> m = tg::softmax_cross_entropy(z, ign);
    CHECK(m[0] == doctest::Approx((none[0] + none[2]) / 2).epsilon(1e-14));
    CHECK_THROWS_WITH_AS(tg::softmax_cross_entropy(z, Tensor<double>(Shape{3})),
                         doctest::Contains("softmax_cross_entropy: labels must have shape (4) (the logits (4×3) "
                                           "without axis 1), got (3)"),
                         tg::Error);
    CHECK_THROWS_WITH_AS(tg::softmax_cross_entropy(z, Tensor<double>(Shape{4}, {0, 3, 1, 2})),
                         doctest::Contains("label 3 at row 1 is not a class index in [0, 3)"), tg::Error);
}

TEST_CASE("explain() writes reductions and softmax with their axes") {
    tg::Tape<double> tape;
    auto x = tape.variable(seq({2, 3, 4}), "X");
    tape.backward(tg::sum(tg::softmax(x, 0) * tg::sum(x, {1}, true)));
    // softmax's VJP with its axis; the product's adjoint summed back to (2×1×4) by the engine,
    // then stretched by Σ_{axis 1}'s VJP (a broadcast, which prints as its operand).
    CHECK(tape.explain(x) == "∂t4/∂X = softmax_{axis 0}(X) ⊙ (Σ_{axis 1}(X) − Σ_{axis 0}(Σ_{axis 1}(X) ⊙ "
                             "softmax_{axis 0}(X))) + sum_to(softmax_{axis 0}(X))");
    CHECK(tape.explain(x, {.ascii = true}) ==
          "dt4/dX = softmax_{axis 0}(X) * (sum_{axis 1}(X) - sum_{axis 0}(sum_{axis 1}(X) * softmax_{axis 0}(X))) + "
          "sum_to(softmax_{axis 0}(X))");
}

// ---- differential fixtures from PyTorch ------------------------------------------------------

namespace {

using V = tg::Var<double>;
using Vars = std::map<std::string, V>;

// The op a fixture key names, built on a tape from the case's inputs.
V build(const std::string& key, Vars& x) {
    const auto f = split(key, ';');
    const std::string& op = f[0];
    if (op == "add") return x.at("a") + x.at("b");
    if (op == "sub") return x.at("a") - x.at("b");
    if (op == "mul") return x.at("a") * x.at("b");
    if (op == "div") return x.at("a") / x.at("b");
    if (op == "softmax") return tg::softmax(x.at("x"), std::stol(f[1]));
    if (op == "log_softmax") return tg::log_softmax(x.at("x"), std::stol(f[1]));
    if (op == "ce") {
        const tg::Reduction r = f[1] == "mean" ? tg::Reduction::mean : f[1] == "sum" ? tg::Reduction::sum : tg::Reduction::none;
        return tg::softmax_cross_entropy(x.at("z"), x.at("labels"), {.ignore_index = std::stol(f[2]), .reduction = r});
    }
    if (op == "view") {
        const V& v = x.at("x");
        const std::string& n = f[1];
        if (n == "permute_reshape_tanh") return tg::tanh(tg::reshape(tg::permute(v, {2, 0, 1}), {4, -1}));
        if (n == "transpose_times_permute") return tg::transpose(v, 0, 2) * tg::permute(v, {2, 1, 0});
        if (n == "expand_mul") {
            auto e = tg::expand(v, Shape{2, 3, 4});
            return e * tg::tanh(e);
        }
        if (n == "slice_step_narrow") return tg::exp(tg::narrow(tg::slice_axis(v, 0, 1, 5, 2), 2, 1, 2));
        if (n == "select_transpose") return tg::square(tg::transpose(tg::select(v, 1, 2), 0, 1));
        if (n == "unsqueeze_flatten_squeeze")
            return tg::tanh(tg::squeeze(tg::flatten(tg::unsqueeze(v, 0), 1, 2), 0) * tg::squeeze(v, 1));
        if (n == "permute_sum_softmax") return tg::sum(tg::softmax(tg::permute(v, {1, 2, 0}), 1), {0}, true);
        if (n == "reshape_of_transposed") return tg::reshape(tg::transpose(v, 0, 1), {2, 6}) * 3.0;
        if (n == "expand_slice_select")
            return tg::select(tg::slice_axis(tg::expand(v, Shape{4, 3}), 0, 0, 4, 2), 1, 1) *
                   tg::select(tg::slice_axis(v, 0, 1, 3), 1, 0);
        // ---- ndio: view chains with batched matmul, concat and stack ----
        if (n == "transpose_bmm_sum") return tg::sum(tg::matmul(tg::transpose(v, 1, 2), v), -1);
        if (n == "flatten_matmul_permute")
            return tg::matmul(tg::reshape(v, {6, 4}), tg::flatten(tg::permute(v, {2, 0, 1}), 1));
        if (n == "expand_bmm") return tg::matmul(tg::expand(v, Shape{2, 3, 3}), tg::tanh(v));
        if (n == "slice_concat_self")
            return tg::concat({tg::slice_axis(v, 0, 0, 4, 2), tg::slice_axis(v, 0, 1, 4, 2)}, 1) *
                   tg::sum(tg::slice_axis(v, 0, 0, 2));
        if (n == "unsqueeze_stack_mean")
            return tg::mean(tg::stack({tg::unsqueeze(v, 0), tg::unsqueeze(tg::exp(v), 0)}, 2), {1, 3});
        if (n == "select_narrow_matmul")
            return tg::matmul(tg::transpose(tg::narrow(tg::select(v, 0, 1), 1, 0, 2), 0, 1), tg::select(v, 0, 2));
        // ---- end ndio ----
        FAIL("unknown view case " << n);
    }
    // ---- ndio: batched matmul (broadcast batch axes, transposed operands) and concat / stack ----
    if (op == "bmm") {
        const V& a = x.at("a");
        const V& b = x.at("b");
        const std::string& n = f[1];
        if (n == "broadcast_batch" || n == "matrix_times_batch" || n == "batch_times_matrix") return tg::matmul(a, b);
        if (n == "flag_ta") return tg::matmul(a, b, true, false);
        if (n == "flag_tb_broadcast") return tg::matmul(a, b, false, true);
        if (n == "flag_ta_tb") return tg::matmul(a, b, true, true);
        if (n == "transpose_view_a") return tg::matmul(tg::transpose(a, 1, 2), b);
        if (n == "permute_view_b") return tg::matmul(b, tg::permute(a, {1, 2, 0}));
        if (n == "permuted_batch_axes") return tg::matmul(tg::permute(a, {1, 0, 2, 3}), b);
        if (n == "attention_like") return tg::matmul(tg::softmax(tg::matmul(a, b, false, true), -1), b);
        FAIL("unknown bmm case " << n);
    }
    if (op == "cat") {
        const V& a = x.at("a");
        const V& b = x.at("b");
        const V& c = x.at("c");
        const std::string& n = f[1];
        if (n == "concat_axis1_tanh") return tg::tanh(tg::concat({a, b, c}, 1));
        if (n == "concat_last_neg") return tg::concat({a, b * b, c}, -1);
        if (n == "concat_permuted") return tg::concat({tg::permute(a, {1, 0, 2}), b, tg::exp(c)}, 0);
        if (n == "stack_axis0") return tg::stack({a, b, c * a}, 0);
        if (n == "stack_last") return tg::tanh(tg::stack({a, b, c}, -1));
        if (n == "stack_middle_of_views")
            return tg::square(tg::stack({a, tg::transpose(b, 0, 1), tg::reshape(c, {4, 3})}, 1));
        if (n == "stack_then_matmul") return tg::matmul(tg::stack({a, b}, 0), c);
        FAIL("unknown cat case " << n);
    }
    // ---- end ndio ----
    // reductions: op;axes;keepdim;extra
    std::vector<std::ptrdiff_t> axes;
    for (const auto& a : split(f[1], ',')) axes.push_back(std::stol(a));
    const bool keep = f[2] == "1";
    const double extra = std::stod(f[3]);
    const V& v = x.at("x");
    const Shape s = v.shape();
    const tg::detail::AxisSet set = tg::detail::axis_set(op, axes, s, keep);
    if (op == "sum") return tg::apply(tg::SumAxes{set}, v);
    if (op == "mean") return tg::apply(tg::MeanAxes{set}, v);
    if (op == "amax") return tg::apply(tg::Amax{set}, v);
    if (op == "amin") return tg::apply(tg::Amin{set}, v);
    if (op == "logsumexp") return tg::apply(tg::LogSumExp{set}, v);
    if (op == "max") return tg::max(v, axes[0], keep).values;
    if (op == "min") return tg::min(v, axes[0], keep).values;
    if (op == "var" || op == "std") {
        // var/std take an initializer list; the fixtures use one or two axes (or three: all).
        auto call = [&](auto&& fn) {
            if (axes.size() == 1) return fn(v, {axes[0]});
            if (axes.size() == 2) return fn(v, {axes[0], axes[1]});
            return fn(v, {axes[0], axes[1], axes[2]});
        };
        if (op == "var")
            return call([&](const V& a, std::initializer_list<std::ptrdiff_t> ax) { return tg::var(a, ax, extra, keep); });
        return call([&](const V& a, std::initializer_list<std::ptrdiff_t> ax) { return tg::std(a, ax, extra, keep); });
    }
    FAIL("unknown fixture key " << key);
    return v;
}

Tensor<double> as_double(const tg::IndexTensor& t) {
    Tensor<double> d(t.shape());
    for (std::size_t i = 0; i < t.size(); ++i) d[i] = static_cast<double>(t[i]);
    return d;
}

}  // namespace

TEST_CASE("every PyTorch fixture (tests/reference/cases.txt): output and every gradient within 1e-12·max(1, ‖ref‖∞)") {
    const std::vector<ReferenceCase> cases = read_reference_cases("cases.txt");
    CHECK(cases.size() >= 250);
    std::size_t grads = 0, argmaxes = 0, indexed = 0;
    for (const ReferenceCase& c : cases) {
        CAPTURE(c.key);
        tg::Tape<double> tape;
        Vars x;
        for (const auto& [name, t] : c.t) {
            if (name == "labels") x.emplace(name, tape.constant(t, name));
            else if (name != "w" && name != "out" && name != "indices" && name.rfind("grad_", 0) != 0)
                x.emplace(name, tape.variable(t, name));
        }
        const auto f = split(c.key, ';');
        if (f[0] == "argmax") {  // int64 indices, no gradient, nothing recorded
            check_fixture_values("out", as_double(tg::argmax(x.at("x"), std::stol(f[1]), f[2] == "1")), c.t.at("out"));
            ++argmaxes;
            continue;
        }
        const V y = build(c.key, x);
        check_fixture_values("out", y.value(), c.t.at("out"));
        if (c.t.count("indices")) {
            REQUIRE((f[0] == "max" || f[0] == "min"));
            const auto vi = f[0] == "max" ? tg::max(x.at("x"), std::stol(f[1]), f[2] == "1")
                                          : tg::min(x.at("x"), std::stol(f[1]), f[2] == "1");
            check_fixture_values("indices", as_double(vi.indices), c.t.at("indices"));
            ++indexed;
        }
        if (!c.t.count("w")) continue;  // argmax: no gradient
        tape.backward(y, c.t.at("w"));
        for (const auto& [name, v] : x) {
            if (name == "labels") continue;
            check_fixture_values("grad_" + name, tape.grad(v), c.t.at("grad_" + name));
            ++grads;
        }
    }
    CHECK(grads >= 250);
    CHECK(argmaxes >= 4);
    CHECK(indexed >= 8);
}

// ---- nd11: the composed losses at ranks 0–5 against PyTorch (tests/reference/loss_cases.txt) ----

TEST_CASE("sse_half, mse, binary_cross_entropy_with_logits and softmax_cross_entropy_probs match PyTorch at ranks "
          "0–5 (loss_cases.txt, ≤ 1e-12), and name both shapes when they differ") {
    const std::vector<ReferenceCase> cases = read_reference_cases("loss_cases.txt");
    CHECK(cases.size() == 27);
    for (const ReferenceCase& c : cases) {
        CAPTURE(c.key);
        const std::string loss = split(c.key, ';')[0];
        tg::Tape<double> tape;
        const V p = tape.variable(c.t.at("p"), "p"), t = tape.variable(c.t.at("t"), "t");
        const V y = loss == "sse_half" ? tg::sse_half(p, t)
                    : loss == "mse"    ? tg::mse(p, t)
                    : loss == "bce_logits" ? tg::binary_cross_entropy_with_logits(p, t)
                                           : tg::softmax_cross_entropy_probs(p, t);
        REQUIRE(y.value().size() == 1);  // 1×1, torch's rank 0
        const Tensor<double>& out = c.t.at("out");
        check_fixture_values("out", y.value(), std::span<const double>(out.data(), out.size()));
        tape.backward(y, Tensor<double>(y.shape(), {c.t.at("w")[0]}));
        check_fixture_values("grad_p", tape.grad(p), c.t.at("grad_p"));
        check_fixture_values("grad_t", tape.grad(t), c.t.at("grad_t"));
    }
    const Tensor<double> a(Shape{2, 3, 4}), b(Shape{2, 4, 3});
    CHECK_THROWS_WITH_AS(tg::mse(a, b), doctest::Contains("mse: prediction (2×3×4) and target (2×4×3) differ in shape"),
                         tg::Error);
    CHECK_THROWS_WITH_AS(tg::sse_half(a, b), doctest::Contains("sse_half: prediction (2×3×4) and target (2×4×3)"),
                         tg::Error);
    CHECK_THROWS_WITH_AS(tg::binary_cross_entropy_with_logits(a, b),
                         doctest::Contains("binary_cross_entropy_with_logits: logits (2×3×4) and targets (2×4×3)"),
                         tg::Error);
    CHECK_THROWS_WITH_AS(tg::softmax_cross_entropy_probs(a, b),
                         doctest::Contains("softmax_cross_entropy_probs: logits (2×3×4) and targets (2×4×3)"),
                         tg::Error);
    CHECK_THROWS_WITH_AS(tg::softmax_cross_entropy_probs(Tensor<double>(Shape{}), Tensor<double>(Shape{})),
                         doctest::Contains("softmax_cross_entropy_probs: logits () have no class axis"), tg::Error);
}
