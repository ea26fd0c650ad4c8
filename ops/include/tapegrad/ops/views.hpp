// Views: reshape, permute / transpose(i, j), squeeze / unsqueeze, expand, slice / narrow /
// select along any axis, flatten, contiguous. Each is a recorded op with its VJP.
//
// A view op declares `view(x)` instead of `forward(out, x)`: it returns a tensor that aliases
// x's buffer with new sizes and element strides (zero arena bytes for the data), or — reshape
// of a strided input, as torch.reshape — a contiguous copy. Nothing writes through a view.
// View ops say `strided = true`: they take strided inputs as they are; every other op gets
// contiguous inputs (the tape gathers a strided operand first), and returns a contiguous result.
//
// VJP pairs (so that second order is free): reshape ↔ reshape, permute p ↔ permute p⁻¹,
// expand ↔ sum_to, slice ↔ slice_backward (the adjoint placed into zeros), select ↔
// select_backward.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/core/engine_ops.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>

namespace tapegrad {

namespace detail {

// A tensor aliasing x's buffer at `data`, with the given geometry; its results go where x's do.
template <class T>
Tensor<T> alias(const Tensor<T>& x, const T* data, const Shape& s, std::span<const std::int64_t> st) {
    T* p = const_cast<T*>(data);
    if (x.in_arena()) return Tensor<T>::strided(p, s, st, static_cast<Arena*>(x.resource()));
    return Tensor<T>::strided(p, s, st, x.resource());
}
// Axis `axis` (negative: from the end) of a rank-r shape, or an Error naming the op.
inline std::size_t axis_of(std::string_view op, std::ptrdiff_t axis, std::size_t r, const Shape& s) {
    const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(r);
    if (axis < -n || axis >= n) fail("{}: axis {} out of range for {} (rank {})", op, axis, s, r);
    return static_cast<std::size_t>(axis < 0 ? axis + n : axis);
}
// Writes the contiguous `src` (shape s) into dst with element strides st.
template <class T>
void scatter_strided(T* dst, const Shape& s, const Strides& st, const T* src) {
    const std::size_t r = s.rank(), total = s.numel();
    if (total == 0) return;
    if (r == 0) {
        dst[0] = src[0];
        return;
    }
    const std::size_t n = s[r - 1];
    const std::int64_t inner = st[r - 1];
    std::array<std::size_t, kMaxRank> idx{};
    std::int64_t off = 0;
    for (std::size_t row = 0, rows = total / n; row < rows; ++row) {
        for (std::size_t j = 0; j < n; ++j) dst[off + static_cast<std::int64_t>(j) * inner] = src[j];
        src += n;
        for (std::size_t k = r - 1; k-- > 0;) {
            ++idx[k];
            off += st[k];
            if (idx[k] < s[k]) break;
            off -= static_cast<std::int64_t>(idx[k]) * st[k];
            idx[k] = 0;
        }
    }
}
inline std::string dims_str(const Shape& s) { return fmt::format("{}", s); }

}  // namespace detail

// ---- reshape -----------------------------------------------------------------------------------

// Y = X with shape s (row-major order kept).  dX = reshape(dY, shape(X)).
// A view when X is contiguous, or when s only adds or drops unit axes; otherwise a copy.
struct Reshape {
    static constexpr std::string_view name = "reshape";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr bool strided = true;
    static constexpr Notation notation{"reshape({0})", "reshape({0})", Prec::Atom};
    Shape to;

