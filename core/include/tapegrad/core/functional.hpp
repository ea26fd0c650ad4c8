// Functional transforms, JAX-style: grad, value_and_grad, vjp, jvp, jacrev, jacfwd, jacobian.
//
//   auto df = tg::grad([](const tg::Var<double>& x) { return tg::sum(tg::tanh(x)); });
//   tg::Tensor<double> g = df(x);                       // ∇f(x), on a private tape
//   auto [y, ydot] = tg::jvp(f, x, v);                  // f(x) and J·v (forward mode)
//   tg::Tensor<double> J = tg::jacobian(f)(x);          // shape y.shape ++ x.shape (as JAX)
//
// Every transform accepts a Tensor (it records f on a private tape and returns tensors) or a
// Var (it records on the Var's tape and returns Vars, differentiable again: transforms nest,
// grad(grad(f)), grad of a function that calls jvp, …). The jacobians take tensors only.
//
// Differentiating with respect to a Var x: the transform records x′ = x + z (z a fresh zero
// variable) and calls f(x′). The sweep from f's output reaches x′ only along paths through x′,
// so the adjoint of x′ is the partial derivative of f with respect to its argument — never
// perturbed by other uses of x in the enclosing computation (no perturbation confusion:
// d/dx [x · d/dy (x + y)](y = x) is 1) — while x′ still depends on x, so the result is
// differentiable with respect to x. The sweeps start at x′ (BackwardOptions::first_node):
// nodes of the enclosing computation are neither swept nor given adjoints.
//
// Forward mode without forward rules: the JVP is derived from the VJP rules by differentiating
// a VJP with respect to its cotangent. Record y = f(x), a dummy cotangent u (a variable of y's
// shape), and g(u) = Jᵀu by a recorded backward of ⟨y, u⟩ (linear in u); then ⟨g(u), v⟩ = uᵀJv,
// whose gradient with respect to u — a second backward, over the recorded VJP nodes only — is
// J·v. Cost: one forward, one recorded backward, one backward of that (bench: jvp_over_forward).
//
// Side effects: each transform runs backward() on the tape, which drops the adjoints of the
// tape's earlier backward (read tape.grad() before). Parameters (tape.external leaves) recorded
// inside f get this backward's gradient in their GradBuffers, as for any backward().
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <memory_resource>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include <tapegrad/core/grad_mode.hpp>
#include <tapegrad/core/hessian.hpp>
#include <tapegrad/core/tape.hpp>

