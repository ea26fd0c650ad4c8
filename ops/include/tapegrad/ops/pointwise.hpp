// Unary pointwise ops as rows of a table (STYLE §8, §14): a row states f, its derivative as a
// scalar and as ops, and Pointwise<Row> derives the op — forward (one loop, o = f(x)), vjp
// (dY ⊙ f′, or dY ⊘ 1/f′, in ops: every reading) and vjp_into (the same VJP in one pass into
// the adjoint, through write_broadcast_vjp with the scalar form). A row:
//
//   // Y = tanh(X).  dX = dY ⊙ tanh′(X).
//   struct TanhDef {
//       static constexpr std::string_view name = "tanh";
//       static constexpr Notation notation{"tanh({0})", "tanh({0})", Prec::Atom};
//       template <class T> static T f(T x) { return std::tanh(x); }
//       template <class T> static T df(T x) { return detail::stable_tanh_grad(x); }
//       template <class V> static V df_op(const V& x, const V&) { return apply(TanhGrad{}, x); }
//   };
//   using Tanh = Pointwise<TanhDef>;
//
// f is the value, df the scalar f′ (for vjp_into), df_op f′ written with ops (for vjp: tensors,
// Vars and symbols alike).
// Optional members of a row:
//   `static constexpr Of of = Of::Y;`            df reads the output (exp: f′ = Y; sqrt: 1/f′ = 2Y)
//   `static constexpr Chain chain = Chain::Over;` dX = dY ⊘ df, df stating 1/f′ (sqrt, log)
//   `static constexpr bool flat = true;`          f′ = 0 wherever it exists (relu′, sign): dX = 0,
//                                                 and no f′ to state
//   parameters (`double slope = 0.01;`): then f, df and df_op are const members; `Op{0.1}` works
//   `simplify(const Sym&)` in place of notation (pow prints its exponent)
// df_op receives (X, Y) whatever `of` says (σ″ reuses Y = σ′(X) while df recomputes it from X);
// it may return std::optional<V>, nullopt meaning f′ = 1 (dX is dY itself: pow 1).
//
// df and df_op must state the same numbers in the same order of operations: vjp_into then
// writes bitwise what vjp's ops compute (tests/test_grad_buffer.cpp checks that they agree).
#pragma once

#include <cstddef>
#include <optional>
#include <type_traits>

#include <tapegrad/core/broadcast.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/reductions.hpp>

namespace tapegrad {

namespace pointwise {
enum class Of { X, Y };            // what df reads: the input X or the output Y
enum class Chain { Times, Over };  // dX = dY ⊙ df, or dX = dY ⊘ df
}  // namespace pointwise

namespace detail {
template <class O>
struct is_optional : std::false_type {};
template <class O>
struct is_optional<std::optional<O>> : std::true_type {};
}  // namespace detail

template <class Def>
struct Pointwise : Def {
    using Of = pointwise::Of;
    using Chain = pointwise::Chain;
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;  // elementwise: every rank

    static constexpr bool flat = [] {
        if constexpr (requires { Def::flat; })
            return Def::flat;
        else
            return false;
    }();
    static constexpr Of of = [] {
        if constexpr (requires { Def::of; })
            return Def::of;
        else
            return Of::X;
    }();
    static constexpr Chain chain = [] {
        if constexpr (requires { Def::chain; })
            return Def::chain;
        else
            return Chain::Times;
    }();

    Shape shape(Shape x) const { return x; }

    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        const Def d = *this;  // a local copy: its parameters stay in registers across the loop
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = d.f(x[i]);
    }

    template <class V>
    V vjp(In<0>, const V& g, const V& y, const V& x) const {
        if constexpr (flat) {
            return apply(ZerosLike{}, g);
        } else {
            decltype(auto) d = this->df_op(x, y);  // (a reference when df_op passes X or Y through)
            if constexpr (detail::is_optional<std::remove_cvref_t<decltype(d)>>::value) {
                if (!d) return g;  // f′ = 1
                return times(g, *d);
            } else {
                return times(g, d);
            }
        }
    }

    // The same VJP in one pass into the adjoint (op.hpp): no f′ temporary.
    template <class T>
    void vjp_into(In<0>, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>& y,
                  const Tensor<T>& x) const requires(!flat) {
        const Def d = *this;
        const Tensor<T>& v = of == Of::Y ? y : x;
        if constexpr (chain == Chain::Over)
            write_broadcast_vjp(dst, add, g, v, [d](T u, T w) { return u / d.df(w); });
        else
            write_broadcast_vjp(dst, add, g, v, [d](T u, T w) { return u * d.df(w); });
    }

private:
    template <class V>
    static V times(const V& g, const V& d) {
        if constexpr (chain == Chain::Over)
            return apply(Div{}, g, d);
        else
            return apply(Mul{}, g, d);
    }
};

}  // namespace tapegrad
