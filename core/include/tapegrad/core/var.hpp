// Var: a handle to one node of a tape (tape, index, generation). Part of tape.hpp's split:
// var.hpp (handles), node.hpp (nodes and the type-erased op rule), op_model.hpp (an op
// declaration's three readings), tape.hpp (the Tape), tape_sweep.hpp (the reverse sweep),
// tape_errors.hpp (located errors, anomaly mode), tape_explain.hpp (explain()).
#pragma once

#include <cstdint>
#include <string_view>

#include <tapegrad/core/shape.hpp>
#include <tapegrad/core/tensor.hpp>

namespace tapegrad {

template <class T>
class Tape;

inline constexpr std::uint32_t kNoNode = 0xffffffffu;

namespace detail {
// A generation no tape of this process has had: one process-wide counter (never 0), drawn by
// each Tape construction and each reset(). A Var's (tape address, generation) therefore names
// one recording: a tape declared in a loop body has the same address every iteration, but not
// the same generation, so a Var kept from the previous iteration is refused. (The counter is
// 32-bit: a stale Var could pass only after 2³² further tape constructions and resets, and
// then only on a tape at its old address.)
std::uint32_t next_tape_generation() noexcept;
}  // namespace detail

// A handle to a node: (tape, index, generation). Cheap to copy. Using it after its tape was
// reset, or together with a Var of another tape (including a tape since destroyed whose
// address a new tape took), raises Error.
template <class T>
class Var {
public:
    using value_type = T;
    Var() = default;

    Tape<T>& tape() const;           // the owning tape, after checking the handle is live
    std::uint32_t id() const noexcept { return id_; }
    Tape<T>* tape_ptr() const noexcept { return tape_; }  // unchecked; may be null
    bool valid() const noexcept;     // false when default-constructed or its tape was reset
    Shape shape() const;
    std::size_t rows() const { return shape().rows(); }
    std::size_t cols() const { return shape().cols(); }
    const Tensor<T>& value() const;  // the forward value (owned by the tape's arena)
    T item() const { return value().item(); }
    // Names the node (used by explain() and to_dot()); returns the same Var.
    Var named(std::string_view name) const;

private:
    friend class Tape<T>;
    Var(Tape<T>* t, std::uint32_t id, std::uint32_t gen) : tape_(t), id_(id), gen_(gen) {}
    Tape<T>* tape_ = nullptr;
    std::uint32_t id_ = 0;
    std::uint32_t gen_ = 0;
};

}  // namespace tapegrad
