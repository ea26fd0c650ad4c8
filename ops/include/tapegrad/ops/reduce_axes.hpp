// Reductions over any set of axes, as torch: sum, mean, amax / amin, max / min along one axis
// with their int64 indices, argmax / argmin (int64 IndexTensors: data, not recorded), logsumexp,
// var / std.
//
// Axes may be negative (from the end); naming an axis twice is an Error. keepdim keeps each
// reduced axis with extent 1; without it the axes are dropped, and a full reduction is rank 0.
// (The 2-D sum(x) / sum_rows / sum_cols / mean(x) of reductions.hpp keep their 1×1, 1×n, m×1
// results.) A separate header from reductions.hpp because the VJPs here use exp, and math.hpp
// includes reductions.hpp.
//
// Every VJP reshapes the adjoint to the keepdim shape and lets broadcasting stretch it back over
// the reduced axes; a selection (which element was the maximum) is recomputed from x and y by a
// weights op rather than saved, so the VJPs hold in all three readings.
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/core/broadcast.hpp>
#include <tapegrad/core/engine_ops.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>
#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/index_types.hpp>
#include <tapegrad/ops/math.hpp>
#include <tapegrad/ops/reductions.hpp>
#include <tapegrad/ops/views.hpp>

namespace tapegrad {

namespace detail {

// A set of axes (a bit per axis) and keepdim.
struct AxisSet {
    std::uint8_t mask = 0;
    bool keepdim = false;

    bool has(std::size_t k) const noexcept { return (mask >> k) & 1u; }
    // Checks that every axis exists in x (the op's shape rule re-checks what the caller built).
    void check(std::string_view op, const Shape& x) const {
        if ((mask >> x.rank()) != 0) {
            std::size_t k = x.rank();
            while (!has(k)) ++k;
            fail("{}: axis {} out of range for {} (rank {})", op, k, x, x.rank());
        }
    }
    // x with every reduced axis set to 1.
    Shape keep(const Shape& x) const {
        std::array<std::size_t, kMaxRank> d{};
        for (std::size_t k = 0; k < x.rank(); ++k) d[k] = has(k) ? 1 : x[k];
        return Shape(std::span<const std::size_t>(d.data(), x.rank()));
    }
    Shape out(const Shape& x) const {
        if (keepdim) return keep(x);
        std::array<std::size_t, kMaxRank> d{};
        std::size_t r = 0;
        for (std::size_t k = 0; k < x.rank(); ++k)
            if (!has(k)) d[r++] = x[k];
        return Shape(std::span<const std::size_t>(d.data(), r));
    }
    // The number of elements reduced into each output element.
    std::size_t count(const Shape& x) const {
        std::size_t n = 1;
        for (std::size_t k = 0; k < x.rank(); ++k)
            if (has(k)) n *= x[k];
        return n;
    }
    // "axis 1", "axes 0,2" (for messages and explain()).
    std::string label() const {
        std::string s;
        int n = 0;
        for (std::size_t k = 0; k < 8; ++k)
            if (has(k)) {
                s += fmt::format("{}{}", n ? "," : "", k);
                ++n;
            }
        return fmt::format("{} {}", n == 1 ? "axis" : "axes", s);
    }
    // label(), and ", keepdim" when kept (to_dot, through the ops' attributes()).
    std::string attributes() const { return keepdim ? label() + ", keepdim" : label(); }
};

// The axes of a call (negative from the end), or an Error naming the op: out of range, repeated.
inline AxisSet axis_set(std::string_view op, std::span<const std::ptrdiff_t> axes, const Shape& s, bool keepdim) {
    AxisSet a{0, keepdim};
    for (std::ptrdiff_t ax : axes) {
        const std::size_t k = axis_of(op, ax, s.rank(), s);
        if (a.has(k)) fail("{}: axis {} appears twice in the axes of {}", op, k, s);
        a.mask = static_cast<std::uint8_t>(a.mask | (1u << k));
    }
    return a;
}
// Every axis of s.
inline AxisSet all_axes(const Shape& s, bool keepdim) {
    return AxisSet{static_cast<std::uint8_t>((1u << s.rank()) - 1u), keepdim};
}

// Calls f(i, o) for every element i of a contiguous tensor of shape x, o being the flat index
// of the element of the keepdim shape `keep` that it reduces into.
template <class F>
void for_each_reduced(const Shape& x, const Shape& keep, F&& f) {
    if (x.empty()) return;
    const auto L = plan_loop<2>(x, {&x, &keep});
    run_loop(L, [&](const std::array<std::int64_t, 2>& off, std::size_t n, const std::array<std::int64_t, 2>& in) {
        for (std::size_t j = 0; j < n; ++j) {
            const std::int64_t jj = static_cast<std::int64_t>(j);
            f(static_cast<std::size_t>(off[0] + jj * in[0]), static_cast<std::size_t>(off[1] + jj * in[1]));
        }
    });
}

// max that propagates NaN (as torch.amax): once NaN, NaN.
template <class T>
T nan_max(T a, T b) noexcept {
    return (b > a || std::isnan(b)) && !std::isnan(a) ? b : a;
}
template <class T>
T nan_min(T a, T b) noexcept {
    return (b < a || std::isnan(b)) && !std::isnan(a) ? b : a;
}

// explain() text "Σ_{axis 1}(X)": a reduction's symbol with its axes as a subscript.
inline Sym axes_sym(std::string_view uni, std::string_view asc, const AxisSet& a, const Sym& x, Shape out) {
    const std::string sub = a.label();
    return Sym(fmt::format("{}_{{{}}}({})", uni, sub, x.str(false)), fmt::format("{}_{{{}}}({})", asc, sub, x.str(true)),
               Prec::Atom, out);
}

// g (in a reduction's output shape) reshaped to the keepdim shape, ready to broadcast over x.
template <class V>
V to_keep(const V& g, const Shape& keep) {
    if (g.shape() == keep) return g;
    return apply(Reshape{keep}, g);
}

}  // namespace detail

// ---- sum / mean --------------------------------------------------------------------------------

// y = Σ_{axes} x.   dx = dy reshaped to the keepdim shape, stretched back over the axes.
struct SumAxes {
    static constexpr std::string_view name = "sum_axes";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    detail::AxisSet axes;
    std::string attributes() const { return axes.attributes(); }

