// Recomputation-aware state: what a stateful layer consults so that activation checkpointing
// (checkpoint_op.hpp) recomputes exactly the forward it replaces — torch.utils.checkpoint's
// preserve_rng_state, made explicit and per draw.
//
//   tg::replay(k)      the value a layer uses for a draw it makes in the forward (a dropout
//                      layer's Philox counter). Outside any checkpoint: k itself. In a
//                      checkpointed segment's first run: k, remembered by that checkpoint node
//                      in the order of the calls. When the segment is recomputed for its
//                      backward: the value remembered at the same position, whatever k is now
//                      — so the recomputation draws the same dropout masks.
//   tg::recomputing()  true while a segment is being recomputed (also inside a checkpoint
//                      nested in it): a layer skips side effects that the first run already
//                      had — batch norm leaves its running statistics and num_batches_tracked
//                      alone, a dropout layer does not advance its counter.
//
// The first run of a checkpointed f and its recomputation must call replay() equally often (f
// is deterministic apart from them); a different count is an Error naming the checkpoint.
// Nested checkpoints: the values an inner checkpoint remembers are also the outer one's (the
// outer recomputation re-runs the inner checkpoint's forward, which replays them from the outer
// record). The record is stored in the checkpoint node, so its backward may run on any thread;
// the scope of one run of f is the calling thread's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <tapegrad/core/error.hpp>

namespace tapegrad {

namespace detail::recompute {

// One run of a checkpointed f: either recording the values it draws, or replaying them.
struct Frame {
    std::vector<std::uint64_t>* record = nullptr;  // first run: appended to
    const std::uint64_t* replay = nullptr;         // recomputation: read from, in order
    std::size_t replay_size = 0, position = 0;
    bool replaying = false;    // this frame is a recomputation
    bool recomputing = false;  // this frame or an enclosing one is
    Frame* parent = nullptr;
};

inline Frame*& top() noexcept {
    thread_local Frame* f = nullptr;
    return f;
}

inline std::uint64_t resolve(Frame* f, std::uint64_t k) {
    if (f == nullptr) return k;
    if (f->replaying) {
        if (f->position >= f->replay_size)
            fail("checkpoint: recomputing the segment drew more values (replay() calls: dropout masks) than its "
                 "forward ({}); the checkpointed function must draw the same ones",
                 f->replay_size);
        return f->replay[f->position++];
    }
    const std::uint64_t v = resolve(f->parent, k);  // a recomputed outer segment decides
    f->record->push_back(v);
    return v;
}

// The scope of one run of f: pushed on construction, popped on destruction (also on unwinding).
class Scope {
public:
    // The first run: values drawn are appended to `record`.
    explicit Scope(std::vector<std::uint64_t>& record) noexcept {
        frame_.record = &record;
        push();
    }
    // The recomputation: values drawn come from `values`, in order.
    Scope(const std::uint64_t* values, std::size_t n) noexcept {
        frame_.replay = values;
        frame_.replay_size = n;
        frame_.replaying = true;
        push();
    }
    ~Scope() { top() = frame_.parent; }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    // Replay: every remembered value was used (call after f returned).
    std::size_t used() const noexcept { return frame_.position; }

private:
    void push() noexcept {
        frame_.parent = top();
        frame_.recomputing = frame_.replaying || (frame_.parent != nullptr && frame_.parent->recomputing);
        top() = &frame_;
    }
    Frame frame_;
};

}  // namespace detail::recompute

// See the top of this file.
inline std::uint64_t replay(std::uint64_t k) { return detail::recompute::resolve(detail::recompute::top(), k); }

inline bool recomputing() noexcept {
    const detail::recompute::Frame* f = detail::recompute::top();
    return f != nullptr && f->recomputing;
}

}  // namespace tapegrad
