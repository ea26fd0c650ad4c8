// IDX reading (plain and gzip through zlib) and Fashion-MNIST loading.
#include <tapegrad/nn/data.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>

#include <zlib.h>

namespace tapegrad::nn {

namespace {

std::vector<std::uint8_t> read_plain(const std::filesystem::path& path, std::size_t max_bytes) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) fail("{}: cannot read: {}", path.string(), ec.message());
    if (size > max_bytes) fail("{}: {} bytes, more than the {} allowed", path.string(), size, max_bytes);
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{}: cannot open: {}", path.string(), std::strerror(errno));
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (static_cast<std::size_t>(in.gcount()) != bytes.size())
        fail("{}: read {} of {} bytes", path.string(), in.gcount(), bytes.size());
    return bytes;
}

// Decompresses a whole gzip file; the buffer grows with the data actually produced.
std::vector<std::uint8_t> read_gzip(const std::filesystem::path& path, std::size_t max_bytes) {
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f) fail("{}: cannot open: {}", path.string(), std::strerror(errno));
    gzbuffer(f, 1 << 17);
    std::vector<std::uint8_t> bytes;
    constexpr std::size_t kChunk = std::size_t(1) << 20;
    for (;;) {
        const std::size_t at = bytes.size();
        if (at >= max_bytes) {
            gzclose(f);
            fail("{}: decompressed data exceed {} bytes", path.string(), max_bytes);
        }
        bytes.resize(at + kChunk);
        const int got = gzread(f, bytes.data() + at, static_cast<unsigned>(kChunk));
        if (got < 0) {
            int err = 0;
            std::string msg = gzerror(f, &err);
            gzclose(f);
            fail("{}: corrupt gzip data after {} decompressed bytes: {}", path.string(), at, msg);
        }
        bytes.resize(at + static_cast<std::size_t>(got));
        if (got == 0) break;
    }
    int err = 0;
    const char* msg = gzerror(f, &err);
    if (err != Z_OK && err != Z_STREAM_END) {
        std::string m = msg;
        gzclose(f);
        fail("{}: truncated or corrupt gzip stream after {} decompressed bytes: {}", path.string(), bytes.size(), m);
    }
    gzclose(f);
    bytes.shrink_to_fit();
    return bytes;
}

std::uint32_t be32(const std::uint8_t* p) noexcept {
    return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

}  // namespace

IdxArray parse_idx(std::vector<std::uint8_t> bytes, std::string name) {
    const std::size_t size = bytes.size();
    if (size < 4) fail("{}: truncated IDX header: {} bytes, the magic number needs 4 (offset 0)", name, size);
    if (bytes[0] != 0 || bytes[1] != 0)
        fail("{}: bad IDX magic at offset 0: {:02x} {:02x} {:02x} {:02x} (expected 00 00 08 <dims>)", name, bytes[0],
             bytes[1], bytes[2], bytes[3]);
    if (bytes[2] != 0x08)
        fail("{}: unsupported IDX element type 0x{:02x} at offset 2 (only 0x08, unsigned byte, is read)", name, bytes[2]);
    const std::size_t nd = bytes[3];
    if (nd == 0) fail("{}: IDX header declares 0 dimensions (offset 3)", name);
    const std::size_t header = 4 + 4 * nd;
    if (size < header)
        fail("{}: truncated IDX header: {} dimensions need {} header bytes, the file has {} (offset {})", name, nd,
             header, size, size);
    IdxArray a;
    a.path = std::move(name);
    a.dims.resize(nd);
    std::size_t total = 1;
    for (std::size_t i = 0; i < nd; ++i) {
        a.dims[i] = be32(bytes.data() + 4 + 4 * i);
        if (__builtin_mul_overflow(total, std::size_t(a.dims[i]), &total))
            fail("{}: IDX dimensions overflow: the product of the sizes up to dimension {} (offset {}) does not fit "
                 "in 64 bits",
                 a.path, i, 4 + 4 * i);
    }
    const std::size_t present = size - header;
    if (total != present) {
        std::string dims;
        for (std::size_t i = 0; i < nd; ++i) dims += fmt::format("{}{}", i ? "×" : "", a.dims[i]);
        fail("{}: IDX header declares {} = {} data bytes from offset {}, the file has {}{}", a.path, dims, total, header,
             present, total > present ? " (truncated or forged header)" : " (trailing bytes)");
    }
    a.bytes = std::move(bytes);
    a.offset = header;
    return a;
}

