// The op protocol: how an operation is declared, and how one declaration serves three readings.
//
// An op is a small struct:
//
//   struct Mul {
//       static constexpr std::string_view name = "mul";
//       static constexpr std::size_t arity = 2;
//       static constexpr Notation notation{"{0} ⊙ {1}", "{0} * {1}", Prec::Product};  // optional
//       Shape shape(Shape a, Shape b) const;                         // checks, throws Error
//       template <class T> void forward(Tensor<T>& out, const Tensor<T>& a, const Tensor<T>& b) const;
//       // C = A ⊙ B:  dA = dC ⊙ B,  dB = dC ⊙ A
//       template <class V> V vjp(In<0>, const V& g, const V& y, const V& a, const V& b) const { return g * b; }
//       template <class V> V vjp(In<1>, const V& g, const V& y, const V& a, const V& b) const { return g * a; }
//   };
//
// `forward` writes every element of `out` (already shaped by `shape`). Each `vjp(In<i>, g, y, x…)`
// returns the adjoint contribution for input i given the output's adjoint g, the output y and
// the inputs, written with the engine's own functions so that V may be a Tensor (numeric
// reading), a Var (recorded reading: gradients of gradients) or a Sym (symbolic reading:
// explain()). An input with no vjp is not differentiable. A VJP may return the adjoint in the
// output's broadcast shape; the engine sums it back to the input's shape.
//
// Data for the VJPs: a forward kernel that takes a last parameter `Keep keep` may keep arrays
// (indices, an argmax, a mask, statistics) in the tape's arena, in `mutable Saved<U>` members
// that the VJPs read; the engine copies the op into the node after forward has run. Index and
// mask tensors a user passes (gather's index, where's condition) travel the same way:
// Saved<U>::of(tensor) in the op, Keep::copy in forward. See saved.hpp.
//
// A view op declares `Tensor<T> view(const Tensor<T>& x…) const` instead of forward: it returns
// a tensor aliasing its input (ops/views.hpp), and `static constexpr bool strided = true;` says
// that it takes strided inputs. Every other op's forward and VJPs receive contiguous tensors.
//
// Optionally, an op may also write a VJP into storage it is given, for the numeric sweep:
//
//   template <class T> void vjp_into(In<i>, Tensor<T>& dst, bool add, g, y, x…) const;
//
// dst has input i's shape; the op sets dst = vjp (add = false; dst's old contents must not be
// read: they may be garbage) or dst += vjp (add = true). MatMul and Affine do, with one GEMM
// (β = 0 or 1): no temporary, and a parameter's gradient goes straight into its GradBuffer.
// vjp_into must agree with vjp (tests/test_grad_buffer.cpp checks the library's), which stays
// the definition every reading uses.
//
// Rank: an op whose shape rule and kernel hold at every rank says so,
//
//   static constexpr bool any_rank = true;
//
// (elementwise ops, the broadcasting engine ops, full reductions). Any other op is a 2-D op:
// an input of rank ≥ 3 is an Error naming the op and the shape, never a silently wrong result
// from a kernel that reads rows() × cols(). Inputs of rank 0 and 1 read as 1×1 and 1×n.
// A member named `vjp` that no call of the expected form reaches (`y` left out, the member not
// const, parameters taken by non-const reference) is a compile-time error naming the expected
// signature where the op is recorded, not a silent "no VJP" (check_vjp_signatures below).
//
// `apply(op, x…)` runs an op in whichever reading its operands belong to. Built-in ops and
// user ops are declared identically; nothing in core/ knows any op of ops/ by name.
#pragma once

#include <concepts>
#include <cstddef>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

#include <tapegrad/core/saved.hpp>
#include <tapegrad/core/sym.hpp>
#include <tapegrad/core/tensor.hpp>

