// Losses. The squared-error family and the binary cross-entropy are compositions of other ops
// (their VJPs follow); the class-index softmax cross-entropy is a fused op, for speed and for a
// log-sum-exp forward that stays finite for any logits.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <string_view>
#include <tapegrad/core/engine_ops.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>
#include <tapegrad/ops/activations.hpp>
#include <tapegrad/ops/elementwise.hpp>
#include <tapegrad/ops/math.hpp>
#include <tapegrad/ops/reduce_axes.hpp>
#include <tapegrad/ops/reductions.hpp>
#include <tapegrad/ops/views.hpp>

namespace tapegrad {

namespace detail {

// The class index stored (as T) in labels[i], checked to be an integer in [0, classes).
// T(classes) may round up, so the index is checked again as an integer after the conversion
// (which the first test makes defined: 0 ≤ v < T(classes) ≤ 2⁶⁴).
template <class T>
std::size_t class_index(std::string_view op, const Tensor<T>& labels, std::size_t i, std::size_t classes) {
    const T v = labels[i];
    if (!(v >= T(0)) || !(v < static_cast<T>(classes)) || v != std::floor(v) || static_cast<std::size_t>(v) >= classes)
        fail("{}: label {} at row {} is not a class index in [0, {})", op, v, i, classes);
    return static_cast<std::size_t>(v);
}

// A shape error raised by a composed loss before it records anything. On a tape it ends with
// the caller's line, as an error raised while recording does (Tape::record appends it there);
// the numeric and symbolic readings, like every other op's, give the first line only.
template <class V, class... Args>
[[noreturn, gnu::cold]] void fail_at_call(fmt::format_string<Args...> f, Args&&... args) {
    std::string msg = fmt::format(f, std::forward<Args>(args)...);
    if constexpr (is_var<V>::value) {
        const Site here = Site::current();
        if (here.kind == Site::Kind::exact) msg += fmt::format("\n  {}", here.str());
    }
    throw Error(msg);
}

inline void check_labels_shape(std::string_view op, Shape labels, std::size_t rows) {
    if (labels.cols() != 1 || labels.rows() != rows)
        fail("{}: labels must be a ({}×1) column of class indices, got {}", op, rows, labels);
}

}  // namespace detail

// Y = onehot(labels)     labels: m×1 class indices (as T), Y: m×classes with Yᵢ,ₗᵢ = 1.
// Not differentiable (labels are data).
struct OneHot {
    static constexpr std::string_view name = "one_hot";
    static constexpr std::size_t arity = 1;
    static constexpr Notation notation{"onehot({0})", "onehot({0})", Prec::Atom};
    std::size_t classes = 0;
    Shape shape(Shape labels) const {
        if (labels.cols() != 1) fail("one_hot: labels must be a column (m×1), got {}", labels);
        if (classes == 0) fail("one_hot: zero classes for labels {}", labels);
        if (classes > 0xffffffffu)
            fail("one_hot: {} classes for labels {}: above a tensor's 2³² − 1 columns", classes, labels);
        return {labels.rows(), classes};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& labels) const {
        out.fill(T(0));
        for (std::size_t i = 0; i < labels.rows(); ++i)
            out(i, detail::class_index(name, labels, i, classes)) = T(1);
    }
};

// L = (1/m)·Σᵢ (log Σⱼ exp(Zᵢⱼ) − Zᵢ,ₗᵢ)     Z: m×n logits, labels: m×1 class indices, L: 1×1.
// dZ = (softmax(Z) − onehot(labels)) ⊙ dL / m     (m×n; dL: 1×1 stretched).  labels: none.
struct SoftmaxCrossEntropy {
    static constexpr std::string_view name = "softmax_cross_entropy";
    static constexpr std::size_t arity = 2;
    static constexpr Notation notation{"CE({0}, {1})", "CE({0}, {1})", Prec::Atom};
    Shape shape(Shape z, Shape labels) const {
        if (z.rows() == 0 || z.cols() == 0) fail("softmax_cross_entropy: empty logits {}", z);
        if (labels.cols() != 1 || labels.rows() != z.rows())
            fail(
                "softmax_cross_entropy: labels must be a ({}×1) column of class indices for logits {}, got "
                "{}",
                z.rows(), z, labels);
        return {1, 1};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& z, const Tensor<T>& labels) const {
        const std::size_t m = z.rows(), n = z.cols();
        T total = 0;
        for (std::size_t i = 0; i < m; ++i) {
            const T* r = z.data() + i * n;
            const std::size_t k = detail::class_index(name, labels, i, n);
            const T mx = *std::max_element(r, r + n);
            T s = 0;
            for (std::size_t j = 0; j < n; ++j) s += std::exp(r[j] - mx);
            total += std::log(s) - (r[k] - mx);
        }
        out[0] = total / static_cast<T>(m);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& z, const V& labels) const {
        V diff = apply(Sub{}, apply(Softmax{}, z), apply(OneHot{z.shape().cols()}, labels));
        return apply(Scale{1.0 / static_cast<double>(z.shape().rows())}, apply(Mul{}, diff, g));
    }
};

// ---- cross-entropy at N-D, with ignore_index and a reduction (torch.nn.functional.cross_entropy) --

enum class Reduction { mean, sum, none };

struct CrossEntropyOptions {
    std::int64_t ignore_index = -100;  // positions with this label contribute nothing
    Reduction reduction = Reduction::mean;  // mean divides by the number of positions kept (Σ w_label, weighted)
    double label_smoothing = 0;  // ε in [0, 1]: the target is (1 − ε)·onehot + ε/C (torch's semantics)
    // The class axis of logits of rank ≥ 2: 1 as torch ((N, C, d1, …, dk) with labels (N, d1, …, dk)),
    // or any other axis, negative from the end: −1 takes GPT's (…, C) logits with (…) labels.
    // Rank-1 logits (C) always have their classes on axis 0.
    std::ptrdiff_t class_axis = 1;
};

namespace detail {
// The class axis of logits z under `opt` (0 for a single vector of C logits).
inline std::size_t class_axis(const Shape& z, const CrossEntropyOptions& opt = {}) {
    if (z.rank() <= 1) return 0;
    const auto r = static_cast<std::ptrdiff_t>(z.rank());
    const std::ptrdiff_t a = opt.class_axis < 0 ? opt.class_axis + r : opt.class_axis;
    if (a < 0 || a >= r) fail("softmax_cross_entropy: class_axis {} is outside logits {}", opt.class_axis, z);
    return static_cast<std::size_t>(a);
}
// The labels' shape for logits z: z without its class axis. (For (N, C) logits with classes on
// axis 1, the column (N×1) of the 2-D call is accepted too.)
inline void check_nd_labels(const Shape& z, const Shape& labels, const CrossEntropyOptions& opt = {}) {
    if (z.rank() == 0) fail("softmax_cross_entropy: logits {} have no class axis", z);
    const std::size_t a = class_axis(z, opt);
    if (z[a] == 0) fail("softmax_cross_entropy: logits {} have no classes", z);
    std::array<std::size_t, kMaxRank> d{};
    std::size_t r = 0;
    for (std::size_t k = 0; k < z.rank(); ++k)
        if (k != a) d[r++] = z[k];
    const Shape want(std::span<const std::size_t>(d.data(), r));
    const bool column = z.rank() == 2 && a == 1 && labels == Shape{z[0], 1};
    if (labels != want && !column)
        fail("softmax_cross_entropy: labels must have shape {} (the logits {} without axis {}), got {}", want, z, a,
             labels);
}
inline void check_smoothing(double eps) {
    if (!(eps >= 0 && eps <= 1)) fail("softmax_cross_entropy: label_smoothing {} is outside [0, 1]", eps);
}
// The label at flat position p (as T), or −1 for ignore_index.
template <class T>
std::ptrdiff_t label_at(const Tensor<T>& labels, std::size_t p, std::size_t classes, std::int64_t ignore) {
    if (labels[p] == static_cast<T>(ignore)) return -1;
    return static_cast<std::ptrdiff_t>(class_index("softmax_cross_entropy", labels, p, classes));
}
// label_at as the reader the cross-entropy kernels take: (p, C) → class or −1.
template <class T>
auto labels_of(const Tensor<T>& labels, const CrossEntropyOptions& opt) {
    return [&labels, ignore = opt.ignore_index](std::size_t p, std::size_t c) { return label_at(labels, p, c, ignore); };
}
// Positions of logits z with class axis a: `outer` blocks of C·inner elements; position
// p = o·inner + i reads classes at z[o·C·inner + c·inner + i].
struct CeLayout {
    std::size_t c, outer, inner;
    CeLayout(const Shape& z, std::size_t a) : c(z[a]), outer(1), inner(1) {
        for (std::size_t k = 0; k < a; ++k) outer *= z[k];
        for (std::size_t k = a + 1; k < z.rank(); ++k) inner *= z[k];
    }
};
// The forward of every N-D cross-entropy (labels as T or int64, weighted or not); label(p, C):
// the class of position p, or −1 where it is ignore_index (an Error for a label outside [0, C));
// w: per-class weights, or nullptr (all 1). Per kept position, with log p = log_softmax(z) over
// the classes and label k:
//   L_p = (1 − ε)·(−w_k·log p_k) + (ε/C)·(−Σ_c w_c·log p_c)
// mean divides Σ_p L_p by Σ_p w_k (the count kept without weights), as torch (0/0: NaN).
template <class T, class Label>
void cross_entropy_forward(Tensor<T>& out, const Tensor<T>& z, Label&& label, const T* w,
                           const CrossEntropyOptions& opt) {
    const CeLayout l(z.shape(), class_axis(z.shape(), opt));
    const T eps = static_cast<T>(opt.label_smoothing), keep = 1 - eps, share = eps / static_cast<T>(l.c);
    const T* pz = z.data();
    T total = 0, denom = 0;
    for (std::size_t o = 0; o < l.outer; ++o)
        for (std::size_t i = 0; i < l.inner; ++i) {
            const std::size_t p = o * l.inner + i;
            const std::ptrdiff_t k = label(p, l.c);
            T loss = 0;
            if (k >= 0) {
                const T* r = pz + o * l.c * l.inner + i;
                T mx = r[0];
                for (std::size_t j = 1; j < l.c; ++j) mx = std::max(mx, r[j * l.inner]);
                T s = 0;
                for (std::size_t j = 0; j < l.c; ++j) s += std::exp(r[j * l.inner] - mx);
                const T lse = mx + std::log(s);
                const T wk = w ? w[k] : T(1);
                loss = wk * (lse - r[static_cast<std::size_t>(k) * l.inner]);
                if (eps != 0) {
                    T smooth = 0;
                    for (std::size_t j = 0; j < l.c; ++j) smooth += (w ? w[j] : T(1)) * (lse - r[j * l.inner]);
                    loss = keep * loss + share * smooth;
                }
                denom += wk;
            }
            if (opt.reduction == Reduction::none)
                out[p] = loss;
            else
                total += loss;
        }
    if (opt.reduction == Reduction::sum) out[0] = total;
    if (opt.reduction == Reduction::mean) out[0] = total / denom;
}
// Σ_p w_k over the kept positions (label(p, C) ≥ 0): the mean's denominator.
template <class T, class Label>
T cross_entropy_denominator(std::size_t positions, std::size_t classes, const T* w, Label&& label) {
    T denom = 0;
    for (std::size_t p = 0; p < positions; ++p) {
        const std::ptrdiff_t k = label(p, classes);
        if (k >= 0) denom += w ? w[k] : T(1);
    }
    return denom;
}
// The targets of a cross-entropy's VJP, in the logits' shape `to`: on each kept line (label k)
// s·((1 − ε)·w_k·[c = k] + (ε/C)·w_c), zero lines where the label is ignored; w nullptr: all 1.
template <class T, class Label>
void cross_entropy_targets(Tensor<T>& out, const Shape& to, const CrossEntropyOptions& opt, const T* w, T s,
                           Label&& label) {
    out.fill(T(0));
    const CeLayout l(to, class_axis(to, opt));
    const T eps = static_cast<T>(opt.label_smoothing), share = eps / static_cast<T>(l.c);
    for (std::size_t o = 0; o < l.outer; ++o)
        for (std::size_t i = 0; i < l.inner; ++i) {
            const std::ptrdiff_t k = label(o * l.inner + i, l.c);
            if (k < 0) continue;
            T* line = out.data() + o * l.c * l.inner + i;
            if (eps != 0)
                for (std::size_t j = 0; j < l.c; ++j) line[j * l.inner] = s * share * (w ? w[j] : T(1));
            line[static_cast<std::size_t>(k) * l.inner] += s * (1 - eps) * (w ? w[k] : T(1));
        }
}
// A per-class weight must be a vector of C (the logits' class axis).
inline void check_class_weights(const Shape& z, const Shape& weight, const CrossEntropyOptions& opt) {
    const std::size_t c = z[class_axis(z, opt)];
    if (weight != Shape{c})
        fail("softmax_cross_entropy: weight must be a vector of {} class weights for logits {}, got {}", c, z, weight);
}
// The weighted cross-entropy's VJP from its targets q (cross_entropy_targets, with s):
// dZ = (softmax_C(Z) ⊙ Σ_c q − q) ⊙ dL   (Σ_c over the class axis, dL stretched over C).
template <class V>
V weighted_cross_entropy_grad(const V& g, const V& z, const V& q, const CrossEntropyOptions& opt) {
    const Shape zs = z.shape();
    const std::size_t a = class_axis(zs, opt);
    const V mass = apply(SumAxes{AxisSet{static_cast<std::uint8_t>(1u << a), true}}, q);
    const V gz = opt.reduction == Reduction::none ? apply(Reshape{zs.with(a, 1)}, g) : g;
    return apply(Mul{}, apply(Sub{}, apply(Mul{}, apply(Softmax{static_cast<std::ptrdiff_t>(a)}, z), mass), q), gz);
}
}  // namespace detail

// L_p = log Σ_c exp(Z[…, c, …]) − Z[…, label_p, …] at each position p whose label is not
// ignore_index (with label smoothing ε: (1 − ε)·that + (ε/C)·Σ_c (log Σ exp(Z) − Z[…, c, …]));
// reduced as mean over the positions kept, sum, or none (L in the labels' shape).
// Z: (N, C, d1, …, dk) or (C) (classes on opt.class_axis); labels: Z without the class axis,
// class indices stored as T.
// dZ = (softmax_C(Z) − y) ⊙ (s ⊙ dL)   (stretched over C), y = (1 − ε)·onehot_C(labels) + ε/C,
// s_p = [label_p kept], divided by the number kept for mean.   labels: none.
struct SoftmaxCrossEntropyNd {
    static constexpr std::string_view name = "softmax_cross_entropy_nd";
    static constexpr std::size_t arity = 2;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"CE({0}, {1})", "CE({0}, {1})", Prec::Atom};
    CrossEntropyOptions opt;