    Shape shape(Shape x) const {
        if (x.numel() != to.numel())
            fail("reshape: cannot reshape {} ({} elements) to {} ({} elements)", x, x.numel(), to, to.numel());
        return to;
    }
    std::optional<Sym> simplify(const Sym& x) const {
        if (x.shape() == to) return x;
        return std::nullopt;
    }
    template <class T>
    Tensor<T> view(const Tensor<T>& x) const {
        if (x.is_contiguous()) {
            const Strides st = to.contiguous_strides();
            return detail::alias(x, x.data(), to, std::span<const std::int64_t>(st.data(), to.rank()));
        }
        // Strided: a view when only unit axes come and go (squeeze, unsqueeze), else a copy.
        const Shape xs = x.shape();
        const Strides xst = x.strides();
        std::vector<std::size_t> a, b;
        std::vector<std::int64_t> ast;
        for (std::size_t k = 0; k < xs.rank(); ++k)
            if (xs[k] != 1) {
                a.push_back(xs[k]);
                ast.push_back(xst[k]);
            }
        for (std::size_t k = 0; k < to.rank(); ++k)
            if (to[k] != 1) b.push_back(to[k]);
        if (a == b) {
            Strides st{};
            for (std::size_t k = 0, j = 0; k < to.rank(); ++k) st[k] = to[k] == 1 ? 0 : ast[j++];
            return detail::alias(x, x.data(), to, std::span<const std::int64_t>(st.data(), to.rank()));
        }
        Tensor<T> c = Tensor<T>::uninit_like(to, x);
        x.gather_into(c.data());
        return c;
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const {
        return apply(Reshape{x.shape()}, g);
    }
};

// ---- permute -----------------------------------------------------------------------------------

// Y = X with axes reordered: Y's axis i is X's axis p[i].  dX = permute(dY, p⁻¹).
struct Permute {
    static constexpr std::string_view name = "permute";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr bool strided = true;
    std::array<std::uint8_t, kMaxRank> p{};
    std::uint8_t rank = 0;

    // The axis order, "[2,0,1]" (to_dot).
    std::string attributes() const {
        std::string axes;
        for (std::size_t i = 0; i < rank; ++i) axes += fmt::format("{}{}", i ? "," : "", static_cast<unsigned>(p[i]));
        return "[" + axes + "]";
    }
    // explain() text with the axis order: permute(X, [2,0,1]).
    std::optional<Sym> simplify(const Sym& x) const {
        if (x.is_zero()) return Sym::zero(shape(x.shape()));
        const std::string axes = attributes();
        return Sym(fmt::format("permute({}, {})", x.str(false), axes), fmt::format("permute({}, {})", x.str(true), axes),
                   Prec::Atom, shape(x.shape()));
    }

    static Permute of(std::span<const std::ptrdiff_t> axes, std::size_t r, const Shape& s) {
        if (axes.size() != r) fail("permute: {} axes given for {} (rank {})", axes.size(), s, r);
        Permute op;
        op.rank = static_cast<std::uint8_t>(r);
        std::array<bool, kMaxRank> seen{};
        for (std::size_t i = 0; i < r; ++i) {
            const std::size_t a = detail::axis_of("permute", axes[i], r, s);
            if (seen[a]) fail("permute: axis {} appears twice in the permutation of {}", a, s);
            seen[a] = true;
            op.p[i] = static_cast<std::uint8_t>(a);
        }
        return op;
    }
    Permute inverse() const {
        Permute q;
        q.rank = rank;
        for (std::size_t i = 0; i < rank; ++i) q.p.at(p[i]) = static_cast<std::uint8_t>(i);  // (p[i] < rank)
        return q;
    }
    Shape shape(Shape x) const {
        if (x.rank() != rank) fail("permute: a permutation of {} axes applied to {}", rank, x);
        std::array<std::size_t, kMaxRank> d{};
        for (std::size_t i = 0; i < rank; ++i) d[i] = x[p[i]];
        return Shape(std::span<const std::size_t>(d.data(), rank));
    }
    template <class T>
    Tensor<T> view(const Tensor<T>& x) const {
        const Strides xs = x.strides();
        Strides st{};
        for (std::size_t i = 0; i < rank; ++i) st[i] = xs[p[i]];
        return detail::alias(x, x.data(), shape(x.shape()), std::span<const std::int64_t>(st.data(), rank));
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return apply(inverse(), g);
    }
};

// ---- expand ------------------------------------------------------------------------------------

// Y = X stretched to `to` (NumPy rules) with stride 0 along stretched axes: no copy.
// dX = sum_to(dY, shape(X)).
struct Expand {
    static constexpr std::string_view name = "expand";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr bool strided = true;
    static constexpr Notation notation{"{0}", "expand({0})", Prec::Atom};
    Shape to;

