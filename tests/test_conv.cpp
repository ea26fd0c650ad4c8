// conv2d and im2col / col2im against a direct loop (slow, obviously right) over random shapes,
// strides, paddings, dilations and groups, including non-square kernels and odd sizes; the VJP
// family against the adjoint identity; and the errors bad shapes and parameters give.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <tapegrad/tapegrad.hpp>
#include <vector>

namespace tg = tapegrad;
using tg::Shape;
using tg::Tensor;

namespace {

Tensor<double> random(Shape s, std::mt19937_64& rng) {
    std::uniform_real_distribution<double> u(-1, 1);
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = u(rng);
    return t;
}

// y[n, o, oy, ox] = b[o] + Σ_{c in o's group, i, j} x[n, c, oy·s − p + i·d, ox·s − p + j·d] · w[o, c − c0, i,
// j]
Tensor<double> conv_reference(const Tensor<double>& x, const Tensor<double>& w, const Tensor<double>* b,
                              tg::Conv2dParams p) {
    const Shape xs = x.shape(), ws = w.shape();
    const std::size_t N = xs[0], C = xs[1], H = xs[2], W = xs[3], O = ws[0], Cg = ws[1], KH = ws[2],
                      KW = ws[3];
    const std::size_t G = p.groups, Og = O / G;
    const long OH =
        (long(H) + 2 * long(p.padding[0]) - long(p.dilation[0]) * (long(KH) - 1) - 1) / long(p.stride[0]) + 1;
    const long OW =
        (long(W) + 2 * long(p.padding[1]) - long(p.dilation[1]) * (long(KW) - 1) - 1) / long(p.stride[1]) + 1;
    Tensor<double> y(Shape{N, O, std::size_t(OH), std::size_t(OW)});
    (void)C;
    for (std::size_t n = 0; n < N; ++n)
        for (std::size_t o = 0; o < O; ++o)
            for (long oy = 0; oy < OH; ++oy)
                for (long ox = 0; ox < OW; ++ox) {
                    double s = b ? (*b)[o] : 0.0;
                    const std::size_t g = o / Og;
                    for (std::size_t c = 0; c < Cg; ++c)
                        for (std::size_t i = 0; i < KH; ++i)
                            for (std::size_t j = 0; j < KW; ++j) {
                                const long iy =
                                    oy * long(p.stride[0]) - long(p.padding[0]) + long(i * p.dilation[0]);
                                const long ix =
                                    ox * long(p.stride[1]) - long(p.padding[1]) + long(j * p.dilation[1]);
                                if (iy < 0 || ix < 0 || iy >= long(H) || ix >= long(W)) continue;
                                s += x.at({n, g * Cg + c, std::size_t(iy), std::size_t(ix)}) *
                                     w.at({o, c, i, j});
                            }
                    y.at({n, o, std::size_t(oy), std::size_t(ox)}) = s;
                }
    return y;
}

double max_abs_diff(const Tensor<double>& a, const Tensor<double>& b) {
    REQUIRE(a.shape() == b.shape());
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
    return m;
}

double dot(const Tensor<double>& a, const Tensor<double>& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
}

// A random valid configuration: every stride/padding/dilation/groups combination over trials.
struct Config {
    Shape x, w;
    tg::Conv2dParams p;
};
Config random_config(std::mt19937_64& rng) {
    auto d = [&](std::size_t lo, std::size_t hi) {
        return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
    };
    Config c;
    const std::size_t groups = std::array<std::size_t, 4>{1, 1, 2, 3}[d(0, 3)];
    const bool depthwise = d(0, 3) == 0;
    const std::size_t cg = depthwise ? 1 : d(1, 3), og = d(1, 3);
    const std::size_t kh = d(1, 4), kw = d(1, 4);
    c.p.stride = {d(1, 3), d(1, 3)};
    c.p.dilation = {d(1, 3), d(1, 2)};
    c.p.padding = {d(0, 2), d(0, 2)};
    c.p.groups = groups;
    const std::size_t eh = c.p.dilation[0] * (kh - 1) + 1, ew = c.p.dilation[1] * (kw - 1) + 1;
    const std::size_t h =
        std::max<std::size_t>(1, eh > 2 * c.p.padding[0] ? eh - 2 * c.p.padding[0] : 1) + d(0, 6);
    const std::size_t w =
        std::max<std::size_t>(1, ew > 2 * c.p.padding[1] ? ew - 2 * c.p.padding[1] : 1) + d(0, 6);
    c.x = Shape{d(1, 3), cg * groups, h, w};
    c.w = Shape{og * groups, cg, kh, kw};
    return c;
}

}  // namespace

