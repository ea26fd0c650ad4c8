// Batched matmul (ops/linalg.hpp): torch.matmul's semantics at rank ≥ 3 — (…, m, k)·(…, k, n) with
// broadcast batch axes — checked against a loop of 2-D products; transposed views handed to BLAS
// as a flag (never copied); the adjoint of a stretched batch axis summed back; the rank-2 path
// unchanged; errors naming the shapes. (Gradients against finite differences, first and second
// order: the op table, tests/op_cases.hpp.)
#include <doctest/doctest.h>

#include <random>
#include <vector>

#include <tapegrad/nn.hpp>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
using tg::Shape;
using tg::Tensor;

namespace {
template <class T>
Tensor<T> random(Shape s, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    Tensor<T> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<T>(u(rng));
    return t;
}
// The 2-D matrix at batch index `b` (row-major over the batch axes) of a contiguous tensor,
// with the batch axes of `full` stretched (broadcast reading).
template <class T>
Tensor<T> batch_of(const Tensor<T>& x, const Shape& full_batch, std::size_t b) {
    const Shape s = x.shape();
    const std::size_t r = s.rank(), rows = s[r - 2], cols = s[r - 1], nr = full_batch.rank();
    std::size_t off = 0, stride = rows * cols, rem = b;
    std::vector<std::size_t> idx(nr);
    for (std::size_t j = nr; j-- > 0;) {
        idx[j] = rem % full_batch[j];
        rem /= full_batch[j];
    }
    for (std::size_t j = nr, xr = r - 2; j-- > 0 && xr-- > 0;) {
        const std::size_t d = s[xr];
        off += (d == 1 ? 0 : idx[j]) * stride;
        stride *= d;
    }
    Tensor<T> m(rows, cols);
    for (std::size_t i = 0; i < rows * cols; ++i) m[i] = x.data()[off + i];
    return m;
}
template <class T>
double max_diff(const Tensor<T>& a, const Tensor<T>& b) {
    REQUIRE(a.shape() == b.shape());
    double d = 0;
    for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(double(a[i]) - double(b[i])));
    return d;
}
}  // namespace

TEST_CASE_TEMPLATE("batched matmul equals a loop of 2-D products over broadcast batch axes", T, float, double) {
    struct Case {
        Shape a, b, out;
    };
    // Sizes above BLAS's small-product cut-off (512 multiply-adds) and below it.
    const std::vector<Case> cases = {
        {{3, 4, 5}, {3, 5, 6}, {3, 4, 6}},
        {{2, 1, 9, 8}, {3, 8, 10}, {2, 3, 9, 10}},
        {{7, 9, 8}, {8, 10}, {7, 9, 10}},       // shared right operand: one GEMM of 63 rows
        {{9, 8}, {2, 2, 8, 10}, {2, 2, 9, 10}},  // shared left operand
        {{1, 2, 1, 2, 3}, {2, 1, 2, 3, 2}, {2, 2, 2, 2, 2}},
        {{2, 0, 3}, {1, 3, 4}, {2, 0, 4}},
    };
    for (const auto& c : cases) {
        CAPTURE(c.a);
        CAPTURE(c.b);
        const Tensor<T> a = random<T>(c.a, 1), b = random<T>(c.b, 2);
        const Tensor<T> y = tg::matmul(a, b);
        REQUIRE(y.shape() == c.out);
        const Shape batch = Shape::from_range(c.out.dims().begin(), c.out.dims().end() - 2);
        const std::size_t mn = c.out.rows() * c.out.cols();
        for (std::size_t i = 0; i < batch.numel(); ++i) {
            const Tensor<T> ref = tg::matmul(batch_of(a, batch, i), batch_of(b, batch, i));
            for (std::size_t j = 0; j < mn; ++j) CHECK(double(y[i * mn + j]) == doctest::Approx(double(ref[j])).epsilon(1e-5));
        }
    }
}

