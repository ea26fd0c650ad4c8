// Index (int64) and mask (bool) tensors, and the ops that take them: values against hand-worked
// results, errors, the data kept in the tape's arena, and the int64 forms of cross-entropy and
// embedding against their T-valued forms. (Gradients: rows of tests/op_cases.hpp.)
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

#include "reference_cases.hpp"
#include "test_errors.hpp"

using namespace tapegrad;

TEST_CASE("index and mask tensors are built from values and a shape, and print as integers and 0/1") {
    IndexTensor i(Shape{2, 3}, {0, 1, 2, 3, 4, 5});
    CHECK(i.rank() == 2);
    CHECK(i.at({1, 2}) == 5);
    CHECK(fmt::format("{}", i) == "Tensor(2×3) [[0, 1, 2], [3, 4, 5]]");
    const std::int64_t big = (std::int64_t(1) << 40) + 1;  // not a float, exact as an index
    IndexTensor b(Shape{1}, {big});
    CHECK(b[0] == big);
    MaskTensor m(Shape{3}, {true, false, true});
    CHECK(fmt::format("{}", m) == "Tensor(3) [1, 0, 1]");
    CHECK(sizeof(IndexTensor) == 32);
    CHECK(sizeof(MaskTensor) == 32);
    CHECK(error_of([] { IndexTensor(Shape{2}, {1, 2, 3}); }) == "tensor: 3 values given for shape (2)");
}

// Index and mask tensors are not values: ops do not take them as operands.
static_assert(!Value<IndexTensor> && !Value<MaskTensor> && Value<Tensor<float>>);
template <class I>
concept TanhTakes = requires(const I& i) { tanh(i); };
template <class M>
concept MulTakes = requires(const Tensor<double>& x, const M& m) { x * m; };
static_assert(!TanhTakes<IndexTensor> && TanhTakes<Tensor<double>>);
static_assert(!MulTakes<MaskTensor> && MulTakes<Tensor<double>>);

TEST_CASE("comparisons give masks, with broadcasting; masks combine with !, & and |") {
    Tensor<float> x(Shape{2, 2}, {-1, 0, 2, 3});
    CHECK(fmt::format("{}", x > 0.0f) == "Tensor(2×2) [[0, 0], [1, 1]]");
    CHECK(fmt::format("{}", x <= 0.0f) == "Tensor(2×2) [[1, 1], [0, 0]]");
    Tensor<float> row(Shape{2}, {0, 3});
    CHECK(fmt::format("{}", x == row) == "Tensor(2×2) [[0, 0], [0, 1]]");
    CHECK(fmt::format("{}", (!(x > 0.0f)) | (x == 3.0f)) == "Tensor(2×2) [[1, 1], [0, 1]]");
    CHECK(fmt::format("{}", (x >= 0.0f) & (x < 3.0f)) == "Tensor(2×2) [[0, 1], [1, 0]]");
    IndexTensor l(Shape{3}, {0, -100, 2});
    CHECK(fmt::format("{}", l != std::int64_t(-100)) == "Tensor(3) [1, 0, 1]");
    Tape<float> tape;
    auto v = tape.variable(x);
    CHECK(fmt::format("{}", v > 1.0f) == "Tensor(2×2) [[0, 0], [1, 1]]");
    CHECK(contains(error_of([&] { (void)(x > Tensor<float>(Shape{3})); }), "(2×2)"));
}

TEST_CASE("arange counts in floats and in int64, as torch.arange") {
    CHECK(fmt::format("{}", arange<std::int64_t>(5)) == "Tensor(5) [0, 1, 2, 3, 4]");
    CHECK(fmt::format("{}", arange<std::int64_t>(1, 8, 3)) == "Tensor(3) [1, 4, 7]");
    CHECK(fmt::format("{}", arange<std::int64_t>(5, 0, -2)) == "Tensor(3) [5, 3, 1]");
    CHECK(fmt::format("{}", arange<double>(0, 1, 0.25)) == "Tensor(4) [0, 0.25, 0.5, 0.75]");
    CHECK(arange<float>(0, 1, 0.3f).size() == 4);
    CHECK(arange<std::int64_t>(3, 3).size() == 0);
    CHECK(contains(error_of([] { arange<std::int64_t>(0, 5, -1); }), "arange: step -1"));
    CHECK(contains(error_of([] { arange<double>(0, 5, 0); }), "arange: step 0"));
}

