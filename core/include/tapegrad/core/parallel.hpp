// parallel_for: the one parallel loop of the non-GEMM kernels (im2col/col2im with their per-image
// GEMMs, pooling). Issue 12: no second spinning pool beside OpenBLAS's, results independent of
// the thread count, never more threads than cores.
//
// f(begin, end) runs over [0, n) cut into `parts` contiguous ranges, part p = [n·p/parts,
// n·(p+1)/parts); the calling thread runs part 0 and parked workers the others; the call returns
// when every part is done. parts = min(parallel_threads(), n / grain): 1 (f(0, n) on the caller,
// no synchronisation at all) unless OpenBLAS is set to more than one thread and there is work
// for each. The ranges must write disjoint outputs and each element must be computed the same
// way whichever range holds it — then the result is bitwise the same at any thread count
// (reductions stay serial). f must not throw. Workers sleep on a condition variable between
// calls; they are started on first use and live until exit. A parallel_for inside a part runs
// serially. Calls from several threads at once are serialised.
#pragma once

#include <algorithm>
#include <cstddef>
#include <type_traits>

namespace tapegrad {

// The threads parallel_for uses: OpenBLAS's thread count (set_blas_threads), at most the
// hardware's.
int parallel_threads() noexcept;

namespace detail {
using RangeFn = void (*)(void* ctx, std::size_t begin, std::size_t end);
// Runs fn(ctx, ·, ·) over the parts of [0, n); parts ≥ 2.
void parallel_run(std::size_t n, std::size_t parts, RangeFn fn, void* ctx) noexcept;
bool in_parallel_region() noexcept;
}  // namespace detail

template <class F>
void parallel_for(std::size_t n, std::size_t grain, F&& f) {
    const std::size_t threads = std::size_t(parallel_threads());
    const std::size_t parts = threads <= 1 || detail::in_parallel_region() ? 1 : std::min(threads, n / std::max<std::size_t>(grain, 1));
    if (parts <= 1) {
        f(std::size_t(0), n);
        return;
    }
    using Fn = std::remove_reference_t<F>;
    detail::parallel_run(
        n, parts, [](void* ctx, std::size_t b, std::size_t e) { (*static_cast<Fn*>(ctx))(b, e); },
        const_cast<void*>(static_cast<const void*>(&f)));
}

}  // namespace tapegrad