IdxArray read_idx(const std::filesystem::path& path, std::size_t max_bytes) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) fail("{}: no such file", path.string());
    bool gz = false;
    {
        std::ifstream in(path, std::ios::binary);
        if (!in) fail("{}: cannot open: {}", path.string(), std::strerror(errno));
        unsigned char m[2] = {0, 0};
        in.read(reinterpret_cast<char*>(m), 2);
        gz = in.gcount() == 2 && m[0] == 0x1f && m[1] == 0x8b;
    }
    auto bytes = gz ? read_gzip(path, max_bytes) : read_plain(path, max_bytes);
    return parse_idx(std::move(bytes), path.string() + (gz ? " (decompressed)" : ""));
}

void Dataset::truncate(std::size_t n) {
    if (n >= size()) return;
    labels.resize(n);
    images.resize(n * features);
}

Dataset load_idx_dataset(const std::filesystem::path& images, const std::filesystem::path& labels) {
    IdxArray im = read_idx(images);
    IdxArray lb = read_idx(labels);
    if (im.dims.size() != 3) fail("{}: expected 3 dimensions (n × rows × cols), found {}", im.path, im.dims.size());
    if (lb.dims.size() != 1) fail("{}: expected 1 dimension (n), found {}", lb.path, lb.dims.size());
    if (im.dims[0] != lb.dims[0])
        fail("{} has {} images but {} has {} labels", im.path, im.dims[0], lb.path, lb.dims[0]);
    Dataset d;
    d.rows = im.dims[1];
    d.cols = im.dims[2];
    d.features = d.rows * d.cols;
    auto idata = im.data();
    d.images.assign(idata.begin(), idata.end());
    auto ldata = lb.data();
    d.labels.assign(ldata.begin(), ldata.end());
    return d;
}

std::filesystem::path fashion_mnist_dir() {
    if (const char* e = std::getenv("TAPEGRAD_FASHION_MNIST"); e && *e) return e;
    return "/usr/share/datasets/fashion-mnist";
}

namespace {
std::filesystem::path find_idx(const std::filesystem::path& dir, const std::string& stem) {
    std::error_code ec;
    for (const char* ext : {".gz", ""}) {
        auto p = dir / (stem + ext);
        if (std::filesystem::is_regular_file(p, ec)) return p;
    }
    fail("Fashion-MNIST: {} not found (looked for {}.gz and {} in {}); install it with "
         "`apt-get install dataset-fashion-mnist`, or set TAPEGRAD_FASHION_MNIST to a directory holding the IDX files",
         stem, stem, stem, dir.string());
}
}  // namespace

bool fashion_mnist_available(const std::filesystem::path& dir) {
    std::error_code ec;
    for (const char* stem : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                             "t10k-labels-idx1-ubyte"}) {
        const std::string s = stem;
        if (!std::filesystem::is_regular_file(dir / (s + ".gz"), ec) && !std::filesystem::is_regular_file(dir / s, ec))
            return false;
    }
    return true;
}

Dataset load_fashion_mnist(std::string_view split, const std::filesystem::path& dir) {
    std::string prefix;
    if (split == "train")
        prefix = "train";
    else if (split == "test" || split == "t10k")
        prefix = "t10k";
    else
        fail("load_fashion_mnist: unknown split '{}' (use \"train\" or \"test\")", split);
    const auto images = find_idx(dir, prefix + "-images-idx3-ubyte");
    const auto labels = find_idx(dir, prefix + "-labels-idx1-ubyte");
    return load_idx_dataset(images, labels);
}

void epoch_order(std::vector<std::uint32_t>& order, std::size_t n, Rng& rng, bool shuffle) {
    if (n > 0xffffffffu) fail("epoch_order: {} samples exceed the 32-bit index range", n);
    order.resize(n);
    std::iota(order.begin(), order.end(), std::uint32_t(0));
    if (shuffle) rng.shuffle(std::span<std::uint32_t>(order));
}

}  // namespace tapegrad::nn
