// Optimisers and learning-rate schedules, with torch.optim's hyper-parameter names, defaults
// and update formulas (torch 2.x documentation, non-fused single-tensor path). g is ∂E/∂p as
// left in Parameter::grad by the backward pass; t counts steps from 1.
//
// SGD (lr = 1e-3, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false):
//   g ← g + λ·p                                   (weight_decay λ ≠ 0)
//   b ← g  at t = 1,  else  b ← μ·b + (1 − τ)·g    (momentum μ ≠ 0, dampening τ)
//   g ← g + μ·b  (nesterov)   or   g ← b
//   p ← p − η·g                                   (plain SGD: exactly p ← p − η·∂E/∂p)
//
// Adam (lr = 1e-3, betas = (0.9, 0.999), eps = 1e-8, weight_decay = 0, amsgrad = false):
//   g ← g + λ·p                         Adam: L2 penalty in the gradient
//   p ← p·(1 − η·λ)                     AdamW (weight_decay = 1e-2): decoupled decay
//   m ← β₁·m + (1 − β₁)·g
//   v ← β₂·v + (1 − β₂)·g²
//   v̂max ← max(v̂max, v)                 (amsgrad; then v below is v̂max)
//   p ← p − (η / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
//
// A frozen parameter (Parameter::requires_grad(false)) is skipped: value, momentum buffer and
// moments stay as they are, and no weight decay applies (torch skips parameters whose .grad is
// None). The step count t is the optimiser's, shared by all parameters: a parameter unfrozen
// later gets Adam's bias correction for t, where torch counts steps per parameter.
//
// step() makes one pass over each parameter and allocates nothing: the state buffers are
// allocated with the optimiser. Arithmetic runs in T (float is the fast path).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numbers>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <tapegrad/core/error.hpp>
#include <tapegrad/core/tensor.hpp>
#include <tapegrad/nn/parameter.hpp>

namespace tapegrad::nn {

namespace detail {
// The element loops, compiled in nn/src/optim_kernels.cpp (vectorised; instantiated for float
// and double). Coefficients are in T; `sign` is −1 to maximise.
template <class T>
struct SGDCoeffs {
    T lr, weight_decay, momentum, one_minus_dampening, sign;
    bool first, nesterov;
};
template <class T>
struct AdamCoeffs {
    T step_size, inv_bc2_sqrt, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, l2, shrink, sign;
};
template <class T>
void sgd_update(T* w, const T* g, T* buf, std::size_t n, const SGDCoeffs<T>& c) noexcept;
template <class T>
void adam_update(T* w, const T* g, T* m, T* v, T* vmax, std::size_t n, const AdamCoeffs<T>& c) noexcept;

// `who` raises an Error for a null parameter or one listed twice, and, when `names` (checkpoints
// refer to parameters by name), for two parameters sharing a name.
template <class T>
void check_parameters(const std::vector<Parameter<T>*>& params, std::string_view who, bool names) {
    for (std::size_t i = 0; i < params.size(); ++i) {
        if (params[i] == nullptr) fail("{}: parameter {} is null", who, i);
        for (std::size_t j = 0; j < i; ++j) {
            if (params[j] == params[i])
                fail("{}: parameter '{}' is listed twice (entries {} and {})", who, params[i]->name, j, i);
            if (names && params[j]->name == params[i]->name)
                fail("{}: duplicate parameter name '{}' (parameters {} and {}); give each parameter its own name "
                     "(for Linear layers, their own index)",
                     who, params[i]->name, j, i);
        }
    }
}

// Every option check: finite, and within [lo, hi] (hi_open: [lo, hi)).
inline void check_option(std::string_view who, std::string_view option, double v, double lo, double hi,
                         bool hi_open = false) {
    const bool ok = std::isfinite(v) && v >= lo && (hi_open ? v < hi : v <= hi);
    if (ok) return;
    if (std::isinf(hi))
        fail("{}: invalid {} {} (must be finite and ≥ {})", who, option, v, lo);
    fail("{}: invalid {} {} (must be in [{}, {}{})", who, option, v, lo, hi, hi_open ? ")" : "]");
}
inline constexpr double kNoLimit = std::numeric_limits<double>::infinity();
}  // namespace detail

// What every optimiser shares, independent of the element type (for the schedules).
class OptimizerBase {
public:
    // `who` names the optimiser in error messages ("SGD", "Adam", "AdamW"): a string literal.
    OptimizerBase(std::string_view who, double lr) : who_(who), lr_(lr), initial_lr_(lr) {
        detail::check_option(who_, "lr", lr, 0, detail::kNoLimit);
    }
    virtual ~OptimizerBase() = default;
    virtual std::string_view name() const noexcept = 0;

