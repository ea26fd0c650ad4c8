// Activation checkpointing: checkpoint(f, x…) records ONE node whose value is f(x…) and whose
// backward runs f again on the saved inputs (torch.utils.checkpoint, jax.checkpoint / jax.remat).
//
//   auto h = tg::checkpoint([&](const tg::Var<float>& a) { return block(a.tape(), a); }, x);
//
// Memory. f's intermediate values never reach the caller's tape: f runs on a scratch tape — a
// region of its own — that is reset as soon as the segment's forward (or its backward) is done,
// so the caller's arena holds only the segment's inputs and output. Scratch tapes are kept per
// thread and per nesting depth (a checkpoint inside a checkpointed f uses the next one), and
// keep their memory for reuse: the peak is the caller's tape plus the largest segment (and its
// adjoints), not the sum of all segments. checkpoint_scratch_bytes<T>() reports what the scratch
// regions hold; release_checkpoint_scratch<T>() frees it.
//
// The node requires a gradient when an input does, or when f records a differentiable leaf of
// its own (a parameter it captures: found by the forward run), so that a segment whose input is
// a constant — the first layers of a network — still gives its parameters their gradients (what
// torch's use_reentrant=True checkpoint misses).
//
// Backward (numeric reading): the node's VJP records f again on the scratch tape, with its
// inputs as variables (copies) and grad mode on, sweeps it seeded with the node's adjoint, adds
// the inputs' gradients into the caller's tape, and resets the scratch tape. Parameters that f
// records (tape.external, nn::Parameter::var(x.tape())) get their gradients in their GradBuffers
// from that sweep, exactly as without checkpointing.
//
// Second order: backward(…, {.create_graph = true}) through a checkpointed node, and explain(),
// raise Error naming the node: the recorded VJP would have to record f's whole backward on the
// caller's tape, which is what checkpointing exists to avoid. (Differentiate an uncheckpointed
// f for gradients of gradients.)
//
// f must be deterministic: the backward recomputes its values. Stateful layers consult
// recompute.hpp: a random draw goes through replay(counter), which the forward run records in
// the node and the recomputation replays (nn::Dropout: the same masks), and a side effect the
// forward already had is skipped while recomputing() (nn::BatchNorm2d: running statistics and
// num_batches_tracked are updated once). A different number of replay() calls in the
// recomputation is an Error. Other random ops must draw from a counter-based generator
// (philox.hpp) keyed by something f captures, or through replay(). f is stored in the
// caller's arena until reset() and never destroyed: it must be trivially copyable and
// destructible (a lambda capturing by reference), and what it refers to must live until the
// backward. Parameters changed in place between the forward and the backward are not detected
// (they are not on the caller's tape): the backward would use the new values.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include <tapegrad/core/grad_mode.hpp>
#include <tapegrad/core/recompute.hpp>
#include <tapegrad/core/tape.hpp>

namespace tapegrad {

namespace detail::ckpt {

template <class T>
struct Scratch {
    std::vector<std::unique_ptr<Tape<T>>> tapes;  // one per nesting depth
    std::deque<std::vector<std::uint64_t>> draws;  // replay() record of a forward run, per depth
                                                   // (a deque: growing it moves no element)
    std::size_t depth = 0;
};
template <class T>
Scratch<T>& scratch() {
    thread_local Scratch<T> s;
    return s;
}

// The scratch tape of the current depth, reset (its memory kept for reuse) on exit.
template <class T>
class Region {
public:
    Region() {
        Scratch<T>& s = scratch<T>();
        if (s.tapes.size() <= s.depth) s.tapes.push_back(std::make_unique<Tape<T>>(std::size_t(1) << 16));
        if (s.draws.size() <= s.depth) s.draws.emplace_back();
        tape_ = s.tapes[s.depth].get();
        draws_ = &s.draws[s.depth];
        draws_->clear();
        ++s.depth;
    }
    ~Region() {
        tape_->reset();
        --scratch<T>().depth;
    }
    Region(const Region&) = delete;
    Region& operator=(const Region&) = delete;
    Tape<T>& tape() noexcept { return *tape_; }
    // Where the forward run records its replay() values (kept, like the tape, for reuse).
    std::vector<std::uint64_t>& draws() noexcept { return *draws_; }

private:
    Tape<T>* tape_;
    std::vector<std::uint64_t>* draws_;
};

template <class T, class F, std::size_t N>
Var<T> call(const F& f, const std::array<Var<T>, N>& x) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) { return f(x[I]...); }(std::make_index_sequence<N>{});
}

template <class T, class F, std::size_t N>
class CheckpointRule final : public OpRule<T> {
public:
    CheckpointRule(const F& f, const std::uint64_t* draws, std::size_t n_draws)
        : f_(f), draws_(draws), n_draws_(n_draws) {}
    std::string_view name() const noexcept override { return "checkpoint"; }
    std::size_t arity() const noexcept override { return N; }
    bool differentiable(std::size_t) const noexcept override { return true; }

