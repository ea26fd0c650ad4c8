// Index and mask tensors, and the ops that take them: gather / scatter_add, index_select /
// index_add, tril / triu, cross-entropy and embedding with int64 labels, and the data makers
// arange, one_hot and comparisons (x > 0 → a mask). (where and masked_fill with a boolean mask:
// mask.hpp; the types: index_types.hpp.)
//
// IndexTensor = Tensor<std::int64_t>, MaskTensor = Tensor<bool>: exact at any size (a float
// holds integers exactly only up to 2²⁴). They are operands without gradients: an op takes them
// as parameters (Saved<U> handles, saved.hpp), copies them into the tape's arena when it is
// recorded, and its VJPs — written with ops, so they hold in all three readings — use them again.
// Indices are checked: one outside its axis is an Error naming the op, the value and its position.
//
// VJP pairs (so that second order is free): gather ↔ scatter_add, index_select ↔ index_add,
// tril ↔ tril, triu ↔ triu (where / masked_fill ↔ mask_keep: mask.hpp).
#pragma once

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include <fmt/format.h>

#include <tapegrad/core/broadcast.hpp>
#include <tapegrad/core/engine_ops.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/saved.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>
#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/index_types.hpp>
#include <tapegrad/ops/losses.hpp>
#include <tapegrad/ops/mask.hpp>
#include <tapegrad/ops/math.hpp>
#include <tapegrad/ops/reductions.hpp>
#include <tapegrad/ops/transformer.hpp>
#include <tapegrad/ops/views.hpp>

namespace tapegrad {

namespace detail {

// idx[p], checked to lie in [0, extent).
inline std::size_t index_at(std::string_view op, const Saved<std::int64_t>& idx, std::size_t p, std::size_t extent,
                            std::size_t axis, const Shape& x) {
    const std::int64_t v = idx[p];
    if (v < 0 || static_cast<std::uint64_t>(v) >= extent)
        fail("{}: index {} at position {} of the index {} is outside [0, {}) (axis {} of {})", op, v,
             position(idx.shape(), p), idx.shape(), extent, axis, x);
    return static_cast<std::size_t>(v);
}
// gather / scatter_add: x and the index have one rank; the index fits in x off `dim`.
inline void check_gather(std::string_view op, std::size_t dim, const Shape& x, const Shape& idx) {
    if (x.rank() == 0) fail("{}: input {} has rank 0; it needs an axis to index", op, x);
    if (dim >= x.rank()) fail("{}: axis {} out of range for {} (rank {})", op, dim, x, x.rank());
    if (idx.rank() != x.rank())
        fail("{}: index {} has rank {}, the input {} rank {}: they must have one rank", op, idx, idx.rank(), x, x.rank());
    for (std::size_t k = 0; k < x.rank(); ++k)
        if (k != dim && idx[k] > x[k])
            fail("{}: index {} is larger than the input {} along axis {} (only axis {} may differ)", op, idx, x, k, dim);
}
// src of scatter_add (gather's padded output): the index's rank, at least the index's extent on
// every axis (torch: index.size(d) ≤ src.size(d)); only the index-shaped corner is used.
inline void check_source(std::string_view op, const Shape& src, const Shape& idx) {
    if (src.rank() != idx.rank())
        fail("{}: source {} has rank {}, the index {} rank {}: they must have one rank", op, src, src.rank(), idx,
             idx.rank());
    for (std::size_t k = 0; k < idx.rank(); ++k)
        if (idx[k] > src[k])
            fail("{}: index {} is larger than the source {} along axis {} (the source must hold the index's shape)", op,
                 idx, src, k);
}
// Calls f(p, ox, stride, os) for every flat position p of the (contiguous) index: ox is the flat
// offset in a contiguous x of the element at p's multi-index with axis `dim` left at 0, stride x's
// stride along `dim`, os the flat offset of p's multi-index in a contiguous s (the source or the
// padded output, at least the index's extent on every axis).
template <class F>
void for_each_indexed(const Shape& idx, const Shape& x, const Shape& s, std::size_t dim, F&& f) {
    const std::size_t n = idx.numel(), r = idx.rank();
    if (n == 0) return;
    const auto xs = x.contiguous_strides(), ss = s.contiguous_strides();
    const std::int64_t xd = xs[dim];
    std::array<std::size_t, kMaxRank> i{};
    std::int64_t ox = 0, os = 0;  // ox with axis dim at 0
    for (std::size_t p = 0; p < n; ++p) {
        f(p, static_cast<std::size_t>(ox), static_cast<std::size_t>(xd), static_cast<std::size_t>(os));
        for (std::size_t k = r; k-- > 0;) {  // next multi-index
            if (++i[k] < idx[k]) {
                if (k != dim) ox += xs[k];
                os += ss[k];
                break;
            }
            if (k != dim) ox -= static_cast<std::int64_t>(i[k] - 1) * xs[k];
            os -= static_cast<std::int64_t>(i[k] - 1) * ss[k];
            i[k] = 0;
        }
    }
}

}  // namespace detail

// ---- gather / scatter_add ----------------------------------------------------------------------

// Y[…, i, …] = X[…, I[…, i, …], …] along `dim` (torch.gather)    I: int64, X's rank, Y: I's shape;
// with `to` (rank > 0), Y has shape `to` (≥ I's on every axis), zero outside I's corner: the VJP
// of a scatter_add whose source is larger than its index.
// dX = scatter_add(zeros(X), dim, I, dY) (reads dY's I-shaped corner).   I: none.
struct Gather {
    static constexpr std::string_view name = "gather";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    std::size_t dim = 0;
    mutable Saved<std::int64_t> index;
    Shape to{};  // rank 0: the index's shape

