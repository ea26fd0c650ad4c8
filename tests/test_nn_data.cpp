// IDX reading (plain, gzip, forged and truncated headers), Fashion-MNIST loading, batching.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>
#include <zlib.h>

#include <tapegrad/nn/data.hpp>

#include "test_errors.hpp"

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("tapegrad_nn_data_" + std::to_string(::getpid()));
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

std::vector<std::uint8_t> idx_bytes(std::vector<std::uint32_t> dims, std::size_t data_bytes, std::uint8_t type = 0x08) {
    std::vector<std::uint8_t> b = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
    for (std::uint32_t d : dims)
        for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
    for (std::size_t i = 0; i < data_bytes; ++i) b.push_back(static_cast<std::uint8_t>(i * 7 + 3));
    return b;
}

fs::path write_plain(const fs::path& p, const std::vector<std::uint8_t>& b) {
    std::ofstream f(p, std::ios::binary);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    return p;
}

fs::path write_gzip(const fs::path& p, const std::vector<std::uint8_t>& b) {
    gzFile f = gzopen(p.c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
    gzclose(f);
    return p;
}

// The message of the Error reading file p raises, or "" when it reads.
std::string read_error(const fs::path& p) {
    return error_of([&] { nn::read_idx(p); });
}

}  // namespace

TEST_CASE("a plain IDX file of 2x3x4 bytes reads back its dimensions and data") {
    TempDir d;
    auto b = idx_bytes({2, 3, 4}, 24);
    auto a = nn::read_idx(write_plain(d.path / "x-idx3-ubyte", b));
    CHECK(a.dims == std::vector<std::uint32_t>{2, 3, 4});
    REQUIRE(a.data().size() == 24);
    CHECK(a.data()[0] == 3);
    CHECK(a.data()[23] == static_cast<std::uint8_t>(23 * 7 + 3));
    CHECK(a.count() == 2);
}

TEST_CASE("a gzip-compressed IDX file reads the same as the plain one") {
    TempDir d;
    auto b = idx_bytes({5, 7}, 35);
    auto plain = nn::read_idx(write_plain(d.path / "p", b));
    auto gz = nn::read_idx(write_gzip(d.path / "p.gz", b));
    CHECK(gz.dims == plain.dims);
    CHECK(std::equal(gz.data().begin(), gz.data().end(), plain.data().begin(), plain.data().end()));
}

TEST_CASE("a bad magic number is an error naming the file and offset 0") {
    TempDir d;
    auto b = idx_bytes({2, 2}, 4);
    b[0] = 0x50;  // "PK…" — say, a zip file
    const std::string e = read_error(write_plain(d.path / "bad-magic", b));
    CHECK(contains(e, "bad-magic"));
    CHECK(contains(e, "magic"));
    CHECK(contains(e, "offset 0"));
}

TEST_CASE("an unsupported element type is an error naming offset 2") {
    TempDir d;
    const std::string e = read_error(write_plain(d.path / "floats", idx_bytes({2}, 8, 0x0d)));
    CHECK(contains(e, "0x0d"));
    CHECK(contains(e, "offset 2"));
}

TEST_CASE("dimensions whose product overflows are rejected before any allocation") {
    TempDir d;
    auto b = idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu}, 16);
    const std::string e = read_error(write_plain(d.path / "overflow", b));
    CHECK(contains(e, "overflow"));
    CHECK(contains(e, "offset"));
}

TEST_CASE("dimensions larger than the file are a truncation error, plain and gzip") {
    TempDir d;
    auto b = idx_bytes({60000, 28, 28}, 100);  // claims 47 MB, holds 100 bytes
    for (const fs::path& p : {write_plain(d.path / "short", b), write_gzip(d.path / "short.gz", b)}) {
        const std::string e = read_error(p);
        CHECK(contains(e, p.string()));
        CHECK(contains(e, "47040000"));
        CHECK(contains(e, "truncated or forged"));
        CHECK(contains(e, "offset 16"));
    }
}

TEST_CASE("a header cut inside its dimension list is an error") {
    TempDir d;
    auto b = idx_bytes({2, 3, 4}, 0);
    b.resize(9);
    const std::string e = read_error(write_plain(d.path / "cut", b));
    CHECK(contains(e, "truncated IDX header"));
    auto tiny = std::vector<std::uint8_t>{0, 0};
    CHECK(contains(read_error(write_plain(d.path / "tiny", tiny)), "offset 0"));
}

TEST_CASE("trailing bytes after the declared data are rejected") {
    TempDir d;
    const std::string e = read_error(write_plain(d.path / "long", idx_bytes({2, 2}, 9)));
    CHECK(contains(e, "trailing"));
}

TEST_CASE("a truncated gzip stream is an error, not a short read") {
    TempDir d;
    auto b = idx_bytes({200, 50}, 10000);
    auto p = write_gzip(d.path / "cut.gz", b);
    const auto full = fs::file_size(p);
    fs::resize_file(p, full / 2);
    const std::string e = read_error(p);
    CHECK(contains(e, "cut.gz"));
    CHECK(!e.empty());
}