    Shape shape(Shape z, Shape labels) const {
        detail::check_nd_labels(z, labels, opt);
        detail::check_smoothing(opt.label_smoothing);
        return opt.reduction == Reduction::none ? labels : Shape{};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& z, const Tensor<T>& labels) const {
        detail::cross_entropy_forward<T>(out, z, detail::labels_of(labels, opt), nullptr, opt);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& z, const V& labels) const;
};

// w_p = [label_p ≠ ignore_index], divided by Σ w for the mean: the weights of a cross-entropy's
// positions. Data (labels), not differentiable.
struct CrossEntropyWeights {
    static constexpr std::string_view name = "cross_entropy_weights";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"w({0})", "w({0})", Prec::Atom};
    CrossEntropyOptions opt;
    Shape shape(Shape labels) const { return labels; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& labels) const {
        std::size_t kept = 0;
        for (std::size_t p = 0; p < labels.size(); ++p) {
            const bool k = labels[p] != static_cast<T>(opt.ignore_index);
            out[p] = k ? T(1) : T(0);
            kept += k;
        }
        if (opt.reduction == Reduction::mean)
            for (std::size_t p = 0; p < out.size(); ++p) out[p] /= static_cast<T>(kept);
    }
};

// onehot along the class axis: Y of the logits' shape `to` with Y[…, label_p, …] = 1 (a zero
// line where the label is ignore_index); with label smoothing ε, (1 − ε)·onehot + ε/C on the
// lines kept. Data, not differentiable.
struct OneHotAxis {
    static constexpr std::string_view name = "one_hot_axis";
    static constexpr std::size_t arity = 1;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"onehot({0})", "onehot({0})", Prec::Atom};
    Shape to;
    std::int64_t ignore_index = -100;
    CrossEntropyOptions opt = {};  // class_axis and label_smoothing
    Shape shape(Shape labels) const {
        detail::check_nd_labels(to, labels, opt);
        return to;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& labels) const {
        const CrossEntropyOptions o{.ignore_index = ignore_index, .label_smoothing = opt.label_smoothing,
                                    .class_axis = opt.class_axis};
        detail::cross_entropy_targets<T>(out, to, o, nullptr, T(1), detail::labels_of(labels, o));
    }
};