    Notation notation() const { return {"gather({0})", "gather({0})", Prec::Atom}; }
    Shape out_shape() const { return to.rank() ? to : index.shape(); }
    Shape shape(Shape x) const {
        detail::check_gather(name, dim, x, index.shape());
        if (to.rank()) detail::check_source(name, to, index.shape());
        return out_shape();
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x, Keep keep) const {
        index = keep.copy(index);
        const Shape xs = x.shape();
        const T* px = x.data();
        T* o = out.data();
        if (out.shape() != index.shape()) out.fill(T(0));
        detail::for_each_indexed(index.shape(), xs, out.shape(), dim,
                                 [&](std::size_t p, std::size_t off, std::size_t st, std::size_t os) {
                                     o[os] = px[off + detail::index_at(name, index, p, xs[dim], dim, xs) * st];
                                 });
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const;
};

// Y = X, then Y[…, I[…, i, …], …] += S[…, i, …] along `dim` (torch.Tensor.scatter_add). S has
// I's rank and at least I's extent on every axis; only its I-shaped corner is read, as torch.
// dX = dY,  dS = gather(dY, dim, I) padded with zeros to S's shape.   I: none.
struct ScatterAdd {
    static constexpr std::string_view name = "scatter_add";
    static constexpr std::size_t arity = 2;
    static constexpr bool any_rank = true;
    std::size_t dim = 0;
    mutable Saved<std::int64_t> index;

    Notation notation() const { return {"scatter_add({0}, {1})", "scatter_add({0}, {1})", Prec::Atom}; }
    Shape shape(Shape x, Shape src) const {
        detail::check_gather(name, dim, x, index.shape());
        detail::check_source(name, src, index.shape());
        return x;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x, const Tensor<T>& src, Keep keep) const {
        index = keep.copy(index);
        const Shape xs = x.shape();
        if (x.size()) std::copy_n(x.data(), x.size(), out.data());
        const T* ps = src.data();
        T* o = out.data();
        detail::for_each_indexed(index.shape(), xs, src.shape(), dim,
                                 [&](std::size_t p, std::size_t off, std::size_t st, std::size_t os) {
                                     o[off + detail::index_at(name, index, p, xs[dim], dim, xs) * st] += ps[os];
                                 });
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&, const V&) const {
        return g;
    }
    template <class V>
    V vjp(In<1>, const V& g, const V&, const V&, const V& src) const {
        const Shape s = src.shape();
        return apply(Gather{dim, index, s == index.shape() ? Shape{} : s}, g);
    }
};

template <class V>
V Gather::vjp(In<0>, const V& g, const V&, const V& x) const {
    return apply(ScatterAdd{dim, index}, apply(ZerosLike{}, x), g);
}

// ---- index_select / index_add ------------------------------------------------------------------

namespace detail {
inline void check_index_select(std::string_view op, std::size_t dim, const Shape& x, const Shape& idx) {
    if (idx.rank() != 1) fail("{}: index {} must have rank 1", op, idx);
    if (dim >= x.rank()) fail("{}: axis {} out of range for {} (rank {})", op, dim, x, x.rank());
}
// The extents before, along and after axis `dim`.
inline std::array<std::size_t, 3> split_at(const Shape& s, std::size_t dim) {
    std::size_t outer = 1, inner = 1;
    for (std::size_t k = 0; k < dim; ++k) outer *= s[k];
    for (std::size_t k = dim + 1; k < s.rank(); ++k) inner *= s[k];
    return {outer, s[dim], inner};
}
inline constexpr std::int64_t kNoSkip = -1;
}  // namespace detail

struct IndexAdd;

// Y = X with axis `dim` replaced by the entries I (torch.index_select)    I: int64, rank 1.
// dX = index_add(zeros(X), dim, I, dY).   With `skip` ≥ 0, entries equal to skip send no gradient
// (embedding's padding_idx); with zero_skipped they also read as 0 (the VJP of index_add).
struct IndexSelect {
    static constexpr std::string_view name = "index_select";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    std::size_t dim = 0;
    mutable Saved<std::int64_t> index;
    std::int64_t skip = detail::kNoSkip;
    bool zero_skipped = false;

