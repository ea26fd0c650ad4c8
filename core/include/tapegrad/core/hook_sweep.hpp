// The reverse sweep with hooks (hooks.hpp): Tape::sweep_loops<true>, the plain sweep's loops with
// the hook calls compiled in, taken only when some hook is registered.
// Included at the end of tape.hpp.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <tapegrad/core/tape.hpp>
#include <type_traits>
#include <utility>
#include <vector>

namespace tapegrad {

template <class T>
template <class F>
void Tape<T>::register_hook(const Var<T>& x, F&& fn) {
    using Fn = std::decay_t<F>;
    constexpr bool on_tensor = std::invocable<Fn&, const Tensor<T>&>;
    constexpr bool on_var = std::invocable<Fn&, const Var<T>&>;
    static_assert(on_tensor || on_var,
                  "register_hook: a hook is callable with const Tensor<T>& (backward), const Var<T>& "
                  "(backward with create_graph), or both (a generic lambda)");
    check(x, "register_hook");
    if (!nodes_[x.id_].requires_grad)
        fail("register_hook: {} does not require a gradient; no adjoint reaches it", describe(x.id_));
    // One callable for both readings (it may hold state).
    auto f = std::make_shared<Fn>(std::forward<F>(fn));
    detail::VarHook<T> h{x.id_, {}, {}};
    if constexpr (on_tensor) h.on_tensor = [f](const Tensor<T>& g) { return detail::call_hook(*f, g); };
    if constexpr (on_var) h.on_var = [f](const Var<T>& g) { return detail::call_hook(*f, g); };
    var_hooks_.push_back(std::move(h));
    extra_of(nodes_[x.id_]).hooked = true;
}

template <class T>
bool Tape<T>::hooks_present(std::uint32_t root) const noexcept {
    if (!var_hooks_.empty()) return true;
    for (std::uint32_t id : externals_) {
        if (id > root) break;
        if (nodes_[id].extra->sink->has_post_accumulate_hooks()) return true;
    }
    return false;
}

// The hooks of node `id`, in registration order, on its complete adjoint.
template <class T>
void Tape<T>::run_var_hooks(std::uint32_t id, bool recorded) {
    sweeping_ = kNoNode;  // an error here is the hook's, not the last VJP's
    for (std::size_t k = 0; k < var_hooks_.size(); ++k) {
        if (var_hooks_[k].node != id) continue;
        const detail::VarHook<T> h = var_hooks_[k];  // (a hook may register more hooks)
        const Shape s = nodes_[id].value.shape();
        if (!recorded) {
            if (!h.on_tensor)
                fail(
                    "backward: the hook on {} takes a Var only; call backward(…, {{.create_graph = true}}), "
                    "or "
                    "register a hook taking a Tensor (or a generic one)",
                    describe(id));
            const Tensor<T>& a = nodes_[id].adj;
            const Tensor<T> g = Tensor<T>::view(const_cast<T*>(a.data()), a.shape(), &arena_);
            std::optional<Tensor<T>> r = h.on_tensor(g);
            if (!r) continue;
            if (r->shape() != s)
                fail("backward: the hook on {} returned a replacement of shape {} for an adjoint of shape {}",
                     describe(id), r->shape(), s);
            Tensor<T>& dst = adjoint_for_update(nodes_[id]);
            std::copy_n(r->data(), dst.size(), dst.data());
        } else {
            const Var<T> g = var_of(nodes_[id].adj_var);
            if (h.on_var) {
                std::optional<Var<T>> r = h.on_var(g);
                if (!r) continue;
                check(*r, "register_hook");
                if (r->shape() != s)
                    fail(
                        "backward: the hook on {} returned a replacement of shape {} for an adjoint of shape "
                        "{}",
                        describe(id), r->shape(), s);
                nodes_[id].adj_var = r->id_;
            } else {
                const Tensor<T>& a = nodes_[g.id_].value;
                if (h.on_tensor(Tensor<T>::view(const_cast<T*>(a.data()), a.shape(), &arena_)))
                    fail(
                        "backward: the hook on {} takes a Tensor and returned a replacement, which "
                        "create_graph "
                        "cannot record; register a hook taking a Var (or a generic one)",
                        describe(id));
            }
        }
    }
}

// After the sweep passed parameter leaf `leaf`: its buffer's hooks run now when no earlier leaf
// of this tape adds into the same buffer, else they wait for that one (or the end of the sweep).
template <class T>
void Tape<T>::run_post_hooks(std::uint32_t leaf, std::vector<const GradBuffer<T>*>& pending,
                             std::vector<const GradBuffer<T>*>& fired) {
    GradBuffer<T>* b = nodes_[leaf].extra->sink;
    if (!b->has_post_accumulate_hooks() || std::find(fired.begin(), fired.end(), b) != fired.end()) return;
    for (std::uint32_t id : externals_) {
        if (id >= leaf) break;
        if (nodes_[id].extra->sink == b && nodes_[id].requires_grad) {
            if (std::find(pending.begin(), pending.end(), b) == pending.end()) pending.push_back(b);
            return;
        }
    }
    fired.push_back(b);
    sweeping_ = kNoNode;
    b->run_post_hooks();
}

template <class T>
void Tape<T>::sweep_hooked(std::uint32_t root, Tensor<T>&& seed, BackwardOptions opt) {
    // The tape's vectors, capacity kept from the last backward (a steady-state backward
    // allocates nothing); moved out for the sweep, so that a backward run from a hook gets its own.
    std::vector<const GradBuffer<T>*> pending = std::move(hook_pending_), fired = std::move(hook_fired_);
    pending.clear();
    fired.clear();
    struct GiveBack {
        Tape& t;
        std::vector<const GradBuffer<T>*>&p, &f;
        ~GiveBack() {
            t.hook_pending_ = std::move(p);
            t.hook_fired_ = std::move(f);
        }
    } give_back{*this, pending, fired};
    auto finish = [&] {  // buffers whose first leaf got no adjoint: complete at the end
        for (const GradBuffer<T>* b : pending) {
            if (std::find(fired.begin(), fired.end(), b) != fired.end()) continue;
            fired.push_back(b);
            const_cast<GradBuffer<T>*>(b)->run_post_hooks();
        }
    };
    sweep_loops<true>(root, std::move(seed), opt, &pending, &fired);
    finish();
}

}  // namespace tapegrad
