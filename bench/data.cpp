#include "data.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <zlib.h>

namespace bench {

namespace {

std::uint32_t be32(const unsigned char* p) {
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
}

// Reads a gzip-compressed IDX file of unsigned bytes; returns its dimensions and payload.
bool read_idx_gz(const std::string& path, std::vector<std::uint32_t>& dims, std::vector<std::uint8_t>& out) {
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f) return false;
    unsigned char head[4];
    bool ok = gzread(f, head, 4) == 4 && head[0] == 0 && head[1] == 0 && head[2] == 0x08 && head[3] >= 1 &&
              head[3] <= 3;
    std::size_t total = 1;
    if (ok) {
        dims.assign(head[3], 0);
        for (auto& d : dims) {
            unsigned char b[4];
            if (gzread(f, b, 4) != 4) {
                ok = false;
                break;
            }
            d = be32(b);
            total *= d;
        }
    }
    ok = ok && total > 0 && total <= (std::size_t(1) << 30);
    if (ok) {
        out.resize(total);
        std::size_t got = 0;
        while (got < total) {
            int r = gzread(f, out.data() + got, static_cast<unsigned>(std::min<std::size_t>(total - got, 1u << 30)));
            if (r <= 0) break;
            got += static_cast<std::size_t>(r);
        }
        ok = got == total;
    }
    gzclose(f);
    return ok;
}

}  // namespace

std::uint64_t splitmix64(std::uint64_t seed, std::uint64_t i) {
    std::uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

Dataset synthetic_dataset(std::size_t n, std::size_t dim) {
    Dataset d;
    d.n = n;
    d.dim = dim;
    d.images.resize(n * dim);
    d.labels.resize(n);
    d.source = "synthetic";
    // Each class brightens its own band of pixels, so the network has something to learn.
    for (std::size_t i = 0; i < n; ++i) {
        std::uint8_t c = static_cast<std::uint8_t>(splitmix64(7, i) % 10);
        d.labels[i] = c;
        for (std::size_t j = 0; j < dim; ++j) {
            std::uint64_t r = splitmix64(11, i * dim + j);
            unsigned v = static_cast<unsigned>(r & 127);
            if (j * 10 / dim == c) v += 128;
            d.images[i * dim + j] = static_cast<std::uint8_t>(v);
        }
    }
    return d;
}

Dataset load_fashion_mnist(const std::string& dir) {
    Dataset d;
    std::vector<std::uint32_t> di, dl;
    if (read_idx_gz(dir + "/train-images-idx3-ubyte.gz", di, d.images) &&
        read_idx_gz(dir + "/train-labels-idx1-ubyte.gz", dl, d.labels) && di.size() == 3 && dl.size() == 1 &&
        di[0] == dl[0]) {
        d.n = di[0];
        d.dim = std::size_t(di[1]) * di[2];
        d.real = true;
        d.source = dir;
        bool labels_ok = true;
        for (auto l : d.labels) labels_ok = labels_ok && l < 10;
        if (labels_ok) return d;
    }
    std::fprintf(stderr, "bench: Fashion-MNIST not found in %s; using synthetic data of the same size\n",
                 dir.c_str());
    return synthetic_dataset(60000, 784);
}

void fill_batch(const Dataset& d, std::size_t first, std::size_t m, float* x, float* y_float, int* y_int) {
    const std::uint8_t* p = d.images.data() + first * d.dim;
    for (std::size_t k = 0; k < m * d.dim; ++k) x[k] = static_cast<float>(p[k]) * (1.0f / 255.0f);
    for (std::size_t i = 0; i < m; ++i) {
        if (y_float) y_float[i] = static_cast<float>(d.labels[first + i]);
        if (y_int) y_int[i] = d.labels[first + i];
    }
}

Params init_params(const std::vector<std::size_t>& sizes) {
    Params p;
    p.sizes = sizes;
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
        const std::size_t in = sizes[l], out = sizes[l + 1];
        const double bound = 1.0 / std::sqrt(static_cast<double>(in));
        auto draw = [&](std::uint64_t seed, std::size_t n) {
            std::vector<float> v(n);
            for (std::size_t i = 0; i < n; ++i) {
                double u = static_cast<double>(splitmix64(seed, i) >> 40) * 0x1.0p-24;  // [0, 1)
                v[i] = static_cast<float>((2.0 * u - 1.0) * bound);
            }
            return v;
        };
        p.w.push_back(draw(1000 + 2 * l, in * out));
        p.b.push_back(draw(1001 + 2 * l, out));
    }
    return p;
}

}  // namespace bench