    Notation notation() const { return {"index_select({0})", "index_select({0})", Prec::Atom}; }
    Shape shape(Shape x) const {
        detail::check_index_select(name, dim, x, index.shape());
        return x.with(dim, index.size());
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x, Keep keep) const {
        index = keep.copy(index);
        const Shape xs = x.shape();
        const auto [outer, n, inner] = detail::split_at(xs, dim);
        const std::size_t m = index.size();
        for (std::size_t i = 0; i < m; ++i) {
            const std::size_t r = detail::index_at(name, index, i, n, dim, xs);
            const bool zero = zero_skipped && index[i] == skip;
            for (std::size_t o = 0; o < outer; ++o) {
                T* dst = out.data() + (o * m + i) * inner;
                if (zero)
                    std::fill_n(dst, inner, T(0));
                else
                    std::copy_n(x.data() + (o * n + r) * inner, inner, dst);
            }
        }
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& x) const;
};

// Y = X, then Y[…, I[i], …] += S[…, i, …] along `dim` (torch.Tensor.index_add; entries equal to
// `skip` left out).   dX = dY,  dS = index_select(dY, dim, I) (skipped entries read as 0).
struct IndexAdd {
    static constexpr std::string_view name = "index_add";
    static constexpr std::size_t arity = 2;
    static constexpr bool any_rank = true;
    std::size_t dim = 0;
    mutable Saved<std::int64_t> index;
    std::int64_t skip = detail::kNoSkip;

    Notation notation() const { return {"index_add({0}, {1})", "index_add({0}, {1})", Prec::Atom}; }
    Shape shape(Shape x, Shape src) const {
        detail::check_index_select(name, dim, x, index.shape());
        if (src != x.with(dim, index.size()))
            fail("index_add: source {} must be the input {} with axis {} of extent {} (the index's length)", src, x,
                 dim, index.size());
        return x;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x, const Tensor<T>& src, Keep keep) const {
        index = keep.copy(index);
        const Shape xs = x.shape();
        if (x.size()) std::copy_n(x.data(), x.size(), out.data());
        const auto [outer, n, inner] = detail::split_at(xs, dim);
        const std::size_t m = index.size();
        for (std::size_t i = 0; i < m; ++i) {
            const std::size_t r = detail::index_at(name, index, i, n, dim, xs);
            if (index[i] == skip) continue;
            for (std::size_t o = 0; o < outer; ++o) {
                T* dst = out.data() + (o * n + r) * inner;
                const T* s = src.data() + (o * m + i) * inner;
                for (std::size_t j = 0; j < inner; ++j) dst[j] += s[j];
            }
        }
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&, const V&) const {
        return g;
    }
    template <class V>
    V vjp(In<1>, const V& g, const V&, const V&, const V&) const {
        return apply(IndexSelect{dim, index, skip, true}, g);
    }
};

template <class V>
V IndexSelect::vjp(In<0>, const V& g, const V&, const V& x) const {
    return apply(IndexAdd{dim, index, skip}, apply(ZerosLike{}, x), g);
}

// ---- tril / triu -------------------------------------------------------------------------------

// Y = X on and below diagonal k of the last two axes (j − i ≤ k), 0 above (torch.tril), or, Upper,
// on and above it (j − i ≥ k), 0 below (torch.triu).   dX = the same triangle of dY.
template <bool Upper>
struct Triangle {
    static constexpr std::string_view name = Upper ? "triu" : "tril";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{Upper ? "triu({0})" : "tril({0})", Upper ? "triu({0})" : "tril({0})", Prec::Atom};
    std::int64_t diagonal = 0;

