// Tensor<T>: sizes, element strides and a data pointer, rank 0 to kMaxRank (shape.hpp).
//
// T is float or double for values (what ops differentiate), std::int64_t for index tensors and
// bool for masks (IndexTensor, MaskTensor: operands without gradients, index.hpp). Integer and
// boolean tensors share the geometry, construction, views and printing; kernels, gemm and the
// tape take float and double only.
//
// A tensor either owns its buffer (allocated from a std::pmr::memory_resource: the heap for
// user tensors, a tape's arena for node values and adjoints) or is a view of someone else's
// buffer. Either way it remembers a resource: kernels applied to it allocate their results
// there, so arithmetic on arena tensors stays in the arena and user arithmetic stays on the
// heap, with no global allocator state.
//
// Geometry. Rank ≤ 2 and contiguous — every tensor of a 2-D program — is described inline by
// rows_ × cols_ and the rank, in a 32-byte object (the tiny-op budget depends on it). Any other
// geometry (rank ≥ 3, or a strided view) lives in a Geometry block beside it, allocated where
// the data is (a bump in the arena, nothing to free; or from the tensor's resource, freed with
// the tensor), and the resource moves into that block. Either way rows_ × cols_ is the tensor
// read as a matrix of its last axis against all the others, so size() stays one multiply and
// a contiguous N-D tensor is, to a row-wise kernel, the (∏ leading dims) × last-dim matrix it
// is in memory.
//
// Contiguity: tensors are contiguous unless made by strided() (views); owners always are.
// Flat element access (data()[i], operator[]) reads memory order and is only meaningful on a
// contiguous tensor; kernels get contiguous inputs (the tape copies a strided operand first).
#pragma once

#include <algorithm>
#include <array>
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
#include <tapegrad/core/shape.hpp>

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

using Strides = std::array<std::int64_t, kMaxRank>;

template <class T>
class Tensor {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int64_t> ||
                      std::is_same_v<T, bool>,
                  "tapegrad tensors hold float or double (values), std::int64_t (indices) or bool (masks)");