    Shape shape(Shape x) const {
        axes.check(name, x);
        return axes.out(x);
    }
    std::optional<Sym> simplify(const Sym& x) const {
        const Shape out = shape(x.shape());
        if (x.is_zero()) return Sym::zero(out);
        return detail::axes_sym("Σ", "sum", axes, x, out);
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {  // the engine's tiered sum_to kernel
        Tensor<T> o = Tensor<T>::view(out.data(), axes.keep(x.shape()), out.resource());
        sum_to(o, x);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const {
        return apply(BroadcastTo{x.shape()}, detail::to_keep(g, axes.keep(x.shape())));
    }
};

// y = (1/N)·Σ_{axes} x, N the number of elements reduced.   dx = (1/N)·dy stretched back.
struct MeanAxes {
    static constexpr std::string_view name = "mean_axes";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    detail::AxisSet axes;
    std::string attributes() const { return axes.attributes(); }

    Shape shape(Shape x) const {
        axes.check(name, x);
        if (axes.count(x) == 0) fail("mean: no elements along {} of {}", axes.label(), x);
        return axes.out(x);
    }
    std::optional<Sym> simplify(const Sym& x) const {
        const Shape out = shape(x.shape());
        if (x.is_zero()) return Sym::zero(out);
        return detail::axes_sym("mean", "mean", axes, x, out);
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        SumAxes{axes}.forward(out, x);
        const T inv = T(1) / static_cast<T>(axes.count(x.shape()));
        for (std::size_t i = 0; i < out.size(); ++i) out[i] *= inv;
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const {
        const double inv = 1.0 / static_cast<double>(axes.count(x.shape()));
        return apply(Scale{inv}, apply(BroadcastTo{x.shape()}, detail::to_keep(g, axes.keep(x.shape()))));
    }
};

// ---- amax / amin / max / min -------------------------------------------------------------------

// W = [x = y]/(number of ties)   (amax's VJP: the adjoint split evenly among equal extrema), or,
// with `first`, [i is the first index where x = y]   (max(x, dim)'s VJP, as torch). A NaN y
// selects the NaNs of x. Piecewise constant: both VJPs are zero.
struct ExtremumWeights {
    static constexpr std::string_view name = "extremum_weights";
    static constexpr std::size_t arity = 2;
    static constexpr bool any_rank = true;
    detail::AxisSet axes;
    std::string attributes() const { return axes.attributes(); }
    bool first = false;

    Notation notation() const { return {"[{0} = {1}]", "[{0} == {1}]", Prec::Atom, false}; }
    Shape shape(Shape x, Shape y) const {
        axes.check(name, x);
        if (axes.out(x) != y) fail("extremum_weights: {} is not the reduction of {} over {}", y, x, axes.label());
        return x;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x, const Tensor<T>& y) const {
        const Shape keep = axes.keep(x.shape());
        std::vector<T> count(keep.numel(), T(0));
        T* o = out.data();
        const T* px = x.data();
        const T* py = y.data();
        auto hit = [&](std::size_t i, std::size_t k) {
            return px[i] == py[k] || (std::isnan(py[k]) && std::isnan(px[i]));
        };
        detail::for_each_reduced(x.shape(), keep, [&](std::size_t i, std::size_t k) {
            const bool h = hit(i, k) && !(first && count[k] > T(0));
            o[i] = h ? T(1) : T(0);
            if (h) count[k] += T(1);
        });
        if (!first)
            detail::for_each_reduced(x.shape(), keep, [&](std::size_t i, std::size_t k) {
                if (o[i] != T(0)) o[i] /= count[k];
            });
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x, const V&) const {
        (void)x;
        return apply(ZerosLike{}, g);
    }
    template <class V>
    V vjp(In<1>, const V&, const V&, const V&, const V& y) const {
        return apply(ZerosLike{}, y);
    }
};

// y = max_{axes} x (NaN propagates).  dx = dy split evenly among the maxima (as torch.amax).
struct Amax {
    static constexpr std::string_view name = "amax";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    detail::AxisSet axes;
    std::string attributes() const { return axes.attributes(); }

    Shape shape(Shape x) const {
        axes.check(name, x);
        if (axes.count(x) == 0) fail("amax: no elements along {} of {}", axes.label(), x);
        return axes.out(x);
    }
    std::optional<Sym> simplify(const Sym& x) const { return detail::axes_sym("max", "amax", axes, x, shape(x.shape())); }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        T* o = out.data();
        const T* p = x.data();
        std::fill_n(o, out.size(), -std::numeric_limits<T>::infinity());
        detail::for_each_reduced(x.shape(), axes.keep(x.shape()),
                                 [&](std::size_t i, std::size_t k) { o[k] = detail::nan_max(o[k], p[i]); });
    }
    template <class V>
    V vjp(In<0>, const V& g, const V& y, const V& x) const {
        return apply(Mul{}, apply(ExtremumWeights{axes, false}, x, y), detail::to_keep(g, axes.keep(x.shape())));
    }
};

// y = min_{axes} x (NaN propagates).  dx = dy split evenly among the minima (as torch.amin).
struct Amin {
    static constexpr std::string_view name = "amin";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    detail::AxisSet axes;
    std::string attributes() const { return axes.attributes(); }

    Shape shape(Shape x) const {
        axes.check(name, x);
        if (axes.count(x) == 0) fail("amin: no elements along {} of {}", axes.label(), x);
        return axes.out(x);
    }
    std::optional<Sym> simplify(const Sym& x) const { return detail::axes_sym("min", "amin", axes, x, shape(x.shape())); }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        T* o = out.data();
        const T* p = x.data();
        std::fill_n(o, out.size(), std::numeric_limits<T>::infinity());
        detail::for_each_reduced(x.shape(), axes.keep(x.shape()),
                                 [&](std::size_t i, std::size_t k) { o[k] = detail::nan_min(o[k], p[i]); });
    }
    template <class V>
    V vjp(In<0>, const V& g, const V& y, const V& x) const {
        return apply(Mul{}, apply(ExtremumWeights{axes, false}, x, y), detail::to_keep(g, axes.keep(x.shape())));
    }
};

// y = max (or min) of x along one axis.  dx = dy to the FIRST extremum along the axis (as
// torch.max(x, dim)); the index (an IndexTensor) is detail::arg_extremum's, not an op.
struct MaxAlong {
    static constexpr std::string_view name = "max_along";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    detail::AxisSet axes;  // one axis
    std::string attributes() const { return axes.attributes(); }
    bool min = false;

