// Shared inputs of every benchmark side: the data set, the network's initial weights and the
// batching, defined once so that tapegrad, the hand-written reference and PyTorch
// (bench/pytorch_bench.py re-implements init_params bit for bit) train the same network on the
// same batches.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bench {

// Images stay as bytes (47 MB for Fashion-MNIST's 60,000 training images); a batch is
// converted to float (pixel/255) when it is used.
struct Dataset {
    std::vector<std::uint8_t> images;  // n × dim, row-major
    std::vector<std::uint8_t> labels;  // n, in [0, 10)
    std::size_t n = 0;
    std::size_t dim = 0;
    bool real = false;                 // false: synthetic data of the same size
    std::string source;
};

// train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz from `dir`; when they are missing
// or unreadable, synthetic data of the same size (60,000 × 784, 10 classes).
Dataset load_fashion_mnist(const std::string& dir);
Dataset synthetic_dataset(std::size_t n, std::size_t dim);

// Batch `first .. first+m` as floats: X (m × dim, pixel/255), labels as floats and as ints.
void fill_batch(const Dataset& d, std::size_t first, std::size_t m, float* x, float* y_float, int* y_int);

// splitmix64 stream `seed`: element i is mix(seed + (i+1)·γ).
std::uint64_t splitmix64(std::uint64_t seed, std::uint64_t i);

// The layer sizes of the benchmarked MLP and its initial parameters: layer l has
// W (in × out, samples are rows: A = Z·W + b) and b (1 × out), both uniform in ±1/√in
// (PyTorch's nn.Linear default), drawn from splitmix64 streams 1000+2l and 1001+2l.
struct Params {
    std::vector<std::size_t> sizes;
    std::vector<std::vector<float>> w, b;
};
Params init_params(const std::vector<std::size_t>& sizes);

}  // namespace bench
