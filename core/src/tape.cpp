// The tape is instantiated for float and double here, once, for every user.
#include <tapegrad/core/tape.hpp>

#include <atomic>

namespace tapegrad {

namespace detail {
std::uint32_t next_tape_generation() noexcept {
    static std::atomic<std::uint32_t> counter{0};
    std::uint32_t g = counter.fetch_add(1, std::memory_order_relaxed) + 1;
    while (g == 0) g = counter.fetch_add(1, std::memory_order_relaxed) + 1;  // 0: no generation
    return g;
}
}  // namespace detail

template class Tape<float>;
template class Tape<double>;
}  // namespace tapegrad
