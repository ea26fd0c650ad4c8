// Layers built only on the public op API: Linear, activation layers, Sequential, and the MLP
// builder. A network is a Module: net(tape, x) records its forward pass on `tape` and returns
// the output Var; the parameters enter the tape as External leaves, so backward() leaves
// ∂E/∂p in each Parameter's grad.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numbers>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>
#include <tapegrad/ops/activations.hpp>
#include <tapegrad/ops/structure.hpp>
#include <tapegrad/nn/init.hpp>
#include <tapegrad/nn/parameter.hpp>
#include <tapegrad/nn/random.hpp>

namespace tapegrad::nn {

// ---- activations -------------------------------------------------------------------------------

enum class Activation { identity, relu, leaky_relu, sigmoid, tanh, softplus };

inline std::string_view to_string(Activation a) noexcept {
    switch (a) {
        case Activation::identity: return "identity";
        case Activation::relu: return "relu";
        case Activation::leaky_relu: return "leaky_relu";
        case Activation::sigmoid: return "sigmoid";
        case Activation::tanh: return "tanh";
        case Activation::softplus: return "softplus";
    }
    return "?";
}

// The initialisation gain torch.nn.init.calculate_gain gives for an activation.
inline double gain_for(Activation a, double slope = 0.01) noexcept {
    switch (a) {
        case Activation::relu: return std::numbers::sqrt2;
        case Activation::leaky_relu: return std::sqrt(2.0 / (1.0 + slope * slope));
        case Activation::tanh: return 5.0 / 3.0;
        default: return 1.0;
    }
}

// φ(x) for the activation `a` (leaky relu's negative slope is `slope`).
template <Value V>
V activate(Activation a, const V& x, double slope = 0.01) {
    switch (a) {
        case Activation::identity: return x;
        case Activation::relu: return tapegrad::relu(x);
        case Activation::leaky_relu: return tapegrad::leaky_relu(x, slope);
        case Activation::sigmoid: return tapegrad::sigmoid(x);
        case Activation::tanh: return tapegrad::tanh(x);
        case Activation::softplus: return tapegrad::softplus(x);
    }
    return x;
}

template <class T>
class ActivationLayer final : public Module<T> {
public:
    explicit ActivationLayer(Activation a, double slope = 0.01) : act_(a), slope_(slope) {}
    Var<T> forward(Tape<T>&, const Var<T>& x) override { return activate(act_, x, slope_); }
    Tensor<T> infer(const Tensor<T>& x) override { return activate(act_, x, slope_); }
    bool batch_independent() const override { return true; }  // elementwise
    Var<T> forward_with(Tape<T>& tape, const Var<T>& x, std::span<const Var<T>> params) override {
        if (!params.empty()) fail("{}: takes no parameters, {} given", describe(), params.size());
        return forward(tape, x);
    }
    std::string describe() const override { return std::string(to_string(act_)); }
    Activation activation() const noexcept { return act_; }

private:
    Activation act_;
    double slope_;
};

// ---- Linear ------------------------------------------------------------------------------------

struct LinearOptions {
    bool bias = true;
    // Keep the bias as the last row of W and append a column of ones to x (seed 000's
    // convention: [x 1]·W), instead of a separate 1×n row b broadcast-added to x·W.
    bool fold_bias = false;
    Init init = Init::he_uniform;
    double gain = std::numbers::sqrt2;
    Init bias_init = Init::zeros;
};

namespace detail {
// The index a Linear built without one takes: 0, 1, 2, … in construction order, process-wide,
// so that two such layers never share parameter names (a Sequential renames them by position).
inline std::size_t next_default_linear_index() noexcept {
    static std::atomic<std::size_t> next{0};
    return next.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace detail

template <class T>
class Sequential;

// A layer whose parameters Sequential names by position when it was built without an index
// (Linear does so by itself; nn/conv.hpp's layers through this interface).
class PositionNamed {
public:
    virtual ~PositionNamed() = default;
    virtual bool has_explicit_index() const noexcept = 0;
    virtual void renumber(std::size_t index) = 0;
};

// y = x·W + b        x: m×in, W: in×out, b: 1×out (broadcast over the m rows), y: m×out
// folded: y = [x 1]·W,  W: (in+1)×out with b as its last row.
// An input of rank ≥ 3, (…, in), gives (…, out), as torch.nn.Linear: with a separate bias it
// goes straight to affine, which reads x as the (∏…)×in matrix of its rows (one GEMM, no copy);
// without a bias or with a folded one, x is reshaped to that matrix (a view when x is contiguous)
// and the result reshaped back.
// The gradients come from the ops' VJPs: dW = xᵀ·dy, db = 1ᵀ·dy (the engine's sum over the
// broadcast rows), dx = dy·Wᵀ.
template <class T>
class Linear final : public Module<T> {
public:
    // `index` names the parameters W<index>, b<index>. Without one, the layer takes the next
    // default index of the process (unique), and a Sequential it is added to renames it by its
    // position among the Sequential's layers that have parameters (as MLP names its layers).
    Linear(std::size_t in, std::size_t out, Rng& rng, LinearOptions opt = {},
           std::optional<std::size_t> index = std::nullopt)
        : in_(in),
          out_(out),
          opt_(opt),
          explicit_index_(index.has_value()),
          index_(index ? *index : detail::next_default_linear_index()),
          w_(Tensor<T>(checked_rows(in, out, opt), out), fmt::format("W{}", index_)),
          b_(separate(opt) ? Parameter<T>(Tensor<T>(1, out), fmt::format("b{}", index_)) : Parameter<T>()) {
        Tensor<T> top = Tensor<T>::view(w_.value.data(), {in, out}, std::pmr::get_default_resource());
        initialize(top, opt.init, in, out, opt.gain, rng);
        if (opt.bias) {
            Tensor<T> b(1, out);
            initialize(b, opt.bias_init, in, out, 1.0, rng);
            if (opt.fold_bias)
                std::copy_n(b.data(), out, w_.value.data() + in * out);
            else
                std::copy_n(b.data(), out, b_.value.data());
        }
    }

    Var<T> forward(Tape<T>& tape, const Var<T>& x) override {
        return compute(tape, x, w_.var(tape), separate(opt_) ? b_.var(tape) : Var<T>{});
    }
    Tensor<T> infer(const Tensor<T>& x) override {
        const Tensor<T>& w = w_.value;
        return compute(x, w, separate(opt_) ? b_.value : w, [](const Tensor<T>& ones) { return ones; });
    }
    Var<T> forward_with(Tape<T>& tape, const Var<T>& x, std::span<const Var<T>> params) override {
        const bool sep = separate(opt_);
        if (params.size() != (sep ? 2u : 1u))
            fail("{}: forward_with needs {} parameter Vars, {} given", describe(), sep ? 2 : 1, params.size());
        return compute(tape, x, params[0], sep ? params[1] : Var<T>{});
    }

    std::vector<Parameter<T>*> parameters() override {
        if (separate(opt_)) return {&w_, &b_};
        return {&w_};
    }
    std::string describe() const override {
        return fmt::format("Linear({}→{}{})", in_, out_,
                           !opt_.bias ? ", no bias" : opt_.fold_bias ? ", bias folded" : "");
    }

    Parameter<T>& weight() noexcept { return w_; }
    Parameter<T>& bias() {
        if (!separate(opt_)) fail("Linear: {} has no separate bias parameter", describe());
        return b_;
    }
    std::size_t in_features() const noexcept { return in_; }
    std::size_t out_features() const noexcept { return out_; }

private:
    friend class Sequential<T>;

    static bool separate(const LinearOptions& o) noexcept { return o.bias && !o.fold_bias; }
    static std::size_t checked_rows(std::size_t in, std::size_t out, const LinearOptions& o) {
        if (in == 0 || out == 0) fail("Linear: zero-sized layer {}→{}", in, out);
        return o.bias && o.fold_bias ? in + 1 : in;
    }
    // Called by Sequential when the layer was built without an index.
    void renumber(std::size_t index) {
        index_ = index;
        w_.name = fmt::format("W{}", index);
        if (separate(opt_)) b_.name = fmt::format("b{}", index);
    }

    Var<T> compute(Tape<T>& tape, const Var<T>& x, const Var<T>& w, const Var<T>& b) {
        return compute(x, w, b, [&](const Tensor<T>& ones) { return tape.constant(ones); });
    }
    Tensor<T> ones_column(std::size_t m) {
        if (ones_.rows() < m) ones_ = Tensor<T>::filled(m, 1, T(1));
        return Tensor<T>::view(ones_.data(), {m, 1}, std::pmr::get_default_resource());
    }
    // On Vars or on tensors (infer): `lift` turns the column of ones into an operand.
    template <Value V, class Lift>
    V compute(const V& x, const V& w, const V& b, Lift&& lift) {
        if (x.shape().rank() > 2) {  // (…, in): the leading axes flattened into rows, then restored
            const Shape s = x.shape();
            if (s.cols() != in_)
                fail("{}: input has shape {}, expected {} features along its last axis", describe(), s, in_);
            if (separate(opt_)) {  // affine takes (…, in) itself
                if (w.shape() != w_.shape())
                    fail("{}: weight has shape {}, expected {}", describe(), w.shape(), w_.shape());
                return affine(x, w, b);
            }
            const V y = compute(reshape(x, Shape{s.numel() / in_, in_}), w, b, lift);
            if constexpr (is_tensor<V>::value)  // (a view of the local y would dangle)
                return reshape(y, s.with(s.rank() - 1, out_)).clone(y.resource());
            else
                return reshape(y, s.with(s.rank() - 1, out_));
        }
        if (x.cols() != in_) fail("{}: input has shape {}, expected {} columns", describe(), x.shape(), in_);
        if (w.shape() != w_.shape()) fail("{}: weight has shape {}, expected {}", describe(), w.shape(), w_.shape());
        if (!opt_.bias) return matmul(x, w);
        if (opt_.fold_bias) {
            // The column of ones is copied into the tape's arena (m elements): a view of ones_
            // would dangle once a larger batch grows it, or once the layer is destroyed.
            return matmul(concat_cols(x, lift(ones_column(x.rows()))), w);
        }
        return affine(x, w, b);
    }

    std::size_t in_, out_;
    LinearOptions opt_;
    bool explicit_index_;  // built with an index (else a Sequential renames it by position)
    std::size_t index_;    // the parameters are W<index_>, b<index_>
    Parameter<T> w_, b_;
    Tensor<T> ones_;  // column of ones for the folded bias, grown to the largest batch seen
};

// ---- Sequential --------------------------------------------------------------------------------

template <class T>
class Sequential : public Module<T> {
public:
    Sequential() = default;

    // Appends a layer. A Linear built without an index is renamed by its position among the
    // layers that have parameters (W0, b0, W1, …, as MLP names them); a layer whose parameter
    // names are already taken raises an Error and is not added (checkpoints and optimiser state
    // refer to parameters by name).
    Module<T>& add(std::unique_ptr<Module<T>> m) {
        if (!m) fail("Sequential: cannot add a null layer");
        return adopt(std::move(m));
    }
    template <class M, class... Args>
    M& emplace(Args&&... args) {
        return static_cast<M&>(adopt(std::make_unique<M>(std::forward<Args>(args)...)));
    }

    Var<T> forward(Tape<T>& tape, const Var<T>& x) override {
        Var<T> h = x;
        for (auto& l : layers_) h = l->forward(tape, h);
        return h;
    }
    // Each layer's output is freed once the next one has read it. The leading batch_independent
    // layers (convolutions, pooling, activations, reshapes) run on chunks of kInferChunk samples
    // into their last output for the whole batch, so that their intermediates (a CNN's largest
    // tensors) take one chunk's memory, not the batch's; the bits are the same (each of them
    // computes a sample the same way in any batch). The layers after them (Linear: one GEMM
    // over the batch) see the whole batch.
    Tensor<T> infer(const Tensor<T>& x) override {
        if (layers_.empty()) return x.clone(std::pmr::get_default_resource());
        std::size_t k = 0;
        while (k < layers_.size() && layers_[k]->batch_independent()) ++k;
        Tensor<T> h = infer_chunked(x, std::max<std::size_t>(k, 1));
        for (std::size_t i = std::max<std::size_t>(k, 1); i < layers_.size(); ++i) h = layers_[i]->infer(h);
        return h;
    }
    bool batch_independent() const override {
        for (const auto& l : layers_)
            if (!l->batch_independent()) return false;
        return true;
    }
    static constexpr std::size_t kInferChunk = 64;
    Var<T> forward_with(Tape<T>& tape, const Var<T>& x, std::span<const Var<T>> params) override {
        Var<T> h = x;
        std::size_t at = 0;
        for (auto& l : layers_) {
            const std::size_t k = l->parameters().size();
            if (at + k > params.size())
                fail("Sequential: forward_with got {} parameter Vars, the layers need more", params.size());
            h = l->forward_with(tape, h, params.subspan(at, k));
            at += k;
        }
        if (at != params.size()) fail("Sequential: forward_with got {} parameter Vars, the layers take {}", params.size(), at);
        return h;
    }
    std::vector<Parameter<T>*> parameters() override {
        std::vector<Parameter<T>*> ps;
        for (auto& l : layers_)
            for (Parameter<T>* p : l->parameters()) ps.push_back(p);
        return ps;
    }
    std::string describe() const override {
        std::string s = "Sequential(";
        for (std::size_t i = 0; i < layers_.size(); ++i) s += (i ? ", " : "") + layers_[i]->describe();
        return s + ")";
    }
    void set_training(bool on) override {
        Module<T>::set_training(on);
        for (auto& l : layers_) l->set_training(on);
    }
    std::vector<Buffer<T>> buffers() override {
        std::vector<Buffer<T>> bs;
        for (auto& l : layers_)
            for (Buffer<T>& b : l->buffers()) bs.push_back(b);
        return bs;
    }
    std::size_t size() const noexcept { return layers_.size(); }
    Module<T>& operator[](std::size_t i) { return *layers_.at(i); }

private:
    // layers_[0, k) on x: on the whole of x when k = 1 or x holds at most kInferChunk samples,
    // else chunk by chunk (the layers being batch_independent) into one output.
    Tensor<T> infer_chunked(const Tensor<T>& x, std::size_t k) {
        auto run = [&](const Tensor<T>& in) {
            Tensor<T> h = layers_[0]->infer(in);
            for (std::size_t i = 1; i < k; ++i) h = layers_[i]->infer(h);
            return h;
        };
        const Shape s = x.shape();
        if (k < 2 || s.rank() == 0 || s[0] <= kInferChunk || !x.is_contiguous()) return run(x);
        const std::size_t n = s[0], per = x.size() / n;
        Tensor<T> out;
        for (std::size_t b = 0; b < n; b += kInferChunk) {
            const std::size_t m = std::min(kInferChunk, n - b);
            const Tensor<T> h = run(Tensor<T>::view(const_cast<T*>(x.data()) + b * per, s.with(0, m),
                                                    std::pmr::get_default_resource()));
            if (b == 0)  // every element is written below
                out = Tensor<T>::uninit(h.shape().rank() ? h.shape().with(0, n) : Shape{},
                                        std::pmr::get_default_resource());
            if (h.shape().rank() == 0 || h.shape() != out.shape().with(0, m))
                fail("Sequential: a batch-independent layer turned {} samples {} into {}", m, s.with(0, m),
                     h.shape());
            std::copy_n(h.data(), h.size(), out.data() + b * (out.size() / n));
        }
        return out;
    }
    Module<T>& adopt(std::unique_ptr<Module<T>> m) {
        if (auto* lin = dynamic_cast<Linear<T>*>(m.get()); lin != nullptr && !lin->explicit_index_) {
            std::size_t position = 0;
            for (const auto& l : layers_) position += !l->parameters().empty();
            lin->renumber(position);
        } else if (auto* pn = dynamic_cast<PositionNamed*>(m.get()); pn != nullptr && !pn->has_explicit_index()) {
            // Layers with buffers count too: BatchNorm2d(affine=false) has running statistics but no
            // parameters, and two of them would otherwise share one position (one buffer name).
            std::size_t position = 0;
            for (const auto& l : layers_) position += !l->parameters().empty() || !l->buffers().empty();
            pn->renumber(position);
        }
        m->set_training(this->is_training());
        const std::vector<Parameter<T>*> mine = m->parameters();
        const std::size_t at = layers_.size();
        for (std::size_t i = 0; i < mine.size(); ++i) {
            const std::string& name = mine[i]->name;
            for (std::size_t j = 0; j < i; ++j)
                if (mine[j]->name == name)
                    fail("Sequential: duplicate parameter name '{}' within layer {} ({})", name, at, m->describe());
            for (std::size_t l = 0; l < at; ++l)
                for (const Parameter<T>* p : layers_[l]->parameters())
                    if (p->name == name)
                        fail("Sequential: duplicate parameter name '{}': layer {} ({}) and layer {} ({}) both have it; "
                             "give each layer its own index",
                             name, at, m->describe(), l, layers_[l]->describe());
        }
        for (const Buffer<T>& b : m->buffers())
            for (std::size_t l = 0; l < at; ++l)
                for (const Buffer<T>& o : layers_[l]->buffers())
                    if (o.name == b.name)
                        fail("Sequential: duplicate buffer name '{}': layer {} ({}) and layer {} ({}) both have it; "
                             "give each layer its own index",
                             b.name, at, m->describe(), l, layers_[l]->describe());
        layers_.push_back(std::move(m));
        return *layers_.back();
    }

    std::vector<std::unique_ptr<Module<T>>> layers_;
};

// ---- MLP ---------------------------------------------------------------------------------------

struct MLPOptions {
    LinearOptions linear{};       // options of every layer (init and gain replaced when choose_init)
    bool choose_init = true;      // He-uniform for relu-like activations, Xavier-uniform otherwise,
                                  // with torch's calculate_gain; false keeps linear.init and linear.gain
    double slope = 0.01;          // leaky relu's negative slope
    Activation output = Activation::identity;  // after the last layer (identity: logits)
};

// sizes = {in, h1, …, out}: Linear(in→h1), φ, Linear(h1→h2), φ, …, Linear(→out) [, output φ].
// Parameters are named W0, b0, W1, b1, …; weights drawn from Rng(seed) layer by layer.
template <class T>
class MLP final : public Sequential<T> {
public:
    MLP(std::vector<std::size_t> sizes, Activation act, std::uint64_t seed, MLPOptions opt = {})
        : sizes_(std::move(sizes)) {
        if (sizes_.size() < 2) fail("MLP: need at least an input and an output size, got {} sizes", sizes_.size());
        Rng rng(seed);
        LinearOptions lo = opt.linear;
        if (opt.choose_init) {
            const bool relu_like = act == Activation::relu || act == Activation::leaky_relu;
            lo.init = relu_like ? Init::he_uniform : Init::xavier_uniform;
            lo.gain = gain_for(act, opt.slope);
        }
        for (std::size_t i = 0; i + 1 < sizes_.size(); ++i) {
            this->template emplace<Linear<T>>(sizes_[i], sizes_[i + 1], rng, lo, i);
            const bool last = i + 2 == sizes_.size();
            const Activation a = last ? opt.output : act;
            if (a != Activation::identity) this->template emplace<ActivationLayer<T>>(a, opt.slope);
        }
    }
    const std::vector<std::size_t>& sizes() const noexcept { return sizes_; }

private:
    std::vector<std::size_t> sizes_;
};

}  // namespace tapegrad::nn