public:
    using value_type = T;
    static constexpr std::size_t kAlign = 64;

    Tensor() noexcept = default;  // empty, (0×0)

    // rows × cols, zero-filled, owned, allocated from `res` (the heap by default).
    Tensor(std::size_t rows, std::size_t cols,
           std::pmr::memory_resource* res = std::pmr::get_default_resource())
        : Tensor(Shape{rows, cols}, res) {}
    // Any shape, zero-filled: Tensor<float>({2, 3, 4}), Tensor<float>(Shape{}) (a scalar).
    explicit Tensor(const Shape& s, std::pmr::memory_resource* res = std::pmr::get_default_resource()) {
        set_shape(s, res, false);
        allocate();
        if (size()) std::memset(data_, 0, size() * sizeof(T));
    }
    explicit Tensor(std::initializer_list<std::size_t> dims,
                    std::pmr::memory_resource* res = std::pmr::get_default_resource())
        : Tensor(Shape(dims), res) {}

    // rows × cols filled from a row-major list; the list's length must be rows·cols.
    Tensor(std::size_t rows, std::size_t cols, std::initializer_list<T> values)
        : Tensor(Shape{rows, cols}, values) {}
    // Any shape filled from a row-major list: Tensor<double>({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8}).
    Tensor(const Shape& s, std::initializer_list<T> values) : Tensor(s) {
        if (values.size() != size()) fail("tensor: {} values given for shape {}", values.size(), s);
        std::copy(values.begin(), values.end(), data_);
    }

    // Uninitialised storage: for kernels that overwrite every element.
    // In a tape's arena: a pointer bump, and nothing to free.
    [[gnu::always_inline]] static Tensor uninit(const Shape& s, Arena* arena) {
        Tensor t;
        t.set_shape(s, arena, true);
        t.flags_ |= kArena;
        if (t.size()) {
            t.check_cap();  // so that the byte count below cannot wrap around
            const std::size_t bytes = t.size() * sizeof(T);
            // Cache-line alignment for real arrays; a small tensor need not pad to 64 B.
            try {
                t.data_ = static_cast<T*>(arena->bump(bytes, bytes >= kAlign ? kAlign : 16));
            } catch (const std::bad_alloc&) {
                t.out_of_memory();
            }
            t.flags_ |= kOwns;
        }
        return t;
    }
    // Uninitialised, allocated where `like`'s results go.
    static Tensor uninit_like(const Shape& s, const Tensor& like) {
        if (like.flags_ & kArena) return uninit(s, static_cast<Arena*>(like.resource()));
        return uninit(s, like.resource());
    }
    // (Both view()s are always inlined: every VJP views its operands, and GCC otherwise out-lines
    // them in some translation units, costing ~2% of the tiny-op chain's instructions.)
    [[gnu::always_inline]] static Tensor view(T* data, const Shape& s, Arena* arena) {
        Tensor t;
        t.data_ = data;
        t.set_shape(s, arena, true);
        t.flags_ |= kArena;
        return t;
    }
    static Tensor uninit(const Shape& s, std::pmr::memory_resource* res) {
        Tensor t;
        t.set_shape(s, res, false);
        t.allocate();
        return t;
    }
    static Tensor filled(std::size_t rows, std::size_t cols, T v) { return filled(Shape{rows, cols}, v); }
    static Tensor filled(const Shape& s, T v) {
        Tensor t(s);
        t.fill(v);
        return t;
    }
    // A non-owning view of `data` (row-major, contiguous). Results of kernels applied to the
    // view are allocated from `res`.
    [[gnu::always_inline]] static Tensor view(T* data, const Shape& s, std::pmr::memory_resource* res) {
        Tensor t;
        t.data_ = data;
        t.set_shape(s, res, false);
        return t;
    }
    // A non-owning strided view: element (i₀, …, iₖ) is data[Σ iⱼ·strides[j]] (element strides;
    // 0 repeats an element along that axis). `data` points at element (0, …, 0).
    static Tensor strided(T* data, const Shape& s, std::span<const std::int64_t> strides, Arena* arena) {
        Tensor t = strided(data, s, strides, static_cast<std::pmr::memory_resource*>(arena), true);
        t.flags_ |= kArena;
        return t;
    }
    static Tensor strided(T* data, const Shape& s, std::span<const std::int64_t> strides,
                          std::pmr::memory_resource* res) {
        return strided(data, s, strides, res, false);
    }
    // A non-owning view of `t` (same geometry), whose results go to `arena`.
    [[gnu::always_inline]] static Tensor view_of(const Tensor& t, Arena* arena) {
        if (!(t.flags_ & kGeom)) [[likely]] {  // rank ≤ 2, contiguous: copy the inline geometry
            Tensor v;
            v.data_ = t.data_;
            v.rows_ = t.rows_;
            v.cols_ = t.cols_;
            v.res_ = arena;
            v.flags_ = std::uint8_t((t.flags_ & kRankMask) | kArena);
            return v;
        }
        return view_of_nd(t, arena);
    }
    static Tensor view_of_nd(const Tensor& t, Arena* arena) {
        if ((t.flags_ & kArena) && t.geom_->res == arena) {  // share the arena's block
            Tensor v;
            v.data_ = t.data_;
            v.rows_ = t.rows_;
            v.cols_ = t.cols_;
            v.geom_ = t.geom_;
            v.flags_ = std::uint8_t((t.flags_ & ~kOwns) | kArena);
            return v;
        }
        if (t.is_contiguous()) return view(const_cast<T*>(t.data_), t.shape(), arena);
        return strided(const_cast<T*>(t.data_), t.shape(), t.strides_span(), arena);
    }
    static Tensor from(std::span<const T> values, const Shape& s) {
        if (values.size() != s.numel()) fail("tensor: {} values given for shape {}", values.size(), s);
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
            flags_ = o.flags_;
            res_ = o.res_;
            if ((o.flags_ & (kGeom | kArena)) == kGeom) geom_ = copy_geometry(*o.geom_);  // ours to free
            return;
        }
        set_shape(o.shape(), std::pmr::get_default_resource(), false);
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
        if (o.flags_ & kGeom) [[unlikely]]
            o.res_ = o.geom_->res;  // the moved-from tensor keeps its resource, not the block
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

    // A contiguous deep copy allocated from `res` (a strided view is gathered).
    Tensor clone(std::pmr::memory_resource* res) const {
        Tensor t = uninit(shape(), res);
        copy_to_contiguous(t.data_);
        return t;
    }
    // The same values in the other precision (on the heap).
    template <class U>
    Tensor<U> cast() const {
        if (!is_contiguous()) return clone(std::pmr::get_default_resource()).template cast<U>();
        Tensor<U> t(shape());
        for (std::size_t i = 0; i < size(); ++i) t.data()[i] = static_cast<U>(data_[i]);
        return t;
    }

    std::size_t rank() const noexcept { return rank_of(flags_); }
    // Extent of axis i (negative i counts from the end).
    std::size_t dim(std::ptrdiff_t i) const { return shape().dim(i); }
    // The last two dims, 1 where missing: a rank-0 tensor reads as 1×1, a rank-1 as 1×n.
    std::size_t rows() const noexcept {
        if (flags_ & kGeom) [[unlikely]]
            return geom_->shape.rows();
        return rows_;
    }
    std::size_t cols() const noexcept { return cols_; }
    [[gnu::always_inline]] Shape shape() const noexcept {
        if (flags_ & (kGeom | kRankMask)) [[unlikely]]  // not (rank 2, inline)
            return shape_slow();
        return Shape::matrix(rows_, cols_);
    }
    // Whether o has this tensor's shape (cheaper than comparing shape()s on the hot path).
    [[gnu::always_inline]] bool same_shape(const Tensor& o) const noexcept {
        if (((flags_ | o.flags_) & kGeom) == 0) [[likely]]
            return rows_ == o.rows_ && cols_ == o.cols_ && ((flags_ ^ o.flags_) & kRankMask) == 0;
        return shape() == o.shape();
    }
    std::size_t numel() const noexcept { return size(); }
    std::size_t size() const noexcept { return std::size_t(rows_) * cols_; }
    bool empty() const noexcept { return data_ == nullptr; }
    bool owns() const noexcept { return (flags_ & kOwns) != 0; }
    bool is_contiguous() const noexcept { return (flags_ & kStrided) == 0; }
    // Whether results go to a tape's arena (bump allocation).
    bool in_arena() const noexcept { return (flags_ & kArena) != 0; }
    // Writes the elements in row-major order to out (size() of them): a strided view gathered.
    void gather_into(T* out) const { copy_to_contiguous(out); }
    // Element strides (0 beyond the rank).
    Strides strides() const noexcept {
        if (flags_ & kStrided) return geom_->stride;
        return shape().contiguous_strides();
    }
    std::int64_t stride(std::ptrdiff_t i) const {
        const std::size_t r = rank();
        const std::size_t k = static_cast<std::size_t>(i < 0 ? i + static_cast<std::ptrdiff_t>(r) : i);
        if (k >= r) Shape::axis_out_of_range(i, shape());
        return strides()[k];
    }
    std::pmr::memory_resource* resource() const noexcept {
        std::pmr::memory_resource* r = (flags_ & kGeom) ? geom_->res : res_;
        return r ? r : std::pmr::get_default_resource();
    }

    T* data() noexcept { return data_; }
    const T* data() const noexcept { return data_; }
    std::span<T> span() noexcept { return {data_, size()}; }
    std::span<const T> span() const noexcept { return {data_, size()}; }
    [[gnu::always_inline]] T& operator()(std::size_t r, std::size_t c) TAPEGRAD_ACCESS_NOEXCEPT {
#ifdef TAPEGRAD_CHECKED_ACCESS
        if (r >= rows_ || c >= cols_) [[unlikely]] index_error(r, c);
        if (!is_contiguous()) [[unlikely]] strided_flat_error();
#endif
        return data_[r * std::size_t(cols_) + c];
    }
    [[gnu::always_inline]] T operator()(std::size_t r, std::size_t c) const TAPEGRAD_ACCESS_NOEXCEPT {
#ifdef TAPEGRAD_CHECKED_ACCESS
        if (r >= rows_ || c >= cols_) [[unlikely]] index_error(r, c);
        if (!is_contiguous()) [[unlikely]] strided_flat_error();
#endif
        return data_[r * std::size_t(cols_) + c];
    }
    [[gnu::always_inline]] T& operator[](std::size_t i) TAPEGRAD_ACCESS_NOEXCEPT {
#ifdef TAPEGRAD_CHECKED_ACCESS
        if (i >= size()) [[unlikely]] flat_index_error(i);
        if (!is_contiguous()) [[unlikely]] strided_flat_error();
#endif
        return data_[i];
    }
    [[gnu::always_inline]] T operator[](std::size_t i) const TAPEGRAD_ACCESS_NOEXCEPT {
#ifdef TAPEGRAD_CHECKED_ACCESS
        if (i >= size()) [[unlikely]] flat_index_error(i);
        if (!is_contiguous()) [[unlikely]] strided_flat_error();
#endif
        return data_[i];
    }
    // Bounds-checked element access for user code.
    T at(std::size_t r, std::size_t c) const {
        if (r >= rows_ || c >= cols_) index_error(r, c);
        return data_[r * std::size_t(cols_) + c];
    }
    // Bounds-checked N-D element access (strides honoured): t.at({1, 2, 3}).
    T at(std::initializer_list<std::size_t> idx) const { return data_[checked_offset(idx)]; }
    T& at(std::initializer_list<std::size_t> idx) { return data_[checked_offset(idx)]; }
    // The element at a multi-index of `rank()` entries (unchecked, strides honoured).
    T get(const std::size_t* idx) const noexcept {
        if (!(flags_ & kGeom)) {
            switch (rank()) {
                case 0: return data_[0];
                case 1: return data_[idx[0]];
                default: return data_[idx[0] * std::size_t(cols_) + idx[1]];
            }
        }
        std::int64_t off = 0;
        const Strides s = strides();
        for (std::size_t k = 0, r = rank(); k < r; ++k) off += static_cast<std::int64_t>(idx[k]) * s[k];
        return data_[off];
    }
    // The value of a one-element tensor.
    T item() const {
        if (size() != 1) fail("item: tensor of shape {} is not a scalar", shape());
        return data_[0];
    }

    void fill(T v) {
        if (!is_contiguous()) fail("fill: tensor of shape {} is a strided view; nothing writes through a view", shape());
        std::fill_n(data_, size(), v);
    }

