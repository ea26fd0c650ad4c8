// Transformer ops (ops/transformer.hpp): gelu against PyTorch's values, layer_norm against its
// definition, embedding's scatter-add VJP and padding row, where / masked_fill / the causal mask,
// scaled_dot_product_attention against the composed formula, the fully masked row, errors naming
// the op and shapes, explain() of one attention head. (Gradients against finite differences, first
// and second order: the op table, tests/op_cases.hpp, block "gpt".)
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <tapegrad/ops/transformer.hpp>
#include <tapegrad/tapegrad.hpp>
#include <vector>

#include "reference_cases.hpp"

namespace tg = tapegrad;
using tg::Shape;
using tg::Tensor;

namespace {
Tensor<double> random(Shape s, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = u(rng);
    return t;
}
double max_diff(const Tensor<double>& a, const Tensor<double>& b) {
    REQUIRE(a.shape() == b.shape());
    double d = 0;
    for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
    return d;
}
}  // namespace

TEST_CASE("gelu matches torch.nn.functional.gelu, exact and tanh") {
    const Tensor<double> x(Shape{2}, {1.0, -1.0});
    const Tensor<double> e = tg::gelu(x);
    CHECK(e[0] == doctest::Approx(0.8413447460685429).epsilon(1e-15));
    CHECK(e[1] == doctest::Approx(-0.15865525393145707).epsilon(1e-15));
    const Tensor<double> t = tg::gelu(Tensor<double>(Shape{2}, {1.0, -0.5}), "tanh");
    CHECK(t[0] == doctest::Approx(0.8411919906082768).epsilon(1e-15));
    CHECK(t[1] == doctest::Approx(-0.15428599017485606).epsilon(1e-15));
    CHECK_THROWS_WITH_AS(tg::gelu(x, "erf"),
                         doctest::Contains("gelu: approximate must be \"none\" or \"tanh\""), tg::Error);
}

TEST_CASE("layer_norm equals (x − mean)/sqrt(var + eps) ⊙ w + b over the trailing axes") {
    const Tensor<double> x = random(Shape{2, 3, 4}, 1), w = random(Shape{4}, 2), b = random(Shape{4}, 3);
    const Tensor<double> y = tg::layer_norm(x, Shape{4}, w, b, 1e-5);
    for (std::size_t r = 0; r < 6; ++r) {
        double mu = 0, var = 0;
        for (std::size_t j = 0; j < 4; ++j) mu += x[r * 4 + j] / 4;
        for (std::size_t j = 0; j < 4; ++j) var += (x[r * 4 + j] - mu) * (x[r * 4 + j] - mu) / 4;
        for (std::size_t j = 0; j < 4; ++j)
            CHECK(y[r * 4 + j] ==
                  doctest::Approx((x[r * 4 + j] - mu) / std::sqrt(var + 1e-5) * w[j] + b[j]).epsilon(1e-13));
    }
    // Over the last two axes, no affine: every (3×4) block has mean 0 and biased variance ≈ 1.
    const Tensor<double> z = tg::layer_norm<Tensor<double>>(x, Shape{3, 4}, nullptr, nullptr, 0.0);
    for (std::size_t m = 0; m < 2; ++m) {
        double s = 0, q = 0;
        for (std::size_t j = 0; j < 12; ++j) s += z[m * 12 + j], q += z[m * 12 + j] * z[m * 12 + j];
        CHECK(std::abs(s) < 1e-12);
        CHECK(q / 12 == doctest::Approx(1.0).epsilon(1e-12));
    }
    CHECK_THROWS_WITH_AS(
        tg::layer_norm(x, Shape{3}, w, b),
        doctest::Contains("layer_norm: normalized_shape (3) is not the trailing shape of the input"),
        tg::Error);
    CHECK_THROWS_WITH_AS(tg::layer_norm(x, Shape{4}, b, Tensor<double>(Shape{3})),
                         doctest::Contains("layer_norm: bias (3) must have the normalized shape (4)"),
                         tg::Error);
}

