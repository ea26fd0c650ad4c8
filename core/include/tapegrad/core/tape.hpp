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
#include <tapegrad/core/node.hpp>
#include <tapegrad/core/op_model.hpp>
#include <tapegrad/core/var.hpp>

namespace tapegrad {

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
        return leaf(value.clone(&arena_), NodeKind::Constant, false, nullptr, name);
    }
    // A constant that refers to the caller's storage instead of copying it: the caller keeps
    // `value` alive and unchanged until the tape is reset.
    Var<T> constant_ref(const Tensor<T>& value, std::string_view name = {},
                        SourceLocation loc = SourceLocation::current()) {
        CallSite at(loc);
        if (anomaly_) [[unlikely]]
            check_thread("constant_ref");
        return leaf(view_of(value), NodeKind::Constant, false, nullptr, name);
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
        return leaf(value.clone(&arena_), NodeKind::Variable, true, nullptr, name);
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
        Var<T> v = leaf(view_of(value), NodeKind::External, true, grad, name);
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
        Node<T>& n = push(rule_for(op), std::move(out), NodeKind::Op, rg & !no_grad_);  // no-grad: a constant node
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
        Node<T>& n = push(rule_for(op), view_of(nodes_[x.id_].value), NodeKind::Op, false);
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
        Node<T>& n = push(rule, std::move(value), NodeKind::Op, rg & !no_grad_);
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
        char p = n.kind == NodeKind::Constant ? 'c' : n.kind == NodeKind::Op ? 't' : 'v';
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

    Var<T> leaf(Tensor<T>&& value, NodeKind kind, bool rg, GradBuffer<T>* sink, std::string_view name) {
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
    Node<T>& push(const OpRule<T>* rule, Tensor<T>&& value, NodeKind kind, bool rg) {
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

}  // namespace tapegrad

// The Tape's out-of-class members, by concern.
#include <tapegrad/core/tape_sweep.hpp>
#include <tapegrad/core/tape_errors.hpp>
#include <tapegrad/core/tape_explain.hpp>
#include <tapegrad/core/hook_sweep.hpp>

namespace tapegrad {
extern template class Tape<float>;
extern template class Tape<double>;

}  // namespace tapegrad