    Shape shape(Shape x) const {
        if (x.rank() < 2) fail("{}: {} has rank {}; the triangle needs the last two axes", name, x, x.rank());
        return x;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        const Shape s = x.shape();
        const std::size_t rows = s[s.rank() - 2], cols = s[s.rank() - 1];
        const std::size_t mats = rows * cols == 0 ? 0 : x.size() / (rows * cols);
        for (std::size_t m = 0; m < mats; ++m)
            for (std::size_t i = 0; i < rows; ++i) {
                const std::size_t base = (m * rows + i) * cols;
                for (std::size_t j = 0; j < cols; ++j) {
                    const std::int64_t d = static_cast<std::int64_t>(j) - static_cast<std::int64_t>(i);
                    out[base + j] = (Upper ? d >= diagonal : d <= diagonal) ? x[base + j] : T(0);
                }
            }
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return apply(Triangle{diagonal}, g);
    }
};
using Tril = Triangle<false>;
using Triu = Triangle<true>;

// ---- cross-entropy and embedding with int64 indices ---------------------------------------------

namespace detail {
// The class of position p, or −1 for ignore_index; an Error naming the label and its position.
inline std::ptrdiff_t class_at(const Saved<std::int64_t>& labels, std::size_t p, std::size_t classes,
                               std::int64_t ignore) {
    const std::int64_t v = labels[p];
    if (v == ignore) return -1;
    if (v < 0 || static_cast<std::uint64_t>(v) >= classes)
        fail("softmax_cross_entropy: label {} at position {} of the labels {} is not a class index in [0, {})", v,
             position(labels.shape(), p), labels.shape(), classes);
    return static_cast<std::ptrdiff_t>(v);
}
// class_at as the reader the cross-entropy kernels take (losses.hpp): (p, C) → class or −1.
inline auto labels_of(const Saved<std::int64_t>& labels, std::int64_t ignore) {
    return [&labels, ignore](std::size_t p, std::size_t c) { return class_at(labels, p, c, ignore); };
}
}  // namespace detail

// The targets along the logits' class axis for int64 labels: Y of Z's shape with
// Y[…, label_p, …] = 1 (a zero line where the label is ignore_index); with label smoothing ε,
// (1 − ε)·onehot + ε/C on the lines kept (opt: class_axis, label_smoothing). Data: Y does not
// depend on Z (dZ = 0); Z is an operand only to give the op a place in the graph.
struct OneHotLabels {
    static constexpr std::string_view name = "one_hot_labels";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"onehot(labels)", "onehot(labels)", Prec::Atom};
    mutable Saved<std::int64_t> labels;
    std::int64_t ignore_index = -100;
    CrossEntropyOptions opt = {};  // class_axis and label_smoothing

    Shape shape(Shape z) const {
        detail::check_nd_labels(z, labels.shape(), opt);
        return z;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& z, Keep keep) const {
        labels = keep.copy(labels);
        const CrossEntropyOptions o{.ignore_index = ignore_index, .label_smoothing = opt.label_smoothing,
                                    .class_axis = opt.class_axis};
        detail::cross_entropy_targets<T>(out, z.shape(), o, nullptr, T(1), detail::labels_of(labels, ignore_index));
    }
    template <class V>
    V vjp(In<0>, const V&, const V&, const V& z) const {
        return apply(ZerosLike{}, z);
    }
};

// Y_p = w_p · G (G: rank 0, stretched, or the labels' shape), w_p = [label_p ≠ ignore_index],
// divided by Σ w for the mean: a cross-entropy's weights applied to its adjoint. Y: the labels'
// shape.   dG = w ⊙ dY (summed back to G's shape).
struct LabelWeight {
    static constexpr std::string_view name = "label_weight";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"w ⊙ {0}", "w * {0}", Prec::Product};
    mutable Saved<std::int64_t> labels;
    CrossEntropyOptions opt;

    Shape shape(Shape g) const {
        if (g.numel() != 1 && g != labels.shape())
            fail("label_weight: adjoint {} is neither a scalar nor the labels' shape {}", g, labels.shape());
        return labels.shape();
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& g, Keep keep) const {
        labels = keep.copy(labels);
        std::size_t kept = 0;
        for (std::size_t p = 0; p < labels.size(); ++p) kept += labels[p] != opt.ignore_index;
        const T scale = opt.reduction == Reduction::mean ? T(1) / static_cast<T>(kept) : T(1);
        const bool one = g.size() == 1;
        for (std::size_t p = 0; p < out.size(); ++p)
            out[p] = labels[p] != opt.ignore_index ? scale * g[one ? 0 : p] : T(0);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return apply(LabelWeight{labels, opt}, g);
    }
};

