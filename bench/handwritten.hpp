// The reference: seed 000's batch backpropagation coded by hand over CBLAS, for the
// benchmarked MLP (ReLU hidden layers, softmax cross-entropy, plain SGD). No tape, no
// allocation after construction: the bar tapegrad's generic engine is measured against.
#pragma once

#include <cstddef>
#include <vector>

#include "data.hpp"

namespace bench {

class HandwrittenMlp {
public:
    HandwrittenMlp(const Params& init, std::size_t max_batch);

    // One SGD step on batch X (m × sizes[0]), labels y; returns the loss before the update.
    float step(const float* x, const int* y, std::size_t m, float lr);

    const std::vector<float>& weight(std::size_t l) const { return w_[l]; }

private:
    std::vector<std::size_t> sizes_;
    std::size_t max_batch_;
    std::vector<std::vector<float>> w_, b_, dw_, db_;
    std::vector<std::vector<float>> a_;  // a_[l] = Z^l·W^l + b^l  (m × sizes[l+1]), pre-activation
    std::vector<std::vector<float>> z_;  // z_[l] = relu(a_[l-1]), z_[0] unused (X)
    std::vector<float> da_, dz_;         // adjoint scratch (m × widest layer)
};

}  // namespace bench