TEST_CASE("embedding picks rows; its VJP scatter-adds into the rows used, none into padding_idx") {
    const Tensor<double> w = random(Shape{5, 3}, 4);
    const Tensor<double> idx(Shape{2, 2}, {1, 3, 1, 0});
    const Tensor<double> y = tg::embedding(idx, w);
    REQUIRE(y.shape() == Shape{2, 2, 3});
    for (std::size_t p = 0; p < 4; ++p)
        for (std::size_t j = 0; j < 3; ++j)
            CHECK(y[p * 3 + j] == w[static_cast<std::size_t>(idx[p]) * 3 + j]);

    for (std::ptrdiff_t pad : {std::ptrdiff_t(-1), std::ptrdiff_t(1)}) {
        tg::Tape<double> tape;
        auto W = tape.variable(w, "W");
        auto I = tape.constant(idx, "I");
        auto Y = pad < 0 ? tg::embedding(I, W) : tg::embedding(I, W, pad);
        tape.backward(tg::sum(Y * tape.constant(random(Shape{2, 2, 3}, 9))));
        const Tensor<double> g = tape.grad(W), c = random(Shape{2, 2, 3}, 9);
        for (std::size_t j = 0; j < 3; ++j) {
            CHECK(g[0 * 3 + j] == doctest::Approx(c[9 + j]));  // row 0: position 3
            CHECK(g[1 * 3 + j] == doctest::Approx(pad == 1 ? 0.0 : c[0 + j] + c[6 + j]));  // row 1 twice
            CHECK(g[2 * 3 + j] == 0.0);                                                    // unused
            CHECK(g[3 * 3 + j] == doctest::Approx(c[3 + j]));
        }
        // The padding row still reads its values (as torch): only its gradient is cut.
        CHECK(Y.value()[0] == w[3]);
    }
    CHECK_THROWS_WITH_AS(
        tg::embedding(Tensor<double>(Shape{3}, {0, 5, 1}), w),
        doctest::Contains("embedding: index 5 at position 1 of the indices (3) is not an integer "
                          "in [0, 5)"),
        tg::Error);
    CHECK_THROWS_WITH_AS(tg::embedding(Tensor<double>(Shape{2}, {0.5, 1}), w),
                         doctest::Contains("embedding: index 0.5 at position 0"), tg::Error);
    CHECK_THROWS_WITH_AS(tg::embedding(idx, w, 5), doctest::Contains("embedding: padding_idx 5 out of range"),
                         tg::Error);
    CHECK_THROWS_WITH_AS(tg::embedding(idx, Tensor<double>(Shape{5})),
                         doctest::Contains("embedding: weight (5) must be (num_embeddings, embedding_dim)"),
                         tg::Error);
}

TEST_CASE("where, masked_fill and the causal mask") {
    const Tensor<double> c(Shape{2, 1}, {1, 0});
    const Tensor<double> a = random(Shape{2, 3}, 5), b(Shape{3}, {7, 8, 9});
    const Tensor<double> y = tg::where(c, a, b);
    for (std::size_t j = 0; j < 3; ++j) {
        CHECK(y[j] == a[j]);
        CHECK(y[3 + j] == b[j]);
    }
    const Tensor<double> m = tg::masked_fill(a, Tensor<double>(Shape{3}, {0, 1, 0}), -2.0);
    CHECK(m[1] == -2.0);
    CHECK(m[4] == -2.0);
    CHECK(m[0] == a[0]);
    CHECK_THROWS_WITH_AS(tg::masked_fill(a, Tensor<double>(Shape{2}), 0.0),
                         doctest::Contains("masked_fill: mask (2) does not broadcast to (2×3)"), tg::Error);
    CHECK_THROWS_WITH_AS(
        tg::masked_fill(a, Tensor<double>(Shape{3}, {0, 2, 0}), 0.0),
        doctest::Contains("masked_fill: mask (3) holds 2 at position 1; it must hold only 0 and 1"),
        tg::Error);
    CHECK_THROWS_AS(tg::where(Tensor<double>(Shape{4}), a, b), tg::Error);

    const Tensor<double> cm = tg::causal_mask<double>(3);
    const double inf = std::numeric_limits<double>::infinity();
    CHECK(cm[0] == 0.0);
    CHECK(cm[1] == -inf);
    CHECK(cm[3] == 0.0);
    CHECK(cm[5] == -inf);
    CHECK(cm[8] == 0.0);
    // causal_fill: no gradient above the diagonal.
    tg::Tape<double> tape;
    auto X = tape.variable(random(Shape{2, 3, 3}, 6), "X");
    tape.backward(tg::sum(tg::causal_fill(X, 0.0)));
    const Tensor<double> g = tape.grad(X);
    for (std::size_t k = 0; k < 2; ++k)
        for (std::size_t i = 0; i < 3; ++i)
            for (std::size_t j = 0; j < 3; ++j) CHECK(g[k * 9 + i * 3 + j] == (j <= i ? 1.0 : 0.0));
}

