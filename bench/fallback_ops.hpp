// Stand-ins for relu, tanh and softmax_cross_entropy, compiled only while the op library's
// headers (helper "ops") are absent, so that the harness builds and runs from core alone.
// Declared with the public op protocol, as a user's op would be.
#pragma once

#include <algorithm>
#include <cmath>

#include <tapegrad/tapegrad.hpp>

namespace bench::fallback {

namespace tg = tapegrad;

// relu′(X) = [X > 0]  (not differentiated again).
struct ReluGrad {
    static constexpr std::string_view name = "relu_grad";
    static constexpr std::size_t arity = 1;
    tg::Shape shape(tg::Shape x) const { return x; }
    template <class T>
    void forward(tg::Tensor<T>& out, const tg::Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] > T(0) ? T(1) : T(0);
    }
};
// Y = max(X, 0).  dX = dY ⊙ [X > 0].
struct Relu {
    static constexpr std::string_view name = "relu";
    static constexpr std::size_t arity = 1;
    tg::Shape shape(tg::Shape x) const { return x; }
    template <class T>
    void forward(tg::Tensor<T>& out, const tg::Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] > T(0) ? x[i] : T(0);
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V&, const V& x) const {
        return apply(tg::Mul{}, g, apply(ReluGrad{}, x));
    }
};
// 1 − Y² for Y = tanh(X)  (not differentiated again).
struct TanhGradFromY {
    static constexpr std::string_view name = "tanh_grad";
    static constexpr std::size_t arity = 1;
    tg::Shape shape(tg::Shape x) const { return x; }
    template <class T>
    void forward(tg::Tensor<T>& out, const tg::Tensor<T>& y) const {
        for (std::size_t i = 0; i < y.size(); ++i) out[i] = T(1) - y[i] * y[i];
    }
};
// Y = tanh(X).  dX = dY ⊙ (1 − Y²).
struct Tanh {
    static constexpr std::string_view name = "tanh";
    static constexpr std::size_t arity = 1;
    tg::Shape shape(tg::Shape x) const { return x; }
    template <class T>
    void forward(tg::Tensor<T>& out, const tg::Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = std::tanh(x[i]);
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V& y, const V&) const {
        return apply(tg::Mul{}, g, apply(TanhGradFromY{}, y));
    }
};
// (softmax(Z) − onehot(y)) / m  (not differentiated again).
struct SoftmaxCeGrad {
    static constexpr std::string_view name = "softmax_ce_grad";
    static constexpr std::size_t arity = 2;
    tg::Shape shape(tg::Shape z, tg::Shape) const { return z; }
    template <class T>
    void forward(tg::Tensor<T>& out, const tg::Tensor<T>& z, const tg::Tensor<T>& y) const {
        const std::size_t m = z.rows(), n = z.cols();
        for (std::size_t i = 0; i < m; ++i) {
            const T* r = z.data() + i * n;
            T mx = *std::max_element(r, r + n), s = 0;
            for (std::size_t j = 0; j < n; ++j) s += std::exp(r[j] - mx);
            const T lse = mx + std::log(s);
            for (std::size_t j = 0; j < n; ++j) out(i, j) = std::exp(r[j] - lse) / T(m);
            out(i, static_cast<std::size_t>(y[i])) -= T(1) / T(m);
        }
    }
};
// E = mean_i (logsumexp(Z_i) − Z_{i,y_i}).  dZ = dE · (softmax(Z) − onehot(y)) / m.
struct SoftmaxCe {
    static constexpr std::string_view name = "softmax_cross_entropy";
    static constexpr std::size_t arity = 2;
    tg::Shape shape(tg::Shape z, tg::Shape y) const {
        if (y.rows != z.rows || y.cols != 1) tg::fail("softmax_cross_entropy: logits {}, labels {}", z, y);
        return {1, 1};
    }
    template <class T>
    void forward(tg::Tensor<T>& out, const tg::Tensor<T>& z, const tg::Tensor<T>& y) const {
        const std::size_t m = z.rows(), n = z.cols();
        T loss = 0;
        for (std::size_t i = 0; i < m; ++i) {
            const T* r = z.data() + i * n;
            T mx = *std::max_element(r, r + n), s = 0;
            for (std::size_t j = 0; j < n; ++j) s += std::exp(r[j] - mx);
            loss += mx + std::log(s) - r[static_cast<std::size_t>(y[i])];
        }
        out[0] = loss / T(m);
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V&, const V& z, const V& y) const {
        return apply(tg::Mul{}, g, apply(SoftmaxCeGrad{}, z, y));
    }
};

template <class V>
V relu(const V& x) {
    return apply(Relu{}, x);
}
template <class V>
V tanh(const V& x) {
    return apply(Tanh{}, x);
}
template <class V>
V softmax_cross_entropy(const V& z, const V& y) {
    return apply(SoftmaxCe{}, z, y);
}

}  // namespace bench::fallback
