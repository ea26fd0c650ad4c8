// Shape: the sizes of a tensor, rank 0 to kMaxRank, printed as (2×3×4).
//
// Rank 2 is the everyday case: Shape{rows, cols}. rows() and cols() are the last two dims, 1
// where missing, so a rank-0 scalar reads as 1×1 and a rank-1 vector of n as 1×n — which is
// how every 2-D rule (broadcasting, matmul, the row-wise kernels) sees them.
//
// Extents are stored in 32 bits (a tensor's element count is bounded by its allocation cap
// long before that matters) and the rank is capped at compile time, so a Shape is 28 bytes,
// inline, trivially copyable: no heap, no refcount on the recording path.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <type_traits>
#include <span>
#include <string>

#include <fmt/format.h>

#include <tapegrad/core/error.hpp>

namespace tapegrad {

// The largest rank a tensor may have. Six covers attention's B×T×3×H×D split and a strided
// im2col view (N, C, KH, KW, OH, OW); a larger rank is an Error naming the shape.
inline constexpr std::size_t kMaxRank = 6;
inline constexpr std::size_t kMaxExtent = 0xffffffffu;
static_assert(kMaxRank <= 6, "a Shape keeps six extents, its rank and a zero in two 16-byte words");

class Shape {
    using Lanes = std::uint32_t __attribute__((vector_size(16)));  // GCC/Clang vector extension

public:
    constexpr Shape() noexcept = default;  // rank 0: a scalar
    // Shape{r, c} is rank 2; Shape{n} rank 1; Shape{2, 3, 4} rank 3.
    [[gnu::always_inline]] Shape(std::initializer_list<std::size_t> dims) {
        assign(dims.begin(), dims.size());
    }
    // Rank 2 and rank 1 from 32-bit extents (which cannot exceed the limit): no checks, for the
    // recording path.
    [[gnu::always_inline]] static Shape matrix(std::uint32_t rows, std::uint32_t cols) noexcept {
        Shape s;
        s.store(Lanes{rows, cols, 0, 0}, Lanes{0, 0, 2, 0});
        return s;
    }
    static Shape vector(std::uint32_t n) noexcept {
        Shape s;
        s.store(Lanes{n, 0, 0, 0}, Lanes{0, 0, 1, 0});
        return s;
    }
    explicit Shape(std::span<const std::size_t> dims) { assign(dims.data(), dims.size()); }
    // A shape from another kind of extent list (int64 dims from user code, a vector of sizes).
    template <class It>
    static Shape from_range(It first, It last) {
        std::array<std::size_t, kMaxRank + 1> d{};
        std::size_t n = 0;
        for (It it = first; it != last; ++it, ++n) {
            if (n > kMaxRank) too_long(first, last);
            d[n] = static_cast<std::size_t>(*it);
        }
        return Shape(std::span<const std::size_t>(d.data(), n));
    }

    constexpr std::size_t rank() const noexcept { return v_[kRankAt]; }
    // Extent of axis i; a negative i counts from the end (dim(-1) is the last axis).
    constexpr std::size_t dim(std::ptrdiff_t i) const {
        const std::ptrdiff_t r = static_cast<std::ptrdiff_t>(rank());
        if (i < -r || i >= r) [[unlikely]]
            axis_out_of_range(i, *this);
        return v_[static_cast<std::size_t>(i < 0 ? i + r : i)];
    }
    constexpr std::size_t operator[](std::size_t i) const noexcept { return v_[i]; }
    // The last two dims, 1 where missing.
    constexpr std::size_t rows() const noexcept { return rank() >= 2 ? v_[rank() - 2] : 1; }
    constexpr std::size_t cols() const noexcept { return rank() >= 1 ? v_[rank() - 1] : 1; }
    // Number of elements (1 for rank 0).
    constexpr std::size_t numel() const noexcept {
        std::size_t n = 1;
        for (std::size_t i = 0; i < rank(); ++i) n *= v_[i];
        return n;
    }
    constexpr std::size_t size() const noexcept { return numel(); }
    // Whether some extent is 0 (numel() may wrap around to 0 at rank ≥ 3; this does not).
    constexpr bool empty() const noexcept {
        for (std::size_t i = 0; i < rank(); ++i)
            if (v_[i] == 0) return true;
        return false;
    }
    // The product of the dims before the last two (1 for rank ≤ 2).
    constexpr std::size_t lead() const noexcept {
        std::size_t n = 1;
        for (std::size_t i = 0; i + 2 < rank(); ++i) n *= v_[i];
        return n;
    }
    // Row-major element strides of a contiguous tensor of this shape.
    constexpr std::array<std::int64_t, kMaxRank> contiguous_strides() const noexcept {
        std::array<std::int64_t, kMaxRank> s{};
        std::int64_t k = 1;
        for (std::size_t i = rank(); i-- > 0;) {
            s[i] = k;
            k *= static_cast<std::int64_t>(v_[i]);
        }
        return s;
    }
    std::span<const std::uint32_t> dims() const noexcept { return {v_.data(), rank()}; }