    Shape shape(Shape x) const {
        if (!broadcastable(x, to)) fail("expand: cannot stretch {} to {}", x, to);
        return to;
    }
    template <class T>
    Tensor<T> view(const Tensor<T>& x) const {
        const Shape xs = x.shape();
        const Strides xst = x.strides();
        Strides st{};
        const std::size_t r = to.rank(), rx = xs.rank();
        for (std::size_t k = 0; k < r; ++k) {
            if (k + rx < r) continue;  // a new leading axis: stride 0
            const std::size_t j = k + rx - r;
            st[k] = (xs[j] == 1 && to[k] != 1) ? 0 : xst[j];
        }
        return detail::alias(x, x.data(), to, std::span<const std::int64_t>(st.data(), r));
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const {
        return apply(SumTo{x.shape()}, g);
    }
};

// ---- slice / narrow / select -------------------------------------------------------------------

struct SliceBackward;

// Y = X[…, start:stop:step, …] along `axis` (a view).  dX = dY placed into zeros of X's shape.
struct SliceAxis {
    static constexpr std::string_view name = "slice_axis";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr bool strided = true;
    std::size_t axis = 0, start = 0, stop = 0, step = 1;

    std::string attributes() const { return fmt::format("axis {}, {}:{}:{}", axis, start, stop, step); }
    Notation notation() const { return {"{0}[slice]", "{0}[slice]", Prec::Postfix}; }
    std::size_t length() const noexcept { return stop > start ? (stop - start + step - 1) / step : 0; }
    Shape shape(Shape x) const {
        if (axis >= x.rank()) fail("slice: axis {} out of range for {} (rank {})", axis, x, x.rank());
        if (step == 0) fail("slice: step 0 along axis {} of {}", axis, x);
        // Written so that nothing wraps: start ≤ stop ≤ dim.
        if (stop > x[axis] || start > stop)
            fail("slice: range [{}:{}] outside axis {} of {} (extent {})", start, stop, axis, x, x[axis]);
        return x.with(axis, length());
    }
    template <class T>
    Tensor<T> view(const Tensor<T>& x) const {
        const Strides xst = x.strides();
        Strides st = xst;
        st[axis] *= static_cast<std::int64_t>(step);
        const T* data = x.data() + static_cast<std::int64_t>(start) * xst[axis];
        const Shape s = shape(x.shape());
        return detail::alias(x, data, s, std::span<const std::int64_t>(st.data(), s.rank()));
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const;
};

// Y = zeros(in) with X placed at start::step along `axis`.  dX = slice(dY) (SliceAxis).
struct SliceBackward {
    static constexpr std::string_view name = "slice_backward";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    std::size_t axis = 0, start = 0, stop = 0, step = 1;
    Shape in;

    Notation notation() const { return {"pad({0})", "pad({0})", Prec::Atom}; }
    Shape shape(Shape x) const {
        const SliceAxis s{axis, start, stop, step};
        if (s.shape(in) != x) fail("slice_backward: {} is not the slice of {}", x, in);
        return in;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        out.fill(T(0));
        Strides st = in.contiguous_strides();
        T* dst = out.data() + static_cast<std::int64_t>(start) * st[axis];
        st[axis] *= static_cast<std::int64_t>(step);
        detail::scatter_strided(dst, x.shape(), st, x.data());
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return apply(SliceAxis{axis, start, stop, step}, g);
    }
};

template <class V>
V SliceAxis::vjp(In<0>, const V& g, const V&, const V& x) const {
    return apply(SliceBackward{axis, start, stop, step, x.shape()}, g);
}

struct SelectBackward;

// Y = X[…, i, …]: axis `axis` indexed away (a view of rank r − 1).  dX = dY placed at i.
struct Select {
    static constexpr std::string_view name = "select";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr bool strided = true;
    std::size_t axis = 0, index = 0;

