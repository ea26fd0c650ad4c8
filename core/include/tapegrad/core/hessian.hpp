// Second order: Hessian-vector products, small Hessians and gradgradcheck, all by
// reverse-over-reverse on the recorded reading of the tape.
//
//   f : x ↦ scalar,  g(x) = ∇f(x)  recorded as nodes by backward(f, {.create_graph = true}),
//   H·v = ∇⟨g(x), v⟩               one more (numeric) backward, seeded on ⟨g, v⟩.
//
//   tg::Tensor<double> hv = tg::hvp(f, x, v);          // H(x)·v
//   tg::Tensor<double> H  = tg::hessian(f, x);          // n×n, n = x.size(), flat row-major index
//   tg::HessianOperator<double> op(f, {x0, x1});        // records f and ∇f once; op.apply(v) per v
//   auto rep = tg::gradgradcheck(f, {x0, x1});          // FD of ∇f against the recorded H
//
// f has gradcheck's signature, Var<T>(Tape<T>&, std::span<const Var<T>>), and returns a 1×1
// Var (gradgradcheck also accepts any shape and projects it on a random w). hvp, hessian and
// HessianOperator are templates over T = float | double; gradgradcheck runs in double.
//
// core/ may not use the op library, so ⟨a, b⟩ is recorded with two private ops, Inner and
// ScalarTimes, whose VJPs are written in each other: differentiable any number of times.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/core/engine_ops.hpp>
#include <tapegrad/core/gradcheck.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/tape.hpp>

namespace tapegrad {

namespace detail {

struct ScalarTimes;

// ⟨A, B⟩ = Σᵢⱼ Aᵢⱼ·Bᵢⱼ      A, B: m×n → 1×1
// dA = g·B,  dB = g·A       (g: 1×1)
struct Inner {
    static constexpr std::string_view name = "inner";
    static constexpr std::size_t arity = 2;
    static constexpr Notation notation{"⟨{0}, {1}⟩", "<{0}, {1}>", Prec::Atom};
    static constexpr bool any_rank = true;
    Shape shape(Shape a, Shape b) const {
        if (a != b) fail("inner: shapes differ: {} and {}", a, b);
        return {1, 1};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& a, const Tensor<T>& b) const {
        T s = 0;
        for (std::size_t i = 0, n = a.size(); i < n; ++i) s += a[i] * b[i];
        out[0] = s;
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&, const V& b) const;
    template <class V>
    V vjp(In<1>, const V& g, const V&, const V& a, const V&) const;
};

// Y = s·X                   s: 1×1, X: m×n → m×n
// ds = ⟨dY, X⟩,  dX = s·dY
struct ScalarTimes {
    static constexpr std::string_view name = "scalar_times";
    static constexpr std::size_t arity = 2;
    static constexpr Notation notation{"{0}·{1}", "{0}*{1}", Prec::Product};
    static constexpr bool any_rank = true;
    Shape shape(Shape s, Shape x) const {
        if (s.numel() != 1) fail("scalar_times: the factor has shape {}, not (1×1); operand {}", s, x);
        return x;
    }
    std::optional<Sym> simplify(const Sym& s, const Sym& x) const {
        if (s.is_one()) return x;
        return std::nullopt;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& s, const Tensor<T>& x) const {
        const T k = s[0];
        for (std::size_t i = 0, n = x.size(); i < n; ++i) out[i] = k * x[i];
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&, const V& x) const {
        return apply(Inner{}, g, x);
    }
    template <class V>
    V vjp(In<1>, const V& g, const V&, const V& s, const V&) const {
        return apply(ScalarTimes{}, s, g);
    }
};

template <class V>
V Inner::vjp(In<0>, const V& g, const V&, const V&, const V& b) const {
    return apply(ScalarTimes{}, g, b);
}
template <class V>
V Inner::vjp(In<1>, const V& g, const V&, const V& a, const V&) const {
    return apply(ScalarTimes{}, g, a);
}

}  // namespace detail

// ⟨a, b⟩ (1×1) on any Value: recorded, numeric or symbolic.
template <Value V>
V inner(const V& a, const V& b) {
    return apply(detail::Inner{}, a, b);
}

// The Hessian of a scalar f at a fixed point x, as a linear operator v ↦ H·v.
//
// The constructor runs f once and records its gradient g = ∇f(x) on a private tape
// (backward with create_graph); each apply(v) records ⟨g, v⟩ = Σᵢ ⟨gᵢ, vᵢ⟩ and runs one
// ordinary backward through it, which yields H·v (H is symmetric, so vᵀ·H = (H·v)ᵀ). The
// tape is never reset: every apply adds 2k + 1 small nodes and re-sweeps the recorded graph,
// whose cost is about two gradients of f.
template <class T>
class HessianOperator {
public:
    using Fn = std::function<Var<T>(Tape<T>&, std::span<const Var<T>>)>;

