// Saved<U> and Keep: data an op keeps for its VJPs, in the tape's arena.
//
// An op's VJPs see only the op itself (its members), g, y and the inputs. Some need more: the
// indices of a gather, the argmax of a max over an axis, a dropout mask, batch statistics. Such
// an op keeps them in members of type Saved<U> — a handle (pointer and shape) to an array of U,
// trivially copyable, so the op stays a small struct — declared `mutable`, and takes a Keep as
// its forward kernel's last parameter:
//
//   struct MaxOver {                        // y = max along the last axis; dx = g at the argmax
//       mutable Saved<std::int64_t> arg;    // filled by forward, read by the VJPs
//       template <class T>
//       void forward(Tensor<T>& out, const Tensor<T>& x, Keep keep) const {
//           arg = keep.array<std::int64_t>(out.shape());   // storage in the tape's arena
//           ... arg[i] = k ...
//       }
//       template <class V> V vjp(In<0>, const V& g, const V& y, const V& x) const {
//           return apply(ScatterTo{arg, x.shape()}, g);    // the handle travels with the op
//       }
//   };
//
// The engine runs forward first and then copies the op into the node, so the node's copy holds
// the handles forward set. Keep allocates from the tape's arena when the op is recorded (or runs
// inside a VJP of the numeric sweep): the data lives exactly as long as the node — no
// destructor, freed with the tape by reset(). On plain tensors (no tape: no VJP will run) Keep
// allocates from a scratch arena that the call frees when forward returns.
//
// Keep::copy(s) brings a handle that refers to the caller's storage (Saved<U>::of(tensor): an
// index tensor the user passed) into the arena — once: a handle already kept in this arena is
// returned as it is, so the ops a VJP records with the same indices share one copy.
//
// Handles are read-only once forward has returned: nothing writes to kept data afterwards.
#pragma once

#include <cstddef>
#include <cstring>
#include <type_traits>

#include <tapegrad/core/arena.hpp>
#include <tapegrad/core/error.hpp>
#include <tapegrad/core/shape.hpp>
#include <tapegrad/core/tensor.hpp>

namespace tapegrad {

class Keep;

// A handle to an array of U with a shape: the caller's storage, or an arena's (Keep).
template <class U>
class Saved {
public:
    Saved() = default;
    // A handle to t's storage (gathered views are not referred to: t must be contiguous). The
    // caller keeps t alive until the op has run; forward brings it into the arena (Keep::copy).
    static Saved of(const Tensor<U>& t) {
        if (!t.is_contiguous()) fail("saved: tensor {} is a strided view; pass a contiguous copy", t.shape());
        Saved s;
        s.data_ = const_cast<U*>(t.data());
        s.shape_ = t.shape();
        return s;
    }
    U* data() const noexcept { return data_; }
    const Shape& shape() const noexcept { return shape_; }
    std::size_t size() const noexcept { return shape_.numel(); }
    U& operator[](std::size_t i) const noexcept { return data_[i]; }
    // The same elements read with another shape of the same element count.
    Saved reshaped(const Shape& s) const {
        if (s.numel() != size()) fail("saved: cannot read {} elements as {}", size(), s);
        Saved r = *this;
        r.shape_ = s;
        return r;
    }
    // A non-owning tensor view of the data (for printing and tests).
    Tensor<U> tensor() const { return Tensor<U>::view(data_, shape_, std::pmr::get_default_resource()); }

private:
    friend class Keep;
    U* data_ = nullptr;
    Shape shape_{};
    const Arena* home_ = nullptr;  // the arena holding the data (null: the caller's storage)
};

static_assert(std::is_trivially_copyable_v<Saved<std::int64_t>>);

// Where a forward kernel keeps data for its VJPs (see above): an arena that lives as long as
// the node being recorded.
class Keep {
public:
    explicit Keep(Arena& a) noexcept : arena_(&a) {}
    // Uninitialised storage of shape s, for forward to fill.
    template <class U>
    Saved<U> array(const Shape& s) const {
        Saved<U> h;
        h.shape_ = s;
        h.home_ = arena_;
        const std::size_t n = s.numel();
        if (n) h.data_ = static_cast<U*>(arena_->bump(n * sizeof(U), alignof(U) < 16 ? 16 : alignof(U)));
        return h;
    }
    // s's data in the arena: s itself when it is there already, else a copy.
    template <class U>
    Saved<U> copy(const Saved<U>& s) const {
        if (s.home_ == arena_) return s;
        Saved<U> h = array<U>(s.shape_);
        if (s.size()) std::memcpy(h.data_, s.data_, s.size() * sizeof(U));
        return h;
    }
    Arena& arena() const noexcept { return *arena_; }

private:
    Arena* arena_;
};

namespace detail {
struct NotKeep {};  // a probe: a variadic forward (concat's) takes anything, not a Keep in particular
}  // namespace detail

// Whether Op's forward kernel takes a Keep as its last parameter (keeps data for its VJPs).
template <class Op, class T, class... X>
inline constexpr bool keeps_v =
    requires(const Op& op, Tensor<T>& out, const X&... x, Keep k) { op.forward(out, x..., k); } &&
    !requires(const Op& op, Tensor<T>& out, const X&... x, detail::NotKeep k) { op.forward(out, x..., k); };

}  // namespace tapegrad