    Shape shape(Shape x) const {
        axes.check(name, x);
        if (axes.count(x) == 0) fail("{}: no elements along {} of {}", min ? "min" : "max", axes.label(), x);
        return axes.out(x);
    }
    std::optional<Sym> simplify(const Sym& x) const {
        return detail::axes_sym(min ? "min" : "max", min ? "min" : "max", axes, x, shape(x.shape()));
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        if (min)
            Amin{axes}.forward(out, x);
        else
            Amax{axes}.forward(out, x);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V& y, const V& x) const {
        return apply(Mul{}, apply(ExtremumWeights{axes, true}, x, y), detail::to_keep(g, axes.keep(x.shape())));
    }
};

namespace detail {
// The int64 index of the first maximum (minimum) of x along one axis (`axes` holds one); a NaN
// counts as the maximum (minimum), as torch.argmax. Data, not an op: indices are not
// differentiable (torch), so nothing is recorded. An Error names `op` for an empty axis.
template <class T>
IndexTensor arg_extremum(std::string_view op, const Tensor<T>& xin, const AxisSet& axes, bool min) {
    axes.check(op, xin.shape());
    if (axes.count(xin.shape()) == 0) fail("{}: no elements along {} of {}", op, axes.label(), xin.shape());
    const Tensor<T> x = dense_data(xin);
    const Shape keep = axes.keep(x.shape());
    std::size_t axis = 0;
    while (!axes.has(axis)) ++axis;
    const std::size_t stride = static_cast<std::size_t>(x.shape().contiguous_strides()[axis]);
    const std::size_t n = x.shape()[axis];
    IndexTensor out(axes.out(x.shape()));
    std::vector<T> best(keep.numel());
    std::vector<bool> seen(keep.numel(), false);
    std::int64_t* o = out.data();
    const T* p = x.data();
    for_each_reduced(x.shape(), keep, [&](std::size_t i, std::size_t k) {
        const T v = p[i];
        const bool better = !seen[k] || (!std::isnan(best[k]) && (std::isnan(v) || (min ? v < best[k] : v > best[k])));
        if (better) {
            best[k] = v;
            seen[k] = true;
            o[k] = static_cast<std::int64_t>((i / stride) % n);
        }
    });
    return out;
}
// The tensor a value holds (itself, or a Var's value), and a constant beside it.
template <class V>
struct value_of {};  // (a Sym: no numbers)
template <class T>
struct value_of<Tensor<T>> {
    using type = T;
    static const Tensor<T>& get(const Tensor<T>& x) { return x; }
    static Tensor<T> constant(const Tensor<T>&, const Tensor<T>& t) { return t; }
};
template <class T>
struct value_of<Var<T>> {
    using type = T;
    static const Tensor<T>& get(const Var<T>& x) { return x.value(); }
    static Var<T> constant(const Var<T>& x, const Tensor<T>& t) { return x.tape().constant(t); }
};
// A value with numbers (a Tensor or a Var; a Sym has none).
template <class V>
concept HasValue = requires(const V& v) { value_of<V>::get(v); };
}  // namespace detail

// ---- logsumexp ---------------------------------------------------------------------------------

// y = m + log Σ_{axes} exp(x − m), m = max_{axes} x (finite for any finite x; an infinite m is
// taken as 0).   dx = dy ⊙ exp(x − y)   (the softmax over the axes).
struct LogSumExp {
    static constexpr std::string_view name = "logsumexp";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    detail::AxisSet axes;
    std::string attributes() const { return axes.attributes(); }

