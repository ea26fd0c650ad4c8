// Shared by the nn tests: a small learnable data set that needs a hidden layer.
#pragma once

#include <cstddef>
#include <cstdint>

#include <tapegrad/nn.hpp>

namespace tapegrad::test {

// 24 uint8 features in six groups of four; class = 2·[(g0 > g1) xor (g2 > g3)] + [g4 > g5]
// (gᵢ the group sums). A linear classifier cannot do better than about 50% (the xor bit is
// invisible to it), so an accuracy well above that needs correct gradients through a hidden layer.
inline nn::Dataset synthetic(std::size_t n, std::uint64_t seed) {
    nn::Rng rng(seed);
    nn::Dataset d;
    d.features = 24;
    d.rows = 1;
    d.cols = 24;
    d.images.resize(n * 24);
    d.labels.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        int g[6] = {};
        for (std::size_t j = 0; j < 24; ++j) {
            const auto v = static_cast<std::uint8_t>(rng.below(256));
            d.images[i * 24 + j] = v;
            g[j / 4] += v;
        }
        d.labels[i] = static_cast<std::uint8_t>(2 * ((g[0] > g[1]) != (g[2] > g[3])) + (g[4] > g[5]));
    }
    return d;
}

}  // namespace tapegrad::test
