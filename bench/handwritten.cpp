#include "handwritten.hpp"

#include <algorithm>
#include <cmath>

#include <cblas.h>

namespace bench {

HandwrittenMlp::HandwrittenMlp(const Params& init, std::size_t max_batch)
    : sizes_(init.sizes), max_batch_(max_batch), w_(init.w), b_(init.b) {
    const std::size_t layers = sizes_.size() - 1;
    std::size_t widest = *std::max_element(sizes_.begin(), sizes_.end());
    dw_.resize(layers);
    db_.resize(layers);
    a_.resize(layers);
    z_.resize(layers);
    for (std::size_t l = 0; l < layers; ++l) {
        dw_[l].resize(w_[l].size());
        db_[l].resize(b_[l].size());
        a_[l].resize(max_batch * sizes_[l + 1]);
        z_[l].resize(max_batch * sizes_[l]);
    }
    da_.resize(max_batch * widest);
    dz_.resize(max_batch * widest);
}

// Seed 000 with biases kept apart, samples as rows:
//   A^l = Z^l·W^l + 1·b^l,  Z^{l+1} = relu(A^l),  E = mean_i −log softmax(A^{L−1})_{i,y_i}
//   ∂E/∂A^{L−1} = (softmax(A^{L−1}) − onehot(y)) / m
//   ∂E/∂W^l = (Z^l)ᵀ·∂E/∂A^l,  ∂E/∂b^l = 1ᵀ·∂E/∂A^l
//   ∂E/∂A^{l−1} = (∂E/∂A^l·(W^l)ᵀ) ⊙ relu′(A^{l−1})          (eq. 17, exact form)
//   W ← W − η ∂E/∂W
float HandwrittenMlp::step(const float* x, const int* y, std::size_t m, float lr) {
    const std::size_t layers = sizes_.size() - 1;
    const int mi = static_cast<int>(m);

    // Forward.
    for (std::size_t l = 0; l < layers; ++l) {
        const std::size_t in = sizes_[l], out = sizes_[l + 1];
        const float* zin = l == 0 ? x : z_[l].data();
        float* a = a_[l].data();
        for (std::size_t i = 0; i < m; ++i) std::copy_n(b_[l].data(), out, a + i * out);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mi, int(out), int(in), 1.0f, zin, int(in),
                    w_[l].data(), int(out), 1.0f, a, int(out));
        if (l + 1 < layers) {
            float* z = z_[l + 1].data();
            for (std::size_t k = 0; k < m * out; ++k) z[k] = a[k] > 0.0f ? a[k] : 0.0f;
        }
    }

    // Loss and ∂E/∂A^{L−1}.
    const std::size_t classes = sizes_.back();
    const float* logits = a_[layers - 1].data();
    float* da = da_.data();
    double loss = 0;
    const float inv_m = 1.0f / static_cast<float>(m);
    for (std::size_t i = 0; i < m; ++i) {
        const float* r = logits + i * classes;
        float mx = *std::max_element(r, r + classes);
        float s = 0;
        for (std::size_t j = 0; j < classes; ++j) s += std::exp(r[j] - mx);
        const float lse = mx + std::log(s);
        loss += lse - r[y[i]];
        for (std::size_t j = 0; j < classes; ++j) da[i * classes + j] = std::exp(r[j] - lse) * inv_m;
        da[i * classes + std::size_t(y[i])] -= inv_m;
    }

    // Backward.
    for (std::size_t l = layers; l-- > 0;) {
        const std::size_t in = sizes_[l], out = sizes_[l + 1];
        const float* zin = l == 0 ? x : z_[l].data();
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(in), int(out), mi, 1.0f, zin, int(in), da,
                    int(out), 0.0f, dw_[l].data(), int(out));
        float* db = db_[l].data();
        std::copy_n(da, out, db);
        for (std::size_t i = 1; i < m; ++i)
            for (std::size_t j = 0; j < out; ++j) db[j] += da[i * out + j];
        if (l == 0) break;
        // ∂E/∂Z^l = ∂E/∂A^l·(W^l)ᵀ, then ⊙ relu′(A^{l−1}).
        float* dz = dz_.data();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mi, int(in), int(out), 1.0f, da, int(out),
                    w_[l].data(), int(out), 0.0f, dz, int(in));
        const float* aprev = a_[l - 1].data();
        for (std::size_t k = 0; k < m * in; ++k) {
            const float v = dz[k];  // loaded unconditionally, so the select vectorises
            da[k] = aprev[k] > 0.0f ? v : 0.0f;
        }
    }

    // SGD.
    for (std::size_t l = 0; l < layers; ++l) {
        float* w = w_[l].data();
        const float* dw = dw_[l].data();
        for (std::size_t k = 0; k < w_[l].size(); ++k) w[k] -= lr * dw[k];
        float* b = b_[l].data();
        const float* db = db_[l].data();
        for (std::size_t k = 0; k < b_[l].size(); ++k) b[k] -= lr * db[k];
    }
    return static_cast<float>(loss / static_cast<double>(m));
}

}  // namespace bench
