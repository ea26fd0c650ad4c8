// max_pool2d, avg_pool2d and adaptive_avg_pool2d against direct loops written from PyTorch's
// definitions, over random shapes, kernels, strides, paddings, dilations and ceil_mode; ties;
// the VJPs' adjoint identities; and the errors.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <tapegrad/tapegrad.hpp>

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

// torch's pooling_output_shape.
long out_size(long in, long k, long s, long p, long d, bool ceil) {
    long o = (in + 2 * p - d * (k - 1) - 1 + (ceil ? s - 1 : 0)) / s + 1;
    if (ceil && (o - 1) * s >= in + p) --o;
    return o;
}

struct Ref {
    Tensor<double> y;
    Tensor<double> dx_of_ones;  // Σ over windows of ∂y/∂x, for the max: the argmax counts
};

Ref max_reference(const Tensor<double>& x, const tg::Pool2dParams& q) {
    const Shape s = x.shape();
    const long H = long(s[2]), W = long(s[3]);
    const long kh = long(q.kernel[0]), kw = long(q.kernel[1]);
    const long sh = q.stride[0] ? long(q.stride[0]) : kh, sw = q.stride[1] ? long(q.stride[1]) : kw;
    const long ph = long(q.padding[0]), pw = long(q.padding[1]), dh = long(q.dilation[0]),
               dw = long(q.dilation[1]);
    const long OH = out_size(H, kh, sh, ph, dh, q.ceil_mode), OW = out_size(W, kw, sw, pw, dw, q.ceil_mode);
    Ref r{Tensor<double>(Shape{s[0], s[1], std::size_t(OH), std::size_t(OW)}), Tensor<double>(s)};
    for (std::size_t n = 0; n < s[0]; ++n)
        for (std::size_t c = 0; c < s[1]; ++c)
            for (long oy = 0; oy < OH; ++oy)
                for (long ox = 0; ox < OW; ++ox) {
                    double m = -INFINITY;
                    long by = -1, bx = -1;
                    for (long i = 0; i < kh; ++i)
                        for (long j = 0; j < kw; ++j) {
                            const long iy = oy * sh - ph + i * dh, ix = ox * sw - pw + j * dw;
                            if (iy < 0 || ix < 0 || iy >= H || ix >= W) continue;
                            const double v = x.at({n, c, std::size_t(iy), std::size_t(ix)});
                            if (v > m) m = v, by = iy, bx = ix;
                        }
                    r.y.at({n, c, std::size_t(oy), std::size_t(ox)}) = m;
                    r.dx_of_ones.at({n, c, std::size_t(by), std::size_t(bx)}) += 1;
                }
    return r;
}

Tensor<double> avg_reference(const Tensor<double>& x, const tg::Pool2dParams& q, bool include_pad) {
    const Shape s = x.shape();
    const long H = long(s[2]), W = long(s[3]);
    const long kh = long(q.kernel[0]), kw = long(q.kernel[1]);
    const long sh = q.stride[0] ? long(q.stride[0]) : kh, sw = q.stride[1] ? long(q.stride[1]) : kw;
    const long ph = long(q.padding[0]), pw = long(q.padding[1]);
    const long OH = out_size(H, kh, sh, ph, 1, q.ceil_mode), OW = out_size(W, kw, sw, pw, 1, q.ceil_mode);
    Tensor<double> y(Shape{s[0], s[1], std::size_t(OH), std::size_t(OW)});
    for (std::size_t n = 0; n < s[0]; ++n)
        for (std::size_t c = 0; c < s[1]; ++c)
            for (long oy = 0; oy < OH; ++oy)
                for (long ox = 0; ox < OW; ++ox) {
                    double sum = 0;
                    long inside = 0, padded = 0;  // taps on the input; taps within the padded input
                    for (long i = 0; i < kh; ++i)
                        for (long j = 0; j < kw; ++j) {
                            const long iy = oy * sh - ph + i, ix = ox * sw - pw + j;
                            if (iy < H + ph && ix < W + pw) ++padded;  // (iy ≥ −ph always)
                            if (iy < 0 || ix < 0 || iy >= H || ix >= W) continue;
                            sum += x.at({n, c, std::size_t(iy), std::size_t(ix)});
                            ++inside;
                        }
                    y.at({n, c, std::size_t(oy), std::size_t(ox)}) =
                        sum / double(include_pad ? padded : inside);
                }
    return y;
}

