// One GEMM on raw row-major operands with explicit leading dimensions, for batched matmul
// (ops/linalg.hpp), which addresses each batch's matrices inside a larger strided tensor.
// OpenBLAS stays a private dependency: ops headers see only these declarations.
#include <tapegrad/ops/linalg.hpp>

#include <cblas.h>

namespace tapegrad::detail {

namespace {
// Below this many multiply-adds a BLAS call costs more than the product itself (as blas.cpp).
constexpr std::size_t kSmallRawGemm = 512;

template <class T>
void gemm_raw_t(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, T alpha, const T* a,
                std::size_t lda, const T* b, std::size_t ldb, T beta, T* c, std::size_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0 || m * n * k <= kSmallRawGemm) {
        // op(A)(i, p) and op(B)(p, j) in the row-major buffers.
        const std::size_t ai = ta ? 1 : lda, ap = ta ? lda : 1;
        const std::size_t bp = tb ? 1 : ldb, bj = tb ? ldb : 1;
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) {
                T s = 0;
                for (std::size_t p = 0; p < k; ++p) s += a[i * ai + p * ap] * b[p * bp + j * bj];
                T& out = c[i * ldc + j];
                out = beta == T(0) ? alpha * s : alpha * s + beta * out;
            }
        return;
    }
    const auto ta_ = ta ? CblasTrans : CblasNoTrans, tb_ = tb ? CblasTrans : CblasNoTrans;
    const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
    const int ila = static_cast<int>(lda), ilb = static_cast<int>(ldb), ilc = static_cast<int>(ldc);
    if constexpr (std::is_same_v<T, float>)
        cblas_sgemm(CblasRowMajor, ta_, tb_, im, in, ik, alpha, a, ila, b, ilb, beta, c, ilc);
    else
        cblas_dgemm(CblasRowMajor, ta_, tb_, im, in, ik, alpha, a, ila, b, ilb, beta, c, ilc);
}
}  // namespace

void gemm_raw(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
              std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc) {
    gemm_raw_t(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void gemm_raw(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, double alpha, const double* a,
              std::size_t lda, const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc) {
    gemm_raw_t(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace tapegrad::detail
