// Checkpoint files: serialisation, validation, atomic saving.
#include <tapegrad/nn/checkpoint.hpp>

#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

namespace tapegrad::nn {

static_assert(std::endian::native == std::endian::little, "checkpoint files are written little-endian");

namespace {

constexpr std::size_t kMaxName = 4096;
constexpr std::size_t kEntryHeaderV1 = 24;  // name length, kind, rows, cols
constexpr std::size_t kEntryHeader = 16;    // name length, kind, rank, reserved; then rank × u64 dims

std::size_t elem_size(Archive::Kind k) {
    switch (k) {
        case Archive::Kind::f32: return 4;
        case Archive::Kind::f64: return 8;
        case Archive::Kind::u64: return 8;
        case Archive::Kind::bytes: return 1;
    }
    return 0;
}

template <class U>
void put_le(std::vector<std::uint8_t>& out, U v) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
    out.insert(out.end(), p, p + sizeof(U));
}
template <class U>
U get_le(const std::uint8_t* p) {
    U v;
    std::memcpy(&v, p, sizeof(U));
    return v;
}

}  // namespace

std::uint32_t crc32(std::span<const std::uint8_t> bytes) {
    return static_cast<std::uint32_t>(::crc32_z(0L, bytes.data(), bytes.size()));
}

std::string_view Archive::kind_name(Kind k) noexcept {
    switch (k) {
        case Kind::f32: return "float32";
        case Kind::f64: return "float64";
        case Kind::u64: return "uint64";
        case Kind::bytes: return "bytes";
    }
    return "?";
}

void Archive::put_raw(const std::string& name, Kind k, Shape s, const void* p, std::size_t n) {
    if (name.empty() || name.size() > kMaxName) fail("checkpoint: entry name of {} bytes (1 to {} allowed)", name.size(), kMaxName);
    if (entries_.count(name) != 0) fail("checkpoint: duplicate entry '{}'", name);
    Entry e{k, s, std::vector<std::uint8_t>(n)};
    if (n) std::memcpy(e.data.data(), p, n);
    entries_.emplace(name, std::move(e));
}

const Archive::Entry& Archive::entry(const std::string& name) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) fail("{}: no entry '{}' in the checkpoint", source_, name);
    return it->second;
}

const Archive::Entry& Archive::expect(const std::string& name, Kind k) const {
    const Entry& e = entry(name);
    if (e.kind != k) fail("{}: entry '{}' holds {} data, expected {}", source_, name, kind_name(e.kind), kind_name(k));
    return e;
}

std::vector<std::uint8_t> Archive::serialize() const {
    std::vector<std::uint8_t> out(kCheckpointHeaderBytes, 0);
    for (const auto& [name, e] : entries_) {
        put_le<std::uint32_t>(out, static_cast<std::uint32_t>(name.size()));
        put_le<std::uint32_t>(out, static_cast<std::uint32_t>(e.kind));
        put_le<std::uint32_t>(out, static_cast<std::uint32_t>(e.shape.rank()));
        put_le<std::uint32_t>(out, 0);
        for (std::size_t d = 0; d < e.shape.rank(); ++d) put_le<std::uint64_t>(out, e.shape[d]);
        out.insert(out.end(), name.begin(), name.end());
        out.insert(out.end(), e.data.begin(), e.data.end());
    }
    const std::uint64_t payload = out.size() - kCheckpointHeaderBytes;
    std::uint8_t* h = out.data();
    std::memcpy(h, kCheckpointMagic, 8);
    const std::uint32_t version = kCheckpointVersion, count = static_cast<std::uint32_t>(entries_.size());
    std::memcpy(h + 8, &version, 4);
    std::memcpy(h + 12, &count, 4);
    std::memcpy(h + 16, &payload, 8);
    const std::uint32_t pcrc = crc32({out.data() + kCheckpointHeaderBytes, payload});
    std::memcpy(h + 24, &pcrc, 4);
    const std::uint32_t hcrc = crc32({h, 28});
    std::memcpy(h + 28, &hcrc, 4);
    return out;
}