TEST_CASE("a missing file is an error naming it") {
    CHECK(contains(read_error("/nonexistent/t10k-images-idx3-ubyte.gz"), "no such file"));
}

TEST_CASE("images and labels pair up; mismatched counts are an error") {
    TempDir d;
    auto im = write_plain(d.path / "im", idx_bytes({3, 2, 2}, 12));
    auto lb = write_plain(d.path / "lb", idx_bytes({3}, 3));
    auto lb4 = write_plain(d.path / "lb4", idx_bytes({4}, 4));
    auto ds = nn::load_idx_dataset(im, lb);
    CHECK(ds.size() == 3);
    CHECK(ds.features == 4);
    CHECK(ds.rows == 2);
    CHECK_THROWS_AS(nn::load_idx_dataset(im, lb4), tg::Error);
    CHECK_THROWS_AS(nn::load_idx_dataset(lb, im), tg::Error);  // wrong ranks
}

TEST_CASE("a missing Fashion-MNIST directory names the Debian package to install") {
    try {
        nn::load_fashion_mnist("train", "/nonexistent/fashion");
        FAIL("no error");
    } catch (const tg::Error& e) {
        CHECK(contains(e.what(), "apt-get install dataset-fashion-mnist"));
    }
    CHECK_FALSE(nn::fashion_mnist_available("/nonexistent/fashion"));
    CHECK_THROWS_AS(nn::load_fashion_mnist("validation", "/nonexistent"), tg::Error);
}

TEST_CASE("the installed Fashion-MNIST test set has 10000 labelled 28x28 images") {
    if (!nn::fashion_mnist_available()) {
        MESSAGE("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist); skipped");
        return;
    }
    auto ds = nn::load_fashion_mnist("test");
    CHECK(ds.size() == 10000);
    CHECK(ds.features == 784);
    CHECK(*std::max_element(ds.labels.begin(), ds.labels.end()) == 9);
    std::vector<int> per_class(10);
    for (auto l : ds.labels) ++per_class[l];
    CHECK(std::all_of(per_class.begin(), per_class.end(), [](int c) { return c == 1000; }));
}

TEST_CASE("gather_batch scales pixels to [0, 1] and copies the labels of the chosen samples") {
    nn::Dataset ds;
    ds.features = 2;
    ds.images = {0, 255, 51, 102, 10, 20};
    ds.labels = {7, 3, 1};
    tg::Tensor<float> x(4, 2), y(4, 1);
    const std::uint32_t idx[2] = {2, 0};
    nn::gather_batch<float>(ds, idx, x, y);
    CHECK(x(0, 0) == doctest::Approx(10 / 255.0));
    CHECK(x(1, 1) == 1.0f);
    CHECK(y[0] == 1.0f);
    CHECK(y[1] == 7.0f);
    const std::uint32_t bad[1] = {3};
    CHECK_THROWS_AS(nn::gather_batch<float>(ds, bad, x, y), tg::Error);
}

TEST_CASE("epoch orders are permutations fixed by the generator's state") {
    nn::Rng a(9), b(9);
    std::vector<std::uint32_t> oa, ob;
    nn::epoch_order(oa, 1000, a);
    nn::epoch_order(ob, 1000, b);
    CHECK(oa == ob);
    auto sorted = oa;
    std::sort(sorted.begin(), sorted.end());
    for (std::uint32_t i = 0; i < 1000; ++i) REQUIRE(sorted[i] == i);
    CHECK(oa != sorted);  // shuffled
    nn::epoch_order(ob, 1000, b);  // the next epoch differs
    CHECK(oa != ob);
}

TEST_CASE("the generator gives the same stream on every platform") {
    nn::Rng r(42);
    // xoshiro256** seeded by splitmix64(42), value from an independent Python transcription of both.
    const std::uint64_t first = r.next();
    nn::Rng r2(42);
    CHECK(r2.next() == first);
    CHECK(first == 0x15780b2e0c2ec716ull);
    double s = 0, s2 = 0;
    for (int i = 0; i < 20000; ++i) {
        const double z = r.normal();
        s += z;
        s2 += z * z;
    }
    CHECK(std::abs(s / 20000) < 0.03);
    CHECK(s2 / 20000 == doctest::Approx(1.0).epsilon(0.05));
}

TEST_CASE("random IDX headers and lengths are parsed or rejected with Error, never crash") {
    nn::Rng rng(77);
    int errors = 0, parsed = 0;
    for (int trial = 0; trial < 5000; ++trial) {
        std::vector<std::uint8_t> b(rng.below(64));
        for (auto& x : b) x = static_cast<std::uint8_t>(rng.below(4) == 0 ? rng.below(256) : rng.below(3));
        if (b.size() >= 4 && rng.below(2)) {
            b[0] = b[1] = 0;
            b[2] = 0x08;
            b[3] = static_cast<std::uint8_t>(rng.below(5));
        }
        try {
            auto a = nn::parse_idx(std::move(b), "fuzz");
            std::size_t prod = 1;
            for (auto d : a.dims) prod *= d;
            CHECK(prod == a.data().size());
            ++parsed;
        } catch (const tg::Error&) {
            ++errors;
        }
    }
    CHECK(errors + parsed == 5000);
    CHECK(parsed > 0);
    CHECK(errors > 0);
}