TEST_CASE("conv2d agrees with a direct loop over random shapes, strides, paddings, dilations and groups") {
    std::mt19937_64 rng(12);
    int pointwise = 0, grouped = 0, strided = 0;
    for (int trial = 0; trial < 300; ++trial) {
        const Config c = random_config(rng);
        CAPTURE(trial);
        CAPTURE(c.x);
        CAPTURE(c.w);
        CAPTURE(c.p.groups);
        const Tensor<double> x = random(c.x, rng), w = random(c.w, rng), b = random(Shape{c.w[0]}, rng);
        tg::Tape<double> tape;
        const auto y = tg::conv2d(tape.constant(x), tape.constant(w), tape.constant(b), c.p);
        CHECK(max_abs_diff(y.value(), conv_reference(x, w, &b, c.p)) < 1e-12);
        const Tensor<double> y0 = tg::apply(tg::Conv2d{c.p}, x, w);  // the numeric reading, no tape
        CHECK(max_abs_diff(y0, conv_reference(x, w, nullptr, c.p)) < 1e-12);
        pointwise += c.w[2] == 1 && c.w[3] == 1 && c.p.stride == std::array<std::size_t, 2>{1, 1} &&
                     c.p.padding == std::array<std::size_t, 2>{0, 0};
        grouped += c.p.groups > 1;
        strided += c.p.stride[0] > 1 || c.p.stride[1] > 1;
    }
    CHECK(grouped > 50);
    CHECK(strided > 100);
    (void)pointwise;
}

TEST_CASE("conv2d's pointwise path (1×1, stride 1, no padding) matches the direct loop") {
    std::mt19937_64 rng(5);
    for (std::size_t groups : {1, 2}) {
        tg::Conv2dParams p;
        p.groups = groups;
        const Tensor<double> x = random(Shape{2, 4, 3, 5}, rng), w = random(Shape{6, 4 / groups, 1, 1}, rng);
        CHECK(max_abs_diff(tg::apply(tg::Conv2d{p}, x, w), conv_reference(x, w, nullptr, p)) < 1e-12);
    }
}

TEST_CASE(
    "conv2d's input and weight adjoints satisfy ⟨conv(x, w), g⟩ = ⟨x, conv_input_grad(g, w)⟩ = ⟨w, "
    "conv_weight_grad(x, g)⟩") {
    std::mt19937_64 rng(7);
    for (int trial = 0; trial < 100; ++trial) {
        const Config c = random_config(rng);
        CAPTURE(trial);
        const Tensor<double> x = random(c.x, rng), w = random(c.w, rng);
        const Tensor<double> y = tg::apply(tg::Conv2d{c.p}, x, w);
        const Tensor<double> g = random(y.shape(), rng);
        const Tensor<double> dx = tg::apply(tg::Conv2dInputGrad{c.p, c.x}, g, w);
        const Tensor<double> dw = tg::apply(tg::Conv2dWeightGrad{c.p, c.w}, x, g);
        const double lhs = dot(y, g);
        CHECK(dot(x, dx) == doctest::Approx(lhs).epsilon(1e-12));
        CHECK(dot(w, dw) == doctest::Approx(lhs).epsilon(1e-12));
    }
}