    HessianOperator(Fn f, std::vector<Tensor<T>> x) : x_(std::move(x)), tape_(std::make_unique<Tape<T>>()) {
        Tape<T>& tp = *tape_;
        for (const Tensor<T>& xi : x_) vars_.push_back(tp.variable(xi));
        Var<T> y = f(tp, std::span<const Var<T>>(vars_));
        tp.check(y, "hessian");
        if (y.shape() != Shape{1, 1})
            fail("hessian: f must return a scalar (1×1), not {}; project it first (inner(y, w))", y.shape());
        value_ = y.item();
        tp.backward(y, {.create_graph = true});
        for (const Var<T>& v : vars_) {
            g_.push_back(tp.grad_var(v));
            grad_.emplace_back(tp.grad(v));  // heap copy
        }
    }
    // A single input.
    HessianOperator(Fn f, const Tensor<T>& x) : HessianOperator(std::move(f), std::vector<Tensor<T>>{x}) {}

    T value() const noexcept { return value_; }
    // ∇f(x), one tensor per input (the value of the recorded gradient).
    const std::vector<Tensor<T>>& gradient() const noexcept { return grad_; }
    // The recorded gradient ∇f(x) as Vars of the operator's tape.
    const std::vector<Var<T>>& gradient_vars() const noexcept { return g_; }
    Tape<T>& tape() noexcept { return *tape_; }
    std::size_t inputs() const noexcept { return x_.size(); }

    // H·v, one tensor per input; v has one tensor per input, each of its input's shape.
    std::vector<Tensor<T>> apply(const std::vector<Tensor<T>>& v) {
        if (v.size() != x_.size()) fail("hvp: {} direction tensors for {} inputs", v.size(), x_.size());
        for (std::size_t i = 0; i < v.size(); ++i)
            if (v[i].shape() != x_[i].shape())
                fail("hvp: direction {} has shape {}, input {} has shape {}", i, v[i].shape(), i, x_[i].shape());
        Tape<T>& tp = *tape_;
        Var<T> s;
        for (std::size_t i = 0; i < v.size(); ++i) {
            Var<T> term = tapegrad::apply(detail::Inner{}, g_[i], tp.constant(v[i]));
            s = i == 0 ? term : tapegrad::apply(Add{}, s, term);
        }
        tp.backward(s);
        std::vector<Tensor<T>> out;
        out.reserve(vars_.size());
        for (const Var<T>& x : vars_) out.emplace_back(tp.grad(x));
        return out;
    }
    Tensor<T> apply(const Tensor<T>& v) {
        if (x_.size() != 1) fail("hvp: one direction tensor given for {} inputs", x_.size());
        return std::move(apply(std::vector<Tensor<T>>{v})[0]);
    }

