// DistributedSampler: which samples of a data set rank r of N reads in an epoch (torch's
// torch.utils.data.distributed.DistributedSampler, same rules).
//
//   - The order: 0 … n−1, shuffled (shuffle = true) by a generator seeded with seed + epoch —
//     the same on every rank, since all pass the same seed and call set_epoch(e) each epoch.
//   - Equal shares: every rank gets num_samples() indices, so every rank runs the same number of
//     steps (a rank with more steps would wait forever in its extra all-reduces).
//     drop_last = false: num_samples = ⌈n / N⌉, and the order is padded by repeating its start
//     (so a few samples are seen twice per epoch);  drop_last = true: num_samples = ⌊n / N⌋,
//     the order's tail is dropped.
//   - Rank r takes positions r, r + N, r + 2N, … of the (padded or cut) order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include <tapegrad/core/error.hpp>
#include <tapegrad/nn/random.hpp>

namespace tapegrad::dist {

class DistributedSampler {
public:
    struct Options {
        bool shuffle = true;
        std::uint64_t seed = 0;
        bool drop_last = false;
    };

    DistributedSampler(std::size_t dataset_size, int rank, int world_size) : DistributedSampler(dataset_size, rank, world_size, Options{}) {}
    DistributedSampler(std::size_t dataset_size, int rank, int world_size, Options o)
        : n_(dataset_size), rank_(rank), world_(world_size), o_(o) {
        if (world_size < 1 || rank < 0 || rank >= world_size)
            fail("DistributedSampler: rank {} of a world of {}", rank, world_size);
        const auto w = static_cast<std::size_t>(world_size);
        per_rank_ = o.drop_last ? n_ / w : (n_ + w - 1) / w;
        if (!o.drop_last && n_ == 0) per_rank_ = 0;
    }

    void set_epoch(std::uint64_t epoch) noexcept { epoch_ = epoch; }
    std::uint64_t epoch() const noexcept { return epoch_; }
    std::size_t num_samples() const noexcept { return per_rank_; }
    std::size_t total_size() const noexcept { return per_rank_ * static_cast<std::size_t>(world_); }

    // This rank's indices for the current epoch, in the order to read them (into `out`, whose
    // capacity is kept: no allocation after the first epoch).
    void indices(std::vector<std::uint32_t>& out) const {
        order_.resize(n_);
        std::iota(order_.begin(), order_.end(), std::uint32_t(0));
        if (o_.shuffle) {
            nn::Rng rng(o_.seed + epoch_);
            rng.shuffle(std::span<std::uint32_t>(order_));
        }
        out.resize(per_rank_);
        const std::size_t w = static_cast<std::size_t>(world_);
        for (std::size_t k = 0, pos = static_cast<std::size_t>(rank_); k < per_rank_; ++k, pos += w)
            out[k] = order_[pos < n_ ? pos : (pos - n_) % n_];  // past the end: padding from the start
    }
    std::vector<std::uint32_t> indices() const {
        std::vector<std::uint32_t> v;
        indices(v);
        return v;
    }

private:
    std::size_t n_;
    int rank_, world_;
    Options o_;
    std::size_t per_rank_ = 0;
    std::uint64_t epoch_ = 0;
    mutable std::vector<std::uint32_t> order_;
};

}  // namespace tapegrad::dist
