// Structure: concatenation and slicing. A slice's VJP pads the adjoint with zeros back to the
// input's shape (Pad); Pad's VJP is the slice. Concatenation's VJPs are slices.
//
// Offsets and extents are size_t, and an offset near SIZE_MAX (the result of a subtraction that
// went below zero) is a plain mistake, so no check here adds an offset to an extent: each one
// compares, or subtracts only what is known to be smaller, so that it cannot wrap around.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>

namespace tapegrad {

struct Pad;

// Y = X[r0:r1, c0:c1]     X: m×n, Y: (r1−r0)×(c1−c0).
// dX = dY placed at (r0, c0) in zeros of X's shape (Pad).
struct Slice {
    static constexpr std::string_view name = "slice";
    static constexpr std::size_t arity = 1;
    std::size_t r0 = 0, r1 = 0, c0 = 0, c1 = 0;

    Shape shape(Shape x) const {
        // Comparisons only (no sums), so no bound near SIZE_MAX can wrap into range.
        if (r0 >= r1 || r1 > x.rows() || c0 >= c1 || c1 > x.cols())
            fail("slice: range [{}:{}, {}:{}] is empty or outside {}", r0, r1, c0, c1, x);
        return {r1 - r0, c1 - c0};
    }
    std::optional<Sym> simplify(const Sym& x) const {
        if (r0 == 0 && r1 == x.rows() && c0 == 0 && c1 == x.cols()) return x;  // the whole of X
        bool paren = static_cast<int>(x.prec) < static_cast<int>(Prec::Postfix);
        auto wrap = [&](const std::string& s) { return paren ? "(" + s + ")" : s; };
        auto range = [](std::size_t a, std::size_t b, std::size_t n) {
            return a == 0 && b == n ? std::string(":") : fmt::format("{}:{}", a, b);
        };
        std::string idx = fmt::format("[{}, {}]", range(r0, r1, x.rows()), range(c0, c1, x.cols()));
        return Sym(wrap(x.text) + idx, wrap(x.ascii) + idx, Prec::Postfix, x.shape());
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        const std::size_t n = c1 - c0;
        for (std::size_t i = r0; i < r1; ++i)
            std::copy_n(x.data() + i * x.cols() + c0, n, out.data() + (i - r0) * n);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const;
};

// Y = zeros(to) with X placed at (r0, c0)     X: p×q, Y: to.
// dX = dY[r0:r0+p, c0:c0+q].
struct Pad {
    static constexpr std::string_view name = "pad";
    static constexpr std::size_t arity = 1;
    Shape to{};
    std::size_t r0 = 0, c0 = 0;