TEST_CASE("a transposed or permuted operand goes to BLAS as a flag, not a copy; a view with no unit stride is gathered") {
    tg::Tape<double> tape;
    auto q = tape.variable(random<double>({2, 3, 16, 8}, 3), "q");
    auto k = tape.variable(random<double>({2, 3, 16, 8}, 4), "k");
    const std::size_t copies = tg::detail::matmul_operand_copies;
    auto s = tg::matmul(q, tg::transpose(k, -1, -2));  // Q·Kᵀ through the view
    auto ref = tg::matmul(q, k, false, true);          // Q·Kᵀ through the flag
    CHECK(s.shape() == Shape{2, 3, 16, 16});
    CHECK(max_diff(s.value(), ref.value()) == 0.0);
    // (B, T, H, D) permuted to (B, H, T, D): its last axis keeps unit stride.
    auto x = tape.variable(random<double>({2, 16, 3, 8}, 5), "x");
    auto p = tg::matmul(tg::permute(x, {0, 2, 1, 3}), tg::transpose(k, -1, -2));
    tape.backward(tg::sum(s * s) + tg::sum(p));
    CHECK(tg::detail::matmul_operand_copies == copies);  // forward and backward: no copy
    // Compare the gradients of the view form with the flag form.
    tg::Tape<double> t2;
    auto q2 = t2.variable(random<double>({2, 3, 16, 8}, 3));
    auto k2 = t2.variable(random<double>({2, 3, 16, 8}, 4));
    auto x2 = t2.variable(random<double>({2, 16, 3, 8}, 5));
    auto s2 = tg::matmul(q2, k2, false, true);
    auto p2 = tg::matmul(tg::contiguous(tg::permute(x2, {0, 2, 1, 3})), k2, false, true);
    t2.backward(tg::sum(s2 * s2) + tg::sum(p2));
    CHECK(max_diff(tape.grad(q), t2.grad(q2)) < 1e-12);
    CHECK(max_diff(tape.grad(k), t2.grad(k2)) < 1e-12);
    CHECK(max_diff(tape.grad(x), t2.grad(x2)) < 1e-12);
    // Every other column of the last axis: no unit stride, so BLAS gets a gathered copy.
    auto w = tape.variable(random<double>({3, 16, 16}, 6));
    auto y = tg::matmul(tg::slice_axis(w, -1, 0, 16, 2), tg::transpose(tg::select(k, 0, 0), -1, -2));
    CHECK(y.shape() == Shape{3, 16, 16});
    CHECK(tg::detail::matmul_operand_copies == copies + 1);
}

TEST_CASE("a rank-2 contiguous product is today's single GEMM, bit for bit") {
    const Tensor<float> a = random<float>({64, 48}, 7), b = random<float>({48, 32}, 8);
    Tensor<float> ref(64, 32);
    tg::gemm(false, false, 1.f, a, b, 0.f, ref);
    const Tensor<float> y = tg::matmul(a, b);
    for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(y[i] == ref[i]);
    tg::Tape<float> tape;
    auto va = tape.variable(a), vb = tape.variable(b);
    auto vy = tg::matmul(va, vb);
    for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(vy.value()[i] == ref[i]);
}

TEST_CASE("a weight shared by every batch gets the sum of the per-batch adjoints (one GEMM, as the flattened product)") {
    tg::Tape<double> tape;
    auto x = tape.variable(random<double>({4, 5, 24}, 9), "x");
    auto w = tape.variable(random<double>({24, 7}, 10), "w");
    tape.backward(tg::sum(tg::square(tg::matmul(x, w))));
    tg::Tape<double> t2;
    auto x2 = t2.variable(random<double>({20, 24}, 9));
    auto w2 = t2.variable(random<double>({24, 7}, 10));
    t2.backward(tg::sum(tg::square(tg::matmul(x2, w2))));
    REQUIRE(tape.grad(w).shape() == Shape{24, 7});
    for (std::size_t i = 0; i < w2.value().size(); ++i) CHECK(tape.grad(w)[i] == t2.grad(w2)[i]);
    for (std::size_t i = 0; i < x2.value().size(); ++i) CHECK(tape.grad(x)[i] == t2.grad(x2)[i]);
}

