// Convolutional-network layers with torch's constructor arguments, defaults and initialisation:
// Conv2d, MaxPool2d, AvgPool2d, BatchNorm2d, Dropout, Flatten; and put_buffers / get_buffers,
// which store a module's buffers (batch norm's running statistics) in a checkpoint Archive.
//
// Initialisation (torch's reset_parameters): Conv2d's weight kaiming_uniform_(a = √5), i.e.
// U(−1/√fan_in, 1/√fan_in) with fan_in = (C/groups)·kh·kw, and its bias from the same range
// (Init::torch_default); BatchNorm2d's γ = 1, β = 0, running_mean = 0, running_var = 1.
// Naming: as Linear, a layer built without an index is named by its position among a
// Sequential's layers that have parameters: W<i>, b<i> (Conv2d), gamma<i>, beta<i>,
// running_mean<i>, running_var<i>, num_batches_tracked<i> (BatchNorm2d).
// Modes: Dropout and BatchNorm2d read Module::is_training() (train() / eval()).
#pragma once

#include <fmt/format.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <tapegrad/core/recompute.hpp>
#include <tapegrad/nn/checkpoint.hpp>
#include <tapegrad/nn/init.hpp>
#include <tapegrad/nn/layers.hpp>
#include <tapegrad/nn/parameter.hpp>
#include <tapegrad/nn/random.hpp>
#include <tapegrad/ops/conv.hpp>
#include <tapegrad/ops/norm.hpp>
#include <tapegrad/ops/pool.hpp>
#include <tapegrad/tapegrad.hpp>
#include <vector>

