// The tape: an append-only array of nodes in creation order, and its reverse sweep.
//
//   forward:  apply(op, vars…) → Tape::record: shape check, kernel into the arena, node appended
//   backward: one loop from the loss down to the first node; each live node hands its adjoint
//             to its op's VJPs, whose results are accumulated (fan-out adds) into the inputs
//
// The tape knows ops only through OpRule, the type-erased view of an op declaration
// (op.hpp); it has no list of ops and no switch over them.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <source_location>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/container/static_vector.hpp>
#include <fmt/format.h>

#include <tapegrad/core/arena.hpp>
#include <tapegrad/core/engine_ops.hpp>
#include <tapegrad/core/grad_buffer.hpp>
#include <tapegrad/core/grad_mode.hpp>
#include <tapegrad/core/hooks.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/sym.hpp>
#include <tapegrad/core/tensor.hpp>

namespace tapegrad {

template <class T>
class Tape;

inline constexpr std::uint32_t kNoNode = 0xffffffffu;

namespace detail {
// A generation no tape of this process has had: one process-wide counter (never 0), drawn by
// each Tape construction and each reset(). A Var's (tape address, generation) therefore names
// one recording: a tape declared in a loop body has the same address every iteration, but not
// the same generation, so a Var kept from the previous iteration is refused. (The counter is
// 32-bit: a stale Var could pass only after 2³² further tape constructions and resets, and
// then only on a tape at its old address.)
std::uint32_t next_tape_generation() noexcept;
}  // namespace detail

// A handle to a node: (tape, index, generation). Cheap to copy. Using it after its tape was
// reset, or together with a Var of another tape (including a tape since destroyed whose
// address a new tape took), raises Error.
template <class T>
class Var {
public:
    using value_type = T;
    Var() = default;

    Tape<T>& tape() const;           // the owning tape, after checking the handle is live
    std::uint32_t id() const noexcept { return id_; }
    Tape<T>* tape_ptr() const noexcept { return tape_; }  // unchecked; may be null
    bool valid() const noexcept;     // false when default-constructed or its tape was reset
    Shape shape() const;
    std::size_t rows() const { return shape().rows(); }
    std::size_t cols() const { return shape().cols(); }
    const Tensor<T>& value() const;  // the forward value (owned by the tape's arena)
    T item() const { return value().item(); }
    // Names the node (used by explain() and to_dot()); returns the same Var.
    Var named(std::string_view name) const;

private:
    friend class Tape<T>;
    Var(Tape<T>* t, std::uint32_t id, std::uint32_t gen) : tape_(t), id_(id), gen_(gen) {}
    Tape<T>* tape_ = nullptr;
    std::uint32_t id_ = 0;
    std::uint32_t gen_ = 0;
};

struct SymSweep;

// The type-erased face of an op declaration, stored by every non-leaf node.
template <class T>
class OpRule {
public:
    virtual std::string_view name() const noexcept = 0;
    virtual std::size_t arity() const noexcept = 0;
    virtual bool differentiable(std::size_t input) const noexcept = 0;
    // Reverse step of node `id` in each reading.
    virtual void vjp_numeric(Tape<T>& tape, std::uint32_t id) const = 0;
    virtual void vjp_recorded(Tape<T>& tape, std::uint32_t id) const = 0;
    virtual void vjp_symbolic(const Tape<T>& tape, std::uint32_t id, SymSweep& s) const = 0;
    virtual Sym forward_symbolic(const Tape<T>& tape, std::uint32_t id, const SymSweep& s) const = 0;

protected:
    ~OpRule() = default;  // rules live in the arena or as statics; never deleted through a base
};

// State of a symbolic sweep (explain()): each node's expression and adjoint expression.
struct SymSweep {
    std::vector<Sym> value;
    std::vector<std::optional<Sym>> adj;
    // Whether a node depends on the explained variable: only those adjoints are needed.
    std::vector<bool> on_path;
    void accumulate(std::uint32_t id, Sym contrib) {
        contrib = reduce_to(contrib, value[id].shape());
        if (!adj[id])
            adj[id] = std::move(contrib);
        else
            adj[id] = apply(Add{}, *adj[id], contrib);
    }
};

enum class LeafKind : unsigned char { Op, Constant, Variable, External };

// A node's input ids, stored inline: an op takes at most kMaxArity operands.
inline constexpr std::size_t kMaxArity = 6;
using NodeInputs = boost::container::static_vector<std::uint32_t, kMaxArity>;

// What only some nodes have — a name (named nodes), a gradient buffer (External leaves) — kept
// out of Node, in the tape's arena, so that the node array stays small (120 B per node).
template <class T>
struct NodeExtra {
    std::string_view name;            // arena-owned copy of the user's name
    GradBuffer<T>* sink = nullptr;    // External leaves: adjoints accumulate here across tapes
    std::uint64_t sink_version = 0;   // adj_in_sink: the sink's version after our last write
    std::uint64_t value_version = 0;  // External leaves: sink->value_version() when recorded
    bool hooked = false;              // register_hook() was called on this node (hooks.hpp)
};

template <class T>
struct Node {
    Node() = default;
    // Constructed in place with its final values (not zeroed, then assigned: that costs a
    // rep-stos of the whole node per op).
    Node(const OpRule<T>* rule, Tensor<T>&& v, LeafKind k, bool rg) noexcept
        : op(rule), value(std::move(v)), kind(k), requires_grad(rg) {}

    const OpRule<T>* op = nullptr;  // null for leaves
    NodeInputs in;                  // input node ids
    Tensor<T> value;
    Tensor<T> adj;                  // empty until the sweep reaches the node
    NodeExtra<T>* extra = nullptr;  // name and gradient buffer, when the node has either
    std::uint32_t adj_var = kNoNode;  // recorded reading: the node holding this node's adjoint
    LeafKind kind = LeafKind::Op;
    bool requires_grad = false;
    bool sink_direct = false;       // External: may write its adjoint straight into grad_sink
    bool adj_in_sink = false;       // adj is grad_sink's storage (it was cleared before)

