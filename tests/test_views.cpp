// View ops: reshape, permute/transpose, squeeze/unsqueeze, expand, slice/narrow/select, flatten,
// contiguous — their results alias the input (no copy) where they can, read through strides,
// and their VJPs put the adjoint back in the input's shape. (Gradients against finite
// differences: the op table, tests/op_cases.hpp.)
// Checked element access in this file, as in Debug builds (see tensor.hpp).
#define TAPEGRAD_CHECKED 1
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
using tg::Shape;
using tg::Tensor;

namespace {
Tensor<double> iota(Shape s) {
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<double>(i);
    return t;
}
}  // namespace

TEST_CASE("reshape of a contiguous value is a view of the same memory, with one −1 inferred") {
    tg::Tape<double> tape;
    auto x = tape.variable(iota({2, 3, 4}), "x");
    auto y = tg::reshape(x, {4, -1});
    CHECK(y.shape() == Shape{4, 6});
    CHECK(y.value().data() == x.value().data());
    CHECK(y.value().is_contiguous());
    CHECK(y.value().at({3, 5}) == 23);
    CHECK(tg::flatten(x).shape() == Shape{24});
    CHECK(tg::flatten(x, 1).shape() == Shape{2, 12});
    CHECK(tg::unsqueeze(x, 1).shape() == Shape{2, 1, 3, 4});
    CHECK(tg::unsqueeze(x, -1).shape() == Shape{2, 3, 4, 1});
    CHECK(tg::squeeze(tg::unsqueeze(x, 0), 0).shape() == Shape{2, 3, 4});
    CHECK_THROWS_WITH_AS(tg::reshape(x, {5, -1}), doctest::Contains("reshape: cannot infer the −1"), tg::Error);
    CHECK_THROWS_WITH_AS(tg::reshape(x, {-1, -1}), doctest::Contains("reshape: more than one −1"), tg::Error);
    CHECK_THROWS_WITH_AS(tg::reshape(x, Shape{5, 5}),
                         doctest::Contains("reshape: cannot reshape (2×3×4) (24 elements) to (5×5) (25 elements)"),
                         tg::Error);
    CHECK_THROWS_WITH_AS(tg::squeeze(x, 0), doctest::Contains("squeeze: axis 0 of (2×3×4) has extent 2, not 1"),
                         tg::Error);
    // The adjoint comes back in x's shape.
    tape.backward(tg::sum(y * y));
    CHECK(tape.grad(x).shape() == Shape{2, 3, 4});
    CHECK(tape.grad(x).at({1, 2, 3}) == 2 * 23);
}

TEST_CASE("permute and transpose(i, j) are strided views; a 2-D op reads them gathered") {
    tg::Tape<double> tape;
    auto x = tape.variable(iota({2, 3, 4}), "x");
    auto p = tg::permute(x, {2, 0, 1});
    CHECK(p.shape() == Shape{4, 2, 3});
    CHECK(p.value().data() == x.value().data());
    CHECK(!p.value().is_contiguous());
    CHECK(p.value().at({3, 1, 2}) == x.value().at({1, 2, 3}));
    auto t = tg::transpose(x, 0, -1);
    CHECK(t.shape() == Shape{4, 3, 2});
    CHECK(t.value().at({1, 2, 0}) == x.value().at({0, 2, 1}));
    CHECK_THROWS_WITH_AS(tg::permute(x, {0, 0, 1}), doctest::Contains("permute: axis 0 appears twice"), tg::Error);
    CHECK_THROWS_WITH_AS(tg::permute(x, {0, 1}), doctest::Contains("permute: 2 axes given for (2×3×4)"), tg::Error);
    // A 2-D transposed view into matmul: BLAS reads it through a transpose flag, values as expected.
    auto a = tape.variable(iota({2, 3}), "a");
    auto at = tg::transpose(a, 0, 1);  // (3×2), strided
    auto m = tg::matmul(at, a);       // (3×3) = aᵀ·a
    auto ref = tg::matmul(a, a, true, false);
    for (std::size_t i = 0; i < 9; ++i) CHECK(m.value()[i] == ref.value()[i]);
    tape.backward(tg::sum(tg::square(p)) + tg::sum(m));
    CHECK(tape.grad(x).at({1, 2, 3}) == 2 * 23);
    // d/da Σ(aᵀa) through the view and directly: 2·a·1 summed — compare with the flag form.
    tg::Tape<double> t2;
    auto a2 = t2.variable(iota({2, 3}));
    t2.backward(tg::sum(tg::matmul(a2, a2, true, false)));
    CHECK(tg::max_abs_diff(tape.grad(a), t2.grad(a2)) < 1e-12);
}

