// Tensor<T>: dense, row-major, 2-D storage. A scalar is 1×1; vectors are 1×n or m×1.
//
// A tensor either owns its buffer (allocated from a std::pmr::memory_resource: the heap for
// user tensors, a tape's arena for node values and adjoints) or is a view of someone else's
// buffer. Either way it remembers a resource: kernels applied to it allocate their results
// there, so arithmetic on arena tensors stays in the arena and user arithmetic stays on the
// heap, with no global allocator state.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory_resource>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include <tapegrad/core/arena.hpp>
#include <tapegrad/core/error.hpp>

// Element access through operator() and operator[] is bounds-checked (a tapegrad::Error naming
// the index and the shape) in builds without NDEBUG — Debug, and the sanitizer builds of .ci/ —
// or wherever TAPEGRAD_CHECKED is defined; otherwise it is unchecked (use at() for a checked
// read in any build). Both accessors are always inlined, so a translation unit that defines
// TAPEGRAD_CHECKED gets its checked copies even against a library built without.
#if !defined(NDEBUG) || defined(TAPEGRAD_CHECKED)
#define TAPEGRAD_CHECKED_ACCESS 1
#define TAPEGRAD_ACCESS_NOEXCEPT
#else
#define TAPEGRAD_ACCESS_NOEXCEPT noexcept
#endif

namespace tapegrad {

template <class T>
class Tensor {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "tapegrad tensors hold float or double");

public:
    using value_type = T;
    static constexpr std::size_t kAlign = 64;

    Tensor() noexcept = default;

    // rows × cols, zero-filled, owned, allocated from `res` (the heap by default).
    Tensor(std::size_t rows, std::size_t cols,
           std::pmr::memory_resource* res = std::pmr::get_default_resource())
        : res_(res) {
        set_shape({rows, cols});
        allocate();
        if (size()) std::memset(data_, 0, size() * sizeof(T));
    }
    explicit Tensor(Shape s, std::pmr::memory_resource* res = std::pmr::get_default_resource())
        : Tensor(s.rows, s.cols, res) {}

    // rows × cols filled from a row-major list; the list's length must be rows·cols.
    Tensor(std::size_t rows, std::size_t cols, std::initializer_list<T> values)
        : Tensor(rows, cols) {
        if (values.size() != size())
            fail("tensor: {} values given for shape {}", values.size(), shape());
        std::copy(values.begin(), values.end(), data_);
    }

    // Uninitialised storage: for kernels that overwrite every element.
    // In a tape's arena: a pointer bump, and nothing to free.
    static Tensor uninit(Shape s, Arena* arena) {
        Tensor t;
        t.set_shape(s);
        t.res_ = arena;
        t.flags_ = kArena;
        if (t.size()) {
            t.check_cap();  // so that the byte count below cannot wrap around
            const std::size_t bytes = t.size() * sizeof(T);
            // Cache-line alignment for real arrays; a small tensor need not pad to 64 B.
            try {
                t.data_ = static_cast<T*>(arena->bump(bytes, bytes >= kAlign ? kAlign : 16));
            } catch (const std::bad_alloc&) {
                t.out_of_memory();
            }
            t.flags_ = kArena | kOwns;
        }
        return t;
    }
    // Uninitialised, allocated where `like`'s results go.
    static Tensor uninit_like(Shape s, const Tensor& like) {
        if (like.flags_ & kArena) return uninit(s, static_cast<Arena*>(like.res_));
        return uninit(s, like.resource());
    }
    // (Both view()s are always inlined: every VJP views its operands, and GCC otherwise out-lines
    // them in some translation units, costing ~2% of the tiny-op chain's instructions.)
    [[gnu::always_inline]] static Tensor view(T* data, Shape s, Arena* arena) {
        Tensor t = view(data, s, static_cast<std::pmr::memory_resource*>(arena));
        t.flags_ = kArena;
        return t;
    }
    static Tensor uninit(Shape s, std::pmr::memory_resource* res) {
        Tensor t;
        t.set_shape(s);
        t.res_ = res;
        t.allocate();
        return t;
    }
    static Tensor filled(std::size_t rows, std::size_t cols, T v) {
        Tensor t(rows, cols);
        t.fill(v);
        return t;
    }
    // A non-owning view of `data` (rows × cols, row-major). Results of kernels applied to the
    // view are allocated from `res`.
    [[gnu::always_inline]] static Tensor view(T* data, Shape s, std::pmr::memory_resource* res) {
        Tensor t;
        t.data_ = data;
        t.set_shape(s);
        t.res_ = res;
        t.flags_ = 0;
        return t;
    }
    static Tensor from(std::span<const T> values, Shape s) {
        if (values.size() != s.size())
            fail("tensor: {} values given for shape {}", values.size(), s);
        Tensor t = uninit(s, std::pmr::get_default_resource());
        if (t.size()) std::memcpy(t.data_, values.data(), t.size() * sizeof(T));
        return t;
    }