    void vjp_numeric(Tape<T>& tape, std::uint32_t id) const override {
        Region<T> region;
        Tape<T>& s = region.tape();
        GradModeGuard<T> on(s, true);
        const Node<T>& n = tape.node(id);
        std::array<Var<T>, N> x;
        for (std::size_t k = 0; k < N; ++k) {
            const Node<T>& in = tape.node(n.in[k]);
            x[k] = in.requires_grad ? s.variable(in.value) : s.constant_ref(in.value);
        }
        Var<T> out;
        {
            // The same dropout masks as the forward, and no second batch-norm statistics update.
            recompute::Scope replaying(draws_, n_draws_);
            out = call<T>(f_, x);
            if (replaying.used() != n_draws_)
                fail("checkpoint: recomputing the segment ({} {}) drew {} values (replay() calls: dropout masks), "
                     "its forward {}; the checkpointed function must draw the same ones",
                     tape.display_name(id), n.value.shape(), replaying.used(), n_draws_);
        }
        s.check(out, "checkpoint");
        if (out.shape() != n.value.shape())
            fail("checkpoint: recomputing the segment gave an output of shape {}, the forward gave {}", out.shape(),
                 n.value.shape());
        s.backward(out, tape.node(id).adj);
        for (std::size_t k = 0; k < N; ++k) {
            if (!tape.node(tape.node(id).in[k]).requires_grad) continue;
            // A view of the scratch gradient: the accumulation copies it into the caller's arena.
            tape.accumulate(tape.node(id).in[k], Tensor<T>::view_of(s.grad(x[k]), &s.arena()), k);
        }
    }
    void vjp_recorded(Tape<T>& tape, std::uint32_t id) const override {
        fail("checkpoint: a checkpointed segment ({} {}) has no recorded VJP, so backward(…, {{.create_graph = true}}) "
             "cannot differentiate through it twice; differentiate the function without checkpoint() for "
             "gradients of gradients",
             tape.display_name(id), tape.node(id).value.shape());
    }
    void vjp_symbolic(const Tape<T>& tape, std::uint32_t id, SymSweep&) const override {
        fail("explain: a checkpointed segment ({} {}) has no formula; explain the function without checkpoint()",
             tape.display_name(id), tape.node(id).value.shape());
    }
    Sym forward_symbolic(const Tape<T>& tape, std::uint32_t id, const SymSweep& s) const override {
        const auto& in = tape.node(id).in;
        return [&]<std::size_t... I>(std::index_sequence<I...>) {
            return render_call("checkpoint", {&s.value[in[I]]...}, tape.node(id).value.shape());
        }(std::make_index_sequence<N>{});
    }

private:
    F f_;
    const std::uint64_t* draws_;  // the forward's replay() values, in the caller's arena
    std::size_t n_draws_;
};

}  // namespace detail::ckpt

// One node of x0's tape with value f(x0, xs…); its backward recomputes f (see the top of this
// file). f takes the inputs as Vars (of a scratch tape: record parameters with x.tape()) and
// returns one Var.
template <class F, class T, class... Vs>
Var<T> checkpoint(const F& f, const Var<T>& x0, const Vs&... xs) {
    static_assert((std::same_as<Vs, Var<T>> && ...), "checkpoint: the inputs are Vars of one tape");
    static_assert(std::is_trivially_copy_constructible_v<F> && std::is_trivially_destructible_v<F>,
                  "checkpoint: f is kept in the tape's arena until reset() and never destroyed: make it trivially "
                  "copyable, e.g. a lambda that captures by reference");
    constexpr std::size_t N = 1 + sizeof...(Vs);
    static_assert(N <= kMaxArity, "checkpoint: at most kMaxArity (6) inputs");
    Tape<T>& tape = x0.tape();
    const std::array<Var<T>, N> in{x0, xs...};
    Tensor<T> value;
    bool uses_leaves = false;
    std::uint64_t* draws = nullptr;
    std::size_t n_draws = 0;
    {
        detail::ckpt::Region<T> region;  // f's intermediates live here, until the end of the block
        Tape<T>& s = region.tape();
        // Recorded with grad mode on (the values cost the same) and the inputs as constants: the
        // output then requires a gradient exactly when f uses a differentiable leaf of its own —
        // a parameter it captures — which the node must then carry to its backward too.
        GradModeGuard<T> on(s, true);
        std::array<Var<T>, N> sx;
        for (std::size_t k = 0; k < N; ++k) sx[k] = s.constant_ref(in[k].value());
        Var<T> out;
        {
            detail::recompute::Scope recording(region.draws());  // the dropout counters f uses
            out = detail::ckpt::call<T>(f, sx);
        }
        s.check(out, "checkpoint");
        value = out.value().clone(&tape.arena());
        uses_leaves = s.node(out.id()).requires_grad;
        n_draws = region.draws().size();
        if (n_draws != 0) {
            draws = static_cast<std::uint64_t*>(
                tape.arena().allocate(n_draws * sizeof(std::uint64_t), alignof(std::uint64_t)));
            std::copy_n(region.draws().data(), n_draws, draws);
        }
    }
    using Rule = detail::ckpt::CheckpointRule<T, F, N>;
    void* mem = tape.arena().allocate(sizeof(Rule), alignof(Rule));
    const Rule* rule = ::new (mem) Rule(f, draws, n_draws);
    return tape.record_rule(rule, std::move(value), std::span<const Var<T>>(in), uses_leaves);
}

// Bytes the calling thread's scratch regions hold (reserved, kept for reuse), for element type T.
template <class T>
std::size_t checkpoint_scratch_bytes() {
    std::size_t n = 0;
    for (const auto& t : detail::ckpt::scratch<T>().tapes) n += t->arena().bytes_reserved();
    return n;
}
// Frees the calling thread's scratch regions (not while a checkpointed segment runs).
template <class T>
void release_checkpoint_scratch() {
    auto& s = detail::ckpt::scratch<T>();
    if (s.depth != 0) fail("release_checkpoint_scratch: a checkpointed segment is running");
    s.tapes.clear();
    s.draws.clear();
}

}  // namespace tapegrad