namespace tapegrad {

namespace detail::fn {

template <class T>
Tensor<T> heap_copy(const Tensor<T>& t) {
    return t.clone(std::pmr::get_default_resource());
}

// The arguments to differentiate with respect to, on tape `tp`: fresh variables (Tensor inputs),
// or x + z with z a fresh zero variable (Var inputs). `first` is the first node recorded.
template <class T>
struct Args {
    std::vector<Var<T>> x;
    std::uint32_t first = 0;
};
template <class T>
Args<T> fresh_args(Tape<T>& tp, std::span<const Tensor<T>> xs) {
    Args<T> a;
    a.first = static_cast<std::uint32_t>(tp.size());
    for (const Tensor<T>& x : xs) a.x.push_back(tp.variable(x));
    return a;
}
template <class T>
Args<T> fresh_args(Tape<T>& tp, std::span<const Var<T>> xs) {
    Args<T> a;
    a.first = static_cast<std::uint32_t>(tp.size());
    for (const Var<T>& x : xs) {
        if (&x.tape() != &tp) fail("functional transform: the inputs belong to different tapes");
        a.x.push_back(tapegrad::apply(Add{}, x, tp.variable(Tensor<T>(x.shape()))));
    }
    return a;
}

// A private tape for a transform of tensors, from a per-thread pool (one per nesting depth:
// f may itself call a transform of tensors), reset on exit and kept: its arena's memory is
// reused by the next call instead of being allocated and faulted in again.
template <class T>
class PoolTape {
public:
    PoolTape() {
        Pool& p = pool();
        if (p.tapes.size() <= p.depth) p.tapes.push_back(std::make_unique<Tape<T>>());
        tape_ = p.tapes[p.depth++].get();
    }
    ~PoolTape() {
        tape_->reset();
        --pool().depth;
    }
    PoolTape(const PoolTape&) = delete;
    PoolTape& operator=(const PoolTape&) = delete;
    Tape<T>& operator*() noexcept { return *tape_; }

private:
    struct Pool {
        std::vector<std::unique_ptr<Tape<T>>> tapes;
        std::size_t depth = 0;
    };
    static Pool& pool() {
        thread_local Pool p;
        return p;
    }
    Tape<T>* tape_;
};

// Marks nodes [from, to) as requiring no gradient for one numeric sweep (restored on exit), so
// that the VJPs of the nodes after `to` compute no adjoint for them: the second sweep of a jvp
// needs only the adjoint of the cotangent u, not those of the forward values.
template <class T>
class NoAdjointBelow {
public:
    NoAdjointBelow(Tape<T>& t, std::uint32_t from, std::uint32_t to) : t_(t), from_(from) {
        for (std::uint32_t i = from; i < to; ++i) {
            flags_.push_back(t.node(i).requires_grad);
            t.node(i).requires_grad = false;
        }
    }
    ~NoAdjointBelow() {
        for (std::size_t k = 0; k < flags_.size(); ++k) t_.node(from_ + std::uint32_t(k)).requires_grad = flags_[k];
    }
    NoAdjointBelow(const NoAdjointBelow&) = delete;
    NoAdjointBelow& operator=(const NoAdjointBelow&) = delete;

private:
    Tape<T>& t_;
    std::uint32_t from_;
    std::vector<bool> flags_;
};

template <class T>
void check_scalar(std::string_view who, const Var<T>& y) {
    if (y.value().size() != 1)
        fail("{}: f must return a one-element value (a scalar loss), not {}; use vjp or jacrev for other shapes",
             who, y.shape());
}

template <class T>
Var<T> sum_inner(std::span<const Var<T>> a, std::span<const Var<T>> b) {
    Var<T> s;
    for (std::size_t i = 0; i < a.size(); ++i) {
        Var<T> term = tapegrad::apply(Inner{}, a[i], b[i]);
        s = i == 0 ? term : tapegrad::apply(Add{}, s, term);
    }
    return s;
}

template <class T>
Tape<T>& tape_of(std::span<const Var<T>> xs) {
    if (xs.empty()) fail("functional transform: no inputs");
    return xs[0].tape();
}

// The JVP core on a tape whose arguments `a` are recorded: y = f(a.x) and J·v as a Var
// (recorded: differentiable again when `recorded`; otherwise its value is meaningful only).
template <class T, class F>
std::pair<Var<T>, Var<T>> jvp_on(Tape<T>& tp, F& f, const Args<T>& a, std::span<const Var<T>> v, bool recorded) {
    if (v.size() != a.x.size()) fail("jvp: {} tangents for {} inputs", v.size(), a.x.size());
    for (std::size_t i = 0; i < v.size(); ++i)
        if (v[i].shape() != a.x[i].shape())
            fail("jvp: tangent {} has shape {}, input {} has shape {}", i, v[i].shape(), i, a.x[i].shape());
    Var<T> y = f(std::span<const Var<T>>(a.x));
    tp.check(y, "jvp");
    // The dummy cotangent u: ⟨y, u⟩'s gradient is Jᵀu, recorded (linear in u).
    Var<T> u = tp.variable(Tensor<T>(y.shape()));
    tp.backward(tapegrad::apply(Inner{}, y, u), BackwardOptions{.create_graph = true, .first_node = a.first});
    std::vector<Var<T>> g;
    for (const Var<T>& x : a.x) g.push_back(tp.grad_var(x));
    // d/du ⟨Jᵀu, v⟩ = J·v: the second sweep covers the recorded VJP nodes only (from u on).
    Var<T> s = sum_inner<T>(g, v);
    if (recorded) {
        tp.backward(s, BackwardOptions{.create_graph = true, .first_node = u.id()});
        return {y, tp.grad_var(u)};
    }
    {
        NoAdjointBelow<T> only_u(tp, a.first, u.id());
        tp.backward(s, BackwardOptions{.first_node = u.id()});
    }
    return {y, tp.constant_ref(tp.grad(u))};
}

}  // namespace detail::fn

// ---- vjp --------------------------------------------------------------------------------------

// y = f(x) and its pullback ct ↦ Jᵀ·ct (jax.vjp). On a Tensor: the pullback owns the private
// tape and may be called any number of times. On a Var: the pullback takes a Var cotangent
// (of y's shape) and returns a recorded Var.
template <class F, class T>
std::pair<Tensor<T>, std::function<Tensor<T>(const Tensor<T>&)>> vjp(F f, const Tensor<T>& x) {
    struct State {
        Tape<T> tape;
        Var<T> x, y;
    };
    auto st = std::make_shared<State>();
    st->x = st->tape.variable(x);
    st->y = f(st->x);
    st->tape.check(st->y, "vjp");
    Tensor<T> y = detail::fn::heap_copy(st->y.value());
    return {std::move(y), [st](const Tensor<T>& ct) {
                if (ct.shape() != st->y.shape())
                    fail("vjp: the cotangent has shape {}, the output has shape {}", ct.shape(), st->y.shape());
                st->tape.backward(st->y, ct);
                return detail::fn::heap_copy(st->tape.grad(st->x));
            }};
}
template <class F, class T>
std::pair<Var<T>, std::function<Var<T>(const Var<T>&)>> vjp(F f, const Var<T>& x) {
    Tape<T>& tp = x.tape();
    GradModeGuard<T> on(tp, true);
    auto a = detail::fn::fresh_args<T>(tp, std::span<const Var<T>>(&x, 1));
    Var<T> y = f(a.x[0]);
    tp.check(y, "vjp");
    return {y, [a, y](const Var<T>& ct) {
                Tape<T>& t = y.tape();
                GradModeGuard<T> on2(t, true);
                if (ct.shape() != y.shape())
                    fail("vjp: the cotangent has shape {}, the output has shape {}", ct.shape(), y.shape());
                t.backward(tapegrad::apply(detail::Inner{}, y, ct), BackwardOptions{.create_graph = true, .first_node = a.first});
                return t.grad_var(a.x[0]);
            }};
}

// ---- grad, value_and_grad ---------------------------------------------------------------------

// (f(x), ∇f(x)) for a scalar f (jax.value_and_grad).
template <class F>
auto value_and_grad(F f) {
    return [f](const auto& x) mutable {
        using X = std::remove_cvref_t<decltype(x)>;
        using T = typename X::value_type;
        if constexpr (is_tensor<X>::value) {
            detail::fn::PoolTape<T> pooled;
            Tape<T>& tp = *pooled;
            Var<T> xv = tp.variable(x);
            Var<T> y = f(xv);
            tp.check(y, "grad");
            detail::fn::check_scalar("grad", y);
            tp.backward(y);
            return std::pair<Tensor<T>, Tensor<T>>{detail::fn::heap_copy(y.value()),
                                                   detail::fn::heap_copy(tp.grad(xv))};
        } else {
            static_assert(is_var<X>::value, "grad: the argument is a Tensor or a Var");
            Tape<T>& tp = x.tape();
            GradModeGuard<T> on(tp, true);
            auto a = detail::fn::fresh_args<T>(tp, std::span<const Var<T>>(&x, 1));
            Var<T> y = f(a.x[0]);
            tp.check(y, "grad");
            detail::fn::check_scalar("grad", y);
            tp.backward(y, BackwardOptions{.create_graph = true, .first_node = a.first});
            return std::pair<Var<T>, Var<T>>{y, tp.grad_var(a.x[0])};
        }
    };
}

// ∇f(x) for a scalar f (jax.grad): a function of a Tensor (→ Tensor) or a Var (→ Var).
template <class F>
auto grad(F f) {
    return [vg = value_and_grad(std::move(f))](const auto& x) mutable { return vg(x).second; };
}

// ---- jvp (forward mode) -------------------------------------------------------------------------

// (f(x), J·v) for inputs x₀…x_{k−1} and tangents v of their shapes (jax.jvp); f takes
// std::span<const Var<T>>.
template <class F, class T>
std::pair<Tensor<T>, Tensor<T>> jvp(F f, const std::vector<Tensor<T>>& x, const std::vector<Tensor<T>>& v) {
    detail::fn::PoolTape<T> pooled;
    Tape<T>& tp = *pooled;
    auto a = detail::fn::fresh_args<T>(tp, std::span<const Tensor<T>>(x));
    std::vector<Var<T>> vs;
    for (const Tensor<T>& vi : v) vs.push_back(tp.constant_ref(vi));
    auto [y, ydot] = detail::fn::jvp_on<T>(tp, f, a, vs, false);
    return {detail::fn::heap_copy(y.value()), detail::fn::heap_copy(ydot.value())};
}
// One input: f takes a Var.
template <class F, class T>
std::pair<Tensor<T>, Tensor<T>> jvp(F f, const Tensor<T>& x, const Tensor<T>& v) {
    auto g = [&f](std::span<const Var<T>> xs) { return f(xs[0]); };
    return jvp(g, std::vector<Tensor<T>>{x}, std::vector<Tensor<T>>{v});
}
// On Vars (nested use): the tangent is recorded, differentiable with respect to x (and v).
template <class F, class T>
std::pair<Var<T>, Var<T>> jvp(F f, const Var<T>& x, const Var<T>& v) {
    Tape<T>& tp = x.tape();
    GradModeGuard<T> on(tp, true);
    auto a = detail::fn::fresh_args<T>(tp, std::span<const Var<T>>(&x, 1));
    auto g = [&f](std::span<const Var<T>> xs) { return f(xs[0]); };
    return detail::fn::jvp_on<T>(tp, g, a, std::span<const Var<T>>(&v, 1), true);
}
template <class F, class T>
std::pair<Var<T>, Var<T>> jvp(F f, const Var<T>& x, const Tensor<T>& v) {
    return jvp(std::move(f), x, x.tape().constant(v));
}

// ---- jacobians (tensors) -------------------------------------------------------------------------

enum class JacMode { Auto, Reverse, Forward };

namespace detail::fn {
template <class T, class F>
Tensor<T> jacobian_impl(F& f, const Tensor<T>& x, JacMode mode, std::string_view who) {
    PoolTape<T> pooled;
    Tape<T>& tp = *pooled;
    Var<T> xv = tp.variable(x);
    Var<T> y = f(xv);
    tp.check(y, who);
    const Shape xs = x.shape(), ys = y.shape();
    const std::size_t n = xs.numel(), m = ys.numel();
    if (xs.rank() + ys.rank() > kMaxRank)
        fail("{}: the Jacobian of an output {} with respect to an input {} has rank {}, above {}", who, ys, xs,
             xs.rank() + ys.rank(), kMaxRank);
    std::vector<std::size_t> dims;
    for (std::size_t i = 0; i < ys.rank(); ++i) dims.push_back(ys[i]);
    for (std::size_t i = 0; i < xs.rank(); ++i) dims.push_back(xs[i]);
    Tensor<T> J{Shape(std::span<const std::size_t>(dims))};
    if (mode == JacMode::Auto) mode = n < m ? JacMode::Forward : JacMode::Reverse;
    if (!tp.node(y.id()).requires_grad) return J;  // f does not depend on x
    if (mode == JacMode::Reverse) {  // one backward per output element: rows
        Tensor<T> e(ys);
        for (std::size_t i = 0; i < m; ++i) {
            e[i] = T(1);
            tp.backward(y, e);
            e[i] = T(0);
            const Tensor<T>& g = tp.grad(xv);
            for (std::size_t j = 0; j < n; ++j) J[i * n + j] = g[j];
        }
    } else {  // one JVP per input element: columns (the recorded Jᵀu is shared)
        Var<T> u = tp.variable(Tensor<T>(ys));
        tp.backward(tapegrad::apply(Inner{}, y, u), BackwardOptions{.create_graph = true});
        Var<T> g = tp.grad_var(xv);
        Tensor<T> e(xs);
        for (std::size_t j = 0; j < n; ++j) {
            e[j] = T(1);
            Var<T> s = tapegrad::apply(Inner{}, g, tp.constant(e));
            e[j] = T(0);
            {
                NoAdjointBelow<T> only_u(tp, 0, u.id());
                tp.backward(s, BackwardOptions{.first_node = u.id()});
            }
            const Tensor<T>& col = tp.grad(u);
            for (std::size_t i = 0; i < m; ++i) J[i * n + j] = col[i];
        }
    }
    return J;
}
}  // namespace detail::fn

// The Jacobian of f at x by reverse mode, one backward per output element (jax.jacrev); shape
// y.shape ++ x.shape.
template <class F>
auto jacrev(F f) {
    return [f]<class T>(const Tensor<T>& x) mutable { return detail::fn::jacobian_impl(f, x, JacMode::Reverse, "jacrev"); };
}
// The same by forward mode, one JVP per input element (jax.jacfwd).
template <class F>
auto jacfwd(F f) {
    return [f]<class T>(const Tensor<T>& x) mutable { return detail::fn::jacobian_impl(f, x, JacMode::Forward, "jacfwd"); };
}
// The same, by forward mode when x has fewer elements than y, else by reverse mode (jax.jacobian
// is always jacrev; the two agree, only the cost differs).
template <class F>
auto jacobian(F f) {
    return [f]<class T>(const Tensor<T>& x) mutable { return detail::fn::jacobian_impl(f, x, JacMode::Auto, "jacobian"); };
}

}  // namespace tapegrad