TEST_CASE("one_hot maps int64 labels of any shape to a T tensor with a class axis") {
    IndexTensor l(Shape{2, 2}, {0, 2, 1, 2});
    Tensor<double> o = one_hot<double>(l, 3);
    CHECK(o.shape() == Shape{2, 2, 3});
    CHECK(fmt::format("{}", o) == "Tensor(2×2×3) [[[1, 0, 0], [0, 0, 1]], [[0, 1, 0], [0, 0, 1]]]");
    CHECK(one_hot(l).shape() == Shape{2, 2, 3});  // classes inferred: max + 1
    CHECK(error_of([&] { one_hot(l, 2); }) ==
          "one_hot: label 2 at position (0, 1) of the labels (2×2) is not a class in [0, 2)");
}

TEST_CASE("gather and scatter_add follow torch along any axis") {
    Tensor<double> x(Shape{2, 3}, {1, 2, 3, 4, 5, 6});
    IndexTensor i1(Shape{2, 2}, {2, 0, 1, 1});
    CHECK(fmt::format("{}", gather(x, 1, i1)) == "Tensor(2×2) [[3, 1], [5, 5]]");
    IndexTensor i0(Shape{1, 3}, {1, 0, 1});
    CHECK(fmt::format("{}", gather(x, 0, i0)) == "Tensor(1×3) [[4, 2, 6]]");
    CHECK(fmt::format("{}", gather(x, -2, i0)) == "Tensor(1×3) [[4, 2, 6]]");
    Tensor<double> src(Shape{2, 2}, {10, 20, 30, 40});
    CHECK(fmt::format("{}", scatter_add(x, 1, i1, src)) == "Tensor(2×3) [[21, 2, 13], [4, 75, 6]]");
    // rank 3, axis 1
    Tensor<double> y(Shape{2, 3, 2});
    for (std::size_t k = 0; k < y.size(); ++k) y[k] = static_cast<double>(k);
    IndexTensor i3(Shape{2, 1, 2}, {2, 0, 1, 2});
    CHECK(fmt::format("{}", gather(y, 1, i3)) == "Tensor(2×1×2) [[[4, 1]], [[8, 11]]]");
}

TEST_CASE("scatter_add reads only the index-shaped corner of a larger source; its gradient is 0 outside it") {
    // x (3×4), index (2×3) along axis 0, src (3×5): torch reads src[i][j] for i < 2, j < 3 only.
    Tensor<double> x(Shape{3, 4});
    for (std::size_t k = 0; k < x.size(); ++k) x[k] = 0.5 * static_cast<double>(k) - 2;
    const IndexTensor idx(Shape{2, 3}, {2, 0, 2, 1, 2, 0});
    Tensor<double> src(Shape{3, 5});
    for (std::size_t k = 0; k < src.size(); ++k) src[k] = std::sin(static_cast<double>(k) + 1);
    // The reference loop (torch's definition): y = x; y[idx[i][j]][j] += src[i][j].
    Tensor<double> want = x.clone(std::pmr::get_default_resource());
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 3; ++j)
            want[static_cast<std::size_t>(idx[i * 3 + j]) * 4 + j] += src[i * 5 + j];
    const Tensor<double> y = scatter_add(x, 0, idx, src);
    REQUIRE(y.shape() == Shape{3, 4});
    for (std::size_t k = 0; k < y.size(); ++k) CHECK(y[k] == want[k]);  // the same additions, in order

    // VJP: dx = g, dsrc = g gathered at the index inside the corner, 0 outside it.
    Tape<double> tape;
    auto vx = tape.variable(x), vs = tape.variable(src);
    Tensor<double> w(Shape{3, 4});
    for (std::size_t k = 0; k < w.size(); ++k) w[k] = static_cast<double>(k + 1);
    tape.backward(sum(scatter_add(vx, 0, idx, vs) * tape.constant(w)));
    const Tensor<double> gs = tape.grad(vs), gx = tape.grad(vx);
    REQUIRE(gs.shape() == Shape{3, 5});
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 5; ++j) {
            CAPTURE(i);
            CAPTURE(j);
            const bool inside = i < 2 && j < 3;
            CHECK(gs[i * 5 + j] == (inside ? w[static_cast<std::size_t>(idx[i * 3 + j]) * 4 + j] : 0.0));
        }
    for (std::size_t k = 0; k < gx.size(); ++k) CHECK(gx[k] == w[k]);

    // The same at rank 3 along the last axis, against the loop.
    Tensor<double> x3(Shape{2, 2, 3});
    const IndexTensor i3(Shape{1, 2, 2}, {2, 0, 1, 1});
    Tensor<double> s3(Shape{2, 3, 4});
    for (std::size_t k = 0; k < s3.size(); ++k) s3[k] = static_cast<double>(k);
    const Tensor<double> y3 = scatter_add(x3, 2, i3, s3);
    Tensor<double> w3(Shape{2, 2, 3});
    for (std::size_t b = 0; b < 1; ++b)
        for (std::size_t r = 0; r < 2; ++r)
            for (std::size_t c = 0; c < 2; ++c)
                w3[b * 6 + r * 3 + static_cast<std::size_t>(i3[b * 4 + r * 2 + c])] += s3[b * 12 + r * 4 + c];
    for (std::size_t k = 0; k < y3.size(); ++k) CHECK(y3[k] == w3[k]);
}