    // The same shape with axis i set to n.
    Shape with(std::size_t i, std::size_t n) const {
        Shape s = *this;
        if (n > kMaxExtent) fail("shape: extent {} above 2³² − 1", n);
        s.v_[i] = static_cast<std::uint32_t>(n);
        return s;
    }

    // Unused dims are 0 in every Shape, so equal shapes have equal words: compared 16 bytes at
    // a time, in registers (this runs a few times per recorded op).
    friend bool operator==(const Shape& a, const Shape& b) noexcept {
        Lanes a0, a1, b0, b1;
        std::memcpy(&a0, a.v_.data(), 16);
        std::memcpy(&a1, a.v_.data() + 4, 16);
        std::memcpy(&b0, b.v_.data(), 16);
        std::memcpy(&b1, b.v_.data() + 4, 16);
        const Lanes x = (a0 ^ b0) | (a1 ^ b1);
        return (x[0] | x[1] | x[2] | x[3]) == 0;
    }

    // Error naming the shape: axis i is not one of its axes.
    [[noreturn]] static void axis_out_of_range(std::ptrdiff_t i, const Shape& s);

private:
    template <class It>
    [[noreturn, gnu::cold, gnu::noinline]] static void too_long(It first, It last) {
        std::string dims;
        for (It it = first; it != last; ++it) dims += fmt::format("{}{}", dims.empty() ? "" : "×", *it);
        fail("shape: ({}) has rank {}, above the largest supported rank {} (kMaxRank)", dims,
             std::distance(first, last), kMaxRank);
    }
    [[gnu::always_inline]] void assign(const std::size_t* d, std::size_t n) {
        if (n > kMaxRank) [[unlikely]]
            too_long(d, d + n);
        std::size_t any = 0;  // one test for every extent: a bit above the 32nd anywhere
        Lanes lo{0, 0, 0, 0}, hi{0, 0, static_cast<std::uint32_t>(n), 0};
        for (std::size_t i = 0; i < n; ++i) {
            any |= d[i];
            if (i < 4)
                lo[i] = static_cast<std::uint32_t>(d[i]);
            else
                hi[i - 4] = static_cast<std::uint32_t>(d[i]);
        }
        if (any > kMaxExtent) [[unlikely]]
            extent_too_large(d, n);
        store(lo, hi);
    }
    // The whole shape written in two 16-byte stores: a shape is often built just before it is
    // copied or compared, and loads wider than the stores that wrote them stall.
    [[gnu::always_inline]] void store(Lanes lo, Lanes hi) noexcept {
        std::memcpy(v_.data(), &lo, 16);
        std::memcpy(v_.data() + 4, &hi, 16);
    }
    [[noreturn, gnu::cold, gnu::noinline]] static void extent_too_large(const std::size_t* d, std::size_t n) {
        std::string dims;
        for (std::size_t i = 0; i < n; ++i) dims += fmt::format("{}{}", i ? "×" : "", d[i]);
        fail("tensor: shape ({}) has an extent above 2³² − 1", dims);
    }

    // v_[0..5]: the dims (unused ones stay 0, which == relies on); v_[6]: the rank; v_[7]: 0.
    static constexpr std::size_t kRankAt = 6;
    alignas(16) std::array<std::uint32_t, 8> v_{};
};

static_assert(sizeof(Shape) == 32, "Shape is passed by value on the recording path: keep it small");

}  // namespace tapegrad

// (2×3×4); a rank-1 shape (5); a rank-0 scalar ().
template <>
struct fmt::formatter<tapegrad::Shape> {
    constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
    auto format(const tapegrad::Shape& s, fmt::format_context& ctx) const {
        auto out = fmt::format_to(ctx.out(), "(");
        for (std::size_t i = 0; i < s.rank(); ++i) out = fmt::format_to(out, "{}{}", i ? "×" : "", s[i]);
        return fmt::format_to(out, ")");
    }
};

namespace tapegrad {
inline void Shape::axis_out_of_range(std::ptrdiff_t i, const Shape& s) {
    fail("shape: axis {} out of range for {} (rank {})", i, s, s.rank());
}
}  // namespace tapegrad
