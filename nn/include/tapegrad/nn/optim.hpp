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
// None). Adam's t is counted PER PARAMETER, as torch's state['step']: a parameter frozen for
// some steps has its own t, one per step it took part in (checkpoints keep each t). A gradient
// cleared by zero_grad() is a zero gradient, not a missing one (torch's set_to_none=False): the
// parameter takes part in the step.
//
// Parameter groups (torch.optim's param_groups): an optimiser built from ParamGroups keeps, per
// group, its own lr and weight_decay (each defaults to the options'); a schedule scales each
// group's rate from that group's initial rate, as torch's schedulers do with base_lrs.
// adamw_param_groups() builds nanoGPT's two AdamW groups (decay / no decay).
//
// step() makes one pass over each parameter and allocates nothing: the state buffers are
// allocated with the optimiser. Arithmetic runs in T (float is the fast path).
#pragma once

#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <initializer_list>
#include <numbers>
#include <optional>
#include <span>
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

// What every optimiser shares, independent of the element type (for the schedules): the
// learning rate of each parameter group, and the number of step() calls.
class OptimizerBase {
public:
    // `who` names the optimiser in error messages ("SGD", "Adam", "AdamW"): a string literal.
    // One rate per parameter group (at least one).
    OptimizerBase(std::string_view who, std::vector<double> group_lrs) : who_(who) {
        for (double lr : group_lrs) {
            detail::check_option(who_, "lr", lr, 0, detail::kNoLimit);
            rates_.push_back({lr, lr});
        }
        if (rates_.empty()) rates_.push_back({0, 0});
    }
    virtual ~OptimizerBase() = default;
    virtual std::string_view name() const noexcept = 0;

    // Group 0's rate (the rate, for an optimiser of one group).
    double lr() const noexcept { return rates_[0].lr; }
    // Sets EVERY group's rate to lr. Raises an Error (and keeps the rates) unless lr is finite
    // and ≥ 0.
    void set_lr(double lr) {
        detail::check_option(who_, "lr", lr, 0, detail::kNoLimit);
        for (auto& r : rates_) r.lr = lr;
    }
    double initial_lr() const noexcept { return rates_[0].initial; }

    std::size_t group_count() const noexcept { return rates_.size(); }
    double group_lr(std::size_t g) const { return rates_.at(g).lr; }
    double group_initial_lr(std::size_t g) const { return rates_.at(g).initial; }
    void set_group_lr(std::size_t g, double lr) {
        if (g >= rates_.size()) fail("{}: no parameter group {} (there are {})", who_, g, rates_.size());
        detail::check_option(who_, "lr", lr, 0, detail::kNoLimit);
        rates_[g].lr = lr;
    }

    // Number of step() calls made so far (restored from checkpoints).
    std::uint64_t steps() const noexcept { return steps_; }
    void set_steps(std::uint64_t t) noexcept { steps_ = t; }

protected:
    struct Rate {
        double lr, initial;
    };
    std::string_view who_;
    std::vector<Rate> rates_;
    std::uint64_t steps_ = 0;
};

// A group of parameters with its own hyper-parameters (torch.optim's param group): an option
// left empty takes the optimiser's.
template <class T>
struct ParamGroup {
    std::vector<Parameter<T>*> params = {};
    std::optional<double> lr = std::nullopt;
    std::optional<double> weight_decay = std::nullopt;
};

namespace detail {
// Selects the optimisers' group constructors. Groups are passed as a braced list
// ({{.params = …, .lr = …}, …}) or as a std::vector<ParamGroup<T>> (a template there: a braced
// list of Parameter pointers would otherwise also match vector<ParamGroup>'s iterator-pair
// constructor and make the one-list constructor ambiguous).
struct GroupsTag {};
}  // namespace detail

template <class T>
class Optimizer : public OptimizerBase {
public:
    Optimizer(std::string_view who, std::vector<Parameter<T>*> params, double lr)
        : Optimizer(who, std::vector<ParamGroup<T>>{ParamGroup<T>{std::move(params)}}, lr, 0.0) {}
    Optimizer(std::string_view who, std::vector<ParamGroup<T>> groups, double lr, double weight_decay)
        : OptimizerBase(who, group_rates(who, groups, lr)) {
        for (std::size_t g = 0; g < groups.size(); ++g) {
            const double wd = groups[g].weight_decay.value_or(weight_decay);
            detail::check_option(who, "weight_decay", wd, 0, detail::kNoLimit);
            weight_decay_.push_back(wd);
            for (Parameter<T>* p : groups[g].params) {
                params_.push_back(p);
                group_of_.push_back(g);
            }
        }
        detail::check_parameters(params_, who, false);
    }
    virtual void step() = 0;
    void zero_grad() noexcept {
        for (Parameter<T>* p : params_) p->zero_grad();
    }
    // Every group's parameters, group after group.
    const std::vector<Parameter<T>*>& params() const noexcept { return params_; }
    // The group of params()[k], and a group's weight decay.
    std::size_t group_of(std::size_t k) const { return group_of_.at(k); }
    double group_weight_decay(std::size_t g) const { return weight_decay_.at(g); }