TEST_CASE("gather, scatter_add and index_select name the op, the index and its position when out of range") {
    Tensor<double> x(Shape{2, 3});
    IndexTensor bad(Shape{2, 2}, {0, 1, 3, 0});
    CHECK(error_of([&] { gather(x, 1, bad); }) ==
          "gather: index 3 at position (1, 0) of the index (2×2) is outside [0, 3) (axis 1 of (2×3))");
    CHECK(error_of([&] { scatter_add(x, 1, bad, Tensor<double>(Shape{2, 2})); }) ==
          "scatter_add: index 3 at position (1, 0) of the index (2×2) is outside [0, 3) (axis 1 of (2×3))");
    IndexTensor neg(Shape{2}, {0, -1});
    CHECK(error_of([&] { index_select(x, 0, neg); }) ==
          "index_select: index -1 at position (1) of the index (2) is outside [0, 2) (axis 0 of (2×3))");
    CHECK(error_of([&] { gather(x, 0, IndexTensor(Shape{2})); }) ==
          "gather: index (2) has rank 1, the input (2×3) rank 2: they must have one rank");
    CHECK(error_of([&] { gather(x, 0, IndexTensor(Shape{1, 4})); }) ==
          "gather: index (1×4) is larger than the input (2×3) along axis 1 (only axis 0 may differ)");
    CHECK(error_of([&] { scatter_add(x, 1, IndexTensor(Shape{2, 2}), Tensor<double>(Shape{2, 1})); }) ==
          "scatter_add: index (2×2) is larger than the source (2×1) along axis 1 (the source must hold the index's "
          "shape)");
    CHECK(error_of([&] { scatter_add(x, 1, IndexTensor(Shape{2, 2}), Tensor<double>(Shape{4})); }) ==
          "scatter_add: source (4) has rank 1, the index (2×2) rank 2: they must have one rank");
    CHECK(error_of([&] { index_select(x, 0, IndexTensor(Shape{1, 1})); }) == "index_select: index (1×1) must have rank 1");
    CHECK(contains(error_of([&] { gather(x, 2, bad); }), "gather: axis 2 out of range for (2×3)"));
    // On a tape, the error also names the caller's line.
    Tape<double> tape;
    auto v = tape.variable(x);
    CHECK(contains(error_of([&] { gather(v, 1, bad); }), "test_index.cpp"));
}

