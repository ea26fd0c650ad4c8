// Counts the heap allocations a test program makes through operator new: include it in exactly
// one translation unit of the program (it replaces the global operator new and delete) and
// read tapegrad::test::g_news.
#pragma once

#include <atomic>
#include <cstdlib>
#include <new>

namespace tapegrad::test {
inline std::atomic<long> g_news{0};
}

// GCC pairs the replaced operator new with free() after inlining and warns; the pairing is
// malloc/free, which is correct.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
    ++tapegrad::test::g_news;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
    ++tapegrad::test::g_news;
    const std::size_t al = static_cast<std::size_t>(a);
    if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop
