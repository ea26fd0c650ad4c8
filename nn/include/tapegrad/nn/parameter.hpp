// Parameter<T> and the module interface.
//
// A Parameter owns its value and its gradient, outside any tape: each step puts it on the
// current tape as an External leaf (p.var(tape)), the reverse sweep ADDS ∂E/∂p into p.grad
// (a GradBuffer: after zero_grad(), which costs nothing, the sweep writes ∂E/∂p there instead),
// and the optimiser reads p.grad and updates p.value in place. Parameters therefore outlive
// tapes, and their addresses must stay fixed while a tape refers to them: modules are
// neither copyable nor movable.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <tapegrad/core/tape.hpp>
#include <tapegrad/core/tensor.hpp>

namespace tapegrad::nn {

template <class T>
struct Parameter {
    Tensor<T> value;
    GradBuffer<T> grad;  // same shape as value; zero until a backward pass adds into it
    std::string name;

    Parameter() = default;
    Parameter(Tensor<T> v, std::string n) : value(std::move(v)), grad(value.shape()), name(std::move(n)) {}
    // A tape keeps the address of `grad` (and reads `value` in place): a Parameter that moved
    // (in a reallocating std::vector, say) would leave backward() writing into the old address.
    // Hold parameters in place, in a module, or through std::unique_ptr.
    Parameter(const Parameter&) = delete;
    Parameter& operator=(const Parameter&) = delete;

    Shape shape() const noexcept { return value.shape(); }
    std::size_t size() const noexcept { return value.size(); }
    // This parameter as a differentiable leaf of `tape` (no copy): backward adds into grad.
    // A frozen parameter (requires_grad(false)) enters as a constant instead: no VJP is run for
    // it, and backward leaves grad as it was (zero after zero_grad()).
    Var<T> var(Tape<T>& tape) {
        if (!requires_grad_) [[unlikely]]
            return tape.constant_ref(value, name);
        return tape.external(value, &grad, name);
    }

    // Frozen or not (torch's p.requires_grad_(False)). Optimisers skip a frozen parameter (no
    // update, no moment or momentum change, no weight decay); checkpoints keep its value and
    // the flag. Takes effect at the next var(): a tape already recorded is unchanged.
    bool requires_grad() const noexcept { return requires_grad_; }
    Parameter& requires_grad(bool on) noexcept {
        requires_grad_ = on;
        return *this;
    }

    // fn(*this) when a backward() has finished adding into grad (its gradient for that backward
    // is complete), while the sweep goes on below: torch's register_post_accumulate_grad_hook,
    // e.g. to start the all-reduce of this gradient. Order and "complete": core/hooks.hpp.
    void register_post_accumulate_grad_hook(std::function<void(Parameter&)> fn) {
        if (!fn) fail("Parameter '{}': register_post_accumulate_grad_hook given an empty function", name);
        grad.register_post_accumulate_hook([this, f = std::move(fn)](GradBuffer<T>&) { f(*this); });
    }
    void clear_post_accumulate_grad_hooks() { grad.clear_post_accumulate_hooks(); }
    // O(1): marks the gradient zero; the next backward() writes it instead of adding.
    void zero_grad() noexcept { grad.clear(); }
    // The value, for changing it in place (optimisers do): counts as a modification, so that
    // a backward() of a tape recorded before raises Error instead of using the changed value
    // (GradBuffer::value_changed). Writes through `value` itself are not seen.
    Tensor<T>& mutable_value() noexcept {
        grad.value_changed();
        return value;
    }

private:
    bool requires_grad_ = true;
};

// A tensor a module keeps and updates outside the gradient (torch's buffers: BatchNorm's
// running statistics). Checkpoints store it by name (nn/conv.hpp: put_buffers/get_buffers).
template <class T>
struct Buffer {
    std::string name;
    Tensor<T>* tensor = nullptr;         // a tensor buffer, or
    std::int64_t* count = nullptr;       // a counter (num_batches_tracked)
};

// A layer or a network: maps a Var to a Var on the same tape, and lists its parameters.
template <class T>
class Module {
public:
    Module() = default;
    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;
    virtual ~Module() = default;

    virtual Var<T> forward(Tape<T>& tape, const Var<T>& x) = 0;
    Var<T> operator()(Tape<T>& tape, const Var<T>& x) { return forward(tape, x); }
    // Inference on a plain tensor, with no tape: the same kernels in the same order as
    // forward(tape, x), so the same bits. Built-in modules compute on tensors directly; the
    // default runs forward() on a scratch tape under a NoGradGuard.
    Tensor<T> operator()(const Tensor<T>& x) { return infer(x); }
    virtual Tensor<T> infer(const Tensor<T>& x) {
        Tape<T> tape;
        auto no_grad = tape.no_grad();
        return forward(tape, tape.constant(x)).value().clone(std::pmr::get_default_resource());
    }
    // Whether infer() computes each sample (an index of the leading, batch axis) from that sample
    // alone, with the same bits in a batch of any size, keeping the batch axis: Sequential::infer
    // then runs the layer on chunks of the batch (nn/layers.hpp). False unless a layer says so.
    virtual bool batch_independent() const { return false; }
    // The same computation with the parameters given as Vars (one per parameters() entry, in
    // that order) instead of the module's own: a functional call, e.g. for tg::gradcheck.
    virtual Var<T> forward_with(Tape<T>& tape, const Var<T>& x, std::span<const Var<T>> params) = 0;

    // The parameters, in a fixed order (the order optimisers and checkpoints use).
    virtual std::vector<Parameter<T>*> parameters() { return {}; }
    void zero_grad() {
        for (Parameter<T>* p : parameters()) p->zero_grad();
    }
    // requires_grad(false) / (true) on every parameter (fine-tuning: freeze all, then unfreeze
    // the layers to train).
    void freeze() {
        for (Parameter<T>* p : parameters()) p->requires_grad(false);
    }
    void unfreeze() {
        for (Parameter<T>* p : parameters()) p->requires_grad(true);
    }
    // Training or evaluation mode (torch's train() / eval()): dropout and batch norm read it.
    // A container passes it on to its layers (Sequential overrides set_training).
    void train(bool on = true) { set_training(on); }
    void eval() { set_training(false); }
    bool is_training() const noexcept { return training_; }
    virtual void set_training(bool on) { training_ = on; }
    // The module's buffers (state that is not a parameter), in a fixed order.
    virtual std::vector<Buffer<T>> buffers() { return {}; }
    std::size_t parameter_count() {
        std::size_t n = 0;
        for (Parameter<T>* p : parameters()) n += p->size();
        return n;
    }
    // A short description of the module ("Linear(784→256)").
    virtual std::string describe() const = 0;

private:
    bool training_ = true;
};

}  // namespace tapegrad::nn
