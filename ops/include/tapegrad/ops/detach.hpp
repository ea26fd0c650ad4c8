// detach(x) / stop_gradient(x): the value of x, through which no gradient flows back.
//
//   y = x            ∂y/∂x taken as 0: the reverse sweep never enters y, in any reading
//
// PyTorch's x.detach() and JAX's lax.stop_gradient(x). On a tape, y is a node whose value is x's
// own storage (no copy) and which requires no gradient, so everything computed from y alone is
// a constant for backward(); in the recorded reading (create_graph) a gradient that contains y
// holds it as a constant too, so second derivatives see the stop. explain() writes it as
// detach(X) or sg(X). On tensors it returns a view of x (same storage, as torch's detach).
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/tape.hpp>

namespace tapegrad {

namespace detail {
// An identity with no VJP. Only Tape::record_alias records it (a node whose value is a view);
// forward is used when the op runs on plain tensors through apply().
template <class Self>
struct StopOp {
    static constexpr std::size_t arity = 1;
    Shape shape(Shape a) const { return a; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& a) const {
        std::copy_n(a.data(), a.size(), out.data());
    }
};
}  // namespace detail

struct Detach : detail::StopOp<Detach> {
    static constexpr std::string_view name = "detach";
    static constexpr Notation notation{"detach({0})", "detach({0})", Prec::Atom};
};
struct StopGradient : detail::StopOp<StopGradient> {
    static constexpr std::string_view name = "stop_gradient";
    static constexpr Notation notation{"sg({0})", "sg({0})", Prec::Atom};
};

namespace detail {
template <class Op, Value V>
V stop(const V& x) {
    if constexpr (is_var<V>::value) {
        if (x.tape_ptr() == nullptr) fail("{}: the Var is empty (default-constructed)", Op::name);
        return x.tape_ptr()->record_alias(Op{}, x);
    } else if constexpr (is_tensor<V>::value) {
        if (!x.is_contiguous()) return x.clone(x.resource());  // a strided view: its value, gathered
        return V::view(const_cast<typename V::value_type*>(x.data()), x.shape(), x.resource());
    } else {
        return apply_symbolic(Op{}, x);
    }
}
}  // namespace detail

template <Value V>
V detach(const V& x) {
    return detail::stop<Detach>(x);
}
template <Value V>
V stop_gradient(const V& x) {
    return detail::stop<StopGradient>(x);
}

}  // namespace tapegrad
