// where and masked_fill with a boolean mask (MaskTensor), and mask_keep, the VJP they share.
// The T-valued forms of transformer.hpp (a 0/1 tensor of T as the condition) convert their
// tensor to a mask and record these ops: one kernel per op.
//
// VJP pairs: where / masked_fill ↔ mask_keep (g where the mask holds, 0 elsewhere).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include <tapegrad/core/broadcast.hpp>
#include <tapegrad/core/engine_ops.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/saved.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>
#include <tapegrad/ops/index_types.hpp>

namespace tapegrad {

// ---- where / masked_fill with a boolean mask ----------------------------------------------------

// Y = G where M = `when`, 0 elsewhere (M: bool, broadcast with G; Y: the broadcast shape).
// dG = dY where M = `when`, 0 elsewhere (summed back to G's shape by the engine).
struct MaskKeep {
    static constexpr std::string_view name = "mask_keep";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    mutable Saved<bool> mask;
    bool when = true;

    Notation notation() const {
        return when ? Notation{"[M]⊙{0}", "[M]*{0}", Prec::Product} : Notation{"[¬M]⊙{0}", "[!M]*{0}", Prec::Product};
    }
    Shape shape(Shape g) const { return broadcast_shape("where", mask.shape(), g); }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& g, Keep keep) const {
        mask = keep.copy(mask);
        const Shape so = out.shape(), sm = mask.shape(), sg = g.shape();
        const auto L = detail::plan_loop<3>(so, {&so, &sm, &sg});
        T* o = out.data();
        const bool* pm = mask.data();
        const T* pg = g.data();
        const bool w = when;
        detail::run_loop(L, [&](const std::array<std::int64_t, 3>& off, std::size_t n, const std::array<std::int64_t, 3>& in) {
            for (std::size_t j = 0; j < n; ++j) {
                const auto s = static_cast<std::int64_t>(j);
                o[off[0] + s * in[0]] = pm[off[1] + s * in[1]] == w ? pg[off[2] + s * in[2]] : T(0);
            }
        });
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return apply(MaskKeep{mask, when}, g);
    }
};

// Y = C ? A : B elementwise (torch.where), C: bool; C, A and B broadcast together.
// dA = dY where C, dB = dY where ¬C (each summed back to its input's shape).   C: none.
struct WhereMask {
    static constexpr std::string_view name = "where_mask";
    static constexpr std::size_t arity = 2;
    static constexpr bool any_rank = true;
    mutable Saved<bool> cond;

    Notation notation() const { return {"where(C, {0}, {1})", "where(C, {0}, {1})", Prec::Atom}; }
    Shape shape(Shape a, Shape b) const {
        return broadcast_shape("where", broadcast_shape("where", cond.shape(), a), b);
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& a, const Tensor<T>& b, Keep keep) const {
        cond = keep.copy(cond);
        const Shape so = out.shape(), sc = cond.shape(), sa = a.shape(), sb = b.shape();
        const auto L = detail::plan_loop<4>(so, {&so, &sc, &sa, &sb});
        T* o = out.data();
        const bool* pc = cond.data();
        const T *pa = a.data(), *pb = b.data();
        detail::run_loop(L, [&](const std::array<std::int64_t, 4>& off, std::size_t n, const std::array<std::int64_t, 4>& in) {
            for (std::size_t j = 0; j < n; ++j) {
                const auto s = static_cast<std::int64_t>(j);
                o[off[0] + s * in[0]] = pc[off[1] + s * in[1]] ? pa[off[2] + s * in[2]] : pb[off[3] + s * in[3]];
            }
        });
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&, const V&) const {
        return apply(MaskKeep{cond, true}, g);
    }
    template <class V>
    V vjp(In<1>, const V& g, const V&, const V&, const V&) const {
        return apply(MaskKeep{cond, false}, g);
    }
};

// Y = X with `value` where M (M: bool, broadcast to X's shape; torch.Tensor.masked_fill).
// dX = dY where ¬M: no gradient flows into the filled places.
struct MaskedFillMask {
    static constexpr std::string_view name = "masked_fill_mask";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    mutable Saved<bool> mask;
    double value = 0;

    std::optional<Sym> simplify(const Sym& x) const {
        const std::string v = fmt::format("{:g}", value);
        return Sym(fmt::format("masked_fill({}, M, {})", x.str(false), v),
                   fmt::format("masked_fill({}, M, {})", x.str(true), v), Prec::Atom, x.shape());
    }
    Shape shape(Shape x) const {
        if (!broadcastable(mask.shape(), x)) fail("masked_fill: mask {} does not broadcast to {}", mask.shape(), x);
        return x;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x, Keep keep) const {
        mask = keep.copy(mask);
        const Shape so = out.shape(), sm = mask.shape();
        const auto L = detail::plan_loop<3>(so, {&so, &sm, &so});
        T* o = out.data();
        const bool* pm = mask.data();
        const T* px = x.data();
        const T v = static_cast<T>(value);
        detail::run_loop(L, [&](const std::array<std::int64_t, 3>& off, std::size_t n, const std::array<std::int64_t, 3>& in) {
            for (std::size_t j = 0; j < n; ++j) {
                const auto s = static_cast<std::int64_t>(j);
                o[off[0] + s * in[0]] = pm[off[1] + s * in[1]] ? v : px[off[2] + s * in[2]];
            }
        });
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return apply(MaskKeep{mask, false}, g);
    }
};

namespace detail {
// A mask from a tensor of T that must hold only 0 and 1 (where / masked_fill's T-valued forms):
// true where it holds 1 (or, with `invert`, where it holds 0); any other value is an Error
// naming the op, the tensor, the value and its (flat) position.
template <class T>
MaskTensor mask_of(std::string_view op, std::string_view what, const Tensor<T>& t, bool invert = false) {
    const Tensor<T> d = dense_data(t);
    MaskTensor m(t.shape());
    for (std::size_t i = 0; i < d.size(); ++i) {
        if (d[i] != T(0) && d[i] != T(1))
            fail("{}: {} {} holds {} at position {}; it must hold only 0 and 1", op, what, t.shape(), d[i], i);
        m[i] = (d[i] == T(1)) != invert;
    }
    return m;
}
}  // namespace detail

// torch.where(cond, a, b) with a boolean condition; cond, a and b broadcast together.
template <Value V>
V where(const MaskTensor& cond, const V& a, const V& b, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const MaskTensor d = detail::dense_data(cond);
    return apply(WhereMask{Saved<bool>::of(d)}, a, b);
}
// x with `value` where mask (bool, broadcast to x's shape).
template <Value V>
V masked_fill(const V& x, const MaskTensor& mask, double value, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const MaskTensor d = detail::dense_data(mask);
    return apply(MaskedFillMask{Saved<bool>::of(d), value}, x);
}
}  // namespace tapegrad