    std::string attributes() const { return fmt::format("axis {}, index {}", axis, index); }
    Notation notation() const { return {"{0}[select]", "{0}[select]", Prec::Postfix}; }
    Shape shape(Shape x) const {
        if (axis >= x.rank()) fail("select: axis {} out of range for {} (rank {})", axis, x, x.rank());
        if (index >= x[axis]) fail("select: index {} outside axis {} of {} (extent {})", index, axis, x, x[axis]);
        std::array<std::size_t, kMaxRank> d{};
        for (std::size_t k = 0, j = 0; k < x.rank(); ++k)
            if (k != axis) d[j++] = x[k];
        return Shape(std::span<const std::size_t>(d.data(), x.rank() - 1));
    }
    template <class T>
    Tensor<T> view(const Tensor<T>& x) const {
        const Strides xst = x.strides();
        Strides st{};
        for (std::size_t k = 0, j = 0; k < x.rank(); ++k)
            if (k != axis) st[j++] = xst[k];
        const Shape s = shape(x.shape());
        return detail::alias(x, x.data() + static_cast<std::int64_t>(index) * xst[axis], s,
                             std::span<const std::int64_t>(st.data(), s.rank()));
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const;
};

// Y = zeros(in) with X placed at index i of `axis`.  dX = select(dY, axis, i).
struct SelectBackward {
    static constexpr std::string_view name = "select_backward";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    std::size_t axis = 0, index = 0;
    Shape in;