    // The optimiser's state buffers with stable names ("exp_avg/W0"), for checkpoints.
    struct StateTensor {
        std::string name;
        Tensor<T>* tensor;
    };
    virtual std::vector<StateTensor> state() = 0;
    // Per-parameter step counts (one per params() entry; empty when the optimiser keeps none),
    // for checkpoints.
    virtual std::span<std::uint64_t> param_steps() noexcept { return {}; }

protected:
    static std::vector<double> group_rates(std::string_view who, const std::vector<ParamGroup<T>>& groups, double lr) {
        if (groups.empty()) fail("{}: no parameter groups", who);
        std::vector<double> r;
        for (const auto& g : groups) r.push_back(g.lr.value_or(lr));
        return r;
    }
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
    std::vector<std::size_t> group_of_;  // group of params_[k]
    std::vector<double> weight_decay_;   // per group
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
    SGD(std::vector<Parameter<T>*> params, SGDOptions o = {})
        : SGD(detail::GroupsTag{}, {ParamGroup<T>{std::move(params)}}, o) {}
    // Groups: each with its own lr and weight_decay (the options' when not given).
    SGD(std::initializer_list<ParamGroup<T>> groups, SGDOptions o) : SGD(detail::GroupsTag{}, groups, o) {}
    template <class G>
        requires std::same_as<G, ParamGroup<T>>
    SGD(std::vector<G> groups, SGDOptions o) : SGD(detail::GroupsTag{}, std::move(groups), o) {}
    SGD(detail::GroupsTag, std::vector<ParamGroup<T>> groups, SGDOptions o)
        : Optimizer<T>("SGD", std::move(groups), o.lr, o.weight_decay), o_(o) {
        detail::check_option("SGD", "momentum", o.momentum, 0, detail::kNoLimit);
        detail::check_option("SGD", "dampening", o.dampening, 0, 1);
        if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
            fail("SGD: Nesterov momentum requires a momentum > 0 and zero dampening (momentum {}, dampening {})",
                 o.momentum, o.dampening);
        if (o.momentum != 0) buf_ = this->make_buffers();
    }
    std::string_view name() const noexcept override { return o_.nesterov ? "sgd-nesterov" : o_.momentum != 0 ? "sgd-momentum" : "sgd"; }
    const SGDOptions& options() const noexcept { return o_; }