TEST_CASE(
    "scaled_dot_product_attention equals softmax(QKᵀ/√d + mask)·V; causal = the lower-triangular mask") {
    const Shape s{2, 2, 4, 3};
    const Tensor<double> q = random(s, 11), k = random(s, 12), v = random(s, 13);
    // The composed formula by hand, with the additive causal mask.
    const Tensor<double> scores = tg::matmul(q, tg::transpose(k, -1, -2)) * (1.0 / std::sqrt(3.0));
    const Tensor<double> ref = tg::matmul(tg::softmax(scores + tg::causal_mask<double>(4)), v);
    CHECK(max_diff(tg::scaled_dot_product_attention(q, k, v, true), ref) < 1e-14);
    CHECK(max_diff(tg::scaled_dot_product_attention(q, k, v, tg::causal_attend_mask<double>(4)), ref) <
          1e-14);
    const Tensor<double> full = tg::matmul(tg::softmax(scores), v);
    CHECK(max_diff(tg::scaled_dot_product_attention(q, k, v), full) < 1e-14);

    // A query row with every key masked out gives NaN (as PyTorch); the other rows are finite.
    Tensor<double> mask = tg::causal_attend_mask<double>(4);
    for (std::size_t j = 0; j < 4; ++j) mask[2 * 4 + j] = 0;
    const Tensor<double> o = tg::scaled_dot_product_attention(q, k, v, mask);
    CHECK(std::isnan(o[2 * 3]));
    CHECK(std::isfinite(o[1 * 3]));

    CHECK_THROWS_WITH_AS(
        tg::scaled_dot_product_attention(q, random(Shape{2, 2, 4, 2}, 1), v),
        doctest::Contains("scaled_dot_product_attention: q (2×2×4×3) and k (2×2×4×2) differ"), tg::Error);
    CHECK_THROWS_WITH_AS(
        tg::scaled_dot_product_attention(q, k, v, Tensor<double>(Shape{3, 4})),
        doctest::Contains("scaled_dot_product_attention: attn_mask (3×4) does not broadcast to "
                          "the scores (2×2×4×4)"),
        tg::Error);
}

TEST_CASE("explain() on one attention head prints the softmax VJP as a formula") {
    tg::Tape<double> tape;
    auto Q = tape.variable(random(Shape{3, 2}, 1), "Q");
    auto K = tape.variable(random(Shape{3, 2}, 2), "K");
    auto V = tape.variable(random(Shape{3, 2}, 3), "V");
    auto O = tg::scaled_dot_product_attention(Q, K, V, true);
    tape.backward(tg::sum(O));
    // dV = Pᵀ·dO with P = softmax(causal(QKᵀ/√d)); dQ = (dS·K)/√d with the softmax VJP
    // dS = P ⊙ (dP − rowsum(dP ⊙ P)), dP = dO·Vᵀ (dO = 1 for a sum), the causal places zeroed.
    CHECK(tape.explain(V) == "∂t8/∂V = softmax(causal(0.707107·(Q · Kᵀ), −∞))ᵀ · 1");
    CHECK(tape.explain(Q) ==
          "∂t8/∂Q = 0.707107·(causal(softmax(causal(0.707107·(Q · Kᵀ), −∞)) ⊙ (1 · Vᵀ − ((1 · Vᵀ) ⊙ "
          "softmax(causal(0.707107·(Q · Kᵀ), −∞)))·1), 0) · K)");
    CHECK(
        tape.explain(Q, {.ascii = true}) ==
        "dt8/dQ = 0.707107*(causal(softmax(causal(0.707107*(Q . K^T), -inf)) * (1 . V^T - rowsum((1 . V^T) * "
        "softmax(causal(0.707107*(Q . K^T), -inf)))), 0) . K)");
}