private:
    template <class U>
    friend class Tensor;

    // What a tensor that is not rank ≤ 2 and contiguous needs beyond rows_ × cols_.
    struct Geometry {
        std::pmr::memory_resource* res;  // where results of kernels on this tensor go
        Shape shape;
        Strides stride;                  // element strides (valid when kStrided)
    };

    static constexpr std::uint8_t kOwns = 1;     // data_ is ours to give back
    static constexpr std::uint8_t kArena = 2;    // the resource is a tape's Arena: bump, no deallocation
    static constexpr std::uint8_t kGeom = 4;     // geom_ (not res_) is set: rank ≥ 3 or strided
    static constexpr std::uint8_t kStrided = 8;  // not contiguous (then kGeom too)
    // Bits 4–6 hold rank ^ 2, so that a zeroed flags byte (an empty or moved-from tensor)
    // reads as rank 2, (0×0), as it always has.
    static constexpr std::uint8_t kRankShift = 4;
    static constexpr std::uint8_t kRankMask = 0x70;
    static constexpr std::size_t rank_of(std::uint8_t f) noexcept { return ((f & kRankMask) >> kRankShift) ^ 2u; }
    Shape shape_slow() const noexcept {
        if (flags_ & kGeom) return geom_->shape;
        return rank() == 0 ? Shape{} : Shape::vector(cols_);
    }
    static constexpr std::uint8_t rank_bits(std::size_t r) noexcept {
        return static_cast<std::uint8_t>((r ^ 2u) << kRankShift);
    }
    static_assert(kMaxRank <= 7, "the rank is kept in three bits of flags_");

    static Tensor strided(T* data, const Shape& s, std::span<const std::int64_t> strides,
                          std::pmr::memory_resource* res, bool arena) {
        if (strides.size() != s.rank())
            fail("tensor: {} strides given for shape {} (rank {})", strides.size(), s, s.rank());
        Tensor t;
        t.data_ = data;
        t.set_flat(s);
        Geometry* g = new_geometry(res, arena);
        g->res = res;
        g->shape = s;
        g->stride = {};
        std::copy(strides.begin(), strides.end(), g->stride.begin());
        t.geom_ = g;
        t.flags_ = std::uint8_t(rank_bits(s.rank()) | kGeom);
        if (g->stride != s.contiguous_strides()) t.flags_ |= kStrided;
        return t;
    }
    std::span<const std::int64_t> strides_span() const noexcept {
        return {(flags_ & kStrided) ? geom_->stride.data() : nullptr, (flags_ & kStrided) ? rank() : 0};
    }

    // rows_ × cols_: the last axis against all the others.
    void set_flat(const Shape& s) {
        const std::size_t r = s.rank();
        std::size_t rows = 1;
        for (std::size_t i = 0; i + 1 < r; ++i) rows *= s[i];
        if (rows > kMaxExtent) [[unlikely]]
            fail("tensor: shape {} has more than 2³² − 1 rows (elements before the last axis)", s);
        rows_ = static_cast<std::uint32_t>(rows);
        cols_ = static_cast<std::uint32_t>(r ? s[r - 1] : 1);
    }
    // Sets the geometry of a contiguous tensor; the resource goes to res_ or the Geometry block.
    [[gnu::always_inline]] void set_shape(const Shape& s, std::pmr::memory_resource* res, bool arena) {
        if (s.rank() == 2) [[likely]] {
            rows_ = static_cast<std::uint32_t>(s[0]);
            cols_ = static_cast<std::uint32_t>(s[1]);
            res_ = res;
            flags_ = 0;  // rank_bits(2)
            return;
        }
        if (s.rank() < 2) {
            rows_ = static_cast<std::uint32_t>(s.rows());
            cols_ = static_cast<std::uint32_t>(s.cols());
            res_ = res;
            flags_ = rank_bits(s.rank());
            return;
        }
        set_nd_shape(s, res, arena);
    }
    void set_nd_shape(const Shape& s, std::pmr::memory_resource* res, bool arena) {
        set_flat(s);
        Geometry* g = new_geometry(res, arena);
        g->res = res;
        g->shape = s;
        g->stride = {};
        geom_ = g;
        flags_ = std::uint8_t(rank_bits(s.rank()) | kGeom);
    }
    static Geometry* new_geometry(std::pmr::memory_resource* res, bool arena) {
        if (arena) return ::new (static_cast<Arena*>(res)->bump(sizeof(Geometry), alignof(Geometry))) Geometry{};
        if (res == nullptr) res = std::pmr::get_default_resource();
        return ::new (res->allocate(sizeof(Geometry), alignof(Geometry))) Geometry{};
    }
    static Geometry* copy_geometry(const Geometry& g) {
        Geometry* c = new_geometry(g.res, false);
        *c = g;
        return c;
    }
    std::size_t checked_offset(std::initializer_list<std::size_t> idx) const {
        const Shape s = shape();
        bool ok = idx.size() == s.rank();
        for (std::size_t k = 0; ok && k < idx.size(); ++k) ok = idx.begin()[k] < s[k];
        if (!ok) {
            std::string i;
            for (std::size_t v : idx) i += fmt::format("{}{}", i.empty() ? "" : ", ", v);
            fail("tensor: index ({}) outside {}", i, s);
        }
        const Strides st = strides();
        std::int64_t off = 0;
        for (std::size_t k = 0; k < idx.size(); ++k) off += static_cast<std::int64_t>(idx.begin()[k]) * st[k];
        return static_cast<std::size_t>(off);
    }
    // Writes the elements in row-major order to `out` (size() of them).
    void copy_to_contiguous(T* out) const {
        if (size() == 0) return;
        if (is_contiguous()) {
            std::memcpy(out, data_, size() * sizeof(T));
            return;
        }
        const Shape s = geom_->shape;
        const Strides& st = geom_->stride;
        const std::size_t r = s.rank(), n = s[r - 1];
        const std::int64_t inner = st[r - 1];
        std::array<std::size_t, kMaxRank> idx{};
        for (std::size_t row = 0, rows = rows_; row < rows; ++row) {
            std::int64_t off = 0;
            for (std::size_t k = 0; k + 1 < r; ++k) off += static_cast<std::int64_t>(idx[k]) * st[k];
            const T* p = data_ + off;
            for (std::size_t j = 0; j < n; ++j) out[j] = p[static_cast<std::int64_t>(j) * inner];
            out += n;
            for (std::size_t k = r - 1; k-- > 0;) {  // next multi-index over the leading axes
                if (++idx[k] < s[k]) break;
                idx[k] = 0;
            }
        }
    }
    // At most 2⁴⁰ bytes per tensor: far below SIZE_MAX, so size()·sizeof(T) (and an arena's
    // pointer arithmetic on it) cannot wrap around once this has passed.
    [[gnu::always_inline]] void check_cap() const {
        if (size() > (std::size_t(1) << 40) / sizeof(T)) [[unlikely]] too_large();
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
    [[noreturn, gnu::cold, gnu::noinline]] void too_large() const { fail("tensor: shape {} is too large", shape()); }
    [[noreturn, gnu::cold, gnu::noinline]] void out_of_memory() const {
        fail("tensor: cannot allocate {} bytes for shape {}", size() * sizeof(T), shape());
    }
    [[noreturn, gnu::cold, gnu::noinline]] void index_error(std::size_t r, std::size_t c) const {
        fail("tensor: index ({}, {}) outside {}", r, c, shape());
    }
    [[noreturn, gnu::cold, gnu::noinline]] void strided_flat_error() const {
        fail("tensor: flat element access to a strided view of shape {}; use at({{…}}) or a contiguous copy",
             shape());
    }
    [[noreturn, gnu::cold, gnu::noinline]] void flat_index_error(std::size_t i) const {
        fail("tensor: flat index {} outside {}", i, shape());
    }
    [[gnu::always_inline]] void release() noexcept {
        if ((flags_ & kArena) == 0 && (flags_ & (kOwns | kGeom)) != 0) [[unlikely]]
            release_heap();
        data_ = nullptr;
        flags_ &= kArena;
    }
    void release_heap() noexcept {
        std::pmr::memory_resource* r = resource();
        if ((flags_ & kOwns) && data_) r->deallocate(data_, size() * sizeof(T), kAlign);
        if (flags_ & kGeom) {
            Geometry* g = geom_;
            res_ = g->res;  // (res_ and geom_ share storage)
            r->deallocate(g, sizeof(Geometry), alignof(Geometry));
            flags_ &= std::uint8_t(~(kGeom | kStrided));
        }
    }

    // 32 bytes. rows_ and cols_ are deliberately not adjacent, and the flags are one byte: GCC
    // otherwise merges neighbouring small stores into one wide store assembled on the stack,
    // or reads two one-byte flags as one word, and the reload stalls on store forwarding
    // (measured: a quarter of a tiny op's time went to such stalls). The rank shares the
    // flags byte for the same reason.
    T* data_ = nullptr;
    std::uint32_t rows_ = 0;   // the product of all dims but the last (1 for rank ≤ 1)
    std::uint8_t flags_ = 0;
    union {
        std::pmr::memory_resource* res_ = nullptr;  // !kGeom
        Geometry* geom_;                            // kGeom
    };
    std::uint32_t cols_ = 0;   // the last dim (1 for rank 0)
};