    std::string_view name() const noexcept { return extra ? extra->name : std::string_view{}; }
    GradBuffer<T>* grad_sink() const noexcept { return extra ? extra->sink : nullptr; }
};

// The node array grows by moving nodes: a copy would deep-copy their tensors to the heap.
static_assert(std::is_nothrow_move_constructible_v<Node<float>>);
// Extras live in the arena, which never runs destructors.
static_assert(std::is_trivially_destructible_v<NodeExtra<float>>);

struct BackwardOptions {
    // Record the backward pass on the tape (the recorded reading), so that gradients are Vars
    // that can be differentiated again: grad_var(x).
    bool create_graph = false;
    // Nodes recorded before this one are not swept: they may receive adjoints from later nodes but
    // pass nothing on (no VJP of theirs runs, no GradBuffer of theirs is written). For sweeps that
    // need only the adjoints of nodes from here on (functional.hpp: the gradient with respect to a
    // node recorded late), the rest of the tape is skipped. 0: the whole tape.
    std::uint32_t first_node = 0;
};

struct ExplainOptions {
    bool ascii = false;   // plain-ASCII notation (dE/dW0, W1^T, *) instead of Unicode
    bool shapes = false;  // append each adjoint's shape
    // Named nodes whose adjoints get a line of their own (and are referred to as ∂E/∂name
    // below it). Empty: every named node on the way. Other named nodes still appear by name
    // in values (σ′(A0)), but their adjoints are written out inline.
    std::vector<std::string_view> via{};
    // Names for adjoints, as the documents write them: {{"z2", "δ2"}} prints ∂E/∂z2 as δ2.
    std::vector<std::pair<std::string_view, std::string_view>> adjoint_names{};
};

namespace detail {

template <class Op, class T>
class OpModel final : public OpRule<T> {
public:
    explicit OpModel(const Op& op) : op_(op) {}
    std::string_view name() const noexcept override { return Op::name; }
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

template <class T>
class Tape {
public:
    using value_type = T;

    explicit Tape(std::size_t arena_bytes = std::size_t(1) << 20)
        : arena_(arena_bytes), generation_(detail::next_tape_generation()) {}
    Tape(const Tape&) = delete;
    Tape& operator=(const Tape&) = delete;

    // ---- leaves ----------------------------------------------------------------------------
    // A value that wants no gradient (copied into the arena).
    Var<T> constant(const Tensor<T>& value, std::string_view name = {},
                    SourceLocation loc = SourceLocation::current()) {
        CallSite at(loc);
        if (anomaly_) [[unlikely]]
            check_thread("constant");
        return leaf(value.clone(&arena_), LeafKind::Constant, false, nullptr, name);
    }
    // A constant that refers to the caller's storage instead of copying it: the caller keeps
    // `value` alive and unchanged until the tape is reset.
    Var<T> constant_ref(const Tensor<T>& value, std::string_view name = {},
                        SourceLocation loc = SourceLocation::current()) {
        CallSite at(loc);
        if (anomaly_) [[unlikely]]
            check_thread("constant_ref");
        return leaf(view_of(value), LeafKind::Constant, false, nullptr, name);
    }
    // A temporary would be destroyed at the end of the statement, leaving the tape reading
    // freed memory: binding one does not compile (use constant(), which copies).
    Var<T> constant_ref(const Tensor<T>&& value, std::string_view name = {},
                        SourceLocation loc = SourceLocation::current()) = delete;
    // A differentiable leaf (value copied into the arena); read its gradient with grad().
    Var<T> variable(const Tensor<T>& value, std::string_view name = {},
                    SourceLocation loc = SourceLocation::current()) {
        CallSite at(loc);
        if (anomaly_) [[unlikely]]
            check_thread("variable");
        return leaf(value.clone(&arena_), LeafKind::Variable, true, nullptr, name);
    }
    // A differentiable leaf backed by storage that outlives the tape (a parameter): its value
    // is used in place, and every backward() adds its adjoint into *grad (GradBuffer: when the
    // buffer was cleared, the adjoint is written there directly, with no pass of its own).
    // *grad is resized (to zero) when it does not have the value's shape. Both must stay alive
    // and in place until reset(). Whoever changes `value` in place says so with
    // grad->value_changed() (optimisers and nn::Parameter::mutable_value() do): backward()
    // refuses a leaf whose value changed after it was recorded.
    Var<T> external(const Tensor<T>& value, GradBuffer<T>* grad, std::string_view name = {},
                    SourceLocation loc = SourceLocation::current()) {
        CallSite at(loc);
        if (anomaly_) [[unlikely]]
            check_thread("external");
        if (grad == nullptr) fail("external: no gradient storage given for leaf '{}'", name);
        grad->resize(value.shape());
        Var<T> v = leaf(view_of(value), LeafKind::External, true, grad, name);
        // One buffer on one tape twice (a module applied twice): the two leaves' adjoints
        // meet in the buffer, so neither may claim it as its own.
        const bool twice = grad->leaf_tape_ == this && grad->leaf_gen_ == generation_ &&
                           grad->leaf_node_ < v.id_ && nodes_[grad->leaf_node_].grad_sink() == grad;
        if (twice) nodes_[grad->leaf_node_].sink_direct = false;
        nodes_[v.id_].sink_direct = !twice;
        nodes_[v.id_].extra->value_version = grad->value_version();
        externals_.push_back(v.id_);
        grad->leaf_tape_ = this;
        grad->leaf_gen_ = generation_;
        grad->leaf_node_ = v.id_;
        return v;
    }
    // A temporary value would be destroyed at the end of the statement: does not compile.
    Var<T> external(const Tensor<T>&& value, GradBuffer<T>* grad, std::string_view name = {},
                    SourceLocation loc = SourceLocation::current()) = delete;

    // ---- recording -------------------------------------------------------------------------
    template <OpType Op, class... V>
    Var<T> record(const Op& op, const V&... x) {
        static_assert(sizeof...(V) == Op::arity, "wrong number of operands for this op");
        static_assert(Op::arity <= kMaxArity, "an op takes at most kMaxArity (6) operands");
        static_assert((std::same_as<V, Var<T>> && ...), "operands must be Vars of this tape");
        detail::check_vjp_signatures<Op, Tensor<T>>();
        Tensor<T> out;
        bool rg = false;
        try {  // free unless something throws: then the message gains the user's line
            if (anomaly_) [[unlikely]]
                check_thread(Op::name);
            (check(x, Op::name), ...);
            check_rank<Op>(nodes_[x.id_].value...);
            Shape s = op.shape(nodes_[x.id_].value.shape()...);
            if constexpr (requires { op.view(nodes_[x.id_].value...); }) {
                out = op.view(nodes_[x.id_].value...);  // aliases the input: no arena bytes for data
            } else {
                out = Tensor<T>::uninit(s, &arena_);
                if constexpr (keeps_v<Op, T, decltype(nodes_[x.id_].value)...>) {
                    // The op keeps data for its VJPs in the arena (saved.hpp); rule_for(op) below
                    // copies the op with the handles forward set.
                    if (strided_v<Op> || (nodes_[x.id_].value.is_contiguous() && ...))
                        op.forward(out, nodes_[x.id_].value..., Keep(arena_));
                    else
                        op.forward(out, dense(nodes_[x.id_].value)..., Keep(arena_));
                } else if (strided_v<Op> || (nodes_[x.id_].value.is_contiguous() && ...)) [[likely]] {
                    op.forward(out, nodes_[x.id_].value...);
                } else {  // a strided view among the operands: the kernel reads a gathered copy
                    op.forward(out, dense(nodes_[x.id_].value)...);
                }
            }
            rg = (nodes_[x.id_].requires_grad || ...);
            // (under no-grad, no input wants a gradient: the loads vanish for ops whose inputs are all differentiable)
            if (rg) check_differentiable<Op>(std::array<bool, Op::arity>{(nodes_[x.id_].requires_grad && !no_grad_)...});
        } catch (const Error& e) {
            rethrow_located(e);
        }
        if (anomaly_) [[unlikely]]
            anomaly_forward(Op::name, out, {nodes_[x.id_].value.shape()...});
        Node<T>& n = push(rule_for(op), std::move(out), LeafKind::Op, rg & !no_grad_);  // no-grad: a constant node
        (n.in.push_back(x.id_), ...);
        return Var<T>(this, static_cast<std::uint32_t>(nodes_.size() - 1), generation_);
    }