// ---- PyTorch fixtures (tests/reference/transformer_fixtures.py, PyTorch 1.13, double) -----------

namespace {
Tensor<double> seq(Shape s, double a = 1.0, double b = 0.0) {
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = std::sin(a * static_cast<double>(i + 1) + b);
    return t;
}
const std::map<std::string, std::vector<double>>& torch_fixtures() {
    static const std::map<std::string, std::vector<double>> f{
        {"gelu_none_y",
         {0.673141390029473, 0.7441721291341535, 0.07847859076746644, -0.16996580639832728,
          -0.16186492876786124, -0.10896170294808326}},
        {"gelu_none_dx",
         {0.871400050489861, 1.0495062083114302, 0.41328441665616356, -8.950036875058381e-05,
          0.0445179275393904, -0.2764063387987969}},
        {"gelu_tanh_y",
         {0.6730439860908642, 0.744051473848078, 0.07847846203910408, -0.17003670571291843,
          -0.1620031486846791, -0.10896360248556458}},
        {"gelu_tanh_dx",
         {0.8711205939834119, 1.0491579963144844, 0.4132819691225519, -7.738553437318072e-05,
          0.04430058506866351, -0.2764321904077057}},
        {"ln_y", {1.1892710937944324,  1.197318244694762,   1.0780713786471487, 2.367897980590155,
                  -0.9396283689824875, 0.46172892820988065, 0.4357900210402524, -0.019627833999138436,
                  1.9431871723644305,  0.5901410925059706,  1.7115930605720664, 1.2047960467176422,
                  0.3418528050344584,  1.3197011112934878,  0.628102311982545,  2.378662874503526,
                  -0.639675695820146,  0.3117782614945499,  0.6449646284025865, -0.27028378992434543,
                  1.8360527928104355,  0.8783913922364858,  1.527046998856679,  1.837619475749357}},
        {"ln_dx", {0.49579523356948474,  -0.0019015371177136253, -0.878960293385378,   0.38506659693360656,
                   -0.2867361800832603,  0.3197181741022246,     0.46027788737232345,  -0.49325988139128774,
                   0.011184946925044681, -0.7150892028905765,    0.03432588675826698,  0.6695783692072652,
                   -0.3203681924759536,  0.5110056149822679,     -0.45452452528064424, 0.2638871027743299,
                   0.3390441916145196,   -0.5360580530478127,    0.336091068390036,    -0.1390772069567428,
                   -0.2980446142300332,  0.6084068109228267,     -0.4428833379719068,  0.13252114127911357}},
        {"ln_dw", {3.5215938643427402, 2.017950045936406, -0.21036513873909574, -0.6780184528524963}},
        {"ln_db", {0.547981019485741, 1.0026819952412067, 0.6985732270091674, -0.1342018322893983}},
        {"att_o",
         {0.9463000876874145, -0.44252044329485246, -0.1862508859394748, 0.2576204003897628,
          0.29186680788322544, -0.2625254088214492, -0.44964746453460147, 0.9436956694441042,
          -0.21240388945967179, 0.24199869921488376, -0.03648863015181778, 0.2953771872249329}},
        {"att_dq",
         {0.0, 0.0, 0.043224368819151274, 0.083213241275201, 0.06100311366859061, 0.0952891405198459, 0.0,
          0.0, 0.028521839989806258, 0.07125576458116858, -0.13658950222481242, -0.11673509300673618}},
        {"att_dk",
         {-0.08495440775175776, -0.07311539150899764, 0.06814137097362327, 0.08053942697915445,
          0.016813036778134477, -0.007424035470156846, 0.07274532182722368, 0.0722513899268333,
          -0.14677191095478326, 0.02522315683149544, 0.07402658912755958, -0.09747454675832871}},
        {"att_dv",
         {1.3437010995240406, 1.4715205653380858, 0.9040502450987415, 0.8582556713404264, 0.36435190309088245,
          0.29880114601211205, 0.30661538818349776, -0.21421226534531418, -0.23030562369484964,
          -0.40661344552671674, -0.23104042703748243, -0.30898529866801666}},
    };
    return f;
}
void check_fixture(const Tensor<double>& got, const std::string& key) {
    check_fixture_values(key, got, torch_fixtures().at(key));
}
}  // namespace