Archive Archive::deserialize(std::span<const std::uint8_t> f, std::string source) {
    const std::size_t size = f.size();
    if (size < kCheckpointHeaderBytes)
        fail("{}: truncated checkpoint: {} bytes, the header alone needs {} (offset {})", source, size,
             kCheckpointHeaderBytes, size);
    if (std::memcmp(f.data(), kCheckpointMagic, 8) != 0)
        fail("{}: not a tapegrad checkpoint (bad magic at offset 0)", source);
    const auto hcrc = get_le<std::uint32_t>(f.data() + 28);
    if (crc32(f.first(28)) != hcrc) fail("{}: corrupted checkpoint header (CRC32 mismatch, offsets 0–27)", source);
    const auto version = get_le<std::uint32_t>(f.data() + 8);
    if (version < kCheckpointOldestVersion || version > kCheckpointVersion)
        fail("{}: checkpoint format version {} (offset 8); this build reads versions {} to {}", source, version,
             kCheckpointOldestVersion, kCheckpointVersion);
    const auto count = get_le<std::uint32_t>(f.data() + 12);
    const auto payload = get_le<std::uint64_t>(f.data() + 16);
    const std::size_t present = size - kCheckpointHeaderBytes;
    if (payload > present)
        fail("{}: truncated checkpoint: the header declares {} payload bytes from offset {}, the file has {} (ends at "
             "offset {})",
             source, payload, kCheckpointHeaderBytes, present, size);
    if (payload < present)
        fail("{}: {} unexpected trailing bytes after the payload (offset {})", source, present - payload,
             kCheckpointHeaderBytes + payload);
    const auto pcrc = get_le<std::uint32_t>(f.data() + 24);
    const std::uint32_t actual = crc32(f.subspan(kCheckpointHeaderBytes));
    if (actual != pcrc)
        fail("{}: corrupted checkpoint: payload CRC32 is {:08x}, the header says {:08x}", source, actual, pcrc);

    Archive a;
    a.source_ = std::move(source);
    a.version_ = version;
    const std::size_t fixed = version == 1 ? kEntryHeaderV1 : kEntryHeader;
    std::size_t at = kCheckpointHeaderBytes;
    for (std::uint32_t i = 0; i < count; ++i) {
        const std::size_t start = at;
        if (size - at < fixed) fail("{}: entry {} of {} truncated at offset {}", a.source_, i, count, at);
        const auto name_len = get_le<std::uint32_t>(f.data() + at);
        const auto kind = get_le<std::uint32_t>(f.data() + at + 4);
        if (kind < 1 || kind > 4) fail("{}: entry {} has unknown kind {} (offset {})", a.source_, i, kind, at + 4);
        if (name_len == 0 || name_len > kMaxName)
            fail("{}: entry {} has a name of {} bytes (offset {})", a.source_, i, name_len, at);
        std::array<std::size_t, kMaxRank> dims{};
        std::size_t rank = 2;
        if (version == 1) {
            dims[0] = get_le<std::uint64_t>(f.data() + at + 8);
            dims[1] = get_le<std::uint64_t>(f.data() + at + 16);
            at += kEntryHeaderV1;
        } else {
            rank = get_le<std::uint32_t>(f.data() + at + 8);
            if (rank > kMaxRank)
                fail("{}: entry {} has rank {} (offset {}); the largest supported rank is {}", a.source_, i, rank,
                     at + 8, kMaxRank);
            if (const auto reserved = get_le<std::uint32_t>(f.data() + at + 12); reserved != 0)
                fail("{}: entry {} has {} in its reserved field (offset {}), expected 0", a.source_, i, reserved,
                     at + 12);
            at += kEntryHeader;
            if (size - at < 8 * rank)
                fail("{}: entry {} truncated in its {} dims at offset {}", a.source_, i, rank, at);
            for (std::size_t d = 0; d < rank; ++d) dims[d] = get_le<std::uint64_t>(f.data() + at + 8 * d);
            at += 8 * rank;
        }
        const std::size_t dims_at = version == 1 ? start + 8 : start + kEntryHeader;
        const std::size_t es = elem_size(static_cast<Kind>(kind));
        std::uint64_t n = 1, bytes = 0;
        bool overflow = false;
        for (std::size_t d = 0; d < rank; ++d) overflow |= dims[d] > kMaxExtent || __builtin_mul_overflow(n, dims[d], &n);
        if (overflow || __builtin_mul_overflow(n, std::uint64_t(es), &bytes)) {
            std::string text;
            for (std::size_t d = 0; d < rank; ++d) text += fmt::format("{}{}", d ? "×" : "", dims[d]);
            fail("{}: entry {} declares ({}) elements: an extent above 2³² − 1 or a byte size that overflows (offset {})",
                 a.source_, i, text, dims_at);
        }
        if (name_len > size - at || bytes > size - at - name_len)
            fail("{}: entry {} declares {} name bytes and {} data bytes at offset {}, only {} remain", a.source_, i,
                 name_len, bytes, at, size - at);
        std::string name(reinterpret_cast<const char*>(f.data() + at), name_len);
        at += name_len;
        Entry e{static_cast<Kind>(kind), Shape(std::span<const std::size_t>(dims.data(), rank)),
                std::vector<std::uint8_t>(f.data() + at, f.data() + at + bytes)};
        at += bytes;
        if (!a.entries_.emplace(std::move(name), std::move(e)).second)
            fail("{}: duplicate entry at offset {}", a.source_, start);
    }
    if (at != size) fail("{}: {} bytes after the last of {} entries (offset {})", a.source_, size - at, count, at);
    return a;
}

namespace {
void write_all(int fd, const std::uint8_t* p, std::size_t n, const std::string& path) {
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail("{}: write failed: {}", path, std::strerror(errno));
        }
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}
}  // namespace

void Archive::save(const std::filesystem::path& path) const {
    const std::vector<std::uint8_t> bytes = serialize();
    std::filesystem::path dir = path.parent_path();
    if (dir.empty()) dir = ".";
    const std::filesystem::path tmp = dir / fmt::format(".{}.tmp.{}", path.filename().string(), ::getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail("{}: cannot create temporary file {}: {}", path.string(), tmp.string(), std::strerror(errno));
    try {
        write_all(fd, bytes.data(), bytes.size(), tmp.string());
        if (::fsync(fd) != 0) fail("{}: fsync failed: {}", tmp.string(), std::strerror(errno));
    } catch (...) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    if (::close(fd) != 0) {
        ::unlink(tmp.c_str());
        fail("{}: close failed: {}", tmp.string(), std::strerror(errno));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        fail("{}: cannot rename {} into place: {}", path.string(), tmp.string(), std::strerror(err));
    }
    if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
        ::fsync(dfd);  // make the rename durable; failure here loses nothing already written
        ::close(dfd);
    }
}

Archive Archive::load(const std::filesystem::path& path) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) fail("{}: cannot read checkpoint: {}", path.string(), ec.message());
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{}: cannot open checkpoint: {}", path.string(), std::strerror(errno));
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (static_cast<std::size_t>(in.gcount()) != bytes.size())
        fail("{}: read {} of {} bytes", path.string(), in.gcount(), bytes.size());
    return deserialize(bytes, path.string());
}

}  // namespace tapegrad::nn