    Notation notation() const { return {"pad({0})", "pad({0})", Prec::Atom}; }
    Shape shape(Shape x) const {
        if (Select{axis, index}.shape(in) != x) fail("select_backward: {} is not a selection of {}", x, in);
        return in;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        out.fill(T(0));
        const Strides full = in.contiguous_strides();
        Strides st{};
        for (std::size_t k = 0, j = 0; k < in.rank(); ++k)
            if (k != axis) st[j++] = full[k];
        detail::scatter_strided(out.data() + static_cast<std::int64_t>(index) * full[axis], x.shape(), st, x.data());
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return apply(Select{axis, index}, g);
    }
};

template <class V>
V Select::vjp(In<0>, const V& g, const V&, const V& x) const {
    return apply(SelectBackward{axis, index, x.shape()}, g);
}

// ---- contiguous --------------------------------------------------------------------------------

// Y = X, gathered into row-major order when X is a strided view.  dX = dY.
struct Contiguous {
    static constexpr std::string_view name = "contiguous";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr bool strided = true;
    static constexpr Notation notation{"{0}", "{0}", Prec::Atom};
    Shape shape(Shape x) const { return x; }
    template <class T>
    Tensor<T> view(const Tensor<T>& x) const {
        if (x.is_contiguous()) return Reshape{x.shape()}.view(x);
        Tensor<T> c = Tensor<T>::uninit_like(x.shape(), x);
        x.gather_into(c.data());
        return c;
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return g;
    }
};

// ---- the functions users call ------------------------------------------------------------------

// reshape(x, {2, -1, 4}): at most one −1, inferred from the element count.
template <Value V>
V reshape(const V& x, std::initializer_list<std::ptrdiff_t> dims, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape xs = x.shape();
    std::vector<std::size_t> d;
    std::size_t known = 1, infer = dims.size();
    for (std::size_t k = 0; k < dims.size(); ++k) {
        const std::ptrdiff_t v = dims.begin()[k];
        if (v == -1) {
            if (infer != dims.size()) fail("reshape: more than one −1 in the shape for {}", xs);
            infer = k;
            d.push_back(1);
        } else if (v < 0) {
            fail("reshape: extent {} in the shape for {}", v, xs);
        } else {
            d.push_back(static_cast<std::size_t>(v));
            known *= static_cast<std::size_t>(v);
        }
    }
    if (infer != dims.size()) {
        if (known == 0 || xs.numel() % known != 0)
            fail("reshape: cannot infer the −1 of a shape with {} known elements from {}", known, xs);
        d[infer] = xs.numel() / known;
    }
    return apply(Reshape{Shape::from_range(d.begin(), d.end())}, x);
}
template <Value V>
V reshape(const V& x, const Shape& s, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Reshape{s}, x);
}
// view: reshape, named as torch names it.
template <Value V>
V view(const V& x, std::initializer_list<std::ptrdiff_t> dims, SourceLocation loc = SourceLocation::current()) {
    return reshape(x, dims, loc);
}
template <Value V>
V permute(const V& x, std::initializer_list<std::ptrdiff_t> axes, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape s = x.shape();
    return apply(Permute::of(std::span<const std::ptrdiff_t>(axes.begin(), axes.size()), s.rank(), s), x);
}
// Swaps axes i and j (a view). transpose(x) with no axes is the 2-D transpose (linalg.hpp).
template <Value V>
V transpose(const V& x, std::ptrdiff_t i, std::ptrdiff_t j, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape s = x.shape();
    const std::size_t r = s.rank();
    std::array<std::ptrdiff_t, kMaxRank> axes{};
    for (std::size_t k = 0; k < r; ++k) axes[k] = static_cast<std::ptrdiff_t>(k);
    std::swap(axes[detail::axis_of("transpose", i, r, s)], axes[detail::axis_of("transpose", j, r, s)]);
    return apply(Permute::of(std::span<const std::ptrdiff_t>(axes.data(), r), r, s), x);
}
// A new unit axis at `axis` (−1: last).
template <Value V>
V unsqueeze(const V& x, std::ptrdiff_t axis, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape s = x.shape();
    const std::size_t a = detail::axis_of("unsqueeze", axis, s.rank() + 1, s);
    std::vector<std::size_t> d(s.dims().begin(), s.dims().end());
    d.insert(d.begin() + static_cast<std::ptrdiff_t>(a), 1);
    return apply(Reshape{Shape::from_range(d.begin(), d.end())}, x);
}
// Drops unit axis `axis` (an Error if its extent is not 1).
template <Value V>
V squeeze(const V& x, std::ptrdiff_t axis, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape s = x.shape();
    const std::size_t a = detail::axis_of("squeeze", axis, s.rank(), s);
    if (s[a] != 1) fail("squeeze: axis {} of {} has extent {}, not 1", a, s, s[a]);
    std::vector<std::size_t> d(s.dims().begin(), s.dims().end());
    d.erase(d.begin() + static_cast<std::ptrdiff_t>(a));
    return apply(Reshape{Shape::from_range(d.begin(), d.end())}, x);
}
// Drops every unit axis.
template <Value V>
V squeeze(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape s = x.shape();
    std::vector<std::size_t> d;
    for (std::size_t k = 0; k < s.rank(); ++k)
        if (s[k] != 1) d.push_back(s[k]);
    return apply(Reshape{Shape::from_range(d.begin(), d.end())}, x);
}
template <Value V>
V expand(const V& x, const Shape& to, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Expand{to}, x);
}
// Axes start..end (inclusive; negative from the end) merged into one.
template <Value V>
V flatten(const V& x, std::ptrdiff_t start = 0, std::ptrdiff_t end = -1, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape s = x.shape();
    if (s.rank() == 0) return apply(Reshape{Shape{1}}, x);
    const std::size_t a = detail::axis_of("flatten", start, s.rank(), s);
    const std::size_t b = detail::axis_of("flatten", end, s.rank(), s);
    if (a > b) fail("flatten: start axis {} after end axis {} of {}", a, b, s);
    std::vector<std::size_t> d;
    for (std::size_t k = 0; k < a; ++k) d.push_back(s[k]);
    std::size_t m = 1;
    for (std::size_t k = a; k <= b; ++k) m *= s[k];
    d.push_back(m);
    for (std::size_t k = b + 1; k < s.rank(); ++k) d.push_back(s[k]);
    return apply(Reshape{Shape::from_range(d.begin(), d.end())}, x);
}
// x[…, start:stop:step, …] along `axis` (a view).
template <Value V>
V slice_axis(const V& x, std::ptrdiff_t axis, std::size_t start, std::size_t stop, std::size_t step = 1,
             SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape s = x.shape();
    return apply(SliceAxis{detail::axis_of("slice", axis, s.rank(), s), start, stop, step}, x);
}
// `length` elements of `axis` from `start` (a view), as torch.narrow.
template <Value V>
V narrow(const V& x, std::ptrdiff_t axis, std::size_t start, std::size_t length,
         SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape s = x.shape();
    const std::size_t a = detail::axis_of("narrow", axis, s.rank(), s);
    if (start > s[a] || length > s[a] - start)
        fail("narrow: {} elements from {} exceed axis {} of {} (extent {})", length, start, a, s, s[a]);
    return apply(SliceAxis{a, start, start + length, 1}, x);
}
// x with `axis` indexed at i (a view of rank r − 1).
template <Value V>
V select(const V& x, std::ptrdiff_t axis, std::size_t i, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape s = x.shape();
    return apply(Select{detail::axis_of("select", axis, s.rank(), s), i}, x);
}
template <Value V>
V contiguous(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Contiguous{}, x);
}

// ---- concat / stack (along any axis) -----------------------------------------------------------

// C = [X₀, …, X_{N−1}] along `axis`: every other extent equal, rank ≥ 1.
// dXᵢ = dC[…, oᵢ : oᵢ + nᵢ, …] along the axis (a slice view), nᵢ = Xᵢ's extent, oᵢ = Σ_{j<i} nⱼ.
// At most kMaxArity (6) operands per node; concat() chains nodes for more. The 2-D
// concat_cols / concat_rows (structure.hpp) are the N = 2, axis −1 / −2 cases of rank 2.
template <std::size_t N>
struct Concat {
    static constexpr std::string_view name = "concat";
    static constexpr std::size_t arity = N;
    static constexpr bool any_rank = true;
    std::size_t axis = 0;

