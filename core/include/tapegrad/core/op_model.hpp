// OpModel: an op declaration (op.hpp) behind OpRule, its VJPs run in the three readings —
// numeric (tensors), recorded (Vars, for create_graph) and symbolic (explain()). Tape's members
// are used through dependent names, so this file precedes the Tape class. (Split from tape.hpp.)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>

#include <tapegrad/core/node.hpp>
#include <tapegrad/core/op.hpp>

namespace tapegrad {

namespace detail {

template <class Op, class T>
class OpModel final : public OpRule<T> {
public:
    explicit OpModel(const Op& op) : op_(op) {}
    std::string_view name() const noexcept override { return Op::name; }
    std::string attributes() const override {
        if constexpr (requires(const Op& o) { std::string(o.attributes()); })
            return std::string(op_.attributes());
        else
            return {};
    }
    std::size_t arity() const noexcept override { return Op::arity; }
    bool differentiable(std::size_t i) const noexcept override {
        return diff_mask(std::make_index_sequence<Op::arity>{})[i];
    }
    void vjp_numeric(Tape<T>& tape, std::uint32_t id) const override {
        numeric(tape, id, std::make_index_sequence<Op::arity>{});
    }
    void vjp_recorded(Tape<T>& tape, std::uint32_t id) const override {
        recorded(tape, id, std::make_index_sequence<Op::arity>{});
    }
    void vjp_symbolic(const Tape<T>& tape, std::uint32_t id, SymSweep& s) const override {
        symbolic(tape, id, s, std::make_index_sequence<Op::arity>{});
    }
    Sym forward_symbolic(const Tape<T>& tape, std::uint32_t id, const SymSweep& s) const override {
        const auto& in = tape.node(id).in;
        return [&]<std::size_t... J>(std::index_sequence<J...>) {
            return apply_symbolic(op_, s.value[in[J]]...);
        }(std::make_index_sequence<Op::arity>{});
    }
    const Op& op() const noexcept { return op_; }

private:
    template <std::size_t... I>
    static constexpr std::array<bool, sizeof...(I)> diff_mask(std::index_sequence<I...>) {
        return {has_vjp_v<Op, Tensor<T>, I>...};
    }

    template <std::size_t... I>
    void numeric(Tape<T>& tape, std::uint32_t id, std::index_sequence<I...> is) const {
        // Views: a VJP that returns g (or an input) hands back a view, never a heap copy.
        const Node<T>& n = tape.node(id);
        auto& arena = tape.arena();
        // Adjoints are contiguous; values may be strided views, which a VJP that does not take
        // strides reads as gathered copies.
        auto operand = [&](const Tensor<T>& v) {
            if (!strided_v<Op> && !v.is_contiguous()) [[unlikely]]
                return v.clone(&arena);
            return Tensor<T>::view_of(v, &arena);
        };
        const Tensor<T> g = Tensor<T>::view_of(n.adj, &arena);
        const Tensor<T> y = operand(n.value);
        std::array<Tensor<T>, Op::arity> x;
        for (std::size_t k = 0; k < Op::arity; ++k) x[k] = operand(tape.node(n.in[k]).value);
        (numeric_one<I>(tape, n.in[I], g, y, x, is), ...);
    }
    template <std::size_t I, std::size_t... J>
    void numeric_one(Tape<T>& tape, std::uint32_t target, const Tensor<T>& g, const Tensor<T>& y,
                     const std::array<Tensor<T>, Op::arity>& x, std::index_sequence<J...>) const {
        if constexpr (has_vjp_v<Op, Tensor<T>, I>) {
            if (!tape.node(target).requires_grad) return;
            if constexpr (requires(Tensor<T>& d) { op_.vjp_into(In<I>{}, d, true, g, y, x[J]...); }) {
                // The op writes its VJP straight into the adjoint's storage (no temporary).
                tape.accumulate_with(target, [&](Tensor<T>& dst, bool add) {
                    op_.vjp_into(In<I>{}, dst, add, g, y, x[J]...);
                });
            } else {
                tape.accumulate(target, op_.vjp(In<I>{}, g, y, x[J]...), I);
            }
        }
    }

    template <std::size_t... I>
    void recorded(Tape<T>& tape, std::uint32_t id, std::index_sequence<I...> is) const {
        Var<T> g = tape.var_of(tape.node(id).adj_var);
        Var<T> y = tape.var_of(id);
        (recorded_one<I>(tape, id, g, y, is), ...);
    }
    // The inputs are read from the node by index at each call (not gathered into an array of
    // Op::arity Vars first: g++ 12's -Warray-bounds then misfires on speculatively devirtualised
    // calls between ops of different arity). A VJP may record nodes, so `in` is re-read.
    template <std::size_t I, std::size_t... J>
    void recorded_one(Tape<T>& tape, std::uint32_t id, const Var<T>& g, const Var<T>& y,
                      std::index_sequence<J...>) const {
        const std::uint32_t target = tape.node(id).in[I];
        if constexpr (has_vjp_v<Op, Var<T>, I>) {
            if (tape.node(target).requires_grad)
                tape.accumulate_var(target, op_.vjp(In<I>{}, g, y, tape.var_of(tape.node(id).in[J])...), I);
        } else if constexpr (has_vjp_v<Op, Tensor<T>, I>) {
            // A VJP written for tensors only would silently drop this adjoint from the graph.
            if (tape.node(target).requires_grad)
                fail("{}: the VJP of input {} runs on tensors only, so backward(…, {{.create_graph = true}}) "
                     "cannot record it; write it generically in V",
                     Op::name, I);
        }
    }

    template <std::size_t... I>
    void symbolic(const Tape<T>& tape, std::uint32_t id, SymSweep& s, std::index_sequence<I...> is) const {
        const auto& in = tape.node(id).in;
        (symbolic_one<I>(tape, id, in, s, is), ...);
    }
    template <std::size_t I, std::size_t... J>
    void symbolic_one(const Tape<T>& tape, std::uint32_t id,
                      const NodeInputs& in, SymSweep& s,
                      std::index_sequence<J...>) const {
        if (!tape.node(in[I]).requires_grad || !s.on_path[in[I]]) return;
        if constexpr (has_vjp_v<Op, Sym, I>) {
            s.accumulate(in[I], op_.vjp(In<I>{}, *s.adj[id], s.value[id], s.value[in[J]]...));
        } else if constexpr (has_vjp_v<Op, Tensor<T>, I>) {
            // A VJP written for tensors only has no formula: printing 0 would be wrong.
            fail("explain: the VJP of '{}' for input {} ({}) runs on tensors only, so explain() cannot "
                 "write its formula; write it generically in V",
                 Op::name, I, fmt::format("{} {}", tape.display_name(in[I]), tape.node(in[I]).value.shape()));
        }
    }

    Op op_;
};

}  // namespace detail

}  // namespace tapegrad