// softmax_cross_entropy with int64 labels (torch.nn.functional.cross_entropy): at each position p
// whose label k is not ignore_index, L_p = log Σ_c exp(Z[…, c, …]) − Z[…, k, …], with label
// smoothing ε (1 − ε)·that + (ε/C)·Σ_c (log Σ exp(Z) − Z[…, c, …]); mean over the positions kept,
// sum, or none (the labels' shape). Z: (N, C, d1, …, dk) or (C), classes on opt.class_axis;
// labels: Z without the class axis (or (N×1) for (N, C) logits).
// dZ = (softmax_C(Z) − y) ⊙ (w ⊙ dL) (stretched over C), y = (1 − ε)·onehot_C(labels) + ε/C
// (OneHotLabels), w = [label kept] (÷ the count for mean; LabelWeight).   labels: none.
struct CrossEntropyLabels {
    static constexpr std::string_view name = "cross_entropy_labels";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"CE({0}, labels)", "CE({0}, labels)", Prec::Atom};
    mutable Saved<std::int64_t> labels;
    CrossEntropyOptions opt;

    Shape shape(Shape z) const {
        detail::check_nd_labels(z, labels.shape(), opt);
        detail::check_smoothing(opt.label_smoothing);
        return opt.reduction == Reduction::none ? labels.shape() : Shape{};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& z, Keep keep) const {
        labels = keep.copy(labels);
        detail::cross_entropy_forward<T>(out, z, detail::labels_of(labels, opt.ignore_index), nullptr, opt);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& z) const {
        const Shape zs = z.shape();
        const std::size_t a = detail::class_axis(zs, opt);
        const V gw = apply(Reshape{zs.with(a, 1)}, apply(LabelWeight{labels, opt}, g));
        const V diff = apply(Sub{}, apply(Softmax{static_cast<std::ptrdiff_t>(a)}, z),
                             apply(OneHotLabels{labels, opt.ignore_index, opt}, z));
        return apply(Mul{}, diff, gw);
    }
};

// The weighted cross-entropy's targets for int64 labels: q[…, c, …] = s·((1 − ε)·w_k·[c = k] +
// (ε/C)·w_c) on each kept line (label k), zero lines where ignored; s = 1 / Σ_p w_k for the mean,
// else 1. Input: the class weights (C); output: the logits' shape `to`. Data, not differentiable.
struct LabelTargets {
    static constexpr std::string_view name = "label_targets";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"q(labels, {0})", "q(labels, {0})", Prec::Atom};
    mutable Saved<std::int64_t> labels;
    Shape to;
    CrossEntropyOptions opt;

    Shape shape(Shape weight) const {
        detail::check_nd_labels(to, labels.shape(), opt);
        detail::check_class_weights(to, weight, opt);
        return to;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& weight, Keep keep) const {
        labels = keep.copy(labels);
        const auto label = detail::labels_of(labels, opt.ignore_index);
        const std::size_t c = to[detail::class_axis(to, opt)];
        const T s = opt.reduction == Reduction::mean
                        ? 1 / detail::cross_entropy_denominator<T>(labels.size(), c, weight.data(), label)
                        : T(1);
        detail::cross_entropy_targets<T>(out, to, opt, weight.data(), s, label);
    }
};

// softmax_cross_entropy with int64 labels and torch's per-class `weight` (C), with label
// smoothing and ignore_index as CrossEntropyLabels: L_p = −Σ_c y_pc·log softmax(Z_p)_c,
// y_pc = (1 − ε)·w_k·[c = k] + (ε/C)·w_c (label k kept); mean: Σ_p L_p / Σ_p w_k.
// dZ = (softmax_C(Z) ⊙ Σ_c q − q) ⊙ dL   (q: LabelTargets; dL stretched over C).
// labels, weight: none (data, as torch's weight has no gradient here).
struct CrossEntropyLabelsWeighted {
    static constexpr std::string_view name = "cross_entropy_labels_weighted";
    static constexpr std::size_t arity = 2;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"CE_w({0}, labels, {1})", "CE_w({0}, labels, {1})", Prec::Atom};
    mutable Saved<std::int64_t> labels;
    CrossEntropyOptions opt;

    Shape shape(Shape z, Shape weight) const {
        detail::check_nd_labels(z, labels.shape(), opt);
        detail::check_smoothing(opt.label_smoothing);
        detail::check_class_weights(z, weight, opt);
        return opt.reduction == Reduction::none ? labels.shape() : Shape{};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& z, const Tensor<T>& weight, Keep keep) const {
        labels = keep.copy(labels);
        detail::cross_entropy_forward<T>(out, z, detail::labels_of(labels, opt.ignore_index), weight.data(), opt);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& z, const V& weight) const {
        return detail::weighted_cross_entropy_grad(g, z, apply(LabelTargets{labels, z.shape(), opt}, weight), opt);
    }
};

