// libFuzzer target: the IDX reader on arbitrary bytes. Bytes starting with the gzip magic go
// through a file and read_idx (zlib), with a decompression bound of 8 MiB; everything else
// through parse_idx. Either an IdxArray whose dimensions match its data, or tapegrad::Error.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <unistd.h>

#include <tapegrad/nn/data.hpp>

namespace {
constexpr std::size_t kMaxDecompressed = std::size_t(8) << 20;

void check(const tapegrad::nn::IdxArray& a) {
    std::size_t total = 1;
    for (std::uint32_t d : a.dims) total *= d;
    if (a.data().size() != total) std::abort();  // the reader promised dims × … = data bytes
    unsigned sum = 0;
    for (std::uint8_t b : a.data()) sum += b;  // every byte is readable
    if (sum == 0xffffffffu) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
            static const std::string path = "/tmp/tapegrad_fuzz_idx_" + std::to_string(getpid()) + ".gz";
            std::FILE* f = std::fopen(path.c_str(), "wb");
            if (!f) return 0;
            std::fwrite(data, 1, size, f);
            std::fclose(f);
            check(tapegrad::nn::read_idx(path, kMaxDecompressed));
        } else {
            check(tapegrad::nn::parse_idx(std::vector<std::uint8_t>(data, data + size), "fuzz"));
        }
    } catch (const tapegrad::Error&) {
    }
    return 0;
}