TEST_CASE("index_select and index_add pick and accumulate whole slices") {
    Tensor<double> x(Shape{3, 2}, {1, 2, 3, 4, 5, 6});
    IndexTensor i(Shape{4}, {2, 0, 2, 1});
    CHECK(fmt::format("{}", index_select(x, 0, i)) == "Tensor(4×2) [[5, 6], [1, 2], [5, 6], [3, 4]]");
    CHECK(fmt::format("{}", index_select(x, 1, IndexTensor(Shape{3}, {1, 1, 0}))) ==
          "Tensor(3×3) [[2, 2, 1], [4, 4, 3], [6, 6, 5]]");
    Tensor<double> s(Shape{4, 2}, {1, 1, 10, 10, 100, 100, 1000, 1000});
    CHECK(fmt::format("{}", index_add(x, 0, i, s)) == "Tensor(3×2) [[11, 12], [1003, 1004], [106, 107]]");
}

TEST_CASE("where and masked_fill take boolean masks, broadcast, and agree with the 0/1-valued forms") {
    Tensor<double> a(Shape{2, 3}, {1, 2, 3, 4, 5, 6});
    Tensor<double> b(Shape{3}, {-1, -2, -3});
    MaskTensor c(Shape{2, 1}, {true, false});
    CHECK(fmt::format("{}", where(c, a, b)) == "Tensor(2×3) [[1, 2, 3], [-1, -2, -3]]");
    Tensor<double> cf(Shape{2, 1}, {1, 0});
    CHECK(max_abs_diff(where(c, a, b), where(cf, a, apply(BroadcastTo{a.shape()}, b))) == 0);
    MaskTensor m(Shape{3}, {false, true, false});
    CHECK(fmt::format("{}", masked_fill(a, m, 0.5)) == "Tensor(2×3) [[1, 0.5, 3], [4, 0.5, 6]]");
    CHECK(fmt::format("{}", masked_fill(a, a > 3.5, -1.0)) == "Tensor(2×3) [[1, 2, 3], [-1, -1, -1]]");
    CHECK(error_of([&] { masked_fill(a, MaskTensor(Shape{2}), 0.0); }) ==
          "masked_fill: mask (2) does not broadcast to (2×3)");
    CHECK(contains(error_of([&] { where(MaskTensor(Shape{4}), a, b); }), "where"));
    // Gradients flow only where the mask selects.
    Tape<double> tape;
    auto va = tape.variable(a), vb = tape.variable(b);
    tape.backward(sum(where(c, va, vb) * 2.0 + masked_fill(va, m, 7.0)));
    CHECK(fmt::format("{}", tape.grad(va)) == "Tensor(2×3) [[3, 2, 3], [1, 0, 1]]");
    CHECK(fmt::format("{}", tape.grad(vb)) == "Tensor(3) [2, 2, 2]");
}

TEST_CASE("tril and triu keep a triangle of the last two axes, with a diagonal offset") {
    Tensor<double> x(Shape{2, 3, 3});
    for (std::size_t k = 0; k < x.size(); ++k) x[k] = static_cast<double>(k + 1);
    CHECK(fmt::format("{}", select(tril(x), 0, 0)) == "Tensor(3×3) [[1, 0, 0], [4, 5, 0], [7, 8, 9]]");
    CHECK(fmt::format("{}", select(triu(x, 1), 0, 1)) == "Tensor(3×3) [[0, 11, 12], [0, 0, 15], [0, 0, 0]]");
    CHECK(fmt::format("{}", tril(Tensor<double>(Shape{2, 3}, {1, 2, 3, 4, 5, 6}), -1)) ==
          "Tensor(2×3) [[0, 0, 0], [4, 0, 0]]");
    CHECK(error_of([] { tril(Tensor<double>(Shape{3})); }) == "tril: (3) has rank 1; the triangle needs the last two axes");
}