TEST_CASE("im2col against a direct loop, and col2im is its adjoint") {
    std::mt19937_64 rng(9);
    for (int trial = 0; trial < 100; ++trial) {
        Config c = random_config(rng);
        c.p.groups = 1;
        const std::array<std::size_t, 2> k{c.w[2], c.w[3]};
        const Tensor<double> x = random(c.x, rng);
        const Tensor<double> cols = tg::apply(tg::Im2Col{k, c.p}, x);
        // conv with a one-hot weight for tap (c, i, j) reads exactly row (c, i, j) of the columns.
        const std::size_t C = c.x[1], K = C * k[0] * k[1];
        REQUIRE(cols.shape()[1] == K);
        const std::size_t P = cols.shape()[2];
        tg::Conv2dParams p = c.p;
        Tensor<double> onehot(Shape{K, C, k[0], k[1]});
        for (std::size_t r = 0; r < K; ++r) onehot[r * K + r] = 1;
        const Tensor<double> ref = conv_reference(x, onehot, nullptr, p);  // N×K×OH×OW
        REQUIRE(ref.size() == cols.size());
        CHECK(max_abs_diff(cols, tg::apply(tg::Reshape{Shape{c.x[0], K, P}}, ref)) == 0.0);
        const Tensor<double> g = random(cols.shape(), rng);
        const Tensor<double> back = tg::apply(tg::Col2Im{k, c.p, c.x}, g);
        CHECK(dot(back, x) == doctest::Approx(dot(g, cols)).epsilon(1e-12));
    }
}