    // Copying an owning tensor makes an owned deep copy on the heap (so a copy never aliases
    // a tape's arena, which reset() recycles). Copying a view makes another view, as copying a
    // std::span does.
    Tensor(const Tensor& o) : rows_(o.rows_), cols_(o.cols_) {
        if (!o.owns()) {
            data_ = o.data_;
            res_ = o.res_;
            flags_ = o.flags_;
            return;
        }
        res_ = std::pmr::get_default_resource();
        allocate();
        if (size()) std::memcpy(data_, o.data_, size() * sizeof(T));
    }
    Tensor& operator=(const Tensor& o) {
        if (this == &o) return *this;
        Tensor tmp(o);
        swap(tmp);
        return *this;
    }
    Tensor(Tensor&& o) noexcept { swap(o); }
    [[gnu::always_inline]] Tensor& operator=(Tensor&& o) noexcept {
        if (this == &o) return *this;
        release();
        data_ = std::exchange(o.data_, nullptr);
        rows_ = std::exchange(o.rows_, 0);
        cols_ = std::exchange(o.cols_, 0);
        res_ = o.res_;
        flags_ = std::exchange(o.flags_, std::uint8_t(o.flags_ & kArena));
        return *this;
    }
    ~Tensor() { release(); }

    void swap(Tensor& o) noexcept {
        std::swap(data_, o.data_);
        std::swap(rows_, o.rows_);
        std::swap(cols_, o.cols_);
        std::swap(res_, o.res_);
        std::swap(flags_, o.flags_);
    }

    // A deep copy allocated from `res`.
    Tensor clone(std::pmr::memory_resource* res) const {
        Tensor t = uninit(shape(), res);
        if (size()) std::memcpy(t.data_, data_, size() * sizeof(T));
        return t;
    }
    // The same values in the other precision (on the heap).
    template <class U>
    Tensor<U> cast() const {
        Tensor<U> t(rows_, cols_);
        for (std::size_t i = 0; i < size(); ++i) t.data()[i] = static_cast<U>(data_[i]);
        return t;
    }

    std::size_t rows() const noexcept { return rows_; }
    std::size_t cols() const noexcept { return cols_; }
    Shape shape() const noexcept { return {rows_, cols_}; }
    std::size_t size() const noexcept { return std::size_t(rows_) * cols_; }
    bool empty() const noexcept { return data_ == nullptr; }
    bool owns() const noexcept { return (flags_ & kOwns) != 0; }
    std::pmr::memory_resource* resource() const noexcept {
        return res_ ? res_ : std::pmr::get_default_resource();
    }

    T* data() noexcept { return data_; }
    const T* data() const noexcept { return data_; }
    std::span<T> span() noexcept { return {data_, size()}; }
    std::span<const T> span() const noexcept { return {data_, size()}; }
    [[gnu::always_inline]] T& operator()(std::size_t r, std::size_t c) TAPEGRAD_ACCESS_NOEXCEPT {
#ifdef TAPEGRAD_CHECKED_ACCESS
        if (r >= rows_ || c >= cols_) [[unlikely]] index_error(r, c);
#endif
        return data_[r * std::size_t(cols_) + c];
    }
    [[gnu::always_inline]] T operator()(std::size_t r, std::size_t c) const TAPEGRAD_ACCESS_NOEXCEPT {
#ifdef TAPEGRAD_CHECKED_ACCESS
        if (r >= rows_ || c >= cols_) [[unlikely]] index_error(r, c);
#endif
        return data_[r * std::size_t(cols_) + c];
    }
    [[gnu::always_inline]] T& operator[](std::size_t i) TAPEGRAD_ACCESS_NOEXCEPT {
#ifdef TAPEGRAD_CHECKED_ACCESS
        if (i >= size()) [[unlikely]] flat_index_error(i);
#endif
        return data_[i];
    }
    [[gnu::always_inline]] T operator[](std::size_t i) const TAPEGRAD_ACCESS_NOEXCEPT {
#ifdef TAPEGRAD_CHECKED_ACCESS
        if (i >= size()) [[unlikely]] flat_index_error(i);
#endif
        return data_[i];
    }
    // Bounds-checked element access for user code.
    T at(std::size_t r, std::size_t c) const {
        if (r >= rows_ || c >= cols_) index_error(r, c);
        return data_[r * std::size_t(cols_) + c];
    }
    // The value of a 1×1 tensor.
    T item() const {
        if (size() != 1) fail("item: tensor of shape {} is not a scalar", shape());
        return data_[0];
    }