TEST_CASE("softmax_cross_entropy with int64 labels equals the T-valued form, with ignore_index and reductions") {
    Tensor<double> z(Shape{3, 4}, {0.1, 2, -1, 0.5, 1, 1, 1, 1, -3, 0, 2, 0.2});
    IndexTensor l(Shape{3}, {1, 3, 2});
    Tensor<double> lf(Shape{3}, {1, 3, 2});
    Tensor<double> lcol(Shape{3, 1}, {1, 3, 2});
    CHECK(std::abs(softmax_cross_entropy(z, l).item() - softmax_cross_entropy(z, lcol).item()) < 1e-15);
    for (Reduction r : {Reduction::mean, Reduction::sum, Reduction::none}) {
        const CrossEntropyOptions opt{1, r};  // ignore the label 1
        CHECK(max_abs_diff(softmax_cross_entropy(z, l, opt), softmax_cross_entropy(z, lf, opt)) < 1e-15);
        Tape<double> t1, t2;
        auto a = t1.variable(z), b = t2.variable(z);
        t1.backward(sum(softmax_cross_entropy(a, l, opt)));
        t2.backward(sum(softmax_cross_entropy(b, t2.constant(lf), opt)));
        CHECK(max_abs_diff(t1.grad(a), t2.grad(b)) < 1e-15);
    }
    // (N, C, d) logits with (N, d) labels
    Tensor<double> z3(Shape{2, 3, 2});
    for (std::size_t k = 0; k < z3.size(); ++k) z3[k] = std::sin(static_cast<double>(k));
    IndexTensor l3(Shape{2, 2}, {0, 2, 1, -100});
    Tensor<double> l3f(Shape{2, 2}, {0, 2, 1, -100});
    CHECK(std::abs(softmax_cross_entropy(z3, l3).item() - softmax_cross_entropy(z3, l3f, CrossEntropyOptions{}).item()) <
          1e-15);
    CHECK(error_of([&] { softmax_cross_entropy(z, IndexTensor(Shape{3}, {1, 4, 0})); }) ==
          "softmax_cross_entropy: label 4 at position (1) of the labels (3) is not a class index in [0, 4)");
    CHECK(contains(error_of([&] { softmax_cross_entropy(z, IndexTensor(Shape{2})); }), "labels must have shape (3)"));
}

TEST_CASE("embedding with int64 indices equals the T-valued form, padding row included") {
    Tensor<double> w(Shape{4, 3});
    for (std::size_t k = 0; k < w.size(); ++k) w[k] = static_cast<double>(k) * 0.5 - 1;
    IndexTensor i(Shape{2, 3}, {3, 0, 1, 1, 2, 3});
    Tensor<double> fi(Shape{2, 3}, {3, 0, 1, 1, 2, 3});
    CHECK(max_abs_diff(embedding(i, w), embedding(fi, w)) == 0);
    CHECK(embedding(i, w).shape() == Shape{2, 3, 3});
    Tape<double> t1, t2;
    auto a = t1.variable(w), b = t2.variable(w);
    t1.backward(sum(tanh(embedding(i, a, 1))));
    t2.backward(sum(tanh(embedding(t2.constant(fi), b, 1))));
    CHECK(max_abs_diff(t1.grad(a), t2.grad(b)) < 1e-15);
    CHECK(error_of([&] { embedding(IndexTensor(Shape{2}, {0, 4}), w); }) ==
          "embedding: index 4 at position (1) of the indices (2) is not in [0, 4)");
}

TEST_CASE("an op keeps its index tensor in the tape's arena: the caller's tensor may go away before backward") {
    Tape<double> tape;
    Tensor<double> x(Shape{2, 3}, {1, 2, 3, 4, 5, 6});
    auto v = tape.variable(x);
    const std::size_t before = tape.arena().bytes_used();
    Var<double> y;
    {
        IndexTensor idx(Shape{2, 2}, {2, 0, 2, 2});
        y = gather(v, 1, idx);
        idx.fill(0);  // changed and destroyed: the node holds its own copy
    }
    CHECK(tape.arena().bytes_used() > before);
    tape.backward(sum(y * y), {.create_graph = true});
    CHECK(fmt::format("{}", tape.grad(v)) == "Tensor(2×3) [[2, 0, 6], [0, 0, 24]]");
    // second order: d/dx Σ (dL/dx) = 2 at each gathered use
    auto gx = tape.grad_var(v);
    tape.backward(sum(gx));
    CHECK(fmt::format("{}", tape.grad(v)) == "Tensor(2×3) [[2, 0, 2], [0, 0, 4]]");
}