    Shape shape(Shape x) const {
        // r0 + x.rows() ≤ to.rows(), written so that it cannot wrap (likewise for the columns).
        if (x.rows() > to.rows() || r0 > to.rows() - x.rows() || x.cols() > to.cols() || c0 > to.cols() - x.cols())
            fail("pad: {} placed at ({}, {}) does not fit in {}", x, r0, c0, to);
        return to;
    }
    std::optional<Sym> simplify(const Sym& x) const {
        if (x.shape() == to) return x;  // nothing to pad
        std::string u = fmt::format("pad({}, {}, ({}, {}))", x.text, to, r0, c0);
        std::string a = fmt::format("pad({}, {}x{}, ({}, {}))", x.ascii, to.rows(), to.cols(), r0, c0);
        return Sym(u, a, Prec::Atom, to);
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        out.fill(T(0));
        for (std::size_t i = 0; i < x.rows(); ++i)
            std::copy_n(x.data() + i * x.cols(), x.cols(), out.data() + (i + r0) * to.cols() + c0);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const {
        return apply(Slice{r0, r0 + x.shape().rows(), c0, c0 + x.shape().cols()}, g);
    }
};

template <class V>
V Slice::vjp(In<0>, const V& g, const V&, const V& x) const {
    return apply(Pad{x.shape(), r0, c0}, g);
}

// C = [A, B]     A: m×p, B: m×q, C: m×(p+q).
// dA = dC[:, 0:p],  dB = dC[:, p:p+q].
struct ConcatCols {
    static constexpr std::string_view name = "concat_cols";
    static constexpr std::size_t arity = 2;
    static constexpr Notation notation{"[{0}, {1}]", "[{0}, {1}]", Prec::Atom};
    Shape shape(Shape a, Shape b) const {
        if (a.rows() != b.rows()) fail("concat_cols: row counts differ: {} and {}", a, b);
        if (b.cols() > kMaxExtent - a.cols()) fail("concat_cols: the column counts of {} and {} overflow", a, b);
        return {a.rows(), a.cols() + b.cols()};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& a, const Tensor<T>& b) const {
        const std::size_t p = a.cols(), q = b.cols();
        for (std::size_t i = 0; i < a.rows(); ++i) {
            std::copy_n(a.data() + i * p, p, out.data() + i * (p + q));
            std::copy_n(b.data() + i * q, q, out.data() + i * (p + q) + p);
        }
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& a, const V&) const {
        return apply(Slice{0, g.shape().rows(), 0, a.shape().cols()}, g);
    }
    template <class V>
    V vjp(In<1>, const V& g, const V&, const V& a, const V& b) const {
        return apply(Slice{0, g.shape().rows(), a.shape().cols(), a.shape().cols() + b.shape().cols()}, g);
    }
};

// C = [A; B]     A: p×n, B: q×n, C: (p+q)×n.
// dA = dC[0:p, :],  dB = dC[p:p+q, :].
struct ConcatRows {
    static constexpr std::string_view name = "concat_rows";
    static constexpr std::size_t arity = 2;
    static constexpr Notation notation{"[{0}; {1}]", "[{0}; {1}]", Prec::Atom};
    Shape shape(Shape a, Shape b) const {
        if (a.cols() != b.cols()) fail("concat_rows: column counts differ: {} and {}", a, b);
        if (b.rows() > kMaxExtent - a.rows()) fail("concat_rows: the row counts of {} and {} overflow", a, b);
        return {a.rows() + b.rows(), a.cols()};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& a, const Tensor<T>& b) const {
        std::copy_n(a.data(), a.size(), out.data());
        std::copy_n(b.data(), b.size(), out.data() + a.size());
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& a, const V&) const {
        return apply(Slice{0, a.shape().rows(), 0, g.shape().cols()}, g);
    }
    template <class V>
    V vjp(In<1>, const V& g, const V&, const V& a, const V& b) const {
        return apply(Slice{a.shape().rows(), a.shape().rows() + b.shape().rows(), 0, g.shape().cols()}, g);
    }
};

// [A, B]: side by side (equal row counts).
template <Value V>
V concat_cols(const V& a, const V& b, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(ConcatCols{}, a, b);
}
// [A; B]: stacked (equal column counts).
template <Value V>
V concat_rows(const V& a, const V& b, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(ConcatRows{}, a, b);
}
// X[r0:r1, c0:c1] (half-open ranges).
template <Value V>
V slice(const V& x, std::size_t r0, std::size_t r1, std::size_t c0, std::size_t c1, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Slice{r0, r1, c0, c1}, x);
}
// Rows r0 … r1−1 of X.
template <Value V>
V slice_rows(const V& x, std::size_t r0, std::size_t r1, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Slice{r0, r1, 0, x.shape().cols()}, x);
}
// Columns c0 … c1−1 of X.
template <Value V>
V slice_cols(const V& x, std::size_t c0, std::size_t c1, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Slice{0, x.shape().rows(), c0, c1}, x);
}
// X placed at (r0, c0) in zeros of shape `to`.
template <Value V>
V pad(const V& x, Shape to, std::size_t r0, std::size_t c0, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Pad{to, r0, c0}, x);
}

}  // namespace tapegrad
