// The counter-based generator: Philox4x32-10's known answers, and numbers that do not depend on
// how the work is split or ordered.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

#include <tapegrad/core/philox.hpp>

namespace tg = tapegrad;

TEST_CASE("philox4x32-10 reproduces the published known-answer vectors") {
    // Random123's kat_vectors for philox4x32_10 (counter, key → output).
    using A4 = std::array<std::uint32_t, 4>;
    using A2 = std::array<std::uint32_t, 2>;
    CHECK(tg::philox4x32(A4{0, 0, 0, 0}, A2{0, 0}) == A4{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
    CHECK(tg::philox4x32(A4{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, A2{0xffffffffu, 0xffffffffu}) ==
          A4{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
    CHECK(tg::philox4x32(A4{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, A2{0xa4093822u, 0x299f31d0u}) ==
          A4{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}

TEST_CASE("a tensor filled in chunks by two threads, in any order, equals one filled at once") {
    const std::size_t n = 10'007;  // not a multiple of the words per block
    const tg::Philox gen(42, 7);
    for (int kind = 0; kind < 4; ++kind) {
        std::vector<double> whole(n), parts(n);
        std::vector<float> wholef(n), partsf(n);
        auto fill = [&](std::size_t a, std::size_t b, bool split) {
            std::span<double> d(split ? parts.data() + a : whole.data() + a, b - a);
            std::span<float> f(split ? partsf.data() + a : wholef.data() + a, b - a);
            if (kind == 0) gen.fill_uniform<double>(d, a);
            if (kind == 1) gen.fill_normal<double>(d, a);
            if (kind == 2) gen.fill_uniform<float>(f, a);
            if (kind == 3) gen.fill_normal<float>(f, a);
        };
        fill(0, n, false);
        // odd split points, the later chunk first, on two threads
        std::thread t1([&] { fill(3333, n, true); });
        std::thread t2([&] { fill(0, 1, true); fill(1, 3333, true); });
        t1.join();
        t2.join();
        CHECK(whole == parts);
        CHECK(wholef == partsf);
    }
}

TEST_CASE("seeds and streams give different numbers; the same seed and stream the same ones") {
    auto a = tg::rand<double>({4, 5}, 1);
    auto b = tg::rand<double>({4, 5}, 1);
    auto c = tg::rand<double>({4, 5}, 2);
    auto d = tg::rand<double>({4, 5}, 1, /*stream=*/1);
    CHECK(std::equal(a.data(), a.data() + 20, b.data()));
    CHECK(!std::equal(a.data(), a.data() + 20, c.data()));
    CHECK(!std::equal(a.data(), a.data() + 20, d.data()));
}

TEST_CASE("uniform and normal draws have the moments they should") {
    // n = 400,000: the standard error of the mean is 4.6e-4 (uniform) and 1.6e-3 (normal); the
    // bounds are 6 standard errors, so a correct generator fails them with probability ~1e-9.
    const std::size_t n = 400'000;
    for (int prec = 0; prec < 2; ++prec) {
        auto u = prec ? tg::rand<double>({1, n}, 5, 0, -1, 3) : tg::rand<float>({1, n}, 5, 0, -1, 3).cast<double>();
        double m = 0, v = 0, lo = 1e9, hi = -1e9;
        for (std::size_t i = 0; i < n; ++i) m += u[i], lo = std::min(lo, u[i]), hi = std::max(hi, u[i]);
        m /= n;
        for (std::size_t i = 0; i < n; ++i) v += (u[i] - m) * (u[i] - m);
        v /= n - 1;
        CHECK(lo >= -1);
        CHECK(hi < 3);
        CHECK(std::abs(m - 1.0) < 6 * std::sqrt(16.0 / 12 / n));
        CHECK(std::abs(v - 16.0 / 12) < 0.02);
        auto z = prec ? tg::randn<double>({1, n}, 9, 0, 2, 0.5) : tg::randn<float>({1, n}, 9, 0, 2, 0.5).cast<double>();
        double zm = 0, zv = 0, z4 = 0;
        for (std::size_t i = 0; i < n; ++i) zm += z[i];
        zm /= n;
        for (std::size_t i = 0; i < n; ++i) {
            const double e = (z[i] - zm) / 0.5;
            zv += e * e;
            z4 += e * e * e * e;
        }
        zv /= n;
        z4 /= n;
        CHECK(std::abs(zm - 2.0) < 6 * 0.5 / std::sqrt(double(n)));
        CHECK(std::abs(zv - 1.0) < 0.015);
        CHECK(std::abs(z4 - 3.0) < 0.1);  // Gaussian kurtosis
        CHECK(std::isfinite(z[0]));
    }
}

TEST_CASE("rand and randn refuse invalid ranges and deviations") {
    CHECK_THROWS_WITH_AS(tg::rand<double>({2, 2}, 1, 0, 1, 0), "rand: invalid range [1, 0)", tg::Error);
    CHECK_THROWS_AS(tg::randn<double>({2, 2}, 1, 0, 0, NAN), tg::Error);
    CHECK_THROWS_AS(tg::randn<double>({2, 2}, 1, 0, 0, -1), tg::Error);
}

TEST_CASE("rand fills tensors of any rank, element i from index i") {
    auto t = tg::rand<double>({2, 3, 4}, 11);
    REQUIRE(t.numel() == 24);
    const tg::Philox gen(11);
    for (std::size_t i = 0; i < 24; ++i) CHECK(t.data()[i] == gen.uniform<double>(i));
    auto s = tg::randn<float>(tg::Shape{}, 3);  // rank 0: one element
    CHECK(s.numel() == 1);
    CHECK(s.data()[0] == tg::Philox(3).normal<float>(0));
}