// ---- the functions users call ------------------------------------------------------------------

// torch.gather(x, dim, index): Y[…, i, …] = X[…, index[…, i, …], …] along dim; index (int64)
// has x's rank and fits in x along the other axes; Y has index's shape.
template <Value V>
V gather(const V& x, std::ptrdiff_t dim, const IndexTensor& index, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape s = x.shape();
    const IndexTensor d = detail::dense_data(index);
    return apply(Gather{detail::axis_of("gather", dim, s.rank(), s), Saved<std::int64_t>::of(d)}, x);
}
// x.scatter_add(dim, index, src) (out of place): x with src's entries added at the indexed places
// along dim; src has index's rank and at least its extent on every axis (only the index-shaped
// part of src is used, as torch).
template <Value V>
V scatter_add(const V& x, std::ptrdiff_t dim, const IndexTensor& index, const V& src,
              SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape s = x.shape();
    const IndexTensor d = detail::dense_data(index);
    return apply(ScatterAdd{detail::axis_of("scatter_add", dim, s.rank(), s), Saved<std::int64_t>::of(d)}, x, src);
}
// torch.index_select(x, dim, index): the entries index (int64, rank 1) of axis dim.
template <Value V>
V index_select(const V& x, std::ptrdiff_t dim, const IndexTensor& index, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape s = x.shape();
    const IndexTensor d = detail::dense_data(index);
    return apply(IndexSelect{detail::axis_of("index_select", dim, s.rank(), s), Saved<std::int64_t>::of(d)}, x);
}
// x.index_add(dim, index, src) (out of place): src's slices added to x's entries index of axis dim.
template <Value V>
V index_add(const V& x, std::ptrdiff_t dim, const IndexTensor& index, const V& src,
            SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape s = x.shape();
    const IndexTensor d = detail::dense_data(index);
    return apply(IndexAdd{detail::axis_of("index_add", dim, s.rank(), s), Saved<std::int64_t>::of(d)}, x, src);
}
// torch.tril / torch.triu on the last two axes: entries with j − i ≤ k (tril) or ≥ k (triu) kept.
template <Value V>
V tril(const V& x, std::int64_t diagonal = 0, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Tril{diagonal}, x);
}
template <Value V>
V triu(const V& x, std::int64_t diagonal = 0, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Triu{diagonal}, x);
}
// torch.nn.functional.cross_entropy with int64 class labels (ignore_index, reduction,
// label_smoothing, class_axis as CrossEntropyOptions): mean and sum give rank 0, none the
// labels' shape.
template <Value V>
V softmax_cross_entropy(const V& logits, const IndexTensor& labels, CrossEntropyOptions opt = {},
                        SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const IndexTensor d = detail::dense_data(labels);
    return apply(CrossEntropyLabels{Saved<std::int64_t>::of(d), opt}, logits);
}
// With torch's per-class `weight` (a vector of C, data): each position's loss is scaled by its
// label's weight (the smoothing term by every class's), and the mean divides by the sum of the
// weights of the labels kept.
template <Value V>
V softmax_cross_entropy(const V& logits, const IndexTensor& labels, const V& weight, CrossEntropyOptions opt = {},
                        SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const IndexTensor d = detail::dense_data(labels);
    return apply(CrossEntropyLabelsWeighted{Saved<std::int64_t>::of(d), opt}, logits, weight);
}
// embedding with int64 indices (any shape): rows of weight (num_embeddings, dim); Y: indices'
// shape + (dim). padding_idx's row gets no gradient. An index outside [0, num_embeddings) is an
// Error naming it and its position.
template <Value V>
V embedding(const IndexTensor& indices, const V& weight, std::ptrdiff_t padding_idx = detail::kNoPadding,
            SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape w = weight.shape(), s = indices.shape();
    if (w.rank() != 2) fail("embedding: weight {} must be (num_embeddings, embedding_dim)", w);
    if (s.rank() + 1 > kMaxRank) fail("embedding: indices {} have too many axes", s);
    const auto rows = static_cast<std::ptrdiff_t>(w[0]);
    if (padding_idx != detail::kNoPadding) {
        if (padding_idx < -rows || padding_idx >= rows)
            fail("embedding: padding_idx {} out of range for weight {}", padding_idx, w);
        if (padding_idx < 0) padding_idx += rows;
    }
    const IndexTensor d = detail::dense_data(indices);
    for (std::size_t p = 0; p < d.size(); ++p)
        if (d[p] < 0 || d[p] >= rows)
            fail("embedding: index {} at position {} of the indices {} is not in [0, {})", d[p],
                 detail::position(s, p), s, rows);
    std::array<std::size_t, kMaxRank> out{};
    for (std::size_t k = 0; k < s.rank(); ++k) out[k] = s[k];
    out[s.rank()] = w[1];
    const Saved<std::int64_t> flat = Saved<std::int64_t>::of(d).reshaped(Shape{d.size()});
    const V rows_used = apply(IndexSelect{0, flat, padding_idx == detail::kNoPadding ? detail::kNoSkip : padding_idx}, weight);
    const V y = apply(Reshape{Shape(std::span<const std::size_t>(out.data(), s.rank() + 1))}, rows_used);
    if constexpr (is_tensor<V>::value)  // (a view of the local rows_used would dangle)
        return y.clone(rows_used.resource());
    else
        return y;
}

