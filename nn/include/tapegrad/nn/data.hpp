// Data: the IDX file format (MNIST, Fashion-MNIST), plain or gzip-compressed; labelled image
// sets kept as uint8; mini-batches with seeded shuffling, scaled to [0, 1] a batch at a time.
//
// IDX: bytes 0–1 zero, byte 2 the element type (0x08 = unsigned byte, the only one supported),
// byte 3 the number of dimensions d; then d big-endian uint32 sizes; then the data, row-major.
// The reader checks the header against the (decompressed) file before using any size read
// from it: a bad magic, an unsupported type, a dimension product that overflows or differs
// from the bytes present raise tapegrad::Error naming the file and the offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tapegrad/core/error.hpp>
#include <tapegrad/core/tensor.hpp>
#include <tapegrad/nn/random.hpp>

namespace tapegrad::nn {

struct IdxArray {
    std::string path;
    std::vector<std::uint32_t> dims;
    std::vector<std::uint8_t> bytes;  // the whole (decompressed) file
    std::size_t offset = 0;           // where the data start in `bytes`

    std::span<const std::uint8_t> data() const noexcept { return {bytes.data() + offset, bytes.size() - offset}; }
    std::size_t count() const noexcept { return dims.empty() ? 0 : dims[0]; }
};

// Reads an IDX file of unsigned bytes; gzip-compressed files (by their 1f 8b magic) are
// decompressed with zlib. Decompressed data larger than `max_bytes` is refused.
IdxArray read_idx(const std::filesystem::path& path, std::size_t max_bytes = std::size_t(1) << 32);
// Parses an IDX image already in memory (`name` is used in error messages).
IdxArray parse_idx(std::vector<std::uint8_t> bytes, std::string name);

// n labelled samples of `features` uint8 values each (an image flattened row by row).
struct Dataset {
    std::vector<std::uint8_t> images;  // n × features
    std::vector<std::uint8_t> labels;  // n
    std::size_t features = 0;
    std::size_t rows = 0, cols = 0;    // image size
    std::size_t size() const noexcept { return labels.size(); }
    // The first n samples (all of them when n ≥ size()).
    void truncate(std::size_t n);
};

// Pairs an images file (n × rows × cols) with a labels file (n).
Dataset load_idx_dataset(const std::filesystem::path& images, const std::filesystem::path& labels);

// Where Fashion-MNIST is looked for: $TAPEGRAD_FASHION_MNIST, else /usr/share/datasets/fashion-mnist
// (Debian's dataset-fashion-mnist package).
std::filesystem::path fashion_mnist_dir();
bool fashion_mnist_available(const std::filesystem::path& dir = fashion_mnist_dir());
// split: "train" (60,000 images) or "test" (10,000; the files are named t10k-…). Files may be
// gzip-compressed (…-ubyte.gz) or plain (…-ubyte). A missing file raises an Error that names
// the package to install.
Dataset load_fashion_mnist(std::string_view split, const std::filesystem::path& dir = fashion_mnist_dir());

// How a batch of n images of rows×cols pixels is laid out: flat (n, rows·cols), a matrix for
// an MLP (the default, as before); hw (n, rows, cols); chw (n, 1, rows, cols), with the channel
// axis a convolution expects (torch's (N, C, H, W)). All three hold the same bytes, row-major.
enum class ImageLayout { flat, hw, chw };

// The shape of a batch of n images of d in `layout`; hw and chw need d.rows·d.cols == d.features.
inline Shape image_batch_shape(const Dataset& d, std::size_t n, ImageLayout layout) {
    if (layout != ImageLayout::flat && (d.rows * d.cols != d.features || d.features == 0))
        fail("image_batch_shape: images of {}×{} pixels do not make {} features", d.rows, d.cols, d.features);
    switch (layout) {
        case ImageLayout::hw: return Shape{n, d.rows, d.cols};
        case ImageLayout::chw: return Shape{n, 1, d.rows, d.cols};
        case ImageLayout::flat: break;
    }
    return Shape{n, d.features};
}

// Fills the first idx.size() samples of x with the samples idx, scaled by 1/255, and of y with
// their labels as T. x is (≥ n, features), (≥ n, rows, cols) or (≥ n, 1, rows, cols) — any of
// the layouts above — and contiguous; y is a column (≥ n, 1) or a vector (≥ n).
template <class T>
void gather_batch(const Dataset& d, std::span<const std::uint32_t> idx, Tensor<T>& x, Tensor<T>& y) {
    const std::size_t n = idx.size();
    const auto fits = [&](ImageLayout l) {
        return x.rank() >= 1 && x.dim(0) >= n && (l == ImageLayout::flat || d.rows * d.cols == d.features) &&
               x.shape().with(0, 1) == image_batch_shape(d, 1, l);
    };
    const bool x_ok = x.is_contiguous() &&
                      ((x.rank() == 2 && fits(ImageLayout::flat)) || (x.rank() == 3 && fits(ImageLayout::hw)) ||
                       (x.rank() == 4 && fits(ImageLayout::chw)));
    const bool y_ok = y.is_contiguous() && ((y.rank() == 2 && y.cols() == 1) || y.rank() == 1) && y.dim(0) >= n;
    if (!x_ok || !y_ok)
        fail("gather_batch: batch of {} samples with {} features ({}×{} pixels) does not fit x {} and y {}", n,
             d.features, d.rows, d.cols, x.shape(), y.shape());
    constexpr T kScale = T(1) / T(255);
    for (std::size_t r = 0; r < n; ++r) {
        if (idx[r] >= d.size()) fail("gather_batch: sample index {} outside a data set of {}", idx[r], d.size());
        const std::uint8_t* src = d.images.data() + std::size_t(idx[r]) * d.features;
        T* dst = x.data() + r * d.features;
        for (std::size_t j = 0; j < d.features; ++j) dst[j] = static_cast<T>(src[j]) * kScale;
        y.data()[r] = static_cast<T>(d.labels[idx[r]]);
    }
}

// The images idx of d as one new tensor in `layout`, scaled by 1/255: (n, 784), (n, 28, 28) or
// (n, 1, 28, 28) for Fashion-MNIST.
template <class T>
Tensor<T> images(const Dataset& d, std::span<const std::uint32_t> idx, ImageLayout layout = ImageLayout::flat) {
    Tensor<T> x(image_batch_shape(d, idx.size(), layout)), y(Shape{idx.size()});
    gather_batch(d, idx, x, y);
    return x;
}

// The order of one epoch: 0…n−1, shuffled by `rng` when `shuffle` is set. Rebuilt from the
// identity every epoch, so the order depends only on the generator's state at the epoch's start.
void epoch_order(std::vector<std::uint32_t>& order, std::size_t n, Rng& rng, bool shuffle = true);

}  // namespace tapegrad::nn