template <class V>
V SoftmaxCrossEntropyNd::vjp(In<0>, const V& g, const V&, const V& z, const V& labels) const {
    const Shape zs = z.shape();
    const std::size_t a = detail::class_axis(zs, opt);
    V gw = apply(Mul{}, apply(CrossEntropyWeights{opt}, labels), g);
    V diff = apply(Sub{}, apply(Softmax{static_cast<std::ptrdiff_t>(a)}, z),
                   apply(OneHotAxis{zs, opt.ignore_index, opt}, labels));
    return apply(Mul{}, diff, apply(Reshape{zs.with(a, 1)}, gw));
}

// The weighted cross-entropy's target mass: q[…, c, …] = s_p·((1 − ε)·w_k·[c = k] + (ε/C)·w_c) at
// each kept position p (label k), zero lines at ignored ones; s_p = 1 / Σ_p w_k for the mean,
// else 1. Z's shape `to`; inputs labels and the class weights. Data, not differentiable.
struct CrossEntropyTargets {
    static constexpr std::string_view name = "cross_entropy_targets";
    static constexpr std::size_t arity = 2;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"q({0}, {1})", "q({0}, {1})", Prec::Atom};
    Shape to;
    CrossEntropyOptions opt;
    Shape shape(Shape labels, Shape) const {
        detail::check_nd_labels(to, labels, opt);
        return to;
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& labels, const Tensor<T>& weight) const {
        const auto label = detail::labels_of(labels, opt);
        const std::size_t c = to[detail::class_axis(to, opt)];
        const T s = opt.reduction == Reduction::mean
                        ? 1 / detail::cross_entropy_denominator<T>(labels.size(), c, weight.data(), label)
                        : T(1);
        detail::cross_entropy_targets<T>(out, to, opt, weight.data(), s, label);
    }
};