    Shape shape(Shape x) const {
        axes.check(name, x);
        return axes.out(x);
    }
    std::optional<Sym> simplify(const Sym& x) const {
        return detail::axes_sym("logsumexp", "logsumexp", axes, x, shape(x.shape()));
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        const Shape keep = axes.keep(x.shape());
        std::vector<T> m(keep.numel(), -std::numeric_limits<T>::infinity());
        const T* p = x.data();
        T* o = out.data();
        detail::for_each_reduced(x.shape(), keep, [&](std::size_t i, std::size_t k) { m[k] = detail::nan_max(m[k], p[i]); });
        for (auto& v : m)
            if (std::isinf(v)) v = T(0);
        std::fill_n(o, out.size(), T(0));
        detail::for_each_reduced(x.shape(), keep, [&](std::size_t i, std::size_t k) { o[k] += std::exp(p[i] - m[k]); });
        for (std::size_t k = 0; k < out.size(); ++k) o[k] = m[k] + std::log(o[k]);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V& y, const V& x) const {
        const Shape keep = axes.keep(x.shape());
        return apply(Mul{}, detail::to_keep(g, keep), apply(Exp{}, apply(Sub{}, x, detail::to_keep(y, keep))));
    }
};

// ---- the functions users call ------------------------------------------------------------------

namespace detail {
inline std::span<const std::ptrdiff_t> span_of(std::initializer_list<std::ptrdiff_t> a) { return {a.begin(), a.size()}; }
}  // namespace detail

// Σ over `axes` (torch.sum(x, dim, keepdim)): sum(x, {0, -1}), sum(x, {1}, true).
template <Value V>
V sum(const V& x, std::initializer_list<std::ptrdiff_t> axes, bool keepdim = false,
      SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(SumAxes{detail::axis_set("sum", detail::span_of(axes), x.shape(), keepdim)}, x);
}
template <Value V>
V sum(const V& x, std::ptrdiff_t axis, bool keepdim = false, SourceLocation loc = SourceLocation::current()) {
    return sum(x, {axis}, keepdim, loc);
}
// Mean over `axes` (torch.mean(x, dim, keepdim)).
template <Value V>
V mean(const V& x, std::initializer_list<std::ptrdiff_t> axes, bool keepdim = false,
       SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(MeanAxes{detail::axis_set("mean", detail::span_of(axes), x.shape(), keepdim)}, x);
}
template <Value V>
V mean(const V& x, std::ptrdiff_t axis, bool keepdim = false, SourceLocation loc = SourceLocation::current()) {
    return mean(x, {axis}, keepdim, loc);
}
// Max / min over `axes` (every axis when none are given), the gradient split among ties.
template <Value V>
V amax(const V& x, std::initializer_list<std::ptrdiff_t> axes, bool keepdim = false,
       SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Amax{detail::axis_set("amax", detail::span_of(axes), x.shape(), keepdim)}, x);
}
template <Value V>
V amax(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Amax{detail::all_axes(x.shape(), false)}, x);
}
template <Value V>
V amin(const V& x, std::initializer_list<std::ptrdiff_t> axes, bool keepdim = false,
       SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Amin{detail::axis_set("amin", detail::span_of(axes), x.shape(), keepdim)}, x);
}
template <Value V>
V amin(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Amin{detail::all_axes(x.shape(), false)}, x);
}