    void step() override {
        this->check_grads("SGD");
        const bool first = this->steps_ == 0;
        ++this->steps_;
        for (std::size_t k = 0; k < this->params_.size(); ++k) {
            Parameter<T>& p = *this->params_[k];
            if (!p.requires_grad()) continue;  // frozen: no update, no momentum, no decay
            const std::size_t g = this->group_of_[k];
            const detail::SGDCoeffs<T> c{static_cast<T>(this->rates_[g].lr), static_cast<T>(this->weight_decay_[g]),
                                         static_cast<T>(o_.momentum),         static_cast<T>(1 - o_.dampening),
                                         o_.maximize ? T(-1) : T(1),          first,
                                         o_.nesterov};
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
        : Adam(detail::GroupsTag{}, {ParamGroup<T>{std::move(params)}}, o) {}
    // Groups: each with its own lr and weight_decay (the options' when not given).
    Adam(std::initializer_list<ParamGroup<T>> groups, AdamOptions o) : Adam(detail::GroupsTag{}, groups, o) {}
    template <class G>
        requires std::same_as<G, ParamGroup<T>>
    Adam(std::vector<G> groups, AdamOptions o) : Adam(detail::GroupsTag{}, std::move(groups), o) {}
    Adam(detail::GroupsTag, std::vector<ParamGroup<T>> groups, AdamOptions o)
        : Optimizer<T>(o.decoupled_weight_decay ? "AdamW" : "Adam", std::move(groups), o.lr, o.weight_decay), o_(o) {
        detail::check_option(this->who_, "beta1", o.beta1, 0, 1, true);
        detail::check_option(this->who_, "beta2", o.beta2, 0, 1, true);
        detail::check_option(this->who_, "eps", o.eps, 0, detail::kNoLimit);
        m_ = this->make_buffers();
        v_ = this->make_buffers();
        if (o.amsgrad) vmax_ = this->make_buffers();
        t_.assign(this->params_.size(), 0);
    }
    std::string_view name() const noexcept override { return o_.decoupled_weight_decay ? "adamw" : "adam"; }
    const AdamOptions& options() const noexcept { return o_; }

    void step() override {
        this->check_grads(name());
        ++this->steps_;
        for (std::size_t k = 0; k < this->params_.size(); ++k) {
            Parameter<T>& p = *this->params_[k];
            if (!p.requires_grad()) continue;  // frozen: no update, no moments, no decay, t unchanged
            const double t = static_cast<double>(++t_[k]);
            const double bc1 = 1 - std::pow(o_.beta1, t);
            const double bc2 = 1 - std::pow(o_.beta2, t);
            const std::size_t g = this->group_of_[k];
            const double lr = this->rates_[g].lr, wd = this->weight_decay_[g];
            const detail::AdamCoeffs<T> c{static_cast<T>(lr / bc1),
                                          static_cast<T>(1 / std::sqrt(bc2)),
                                          static_cast<T>(o_.beta1),
                                          static_cast<T>(1 - o_.beta1),
                                          static_cast<T>(o_.beta2),
                                          static_cast<T>(1 - o_.beta2),
                                          static_cast<T>(o_.eps),
                                          o_.decoupled_weight_decay ? T(0) : static_cast<T>(wd),
                                          static_cast<T>(1 - lr * (o_.decoupled_weight_decay ? wd : 0.0)),
                                          o_.maximize ? T(-1) : T(1)};
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
    // t of each parameter (torch's state['step']), in params() order.
    std::span<std::uint64_t> param_steps() noexcept override { return t_; }

private:
    AdamOptions o_;
    std::vector<Tensor<T>> m_, v_, vmax_;  // first and second moments (and their running max)
    std::vector<std::uint64_t> t_;         // steps taken by each parameter
};

// AdamW: Adam with decoupled weight decay p ← p·(1 − η·λ), default λ = 1e-2.
template <class T>
class AdamW final : public Adam<T> {
public:
    using Options = AdamWOptions;
    AdamW(std::vector<Parameter<T>*> params, AdamWOptions o = {})
        : Adam<T>(detail::GroupsTag{}, {ParamGroup<T>{std::move(params)}}, adam_options(o)) {}
    AdamW(std::initializer_list<ParamGroup<T>> groups, AdamWOptions o)
        : Adam<T>(detail::GroupsTag{}, groups, adam_options(o)) {}
    template <class G>
        requires std::same_as<G, ParamGroup<T>>
    AdamW(std::vector<G> groups, AdamWOptions o) : Adam<T>(detail::GroupsTag{}, std::move(groups), adam_options(o)) {}

private:
    static AdamOptions adam_options(const AdamWOptions& o) {
        return {.lr = o.lr,
                .beta1 = o.beta1,
                .beta2 = o.beta2,
                .eps = o.eps,
                .weight_decay = o.weight_decay,
                .amsgrad = o.amsgrad,
                .decoupled_weight_decay = true,
                .maximize = o.maximize};
    }
};

// nanoGPT's configure_optimizers: two AdamW groups, `decay` (weight_decay) and `no_decay` (0).
// A parameter decays when it is a matrix in torch's sense, dim ≥ 2: Linear weights and the
// embedding tables (nanoGPT decays wte and wpe too); biases and LayerNorm weights and biases do
// not. tapegrad stores a Linear's bias as a 1×out row where torch has a vector, so a rank-2
// parameter with one row counts as a vector here (a Linear with in = 1 would have such a weight:
// pass `decays` to decide otherwise). Empty groups are kept (torch accepts them).
template <class T>
std::vector<ParamGroup<T>> adamw_param_groups(const std::vector<Parameter<T>*>& params, double weight_decay,
                                              bool (*decays)(const Parameter<T>&) = nullptr) {
    std::vector<ParamGroup<T>> g(2);
    g[0].weight_decay = weight_decay;
    g[1].weight_decay = 0.0;
    for (Parameter<T>* p : params) {
        if (p == nullptr) fail("adamw_param_groups: a parameter is null");
        const Shape s = p->shape();
        const bool matrix = decays ? decays(*p) : s.rank() >= 2 && !(s.rank() == 2 && s[0] == 1);
        g[matrix ? 0 : 1].params.push_back(p);
    }
    return g;
}

// ---- learning-rate schedules -------------------------------------------------------------------
// Each sets every group's lr from its closed form (torch's _get_closed_form_lr) at epoch e, from
// that group's initial rate η₀; step() advances e by one, as torch's scheduler.step(). lr() is
// group 0's rate.

namespace detail {
template <class F>
void set_group_rates(OptimizerBase& opt, F&& rate_of_initial) {
    for (std::size_t g = 0; g < opt.group_count(); ++g) opt.set_group_lr(g, rate_of_initial(opt.group_initial_lr(g)));
}
}  // namespace detail

// η_e = η₀ · γ^⌊e / step_size⌋
class StepLR {
public:
    StepLR(OptimizerBase& opt, std::size_t step_size, double gamma = 0.1)
        : opt_(opt), step_size_(step_size), gamma_(gamma) {
        if (step_size == 0) fail("StepLR: step_size must be positive");
        detail::check_option("StepLR", "gamma", gamma, 0, detail::kNoLimit);
    }
    void step() { set_epoch(epoch_ + 1); }
    void set_epoch(std::size_t e) {
        epoch_ = e;
        const double f = std::pow(gamma_, static_cast<double>(e / step_size_));
        detail::set_group_rates(opt_, [&](double base) { return base * f; });
    }
    std::size_t epoch() const noexcept { return epoch_; }
    double lr() const noexcept { return opt_.lr(); }

private:
    OptimizerBase& opt_;
    std::size_t step_size_;
    double gamma_;
    std::size_t epoch_ = 0;
};

// η_e = η_min + (η₀ − η_min) · (1 + cos(π·e / T_max)) / 2
class CosineAnnealingLR {
public:
    CosineAnnealingLR(OptimizerBase& opt, std::size_t t_max, double eta_min = 0)
        : opt_(opt), t_max_(t_max), eta_min_(eta_min) {
        if (t_max == 0) fail("CosineAnnealingLR: T_max must be positive");
        detail::check_option("CosineAnnealingLR", "eta_min", eta_min, 0, detail::kNoLimit);
    }
    void step() { set_epoch(epoch_ + 1); }
    void set_epoch(std::size_t e) {
        epoch_ = e;
        const double c = std::cos(std::numbers::pi * static_cast<double>(e) / static_cast<double>(t_max_));
        detail::set_group_rates(opt_, [&](double base) { return eta_min_ + (base - eta_min_) * (1 + c) / 2; });
    }
    std::size_t epoch() const noexcept { return epoch_; }
    double lr() const noexcept { return opt_.lr(); }

private:
    OptimizerBase& opt_;
    std::size_t t_max_;
    double eta_min_;
    std::size_t epoch_ = 0;
};

// Linear warm-up, then cosine decay to min_lr: nanoGPT's get_lr(it), stepped once per iteration
// (construct it before the first step: it sets the rate of iteration 0; call step() after each
// optimiser step). With η₀ the initial rate and W = warmup_iters, D = lr_decay_iters:
//   it < W:        η = η₀ · (it + 1) / (W + 1)
//   it > D:        η = min_lr
//   otherwise:     r = (it − W) / (D − W),  η = min_lr + (η₀ − min_lr) · (1 + cos(π·r)) / 2
// As a LambdaLR: λ(it) = η(it) / η₀ of group 0, and every group's rate is its own η₀ · λ(it)
// (a group with twice group 0's rate keeps twice its rate, min_lr included).
struct WarmupCosineOptions {
    std::size_t warmup_iters = 0;
    std::size_t lr_decay_iters = 0;
    double min_lr = 0;
};

class WarmupCosineLR {
public:
    WarmupCosineLR(OptimizerBase& opt, WarmupCosineOptions o) : opt_(opt), o_(o) {
        if (o.lr_decay_iters < o.warmup_iters)
            fail("WarmupCosineLR: lr_decay_iters {} is below warmup_iters {}", o.lr_decay_iters, o.warmup_iters);
        detail::check_option("WarmupCosineLR", "min_lr", o.min_lr, 0, detail::kNoLimit);
        set_iteration(0);
    }
    // λ(it): the factor applied to each group's initial rate at iteration it.
    double factor(std::size_t it) const {
        const double base = opt_.initial_lr();
        if (base == 0) return 0;
        const double w = static_cast<double>(o_.warmup_iters), i = static_cast<double>(it);
        if (it < o_.warmup_iters) return (i + 1) / (w + 1);
        if (it > o_.lr_decay_iters) return o_.min_lr / base;
        const double span = static_cast<double>(o_.lr_decay_iters - o_.warmup_iters);
        const double r = span == 0 ? 1.0 : (i - w) / span;
        const double coeff = (1 + std::cos(std::numbers::pi * r)) / 2;
        return (o_.min_lr + coeff * (base - o_.min_lr)) / base;
    }
    void step() { set_iteration(it_ + 1); }
    void set_iteration(std::size_t it) {
        it_ = it;
        const double f = factor(it);
        detail::set_group_rates(opt_, [&](double base) { return base * f; });
    }
    std::size_t iteration() const noexcept { return it_; }
    double lr() const noexcept { return opt_.lr(); }

private:
    OptimizerBase& opt_;
    WarmupCosineOptions o_;
    std::size_t it_ = 0;
};

}  // namespace tapegrad::nn