namespace tapegrad::nn {

namespace detail {
inline std::size_t next_default_conv_index() noexcept {
    static std::atomic<std::size_t> next{1000000};  // apart from Linear's defaults until renamed
    return next.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace detail

// torch.nn.Conv2d(in, out, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True).
struct Conv2dOptions {
    std::array<std::size_t, 2> stride{1, 1};
    std::array<std::size_t, 2> padding{0, 0};
    std::array<std::size_t, 2> dilation{1, 1};
    std::size_t groups = 1;
    bool bias = true;
};

// y = conv2d(x, W) + b:  x N×in×H×W, W out×(in/groups)×kh×kw, b out.
template <class T>
class Conv2d final : public Module<T>, public PositionNamed {
public:
    Conv2d(std::size_t in, std::size_t out, std::array<std::size_t, 2> kernel, Rng& rng,
           Conv2dOptions opt = {}, std::optional<std::size_t> index = std::nullopt)
        : in_(in),
          out_(out),
          kernel_(kernel),
          opt_(opt),
          explicit_index_(index.has_value()),
          index_(index ? *index : detail::next_default_conv_index()),
          w_(Tensor<T>(Shape{out, opt.groups ? in / opt.groups : 0, kernel[0], kernel[1]}), "W"),
          b_(opt.bias ? Parameter<T>(Tensor<T>(Shape{out}), "b") : Parameter<T>()) {
        if (in == 0 || out == 0 || kernel[0] == 0 || kernel[1] == 0)
            fail("Conv2d: zero-sized layer {}→{} with kernel {}×{}", in, out, kernel[0], kernel[1]);
        if (opt.groups == 0 || in % opt.groups || out % opt.groups)
            fail("Conv2d: groups = {} must divide in_channels {} and out_channels {}", opt.groups, in, out);
        const std::size_t fan_in = in / opt.groups * kernel[0] * kernel[1];
        initialize(w_.value, Init::torch_default, fan_in, out, 1.0, rng);
        if (opt.bias) {
            initialize(b_.value, Init::torch_default, fan_in, out, 1.0, rng);
        }
        renumber(index_);
    }
    Conv2d(std::size_t in, std::size_t out, std::size_t kernel, Rng& rng, Conv2dOptions opt = {},
           std::optional<std::size_t> index = std::nullopt)
        : Conv2d(in, out, {kernel, kernel}, rng, opt, index) {}

    Var<T> forward(Tape<T>& tape, const Var<T>& x) override {
        if (opt_.bias) return conv2d(x, w_.var(tape), b_.var(tape), params());
        return conv2d(x, w_.var(tape), params());
    }
    // Inference on tensors (no tape): each layer's output is freed once the next one has read it.
    Tensor<T> infer(const Tensor<T>& x) override {
        if (opt_.bias) return conv2d(x, w_.value, b_.value, params());
        return conv2d(x, w_.value, params());
    }
    bool batch_independent() const override { return true; }  // image by image (ops/conv.hpp)
    Var<T> forward_with(Tape<T>&, const Var<T>& x, std::span<const Var<T>> p) override {
        if (p.size() != (opt_.bias ? 2u : 1u))
            fail("{}: forward_with needs {} parameter Vars, {} given", describe(), opt_.bias ? 2 : 1,
                 p.size());
        return opt_.bias ? conv2d(x, p[0], p[1], params()) : conv2d(x, p[0], params());
    }
    std::vector<Parameter<T>*> parameters() override {
        if (opt_.bias) return {&w_, &b_};
        return {&w_};
    }
    std::string describe() const override {
        std::string s = fmt::format("Conv2d({}, {}, kernel_size=({}, {})", in_, out_, kernel_[0], kernel_[1]);
        if (opt_.stride != std::array<std::size_t, 2>{1, 1})
            s += fmt::format(", stride=({}, {})", opt_.stride[0], opt_.stride[1]);
        if (opt_.padding != std::array<std::size_t, 2>{0, 0})
            s += fmt::format(", padding=({}, {})", opt_.padding[0], opt_.padding[1]);
        if (opt_.dilation != std::array<std::size_t, 2>{1, 1})
            s += fmt::format(", dilation=({}, {})", opt_.dilation[0], opt_.dilation[1]);
        if (opt_.groups != 1) s += fmt::format(", groups={}", opt_.groups);
        if (!opt_.bias) s += ", bias=False";
        return s + ")";
    }
    bool has_explicit_index() const noexcept override { return explicit_index_; }
    void renumber(std::size_t i) override {
        index_ = i;
        w_.name = fmt::format("W{}", i);
        b_.name = fmt::format("b{}", i);
    }
    Parameter<T>& weight() noexcept { return w_; }
    Parameter<T>& bias() {
        if (!opt_.bias) fail("{}: has no bias", describe());
        return b_;
    }
    Conv2dParams params() const noexcept { return {opt_.stride, opt_.padding, opt_.dilation, opt_.groups}; }

private:
    std::size_t in_, out_;
    std::array<std::size_t, 2> kernel_;
    Conv2dOptions opt_;
    bool explicit_index_;
    std::size_t index_;
    Parameter<T> w_, b_;
};

// torch.nn.MaxPool2d(kernel_size, stride=None (the kernel), padding=0, dilation=1, ceil_mode=False).
template <class T>
class MaxPool2d final : public Module<T> {
public:
    explicit MaxPool2d(Pool2dParams q) : q_(q) {}
    explicit MaxPool2d(std::size_t kernel) : q_{{kernel, kernel}} {}
    Var<T> forward(Tape<T>&, const Var<T>& x) override { return max_pool2d(x, q_); }
    Tensor<T> infer(const Tensor<T>& x) override { return max_pool2d(x, q_); }
    bool batch_independent() const override { return true; }  // plane by plane
    Var<T> forward_with(Tape<T>& tape, const Var<T>& x, std::span<const Var<T>> p) override {
        if (!p.empty()) fail("{}: takes no parameters, {} given", describe(), p.size());
        return forward(tape, x);
    }
    std::string describe() const override {
        return fmt::format("MaxPool2d(kernel_size=({}, {}), stride=({}, {}), padding=({}, {}){})",
                           q_.kernel[0], q_.kernel[1], q_.stride[0] ? q_.stride[0] : q_.kernel[0],
                           q_.stride[1] ? q_.stride[1] : q_.kernel[1], q_.padding[0], q_.padding[1],
                           q_.ceil_mode ? ", ceil_mode=True" : "");
    }

private:
    Pool2dParams q_;
};

// torch.nn.AvgPool2d(kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True).
template <class T>
class AvgPool2d final : public Module<T> {
public:
    explicit AvgPool2d(Pool2dParams q, bool count_include_pad = true)
        : q_(q), include_pad_(count_include_pad) {}
    explicit AvgPool2d(std::size_t kernel) : q_{{kernel, kernel}} {}
    Var<T> forward(Tape<T>&, const Var<T>& x) override { return avg_pool2d(x, q_, include_pad_); }
    Tensor<T> infer(const Tensor<T>& x) override { return avg_pool2d(x, q_, include_pad_); }
    bool batch_independent() const override { return true; }  // plane by plane
    Var<T> forward_with(Tape<T>& tape, const Var<T>& x, std::span<const Var<T>> p) override {
        if (!p.empty()) fail("{}: takes no parameters, {} given", describe(), p.size());
        return forward(tape, x);
    }
    std::string describe() const override {
        return fmt::format("AvgPool2d(kernel_size=({}, {}), stride=({}, {}), padding=({}, {}))", q_.kernel[0],
                           q_.kernel[1], q_.stride[0] ? q_.stride[0] : q_.kernel[0],
                           q_.stride[1] ? q_.stride[1] : q_.kernel[1], q_.padding[0], q_.padding[1]);
    }

private:
    Pool2dParams q_;
    bool include_pad_ = true;
};

// torch.nn.BatchNorm2d(num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True).
struct BatchNormLayerOptions {
    double eps = 1e-5;
    std::optional<double> momentum = 0.1;  // none: the cumulative average
    bool affine = true;
    bool track_running_stats = true;
};

template <class T>
class BatchNorm2d final : public Module<T>, public PositionNamed {
public:
    explicit BatchNorm2d(std::size_t num_features, BatchNormLayerOptions opt = {},
                         std::optional<std::size_t> index = std::nullopt)
        : c_(num_features),
          opt_(opt),
          explicit_index_(index.has_value()),
          gamma_(opt.affine ? Parameter<T>(Tensor<T>::filled(Shape{num_features}, T(1)), "gamma")
                            : Parameter<T>()),
          beta_(opt.affine ? Parameter<T>(Tensor<T>(Shape{num_features}), "beta") : Parameter<T>()),
          running_mean_(Shape{num_features}),
          running_var_(Tensor<T>::filled(Shape{num_features}, T(1))) {
        if (num_features == 0) fail("BatchNorm2d: num_features = 0");
        renumber(index ? *index : detail::next_default_conv_index());
    }
    Var<T> forward(Tape<T>& tape, const Var<T>& x) override {
        if (opt_.affine) return compute(x, gamma_.var(tape), beta_.var(tape));
        return compute(x, Var<T>{}, Var<T>{});
    }
    Var<T> forward_with(Tape<T>&, const Var<T>& x, std::span<const Var<T>> p) override {
        if (p.size() != (opt_.affine ? 2u : 0u))
            fail("{}: forward_with needs {} parameter Vars, {} given", describe(), opt_.affine ? 2 : 0,
                 p.size());
        return opt_.affine ? compute(x, p[0], p[1]) : compute(x, Var<T>{}, Var<T>{});
    }
    // Eval on tensors with the running statistics; training (batch statistics, updated running
    // statistics) goes through forward() on a scratch tape.
    Tensor<T> infer(const Tensor<T>& x) override {
        if (this->is_training() || !opt_.track_running_stats) return Module<T>::infer(x);
        if (x.shape().rank() != 4) fail("{}: input {} is not 4-D (N×C×H×W)", describe(), x.shape());
        if (x.shape()[1] != c_)
            fail("{}: input {} has {} channels, expected {}", describe(), x.shape(), x.shape()[1], c_);
        BatchNormOptions<T> o;
        o.eps = opt_.eps;
        o.training = false;
        o.running_mean = &running_mean_;
        o.running_var = &running_var_;
        if (opt_.affine) return batch_norm(x, gamma_.value, beta_.value, o);
        return batch_norm(x, o);
    }
    std::vector<Parameter<T>*> parameters() override {
        if (opt_.affine) return {&gamma_, &beta_};
        return {};
    }
    std::vector<Buffer<T>> buffers() override {
        if (!opt_.track_running_stats) return {};
        return {{names_[0], &running_mean_, nullptr},
                {names_[1], &running_var_, nullptr},
                {names_[2], nullptr, &tracked_}};
    }
    std::string describe() const override {
        return fmt::format("BatchNorm2d({}, eps={}, momentum={}, affine={}, track_running_stats={})", c_,
                           opt_.eps, opt_.momentum ? fmt::format("{}", *opt_.momentum) : std::string("None"),
                           opt_.affine ? "True" : "False", opt_.track_running_stats ? "True" : "False");
    }
    bool has_explicit_index() const noexcept override { return explicit_index_; }
    void renumber(std::size_t i) override {
        gamma_.name = fmt::format("gamma{}", i);
        beta_.name = fmt::format("beta{}", i);
        names_ = {fmt::format("running_mean{}", i), fmt::format("running_var{}", i),
                  fmt::format("num_batches_tracked{}", i)};
    }
    const Tensor<T>& running_mean() const noexcept { return running_mean_; }
    const Tensor<T>& running_var() const noexcept { return running_var_; }
    std::int64_t num_batches_tracked() const noexcept { return tracked_; }
    Parameter<T>& weight() noexcept { return gamma_; }
    Parameter<T>& bias() noexcept { return beta_; }

private:
    Var<T> compute(const Var<T>& x, const Var<T>& g, const Var<T>& b) {
        if (x.shape().rank() != 4) fail("{}: input {} is not 4-D (N×C×H×W)", describe(), x.shape());
        if (x.shape()[1] != c_)
            fail("{}: input {} has {} channels, expected {}", describe(), x.shape(), x.shape()[1], c_);
        BatchNormOptions<T> o;
        o.eps = opt_.eps;
        o.momentum = opt_.momentum;
        // torch: batch statistics in training, or always when not tracking running statistics.
        o.training = this->is_training() || !opt_.track_running_stats;
        // Updated in training, used in eval; a checkpoint's recomputation of the forward
        // (recompute.hpp) uses the batch statistics again but does not update them twice.
        if (opt_.track_running_stats && (!this->is_training() || !recomputing())) {
            o.running_mean = &running_mean_;
            o.running_var = &running_var_;
            if (this->is_training()) o.num_batches_tracked = &tracked_;
        }
        if (opt_.affine) return batch_norm(x, g, b, o);
        return batch_norm(x, o);
    }
    std::size_t c_;
    BatchNormLayerOptions opt_;
    bool explicit_index_;
    Parameter<T> gamma_, beta_;
    Tensor<T> running_mean_, running_var_;
    std::int64_t tracked_ = 0;
    std::array<std::string, 3> names_;
};

// torch.nn.Dropout(p=0.5): inverted dropout in training, the identity in eval. The mask of
// the k-th training forward is Philox(seed, k): reproducible from the seed. Under checkpoint(),
// the recomputation replays the k of the first run (recompute.hpp) and does not advance k.
template <class T>
class Dropout final : public Module<T> {
public:
    explicit Dropout(double p = 0.5, std::uint64_t seed = 0) : p_(p), seed_(seed) {
        if (!(p >= 0 && p <= 1)) fail("Dropout: probability {} outside [0, 1]", p);
    }
    Var<T> forward(Tape<T>&, const Var<T>& x) override {
        if (!this->is_training()) return x;
        const std::uint64_t k = replay(calls_);
        if (!recomputing()) ++calls_;
        return dropout(x, p_, true, seed_, k);
    }
    Tensor<T> infer(const Tensor<T>& x) override {
        if (this->is_training()) return Module<T>::infer(x);
        return x.clone(std::pmr::get_default_resource());
    }
    // The identity in eval; a training mask depends on the sample's place in the batch.
    bool batch_independent() const override { return !this->is_training(); }
    Var<T> forward_with(Tape<T>& tape, const Var<T>& x, std::span<const Var<T>> p) override {
        if (!p.empty()) fail("{}: takes no parameters, {} given", describe(), p.size());
        return forward(tape, x);
    }
    std::string describe() const override { return fmt::format("Dropout(p={})", p_); }
    std::uint64_t calls() const noexcept { return calls_; }
    void set_calls(std::uint64_t k) noexcept { calls_ = k; }

private:
    double p_;
    std::uint64_t seed_, calls_ = 0;
};

// torch.nn.Flatten(start_dim=1, end_dim=-1) for the usual case: N×… → N×(the rest).
template <class T>
class Flatten final : public Module<T> {
public:
    Var<T> forward(Tape<T>&, const Var<T>& x) override {
        const Shape s = x.shape();
        if (s.rank() < 1) fail("Flatten: input {} has no batch axis", s);
        return apply(Reshape{Shape{s[0], s[0] ? s.numel() / s[0] : 0}}, x);
    }
    // A copy, not a view: Sequential::infer frees the layer's input once it has its output.
    Tensor<T> infer(const Tensor<T>& x) override {
        const Shape s = x.shape();
        if (s.rank() < 1) fail("Flatten: input {} has no batch axis", s);
        return apply(Reshape{Shape{s[0], s[0] ? s.numel() / s[0] : 0}}, x).clone(std::pmr::get_default_resource());
    }
    bool batch_independent() const override { return true; }
    Var<T> forward_with(Tape<T>& tape, const Var<T>& x, std::span<const Var<T>> p) override {
        if (!p.empty()) fail("Flatten: takes no parameters, {} given", p.size());
        return forward(tape, x);
    }
    std::string describe() const override { return "Flatten(start_dim=1, end_dim=-1)"; }
};

namespace detail {
// A buffer as the archive's rows × cols entry (1 × numel).
template <class T>
Tensor<T> as_row(Tensor<T>& t) {
    return Tensor<T>::view(t.data(), Shape{1, t.size()}, std::pmr::get_default_resource());
}
}  // namespace detail

// torch.nn.Unflatten(1, sizes): N×(∏ sizes) → N×sizes (e.g. 784-feature rows to 1×28×28 images).
template <class T>
class Unflatten final : public Module<T> {
public:
    explicit Unflatten(Shape sizes) : sizes_(sizes) {
        if (sizes.rank() + 1 > kMaxRank) fail("Unflatten: {} leaves no room for the batch axis", sizes);
    }
    Var<T> forward(Tape<T>&, const Var<T>& x) override { return apply(Reshape{unflattened(x.shape())}, x); }
    // A copy, not a view: Sequential::infer frees the layer's input once it has its output.
    Tensor<T> infer(const Tensor<T>& x) override {
        return apply(Reshape{unflattened(x.shape())}, x).clone(std::pmr::get_default_resource());
    }
    bool batch_independent() const override { return true; }
    Var<T> forward_with(Tape<T>& tape, const Var<T>& x, std::span<const Var<T>> p) override {
        if (!p.empty()) fail("Unflatten: takes no parameters, {} given", p.size());
        return forward(tape, x);
    }
    std::string describe() const override { return fmt::format("Unflatten(1, {})", sizes_); }

private:
    // N×(∏ sizes) → N×sizes…
    Shape unflattened(const Shape& s) const {
        if (s.rank() != 2 || s[1] != sizes_.numel())
            fail("{}: input {} is not N×{}", describe(), s, sizes_.numel());
        std::array<std::size_t, kMaxRank> d{};
        d[0] = s[0];
        for (std::size_t k = 0; k < sizes_.rank(); ++k) d[k + 1] = sizes_[k];
        return Shape(std::span<const std::size_t>(d.data(), sizes_.rank() + 1));
    }
    Shape sizes_;
};

// Stores m's buffers as entries "buffer/<name>" (tensors as T, 1 × numel; counters as u64).
template <class T>
void put_buffers(Archive& a, Module<T>& m) {
    for (const Buffer<T>& b : m.buffers()) {
        if (b.tensor) a.put("buffer/" + b.name, detail::as_row(*b.tensor));
        if (b.count) {
            const std::uint64_t v[1] = {static_cast<std::uint64_t>(*b.count)};
            a.put_u64("buffer/" + b.name, v);
        }
    }
}
// Restores what put_buffers stored; every entry is checked before any buffer changes.
template <class T>
void get_buffers(const Archive& a, Module<T>& m) {
    const std::vector<Buffer<T>> bs = m.buffers();
    for (const Buffer<T>& b : bs) {
        if (b.tensor) a.check_tensor<T>("buffer/" + b.name, Shape{1, b.tensor->size()});
        if (b.count && a.get_u64("buffer/" + b.name).size() != 1)
            fail("{}: entry 'buffer/{}' should hold one counter", a.source(), b.name);
    }
    for (const Buffer<T>& b : bs) {
        if (b.tensor) {
            Tensor<T> row = detail::as_row(*b.tensor);
            a.get("buffer/" + b.name, row);
        }
        if (b.count) *b.count = static_cast<std::int64_t>(a.get_u64("buffer/" + b.name)[0]);
    }
}

}  // namespace tapegrad::nn
