// libFuzzer target: the checkpoint loader on arbitrary bytes. Archive::deserialize either
// returns an archive or raises tapegrad::Error; an archive is serialized and read back (must
// give the same entries) and restored into a small model with an SGD-momentum optimiser, which
// either succeeds or raises tapegrad::Error. Each input runs twice: as is, and with its two
// CRC fields recomputed, so that the fuzzer gets past the checksums into the entry parser.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include <tapegrad/nn/checkpoint.hpp>
#include <tapegrad/nn/optim.hpp>
#include <tapegrad/nn/parameter.hpp>

namespace tg = tapegrad;
namespace nn = tapegrad::nn;

namespace {

bool same(const nn::Archive& a, const nn::Archive& b) {
    if (a.entries().size() != b.entries().size()) return false;
    for (const auto& [name, e] : a.entries()) {
        if (!b.contains(name)) return false;
        const auto& f = b.entry(name);
        if (e.kind != f.kind || e.shape != f.shape || e.data != f.data) return false;
    }
    return true;
}

void load(std::span<const std::uint8_t> bytes) {
    try {
        const nn::Archive a = nn::Archive::deserialize(bytes, "fuzz");
        // What was read is written back and read again identically.
        const std::vector<std::uint8_t> again = a.serialize();
        if (!same(a, nn::Archive::deserialize(again, "fuzz (re-serialized)"))) std::abort();
        nn::Parameter<double> w(tg::Tensor<double>(2, 3), "W0");
        nn::Parameter<double> b(tg::Tensor<double>(1, 3), "b0");
        std::vector<nn::Parameter<double>*> params{&w, &b};
        nn::SGD<double> opt(params, {.lr = 0.1, .momentum = 0.9});
        nn::TrainState st;
        nn::restore_checkpoint(a, params, &opt, st);
    } catch (const tg::Error&) {
    }
}

void put32(std::uint8_t* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    load({data, size});
    // The same bytes with both checksums made right (offsets 24 and 28, little-endian), so
    // that mutations reach the entry parser instead of stopping at the CRC check.
    if (size >= nn::kCheckpointHeaderBytes) {
        std::vector<std::uint8_t> fixed(data, data + size);
        put32(fixed.data() + 24, nn::crc32(std::span<const std::uint8_t>(fixed).subspan(nn::kCheckpointHeaderBytes)));
        put32(fixed.data() + 28, nn::crc32(std::span<const std::uint8_t>(fixed).first(28)));
        load(fixed);
    }
    return 0;
}
