// Gradient hooks: the types behind Tape::register_hook (the sweep that calls them is in
// hook_sweep.hpp, the per-parameter hooks in GradBuffer).
//
//   tape.register_hook(v, fn)   fn(adjoint of v) — torch.Tensor.register_hook
//   buffer.register_post_accumulate_hook(fn), nn::Parameter::register_post_accumulate_grad_hook(fn)
//                               fn(buffer) after a backward() has finished adding into it —
//                               torch.Tensor.register_post_accumulate_grad_hook
//
// Complete: the tape is in creation order, so every consumer of a node comes after it; when the
// reverse sweep reaches node v, all contributions to v's adjoint have been added. A Var hook
// runs then, before v's own VJPs (or, for a parameter leaf, before the adjoint is added into its
// buffer), so a replacement it returns is what flows on. A parameter's gradient is complete when
// the sweep has passed the first leaf the tape recorded for it (a module applied twice records
// two), which is when its post-accumulate hooks run — while the sweep continues below, so that
// communication can overlap it (the data-parallel use).
//
// Order: nodes in reverse tape order; several hooks on one node in registration order, each
// receiving the adjoint as replaced by the ones before it.
//
// A Var hook takes `const Tensor<T>&` (the numeric sweep), `const Var<T>&` (the recorded
// sweep, backward(…, {.create_graph = true}): a replacement built with ops is differentiable
// again), or either (a generic lambda, which serves both). It returns void (an observer), or
// std::optional of its argument type: std::nullopt keeps the adjoint, a value replaces it (same
// shape). A Tensor-only hook in the recorded sweep is called with the adjoint's value, and may
// observe but not replace (that would drop the replacement's dependence from the graph: Error);
// a Var-only hook in a numeric sweep raises Error. Var hooks belong to one recording (reset()
// drops them); buffer hooks stay until cleared.
//
// Cost when none is registered: one test per backward() (the hook-aware sweep is a separate
// loop), none per node.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <optional>
#include <tapegrad/core/tensor.hpp>
#include <type_traits>

namespace tapegrad {

template <class T>
class Var;

namespace detail {

template <class T>
struct VarHook {
    std::uint32_t node;
    std::function<std::optional<Tensor<T>>(const Tensor<T>&)> on_tensor;  // numeric sweep
    std::function<std::optional<Var<T>>(const Var<T>&)> on_var;           // recorded sweep
};

template <class>
inline constexpr bool kHookAlwaysFalse = false;

// Calls hook f on a, adapting its result: void → no replacement.
template <class A, class F>
std::optional<A> call_hook(F& f, const A& a) {
    using R = std::invoke_result_t<F&, const A&>;
    if constexpr (std::is_void_v<R>) {
        f(a);
        return std::nullopt;
    } else if constexpr (std::is_convertible_v<R, std::optional<A>>) {
        return std::optional<A>(f(a));
    } else {
        static_assert(
            kHookAlwaysFalse<F>,
            "register_hook: a hook returns void or std::optional of the type it takes (std::nullopt: keep "
            "the adjoint; a value: replace it)");
        return std::nullopt;
    }
}

}  // namespace detail
}  // namespace tapegrad
