// The reverse sweep: adjoint accumulation and the loops of the numeric and recorded readings
// (the hooked variant is hook_sweep.hpp).
// Included at the end of tape.hpp.
#pragma once

#include <tapegrad/core/tape.hpp>

namespace tapegrad {

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
            } else if (n.kind == NodeKind::External) {
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
            if (n.kind == NodeKind::External) {
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
        if (Hooked && n.kind == NodeKind::External) continue;  // (completed in the loop above)
        n.adj = nodes_[n.adj_var].value.clone(&arena_);
        if (n.kind == NodeKind::External) {
            n.extra->sink->resize(n.value.shape());
            n.extra->sink->add(n.adj);
        }
    }
}

}  // namespace tapegrad