tg::Pool2dParams random_params(std::mt19937_64& rng, bool dilated) {
    auto d = [&](std::size_t lo, std::size_t hi) {
        return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
    };
    tg::Pool2dParams q;
    q.kernel = {d(1, 4), d(1, 4)};
    q.stride = {d(0, 3), d(0, 3)};  // 0: the kernel
    q.padding = {d(0, q.kernel[0] / 2), d(0, q.kernel[1] / 2)};
    q.dilation = dilated ? std::array<std::size_t, 2>{d(1, 3), d(1, 2)} : std::array<std::size_t, 2>{1, 1};
    q.ceil_mode = d(0, 1) == 1;
    return q;
}
Shape random_input(std::mt19937_64& rng, const tg::Pool2dParams& q) {
    auto d = [&](std::size_t lo, std::size_t hi) {
        return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
    };
    const std::size_t eh = q.dilation[0] * (q.kernel[0] - 1) + 1, ew = q.dilation[1] * (q.kernel[1] - 1) + 1;
    return Shape{d(1, 2), d(1, 3), eh + d(0, 7), ew + d(0, 7)};
}

// max_pool2d(x, q) and the VJP of sum(max_pool2d(x, q)) equal the direct loop exactly; returns
// the reference for further checks.
Ref check_max_pool(const Tensor<double>& x, const tg::Pool2dParams& q) {
    Ref r = max_reference(x, q);
    tg::Tape<double> tape;
    auto xv = tape.variable(x);
    auto y = tg::max_pool2d(xv, q);
    CHECK(max_abs_diff(y.value(), r.y) == 0.0);
    tape.backward(tg::sum(y));
    CHECK(max_abs_diff(tape.grad(xv), r.dx_of_ones) == 0.0);
    return r;
}

}  // namespace

TEST_CASE(
    "max_pool2d and its VJP agree with a direct loop over random kernels, strides, paddings, dilations and "
    "ceil_mode") {
    std::mt19937_64 rng(21);
    int ceil_trials = 0;
    for (int trial = 0; trial < 300; ++trial) {
        const tg::Pool2dParams q = random_params(rng, true);
        const Tensor<double> x = random(random_input(rng, q), rng);
        CAPTURE(trial);
        CAPTURE(x.shape());
        const Ref r = check_max_pool(x, q);
        ceil_trials += q.ceil_mode;
    }
    CHECK(ceil_trials > 100);
}

TEST_CASE(
    "max_pool2d's 2×2 stride-2 path and its VJP agree with a direct loop on odd and even sizes, ties and "
    "ceil_mode") {
    std::mt19937_64 rng(24);
    std::uniform_int_distribution<int> level(-2, 2), size(2, 9);
    for (int trial = 0; trial < 200; ++trial) {
        tg::Pool2dParams q{{2, 2}};
        if (trial % 3 == 1) q.stride = {2, 2};
        q.ceil_mode = trial % 2 == 1;
        Tensor<double> x(Shape{std::size_t(1 + trial % 2), 2, std::size_t(size(rng)), std::size_t(size(rng))});
        for (std::size_t i = 0; i < x.size(); ++i) x[i] = level(rng);  // five levels: many ties
        CAPTURE(trial);
        CAPTURE(x.shape());
        const Ref r = check_max_pool(x, q);
        // into storage holding garbage (NaN): every element is written, the argmax ones with the
        // adjoint (not all ones here), the others (the odd last row and column included) with 0
        const Tensor<double> g = random(r.y.shape(), rng);
        Tensor<double> dx = Tensor<double>::filled(x.shape(), std::numeric_limits<double>::quiet_NaN());
        tg::MaxPool2dBackward{q}.forward(dx, g, x);
        for (std::size_t i = 0; i < dx.size(); ++i) CHECK((dx[i] == 0.0) == (r.dx_of_ones[i] == 0.0));
        CHECK(dot(dx, x) == doctest::Approx(dot(g, r.y)).epsilon(1e-12));
    }
}

