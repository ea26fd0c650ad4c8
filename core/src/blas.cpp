#include <tapegrad/core/tensor.hpp>

#include <cblas.h>

namespace tapegrad {

namespace {
// Leading dimension of a row-major matrix is its column count (at least 1 for BLAS).
int ld(std::size_t cols) { return static_cast<int>(cols > 0 ? cols : 1); }
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
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a.data(), ld(a.cols()), b.data(), ld(b.cols()), beta, c.data(), ld(c.cols()));
}

void set_blas_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }
int blas_threads() { return openblas_get_num_threads(); }

template class Tensor<float>;
template class Tensor<double>;

}  // namespace tapegrad