// torch's cross_entropy with a per-class `weight` (C), also with label smoothing and ignore_index:
// L_p = −Σ_c y_pc·log softmax(Z_p)_c,  y_pc = (1 − ε)·w_k·[c = k] + (ε/C)·w_c  (label k kept),
// mean: Σ_p L_p / Σ_p w_k.   Z, labels: as softmax_cross_entropy_nd; weight: (C).
// dZ = (softmax_C(Z) ⊙ Σ_c q − q) ⊙ dL   (q = s·y: CrossEntropyTargets; Σ_c over the class axis,
// dL stretched over C).   labels, weight: none (data, as torch's weight has no gradient here).
struct SoftmaxCrossEntropyWeighted {
    static constexpr std::string_view name = "softmax_cross_entropy_weighted";
    static constexpr std::size_t arity = 3;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"CE_w({0}, {1})", "CE_w({0}, {1})", Prec::Atom};
    CrossEntropyOptions opt;

    Shape shape(Shape z, Shape labels, Shape weight) const {
        detail::check_nd_labels(z, labels, opt);
        detail::check_smoothing(opt.label_smoothing);
        detail::check_class_weights(z, weight, opt);
        return opt.reduction == Reduction::none ? labels : Shape{};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& z, const Tensor<T>& labels, const Tensor<T>& weight) const {
        detail::cross_entropy_forward<T>(out, z, detail::labels_of(labels, opt), weight.data(), opt);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V& z, const V& labels, const V& weight) const {
        return detail::weighted_cross_entropy_grad(g, z, apply(CrossEntropyTargets{z.shape(), opt}, labels, weight), opt);
    }
};