TEST_CASE("max_pool2d's adjoint goes to the first maximum of a window on ties, as torch's") {
    Tensor<double> x(Shape{1, 1, 2, 4}, {1, 3, 5, 5, 3, 2, 5, 0});
    tg::Tape<double> tape;
    auto xv = tape.variable(x);
    auto y = tg::max_pool2d(xv, tg::Pool2dParams{{2, 2}});
    CHECK(y.value()[0] == 3);
    CHECK(y.value()[1] == 5);
    tape.backward(tg::sum(y));
    const Tensor<double> g = tape.grad(xv);
    CHECK(g[1] == 1);  // 3 at (0, 1) precedes 3 at (1, 0)
    CHECK(g[4] == 0);
    CHECK(g[2] == 1);  // 5 at (0, 2) precedes (0, 3) and (1, 2)
    CHECK(g[3] == 0);
    CHECK(g[6] == 0);
}

TEST_CASE(
    "avg_pool2d agrees with a direct loop, with and without count_include_pad, and its VJP is its adjoint") {
    std::mt19937_64 rng(22);
    for (int trial = 0; trial < 300; ++trial) {
        const tg::Pool2dParams q = random_params(rng, false);
        const Tensor<double> x = random(random_input(rng, q), rng);
        const bool include_pad = trial % 2 == 0;
        CAPTURE(trial);
        CAPTURE(x.shape());
        const Tensor<double> y = tg::apply(tg::AvgPool2d{q, include_pad}, x);
        CHECK(max_abs_diff(y, avg_reference(x, q, include_pad)) < 1e-15);
        const Tensor<double> g = random(y.shape(), rng);
        const Tensor<double> dx = tg::apply(tg::AvgPool2dBackward{q, include_pad, x.shape()}, g);
        CHECK(dot(dx, x) == doctest::Approx(dot(g, y)).epsilon(1e-12));
    }
}

TEST_CASE("adaptive_avg_pool2d to 1×1 is the mean of each plane") {
    std::mt19937_64 rng(23);
    const Tensor<double> x = random(Shape{2, 3, 4, 5}, rng);
    const Tensor<double> y = tg::adaptive_avg_pool2d(x);
    REQUIRE(y.shape() == Shape{2, 3, 1, 1});
    for (std::size_t p = 0; p < 6; ++p) {
        double s = 0;
        for (std::size_t i = 0; i < 20; ++i) s += x[p * 20 + i];
        CHECK(y[p] == doctest::Approx(s / 20).epsilon(1e-15));
    }
}

