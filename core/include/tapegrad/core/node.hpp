// A tape's node and what the sweep knows of an op: OpRule, the type-erased view of an op
// declaration (op.hpp); the node (value, adjoint, inputs, kind); the options of backward() and
// explain(). (Split from tape.hpp; see var.hpp.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/container/static_vector.hpp>

#include <tapegrad/core/engine_ops.hpp>
#include <tapegrad/core/grad_buffer.hpp>
#include <tapegrad/core/sym.hpp>
#include <tapegrad/core/tensor.hpp>
#include <tapegrad/core/var.hpp>

namespace tapegrad {

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
    // The op's parameters as short text for tools (to_dot): "[2,0,1]" for a permute, "axes 0,2"
    // for a reduction; empty for ops without any (Op::attributes(), when declared).
    virtual std::string attributes() const { return {}; }

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

// What a node is: the output of an op, or a leaf — a constant, a variable, or an External leaf
// (a parameter whose gradient goes to its GradBuffer).
enum class NodeKind : unsigned char { Op, Constant, Variable, External };
using LeafKind [[deprecated("LeafKind is NodeKind: LeafKind::Op named a node that is not a leaf")]] = NodeKind;

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
    Node(const OpRule<T>* rule, Tensor<T>&& v, NodeKind k, bool rg) noexcept
        : op(rule), value(std::move(v)), kind(k), requires_grad(rg) {}

    const OpRule<T>* op = nullptr;  // null for leaves
    NodeInputs in;                  // input node ids
    Tensor<T> value;
    Tensor<T> adj;                  // empty until the sweep reaches the node
    NodeExtra<T>* extra = nullptr;  // name and gradient buffer, when the node has either
    std::uint32_t adj_var = kNoNode;  // recorded reading: the node holding this node's adjoint
    NodeKind kind = NodeKind::Op;
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

}  // namespace tapegrad
