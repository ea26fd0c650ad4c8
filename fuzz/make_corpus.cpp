// Writes the fuzzers' seed corpus: tiny valid IDX files (plain and gzip) and checkpoints.
// (fuzz/corpus/checkpoint/v1_* are version-1 files written before version 2; they are kept, not
// regenerated, so that the fuzzer also mutates the version-1 entry parser.)
//   make_corpus <fuzz/corpus>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <zlib.h>

#include <tapegrad/nn/checkpoint.hpp>
#include <tapegrad/nn/optim.hpp>
#include <tapegrad/nn/parameter.hpp>

namespace fs = std::filesystem;
namespace tg = tapegrad;
namespace nn = tapegrad::nn;

namespace {
std::vector<std::uint8_t> idx(const std::vector<std::uint32_t>& dims) {
    std::vector<std::uint8_t> b{0, 0, 8, static_cast<std::uint8_t>(dims.size())};
    std::size_t n = 1;
    for (std::uint32_t d : dims) {
        for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
        n *= d;
    }
    for (std::size_t i = 0; i < n; ++i) b.push_back(static_cast<std::uint8_t>(i * 37));
    return b;
}
void write(const fs::path& p, const std::vector<std::uint8_t>& b) {
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}
void write_gz(const fs::path& p, const std::vector<std::uint8_t>& b) {
    gzFile f = gzopen(p.c_str(), "wb9");
    gzwrite(f, b.data(), static_cast<unsigned>(b.size()));
    gzclose(f);
}
}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_corpus <corpus dir>\n");
        return 2;
    }
    const fs::path root = argv[1];
    fs::create_directories(root / "idx");
    fs::create_directories(root / "checkpoint");
    write(root / "idx" / "labels_5", idx({5}));
    write(root / "idx" / "images_2x3x3", idx({2, 3, 3}));
    write(root / "idx" / "empty_0x4", idx({0, 4}));
    write_gz(root / "idx" / "images_3x2x2.gz", idx({3, 2, 2}));
    write_gz(root / "idx" / "labels_4.gz", idx({4}));

    nn::Parameter<double> w(tg::Tensor<double>(2, 3, {1, 2, 3, 4, 5, 6}), "W0");
    nn::Parameter<double> b(tg::Tensor<double>(1, 3, {0.5, -0.5, 0}), "b0");
    std::vector<nn::Parameter<double>*> params{&w, &b};
    nn::SGD<double> opt(params, {.lr = 0.1, .momentum = 0.9});
    nn::TrainState st;
    st.epoch = 1;
    st.batch = 2;
    st.step = 3;
    write(root / "checkpoint" / "model_sgd_momentum", nn::make_checkpoint(params, &opt, st).serialize());
    write(root / "checkpoint" / "model_only", nn::make_checkpoint<double>(params, nullptr, st).serialize());
    nn::Archive a;
    a.put_string("format/dtype", "double");
    write(root / "checkpoint" / "empty_model", a.serialize());
    // Version 2 carries every entry's rank: the fuzz model's parameters plus tensors of ranks 0,
    // 1, 3 and 6 (which the model does not have: restoring them raises Error).
    nn::Archive ranks = nn::make_checkpoint<double>(params, nullptr, st);
    ranks.put("extra/rank0", tg::Tensor<double>(tg::Shape{}));
    ranks.put("extra/rank1", tg::Tensor<double>(tg::Shape{2}));
    ranks.put("extra/rank3", tg::Tensor<double>(tg::Shape{2, 1, 2}));
    ranks.put("extra/rank6", tg::Tensor<double>(tg::Shape{1, 2, 1, 1, 2, 1}));
    write(root / "checkpoint" / "ranks_0_1_3_6", ranks.serialize());
    return 0;
}