    // A node of `op` (arity 1) whose value is x's own storage (no copy) and which requires no
    // gradient: the sweep never enters it, so nothing flows back to x (ops/detach.hpp).
    template <OpType Op>
    Var<T> record_alias(const Op& op, const Var<T>& x) {
        static_assert(Op::arity == 1, "record_alias: an alias has one operand");
        check(x, Op::name);
        if (anomaly_) [[unlikely]]
            check_thread(Op::name);
        Node<T>& n = push(rule_for(op), view_of(nodes_[x.id_].value), LeafKind::Op, false);
        n.in.push_back(x.id_);
        return Var<T>(this, static_cast<std::uint32_t>(nodes_.size() - 1), generation_);
    }

    // A node of a rule that is not an op declaration (a checkpointed segment, checkpoint_op.hpp):
    // `rule` (alive until reset()) does the reverse step; `value` is the node's value. Requires a
    // gradient when an input does, or `requires_grad` says so (recording on).
    Var<T> record_rule(const OpRule<T>* rule, Tensor<T>&& value, std::span<const Var<T>> inputs,
                       bool requires_grad = false) {
        if (inputs.size() > kMaxArity) fail("{}: at most {} inputs, not {}", rule->name(), kMaxArity, inputs.size());
        bool rg = requires_grad;
        for (const Var<T>& x : inputs) {
            check(x, rule->name());
            rg = rg || nodes_[x.id_].requires_grad;
        }
        if (anomaly_) [[unlikely]] {
            check_thread(rule->name());
            anomaly_forward(rule->name(), value, {});
        }
        Node<T>& n = push(rule, std::move(value), LeafKind::Op, rg & !no_grad_);
        for (const Var<T>& x : inputs) n.in.push_back(x.id_);
        return Var<T>(this, static_cast<std::uint32_t>(nodes_.size() - 1), generation_);
    }

    // ---- gradient mode (grad_mode.hpp) -------------------------------------------------------
    // Off (inside a NoGradGuard): ops compute their values and record constant nodes, which
    // backward never enters; leaves are unaffected (as in torch.no_grad()).
    bool grad_enabled() const noexcept { return !no_grad_; }
    void set_grad_enabled(bool on) noexcept { no_grad_ = !on; }
    [[nodiscard]] NoGradGuard<T> no_grad() { return NoGradGuard<T>(*this); }

    // ---- hooks (hooks.hpp) ---------------------------------------------------------------------
    // fn(adjoint) is called when the sweep reaches x, whose adjoint is then complete; it may
    // return a replacement (std::optional). See hooks.hpp for the signatures and the order.
    template <class F>
    void register_hook(const Var<T>& x, F&& fn);

    // ---- the reverse sweep -----------------------------------------------------------------
    // Seeds a scalar (1×1) loss with 1 and sweeps. Every call starts from zero adjoints, so
    // calling it twice gives the same grad() both times, while External leaves accumulate
    // (their storage gains the gradient twice, as PyTorch's .grad does).
    // Errors (a misused loss or seed, a parameter changed since it was recorded, a VJP's
    // error) name the caller's line, as the op functions' do.
    void backward(const Var<T>& loss, BackwardOptions opt = {},
                  SourceLocation loc = SourceLocation::current()) {
        CallSite at(loc);
        try {
            if (anomaly_) [[unlikely]]
                check_thread("backward");
            check(loss, "backward");
            // A one-element loss of any rank: (1×1), or () from a full reduction.
            if (nodes_[loss.id_].value.size() != 1)
                fail("backward: the loss has shape {}, not (1×1); pass a seed adjoint of that shape",
                     nodes_[loss.id_].value.shape());
            Tensor<T> seed = Tensor<T>::uninit(nodes_[loss.id_].value.shape(), &arena_);
            seed[0] = T(1);
            sweep(loss.id_, std::move(seed), opt);
        } catch (const Error& e) {
            rethrow_located(e);
        }
    }
    // Seeds output `y` with the adjoint `seed` (of y's shape): computes seedᵀ·J.
    void backward(const Var<T>& y, const Tensor<T>& seed, BackwardOptions opt = {},
                  SourceLocation loc = SourceLocation::current()) {
        CallSite at(loc);
        try {
            if (anomaly_) [[unlikely]]
                check_thread("backward");
            check(y, "backward");
            const Shape ys = nodes_[y.id_].value.shape();
            if (seed.shape() != ys) fail("backward: seed adjoint has shape {}, output has shape {}", seed.shape(), ys);
            sweep(y.id_, seed.clone(&arena_), opt);
        } catch (const Error& e) {
            rethrow_located(e);
        }
    }

    // ∂loss/∂x after backward(). Zeros when x does not influence the loss.
    const Tensor<T>& grad(const Var<T>& x) {
        check(x, "grad");
        Node<T>& n = nodes_[x.id_];
        if (!n.requires_grad)
            fail("grad: node {} ('{}') does not require a gradient (a constant, or computed from constants only)",
                 x.id_, n.name());
        if (n.adj.empty()) {
            n.adj = Tensor<T>(n.value.shape(), &arena_);
            swept_ = true;  // an adjoint the next backward must clear
        }
        if (n.adj_in_sink) {  // written into a cleared GradBuffer: still there?
            if (n.extra->sink->version() != n.extra->sink_version)
                fail("grad: the gradient of '{}' was written into its cleared gradient buffer, which has "
                     "changed since (cleared, updated, or added to by another backward()); read tape.grad() "
                     "before that, or read the buffer",
                     display_name(x.id_));
            n.adj_in_sink = false;
        }
        // An adjoint adopted as a view: materialise it, so that copying grad() copies values.
        if (!n.adj.owns()) n.adj = n.adj.clone(&arena_);
        return n.adj;
    }
    // The recorded gradient (a Var, differentiable again), after backward(…, {.create_graph = true}).
    Var<T> grad_var(const Var<T>& x) {
        check(x, "grad_var");
        Node<T>& n = nodes_[x.id_];
        if (!n.requires_grad) fail("grad_var: node {} ('{}') does not require a gradient", x.id_, n.name());
        if (!graph_recorded_) fail("grad_var: the last backward() did not record a graph; pass {{.create_graph = true}}");
        if (n.adj_var == kNoNode) return constant(Tensor<T>(n.value.shape()));
        return var_of(n.adj_var);
    }