// ---- data: arange, one_hot, comparisons ---------------------------------------------------------

// torch.arange(start, stop, step): start, start + step, … up to (not including) stop, as T
// (float, double or std::int64_t). The count is ⌈(stop − start)/step⌉; step 0 or of the wrong
// sign is an Error.
template <class T>
Tensor<T> arange(std::type_identity_t<T> start, std::type_identity_t<T> stop, std::type_identity_t<T> step = T(1)) {
    static_assert(!std::is_same_v<T, bool>, "arange: a mask has no range");
    if (step == T(0) || (stop > start && step < T(0)) || (stop < start && step > T(0)))
        fail("arange: step {} cannot go from {} to {}", step, start, stop);
    std::size_t n = 0;
    if constexpr (std::is_integral_v<T>) {
        const std::int64_t span = stop - start;
        n = static_cast<std::size_t>(span == 0 ? 0 : (span + step + (step > 0 ? -1 : 1)) / step);
    } else {
        n = static_cast<std::size_t>(std::max(0.0, std::ceil((static_cast<double>(stop) - static_cast<double>(start)) /
                                                             static_cast<double>(step))));
    }
    Tensor<T> t(Shape{n});
    for (std::size_t i = 0; i < n; ++i) t[i] = static_cast<T>(start + static_cast<T>(i) * step);
    return t;
}
template <class T>
Tensor<T> arange(std::type_identity_t<T> stop) {
    return arange<T>(T(0), stop, T(1));
}

// torch.nn.functional.one_hot: labels (int64, any shape) → labels' shape + (classes) of T, 1 at
// each label. classes −1: one more than the largest label. A label outside [0, classes) is an
// Error naming it and its position. Data (a constant), as in torch.
template <class T = float>
Tensor<T> one_hot(const IndexTensor& labels, std::ptrdiff_t classes = -1) {
    const IndexTensor d = detail::dense_data(labels);
    const Shape s = labels.shape();
    if (classes < 0) {
        std::int64_t m = -1;
        for (std::size_t p = 0; p < d.size(); ++p) m = std::max(m, d[p]);
        classes = static_cast<std::ptrdiff_t>(m + 1);
    }
    if (s.rank() + 1 > kMaxRank) fail("one_hot: labels {} have too many axes", s);
    std::array<std::size_t, kMaxRank> out{};
    for (std::size_t k = 0; k < s.rank(); ++k) out[k] = s[k];
    out[s.rank()] = static_cast<std::size_t>(classes);
    Tensor<T> t(Shape(std::span<const std::size_t>(out.data(), s.rank() + 1)));
    for (std::size_t p = 0; p < d.size(); ++p) {
        if (d[p] < 0 || d[p] >= classes)
            fail("one_hot: label {} at position {} of the labels {} is not a class in [0, {})", d[p],
                 detail::position(s, p), s, classes);
        t[p * static_cast<std::size_t>(classes) + static_cast<std::size_t>(d[p])] = T(1);
    }
    return t;
}

namespace detail {
// f(a, b) elementwise over a and b broadcast together, into a mask.
template <class A, class B, class F>
MaskTensor compare(std::string_view op, const Tensor<A>& a, const Tensor<B>& b, F f) {
    const Tensor<A> da = dense_data(a);
    const Tensor<B> db = dense_data(b);
    const Shape sa = a.shape(), sb = b.shape();
    const Shape so = broadcast_shape(op, sa, sb);
    MaskTensor out(so);
    if (so.empty()) return out;
    const auto L = plan_loop<3>(so, {&so, &sa, &sb});
    bool* o = out.data();
    const A* pa = da.data();
    const B* pb = db.data();
    run_loop(L, [&](const std::array<std::int64_t, 3>& off, std::size_t n, const std::array<std::int64_t, 3>& in) {
        for (std::size_t j = 0; j < n; ++j) {
            const auto s = static_cast<std::int64_t>(j);
            o[off[0] + s * in[0]] = f(pa[off[1] + s * in[1]], pb[off[2] + s * in[2]]);
        }
    });
    return out;
}
template <class A, class F>
MaskTensor compare_scalar(const Tensor<A>& a, F f) {
    const Tensor<A> da = dense_data(a);
    MaskTensor out(a.shape());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = f(da[i]);
    return out;
}
template <class T>
concept Comparable = std::is_floating_point_v<T> || std::is_same_v<T, std::int64_t>;
}  // namespace detail