TEST_CASE(
    "gelu, layer_norm and causal attention agree with PyTorch in double (≤ 1e-12), values and gradients") {
    for (std::string ap : {"none", "tanh"}) {
        tg::Tape<double> tape;
        auto x = tape.variable(seq(Shape{2, 3}), "x");
        auto y = tg::gelu(x, ap);
        tape.backward(tg::sum(y * tape.constant(seq(Shape{2, 3}, 0.7, 0.3))));
        check_fixture(y.value(), "gelu_" + ap + "_y");
        check_fixture(tape.grad(x), "gelu_" + ap + "_dx");
    }
    {
        tg::Tape<double> tape;
        auto x = tape.variable(seq(Shape{2, 3, 4}), "x");
        auto w = tape.variable(seq(Shape{4}, 1.3), "w");
        auto b = tape.variable(seq(Shape{4}, 0.4), "b");
        auto y = tg::layer_norm(x, Shape{4}, w, b, 1e-5);
        tape.backward(tg::sum(y * tape.constant(seq(Shape{2, 3, 4}, 0.9, 0.1))));
        check_fixture(y.value(), "ln_y");
        check_fixture(tape.grad(x), "ln_dx");
        check_fixture(tape.grad(w), "ln_dw");
        check_fixture(tape.grad(b), "ln_db");
    }
    {
        tg::Tape<double> tape;
        const Shape s{1, 2, 3, 2};
        auto q = tape.variable(seq(s, 1.1), "q");
        auto k = tape.variable(seq(s, 0.5, 1.0), "k");
        auto v = tape.variable(seq(s, 1.7, 0.2), "v");
        auto o = tg::scaled_dot_product_attention(q, k, v, true);
        tape.backward(tg::sum(o * tape.constant(seq(s, 0.3, 0.5))));
        check_fixture(o.value(), "att_o");
        check_fixture(tape.grad(q), "att_dq");
        check_fixture(tape.grad(k), "att_dk");
        check_fixture(tape.grad(v), "att_dv");
    }
}

// ---- gpttrain: softmax_cross_entropy with weight, label_smoothing and class_axis ----------------

TEST_CASE("softmax_cross_entropy with weight and label_smoothing matches torch's cross_entropy (ce_cases.txt) "
          "within 1e-12 on (C), (N, C), (N, C, d…) and (…, C) logits, with labels as T and as int64") {
    const auto cases = read_reference_cases("ce_cases.txt");  // written by tests/reference/ce_fixtures.py
    CHECK(cases.size() == 90);
    std::size_t weighted = 0, smoothed = 0, last_axis = 0, int64_cases = 0;
    for (const ReferenceCase& c : cases) {
        CAPTURE(c.key);
        const std::vector<std::string> f = split(c.key, ';');
        REQUIRE(f.size() == 7);
        tg::CrossEntropyOptions opt{.ignore_index = std::stoll(f[2]),
                                    .reduction = f[1] == "mean" ? tg::Reduction::mean
                                                 : f[1] == "sum" ? tg::Reduction::sum
                                                                 : tg::Reduction::none,
                                    .label_smoothing = std::stod(f[3]),
                                    .class_axis = std::stol(f[4])};
        tg::Tape<double> tape;
        const auto z = tape.variable(c.t.at("z"), "z");
        const auto labels = tape.constant(c.t.at("labels"), "labels");
        const bool w = f[5] == "1";
        const auto y = w ? tg::softmax_cross_entropy(z, labels, tape.constant(c.t.at("weight"), "weight"), opt)
                         : tg::softmax_cross_entropy(z, labels, opt);
        weighted += w;
        smoothed += opt.label_smoothing != 0;
        last_axis += opt.class_axis == -1;
        const Tensor<double>& out = c.t.at("out");
        const Tensor<double>& gz = c.t.at("grad_z");
        check_fixture_values("out", y.value(), out);
        tape.backward(y, c.t.at("w"));
        check_fixture_values("grad_z", tape.grad(z), gz);

        // The int64 form (IndexTensor labels) against the same fixture.
        const Tensor<double>& lf = c.t.at("labels");
        tg::IndexTensor li(lf.shape());
        for (std::size_t p = 0; p < lf.size(); ++p) li[p] = static_cast<std::int64_t>(lf[p]);
        tg::Tape<double> t64;
        const auto z64 = t64.variable(c.t.at("z"), "z");
        const auto y64 = w ? tg::softmax_cross_entropy(z64, li, t64.constant(c.t.at("weight"), "weight"), opt)
                           : tg::softmax_cross_entropy(z64, li, opt);
        CHECK(t64.node(y64.id()).op->name() == (w ? "cross_entropy_labels_weighted" : "cross_entropy_labels"));
        check_fixture_values("int64 out", y64.value(), out);
        t64.backward(y64, c.t.at("w"));
        check_fixture_values("int64 grad_z", t64.grad(z64), gz);
        ++int64_cases;
    }
    CHECK(int64_cases == 90);
    CHECK(weighted == 60);
    CHECK(smoothed == 60);
    CHECK(last_axis == 18);
}

