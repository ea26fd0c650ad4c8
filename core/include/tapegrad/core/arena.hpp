// Arena: the tape's bump allocator.
//
// Allocation is a pointer bump inside the current block; deallocation is a no-op; reset()
// rewinds to the start. When a step needed more than the first block, reset() replaces the
// blocks by one block as large as everything that step used, so from the second step of a
// loop with a stable working set on, reset/forward/backward never touches the heap.
//
// Under AddressSanitizer (a build with -fsanitize=address, e.g. TAPEGRAD_SANITIZE=address) the
// arena poisons what it does not hand out: a new block is poisoned whole, each allocation is
// unpoisoned and followed by a poisoned redzone of kRedzone bytes, and reset() poisons everything
// again. So an op that writes past its output, or a Var/view read after its tape was reset, is a
// reported use of poisoned memory, as it would be on the heap. Without ASan none of this exists.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define TAPEGRAD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TAPEGRAD_ASAN 1
#endif
#endif
#ifdef TAPEGRAD_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace tapegrad {

class Arena final : public std::pmr::memory_resource {
public:
#ifdef TAPEGRAD_ASAN
    static constexpr bool kPoisons = true;
    static constexpr std::size_t kRedzone = 32;  // poisoned bytes after every allocation
#else
    static constexpr bool kPoisons = false;
    static constexpr std::size_t kRedzone = 0;
#endif

    explicit Arena(std::size_t first_block = std::size_t(1) << 16) : first_block_(first_block) {}
    Arena(const Arena&) = delete;
    Arena& operator=(const Arena&) = delete;
    ~Arena() override { free_all(); }

    // Forget every allocation; keep (and, if the last round overflowed, coalesce) the memory.
    void reset() {
        high_water_ = std::max(high_water_, bytes_used());
        if (blocks_.size() > 1 || (blocks_.empty() && high_water_ > 0)) {
            std::size_t want = std::max(high_water_ + high_water_ / 8, first_block_);
            free_all();
            add_block(want);
        }
        cur_ = 0;
        if (!blocks_.empty()) ptr_ = blocks_[0].base, end_ = blocks_[0].base + blocks_[0].size;
        poison_all();
    }

    // The allocation fast path, inline and non-virtual: align, compare, store (grow() when the
    // block is full). What was used is computed from the pointer when asked, not counted here.
    [[gnu::always_inline]] void* bump(std::size_t bytes, std::size_t align) {
        const std::uintptr_t aligned = (reinterpret_cast<std::uintptr_t>(ptr_) + (align - 1)) & ~std::uintptr_t(align - 1);
        if (ptr_ && aligned + bytes + kRedzone <= reinterpret_cast<std::uintptr_t>(end_)) [[likely]] {
            ptr_ = reinterpret_cast<std::byte*>(aligned + bytes + kRedzone);
            return handed_out(aligned, bytes);
        }
        return grow(bytes, align);
    }

    // Bytes handed out since the last reset (the ends of filled blocks count as used).
    std::size_t bytes_used() const noexcept {
        if (blocks_.empty()) return 0;
        std::size_t n = static_cast<std::size_t>(ptr_ - blocks_[cur_].base);
        for (std::size_t i = 0; i < cur_; ++i) n += blocks_[i].size;
        return n;
    }
    std::size_t bytes_reserved() const noexcept {
        std::size_t n = 0;
        for (const auto& b : blocks_) n += b.size;
        return n;
    }
    std::size_t blocks() const noexcept { return blocks_.size(); }

private:
    struct Block {
        std::byte* base;
        std::size_t size;
    };

    void* do_allocate(std::size_t bytes, std::size_t align) override { return bump(bytes, align); }
    [[gnu::noinline]] void* grow(std::size_t bytes, std::size_t align) {
        for (;;) {
            const std::uintptr_t aligned = (reinterpret_cast<std::uintptr_t>(ptr_) + (align - 1)) & ~std::uintptr_t(align - 1);
            if (ptr_ && aligned + bytes + kRedzone <= reinterpret_cast<std::uintptr_t>(end_)) {
                ptr_ = reinterpret_cast<std::byte*>(aligned + bytes + kRedzone);
                return handed_out(aligned, bytes);
            }
            // Next kept block, or a new one at least twice the last.
            if (cur_ + 1 < blocks_.size()) {
                ++cur_;
            } else {
                std::size_t last = blocks_.empty() ? first_block_ : blocks_.back().size;
                std::size_t want = std::max(last * 2, bytes + align + kRedzone);
                add_block(want);
                cur_ = blocks_.size() - 1;
            }
            // (Bytes skipped at the end of a block count as used, so the coalesced block fits.)
            ptr_ = blocks_[cur_].base;
            end_ = blocks_[cur_].base + blocks_[cur_].size;
        }
    }
    void do_deallocate(void*, std::size_t, std::size_t) override {}
    bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override { return this == &o; }

    static void* handed_out(std::uintptr_t p, [[maybe_unused]] std::size_t bytes) noexcept {
#ifdef TAPEGRAD_ASAN
        ASAN_UNPOISON_MEMORY_REGION(reinterpret_cast<void*>(p), bytes);
#endif
        return reinterpret_cast<void*>(p);
    }
    void poison_all() noexcept {
#ifdef TAPEGRAD_ASAN
        for (auto& b : blocks_) ASAN_POISON_MEMORY_REGION(b.base, b.size);
#endif
    }

    void add_block(std::size_t size) {
        auto* base = static_cast<std::byte*>(::operator new(size, std::align_val_t{64}));
        blocks_.push_back({base, size});
#ifdef TAPEGRAD_ASAN
        ASAN_POISON_MEMORY_REGION(base, size);
#endif
    }
    void free_all() noexcept {
#ifdef TAPEGRAD_ASAN
        for (auto& b : blocks_) ASAN_UNPOISON_MEMORY_REGION(b.base, b.size);
#endif
        for (auto& b : blocks_) ::operator delete(b.base, std::align_val_t{64});
        blocks_.clear();
        ptr_ = end_ = nullptr;
        cur_ = 0;
    }

    std::vector<Block> blocks_;
    std::size_t cur_ = 0;
    std::byte* ptr_ = nullptr;
    std::byte* end_ = nullptr;
    std::size_t first_block_;
    std::size_t high_water_ = 0;  // the most bytes_used() seen at a reset()
};

}  // namespace tapegrad
