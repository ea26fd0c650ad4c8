// N-D geometry (Shape, Tensor sizes/strides/views) and NumPy broadcasting in the engine: the
// plumbing, with values checked against loops written out by hand.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <array>
#include <random>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
using tg::Shape;
using tg::Tensor;

TEST_CASE("a shape has a rank from 0 to kMaxRank, dims counted from either end, and reads rows × cols from its last two") {
    const Shape s{2, 3, 4};
    CHECK(s.rank() == 3);
    CHECK(s.dim(0) == 2);
    CHECK(s.dim(-1) == 4);
    CHECK(s.dim(-3) == 2);
    CHECK(s.numel() == 24);
    CHECK(s.rows() == 3);
    CHECK(s.cols() == 4);
    CHECK(fmt::format("{}", s) == "(2×3×4)");

    const Shape m{32, 16};  // the everyday 2-D shape
    CHECK(m.rank() == 2);
    CHECK(m.rows() == 32);
    CHECK(m.cols() == 16);
    CHECK(fmt::format("{}", m) == "(32×16)");

    const Shape v{5};
    CHECK(v.rank() == 1);
    CHECK(v.rows() == 1);
    CHECK(v.cols() == 5);
    CHECK(fmt::format("{}", v) == "(5)");

    const Shape scalar{};
    CHECK(scalar.rank() == 0);
    CHECK(scalar.numel() == 1);
    CHECK(scalar.rows() == 1);
    CHECK(scalar.cols() == 1);
    CHECK(fmt::format("{}", scalar) == "()");

    CHECK(Shape{1, 2, 3, 4, 5, 6}.rank() == tg::kMaxRank);
    CHECK(Shape{2, 3} != Shape{3, 2});
    CHECK(Shape{2, 3} != Shape{1, 2, 3});
    CHECK_THROWS_WITH_AS(s.dim(3), "shape: axis 3 out of range for (2×3×4) (rank 3)", tg::Error);
    CHECK_THROWS_WITH_AS(s.dim(-4), "shape: axis -4 out of range for (2×3×4) (rank 3)", tg::Error);
}

TEST_CASE("a shape above the largest rank is an Error naming the shape") {
    CHECK_THROWS_WITH_AS((Shape{1, 2, 3, 4, 5, 6, 7}),
                         "shape: (1×2×3×4×5×6×7) has rank 7, above the largest supported rank 6 (kMaxRank)",
                         tg::Error);
    const std::vector<int> dims{2, 2, 2, 2, 2, 2, 2};
    CHECK_THROWS_AS(Shape::from_range(dims.begin(), dims.end()), tg::Error);
    CHECK_THROWS_AS(Tensor<float>({1, 1, 1, 1, 1, 1, 1}), tg::Error);
}

TEST_CASE("tensors and nodes keep their sizes: 32 and 120 bytes") {
    CHECK(sizeof(Tensor<float>) == 32);
    CHECK(sizeof(Tensor<double>) == 32);
    CHECK(sizeof(tg::Node<float>) == 120);
    CHECK(sizeof(Shape) == 32);
}

TEST_CASE("an N-D tensor has sizes, contiguous strides, zeros, and reads its last two dims as rows × cols") {
    Tensor<float> t({2, 3, 4});
    CHECK(t.rank() == 3);
    CHECK(t.shape() == Shape{2, 3, 4});
    CHECK(t.dim(0) == 2);
    CHECK(t.dim(-2) == 3);
    CHECK(t.numel() == 24);
    CHECK(t.size() == 24);
    CHECK(t.rows() == 3);
    CHECK(t.cols() == 4);
    CHECK(t.is_contiguous());
    CHECK(t.strides()[0] == 12);
    CHECK(t.stride(1) == 4);
    CHECK(t.stride(-1) == 1);
    for (std::size_t i = 0; i < t.size(); ++i) CHECK(t[i] == 0.0f);

    Tensor<double> s(Shape{});  // rank 0
    CHECK(s.rank() == 0);
    CHECK(s.numel() == 1);
    CHECK(s.item() == 0.0);

    Tensor<double> v(Shape{3}, {1, 2, 3});
    CHECK(v.rank() == 1);
    CHECK(v.rows() == 1);
    CHECK(v.cols() == 3);
    CHECK(v.at({2}) == 3.0);

    Tensor<double> m(2, 3);  // today's 2-D constructor: rank 2
    CHECK(m.rank() == 2);
    CHECK(m.shape() == Shape{2, 3});
    CHECK(Tensor<double>().shape() == Shape{0, 0});
}