TEST_CASE("expand stretches unit and new axes with stride 0, and its adjoint is summed back") {
    tg::Tape<double> tape;
    auto b = tape.variable(Tensor<double>(Shape{3, 1}, {1, 2, 3}), "b");
    auto e = tg::expand(b, Shape{2, 3, 4});
    CHECK(e.shape() == Shape{2, 3, 4});
    CHECK(e.value().data() == b.value().data());
    CHECK(e.value().strides()[0] == 0);
    CHECK(e.value().strides()[2] == 0);
    CHECK(e.value().at({1, 2, 3}) == 3);
    CHECK_THROWS_WITH_AS(tg::expand(b, Shape{2, 4}), doctest::Contains("expand: cannot stretch (3×1) to (2×4)"),
                         tg::Error);
    tape.backward(tg::sum(e * 1.5));
    CHECK(tape.grad(b).shape() == Shape{3, 1});
    for (std::size_t i = 0; i < 3; ++i) CHECK(tape.grad(b)[i] == doctest::Approx(1.5 * 8));
}

TEST_CASE("slice with a step, narrow and select are views; their adjoints land in zeros at the right places") {
    tg::Tape<double> tape;
    auto x = tape.variable(iota({5, 3}), "x");
    auto s = tg::slice_axis(x, 0, 1, 5, 2);  // rows 1 and 3
    CHECK(s.shape() == Shape{2, 3});
    CHECK(s.value().at({1, 2}) == 11);
    CHECK(s.value().data() == x.value().data() + 3);
    auto n = tg::narrow(x, -1, 1, 2);  // columns 1, 2
    CHECK(n.shape() == Shape{5, 2});
    CHECK(n.value().at({4, 0}) == 13);
    auto r = tg::select(x, 0, 4);  // row 4: (3)
    CHECK(r.shape() == Shape{3});
    CHECK(r.value().at({2}) == 14);
    auto c = tg::select(x, 1, 0);  // column 0: (5), stride 3
    CHECK(c.value().at({3}) == 9);
    CHECK_THROWS_WITH_AS(tg::slice_axis(x, 0, 2, 9), doctest::Contains("slice: range [2:9] outside axis 0 of (5×3)"),
                         tg::Error);
    CHECK_THROWS_WITH_AS(tg::slice_axis(x, 0, std::size_t(-1), 2),
                         doctest::Contains("slice: range [18446744073709551615:2] outside axis 0"), tg::Error);
    CHECK_THROWS_WITH_AS(tg::narrow(x, 0, 4, 2), doctest::Contains("narrow: 2 elements from 4 exceed axis 0"), tg::Error);
    CHECK_THROWS_WITH_AS(tg::select(x, 1, 3), doctest::Contains("select: index 3 outside axis 1 of (5×3)"), tg::Error);
    tape.backward(tg::sum(s) + tg::sum(r * 2.0));
    const Tensor<double>& g = tape.grad(x);
    // rows 1 and 3 get 1 from the slice; row 4 gets 2 from the select; the rest 0.
    for (std::size_t i = 0; i < 5; ++i)
        for (std::size_t j = 0; j < 3; ++j) CHECK(g.at({i, j}) == (i == 1 || i == 3 ? 1.0 : i == 4 ? 2.0 : 0.0));
}

TEST_CASE("contiguous gathers a strided view and is the identity on a contiguous one") {
    tg::Tape<double> tape;
    auto x = tape.variable(iota({2, 3}), "x");
    auto t = tg::transpose(x, 0, 1);
    auto c = tg::contiguous(t);
    CHECK(c.value().is_contiguous());
    CHECK(c.value().data() != x.value().data());
    CHECK(fmt::format("{}", c.value()) == "Tensor(3×2) [[0, 3], [1, 4], [2, 5]]");
    CHECK(tg::contiguous(x).value().data() == x.value().data());
    // Reshape of a strided view copies (torch.reshape), and reads the values in order.
    auto f = tg::reshape(t, {-1});
    CHECK(f.value().is_contiguous());
    CHECK(fmt::format("{}", f.value()) == "Tensor(6) [0, 3, 1, 4, 2, 5]");
}

TEST_CASE("view ops run on plain tensors too, and explain() names them") {
    Tensor<double> a = iota({2, 3, 4});
    Tensor<double> p = tg::permute(a, {1, 0, 2});
    CHECK(p.shape() == Shape{3, 2, 4});
    CHECK(p.at({2, 1, 3}) == a.at({1, 2, 3}));
    CHECK(tg::reshape(a, {6, 4}).at({5, 3}) == 23);

    tg::Tape<double> tape;
    auto x = tape.variable(iota({2, 3}), "X");
    auto y = tg::sum(tg::reshape(tg::permute(x, {1, 0}), {-1}));
    tape.backward(y);
    const std::string e = tape.explain(x);
    CHECK(e.find("permute") != std::string::npos);
    CHECK(e.find("reshape") != std::string::npos);
}

TEST_CASE("flat element access to a strided view is an error in checked builds") {
    // This file defines TAPEGRAD_CHECKED (as Debug and sanitizer builds do without NDEBUG).
    Tensor<double> a = iota({2, 3});
    Tensor<double> t = tg::transpose(a, 0, 1);
    CHECK(!t.is_contiguous());
    CHECK_THROWS_WITH_AS((void)t[1], doctest::Contains("tensor: flat element access to a strided view of shape (3×2)"),
                         tg::Error);
    CHECK_THROWS_AS((void)t(1, 0), tg::Error);
    CHECK(t.at({1, 0}) == 1);
    CHECK(tg::contiguous(t)[1] == 3);
}