    std::string attributes() const { return fmt::format("axis {}", axis); }

    template <class... S>
    Shape shape(const S&... xs) const {
        const std::array<Shape, N> s{xs...};
        const Shape& s0 = s[0];
        if (s0.rank() == 0) fail("concat: input 0 is a scalar (rank 0); stack scalars instead");
        if (axis >= s0.rank()) fail("concat: axis {} out of range for {} (rank {})", axis, s0, s0.rank());
        std::size_t total = 0;
        for (std::size_t i = 0; i < N; ++i) {
            if (s[i].rank() != s0.rank())
                fail("concat: input {} has shape {} of rank {}, input 0 has {} of rank {}", i, s[i], s[i].rank(), s0,
                     s0.rank());
            for (std::size_t k = 0; k < s0.rank(); ++k)
                if (k != axis && s[i][k] != s0[k])
                    fail("concat: input {} has shape {}, input 0 has {}: extents must agree except along axis {}", i,
                         s[i], s0, axis);
            if (s[i][axis] > kMaxExtent - total)
                fail("concat: the extents along axis {} of {} and the inputs before it overflow", axis, s[i]);
            total += s[i][axis];
        }
        return s0.with(axis, total);
    }
    template <class T, class... X>
    void forward(Tensor<T>& out, const X&... xs) const {
        const std::array<const Tensor<T>*, N> x{&xs...};
        const Shape s = out.shape();
        std::size_t outer = 1, inner = 1;
        for (std::size_t k = 0; k < axis; ++k) outer *= s[k];
        for (std::size_t k = axis + 1; k < s.rank(); ++k) inner *= s[k];
        T* dst = out.data();
        for (std::size_t o = 0; o < outer; ++o) {
            for (const Tensor<T>* xi : x) {
                const std::size_t n = xi->shape()[axis] * inner;
                std::copy_n(xi->data() + o * n, n, dst);
                dst += n;
            }
        }
    }
    template <std::size_t I, class V, class... X>
        requires(sizeof...(X) == N && I < N)
    V vjp(In<I>, const V& g, const V&, const X&... x) const {
        const std::array<std::size_t, N> n{static_cast<std::size_t>(x.shape()[axis])...};
        std::size_t off = 0;
        for (std::size_t j = 0; j < I; ++j) off += n[j];
        return apply(SliceAxis{axis, off, off + n[I], 1}, g);
    }
};

namespace detail {
template <class V, std::size_t... I>
V concat_n(std::size_t axis, const V* xs, std::index_sequence<I...>) {
    return apply(Concat<sizeof...(I)>{axis}, xs[I]...);
}
template <class V>
V concat_any(std::size_t axis, std::span<const V> xs) {
    switch (xs.size()) {
        case 1: return concat_n(axis, xs.data(), std::make_index_sequence<1>{});
        case 2: return concat_n(axis, xs.data(), std::make_index_sequence<2>{});
        case 3: return concat_n(axis, xs.data(), std::make_index_sequence<3>{});
        case 4: return concat_n(axis, xs.data(), std::make_index_sequence<4>{});
        case 5: return concat_n(axis, xs.data(), std::make_index_sequence<5>{});
        case 6: return concat_n(axis, xs.data(), std::make_index_sequence<6>{});
        default: break;
    }
    std::vector<V> parts;  // more than one node's operands: concatenate groups of 6, then those
    for (std::size_t i = 0; i < xs.size(); i += 6)
        parts.push_back(concat_any(axis, xs.subspan(i, std::min<std::size_t>(6, xs.size() - i))));
    return concat_any(axis, std::span<const V>(parts));
}
}  // namespace detail

// xs joined along `axis` (negative: from the end), as torch.cat: equal ranks, equal extents
// except along the axis.
template <Value V>
V concat(std::span<const V> xs, std::ptrdiff_t axis = 0, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    if (xs.empty()) fail("concat: no inputs");
    const Shape s = xs[0].shape();
    if (s.rank() == 0) fail("concat: input 0 is a scalar (rank 0); stack scalars instead");
    return detail::concat_any(detail::axis_of("concat", axis, s.rank(), s), xs);
}
template <Value V>
V concat(const std::vector<V>& xs, std::ptrdiff_t axis = 0, SourceLocation loc = SourceLocation::current()) {
    return concat(std::span<const V>(xs), axis, loc);
}
template <Value V>
V concat(std::initializer_list<V> xs, std::ptrdiff_t axis = 0, SourceLocation loc = SourceLocation::current()) {
    return concat(std::span<const V>(xs.begin(), xs.size()), axis, loc);
}
// xs (all of one shape) joined along a new axis `axis` (−1: a new last axis), as torch.stack:
// each unsqueezed (a view), then concatenated.
template <Value V>
V stack(std::span<const V> xs, std::ptrdiff_t axis = 0, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    if (xs.empty()) fail("stack: no inputs");
    const Shape s = xs[0].shape();
    for (std::size_t i = 1; i < xs.size(); ++i)
        if (xs[i].shape() != s)
            fail("stack: input {} has shape {}, input 0 has {}: stacked tensors share one shape", i, xs[i].shape(), s);
    const std::size_t a = detail::axis_of("stack", axis, s.rank() + 1, s);
    std::vector<std::size_t> d(s.dims().begin(), s.dims().end());
    d.insert(d.begin() + static_cast<std::ptrdiff_t>(a), 1);
    const Shape u = Shape::from_range(d.begin(), d.end());
    std::vector<V> parts;
    parts.reserve(xs.size());
    for (const V& x : xs) parts.push_back(apply(Reshape{u}, x));
    return detail::concat_any(a, std::span<const V>(parts));
}
template <Value V>
V stack(const std::vector<V>& xs, std::ptrdiff_t axis = 0, SourceLocation loc = SourceLocation::current()) {
    return stack(std::span<const V>(xs), axis, loc);
}
template <Value V>
V stack(std::initializer_list<V> xs, std::ptrdiff_t axis = 0, SourceLocation loc = SourceLocation::current()) {
    return stack(std::span<const V>(xs.begin(), xs.size()), axis, loc);
}

}  // namespace tapegrad
