#include <tapegrad/core/tensor.hpp>

#include <cblas.h>

namespace tapegrad {

namespace {
// Leading dimension of a row-major matrix is its column count (at least 1 for BLAS).
int ld(std::size_t cols) { return static_cast<int>(cols > 0 ? cols : 1); }

// Below this many multiply-adds a BLAS call costs more than the product itself.
constexpr std::size_t kSmallGemm = 512;

template <class T>
void small_gemm(bool ta, bool tb, T alpha, const Tensor<T>& a, const Tensor<T>& b, T beta, Tensor<T>& c,
                std::size_t k) {
    const std::size_t m = c.rows(), n = c.cols();
    // Strides of op(A)(i, p) and op(B)(p, j) in the row-major buffers.
    const std::size_t ai = ta ? 1 : a.cols(), ap = ta ? a.cols() : 1;
    const std::size_t bp = tb ? 1 : b.cols(), bj = tb ? b.cols() : 1;
    const T* pa = a.data();
    const T* pb = b.data();
    T* pc = c.data();
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            T s = 0;
            for (std::size_t p = 0; p < k; ++p) s += pa[i * ai + p * ap] * pb[p * bp + j * bj];
            T& out = pc[i * n + j];
            out = beta == T(0) ? alpha * s : alpha * s + beta * out;
        }
}
}  // namespace

void gemm(bool ta, bool tb, float alpha, const Tensor<float>& a, const Tensor<float>& b, float beta,
          Tensor<float>& c) {
    const int m = static_cast<int>(c.rows()), n = static_cast<int>(c.cols());
    const int k = static_cast<int>(ta ? a.rows() : a.cols());
    if (m == 0 || n == 0) return;
    if (k == 0) {
        for (std::size_t i = 0; i < c.size(); ++i) c[i] = beta == 0.f ? 0.f : beta * c[i];
        return;
    }
    if (std::size_t(m) * std::size_t(n) * std::size_t(k) <= kSmallGemm) {
        small_gemm(ta, tb, alpha, a, b, beta, c, std::size_t(k));
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a.data(), ld(a.cols()), b.data(), ld(b.cols()), beta, c.data(), ld(c.cols()));
}

void gemm(bool ta, bool tb, double alpha, const Tensor<double>& a, const Tensor<double>& b, double beta,
          Tensor<double>& c) {
    const int m = static_cast<int>(c.rows()), n = static_cast<int>(c.cols());
    const int k = static_cast<int>(ta ? a.rows() : a.cols());
    if (m == 0 || n == 0) return;
    if (k == 0) {
        for (std::size_t i = 0; i < c.size(); ++i) c[i] = beta == 0. ? 0. : beta * c[i];
        return;
    }
    if (std::size_t(m) * std::size_t(n) * std::size_t(k) <= kSmallGemm) {
        small_gemm(ta, tb, alpha, a, b, beta, c, std::size_t(k));
        return;
    }
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a.data(), ld(a.cols()), b.data(), ld(b.cols()), beta, c.data(), ld(c.cols()));
}

void set_blas_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }
int blas_threads() { return openblas_get_num_threads(); }

template class Tensor<float>;
template class Tensor<double>;

}  // namespace tapegrad