namespace tapegrad {

// Tag that selects the VJP of input I.
template <std::size_t I>
struct In {
    static constexpr std::size_t index = I;
};

template <class T>
class Var;
template <class T>
class Tape;

template <class V>
struct is_tensor : std::false_type {};
template <class T>
struct is_tensor<Tensor<T>> : std::true_type {};
template <class V>
struct is_var : std::false_type {};
template <class T>
struct is_var<Var<T>> : std::true_type {};

// Whether V is a tensor of values (float or double) — not an index or mask tensor.
template <class V>
struct is_value_tensor : std::false_type {};
template <class T>
struct is_value_tensor<Tensor<T>> : std::is_floating_point<T> {};

// The three kinds of value an op runs on. (Index and mask tensors are not values: ops take them
// as parameters, index.hpp.)
template <class V>
concept Value = is_value_tensor<V>::value || is_var<V>::value || std::same_as<V, Sym>;

namespace detail {

template <class Op, class V, std::size_t I, std::size_t... J>
constexpr bool has_vjp(std::index_sequence<J...>) {
    return requires(const Op& op, const V& v) { op.vjp(In<I>{}, v, v, ((void)J, v)...); };
}

template <class Op>
concept HasNotation = requires(const Op& op) { op.notation(); } || requires { Op::notation; };

template <class Op>
constexpr Notation notation_of(const Op& op) {
    if constexpr (requires { op.notation(); })
        return op.notation();
    else
        return Op::notation;
}

}  // namespace detail

// Whether op Op has a VJP for input I (on values of type V).
template <class Op, class V, std::size_t I>
inline constexpr bool has_vjp_v = detail::has_vjp<Op, V, I>(std::make_index_sequence<Op::arity>{});

// Whether Op's kernel takes strided inputs as they are (view ops); others get contiguous ones.
template <class Op>
inline constexpr bool strided_v = requires { requires Op::strided; };

// Whether Op takes inputs of every rank (see above).
template <class Op>
inline constexpr bool any_rank_v = requires { requires Op::any_rank; };

// Error for a 2-D op given an input of rank ≥ 3.
[[noreturn, gnu::cold]] inline void rank_error(std::string_view op, std::size_t input, const Shape& s) {
    fail("{}: input {} has shape {} of rank {}; this op takes tensors of rank ≤ 2", op, input, s, s.rank());
}
template <class Op, class... S>
void check_rank(const S&... s) {
    if constexpr (!any_rank_v<Op>) {
        std::size_t i = 0;
        ((s.rank() > 2 ? rank_error(Op::name, i, s.shape()) : void(++i)), ...);
    }
}

namespace detail {
// Whether Op declares a member named `vjp` of any kind or signature: in a class derived from
// Op and from one that has a data member `vjp`, the name is ambiguous exactly when Op has one.
struct VjpProbe {
    int vjp;
};
template <class Op>
struct VjpLookup : Op, VjpProbe {};
template <class Op>
concept DeclaresVjp = std::is_class_v<Op> && !std::is_final_v<Op> && !requires { &VjpLookup<Op>::vjp; };

template <class Op, class V, std::size_t I, std::size_t... J>
constexpr void check_vjp_signature(std::index_sequence<J...>) {
    constexpr bool ok = has_vjp_v<Op, V, I>;
    static_assert(ok || !requires(Op& op, const V& v) { op.vjp(In<I>{}, v, v, ((void)J, v)...); },
                  "op protocol: this op's vjp for In<i> is not a const member function; expected "
                  "`template <class V> V vjp(In<i>, const V& g, const V& y, const V& x0, ...) const`");
    static_assert(ok || !requires(const Op& op, V& v) { op.vjp(In<I>{}, v, v, ((void)J, v)...); },
                  "op protocol: this op's vjp for In<i> takes non-const references; expected "
                  "`template <class V> V vjp(In<i>, const V& g, const V& y, const V& x0, ...) const`");
    static_assert(ok || !requires(const Op& op, const V& v) { op.vjp(In<I>{}, v, ((void)J, v)...); },
                  "op protocol: this op's vjp for In<i> leaves out the output y; expected "
                  "`template <class V> V vjp(In<i>, const V& g, const V& y, const V& x0, ...) const` "
                  "(g: the output's adjoint, y: the output, then every input)");
}

// Compile-time diagnosis of near misses of the VJP protocol (see the top of this file).
template <class Op, class V>
constexpr void check_vjp_signatures() {
    constexpr bool any = []<std::size_t... I>(std::index_sequence<I...>) {
        return (has_vjp_v<Op, V, I> || ...);
    }(std::make_index_sequence<Op::arity>{});
    []<std::size_t... I>(std::index_sequence<I...>) {
        (check_vjp_signature<Op, V, I>(std::make_index_sequence<Op::arity>{}), ...);
    }(std::make_index_sequence<Op::arity>{});
    static_assert(any || !DeclaresVjp<Op>,
                  "op protocol: this op declares a member named vjp, but it cannot be called as a VJP of any "
                  "input; expected `template <class V> V vjp(In<i>, const V& g, const V& y, const V& x0, ..., "
                  "const V& x{arity-1}) const` (g: the output's adjoint, y: the output, then every input)");
}
}  // namespace detail

// Whether Op declares a member named vjp at all (whatever its signature).
template <class Op>
inline constexpr bool declares_vjp_v = detail::DeclaresVjp<Op>;

// Minimal requirements on an op type; checked where an op is applied, with a readable error.
template <class Op>
concept OpType = requires(const Op& op) {
    { Op::name } -> std::convertible_to<std::string_view>;
    { Op::arity } -> std::convertible_to<std::size_t>;
} && std::is_trivially_destructible_v<Op> && std::is_copy_constructible_v<Op>;

// The symbolic reading of an op applied to Syms.
template <OpType Op, class... S>
Sym apply_symbolic(const Op& op, const S&... a) {
    Shape out = op.shape(a.shape()...);
    if constexpr (requires { op.simplify(a...); }) {
        if (std::optional<Sym> s = op.simplify(a...)) {
            s->dims = out;
            return *std::move(s);
        }
    }
    if constexpr (detail::HasNotation<Op>)
        return render(detail::notation_of(op), {&a...}, out);
    else
        return render_call(Op::name, {&a...}, out);
}

namespace detail {
// A contiguous tensor with x's values: a view of x itself, or a gathered copy of a strided view.
template <class T>
Tensor<T> dense(const Tensor<T>& x) {
    if (x.is_contiguous()) return Tensor<T>::view(const_cast<T*>(x.data()), x.shape(), x.resource());
    return x.clone(x.resource());
}
}  // namespace detail

// The numeric reading: run the kernel, allocating the result where the first operand lives.
template <OpType Op, class T, class... Ts>
Tensor<T> apply(const Op& op, const Tensor<T>& a, const Ts&... rest) {
    static_assert(sizeof...(Ts) + 1 == Op::arity, "wrong number of operands for this op");
    static_assert((std::same_as<Ts, Tensor<T>> && ...), "operands of one op share one tensor type");
    check_rank<Op>(a, rest...);
    if constexpr (requires { op.view(a, rest...); }) {  // a view op: its result aliases a
        (void)op.shape(a.shape(), rest.shape()...);
        return op.view(a, rest...);
    } else {
        if constexpr (!strided_v<Op>)
            if (!(a.is_contiguous() && (rest.is_contiguous() && ...))) [[unlikely]]  // kernels read flat
                return apply(op, detail::dense(a), detail::dense(rest)...);
        Shape s = op.shape(a.shape(), rest.shape()...);
        Tensor<T> out = Tensor<T>::uninit_like(s, a);
        if constexpr (keeps_v<Op, T, Tensor<T>, Ts...>) {
            if (out.in_arena()) {  // inside a sweep: the data lives with the tape's arena
                op.forward(out, a, rest..., Keep(*static_cast<Arena*>(out.resource())));
            } else {  // plain tensors: no VJP will run; the kept data is scratch for this call
                Arena scratch(4096);
                op.forward(out, a, rest..., Keep(scratch));
            }
        } else {
            op.forward(out, a, rest...);
        }
        return out;
    }
}

template <OpType Op, class... S>
    requires(std::same_as<S, Sym> && ...)
Sym apply(const Op& op, const Sym& a, const S&... rest) {
    static_assert(sizeof...(S) + 1 == Op::arity, "wrong number of operands for this op");
    return apply_symbolic(op, a, rest...);
}

// The recorded reading (apply on Vars) is defined in tape.hpp.

}  // namespace tapegrad