    // The formula of ∂loss/∂x that the sweep applies, from the ops' own VJP rules run on
    // symbols: one line per named node on the way from the loss to x.
    std::string explain(const Var<T>& x, ExplainOptions opt = {}) const;
    std::string explain(const Var<T>& x, const Var<T>& loss, ExplainOptions opt = {}) const;
    // The same for a parameter: anything holding its gradient buffer as `.grad` (and its name
    // as `.name`), e.g. nn::Parameter, or the GradBuffer itself. Explains the leaf this tape
    // recorded for it (tape.external(value, &grad)); Error if there is none, or several.
    template <class P>
        requires std::same_as<std::remove_cvref_t<decltype(std::declval<const P&>().grad)>, GradBuffer<T>>
    std::string explain(const P& p, ExplainOptions opt = {}) const {
        return explain(leaf_of(p.grad, name_of(p)), std::move(opt));
    }
    template <class P>
        requires std::same_as<std::remove_cvref_t<decltype(std::declval<const P&>().grad)>, GradBuffer<T>>
    std::string explain(const P& p, const Var<T>& loss, ExplainOptions opt = {}) const {
        return explain(leaf_of(p.grad, name_of(p)), loss, std::move(opt));
    }
    std::string explain(const GradBuffer<T>& g, ExplainOptions opt = {}) const {
        return explain(leaf_of(g, {}), std::move(opt));
    }
    std::string explain(const GradBuffer<T>& g, const Var<T>& loss, ExplainOptions opt = {}) const {
        return explain(leaf_of(g, {}), loss, std::move(opt));
    }

    // ---- lifetime --------------------------------------------------------------------------
    // Drops every node, keeps the memory; all Vars of this tape become invalid.
    void reset() {
        nodes_.clear();
        arena_.reset();
        generation_ = detail::next_tape_generation();
        last_loss_ = kNoNode;
        graph_recorded_ = false;
        swept_ = false;
        sites_.clear();
        externals_.clear();
        var_hooks_.clear();
        owner_.store(std::thread::id{}, std::memory_order_relaxed);
    }

    // ---- anomaly mode ------------------------------------------------------------------------
    // When on, every value a node receives is checked for NaN and ±Inf: leaves and forward
    // outputs as they are recorded, adjoints as the sweep accumulates them. The first one found
    // raises Error naming the op (for an adjoint: the op whose VJP produced it), the shapes, the
    // element and the user's line that recorded the node (site.hpp). It also checks that the
    // tape is used from one thread only: the first to record (or backward) after construction
    // or reset() owns it until the next reset(); another raises Error. Off: predictable
    // branches per record and per accumulation.
    void set_anomaly_mode(bool on) noexcept {
        anomaly_ = on;
        // Turned on over a recording: the thread turning it on is taken as the one using the tape.
        std::thread::id none{};
        if (on && !nodes_.empty()) owner_.compare_exchange_strong(none, std::this_thread::get_id(), std::memory_order_relaxed);
    }
    bool anomaly_mode() const noexcept { return anomaly_; }
    // Where node `id` was recorded (kept in anomaly mode only; Kind::none otherwise).
    Site site(std::uint32_t id) const noexcept { return id < sites_.size() ? sites_[id] : Site{}; }

    // ---- introspection (for tools: explain, to_dot, anomaly checks) ---------------------------
    std::size_t size() const noexcept { return nodes_.size(); }
    const Node<T>& node(std::uint32_t id) const { return nodes_[id]; }
    Node<T>& node(std::uint32_t id) { return nodes_[id]; }
    Arena& arena() noexcept { return arena_; }
    std::uint32_t generation() const noexcept { return generation_; }
    std::uint32_t last_loss() const noexcept { return last_loss_; }
    Var<T> var_of(std::uint32_t id) { return Var<T>(this, id, generation_); }
    void set_name(const Var<T>& x, std::string_view name) {
        check(x, "named");
        if (name.empty() && nodes_[x.id_].extra == nullptr) return;
        extra_of(nodes_[x.id_]).name = intern(name);
    }
    // The node's display name: the user's, or a generated one (v3 for a variable, c3 for a
    // constant, t3 for an intermediate).
    std::string display_name(std::uint32_t id) const {
        const Node<T>& n = nodes_[id];
        if (!n.name().empty()) return std::string(n.name());
        char p = n.kind == LeafKind::Constant ? 'c' : n.kind == LeafKind::Op ? 't' : 'v';
        return fmt::format("{}{}", p, id);
    }

    // Checks that `x` is a live Var of this tape; `op` names the caller in the error.
    void check(const Var<T>& x, std::string_view op) const {
        if (x.tape_ == this && x.gen_ == generation_ && x.id_ < nodes_.size()) [[likely]]
            return;
        check_failed(x, op);
    }
    [[gnu::noinline, gnu::cold]] void check_failed(const Var<T>& x, std::string_view op) const {
        if (x.tape_ == nullptr) fail("{}: the Var is empty (default-constructed)", op);
        if (x.tape_ != this) fail("{}: the Var belongs to another tape", op);
        if (x.gen_ != generation_ || x.id_ >= nodes_.size())
            fail("{}: the Var was created before its tape was reset", op);
    }

    // Engine internals used by the op rules.
    // `input` is the index of `target` among the inputs of the node being swept (for the error
    // raised when the contribution's shape is neither the target's nor broadcast from it).
    void accumulate(std::uint32_t target, Tensor<T>&& contrib, std::size_t input);
    void accumulate_unchecked(std::uint32_t target, Tensor<T>&& contrib, std::size_t input);
    // For ops with vjp_into: write(dst, add) writes the contribution into target's adjoint
    // storage dst (add = false: overwrite; true: add to what is there).
    template <class Write>
    void accumulate_with(std::uint32_t target, Write&& write);
    void accumulate_var(std::uint32_t target, const Var<T>& contrib, std::size_t input);

private:
    friend class Var<T>;

    // A leaf that refers to the caller's storage; a strided view is gathered into the arena, so
    // that every node value a kernel reads is contiguous.
    // v, or (a strided view) a contiguous copy of it in the arena.
    Tensor<T> dense(const Tensor<T>& v) {
        if (!v.is_contiguous()) return v.clone(&arena_);
        return Tensor<T>::view_of(v, &arena_);
    }
    Tensor<T> view_of(const Tensor<T>& v) {
        if (!v.is_contiguous()) [[unlikely]]
            return v.clone(&arena_);
        return Tensor<T>::view_of(v, &arena_);
    }