static_assert(sizeof(Tensor<float>) == 32, "a tensor is 32 bytes: the tiny-op budget depends on it");
static_assert(sizeof(Tensor<double>) == 32);

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

// Prints "Tensor(2×3) [[1, 2, 3], [4, 5, 6]]" (rank 3: "Tensor(2×2×2) [[[1, 2], [3, 4]], [[5, 6],
// [7, 8]]]"; rank 1: "Tensor(3) [1, 2, 3]"; rank 0: "Tensor() 5"), eliding the middle of each
// long axis.
template <class T>
struct fmt::formatter<tapegrad::Tensor<T>> {
    constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
    auto format(const tapegrad::Tensor<T>& t, fmt::format_context& ctx) const {
        auto out = fmt::format_to(ctx.out(), "Tensor{} ", t.shape());
        const tapegrad::Shape s = t.shape();
        std::array<std::size_t, tapegrad::kMaxRank> idx{};
        if (s.rank() == 0) return t.empty() ? fmt::format_to(out, "[]") : element(out, t.get(idx.data()));
        return axis(out, t, s, idx, 0);
    }

private:
    static constexpr std::size_t kEdge = 3;
    // Values with six significant digits; indices as integers; masks as 0 and 1.
    template <class Out>
    static Out element(Out out, T v) {
        if constexpr (std::is_floating_point_v<T>)
            return fmt::format_to(out, "{:.6g}", v);
        else
            return fmt::format_to(out, "{}", static_cast<std::int64_t>(v));
    }
    template <class Out>
    static Out axis(Out out, const tapegrad::Tensor<T>& t, const tapegrad::Shape& s,
                    std::array<std::size_t, tapegrad::kMaxRank>& idx, std::size_t k) {
        auto keep = [](std::size_t i, std::size_t n) { return n <= 2 * kEdge || i < kEdge || i >= n - kEdge; };
        out = fmt::format_to(out, "[");
        const std::size_t n = s[k];
        for (std::size_t i = 0; i < n; ++i) {
            if (!keep(i, n)) {
                if (i == kEdge) out = fmt::format_to(out, ", ...");
                continue;
            }
            idx[k] = i;
            if (i) out = fmt::format_to(out, ", ");
            if (k + 1 == s.rank())
                out = element(out, t.get(idx.data()));
            else
                out = axis(out, t, s, idx, k + 1);
        }
        return fmt::format_to(out, "]");
    }
};