    double lr() const noexcept { return lr_; }
    // Raises an Error (and keeps the rate) unless lr is finite and ≥ 0.
    void set_lr(double lr) {
        detail::check_option(who_, "lr", lr, 0, detail::kNoLimit);
        lr_ = lr;
    }
    double initial_lr() const noexcept { return initial_lr_; }
    // Number of step() calls made so far (restored from checkpoints).
    std::uint64_t steps() const noexcept { return steps_; }
    void set_steps(std::uint64_t t) noexcept { steps_ = t; }

protected:
    std::string_view who_;
    double lr_;
    double initial_lr_;
    std::uint64_t steps_ = 0;
};

template <class T>
class Optimizer : public OptimizerBase {
public:
    Optimizer(std::string_view who, std::vector<Parameter<T>*> params, double lr)
        : OptimizerBase(who, lr), params_(std::move(params)) {
        detail::check_parameters(params_, who, false);
    }
    virtual void step() = 0;
    void zero_grad() noexcept {
        for (Parameter<T>* p : params_) p->zero_grad();
    }
    const std::vector<Parameter<T>*>& params() const noexcept { return params_; }

    // The optimiser's state buffers with stable names ("exp_avg/W0"), for checkpoints.
    struct StateTensor {
        std::string name;
        Tensor<T>* tensor;
    };
    virtual std::vector<StateTensor> state() = 0;

protected:
    std::vector<Tensor<T>> make_buffers() const {
        std::vector<Tensor<T>> b;
        b.reserve(params_.size());
        for (const Parameter<T>* p : params_) b.emplace_back(p->shape());
        return b;
    }
    void check_grads(std::string_view who) const {
        for (const Parameter<T>* p : params_)
            if (p->requires_grad() && p->grad.shape() != p->value.shape())
                fail("{}: parameter '{}' has gradient of shape {} for a value of shape {}", who, p->name,
                     p->grad.shape(), p->value.shape());
    }
    std::vector<Parameter<T>*> params_;
};

// ---- SGD ---------------------------------------------------------------------------------------

struct SGDOptions {
    double lr = 1e-3;
    double momentum = 0;
    double dampening = 0;
    double weight_decay = 0;
    bool nesterov = false;
    bool maximize = false;
};

template <class T>
class SGD final : public Optimizer<T> {
public:
    using Options = SGDOptions;
    SGD(std::vector<Parameter<T>*> params, SGDOptions o = {}) : Optimizer<T>("SGD", std::move(params), o.lr), o_(o) {
        detail::check_option("SGD", "momentum", o.momentum, 0, detail::kNoLimit);
        detail::check_option("SGD", "dampening", o.dampening, 0, 1);
        detail::check_option("SGD", "weight_decay", o.weight_decay, 0, detail::kNoLimit);
        if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
            fail("SGD: Nesterov momentum requires a momentum > 0 and zero dampening (momentum {}, dampening {})",
                 o.momentum, o.dampening);
        if (o.momentum != 0) buf_ = this->make_buffers();
    }
    std::string_view name() const noexcept override { return o_.nesterov ? "sgd-nesterov" : o_.momentum != 0 ? "sgd-momentum" : "sgd"; }
    const SGDOptions& options() const noexcept { return o_; }