    // Storage for the first contribution to node n's adjoint, to be overwritten in full: the
    // leaf's GradBuffer when it was cleared (nothing to add to), else arena memory.
    static bool claims_sink(const Node<T>& n) noexcept {
        return n.sink_direct && n.extra->sink->cleared() && n.extra->sink->shape() == n.value.shape();
    }
    Tensor<T>& fresh_adjoint(Node<T>& n) {
        if (claims_sink(n)) {
            n.adj = Tensor<T>::view(n.extra->sink->claim(), n.value.shape(), &arena_);
            n.adj_in_sink = true;
            n.extra->sink_version = n.extra->sink->version();
        } else {
            n.adj = Tensor<T>::uninit(n.value.shape(), &arena_);
        }
        return n.adj;
    }
    // Node n's adjoint, about to be added to: a view adopted earlier is copied first; an
    // adjoint living in a GradBuffer is written there (and the buffer's version follows).
    Tensor<T>& adjoint_for_update(Node<T>& n) {
        if (n.adj_in_sink) {
            n.extra->sink_version = n.extra->sink->touch();
        } else if (!n.adj.owns()) {  // copy on write: the adjoint was adopted as a view
            Tensor<T> own = Tensor<T>::uninit(n.value.shape(), &arena_);
            std::copy_n(n.adj.data(), own.size(), own.data());
            n.adj = std::move(own);
        }
        return n.adj;
    }

    Var<T> leaf(Tensor<T>&& value, LeafKind kind, bool rg, GradBuffer<T>* sink, std::string_view name) {
        Node<T>& n = push(nullptr, std::move(value), kind, rg);
        if (sink != nullptr || !name.empty()) {
            NodeExtra<T>& e = extra_of(n);
            e.sink = sink;
            e.name = intern(name);
        }
        const auto id = static_cast<std::uint32_t>(nodes_.size() - 1);
        if (anomaly_) [[unlikely]]
            anomaly_leaf(id);
        return Var<T>(this, id, generation_);
    }
    Node<T>& push(const OpRule<T>* rule, Tensor<T>&& value, LeafKind kind, bool rg) {
        if (nodes_.size() >= kNoNode - 1) fail("tape: more than {} nodes", kNoNode - 1);
        if (anomaly_) [[unlikely]] {
            sites_.resize(nodes_.size() + 1);
            sites_.back() = Site::current();
        }
        return nodes_.emplace_back(rule, std::move(value), kind, rg);
    }
    [[noreturn, gnu::cold, gnu::noinline]] void rethrow_located(const Error& e) const;
    [[noreturn, gnu::cold, gnu::noinline]] void wrong_vjp_shape(std::uint32_t target, std::size_t input,
                                                               Shape got) const;
    [[gnu::cold, gnu::noinline]] void check_thread(std::string_view who);
    void check_externals(std::uint32_t root) const {
        for (std::uint32_t id : externals_) {
            if (id > root) break;  // (recorded in order)
            const NodeExtra<T>& e = *nodes_[id].extra;
            if (e.sink->value_version() != e.value_version) [[unlikely]]
                modified_external(id);
        }
    }
    [[noreturn, gnu::cold, gnu::noinline]] void modified_external(std::uint32_t id) const;
    template <class P>
    static std::string_view name_of(const P& p) {
        if constexpr (requires { std::string_view(p.name); })
            return std::string_view(p.name);
        else
            return {};
    }
    [[gnu::cold, gnu::noinline]] Var<T> leaf_of(const GradBuffer<T>& g, std::string_view name) const;
    [[gnu::cold, gnu::noinline]] void anomaly_forward(std::string_view op, const Tensor<T>& out,
                                                      std::initializer_list<Shape> inputs) const;
    [[gnu::cold, gnu::noinline]] void anomaly_leaf(std::uint32_t id) const;
    [[gnu::cold, gnu::noinline]] void anomaly_adjoint(std::uint32_t target) const;
    std::string describe(std::uint32_t id) const;
    NodeExtra<T>& extra_of(Node<T>& n) {
        if (n.extra == nullptr) n.extra = ::new (arena_.bump(sizeof(NodeExtra<T>), alignof(NodeExtra<T>))) NodeExtra<T>{};
        return *n.extra;
    }
    std::string_view intern(std::string_view s) {
        if (s.empty()) return {};
        char* p = static_cast<char*>(arena_.allocate(s.size(), 1));
        std::copy(s.begin(), s.end(), p);
        return {p, s.size()};
    }
    template <class Op>
    const OpRule<T>* rule_for(const Op& op) {
        if constexpr (std::is_empty_v<Op>) {
            static const detail::OpModel<Op, T> shared{op};
            return &shared;
        } else {
            void* mem = arena_.allocate(sizeof(detail::OpModel<Op, T>), alignof(detail::OpModel<Op, T>));
            return ::new (mem) detail::OpModel<Op, T>(op);
        }
    }
    template <class Op>
    static void check_differentiable(const std::array<bool, Op::arity>& wants) {
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            (((wants[I] && !has_vjp_v<Op, Tensor<T>, I>)
                  ? fail("{}: input {} is not differentiable but requires a gradient (make it a constant)",
                         Op::name, I)
                  : void()),
             ...);
        }(std::make_index_sequence<Op::arity>{});
    }

    void sweep(std::uint32_t root, Tensor<T>&& seed, BackwardOptions opt);
    // The sweep when hooks are registered (hook_sweep.hpp): the plain loops stay hook-free.
    bool hooks_present(std::uint32_t root) const noexcept;
    [[gnu::cold, gnu::noinline]] void sweep_hooked(std::uint32_t root, Tensor<T>&& seed, BackwardOptions opt);
    // The two readings' loops, once: Hooked adds the hook calls (compiled out of the plain sweep).
    using BufferList = std::vector<const GradBuffer<T>*>;
    template <bool Hooked>
    void sweep_loops(std::uint32_t root, Tensor<T>&& seed, BackwardOptions opt, BufferList* pending,
                     BufferList* fired);
    [[gnu::cold, gnu::noinline]] void run_var_hooks(std::uint32_t id, bool recorded);
    [[gnu::cold, gnu::noinline]] void run_post_hooks(std::uint32_t leaf, std::vector<const GradBuffer<T>*>& pending,
                                                     std::vector<const GradBuffer<T>*>& fired);