// torch.max(x, dim, keepdim): the values and the int64 index of the first maximum along `dim`
// (NaN propagates: a NaN is the maximum). The values are recorded (dx = dy to the first maximum);
// the indices are data, as torch's (not differentiable). Tensors and Vars (a Sym has no values).
template <class V>
struct ValuesIndices {
    V values;
    IndexTensor indices;
};
template <Value V>
    requires detail::HasValue<V>
ValuesIndices<V> max(const V& x, std::ptrdiff_t dim, bool keepdim = false, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const detail::AxisSet a = detail::axis_set("max", std::span<const std::ptrdiff_t>(&dim, 1), x.shape(), keepdim);
    IndexTensor i = detail::arg_extremum("max", detail::value_of<V>::get(x), a, false);
    return {apply(MaxAlong{a, false}, x), std::move(i)};
}
template <Value V>
    requires detail::HasValue<V>
ValuesIndices<V> min(const V& x, std::ptrdiff_t dim, bool keepdim = false, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const detail::AxisSet a = detail::axis_set("min", std::span<const std::ptrdiff_t>(&dim, 1), x.shape(), keepdim);
    IndexTensor i = detail::arg_extremum("min", detail::value_of<V>::get(x), a, true);
    return {apply(MaxAlong{a, true}, x), std::move(i)};
}
// torch.argmax(x, dim, keepdim) / torch.argmin: the int64 index of the first maximum (minimum)
// along `dim`; a NaN counts as the extremum. Data: nothing is recorded on a tape.
template <Value V>
    requires detail::HasValue<V>