    void step() override {
        this->check_grads("SGD");
        const detail::SGDCoeffs<T> c{static_cast<T>(this->lr_),       static_cast<T>(o_.weight_decay),
                                     static_cast<T>(o_.momentum),     static_cast<T>(1 - o_.dampening),
                                     o_.maximize ? T(-1) : T(1),      this->steps_ == 0,
                                     o_.nesterov};
        ++this->steps_;
        for (std::size_t k = 0; k < this->params_.size(); ++k) {
            Parameter<T>& p = *this->params_[k];
            if (!p.requires_grad()) continue;  // frozen: no update, no momentum, no decay
            detail::sgd_update(p.mutable_value().data(), std::as_const(p.grad).data(), buf_.empty() ? nullptr : buf_[k].data(), p.size(), c);
        }
    }

    std::vector<typename Optimizer<T>::StateTensor> state() override {
        std::vector<typename Optimizer<T>::StateTensor> s;
        for (std::size_t k = 0; k < buf_.size(); ++k) s.push_back({"momentum_buffer/" + this->params_[k]->name, &buf_[k]});
        return s;
    }

private:
    SGDOptions o_;
    std::vector<Tensor<T>> buf_;  // momentum buffers b (one per parameter) when momentum ≠ 0
};

// ---- Adam / AdamW ------------------------------------------------------------------------------

struct AdamOptions {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0;
    bool amsgrad = false;
    bool decoupled_weight_decay = false;  // true: AdamW
    bool maximize = false;
};

struct AdamWOptions {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 1e-2;
    bool amsgrad = false;
    bool maximize = false;
};

template <class T>
class Adam : public Optimizer<T> {
public:
    using Options = AdamOptions;
    Adam(std::vector<Parameter<T>*> params, AdamOptions o = {})
        : Optimizer<T>(o.decoupled_weight_decay ? "AdamW" : "Adam", std::move(params), o.lr), o_(o) {
        detail::check_option(this->who_, "beta1", o.beta1, 0, 1, true);
        detail::check_option(this->who_, "beta2", o.beta2, 0, 1, true);
        detail::check_option(this->who_, "eps", o.eps, 0, detail::kNoLimit);
        detail::check_option(this->who_, "weight_decay", o.weight_decay, 0, detail::kNoLimit);
        m_ = this->make_buffers();
        v_ = this->make_buffers();
        if (o.amsgrad) vmax_ = this->make_buffers();
    }
    std::string_view name() const noexcept override { return o_.decoupled_weight_decay ? "adamw" : "adam"; }
    const AdamOptions& options() const noexcept { return o_; }

    void step() override {
        this->check_grads(name());
        const std::uint64_t t = ++this->steps_;
        const double bc1 = 1 - std::pow(o_.beta1, static_cast<double>(t));
        const double bc2 = 1 - std::pow(o_.beta2, static_cast<double>(t));
        const double wd = o_.weight_decay;
        const detail::AdamCoeffs<T> c{static_cast<T>(this->lr_ / bc1),
                                      static_cast<T>(1 / std::sqrt(bc2)),
                                      static_cast<T>(o_.beta1),
                                      static_cast<T>(1 - o_.beta1),
                                      static_cast<T>(o_.beta2),
                                      static_cast<T>(1 - o_.beta2),
                                      static_cast<T>(o_.eps),
                                      o_.decoupled_weight_decay ? T(0) : static_cast<T>(wd),
                                      static_cast<T>(1 - this->lr_ * (o_.decoupled_weight_decay ? wd : 0.0)),
                                      o_.maximize ? T(-1) : T(1)};
        for (std::size_t k = 0; k < this->params_.size(); ++k) {
            Parameter<T>& p = *this->params_[k];
            if (!p.requires_grad()) continue;  // frozen: no update, no moments, no decay
            detail::adam_update(p.mutable_value().data(), std::as_const(p.grad).data(), m_[k].data(), v_[k].data(),
                                o_.amsgrad ? vmax_[k].data() : nullptr, p.size(), c);
        }
    }