TEST_CASE("softmax_cross_entropy on (B, T, V) logits with (B, T) targets (class_axis −1) equals the (B·T, V) form") {
    const Tensor<double> z = random(Shape{2, 3, 4}, 21);
    const Tensor<double> labels(Shape{2, 3}, {0, 3, 1, 2, 2, 0});
    const Tensor<double> rows = z.clone(std::pmr::get_default_resource());
    const Tensor<double> flat_labels(Shape{6}, {0, 3, 1, 2, 2, 0});
    const double a = tg::softmax_cross_entropy(z, labels, {.class_axis = -1}).item();
    const double b = tg::softmax_cross_entropy(tg::reshape(rows, Shape{6, 4}), flat_labels).item();
    CHECK(a == doctest::Approx(b).epsilon(1e-15));
}

TEST_CASE("softmax_cross_entropy rejects a weight of the wrong length, a smoothing outside [0, 1] and a bad class_axis") {
    tg::Tape<double> tape;
    const auto z = tape.variable(random(Shape{4, 3}, 1), "z");
    const auto l = tape.constant(Tensor<double>(Shape{4}, {0, 1, 2, 0}), "labels");
    CHECK_THROWS_WITH_AS(tg::softmax_cross_entropy(z, l, tape.constant(Tensor<double>(Shape{4}), "weight")),
                         doctest::Contains("weight must be a vector of 3 class weights for logits (4×3), got (4)"),
                         tg::Error);
    CHECK_THROWS_WITH_AS(tg::softmax_cross_entropy(z, l, {.label_smoothing = 1.5}),
                         doctest::Contains("label_smoothing 1.5 is outside [0, 1]"), tg::Error);
    CHECK_THROWS_WITH_AS(tg::softmax_cross_entropy(z, l, {.class_axis = 2}),
                         doctest::Contains("class_axis 2 is outside logits (4×3)"), tg::Error);
    // The same checks on the int64 forms.
    const tg::IndexTensor li(Shape{4}, {0, 1, 2, 0});
    CHECK_THROWS_WITH_AS(tg::softmax_cross_entropy(z, li, tape.constant(Tensor<double>(Shape{4}), "weight")),
                         doctest::Contains("weight must be a vector of 3 class weights for logits (4×3), got (4)"),
                         tg::Error);
    CHECK_THROWS_WITH_AS(tg::softmax_cross_entropy(z, li, {.label_smoothing = -0.5}),
                         doctest::Contains("label_smoothing -0.5 is outside [0, 1]"), tg::Error);
    CHECK_THROWS_WITH_AS(tg::softmax_cross_entropy(z, li, {.class_axis = 0}),
                         doctest::Contains("labels must have shape (3) (the logits (4×3) without axis 0), got (4)"),
                         tg::Error);
    CHECK_THROWS_WITH_AS(tg::softmax_cross_entropy(z, tg::IndexTensor(Shape{4}, {0, 3, 1, 1}),
                                                   tape.constant(Tensor<double>(Shape{3}), "weight")),
                         doctest::Contains("label 3 at position (1) of the labels (4) is not a class index in [0, 3)"),
                         tg::Error);
}