IndexTensor argmax(const V& x, std::ptrdiff_t dim, bool keepdim = false, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return detail::arg_extremum(
        "argmax", detail::value_of<V>::get(x),
        detail::axis_set("argmax", std::span<const std::ptrdiff_t>(&dim, 1), x.shape(), keepdim), false);
}
template <Value V>
    requires detail::HasValue<V>
IndexTensor argmin(const V& x, std::ptrdiff_t dim, bool keepdim = false, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return detail::arg_extremum(
        "argmin", detail::value_of<V>::get(x),
        detail::axis_set("argmin", std::span<const std::ptrdiff_t>(&dim, 1), x.shape(), keepdim), true);
}

// log Σ exp over `axes`, computed stably.
template <Value V>
V logsumexp(const V& x, std::initializer_list<std::ptrdiff_t> axes, bool keepdim = false,
            SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(LogSumExp{detail::axis_set("logsumexp", detail::span_of(axes), x.shape(), keepdim)}, x);
}

// Variance over `axes` as torch.var(x, dim, correction, keepdim): Σ (x − mean)² / (N − correction)
// (correction 1: unbiased, the default; 0: the population variance). N − correction ≤ 0 gives
// inf or NaN, as torch. Composed of mean, sub, square and sum, so its VJPs follow.
template <Value V>
V var(const V& x, std::initializer_list<std::ptrdiff_t> axes, double correction = 1, bool keepdim = false,
      SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const detail::AxisSet a = detail::axis_set("var", detail::span_of(axes), x.shape(), keepdim);
    const double n = static_cast<double>(a.count(x.shape()));
    const double d = n - correction;
    V c = apply(Sub{}, x, apply(MeanAxes{detail::AxisSet{a.mask, true}}, x));
    return apply(Scale{d > 0 ? 1.0 / d : std::numeric_limits<double>::infinity()}, apply(SumAxes{a}, apply(Square{}, c)));
}
// √var (torch.std).
template <Value V>
V std(const V& x, std::initializer_list<std::ptrdiff_t> axes, double correction = 1, bool keepdim = false,
      SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Sqrt{}, var(x, axes, correction, keepdim, loc));
}

}  // namespace tapegrad