// ---- ndio: images as (N, 784), (N, 28, 28) or (N, 1, 28, 28) (issue 11 item 12) --------------

TEST_CASE("a batch of images comes as (n, rows·cols), (n, rows, cols) or (n, 1, rows, cols) with the same pixels") {
    TempDir dir;
    // Three 2×3 images and their labels, through the IDX reader.
    const auto im = idx_bytes({3, 2, 3}, 18);
    std::vector<std::uint8_t> lb = idx_bytes({3}, 0);
    lb.insert(lb.end(), {4, 9, 1});
    {
        std::ofstream(dir.path / "im", std::ios::binary).write(reinterpret_cast<const char*>(im.data()), std::streamsize(im.size()));
        std::ofstream(dir.path / "lb", std::ios::binary).write(reinterpret_cast<const char*>(lb.data()), std::streamsize(lb.size()));
    }
    const nn::Dataset ds = nn::load_idx_dataset(dir.path / "im", dir.path / "lb");
    REQUIRE(ds.features == 6);
    const std::uint32_t idx[2] = {2, 0};
    const auto flat = nn::images<double>(ds, idx);
    const auto hw = nn::images<double>(ds, idx, nn::ImageLayout::hw);
    const auto chw = nn::images<double>(ds, idx, nn::ImageLayout::chw);
    CHECK(flat.shape() == tg::Shape{2, 6});
    CHECK(hw.shape() == tg::Shape{2, 2, 3});
    CHECK(chw.shape() == tg::Shape{2, 1, 2, 3});
    CHECK(nn::image_batch_shape(ds, 5, nn::ImageLayout::chw) == tg::Shape{5, 1, 2, 3});
    const std::uint8_t* px = im.data() + 4 + 3 * 4;  // the IDX data after the header
    for (std::size_t s = 0; s < 2; ++s)
        for (std::size_t j = 0; j < 6; ++j) {
            const double want = px[idx[s] * 6 + j] * (1.0 / 255.0);  // as the kernel scales
            CHECK(flat.data()[s * 6 + j] == want);
            CHECK(hw.data()[s * 6 + j] == want);
            CHECK(chw.data()[s * 6 + j] == want);
        }
    // Pixel (row 1, col 2) of the first sample, indexed in each layout.
    CHECK(hw.at({0, 1, 2}) == flat(0, 5));
    CHECK(chw.at({0, 0, 1, 2}) == flat(0, 5));

    SUBCASE("gather_batch fills a (batch, 1, rows, cols) buffer and a vector of labels") {
        tg::Tensor<float> x(tg::Shape{4, 1, 2, 3}), y(tg::Shape{4});
        nn::gather_batch<float>(ds, idx, x, y);
        CHECK(x.at({1, 0, 0, 0}) == static_cast<float>(px[0]) * (1.0f / 255.0f));
        CHECK(y.data()[0] == 1.0f);
        CHECK(y.data()[1] == 4.0f);
    }
    SUBCASE("a buffer of another layout is an Error naming both shapes") {
        tg::Tensor<float> y(4, 1);
        for (const tg::Shape& s : {tg::Shape{4, 3, 2}, tg::Shape{4, 2, 1, 3}, tg::Shape{1, 6}, tg::Shape{4, 2, 2, 3},
                                   tg::Shape{4, 1, 1, 2, 3}}) {
            tg::Tensor<float> x(s);
            CHECK_THROWS_WITH_AS(nn::gather_batch<float>(ds, idx, x, y),
                                 doctest::Contains(fmt::format("does not fit x {}", s).c_str()), tg::Error);
        }
    }
    SUBCASE("hw and chw need rows·cols = features") {
        nn::Dataset odd;
        odd.features = 6;
        CHECK_THROWS_WITH_AS(nn::image_batch_shape(odd, 2, nn::ImageLayout::hw),
                             doctest::Contains("images of 0×0 pixels do not make 6 features"), tg::Error);
        CHECK(nn::image_batch_shape(odd, 2, nn::ImageLayout::flat) == tg::Shape{2, 6});
    }
}

TEST_CASE("the installed Fashion-MNIST test images read as (N, 1, 28, 28)") {
    if (!nn::fashion_mnist_available()) {
        MESSAGE("Fashion-MNIST not installed; skipped");
        return;
    }
    const nn::Dataset ds = nn::load_fashion_mnist("test");
    const std::uint32_t idx[3] = {0, 1, 9999};
    const auto x = nn::images<float>(ds, idx, nn::ImageLayout::chw);
    CHECK(x.shape() == tg::Shape{3, 1, 28, 28});
    const auto f = nn::images<float>(ds, idx);
    CHECK(f.shape() == tg::Shape{3, 784});
    CHECK(x.at({2, 0, 27, 13}) == f(2, 27 * 28 + 13));
}
