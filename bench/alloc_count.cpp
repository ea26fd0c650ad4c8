// Counts every heap allocation of the benchmark process.
//
// The executable defines malloc and its siblings, which the dynamic linker binds ahead of
// glibc's for every library of the process (libstdc++'s operator new, OpenBLAS, fmt, ...), and
// forwards them to glibc's own entry points (__libc_malloc, exported for this purpose). So
// operator new, std::pmr's heap resource and any C allocation are all counted once, at the
// malloc level. Sanitizer builds (TAPEGRAD_SANITIZE) own malloc themselves: there the hook is
// compiled out and the counts are unknown (-1).
#include "alloc_count.hpp"

#include <atomic>
#include <cerrno>
#include <cstddef>

#ifdef BENCH_NO_MALLOC_HOOK
namespace bench {
long alloc_count() { return -1; }
long alloc_bytes() { return -1; }
}  // namespace bench
#else
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void __libc_free(void*);
}

namespace {
std::atomic<long> g_allocs{0};
std::atomic<long> g_bytes{0};

inline void count(std::size_t n) {
    g_allocs.fetch_add(1, std::memory_order_relaxed);
    g_bytes.fetch_add(static_cast<long>(n), std::memory_order_relaxed);
}
}  // namespace

namespace bench {
long alloc_count() { return g_allocs.load(std::memory_order_relaxed); }
long alloc_bytes() { return g_bytes.load(std::memory_order_relaxed); }
}  // namespace bench

extern "C" {

void* malloc(std::size_t n) {
    count(n);
    return __libc_malloc(n);
}
void* calloc(std::size_t k, std::size_t n) {
    count(k * n);
    return __libc_calloc(k, n);
}
void* realloc(void* p, std::size_t n) {
    count(n);
    return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
void* memalign(std::size_t a, std::size_t n) {
    count(n);
    return __libc_memalign(a, n);
}
void* aligned_alloc(std::size_t a, std::size_t n) {
    count(n);
    return __libc_memalign(a, n);
}
int posix_memalign(void** out, std::size_t a, std::size_t n) {
    if (a < sizeof(void*) || (a & (a - 1)) != 0) return EINVAL;
    count(n);
    void* p = __libc_memalign(a, n);
    if (p == nullptr && n != 0) return ENOMEM;
    *out = p;
    return 0;
}

}  // extern "C"
#endif
