// Rng: a small seeded generator whose streams are identical on every platform and compiler
// (std::mt19937 is, but std::uniform_*_distribution, std::normal_distribution and std::shuffle
// are not). xoshiro256** seeded through splitmix64; uniforms from the top 53 bits; normals by
// Box–Muller; Fisher–Yates shuffling with unbiased bounded integers (rejection sampling).
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <span>

namespace tapegrad::nn {

// splitmix64: one step of Steele, Lea & Flood's generator; used to expand a seed.
inline std::uint64_t splitmix64(std::uint64_t& x) noexcept {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

class Rng {
    __extension__ typedef unsigned __int128 U128;  // GCC/Clang builtin; -Wpedantic-clean

public:
    using State = std::array<std::uint64_t, 4>;

    explicit Rng(std::uint64_t seed = 0) noexcept { reseed(seed); }

    void reseed(std::uint64_t seed) noexcept {
        for (auto& w : s_) w = splitmix64(seed);
    }

    // xoshiro256** (Blackman & Vigna).
    std::uint64_t next() noexcept {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    // Uniform in [0, 1): k · 2⁻⁵³ with k the top 53 bits.
    double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    // Uniform in [a, b).
    double uniform(double a, double b) noexcept { return a + (b - a) * uniform(); }
    // Standard normal by Box–Muller (one of the pair; the other is discarded so that the state
    // is just the four words).  z = √(−2 ln u₁) · cos(2π u₂),  u₁ ∈ (0, 1].
    double normal() noexcept {
        const double u1 = 1.0 - uniform();
        const double u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    }
    double normal(double mean, double stddev) noexcept { return mean + stddev * normal(); }
    // Uniform integer in [0, n), n ≥ 1, without modulo bias (Lemire's multiply-and-reject).
    std::uint64_t below(std::uint64_t n) noexcept {
        U128 m = static_cast<U128>(next()) * n;
        auto lo = static_cast<std::uint64_t>(m);
        if (lo < n) {
            const std::uint64_t threshold = (0 - n) % n;
            while (lo < threshold) {
                m = static_cast<U128>(next()) * n;
                lo = static_cast<std::uint64_t>(m);
            }
        }
        return static_cast<std::uint64_t>(m >> 64);
    }

    // Fisher–Yates, from the last element down.
    template <class U>
    void shuffle(std::span<U> v) noexcept {
        for (std::size_t i = v.size(); i > 1; --i) {
            const std::size_t j = static_cast<std::size_t>(below(i));
            std::swap(v[i - 1], v[j]);
        }
    }

    const State& state() const noexcept { return s_; }
    void set_state(const State& s) noexcept { s_ = s; }
    friend bool operator==(const Rng&, const Rng&) = default;

private:
    static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
    State s_{};
};

}  // namespace tapegrad::nn