TEST_CASE(
    "conv2d refuses bad shapes and parameters with an Error naming the op, the shapes and the parameter") {
    tg::Tape<double> tape;
    auto x = tape.variable(Tensor<double>(Shape{2, 4, 5, 5}));
    auto w = tape.variable(Tensor<double>(Shape{6, 4, 3, 3}));
    auto message = [&](auto f) {
        try {
            f();
        } catch (const tg::Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    std::string m = message([&] { tg::conv2d(x, tape.variable(Tensor<double>(Shape{6, 3, 3, 3}))); });
    CHECK(m.find("conv2d") != std::string::npos);
    CHECK(m.find("channels") != std::string::npos);
    CHECK(m.find("(6×3×3×3)") != std::string::npos);
    tg::Conv2dParams p;
    p.groups = 3;
    m = message([&] { tg::conv2d(x, w, p); });
    CHECK(m.find("groups = 3 does not divide") != std::string::npos);
    p = {};
    p.groups = 2;
    m = message([&] { tg::conv2d(x, tape.variable(Tensor<double>(Shape{5, 2, 3, 3})), p); });
    CHECK(m.find("does not divide the weight's 5 output channels") != std::string::npos);
    p = {};
    p.dilation = {3, 1};
    m = message([&] { tg::conv2d(x, w, p); });
    CHECK(m.find("dilated kernel extent 7×3") != std::string::npos);
    CHECK(m.find("padded input 5×5") != std::string::npos);
    p = {};
    p.stride = {1, 0};
    CHECK(message([&] { tg::conv2d(x, w, p); }).find("stride 1×0 has a 0") != std::string::npos);
    p = {};
    p.dilation = {0, 1};
    CHECK(message([&] { tg::conv2d(x, w, p); }).find("dilation 0×1 has a 0") != std::string::npos);
    m = message([&] { tg::conv2d(tape.variable(Tensor<double>(Shape{4, 5, 5})), w); });
    CHECK(m.find("conv2d: input (4×5×5) is not 4-D") != std::string::npos);
    m = message([&] { tg::conv2d(x, w, tape.variable(Tensor<double>(Shape{5}))); });
    CHECK(m.find("bias (5) has 5 elements") != std::string::npos);
}

TEST_CASE("gradients of gradients flow through conv2d (the VJP family is closed)") {
    // d/dw ⟨∇ₓ ψ, v⟩ for ψ = Σ conv2d(x, w)² : checked against central differences.
    std::mt19937_64 rng(1);
    tg::Conv2dParams p;
    p.stride = {2, 1};
    p.padding = {1, 1};
    p.groups = 2;
    const Tensor<double> x0 = random(Shape{2, 4, 5, 4}, rng), w0 = random(Shape{4, 2, 3, 2}, rng);
    const Tensor<double> v = random(x0.shape(), rng);
    auto f = [&](const Tensor<double>& w) {
        tg::Tape<double> tape;
        auto x = tape.variable(x0), wv = tape.variable(w);
        auto y = tg::conv2d(x, wv, p);
        tape.backward(tg::sum(y * y), {.create_graph = true});
        auto s = tg::sum(tape.grad_var(x) * tape.constant(v));
        tape.backward(s);
        return std::pair{s.value()[0], tape.grad(wv)};
    };
    const auto [s0, dw] = f(w0);
    (void)s0;
    const double h = 1e-5;
    for (std::size_t i = 0; i < w0.size(); i += 3) {
        Tensor<double> wp = w0, wm = w0;
        wp[i] += h;
        wm[i] -= h;
        CHECK(dw[i] == doctest::Approx((f(wp).first - f(wm).first) / (2 * h)).epsilon(1e-6));
    }
}

TEST_CASE("conv2d and conv2d_bias write in place (vjp_into) what their vjp returns, overwriting or adding") {
    std::mt19937_64 rng(77);
    const tg::Conv2dParams ps[] = {{{1, 1}, {1, 1}, {1, 1}, 1}, {{2, 1}, {0, 1}, {1, 2}, 2}, {}};
    const std::size_t ks[] = {3, 2, 1};  // the last: 1×1 pointwise (no im2col)
    for (int k = 0; k < 3; ++k) {
        CAPTURE(k);
        const tg::Conv2dParams p = ps[k];
        const Tensor<double> x = random(Shape{2, 4, 5, 6}, rng), w = random(Shape{6, 4 / p.groups, ks[k], ks[k]}, rng),
                             b = random(Shape{6}, rng);
        const tg::Conv2dBias op{p};
        const Tensor<double> y = tg::apply(op, x, w, b);
        const Tensor<double> g = random(y.shape(), rng);
        // db from the definition, Σ_{n,y,x} g (the vjp's Tensor reading returns a reshape view of
        // its temporary sum, which outlives it only in the tape's arena).
        Tensor<double> db(Shape{6});
        for (std::size_t i = 0; i < g.size(); ++i) db[(i / (y.shape()[2] * y.shape()[3])) % 6] += g[i];
        const Tensor<double> want[3] = {op.vjp(tg::In<0>{}, g, y, x, w, b), op.vjp(tg::In<1>{}, g, y, x, w, b), db};
        const Tensor<double>* in[3] = {&x, &w, &b};
        for (int add = 0; add < 2; ++add) {
            Tensor<double> d[3];
            for (int i = 0; i < 3; ++i) d[i] = Tensor<double>::filled(in[i]->shape(), add ? 0.5 : 1e300);  // garbage
            op.vjp_into(tg::In<0>{}, d[0], add == 1, g, y, x, w, b);
            op.vjp_into(tg::In<1>{}, d[1], add == 1, g, y, x, w, b);
            op.vjp_into(tg::In<2>{}, d[2], add == 1, g, y, x, w, b);
            for (int i = 0; i < 3; ++i) {
                CAPTURE(i);
                CAPTURE(add);
                REQUIRE(d[i].shape() == want[i].shape());
                for (std::size_t e = 0; e < d[i].size(); ++e)
                    CHECK(d[i][e] == doctest::Approx(want[i][e] + (add ? 0.5 : 0.0)).epsilon(1e-12));
            }
        }
        // conv2d without bias: the same two kernels.
        Tensor<double> dx = Tensor<double>::filled(x.shape(), 1e300);
        tg::Conv2d{p}.vjp_into(tg::In<0>{}, dx, false, g, y, x, w);
        for (std::size_t e = 0; e < dx.size(); ++e) CHECK(dx[e] == doctest::Approx(want[0][e]).epsilon(1e-12));
    }
}