TEST_CASE("a tensor built from values with a shape is row-major, and at() checks every index") {
    Tensor<double> t(Shape{2, 2, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
    CHECK(t.at({0, 0, 0}) == 1);
    CHECK(t.at({0, 1, 2}) == 6);
    CHECK(t.at({1, 0, 1}) == 8);
    CHECK(t.at({1, 1, 2}) == 12);
    t.at({1, 1, 2}) = 42;
    CHECK(t[11] == 42);
    CHECK_THROWS_WITH_AS(t.at({1, 2, 0}), "tensor: index (1, 2, 0) outside (2×2×3)", tg::Error);
    CHECK_THROWS_WITH_AS(t.at({1, 1}), "tensor: index (1, 1) outside (2×2×3)", tg::Error);
    CHECK_THROWS_WITH_AS((Tensor<double>(Shape{2, 2, 2}, {1, 2, 3})), "tensor: 3 values given for shape (2×2×2)",
                         tg::Error);
}

TEST_CASE("tensors print with their N-D shape and nested rows; 2-D printing is unchanged") {
    CHECK(fmt::format("{}", Tensor<double>(2, 3, {1, 2, 3, 4, 5, 6})) == "Tensor(2×3) [[1, 2, 3], [4, 5, 6]]");
    CHECK(fmt::format("{}", Tensor<double>(Shape{2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8})) ==
          "Tensor(2×2×2) [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]");
    CHECK(fmt::format("{}", Tensor<double>(Shape{3}, {1, 2, 3})) == "Tensor(3) [1, 2, 3]");
    CHECK(fmt::format("{}", Tensor<double>(Shape{}, {5})) == "Tensor() 5");
    CHECK(fmt::format("{}", Tensor<float>({1, 8})) == "Tensor(1×8) [[0, 0, 0, ..., 0, 0, 0]]");
}

TEST_CASE("copying an N-D tensor copies its values and geometry; moving leaves an empty (0×0) tensor") {
    Tensor<double> a(Shape{2, 1, 3}, {1, 2, 3, 4, 5, 6});
    Tensor<double> b = a;
    b.at({1, 0, 2}) = -1;
    CHECK(a.at({1, 0, 2}) == 6);
    CHECK(b.shape() == Shape{2, 1, 3});
    Tensor<double> c = std::move(b);
    CHECK(c.shape() == Shape{2, 1, 3});
    CHECK(c.at({1, 0, 2}) == -1);
    CHECK(b.shape() == Shape{0, 0});  // NOLINT(bugprone-use-after-move): the moved-from state is specified
    CHECK(b.empty());
    Tensor<double> d;
    d = c;
    CHECK(d.shape() == Shape{2, 1, 3});
    d = Tensor<double>(2, 2);
    CHECK(d.shape() == Shape{2, 2});
    const Tensor<float> f = a.cast<float>();
    CHECK(f.shape() == Shape{2, 1, 3});
    CHECK(f.at({0, 0, 1}) == 2.0f);
}

TEST_CASE("a strided view reads through its strides, is not contiguous, and gathers when cloned") {
    Tensor<double> a(2, 3, {1, 2, 3, 4, 5, 6});
    // The transpose as a view: (3×2) with strides (1, 3).
    const std::array<std::int64_t, 2> st{1, 3};
    Tensor<double> t = Tensor<double>::strided(a.data(), Shape{3, 2}, st, a.resource());
    CHECK(!t.is_contiguous());
    CHECK(!t.owns());
    CHECK(t.shape() == Shape{3, 2});
    CHECK(t.at({2, 1}) == 6);
    CHECK(t.at({0, 1}) == 4);
    CHECK(fmt::format("{}", t) == "Tensor(3×2) [[1, 4], [2, 5], [3, 6]]");
    Tensor<double> c = t.clone(std::pmr::get_default_resource());
    CHECK(c.is_contiguous());
    CHECK(c.shape() == Shape{3, 2});
    for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 2; ++j) CHECK(c(i, j) == a(j, i));
    // A copy of a view is a view of the same memory.
    Tensor<double> t2 = t;
    CHECK(t2.data() == a.data());
    CHECK(!t2.is_contiguous());
    // Stride 0 repeats an element: a (1×3) row expanded to (2×2×3) without a copy.
    const std::array<std::int64_t, 3> e{0, 0, 1};
    Tensor<double> x = Tensor<double>::strided(a.data(), Shape{2, 2, 3}, e, a.resource());
    CHECK(x.at({1, 1, 2}) == 3);
    CHECK(x.clone(std::pmr::get_default_resource()).at({1, 0, 1}) == 2);
    CHECK_THROWS_AS(x.fill(0.0), tg::Error);  // nothing writes through a view
}

TEST_CASE("a strided constant given by reference is gathered, so kernels read contiguous values") {
    tg::Tape<double> tape;
    Tensor<double> a(2, 3, {1, 2, 3, 4, 5, 6});
    const std::array<std::int64_t, 2> st{1, 3};
    Tensor<double> t = Tensor<double>::strided(a.data(), Shape{3, 2}, st, a.resource());
    auto c = tape.constant_ref(t);
    CHECK(c.value().is_contiguous());
    auto w = tape.variable(Tensor<double>(3, 2, {1, 1, 1, 1, 1, 1}));
    auto y = tg::sum(c * w);
    CHECK(y.item() == 21);
    tape.backward(y);
    CHECK(tape.grad(w)(2, 1) == 6);
}

TEST_CASE("elementwise ops run on N-D tensors and their gradients keep the inputs' shapes") {
    tg::Tape<double> tape;
    Tensor<double> xv(Shape{2, 2, 2}, {1, -2, 3, -4, 5, -6, 7, -8});
    auto x = tape.variable(xv, "x");
    auto y = tg::sum(tg::square(x) * 0.5 + tg::tanh(x) * 0.0);
    tape.backward(y);
    const Tensor<double>& g = tape.grad(x);
    CHECK(g.shape() == Shape{2, 2, 2});
    for (std::size_t i = 0; i < 8; ++i) CHECK(g[i] == doctest::Approx(xv[i]));
    CHECK(x.shape() == Shape{2, 2, 2});
}

TEST_CASE("a 2-D op given an input of rank 3 is an Error naming the op and the shape") {
    tg::Tape<double> tape;
    auto x = tape.variable(Tensor<double>({2, 3, 4}));
    auto w = tape.variable(Tensor<double>(4, 5));
    auto b = tape.variable(Tensor<double>(1, 5));
    (void)w;  // (affine takes (…, k) since it became any-rank: tests/test_ndio.cpp)
    (void)b;
    CHECK_THROWS_WITH_AS(tg::concat_cols(x, x),
                         doctest::Contains("concat_cols: input 0 has shape (2×3×4) of rank 3; this op takes tensors of rank ≤ 2"),
                         tg::Error);
    CHECK_THROWS_WITH_AS(tg::one_hot(x, 3), doctest::Contains("one_hot: input 0 has shape (2×3×4) of rank 3"), tg::Error);
    // The numeric reading checks the same.
    CHECK_THROWS_AS(tg::apply(tg::Transpose{}, Tensor<double>({2, 3, 4})), tg::Error);
}

TEST_CASE("rank-0 and rank-1 inputs read as 1×1 and 1×n in 2-D ops") {
    tg::Tape<double> tape;
    auto v = tape.variable(Tensor<double>(Shape{3}, {1, 2, 3}));
    auto w = tape.variable(Tensor<double>(3, 2, {1, 0, 0, 1, 1, 1}));
    auto y = tg::matmul(v, w);
    CHECK(y.shape() == Shape{1, 2});
    CHECK(y.value()(0, 0) == 4);
    CHECK(y.value()(0, 1) == 5);
    tape.backward(tg::sum(y));
    CHECK(tape.grad(v).shape() == Shape{3});
    CHECK(tape.grad(v)[2] == 2);
}

TEST_CASE("a rank-0 loss seeds backward like a 1×1 one") {
    tg::Tape<double> tape;
    auto a = tape.variable(Tensor<double>(Shape{}, {3}));
    auto y = a * a;
    CHECK(y.shape() == Shape{});
    tape.backward(y);
    CHECK(tape.grad(a).item() == 6);
}

// ---- NumPy broadcasting ------------------------------------------------------------------------

TEST_CASE("broadcast shapes align on the right and stretch unit and missing axes") {
    CHECK(tg::broadcast_shape("add", Shape{2, 1, 4}, Shape{3, 1}) == Shape{2, 3, 4});
    CHECK(tg::broadcast_shape("add", Shape{5}, Shape{2, 3, 1}) == Shape{2, 3, 5});
    CHECK(tg::broadcast_shape("add", Shape{}, Shape{2, 3}) == Shape{2, 3});
    CHECK(tg::broadcast_shape("add", Shape{1, 1}, Shape{4}) == Shape{1, 4});
    CHECK(tg::broadcast_shape("add", Shape{6, 1, 1, 1, 1, 2}, Shape{3, 1, 1, 1, 1}) == Shape{6, 3, 1, 1, 1, 2});
    CHECK(tg::broadcastable(Shape{1, 1, 4}, Shape{4}));  // leading unit axes hold nothing
    CHECK(!tg::broadcastable(Shape{2, 4}, Shape{4}));
    CHECK_THROWS_WITH_AS(tg::broadcast_shape("mul", Shape{2, 3}, Shape{4, 3}),
                         "mul: shapes do not broadcast: (2×3) and (4×3)", tg::Error);
    CHECK_THROWS_WITH_AS(tg::broadcast_shape("add", Shape{2, 3, 4}, Shape{3, 3}),
                         "add: shapes do not broadcast: (2×3×4) and (3×3)", tg::Error);
}

TEST_CASE("a binary op on shapes that do not broadcast is an Error naming both shapes, at the user's line") {
    tg::Tape<double> tape;
    auto a = tape.variable(Tensor<double>({2, 3, 4}));
    auto b = tape.variable(Tensor<double>({2, 4}));
    CHECK_THROWS_WITH_AS(a + b, doctest::Contains("add: shapes do not broadcast: (2×3×4) and (2×4)"), tg::Error);
}

namespace {

// Row-major multi-index of flat index i in shape s.
std::array<std::size_t, tg::kMaxRank> unravel(std::size_t i, const Shape& s) {
    std::array<std::size_t, tg::kMaxRank> idx{};
    for (std::size_t k = s.rank(); k-- > 0;) {
        idx[k] = i % s[k];
        i /= s[k];
    }
    return idx;
}
// The element of x (shape xs, right-aligned in out's rank) at out's multi-index.
double at_broadcast(const Tensor<double>& x, const std::array<std::size_t, tg::kMaxRank>& out_idx, std::size_t out_rank) {
    const Shape xs = x.shape();
    std::size_t off = 0;
    for (std::size_t k = 0; k < xs.rank(); ++k) {
        const std::size_t ok = out_rank - xs.rank() + k;
        off = off * xs[k] + (xs[k] == 1 ? 0 : out_idx[ok]);
    }
    return x[off];
}

Tensor<double> random(Shape s, std::mt19937_64& rng) {
    std::uniform_real_distribution<double> u(-1, 1);
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = u(rng);
    return t;
}

}  // namespace

TEST_CASE("broadcast kernels agree with the index-by-index definition on every tier") {
    // Pairs that hit tier (a) (same elements), (b) (two axes after coalescing) and (c) (more).
    const std::vector<std::pair<Shape, Shape>> pairs{
        {{2, 3, 4}, {2, 3, 4}}, {{3, 4}, {4}},          {{2, 3, 4}, {4}},          {{2, 3, 4}, {3, 1}},
        {{2, 1, 4}, {3, 1}},    {{2, 3, 4, 5}, {3, 1, 5}}, {{1}, {2, 2, 2, 2, 2}}, {{}, {3, 2}},
        {{2, 1, 3, 1, 2}, {1, 2, 1, 3, 1}}, {{1, 1, 4}, {2, 3, 1}}, {{2, 3}, {2, 1}},
    };
    std::mt19937_64 rng(7);
    for (const auto& [sa, sb] : pairs) {
        CAPTURE(fmt::format("{} {}", sa, sb));
        Tensor<double> a = random(sa, rng), b = random(sb, rng);
        const Shape so = tg::broadcast_shape("test", sa, sb);
        Tensor<double> out(so);
        tg::broadcast_binary(out, a, b, [](double x, double y) { return x - 2 * y; });
        for (std::size_t i = 0; i < out.size(); ++i) {
            const auto idx = unravel(i, so);
            CHECK(out[i] == at_broadcast(a, idx, so.rank()) - 2 * at_broadcast(b, idx, so.rank()));
        }
        // sum_to: a's adjoint is the output's, summed over a's stretched axes.
        Tensor<double> g = random(so, rng);
        Tensor<double> da(sa);
        tg::sum_to(da, g);
        Tensor<double> want(sa);
        for (std::size_t i = 0; i < g.size(); ++i) {
            const auto idx = unravel(i, so);
            std::size_t off = 0;
            for (std::size_t k = 0; k < sa.rank(); ++k)
                off = off * sa[k] + (sa[k] == 1 ? 0 : idx[so.rank() - sa.rank() + k]);
            want[off] += g[i];
        }
        for (std::size_t i = 0; i < da.size(); ++i) CHECK(da[i] == doctest::Approx(want[i]).epsilon(1e-14));
        // write_broadcast_vjp: dB = Σ (g ⊙ a) over b's stretched axes, written and then added.
        Tensor<double> db(sb);
        tg::write_broadcast_vjp(db, false, g, a, [](double u, double v) { return u * v; });
        Tensor<double> ga(so);
        tg::broadcast_binary(ga, g, a, [](double u, double v) { return u * v; });
        Tensor<double> want_b(sb);
        tg::sum_to(want_b, ga);
        for (std::size_t i = 0; i < db.size(); ++i) CHECK(db[i] == doctest::Approx(want_b[i]).epsilon(1e-14));
        tg::write_broadcast_vjp(db, true, g, a, [](double u, double v) { return u * v; });
        for (std::size_t i = 0; i < db.size(); ++i) CHECK(db[i] == doctest::Approx(2 * want_b[i]).epsilon(1e-14));
    }
}

TEST_CASE("sum_to refuses a target the input does not stretch from") {
    Tensor<double> in({2, 3, 4});
    Tensor<double> out({3, 3});
    CHECK_THROWS_WITH_AS(tg::sum_to(out, in), "sum_to: cannot sum (2×3×4) down to (3×3)", tg::Error);
}

TEST_CASE("the engine sums an N-D adjoint back to each input's shape") {
    tg::Tape<double> tape;
    std::mt19937_64 rng(3);
    auto a = tape.variable(random({2, 1, 4}, rng), "a");
    auto b = tape.variable(random({3, 1}, rng), "b");
    auto c = tape.variable(random({}, rng), "c");
    auto y = tg::sum((a * b) + c);
    tape.backward(y);
    CHECK(tape.grad(a).shape() == Shape{2, 1, 4});
    CHECK(tape.grad(b).shape() == Shape{3, 1});
    CHECK(tape.grad(c).shape() == Shape{});
    CHECK(tape.grad(c).item() == 24);  // c stretched over 2·3·4 elements
    // ∂/∂a[i,0,k] = Σⱼ b[j]
    const double sb = b.value()[0] + b.value()[1] + b.value()[2];
    for (std::size_t i = 0; i < 8; ++i) CHECK(tape.grad(a)[i] == doctest::Approx(sb));
}

namespace {
// A user op whose VJP returns gᵀ: (4×3) for a (3×4) input.
struct BadVjp {
    static constexpr std::string_view name = "bad_vjp";
    static constexpr std::size_t arity = 1;
    Shape shape(Shape x) const { return x; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i];
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V&, const V&) const {
        return tg::apply(tg::Transpose{}, g);
    }
};
}  // namespace

TEST_CASE("an adjoint that is neither the input's shape nor broadcasts to it is an Error naming the op") {
    tg::Tape<double> tape;
    auto x = tape.variable(Tensor<double>(3, 4));
    auto y = tg::sum(tg::apply(BadVjp{}, x));
    CHECK_THROWS_WITH_AS(tape.backward(y), doctest::Contains("bad_vjp: the VJP of input 0 returned an adjoint of shape (4×3) for an input of shape (3×4)"),
                         tg::Error);
}