// ---- PyTorch fixtures (tests/reference/index_fixtures.py, PyTorch 1.13, double) -----------------

#include "index_fixtures.hpp"

namespace {
Tensor<double> seq(const Shape& s, double a = 1.0, double b = 0.0) {
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = std::sin(a * static_cast<double>(i + 1) + b);
    return t;
}
// ≤ 1e-12 · max(1, ‖reference‖∞) (reference_cases.hpp).
void check_fixture(const std::string& key, const Tensor<double>& got) {
    check_fixture_values(key, got, index_fixtures().at(key));
}
// out = f(inputs…) on a tape; loss = Σ out ⊙ c; out and every input's gradient checked.
template <class F>
void check_case(const std::string& name, std::vector<Tensor<double>> inputs, std::vector<std::string> names, F f) {
    Tape<double> tape;
    std::vector<Var<double>> v;
    for (const auto& x : inputs) v.push_back(tape.variable(x));
    Var<double> y = f(v);
    tape.backward(sum(y * tape.constant(seq(y.shape(), 0.9, 0.1))));
    check_fixture(name + "_y", y.value().clone(std::pmr::get_default_resource()));
    for (std::size_t i = 0; i < v.size(); ++i) check_fixture(name + "_d" + names[i], tape.grad(v[i]));
}
}  // namespace

TEST_CASE("gather, scatter_add, index_select, index_add, where, masked_fill, tril, triu, int64 cross-entropy "
          "and embedding match PyTorch 1.13 in double") {
    using Vs = std::vector<Var<double>>;
    const IndexTensor gi(Shape{2, 2, 4}, {2, 0, 1, 2, 1, 1, 0, 0, 0, 2, 2, 1, 2, 2, 2, 0});
    check_case("gather", {seq({2, 3, 4})}, {"x"}, [&](Vs& v) { return gather(v[0], 1, gi); });
    const IndexTensor si(Shape{2, 4}, {2, 0, 1, 2, 2, 1, 0, 2});
    check_case("scatter_add", {seq({3, 4}), seq({2, 4}, 0.7)}, {"x", "s"},
               [&](Vs& v) { return scatter_add(v[0], 0, si, v[1]); });
    const IndexTensor ii(Shape{3}, {3, 0, 3});
    check_case("index_select", {seq({3, 4, 2})}, {"x"}, [&](Vs& v) { return index_select(v[0], 1, ii); });
    check_case("index_add", {seq({3, 4, 2}), seq({3, 3, 2}, 0.3)}, {"x", "s"},
               [&](Vs& v) { return index_add(v[0], 1, ii, v[1]); });
    const MaskTensor cond(Shape{2, 1}, {true, false});
    check_case("where", {seq({2, 3}), seq({3}, 1.3)}, {"a", "b"}, [&](Vs& v) { return where(cond, v[0], v[1]); });
    const MaskTensor mask(Shape{3, 1}, {true, false, true});
    check_case("masked_fill", {seq({2, 3, 4})}, {"x"}, [&](Vs& v) { return masked_fill(v[0], mask, 0.25); });
    check_case("tril", {seq({3, 4})}, {"x"}, [&](Vs& v) { return tril(v[0], -1); });
    check_case("triu", {seq({2, 3, 3})}, {"x"}, [&](Vs& v) { return triu(v[0], 1); });
    const IndexTensor lab(Shape{3}, {1, 4, -100});
    check_case("ce_mean", {seq({3, 5})}, {"z"}, [&](Vs& v) { return softmax_cross_entropy(v[0], lab); });
    const IndexTensor lab3(Shape{2, 2}, {0, 2, 1, 1});
    check_case("ce_none", {seq({2, 3, 2})}, {"z"}, [&](Vs& v) {
        return softmax_cross_entropy(v[0], lab3, CrossEntropyOptions{1, Reduction::none});
    });
    const IndexTensor ei(Shape{2, 3}, {4, 2, 0, 2, 2, 1});
    check_case("embedding", {seq({5, 3})}, {"w"}, [&](Vs& v) { return embedding(ei, v[0], 2); });
}
