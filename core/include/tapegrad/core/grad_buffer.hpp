// GradBuffer<T>: gradient storage that outlives tapes (what a parameter's gradient lives in).
//
// tape.external(value, &buffer) puts `value` on a tape as a differentiable leaf; every
// backward() then adds the leaf's adjoint into the buffer, as PyTorch adds into .grad.
//
// clear() makes the gradient zero in O(1): it marks the buffer instead of writing zeros, and
// the next backward() *writes* the adjoint into the storage instead of adding it (a matrix
// product's VJP lands there straight from its GEMM, with β = 0). A training step therefore
// neither zeroes the gradients nor adds them in a pass of their own, as a hand-written backprop
// does not. Reading a cleared buffer gives zeros (written on first access).
//
// A buffer counts its modifications (version(): clear, resize, add, mutable_tensor, and the
// tape's writes): the tape uses the count to tell whether an adjoint it wrote into the buffer
// is still there when tape.grad(leaf) asks for it. Reading a cleared buffer writes its zeros,
// so concurrent first reads of one cleared buffer must be synchronised by the caller.
//
// It also counts the modifications of the *value* it is the gradient of (value_version()):
// whoever changes that value in place calls value_changed() — the optimisers' step() and
// nn::Parameter::mutable_value() do. tape.external(value, &buffer) notes the count, and
// backward() refuses a leaf whose value changed since (PyTorch's saved-tensor version check):
// one compare per external leaf per backward.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include <tapegrad/core/error.hpp>
#include <tapegrad/core/shape.hpp>
#include <tapegrad/core/tensor.hpp>

namespace tapegrad {

template <class T>
class Tape;

template <class T>
class GradBuffer {
public:
    GradBuffer() = default;
    // A zero gradient of shape s (cleared: nothing is written until it is read or accumulated).
    explicit GradBuffer(Shape s) : t_(Tensor<T>::uninit(s, std::pmr::get_default_resource())), cleared_(true) {}
    GradBuffer(std::size_t rows, std::size_t cols) : GradBuffer(Shape{rows, cols}) {}

    Shape shape() const noexcept { return t_.shape(); }
    std::size_t size() const noexcept { return t_.size(); }
    bool empty() const noexcept { return t_.empty(); }

    // The gradient (zeros after clear()). Reading is not a modification.
    const Tensor<T>& tensor() const {
        settle();
        return t_;
    }
    operator const Tensor<T>&() const { return tensor(); }  // NOLINT: reads as the tensor it holds
    const T* data() const { return tensor().data(); }
    T operator[](std::size_t i) const { return tensor()[i]; }
    T operator()(std::size_t r, std::size_t c) const { return tensor()(r, c); }
    // For writing (counts as a modification: see version()).
    Tensor<T>& mutable_tensor() {
        settle();
        ++version_;
        return t_;
    }
    void fill(T v) { mutable_tensor().fill(v); }

    // Zero in O(1): the next backward() writes instead of adding.
    void clear() noexcept {
        cleared_ = true;
        ++version_;
    }
    bool cleared() const noexcept { return cleared_; }
    // Gives the buffer shape s: cleared (zero) if it had another shape, unchanged otherwise.
    void resize(Shape s) {
        if (t_.shape() == s && !t_.empty()) return;
        t_ = Tensor<T>::uninit(s, std::pmr::get_default_resource());
        cleared_ = true;
        ++version_;
    }
    std::uint64_t version() const noexcept { return version_; }

    // The value this buffer is the gradient of was changed in place (see above).
    void value_changed() noexcept { ++value_version_; }
    std::uint64_t value_version() const noexcept { return value_version_; }

    // Hooks called with this buffer when a backward() has finished adding into it (its gradient
    // for that backward is complete), while the sweep goes on; in registration order (hooks.hpp).
    // The sweep calls them in place (no copy, nothing allocated), so a hook may not register or
    // clear hooks of the buffer it is running on (an Error); other buffers' hooks it may.
    void register_post_accumulate_hook(std::function<void(GradBuffer&)> fn) {
        if (!fn) fail("GradBuffer: register_post_accumulate_hook given an empty function");
        if (in_hooks_)
            fail("GradBuffer: register_post_accumulate_hook called from a post-accumulate hook of the same buffer");
        post_hooks_.push_back(std::move(fn));
    }
    void clear_post_accumulate_hooks() {
        if (in_hooks_)
            fail("GradBuffer: clear_post_accumulate_hooks called from a post-accumulate hook of the same buffer");
        post_hooks_.clear();
    }
    bool has_post_accumulate_hooks() const noexcept { return !post_hooks_.empty(); }

    // buffer += a (buffer = a when cleared); a has the buffer's shape.
    void add(const Tensor<T>& a) {
        if (a.shape() != t_.shape())
            fail("GradBuffer: adding a {} gradient into a buffer of shape {}", a.shape(), t_.shape());
        T* d = t_.data();
        const T* s = a.data();
        const std::size_t n = t_.size();
        if (cleared_) {
            std::copy_n(s, n, d);
            cleared_ = false;
        } else {
            for (std::size_t i = 0; i < n; ++i) d[i] += s[i];
        }
        ++version_;
    }

private:
    friend class Tape<T>;
    // The engine writes the whole gradient into the storage (whose contents are unspecified
    // while cleared) and then owns it until the next modification.
    T* claim() noexcept {
        cleared_ = false;
        ++version_;
        return t_.data();
    }
    std::uint64_t touch() noexcept { return ++version_; }

    void settle() const {
        if (cleared_) {
            t_.fill(T(0));
            cleared_ = false;
        }
    }

    mutable Tensor<T> t_;
    mutable bool cleared_ = false;
    std::uint64_t version_ = 0;
    std::uint64_t value_version_ = 0;
    // The last leaf made of this buffer (tape, generation, node): a tape that puts one buffer
    // on itself twice writes neither leaf's adjoint into it directly.
    const void* leaf_tape_ = nullptr;
    std::uint32_t leaf_gen_ = 0;
    std::uint32_t leaf_node_ = 0;
    std::vector<std::function<void(GradBuffer&)>> post_hooks_;  // register_post_accumulate_hook
    bool in_hooks_ = false;                                      // run_post_hooks() is calling them

    // The hooks in registration order, each called by reference (the engine's sweep).
    void run_post_hooks() {
        struct Restore {
            bool& b;
            bool was;
            ~Restore() { b = was; }
        } restore{in_hooks_, in_hooks_};
        in_hooks_ = true;
        for (const auto& fn : post_hooks_) fn(*this);
    }
};

}  // namespace tapegrad

// Prints the gradient as its tensor does ("Tensor(2×3) [[…]]"; zeros when cleared).
template <class T>
struct fmt::formatter<tapegrad::GradBuffer<T>> : fmt::formatter<tapegrad::Tensor<T>> {
    auto format(const tapegrad::GradBuffer<T>& g, fmt::format_context& ctx) const {
        return fmt::formatter<tapegrad::Tensor<T>>::format(g.tensor(), ctx);
    }
};