TEST_CASE("the adjoint of an operand stretched along batch axes is summed back to its shape") {
    const Tensor<double> av = random<double>({2, 1, 9, 8}, 11), bv = random<double>({5, 8, 10}, 12);
    tg::Tape<double> tape;
    auto a = tape.variable(av), b = tape.variable(bv);
    tape.backward(tg::sum(tg::square(tg::matmul(a, b))));
    // The same product with both operands materialised at the full batch shape (2, 5, …).
    tg::Tape<double> t2;
    auto a2 = t2.variable(av), b2 = t2.variable(bv);
    auto ae = tg::contiguous(tg::expand(a2, Shape{2, 5, 9, 8}));
    auto be = tg::contiguous(tg::expand(b2, Shape{2, 5, 8, 10}));
    t2.backward(tg::sum(tg::square(tg::matmul(ae, be))));
    CHECK(tape.grad(a).shape() == Shape{2, 1, 9, 8});
    CHECK(tape.grad(b).shape() == Shape{5, 8, 10});
    CHECK(max_diff(tape.grad(a), t2.grad(a2)) < 1e-12);
    CHECK(max_diff(tape.grad(b), t2.grad(b2)) < 1e-12);
    // Second order: the recorded VJPs are batched matmuls too.
    tg::Tape<double> t3;
    auto a3 = t3.variable(av), b3 = t3.variable(bv);
    auto l = tg::sum(tg::square(tg::matmul(a3, b3)));
    t3.backward(l, {.create_graph = true});
    auto ga = t3.grad_var(a3);
    CHECK(ga.shape() == Shape{2, 1, 9, 8});
    CHECK(max_diff(ga.value(), tape.grad(a)) < 1e-12);
}

TEST_CASE("batched matmul errors name both shapes") {
    const Tensor<double> a({2, 3, 4}), b({2, 5, 6}), c({3, 4, 6});
    CHECK_THROWS_WITH_AS(tg::matmul(a, b), "matmul: inner dimensions differ: (2×3×4)·(2×5×6)", tg::Error);
    CHECK_THROWS_WITH_AS(tg::matmul(a, b, false, true), "matmul: inner dimensions differ: (2×3×4)·(2×5×6)ᵀ", tg::Error);
    CHECK_THROWS_WITH_AS(tg::matmul(a, c),
                         "matmul: the batch axes of (2×3×4) and (3×4×6) do not broadcast: (2) and (3)", tg::Error);
    CHECK_THROWS_WITH_AS(tg::matmul(a, Tensor<double>(Shape{4})),
                         "matmul: (2×3×4)·(4): a rank-1 operand beside a batched one; unsqueeze it to a matrix",
                         tg::Error);
    tg::Tape<double> tape;
    auto va = tape.variable(a), vc = tape.variable(c);
    CHECK_THROWS_WITH_AS(tg::matmul(va, vc), doctest::Contains("do not broadcast: (2) and (3)"), tg::Error);
}

TEST_CASE("nn::Linear on (…, in) inputs: the leading axes read as rows, the result shaped (…, out)") {
    namespace nn = tg::nn;
    for (int variant = 0; variant < 3; ++variant) {
        CAPTURE(variant);
        const nn::LinearOptions opt{.bias = variant != 1, .fold_bias = variant == 2, .bias_init = nn::Init::torch_default};
        nn::Rng r1(21), r2(21);
        nn::Linear<double> lin(6, 4, r1, opt), flat(6, 4, r2, opt);
        const Tensor<double> x = random<double>({2, 3, 5, 6}, 13);
        Tensor<double> x2 = x;
        tg::Tape<double> t1, t2;
        auto y = lin(t1, t1.variable(x));
        auto xf = t2.variable(tg::reshape(x2, Shape{30, 6}));
        auto yf = flat(t2, xf);
        REQUIRE(y.shape() == Shape{2, 3, 5, 4});
        for (std::size_t i = 0; i < yf.value().size(); ++i) CHECK(y.value()[i] == yf.value()[i]);
        t1.backward(tg::sum(tg::square(y)));
        t2.backward(tg::sum(tg::square(yf)));
        const auto& gw = lin.weight().grad;
        for (std::size_t i = 0; i < gw.size(); ++i) CHECK(gw[i] == flat.weight().grad[i]);
        if (variant == 0)
            for (std::size_t i = 0; i < 4; ++i) CHECK(lin.bias().grad[i] == doctest::Approx(flat.bias().grad[i]).epsilon(1e-13));
        // infer() on tensors: the same values.
        const Tensor<double> yi = lin.infer(x);
        REQUIRE(yi.shape() == Shape{2, 3, 5, 4});
        for (std::size_t i = 0; i < yi.size(); ++i) CHECK(yi[i] == doctest::Approx(yf.value()[i]).epsilon(1e-13));
    }
    nn::Rng rng(1);
    nn::Linear<double> lin(6, 4, rng);
    tg::Tape<double> tape;
    CHECK_THROWS_WITH_AS(lin(tape, tape.constant(Tensor<double>({2, 3, 5}))),
                         doctest::Contains("input has shape (2×3×5), expected 6 features along its last axis"), tg::Error);
}