TEST_CASE("pooling refuses bad input with an Error naming the op, the shape and the parameter") {
    auto message = [&](auto f) {
        try {
            f();
        } catch (const tg::Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    const Tensor<double> x(Shape{1, 2, 5, 5});
    std::string m = message([&] { tg::max_pool2d(x, tg::Pool2dParams{{3, 3}, {1, 1}, {2, 1}}); });
    CHECK(m.find("max_pool2d: padding 2×1 should be at most half the kernel 3×3") != std::string::npos);
    m = message([&] { tg::avg_pool2d(x, tg::Pool2dParams{{2, 2}, {0, 0}, {0, 0}, {2, 1}}); });
    CHECK(m.find("avg_pool2d: dilation 2×1") != std::string::npos);
    m = message([&] { tg::max_pool2d(Tensor<double>(Shape{2, 5, 5}), tg::Pool2dParams{{2, 2}}); });
    CHECK(m.find("max_pool2d: input (2×5×5) is not 4-D") != std::string::npos);
    m = message([&] { tg::max_pool2d(x, tg::Pool2dParams{{3, 3}, {1, 1}, {0, 0}, {3, 3}}); });
    CHECK(m.find("dilated kernel extent 7×7 exceeds the padded input 5×5") != std::string::npos);
    m = message([&] { tg::max_pool2d(x, tg::Pool2dParams{{0, 2}}); });
    CHECK(m.find("kernel 0×2 has a 0") != std::string::npos);
    m = message([&] { tg::max_pool2d(x, tg::Pool2dParams{{2, 2}, {1, 1}, {0, 0}, {0, 1}}); });
    CHECK(m.find("dilation 0×1 has a 0") != std::string::npos);
    m = message([&] { tg::adaptive_avg_pool2d(Tensor<double>(Shape{5, 5})); });
    CHECK(m.find("adaptive_avg_pool2d: input (5×5) is not 4-D") != std::string::npos);
}

TEST_CASE("max_pool2d's fast 2×2 and k×k paths keep torch's NaN rule: the first NaN of a window wins") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    // 2×2 windows (the unrolled path) and 3×3 windows (the general in-plane path).
    for (std::size_t k : {2u, 3u}) {
        CAPTURE(k);
        Tensor<double> x(Shape{1, 1, k, 2 * k});
        for (std::size_t i = 0; i < x.size(); ++i) x[i] = double(i % 5);
        x[1] = nan;          // window 0: a NaN after a smaller value
        x[k + 1] = 9;        // a larger value after the NaN (row 0, window 1)
        x[2 * k + k] = nan;  // window 1's first NaN (row 1), after the 9 of row 0
        x[2 * k + k + 1] = nan;
        tg::Tape<double> tape;
        auto xv = tape.variable(x);
        auto y = tg::max_pool2d(xv, tg::Pool2dParams{{k, k}});
        REQUIRE(y.shape() == Shape{1, 1, 1, 2});
        CHECK(std::isnan(y.value()[0]));
        CHECK(std::isnan(y.value()[1]));
        tape.backward(tg::sum(y));  // the seed is 1 whatever the (NaN) value
        const Tensor<double> g = tape.grad(xv);
        CHECK(g[1] == 1);          // window 0's NaN
        CHECK(g[2 * k + k] == 1);  // window 1's first NaN
        CHECK(g[2 * k + k + 1] == 0);
        CHECK(g[k + 1] == 0);
    }
}

TEST_CASE(
    "max_pool2d's vectorised float 2×2 path equals the scalar path tap for tap: ties, signed zeros, NaN, "
    "every width") {
    // The float kernels take four windows at a time (SSE) and the rest one by one; the double
    // kernels are scalar throughout (checked against the direct loop above). Values from a few
    // levels with −0, +0 and NaN, so that ties, zero signs and NaN positions fall in every lane.
    std::mt19937_64 rng(25);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double levels[] = {-1.0, -0.0, 0.0, 0.0, 1.0, 1.0, 2.0, nan};
    std::uniform_int_distribution<int> pick(0, 7), size(2, 23);
    for (int trial = 0; trial < 300; ++trial) {
        const Shape s{1, std::size_t(1 + trial % 3), std::size_t(size(rng)), std::size_t(size(rng))};
        CAPTURE(trial);
        CAPTURE(s);
        Tensor<double> xd(s);
        Tensor<float> xf(s);
        for (std::size_t i = 0; i < xd.size(); ++i) {
            // NaN rarely (1 in 8 trials' worth), so that most windows are decided by ties
            const double v = levels[trial % 4 == 0 ? pick(rng) : pick(rng) % 7];
            xd[i] = v;
            xf[i] = static_cast<float>(v);
        }
        const tg::Pool2dParams q{{2, 2}};
        const Shape ys = tg::MaxPool2d{q}.shape(s);
        Tensor<double> yd(ys), gd(ys), dxd(s);
        Tensor<float> yf(ys), gf(ys), dxf(s);
        tg::MaxPool2d{q}.forward(yd, xd);
        tg::MaxPool2d{q}.forward(yf, xf);
        for (std::size_t i = 0; i < yd.size(); ++i) {
            CAPTURE(i);
            CHECK(std::isnan(yd[i]) == std::isnan(yf[i]));
            if (!std::isnan(yd[i])) {
                CHECK(double(yf[i]) == yd[i]);
                CHECK(std::signbit(yf[i]) == std::signbit(yd[i]));  // the first maximum's zero
            }
            gd[i] = double(i + 1);  // distinct: the adjoint shows which tap won
            gf[i] = float(i + 1);
        }
        tg::MaxPool2dBackward{q}.forward(dxd, gd, xd);
        tg::MaxPool2dBackward{q}.forward(dxf, gf, xf);
        for (std::size_t i = 0; i < dxd.size(); ++i) {
            CAPTURE(i);
            CHECK(double(dxf[i]) == dxd[i]);
        }
    }
}