// ½‖P − T‖² = ½·Σ (P − T)²  → 1×1.
template <Value V>
V sse_half(const V& pred, const V& target, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    if (pred.shape() != target.shape())
        detail::fail_at_call<V>("sse_half: prediction {} and target {} differ in shape", pred.shape(), target.shape());
    return apply(Scale{0.5}, sum(apply(Square{}, apply(Sub{}, pred, target))));
}

// Mean over all elements of (P − T)²  → 1×1.
template <Value V>
V mse(const V& pred, const V& target, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    if (pred.shape() != target.shape())
        detail::fail_at_call<V>("mse: prediction {} and target {} differ in shape", pred.shape(), target.shape());
    return mean(apply(Square{}, apply(Sub{}, pred, target)));
}

// mean(−y log σ(z) − (1−y) log(1−σ(z))) = mean(softplus(z) − y ⊙ z), stable for any z → 1×1.
template <Value V>
V binary_cross_entropy_with_logits(const V& z, const V& y, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    if (z.shape() != y.shape())
        detail::fail_at_call<V>("binary_cross_entropy_with_logits: logits {} and targets {} differ in shape",
                                z.shape(), y.shape());
    return mean(apply(Sub{}, apply(Softplus{}, z), apply(Mul{}, y, z)));
}

// Mean over rows of −log softmax(Z)ᵢ,ₗᵢ; labels: m×1 constant of class indices (as T) → 1×1.
// Other shapes, as torch's cross_entropy: logits (N, C) with labels (N), (N, C, d1, …, dk)
// with labels (N, d1, …, dk), or (C) with a rank-0 label → a rank-0 mean.
template <Value V>
V softmax_cross_entropy(const V& logits, const V& labels, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    if (logits.shape().rank() == 2 && labels.shape().rank() == 2) return apply(SoftmaxCrossEntropy{}, logits, labels);
    return apply(SoftmaxCrossEntropyNd{}, logits, labels);
}
// torch.nn.functional.cross_entropy(logits, labels, ignore_index, reduction): mean and sum give
// rank 0, none the labels' shape. (N, C) logits take labels (N) or the 2-D call's (N×1) column.
template <Value V>
V softmax_cross_entropy(const V& logits, const V& labels, CrossEntropyOptions opt,
                        SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(SoftmaxCrossEntropyNd{opt}, logits, labels);
}
// With torch's per-class `weight` (a vector of C, data): each position's loss is scaled by its
// label's weight (the smoothing term by every class's), and the mean divides by the sum of the
// weights of the labels kept.
template <Value V>
V softmax_cross_entropy(const V& logits, const V& labels, const V& weight, CrossEntropyOptions opt = {},
                        SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(SoftmaxCrossEntropyWeighted{opt}, logits, labels, weight);
}

