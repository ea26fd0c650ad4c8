// concat / stack along any axis at any rank (ops/views.hpp): values as torch.cat / torch.stack,
// adjoints as slices of the output's adjoint, more than six inputs, errors naming the shapes
// and the axis. (Gradients against finite differences: the op table, tests/op_cases.hpp.)
#include <doctest/doctest.h>

#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
using tg::Shape;
using tg::Tensor;

namespace {
Tensor<double> iota(Shape s, double from = 0) {
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = from + static_cast<double>(i);
    return t;
}
}  // namespace

TEST_CASE("concat joins along any axis, negative axes counting from the end") {
    const Tensor<double> a = iota({2, 1, 3}), b = iota({2, 2, 3}, 100);
    const Tensor<double> c = tg::concat({a, b}, 1);
    REQUIRE(c.shape() == Shape{2, 3, 3});
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t k = 0; k < 3; ++k) {
            CHECK(c.at({i, 0, k}) == a.at({i, 0, k}));
            CHECK(c.at({i, 1, k}) == b.at({i, 0, k}));
            CHECK(c.at({i, 2, k}) == b.at({i, 1, k}));
        }
    const Tensor<double> d = tg::concat({a, a, a}, -1);
    REQUIRE(d.shape() == Shape{2, 1, 9});
    CHECK(d.at({1, 0, 7}) == a.at({1, 0, 1}));
    const Tensor<double> e = tg::concat({a, iota({1, 1, 3}, 50)}, 0);
    REQUIRE(e.shape() == Shape{3, 1, 3});
    CHECK(e.at({2, 0, 2}) == 52);
    // Rank 2: the same as the 2-D concat_cols / concat_rows.
    const Tensor<double> p = iota({2, 3}), q = iota({2, 4}, 10);
    CHECK(tg::max_abs_diff(tg::concat({p, q}, -1), tg::concat_cols(p, q)) == 0);
    CHECK(tg::max_abs_diff(tg::concat({p, p}, 0), tg::concat_rows(p, p)) == 0);
}

TEST_CASE("concat of more than six inputs chains nodes; every input's adjoint is its slice of the output's") {
    tg::Tape<double> tape;
    std::vector<tg::Var<double>> xs;
    for (std::size_t i = 0; i < 9; ++i) xs.push_back(tape.variable(iota({2, i % 3 + 1, 2}, 10.0 * i)));
    auto c = tg::concat(xs, -2);
    REQUIRE(c.shape() == Shape{2, 18, 2});
    // Weights w = 1, 2, 3, … over c's elements: each input's gradient is its block of w.
    Tensor<double> w = iota(c.shape(), 1);
    tape.backward(tg::sum(c * tape.constant(w)));
    std::size_t off = 0;
    for (std::size_t i = 0; i < 9; ++i) {
        const std::size_t n = i % 3 + 1;
        const Tensor<double>& g = tape.grad(xs[i]);
        REQUIRE(g.shape() == Shape{2, n, 2});
        for (std::size_t b = 0; b < 2; ++b)
            for (std::size_t r = 0; r < n; ++r)
                for (std::size_t k = 0; k < 2; ++k) {
                    CHECK(g.at({b, r, k}) == w.at({b, off + r, k}));
                    CHECK(c.value().at({b, off + r, k}) == xs[i].value().at({b, r, k}));
                }
        off += n;
    }
}

TEST_CASE("stack joins equal shapes along a new axis, scalars included") {
    const Tensor<double> a = iota({2, 3}), b = iota({2, 3}, 100);
    const Tensor<double> s0 = tg::stack({a, b}, 0), s1 = tg::stack({a, b}, 1), s2 = tg::stack({a, b}, -1);
    CHECK(s0.shape() == Shape{2, 2, 3});
    CHECK(s1.shape() == Shape{2, 2, 3});
    CHECK(s2.shape() == Shape{2, 3, 2});
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 3; ++j) {
            CHECK(s0.at({1, i, j}) == b.at({i, j}));
            CHECK(s1.at({i, 1, j}) == b.at({i, j}));
            CHECK(s2.at({i, j, 0}) == a.at({i, j}));
        }
    tg::Tape<double> tape;
    auto x = tape.variable(Tensor<double>(Shape{}, {2.0})), y = tape.variable(Tensor<double>(Shape{}, {3.0}));
    auto v = tg::stack({x, y, x});
    CHECK(v.shape() == Shape{3});
    tape.backward(tg::sum(v * v));
    CHECK(tape.grad(x)[0] == 8.0);  // 2·(2x)
    CHECK(tape.grad(y)[0] == 6.0);
}

TEST_CASE("concat and stack errors name the shapes and the axis") {
    const Tensor<double> a({2, 3, 4}), b({2, 5, 4}), c({2, 3}), s(Shape{});
    CHECK_THROWS_WITH_AS(tg::concat({a, b}, 2),
                         "concat: input 1 has shape (2×5×4), input 0 has (2×3×4): extents must agree except along axis 2",
                         tg::Error);
    CHECK_THROWS_WITH_AS(tg::concat({a, c}, 0), "concat: input 1 has shape (2×3) of rank 2, input 0 has (2×3×4) of rank 3",
                         tg::Error);
    CHECK_THROWS_WITH_AS(tg::concat({a, a}, 3), "concat: axis 3 out of range for (2×3×4) (rank 3)", tg::Error);
    CHECK_THROWS_WITH_AS(tg::concat({a, a}, -4), "concat: axis -4 out of range for (2×3×4) (rank 3)", tg::Error);
    CHECK_THROWS_WITH_AS(tg::concat({s, s}), "concat: input 0 is a scalar (rank 0); stack scalars instead", tg::Error);
    CHECK_THROWS_WITH_AS(tg::concat(std::vector<Tensor<double>>{}), "concat: no inputs", tg::Error);
    CHECK_THROWS_WITH_AS(tg::stack({a, b}), "stack: input 1 has shape (2×5×4), input 0 has (2×3×4): stacked tensors share one shape",
                         tg::Error);
    CHECK_THROWS_WITH_AS(tg::stack({c, c}, 3), "stack: axis 3 out of range for (2×3) (rank 3)", tg::Error);
    tg::Tape<double> tape;
    auto va = tape.variable(a), vb = tape.variable(b);
    CHECK_THROWS_WITH_AS(tg::concat({va, vb}, 0), doctest::Contains("extents must agree except along axis 0"), tg::Error);
}