    // The dense Hessian over all inputs' elements, flattened input by input, row-major within
    // each: N×N with N = Σ size(xᵢ). N applications of H, so for small inputs only.
    Tensor<T> dense() {
        std::size_t n = 0;
        for (const auto& xi : x_) n += xi.size();
        Tensor<T> h(n, n);
        std::vector<Tensor<T>> e;
        for (const auto& xi : x_) e.emplace_back(xi.shape());
        std::size_t col = 0;
        for (std::size_t i = 0; i < x_.size(); ++i) {
            for (std::size_t k = 0; k < x_[i].size(); ++k, ++col) {
                e[i][k] = T(1);
                std::vector<Tensor<T>> hv = apply(e);
                e[i][k] = T(0);
                std::size_t row = 0;
                for (const auto& b : hv)
                    for (std::size_t r = 0; r < b.size(); ++r) h(row++, col) = b[r];
            }
        }
        return h;
    }

private:
    std::vector<Tensor<T>> x_;
    std::unique_ptr<Tape<T>> tape_;
    std::vector<Var<T>> vars_;
    std::vector<Var<T>> g_;
    std::vector<Tensor<T>> grad_;
    T value_{};
};

// H(x)·v for a scalar f of one input x.
template <class T, class F>
Tensor<T> hvp(F&& f, const Tensor<T>& x, const Tensor<T>& v) {
    HessianOperator<T> op(std::forward<F>(f), x);
    return op.apply(v);
}
// H(x)·v for a scalar f of several inputs; v holds one direction tensor per input.
template <class T, class F>
std::vector<Tensor<T>> hvp(F&& f, const std::vector<Tensor<T>>& x, const std::vector<Tensor<T>>& v) {
    HessianOperator<T> op(std::forward<F>(f), x);
    return op.apply(v);
}
// The n×n Hessian of a scalar f of one input x (n = x.size(), flat row-major index).
template <class T, class F>
Tensor<T> hessian(F&& f, const Tensor<T>& x) {
    HessianOperator<T> op(std::forward<F>(f), x);
    return op.dense();
}
// The N×N Hessian over several inputs (see HessianOperator::dense for the ordering).
template <class T, class F>
Tensor<T> hessian(F&& f, const std::vector<Tensor<T>>& x) {
    HessianOperator<T> op(std::forward<F>(f), x);
    return op.dense();
}
// Braced lists of double tensors: hvp(f, {a, b}, {u, v}), hessian(f, {a, b}).
template <class F>
std::vector<Tensor<double>> hvp(F&& f, std::initializer_list<Tensor<double>> x, std::initializer_list<Tensor<double>> v) {
    return hvp(std::forward<F>(f), std::vector<Tensor<double>>(x), std::vector<Tensor<double>>(v));
}
template <class F>
Tensor<double> hessian(F&& f, std::initializer_list<Tensor<double>> x) {
    return hessian(std::forward<F>(f), std::vector<Tensor<double>>(x));
}

// ---- gradgradcheck -------------------------------------------------------------------------

struct GradgradcheckOptions {
    // Central differences of a gradient: truncation ~ h²·f⁗/6, rounding ~ ε·|∇f|/h; both are
    // ~1e-10 at h = 1e-5, so rtol = 1e-5 leaves room for badly scaled higher derivatives.
    double eps = 1e-5;              // step, scaled by max(1, |x|)
    double rtol = 1e-5;             // pass: |analytic − numeric| ≤ rtol · max(1, |analytic|, |numeric|)
    std::size_t max_elementwise_inputs = 64;  // above this, random input directions
    int projections = 3;            // random directions u per large input
    double kink_tol = 1e-2;         // one-sided differences of ∇f disagreeing by more: a kink
    std::uint64_t seed = 0x99ad;    // output projection w and directions u
};

struct GradgradcheckReport {
    // Per perturbed input i: H·u (recorded reading) against [∇f(x + h·u) − ∇f(x − h·u)] / 2h
    // over every input's gradient, u = unit vectors of input i (elementwise) or random.
    std::vector<InputReport> inputs;
    Shape output{};                 // f's output shape (projected on a random w unless 1×1)
    double first_order_err = 0;     // recorded gradient's value against the numeric gradient
    bool passed = true;
    explicit operator bool() const noexcept { return passed; }
    double max_rel_err() const noexcept {
        double m = first_order_err;
        for (const auto& r : inputs) m = r.max_rel_err > m ? r.max_rel_err : m;
        return m;
    }
};

GradgradcheckReport gradgradcheck(const GradFn& f, const std::vector<Tensor<double>>& inputs,
                                  const GradgradcheckOptions& opt = {});

}  // namespace tapegrad

template <>
struct fmt::formatter<tapegrad::GradgradcheckReport> {
    constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
    auto format(const tapegrad::GradgradcheckReport& r, fmt::format_context& ctx) const {
        auto out = fmt::format_to(ctx.out(), "gradgradcheck: output {}: {}  (recorded ∇f vs numeric: rel err {:.3e})\n",
                                  r.output, r.passed ? "PASS" : "FAIL", r.first_order_err);
        for (const auto& i : r.inputs) {
            out = fmt::format_to(out, "  H·u, u along input {} {}: {} ({} checks, {} kinks skipped)  max abs err {:.3e}  max rel err {:.3e}",
                                 i.input, i.shape, i.method, i.checked, i.kinks, i.max_abs_err, i.max_rel_err);
            if (i.method == "elementwise")
                out = fmt::format_to(out, "  worst column [{}] numeric {:.10g} analytic {:.10g}", i.worst_index,
                                     i.worst_numeric, i.worst_analytic);
            out = fmt::format_to(out, "  {}\n", i.passed ? "ok" : "FAIL");
        }
        return out;
    }
};