// −(1/m)·Σᵢⱼ Tᵢⱼ log softmax(Z)ᵢⱼ for probability (or one-hot) targets T: m×n → 1×1 (the
// classes on the last axis, the mean over the m rows). At rank ≥ 3 as torch's cross_entropy with
// probability targets: classes on axis 1, the mean over the other positions (N·d1·…·dk); a rank-1
// Z is one row of classes. Z and T of one shape, else an Error naming both.
template <Value V>
V softmax_cross_entropy_probs(const V& logits, const V& targets, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    const Shape s = logits.shape();
    if (s != targets.shape())
        detail::fail_at_call<V>("softmax_cross_entropy_probs: logits {} and targets {} differ in shape", s,
                                targets.shape());
    if (s.rank() == 0) detail::fail_at_call<V>("softmax_cross_entropy_probs: logits {} have no class axis", s);
    const bool nd = s.rank() > 2;
    if (nd && s[1] == 0) detail::fail_at_call<V>("softmax_cross_entropy_probs: logits {} have no classes", s);
    const double positions = static_cast<double>(nd ? s.numel() / s[1] : s.rows());
    return apply(Scale{-1.0 / positions}, sum(apply(Mul{}, targets, apply(LogSoftmax{nd ? 1 : -1}, logits))));
}

template <Value V>
V one_hot(const V& labels, std::size_t classes, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(OneHot{classes}, labels);
}

}  // namespace tapegrad