    // The arena is declared first so that it is destroyed last: the nodes' tensors hand their
    // memory back to it when they are destroyed.
    Arena arena_;
    std::vector<Node<T>> nodes_;
    std::uint32_t generation_;  // detail::next_tape_generation(): unique in the process
    std::uint32_t last_loss_ = kNoNode;
    bool graph_recorded_ = false;
    bool swept_ = false;  // a backward() ran since the last reset(): nodes may hold adjoints
    bool anomaly_ = false;
    std::uint32_t sweeping_ = kNoNode;  // the node whose VJPs run now (for error messages)
    std::vector<Site> sites_;           // anomaly mode: where each node was recorded
    std::vector<std::uint32_t> externals_;  // the External leaves, in order (version checks)
    std::atomic<std::thread::id> owner_{};  // anomaly mode: the thread using the tape
    bool no_grad_ = false;                  // inside a NoGradGuard (grad_mode.hpp)
    std::vector<detail::VarHook<T>> var_hooks_;  // register_hook(), in registration order
    // sweep_hooked()'s buffers pending and fired, kept for their capacity (hook_sweep.hpp).
    std::vector<const GradBuffer<T>*> hook_pending_, hook_fired_;
};

// ---- Var ---------------------------------------------------------------------------------------

template <class T>
Tape<T>& Var<T>::tape() const {
    if (tape_ == nullptr) fail("Var: empty (default-constructed)");
    tape_->check(*this, "Var");
    return *tape_;
}
template <class T>
bool Var<T>::valid() const noexcept {
    return tape_ != nullptr && gen_ == tape_->generation_ && id_ < tape_->nodes_.size();
}
template <class T>
Shape Var<T>::shape() const {
    return tape().nodes_[id_].value.shape();
}
template <class T>
const Tensor<T>& Var<T>::value() const {
    return tape().nodes_[id_].value;
}
template <class T>
Var<T> Var<T>::named(std::string_view name) const {
    tape().set_name(*this, name);
    return *this;
}

// The recorded reading: applying an op to Vars records a node.
template <OpType Op, class T, class... Vs>
Var<T> apply(const Op& op, const Var<T>& a, const Vs&... rest) {
    static_assert((std::same_as<Vs, Var<T>> && ...), "operands of one op share one Var type");
    if (a.tape_ptr() == nullptr) fail("{}: the Var is empty (default-constructed)", Op::name);
    return a.tape_ptr()->record(op, a, rest...);
}

// ---- the sweep ---------------------------------------------------------------------------------

template <class T>
void Tape<T>::accumulate(std::uint32_t target, Tensor<T>&& contrib, std::size_t input) {
    if (anomaly_) [[unlikely]] {
        accumulate_unchecked(target, std::move(contrib), input);
        anomaly_adjoint(target);
        return;
    }
    accumulate_unchecked(target, std::move(contrib), input);
}

// Every VJP's result passes here (numeric reading): it has the input's shape (one compare),
// or a shape the input was broadcast to, which is summed back; anything else is the op's
// error, never summed into a wrong place.
template <class T>
void Tape<T>::accumulate_unchecked(std::uint32_t target, Tensor<T>&& contrib, std::size_t input) {
    if (!contrib.is_contiguous()) [[unlikely]]  // a VJP returned a view: adjoints are dense
        contrib = contrib.clone(&arena_);
    Node<T>& n = nodes_[target];
    const bool same = contrib.same_shape(n.value);  // (cheaper than comparing shape()s)
    if (!same && !broadcastable(n.value.shape(), contrib.shape())) [[unlikely]]
        wrong_vjp_shape(target, input, contrib.shape());
    if (n.adj.empty()) {
        if (same && contrib.resource() == &arena_ && contrib.is_contiguous() && !claims_sink(n)) {
            // An arena tensor, or a view of one (an adjoint passed through, as Add's VJP
            // does): adopted without a copy. A view is copied on the next write, below.
            n.adj = std::move(contrib);
        } else {
            sum_to(fresh_adjoint(n), contrib);
        }
        return;
    }
    T* a = adjoint_for_update(n).data();
    const T* c = contrib.data();
    if (same) {
        for (std::size_t i = 0, e = n.adj.size(); i < e; ++i) a[i] += c[i];
    } else {
        Tensor<T> r = Tensor<T>::uninit(n.value.shape(), &arena_);
        sum_to(r, contrib);
        for (std::size_t i = 0, e = n.adj.size(); i < e; ++i) a[i] += r[i];
    }
}

template <class T>
template <class Write>
void Tape<T>::accumulate_with(std::uint32_t target, Write&& write) {
    Node<T>& n = nodes_[target];
    if (n.adj.empty())
        write(fresh_adjoint(n), false);
    else
        write(adjoint_for_update(n), true);
    if (anomaly_) [[unlikely]]
        anomaly_adjoint(target);
}

template <class T>
void Tape<T>::accumulate_var(std::uint32_t target, const Var<T>& contrib, std::size_t input) {
    const Shape s = nodes_[target].value.shape();
    const Shape cs = nodes_[contrib.id_].value.shape();
    if (cs != s && !broadcastable(s, cs)) [[unlikely]]
        wrong_vjp_shape(target, input, cs);
    Var<T> c = reduce_to(contrib, s);
    std::uint32_t& slot = nodes_[target].adj_var;
    if (slot == kNoNode) {
        slot = c.id_;
    } else {
        Var<T> sum = apply(Add{}, var_of(slot), c);
        nodes_[target].adj_var = sum.id_;  // re-index: record() may have moved nodes_
    }
}

template <class T>
void Tape<T>::sweep(std::uint32_t root, Tensor<T>&& seed, BackwardOptions opt) {
    check_externals(root);  // before anything changes: a refused backward leaves no trace
    if (swept_) {  // a backward on this tape before: start again from zero adjoints
        for (auto& n : nodes_) {
            n.adj = Tensor<T>();
            n.adj_var = kNoNode;
            n.adj_in_sink = false;
        }
    }
    swept_ = true;  // (nodes recorded from now on start with empty adjoints, as all do)
    last_loss_ = root;
    graph_recorded_ = opt.create_graph;
    if (!nodes_[root].requires_grad) return;  // nothing differentiable leads to the loss
    const bool hooked = hooks_present(root);  // one predictable branch when none (hook_sweep.hpp)

    struct Sweeping {  // names the node being swept in error messages, until the sweep ends
        std::uint32_t& s;
        ~Sweeping() { s = kNoNode; }
    } sweeping{sweeping_};
    if (anomaly_) [[unlikely]] {
        nodes_[root].adj = seed.clone(&arena_);
        anomaly_adjoint(root);
    }
    if (hooked) [[unlikely]] {
        sweep_hooked(root, std::move(seed), opt);
        return;
    }

    sweep_loops<false>(root, std::move(seed), opt, nullptr, nullptr);
}

// The reverse loops of both readings. Hooked (hook_sweep.hpp) runs a node's variable hooks when
// its adjoint is complete, before its VJP, and a parameter buffer's post-accumulate hooks when
// the sweep passes its leaf; without hooks, those lines are not compiled.
template <class T>
template <bool Hooked>
void Tape<T>::sweep_loops(std::uint32_t root, Tensor<T>&& seed, BackwardOptions opt, BufferList* pending,
                          BufferList* fired) {
    if (!opt.create_graph) {
        nodes_[root].adj = std::move(seed);
        for (std::uint32_t i = root + 1; i-- > opt.first_node;) {
            if (nodes_[i].adj.empty() || !nodes_[i].requires_grad) continue;
            if constexpr (Hooked)
                if (nodes_[i].extra != nullptr && nodes_[i].extra->hooked) run_var_hooks(i, false);
            Node<T>& n = nodes_[i];  // (after the hooks: they may record nodes)
            if (n.op) {
                sweeping_ = i;
                n.op->vjp_numeric(*this, i);
            } else if (n.kind == LeafKind::External) {
                if (!n.adj_in_sink) {  // (in the sink: already there)
                    n.extra->sink->resize(n.value.shape());
                    n.extra->sink->add(n.adj);
                }
                if constexpr (Hooked) run_post_hooks(i, *pending, *fired);
            }
        }
        return;
    }

    // Recorded reading: the same rules on Vars; new nodes land after `root` and are not swept.
    Var<T> s = constant(seed);
    nodes_[root].adj_var = s.id_;
    for (std::uint32_t i = root + 1; i-- > opt.first_node;) {
        if (nodes_[i].adj_var == kNoNode || !nodes_[i].requires_grad) continue;
        if constexpr (Hooked)
            if (nodes_[i].extra != nullptr && nodes_[i].extra->hooked) run_var_hooks(i, true);
        Node<T>& n = nodes_[i];  // (after the hooks: they may record nodes)
        if (n.op) {
            sweeping_ = i;
            n.op->vjp_recorded(*this, i);
        } else if constexpr (Hooked) {
            // With hooks, a parameter leaf completes here: every consumer of it is later on the
            // tape. Its value goes into the buffer now, so its hooks run while the sweep goes on.
            if (n.kind == LeafKind::External) {
                n.adj = nodes_[n.adj_var].value.clone(&arena_);
                n.extra->sink->resize(n.value.shape());
                n.extra->sink->add(n.adj);
                run_post_hooks(i, *pending, *fired);
            }
        }
    }
    for (std::uint32_t i = opt.first_node; i <= root; ++i) {
        Node<T>& n = nodes_[i];
        if (n.adj_var == kNoNode || !n.requires_grad) continue;
        if (Hooked && n.kind == LeafKind::External) continue;  // (completed in the loop above)
        n.adj = nodes_[n.adj_var].value.clone(&arena_);
        if (n.kind == LeafKind::External) {
            n.extra->sink->resize(n.value.shape());
            n.extra->sink->add(n.adj);
        }
    }
}

// ---- located errors and anomaly mode (cold paths) ----------------------------------------------

template <class T>
void Tape<T>::rethrow_located(const Error& e) const {
    std::string msg = e.what();
    if (sweeping_ != kNoNode)
        msg += fmt::format("\n  while running the VJP of '{}' ({})", nodes_[sweeping_].op->name(), describe(sweeping_));
    // Only an exact site is appended: after an operator the last site is a hint, which anomaly
    // reports give but a plain error (whose first line tests may match) does not.
    const Site here = Site::current();
    if (here.kind == Site::Kind::exact && msg.find("\n  at ") == std::string::npos)
        msg += fmt::format("\n  {}", here.str());
    throw Error(msg);
}

template <class T>
void Tape<T>::wrong_vjp_shape(std::uint32_t target, std::size_t input, Shape got) const {
    std::string msg;
    if (sweeping_ != kNoNode) {
        msg = fmt::format(
            "{}: the VJP of input {} returned an adjoint of shape {} for an input of shape {} (a VJP returns "
            "the input's shape, or a shape the input broadcasts to)\n  the op: {}\n  the input: {}",
            nodes_[sweeping_].op->name(), input, got, nodes_[target].value.shape(), describe(sweeping_),
            describe(target));
    } else {
        msg = fmt::format("backward: an adjoint of shape {} for {}", got, describe(target));
    }
    throw Error(msg);
}

template <class T>
void Tape<T>::check_thread(std::string_view who) {
    const std::thread::id me = std::this_thread::get_id();
    std::thread::id owner = std::thread::id{};
    if (owner_.compare_exchange_strong(owner, me, std::memory_order_relaxed) || owner == me) return;
    fail("anomaly: {}: the tape is used from a second thread (another thread has recorded on it since its "
         "last reset); a tape is not thread-safe: use one tape per thread",
         who);
}

template <class T>
void Tape<T>::modified_external(std::uint32_t id) const {
    fail("backward: parameter '{}' was modified in place after it was recorded ({}); its value is no longer "
         "the one the forward pass used: record the forward pass again after changing it",
         display_name(id), describe(id));
}

template <class T>
Var<T> Tape<T>::leaf_of(const GradBuffer<T>& g, std::string_view name) const {
    std::uint32_t found = kNoNode;
    for (std::uint32_t id : externals_) {
        if (nodes_[id].extra->sink != &g) continue;
        if (found != kNoNode)
            fail("explain: parameter '{}' is on this tape more than once (nodes {} and {}); explain the Var of "
                 "each use",
                 display_name(id), found, id);
        found = id;
    }
    if (found == kNoNode) {
        if (name.empty()) fail("explain: the parameter of this gradient buffer was not used on this tape");
        fail("explain: parameter '{}' was not used on this tape", name);
    }
    return Var<T>(const_cast<Tape*>(this), found, generation_);
}

template <class T>
std::string Tape<T>::describe(std::uint32_t id) const {
    const Node<T>& n = nodes_[id];
    const char* kind = n.kind == LeafKind::Op         ? "node"
                       : n.kind == LeafKind::Constant ? "constant"
                                                      : "variable";
    std::string out = fmt::format("{} {} {}", kind, display_name(id), n.value.shape());
    const Site where = site(id);
    if (where.kind != Site::Kind::none) out += fmt::format(", recorded {}", where.str());
    return out;
}

namespace detail {
// The first element of t that is NaN or ±Inf (all exponent bits set), as a flat index, or
// t.size(). The scan is an OR over the exponent bits (vectorisable); the index is sought only
// when something was found.
template <class T>
std::size_t first_non_finite(const Tensor<T>& t) noexcept {
    using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    constexpr Bits kExp = sizeof(T) == 4 ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
    const T* p = t.data();
    const std::size_t n = t.size();
    bool bad = false;
    for (std::size_t i = 0; i < n; ++i) {
        Bits b;
        std::memcpy(&b, p + i, sizeof b);
        bad |= (b & kExp) == kExp;
    }
    if (!bad) return n;
    for (std::size_t i = 0; i < n; ++i)
        if (!std::isfinite(p[i])) return i;
    return n;
}
template <class T>
std::string non_finite_at(const Tensor<T>& t, std::size_t i) {
    const T v = t.data()[i];
    const char* what = std::isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf";
    // The flat index as a multi-index of t's shape (row-major), e.g. (1, 0, 2).
    const Shape s = t.shape();
    if (s.rank() == 0) return fmt::format("{} at ()", what);
    std::array<std::size_t, kMaxRank> idx{};
    for (std::size_t k = s.rank(), rest = i; k-- > 0;) {
        idx[k] = rest % s[k];
        rest /= s[k];
    }
    std::string at;
    for (std::size_t k = 0; k < s.rank(); ++k) at += fmt::format("{}{}", k ? ", " : "", idx[k]);
    return fmt::format("{} at ({})", what, at);
}
}  // namespace detail

template <class T>
void Tape<T>::anomaly_forward(std::string_view op, const Tensor<T>& out, std::initializer_list<Shape> inputs) const {
    if (!out.is_contiguous()) return;  // a view: its elements were checked where they were made
    const std::size_t i = detail::first_non_finite(out);
    if (i == out.size()) return;
    std::string shapes;
    for (Shape s : inputs) shapes += fmt::format("{}{}", shapes.empty() ? "" : ", ", s);
    std::string msg = fmt::format("anomaly: forward of '{}' produced {} of its {} output (inputs {})", op,
                                  detail::non_finite_at(out, i), out.shape(), shapes);
    if (sweeping_ != kNoNode)
        msg += fmt::format("\n  while recording the VJP of '{}' ({})", nodes_[sweeping_].op->name(), describe(sweeping_));
    const Site here = Site::current();
    if (here.kind != Site::Kind::none) msg += fmt::format("\n  {}", here.str());
    throw Error(msg);
}

template <class T>
void Tape<T>::anomaly_leaf(std::uint32_t id) const {
    const Tensor<T>& v = nodes_[id].value;
    const std::size_t i = detail::first_non_finite(v);
    if (i == v.size()) return;
    throw Error(fmt::format("anomaly: {} holds {}", describe(id), detail::non_finite_at(v, i)));
}

template <class T>
void Tape<T>::anomaly_adjoint(std::uint32_t target) const {
    const Tensor<T>& a = nodes_[target].adj;
    const std::size_t i = detail::first_non_finite(a);
    if (i == a.size()) return;
    if (sweeping_ == kNoNode)
        throw Error(fmt::format("anomaly: the seed of backward() holds {}; output {}", detail::non_finite_at(a, i),
                                describe(target)));
    const Node<T>& n = nodes_[sweeping_];
    std::size_t k = 0;
    while (k + 1 < n.in.size() && n.in[k] != target) ++k;
    std::string inputs;
    for (std::uint32_t j : n.in) inputs += fmt::format("{}{}", inputs.empty() ? "" : ", ", nodes_[j].value.shape());
    throw Error(fmt::format(
        "anomaly: the VJP of '{}' produced {} in the adjoint of its input {}\n"
        "  the op: {} (inputs {})\n  the input: {}",
        n.op->name(), detail::non_finite_at(a, i), k, describe(sweeping_), inputs, describe(target)));
}

// ---- explain -----------------------------------------------------------------------------------

template <class T>
std::string Tape<T>::explain(const Var<T>& x, ExplainOptions opt) const {
    if (last_loss_ == kNoNode) fail("explain: call backward(loss) first, or pass the loss");
    Var<T> loss(const_cast<Tape*>(this), last_loss_, generation_);
    return explain(x, loss, opt);
}

template <class T>
std::string Tape<T>::explain(const Var<T>& x, const Var<T>& loss, ExplainOptions opt) const {
    check(x, "explain");
    check(loss, "explain");
    const std::uint32_t root = loss.id_;
    if (x.id_ > root) fail("explain: node {} was recorded after the loss (node {})", x.id_, root);
    const bool a = opt.ascii;
    const std::string lname = display_name(root);
    auto d = [&](std::uint32_t id) {
        for (const auto& [node, alias] : opt.adjoint_names)
            if (node == nodes_[id].name()) return Sym::atom(std::string(alias), nodes_[id].value.shape());
        return a ? Sym::atom(fmt::format("d{}/d{}", lname, display_name(id)), nodes_[id].value.shape())
                 : Sym::atom(fmt::format("∂{}/∂{}", lname, display_name(id)), nodes_[id].value.shape());
    };

    SymSweep s;
    s.value.resize(root + 1);
    s.adj.resize(root + 1);
    s.on_path.assign(root + 1, false);
    for (std::uint32_t i = 0; i <= root; ++i) {
        const Node<T>& n = nodes_[i];
        if (n.op == nullptr || !n.name().empty())
            s.value[i] = Sym::atom(display_name(i), n.value.shape());
        else
            s.value[i] = n.op->forward_symbolic(*this, i, s);
    }
    // Nodes that depend on x: only their equations belong to the answer.
    std::vector<bool>& reach = s.on_path;
    reach[x.id_] = true;
    for (std::uint32_t i = x.id_ + 1; i <= root; ++i)
        for (std::uint32_t j : nodes_[i].in) reach[i] = reach[i] || reach[j];

    struct Line {
        std::uint32_t id;
        Sym rhs;
    };
    std::vector<Line> lines;
    s.adj[root] = Sym::one(nodes_[root].value.shape());
    for (std::uint32_t i = root + 1; i-- > 0;) {
        const Node<T>& n = nodes_[i];
        if (!s.adj[i] || !n.requires_grad || !reach[i]) continue;
        // A named node's adjoint is referred to by name further down, and gets its own line.
        const bool stop = !n.name().empty() && i != root &&
                          (opt.via.empty() || std::find(opt.via.begin(), opt.via.end(), n.name()) != opt.via.end());
        if (stop || i == x.id_) {
            lines.push_back({i, *s.adj[i]});
            s.adj[i] = d(i);
        }
        if (n.op) n.op->vjp_symbolic(*this, i, s);
    }
    if (lines.empty() || lines.back().id != x.id_)
        return fmt::format("{} = 0", a ? d(x.id_).ascii : d(x.id_).text);
    std::string out;
    for (const Line& l : lines) {
        out += fmt::format("{} = {}", d(l.id).str(a), l.rhs.str(a));
        if (opt.shapes) out += fmt::format("    {}", nodes_[l.id].value.shape());
        out += '\n';
    }
    out.pop_back();
    return out;
}

}  // namespace tapegrad

#include <tapegrad/core/hook_sweep.hpp>

namespace tapegrad {
extern template class Tape<float>;
extern template class Tape<double>;

}  // namespace tapegrad