    void fill(T v) noexcept { std::fill_n(data_, size(), v); }

private:
    // Each extent is stored in 32 bits (the largest tensor is bounded by allocate() anyway).
    void set_shape(Shape s) {
        if ((s.rows | s.cols) > 0xffffffffu) [[unlikely]]
            fail("tensor: shape {} has an extent above 2³² − 1", s);
        rows_ = static_cast<std::uint32_t>(s.rows);
        cols_ = static_cast<std::uint32_t>(s.cols);
    }
    // At most 2⁴⁰ bytes per tensor: far below SIZE_MAX, so size()·sizeof(T) (and an arena's
    // pointer arithmetic on it) cannot wrap around once this has passed.
    void check_cap() const {
        if (size() > (std::size_t(1) << 40) / sizeof(T)) [[unlikely]]
            fail("tensor: shape {} is too large", shape());
    }
    void allocate() {
        std::size_t n = size();
        if (n == 0) return;
        check_cap();
        try {
            data_ = static_cast<T*>(resource()->allocate(n * sizeof(T), kAlign));
        } catch (const std::bad_alloc&) {
            out_of_memory();
        }
        flags_ |= kOwns;
    }
    // Cold paths, out of the accessors and allocators.
    [[noreturn, gnu::cold, gnu::noinline]] void out_of_memory() const {
        fail("tensor: cannot allocate {} bytes for shape {}", size() * sizeof(T), shape());
    }
    [[noreturn, gnu::cold, gnu::noinline]] void index_error(std::size_t r, std::size_t c) const {
        fail("tensor: index ({}, {}) outside {}", r, c, shape());
    }
    [[noreturn, gnu::cold, gnu::noinline]] void flat_index_error(std::size_t i) const {
        fail("tensor: flat index {} outside {}", i, shape());
    }
    [[gnu::always_inline]] void release() noexcept {
        if ((flags_ & (kOwns | kArena)) == kOwns && data_) resource()->deallocate(data_, size() * sizeof(T), kAlign);
        data_ = nullptr;
        flags_ &= kArena;
    }

    // 32 bytes. rows_ and cols_ are deliberately not adjacent, and the flags are one byte: GCC
    // otherwise merges neighbouring small stores into one wide store assembled on the stack,
    // or reads two one-byte flags as one word, and the reload stalls on store forwarding
    // (measured: a quarter of a tiny op's time went to such stalls).
    static constexpr std::uint8_t kOwns = 1;   // data_ is ours to give back
    static constexpr std::uint8_t kArena = 2;  // res_ is a tape's Arena: bump allocation, no deallocation
    T* data_ = nullptr;
    std::uint32_t rows_ = 0;
    std::uint8_t flags_ = 0;
    std::pmr::memory_resource* res_ = nullptr;
    std::uint32_t cols_ = 0;
};

// Largest |a − b| over two tensors of the same shape (for tests and checks).
template <class T>
double max_abs_diff(const Tensor<T>& a, const Tensor<T>& b) {
    if (a.shape() != b.shape()) fail("max_abs_diff: shapes differ: {} vs {}", a.shape(), b.shape());
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        m = std::max(m, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
    return m;
}

// C ← alpha·op(A)·op(B) + beta·C through CBLAS, op = transpose when the flag is set.
// Shapes are the engine's responsibility; the wrapper trusts them.
void gemm(bool trans_a, bool trans_b, float alpha, const Tensor<float>& a, const Tensor<float>& b,
          float beta, Tensor<float>& c);
void gemm(bool trans_a, bool trans_b, double alpha, const Tensor<double>& a,
          const Tensor<double>& b, double beta, Tensor<double>& c);

// Sets OpenBLAS's thread count (1 is the default tapegrad picks for small GEMMs; see README).
void set_blas_threads(int n);
int blas_threads();

extern template class Tensor<float>;
extern template class Tensor<double>;

}  // namespace tapegrad

// Prints "Tensor(2×3) [[1, 2, 3], [4, 5, 6]]", eliding the middle of large tensors.
template <class T>
struct fmt::formatter<tapegrad::Tensor<T>> {
    constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
    auto format(const tapegrad::Tensor<T>& t, fmt::format_context& ctx) const {
        auto out = fmt::format_to(ctx.out(), "Tensor{} [", t.shape());
        constexpr std::size_t kEdge = 3;
        auto keep = [](std::size_t i, std::size_t n) { return n <= 2 * kEdge || i < kEdge || i >= n - kEdge; };
        for (std::size_t r = 0; r < t.rows(); ++r) {
            if (!keep(r, t.rows())) {
                if (r == kEdge) out = fmt::format_to(out, ", ...");
                continue;
            }
            out = fmt::format_to(out, "{}[", r ? ", " : "");
            for (std::size_t c = 0; c < t.cols(); ++c) {
                if (!keep(c, t.cols())) {
                    if (c == kEdge) out = fmt::format_to(out, ", ...");
                    continue;
                }
                out = fmt::format_to(out, "{}{:.6g}", c ? ", " : "", t(r, c));
            }
            out = fmt::format_to(out, "]");
        }
        return fmt::format_to(out, "]");
    }
};