// Comparisons of value and index tensors (and of a Var's value) give masks: x > 0, x == y (x and
// y broadcast together). Masks combine with !, & and |.
template <detail::Comparable T>
MaskTensor operator>(const Tensor<T>& a, std::type_identity_t<T> c) {
    return detail::compare_scalar(a, [c](T v) { return std::greater<>{}(v, c); });
}
template <detail::Comparable T>
MaskTensor operator>(const Tensor<T>& a, const Tensor<T>& b) {
    return detail::compare(">", a, b, std::greater<>{});
}
template <class T>
MaskTensor operator>(const Var<T>& a, std::type_identity_t<T> c) {
    return a.value() > c;
}
template <detail::Comparable T>
MaskTensor operator<(const Tensor<T>& a, std::type_identity_t<T> c) {
    return detail::compare_scalar(a, [c](T v) { return std::less<>{}(v, c); });
}
template <detail::Comparable T>
MaskTensor operator<(const Tensor<T>& a, const Tensor<T>& b) {
    return detail::compare("<", a, b, std::less<>{});
}
template <class T>
MaskTensor operator<(const Var<T>& a, std::type_identity_t<T> c) {
    return a.value() < c;
}
template <detail::Comparable T>
MaskTensor operator>=(const Tensor<T>& a, std::type_identity_t<T> c) {
    return detail::compare_scalar(a, [c](T v) { return std::greater_equal<>{}(v, c); });
}
template <detail::Comparable T>
MaskTensor operator>=(const Tensor<T>& a, const Tensor<T>& b) {
    return detail::compare(">=", a, b, std::greater_equal<>{});
}
template <class T>
MaskTensor operator>=(const Var<T>& a, std::type_identity_t<T> c) {
    return a.value() >= c;
}
template <detail::Comparable T>
MaskTensor operator<=(const Tensor<T>& a, std::type_identity_t<T> c) {
    return detail::compare_scalar(a, [c](T v) { return std::less_equal<>{}(v, c); });
}
template <detail::Comparable T>
MaskTensor operator<=(const Tensor<T>& a, const Tensor<T>& b) {
    return detail::compare("<=", a, b, std::less_equal<>{});
}
template <class T>
MaskTensor operator<=(const Var<T>& a, std::type_identity_t<T> c) {
    return a.value() <= c;
}
template <detail::Comparable T>
MaskTensor operator==(const Tensor<T>& a, std::type_identity_t<T> c) {
    return detail::compare_scalar(a, [c](T v) { return std::equal_to<>{}(v, c); });
}
template <detail::Comparable T>
MaskTensor operator==(const Tensor<T>& a, const Tensor<T>& b) {
    return detail::compare("==", a, b, std::equal_to<>{});
}
template <class T>
MaskTensor operator==(const Var<T>& a, std::type_identity_t<T> c) {
    return a.value() == c;
}
template <detail::Comparable T>
MaskTensor operator!=(const Tensor<T>& a, std::type_identity_t<T> c) {
    return detail::compare_scalar(a, [c](T v) { return std::not_equal_to<>{}(v, c); });
}
template <detail::Comparable T>
MaskTensor operator!=(const Tensor<T>& a, const Tensor<T>& b) {
    return detail::compare("!=", a, b, std::not_equal_to<>{});
}
template <class T>
MaskTensor operator!=(const Var<T>& a, std::type_identity_t<T> c) {
    return a.value() != c;
}

inline MaskTensor operator!(const MaskTensor& m) {
    return detail::compare_scalar(m, [](bool v) { return !v; });
}
inline MaskTensor operator&(const MaskTensor& a, const MaskTensor& b) {
    return detail::compare("&", a, b, [](bool u, bool v) { return u && v; });
}
inline MaskTensor operator|(const MaskTensor& a, const MaskTensor& b) {
    return detail::compare("|", a, b, [](bool u, bool v) { return u || v; });
}

}  // namespace tapegrad