    std::vector<typename Optimizer<T>::StateTensor> state() override {
        std::vector<typename Optimizer<T>::StateTensor> s;
        for (std::size_t k = 0; k < this->params_.size(); ++k) {
            const std::string& n = this->params_[k]->name;
            s.push_back({"exp_avg/" + n, &m_[k]});
            s.push_back({"exp_avg_sq/" + n, &v_[k]});
            if (o_.amsgrad) s.push_back({"max_exp_avg_sq/" + n, &vmax_[k]});
        }
        return s;
    }

private:
    AdamOptions o_;
    std::vector<Tensor<T>> m_, v_, vmax_;  // first and second moments (and their running max)
};

// AdamW: Adam with decoupled weight decay p ← p·(1 − η·λ), default λ = 1e-2.
template <class T>
class AdamW final : public Adam<T> {
public:
    using Options = AdamWOptions;
    AdamW(std::vector<Parameter<T>*> params, AdamWOptions o = {})
        : Adam<T>(std::move(params), AdamOptions{.lr = o.lr,
                                                 .beta1 = o.beta1,
                                                 .beta2 = o.beta2,
                                                 .eps = o.eps,
                                                 .weight_decay = o.weight_decay,
                                                 .amsgrad = o.amsgrad,
                                                 .decoupled_weight_decay = true,
                                                 .maximize = o.maximize}) {}
};

// ---- learning-rate schedules -------------------------------------------------------------------
// Each sets the optimiser's lr from its closed form (torch's _get_closed_form_lr) at epoch e;
// step() advances e by one, as torch's scheduler.step() after each epoch.

// η_e = η₀ · γ^⌊e / step_size⌋
class StepLR {
public:
    StepLR(OptimizerBase& opt, std::size_t step_size, double gamma = 0.1)
        : opt_(opt), base_(opt.initial_lr()), step_size_(step_size), gamma_(gamma) {
        if (step_size == 0) fail("StepLR: step_size must be positive");
        detail::check_option("StepLR", "gamma", gamma, 0, detail::kNoLimit);
    }
    void step() { set_epoch(epoch_ + 1); }
    void set_epoch(std::size_t e) {
        epoch_ = e;
        opt_.set_lr(base_ * std::pow(gamma_, static_cast<double>(e / step_size_)));
    }
    std::size_t epoch() const noexcept { return epoch_; }
    double lr() const noexcept { return opt_.lr(); }

private:
    OptimizerBase& opt_;
    double base_;
    std::size_t step_size_;
    double gamma_;
    std::size_t epoch_ = 0;
};

// η_e = η_min + (η₀ − η_min) · (1 + cos(π·e / T_max)) / 2
class CosineAnnealingLR {
public:
    CosineAnnealingLR(OptimizerBase& opt, std::size_t t_max, double eta_min = 0)
        : opt_(opt), base_(opt.initial_lr()), t_max_(t_max), eta_min_(eta_min) {
        if (t_max == 0) fail("CosineAnnealingLR: T_max must be positive");
        detail::check_option("CosineAnnealingLR", "eta_min", eta_min, 0, detail::kNoLimit);
    }
    void step() { set_epoch(epoch_ + 1); }
    void set_epoch(std::size_t e) {
        epoch_ = e;
        const double c = std::cos(std::numbers::pi * static_cast<double>(e) / static_cast<double>(t_max_));
        opt_.set_lr(eta_min_ + (base_ - eta_min_) * (1 + c) / 2);
    }
    std::size_t epoch() const noexcept { return epoch_; }
    double lr() const noexcept { return opt_.lr(); }

private:
    OptimizerBase& opt_;
    double base_;
    std::size_t t_max_;
    double eta_min_;
    std::size_t epoch_ = 0;
};

}  // namespace tapegrad::nn
