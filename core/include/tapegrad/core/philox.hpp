// Counter-based random numbers: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random
// numbers: as easy as 1, 2, 3", SC'11; the generator of cuRAND, JAX's threefry's sibling and
// PyTorch's CUDA generator).
//
// A counter-based generator is a pure function: (seed, stream, element index) → random bits.
// Element i of a tensor drawn with (seed, stream) is the same number whichever thread computes
// it, in whatever order, and however a batch is split across threads or processes — which a
// sequential generator (xoshiro, the Mersenne twister) cannot give without replaying the
// stream. Dropout masks recomputed under activation checkpointing and data-parallel ranks
// drawing their share of a batch rely on this.
//
// Layout: the 128-bit counter is (index / per_block, stream), the 64-bit key is the seed.
//   uniform float:   4 per block, element i uses word i % 4 of block i / 4 (24 bits);
//   uniform double:  2 per block, words 2(i % 2), 2(i % 2) + 1 of block i / 2 (53 bits);
//   normal float:    2 per block, Box–Muller on the two words of its half of block i / 2;
//   normal double:   1 per block, Box–Muller on two 53-bit uniforms of block i.
// Each element has its own words, so no element depends on its neighbour being drawn.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numbers>
#include <span>
#include <type_traits>

#include <tapegrad/core/tensor.hpp>

namespace tapegrad {

// The Philox4x32 block function with 10 rounds.
constexpr std::array<std::uint32_t, 4> philox4x32(std::array<std::uint32_t, 4> ctr,
                                                  std::array<std::uint32_t, 2> key) noexcept {
    constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // multipliers
    constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // Weyl key increments
    for (int round = 0; round < 10; ++round) {
        if (round > 0) key[0] += kW0, key[1] += kW1;
        const std::uint64_t p0 = std::uint64_t(kM0) * ctr[0];
        const std::uint64_t p1 = std::uint64_t(kM1) * ctr[2];
        ctr = {std::uint32_t(p1 >> 32) ^ ctr[1] ^ key[0], std::uint32_t(p1),
               std::uint32_t(p0 >> 32) ^ ctr[3] ^ key[1], std::uint32_t(p0)};
    }
    return ctr;
}

// The random stream of one (seed, stream) pair, addressed by element index.
class Philox {
public:
    constexpr explicit Philox(std::uint64_t seed, std::uint64_t stream = 0) noexcept
        : key_{std::uint32_t(seed), std::uint32_t(seed >> 32)}, stream_(stream) {}

    constexpr std::array<std::uint32_t, 4> block(std::uint64_t n) const noexcept {
        return philox4x32({std::uint32_t(n), std::uint32_t(n >> 32), std::uint32_t(stream_),
                           std::uint32_t(stream_ >> 32)},
                          key_);
    }

    // Uniform in [0, 1): float from 24 bits, double from 53.
    template <class T>
    T uniform(std::uint64_t i) const noexcept {
        if constexpr (std::is_same_v<T, float>) {
            return float(block(i / 4)[i % 4] >> 8) * 0x1p-24f;
        } else {
            const auto b = block(i / 2);
            const std::size_t w = 2 * (i % 2);
            return to_double(b[w], b[w + 1]);
        }
    }
    // Standard normal (Box–Muller, the cosine branch; 1 − u keeps the logarithm finite).
    template <class T>
    T normal(std::uint64_t i) const noexcept {
        double u1, u2;
        if constexpr (std::is_same_v<T, float>) {
            const auto b = block(i / 2);
            const std::size_t w = 2 * (i % 2);
            u1 = double(b[w] >> 8) * 0x1p-24;
            u2 = double(b[w + 1] >> 8) * 0x1p-24;
        } else {
            const auto b = block(i);
            u1 = to_double(b[0], b[1]);
            u2 = to_double(b[2], b[3]);
        }
        return static_cast<T>(std::sqrt(-2.0 * std::log1p(-u1)) * std::cos(2.0 * std::numbers::pi * u2));
    }

    // out[k] = element first + k: a slice of the stream, so that any split of [0, n) into
    // chunks, filled in any order by any thread, gives the same tensor.
    template <class T>
    void fill_uniform(std::span<T> out, std::uint64_t first = 0, double lo = 0, double hi = 1) const {
        for (std::size_t k = 0; k < out.size(); ++k)
            out[k] = static_cast<T>(lo + (hi - lo) * double(uniform<T>(first + k)));
    }
    template <class T>
    void fill_normal(std::span<T> out, std::uint64_t first = 0, double mean = 0, double std = 1) const {
        for (std::size_t k = 0; k < out.size(); ++k)
            out[k] = static_cast<T>(mean + std * double(normal<T>(first + k)));
    }

private:
    static constexpr double to_double(std::uint32_t a, std::uint32_t b) noexcept {
        return double(((std::uint64_t(a) << 32) | b) >> 11) * 0x1p-53;
    }
    std::array<std::uint32_t, 2> key_;
    std::uint64_t stream_;
};

// A tensor of independent U[lo, hi) draws / N(mean, std²) draws, element i from (seed, stream, i):
// torch.rand / torch.randn with a counter-based generator.
template <class T>
Tensor<T> rand(Shape s, std::uint64_t seed, std::uint64_t stream = 0, double lo = 0, double hi = 1) {
    if (!(lo <= hi) || !std::isfinite(lo) || !std::isfinite(hi)) fail("rand: invalid range [{}, {})", lo, hi);
    Tensor<T> t(s);
    Philox(seed, stream).fill_uniform<T>(std::span<T>(t.data(), t.size()), 0, lo, hi);
    return t;
}
template <class T>
Tensor<T> randn(Shape s, std::uint64_t seed, std::uint64_t stream = 0, double mean = 0, double std = 1) {
    if (!(std >= 0) || !std::isfinite(std) || !std::isfinite(mean))
        fail("randn: invalid mean {} or standard deviation {}", mean, std);
    Tensor<T> t(s);
    Philox(seed, stream).fill_normal<T>(std::span<T>(t.data(), t.size()), 0, mean, std);
    return t;
}

}  // namespace tapegrad
