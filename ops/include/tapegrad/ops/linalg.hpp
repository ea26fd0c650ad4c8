// Linear algebra: matmul (with transpose flags, so no VJP materialises a transpose; batched at
// rank ≥ 3), the fused affine map x·W + b of a dense layer, and transpose.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <tapegrad/core/broadcast.hpp>
#include <tapegrad/core/op.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>
#include <tapegrad/ops/views.hpp>

namespace tapegrad {

// The GEMM wrapper passes extents to CBLAS as int: a larger extent is refused at the shape check
// rather than truncated (a 1×2³¹ float row is 8 GiB, under Tensor's cap).
inline constexpr std::size_t kMaxBlasExtent = 0x7fffffff;  // 2³¹ − 1, all ones: (a | b) > it iff a or b is

namespace detail {

// One GEMM, C(m×n, leading dimension ldc) = α·op(A)·op(B) + β·C, on raw row-major operands
// (ops/src/gemm_raw.cpp; tiny products skip BLAS). Extents and leading dimensions ≤ 2³¹ − 1.
void gemm_raw(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
              std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc);
void gemm_raw(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, double alpha, const double* a,
              std::size_t lda, const double* b, std::size_t ldb, double beta, double* c, std::size_t ldc);

// Matmul operands gathered into a contiguous copy because neither of their last two axes had a
// unit stride (a transposed or permuted view is never copied: tests/test_bmm.cpp counts).
inline thread_local std::size_t matmul_operand_copies = 0;

// How BLAS reads the last two axes of a strided operand: a row-major matrix with leading
// dimension ld (`trans` = false), or the transpose of one (`trans`: the view's rows have unit
// stride, as in transpose(x, -1, -2)). `ok` = false: neither axis has a unit stride.
struct BlasLayout {
    bool ok = false, trans = false;
    std::size_t ld = 0;
};
inline BlasLayout blas_layout(const Shape& s, const Strides& st) {
    const std::size_t r = s.rank(), rows = s.rows(), cols = s.cols();
    const std::int64_t rs = r >= 2 ? st[r - 2] : static_cast<std::int64_t>(cols), cs = r >= 1 ? st[r - 1] : 1;
    auto fits = [](std::int64_t v, std::size_t lo) {
        return v >= 1 && v >= static_cast<std::int64_t>(lo) && static_cast<std::uint64_t>(v) <= kMaxBlasExtent;
    };
    if ((cols <= 1 || cs == 1) && (rows <= 1 || fits(rs, cols)))
        return {true, false, rows <= 1 ? std::max<std::size_t>(cols, 1) : static_cast<std::size_t>(rs)};
    if ((rows <= 1 || rs == 1) && (cols <= 1 || fits(cs, rows)))
        return {true, true, cols <= 1 ? std::max<std::size_t>(rows, 1) : static_cast<std::size_t>(cs)};
    return {};
}

// C = op(A)·op(B) for every index of the batch axes (all but the last two) of A and B broadcast
// together; A and B may be strided views. C is contiguous; its batch axes stretch to that batch
// (a VJP's target: the products of a stretched axis are summed into it, with β = 1). C = … when
// `add` is false (C's old contents are not read), else C += ….
template <class T>
void batched_gemm(bool ta, bool tb, const Tensor<T>& a0, const Tensor<T>& b0, Tensor<T>& c, bool add) {
    Tensor<T> copy_a, copy_b;
    const Tensor<T>* a = &a0;
    const Tensor<T>* b = &b0;
    BlasLayout la = blas_layout(a->shape(), a->strides());
    if (!la.ok) [[unlikely]] {
        copy_a = a0.clone(a0.resource());
        a = &copy_a;
        la = blas_layout(a->shape(), a->strides());
        ++matmul_operand_copies;
    }
    BlasLayout lb = blas_layout(b->shape(), b->strides());
    if (!lb.ok) [[unlikely]] {
        copy_b = b0.clone(b0.resource());
        b = &copy_b;
        lb = blas_layout(b->shape(), b->strides());
        ++matmul_operand_copies;
    }
    const bool fa = ta != la.trans, fb = tb != lb.trans;  // the flags BLAS is given
    const Shape as = a->shape(), bs = b->shape(), cs = c.shape();
    const std::size_t m = cs.rows(), n = cs.cols(), k = ta ? as.rows() : as.cols();
    const std::size_t ra = as.rank() > 2 ? as.rank() - 2 : 0, rb = bs.rank() > 2 ? bs.rank() - 2 : 0,
                      rc = cs.rank() > 2 ? cs.rank() - 2 : 0;
    const std::size_t nr = std::max({ra, rb, rc});
    const Strides ast = a->strides(), bst = b->strides(), cst = c.strides();
    std::array<std::size_t, kMaxRank> ext{};
    std::array<std::int64_t, kMaxRank> sa{}, sb{}, sc{};
    std::size_t nb = 1;
    bool reduce = false;
    for (std::size_t j = 0; j < nr; ++j) {  // batch axis j, operands right-aligned
        const std::size_t da = j + ra >= nr ? as[j + ra - nr] : 1, db = j + rb >= nr ? bs[j + rb - nr] : 1,
                          dc = j + rc >= nr ? cs[j + rc - nr] : 1;
        ext[j] = std::max(da, db);
        sa[j] = da == 1 ? 0 : ast[j + ra - nr];
        sb[j] = db == 1 ? 0 : bst[j + rb - nr];
        sc[j] = dc == 1 ? 0 : cst[j + rc - nr];
        if (dc != ext[j]) reduce = true;
        nb *= ext[j];
    }
    T beta = add ? T(1) : T(0);
    if (reduce) {  // C's stretched batch axes: sum into it
        if (!add) c.fill(T(0));
        beta = T(1);
    }
    const T* pa = a->data();
    const T* pb = b->data();
    T* pc = c.data();
    const std::size_t ldc = std::max<std::size_t>(n, 1);
    if (nb > 1) {
        // A's batch of contiguous (m×k) blocks times one shared B: one GEMM with nb·m rows.
        const bool b_shared = std::all_of(sb.begin(), sb.begin() + nr, [](std::int64_t s) { return s == 0; });
        if (!fa && !reduce && b_shared && a->is_contiguous() && as.lead() == nb && nb * m <= kMaxBlasExtent) {
            gemm_raw(false, fb, nb * m, n, k, T(1), pa, la.ld, pb, lb.ld, beta, pc, ldc);
            return;
        }
        // Σ_batch A_iᵀ·B_i into one shared C (the adjoint of a shared weight): one GEMM with
        // an inner dimension of nb·k.
        if (fa && !fb && cs.lead() == 1 && a->is_contiguous() && b->is_contiguous() && as.lead() == nb &&
            bs.lead() == nb && nb * k <= kMaxBlasExtent) {
            gemm_raw(true, false, m, n, nb * k, T(1), pa, la.ld, pb, lb.ld, beta, pc, ldc);
            return;
        }
    }
    std::array<std::size_t, kMaxRank> idx{};
    std::int64_t oa = 0, ob = 0, oc = 0;
    for (std::size_t t = 0; t < nb; ++t) {
        gemm_raw(fa, fb, m, n, k, T(1), pa + oa, la.ld, pb + ob, lb.ld, beta, pc + oc, ldc);
        for (std::size_t j = nr; j-- > 0;) {
            ++idx[j];
            oa += sa[j];
            ob += sb[j];
            oc += sc[j];
            if (idx[j] < ext[j]) break;
            const auto e = static_cast<std::int64_t>(idx[j]);
            oa -= e * sa[j];
            ob -= e * sb[j];
            oc -= e * sc[j];
            idx[j] = 0;
        }
    }
}

// Whether matmul's operands (and the product's target) take today's single-GEMM 2-D path.
template <class T>
bool plain_2d(const Tensor<T>& a, const Tensor<T>& b, const Tensor<T>& c) noexcept {
    return a.rank() <= 2 && b.rank() <= 2 && c.rank() <= 2 && a.is_contiguous() && b.is_contiguous();
}

}  // namespace detail

// C = op(A)·op(B), op(X) = Xᵀ when the flag is set.
//   C = A·B     dA = dC·Bᵀ        dB = Aᵀ·dC
//   C = Aᵀ·B    dA = B·dCᵀ        dB = A·dC
//   C = A·Bᵀ    dA = dC·B         dB = dCᵀ·A
//   C = Aᵀ·Bᵀ   dA = Bᵀ·dCᵀ       dB = dCᵀ·Aᵀ
// Batched (either operand of rank ≥ 3), as torch.matmul: (…, m, k)·(…, k, n) → (…, m, n), the
// batch axes broadcast (NumPy rules) and ᵀ swapping the last two axes. The same formulas hold
// per batch; a VJP's result has the product's batch shape and the engine sums it back over the
// axes the input was stretched along. Operands may be strided: a view whose last two axes
// have a unit stride (transpose(x, -1, -2), a permute, a slice of rows) goes to BLAS as it is,
// as a transpose flag and a leading dimension; any other view is gathered first. A rank-1
// operand reads as 1×n beside a matrix (as every 2-D op), and is an Error beside a batch.
struct MatMul {
    static constexpr std::string_view name = "matmul";
    static constexpr std::size_t arity = 2;
    static constexpr bool any_rank = true;
    static constexpr bool strided = true;
    bool ta = false;
    bool tb = false;

    [[gnu::always_inline]] Shape shape(const Shape& a, const Shape& b) const {
        if (a.rank() > 2 || b.rank() > 2) [[unlikely]]
            return batched_shape(a, b);
        const std::size_t m = ta ? a.cols() : a.rows(), ka = ta ? a.rows() : a.cols();
        const std::size_t kb = tb ? b.cols() : b.rows(), n = tb ? b.rows() : b.cols();
        if (ka != kb || (a.rows() | a.cols() | b.rows() | b.cols()) > kMaxBlasExtent) [[unlikely]]
            bad_2d(a, b);
        return {m, n};
    }
    [[noreturn, gnu::cold, gnu::noinline]] void bad_2d(const Shape& a, const Shape& b) const {
        if ((ta ? a.rows() : a.cols()) != (tb ? b.cols() : b.rows()))
            fail("matmul: inner dimensions differ: {}{}·{}{}", a, ta ? "ᵀ" : "", b, tb ? "ᵀ" : "");
        fail("matmul: {}·{} has an extent above 2³¹ − 1, BLAS's int", a, b);
    }
    Shape batched_shape(const Shape& a, const Shape& b) const {
        if (a.rank() < 2 || b.rank() < 2)
            fail("matmul: {}·{}: a rank-{} operand beside a batched one; unsqueeze it to a matrix", a, b,
                 std::min(a.rank(), b.rank()));
        const std::size_t m = ta ? a.cols() : a.rows(), ka = ta ? a.rows() : a.cols();
        const std::size_t kb = tb ? b.cols() : b.rows(), n = tb ? b.rows() : b.cols();
        if (ka != kb) fail("matmul: inner dimensions differ: {}{}·{}{}", a, ta ? "ᵀ" : "", b, tb ? "ᵀ" : "");
        if ((m | ka | n) > kMaxBlasExtent) [[unlikely]]
            fail("matmul: {}·{} has an extent above 2³¹ − 1, BLAS's int", a, b);
        auto batch = [](const Shape& s) { return Shape::from_range(s.dims().begin(), s.dims().end() - 2); };
        const Shape ab = batch(a), bb = batch(b);
        Shape out;
        try {
            out = broadcast_shape("matmul", ab, bb);
        } catch (const Error&) {
            fail("matmul: the batch axes of {} and {} do not broadcast: {} and {}", a, b, ab, bb);
        }
        std::array<std::size_t, kMaxRank> d{};
        for (std::size_t i = 0; i < out.rank(); ++i) d[i] = out[i];
        d[out.rank()] = m;
        d[out.rank() + 1] = n;
        return Shape(std::span<const std::size_t>(d.data(), out.rank() + 2));
    }
    Notation notation() const {
        static constexpr Notation k[4] = {{"{0} · {1}", "{0} . {1}", Prec::Product},
                                          {"{0}ᵀ · {1}", "{0}^T . {1}", Prec::Product},
                                          {"{0} · {1}ᵀ", "{0} . {1}^T", Prec::Product},
                                          {"{0}ᵀ · {1}ᵀ", "{0}^T . {1}^T", Prec::Product}};
        return k[(ta ? 1 : 0) + (tb ? 2 : 0)];
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& a, const Tensor<T>& b) const {
        if (out.size() == 1 && a.size() == 1 && b.size() == 1) {  // 1×1·1×1 (any rank): a plain product
            out.data()[0] = a.data()[0] * b.data()[0];
            return;
        }
        if (!detail::plain_2d(a, b, out)) [[unlikely]] {  // batched, or a strided view
            detail::batched_gemm(ta, tb, a, b, out, false);
            return;
        }
        gemm(ta, tb, T(1), a, b, T(0), out);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&, const V& b) const {
        if (!ta) return apply(MatMul{false, !tb}, g, b);  // dC·op(B)ᵀ
        return apply(MatMul{tb, true}, b, g);             // (dC·op(B)ᵀ)ᵀ = op(B)·dCᵀ
    }
    template <class V>
    V vjp(In<1>, const V& g, const V&, const V& a, const V&) const {
        if (!tb) return apply(MatMul{!ta, false}, a, g);  // op(A)ᵀ·dC
        return apply(MatMul{true, ta}, g, a);             // (op(A)ᵀ·dC)ᵀ = dCᵀ·op(A)
    }
    // The same two VJPs written into the adjoint's storage (dst = …, or dst += … when `add`):
    // one GEMM with β = 0 or 1, no temporary. A parameter's gradient goes straight from the
    // GEMM into its GradBuffer.
    template <class T>
    void vjp_into(In<0>, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>&, const Tensor<T>&,
                  const Tensor<T>& b) const {
        if (dst.size() == 1 && g.size() == 1 && b.size() == 1) {  // 1×1 (any rank): a plain product
            dst.data()[0] = (add ? dst.data()[0] : T(0)) + g.data()[0] * b.data()[0];
            return;
        }
        if (!detail::plain_2d(g, b, dst)) [[unlikely]] {
            if (!ta) detail::batched_gemm(false, !tb, g, b, dst, add);
            else detail::batched_gemm(tb, true, b, g, dst, add);
            return;
        }
        if (!ta) gemm(false, !tb, T(1), g, b, add ? T(1) : T(0), dst);
        else gemm(tb, true, T(1), b, g, add ? T(1) : T(0), dst);
    }
    template <class T>
    void vjp_into(In<1>, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>&, const Tensor<T>& a,
                  const Tensor<T>&) const {
        if (dst.size() == 1 && g.size() == 1 && a.size() == 1) {  // 1×1 (any rank): a plain product
            dst.data()[0] = (add ? dst.data()[0] : T(0)) + a.data()[0] * g.data()[0];
            return;
        }
        if (!detail::plain_2d(a, g, dst)) [[unlikely]] {
            if (!tb) detail::batched_gemm(!ta, false, a, g, dst, add);
            else detail::batched_gemm(true, ta, g, a, dst, add);
            return;
        }
        if (!tb) gemm(!ta, false, T(1), a, g, add ? T(1) : T(0), dst);
        else gemm(true, ta, T(1), g, a, add ? T(1) : T(0), dst);
    }
};

// Y = Xᵀ.  dX = dYᵀ.
struct Transpose {
    static constexpr std::string_view name = "transpose";
    static constexpr std::size_t arity = 1;
    static constexpr Notation notation{"{0}ᵀ", "{0}^T", Prec::Postfix};

    Shape shape(Shape x) const { return {x.cols(), x.rows()}; }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.rows(); ++i)
            for (std::size_t j = 0; j < x.cols(); ++j) out(j, i) = x(i, j);
    }
    template <class V>
    V vjp(In<0>, const V& g, const V&, const V&) const {
        return apply(Transpose{}, g);
    }
};

// Y = X·W + b, b a row (1×n) added to every row of X·W: a dense layer in one kernel (the bias
// rows are written first, then one GEMM adds X·W with β = 1).
//   dX = dY·Wᵀ        dW = Xᵀ·dY        db = 1ᵀ·dY (the engine sums dY's rows)
// The VJPs are matmul's, so every reading (gradients of gradients, explain()) sees the same
// formulas as for matmul(X, W) + b.
// Any rank, as torch.nn.functional.linear: X (…, k), W (k×n), b (1×n) or (n) give Y (…, n). The
// leading axes of X are read as the M = numel(X)/k rows of one (M×k) matrix — X is contiguous,
// so that is a view, no copy — and the forward and both VJPs are each a single GEMM:
//   Y(M×n) = X(M×k)·W + b      dX(M×k) = dY(M×n)·Wᵀ      dW = X(M×k)ᵀ·dY(M×n)
// (in the Var and Sym readings, as reshapes around matmul). A rank ≤ 2 X is today's 2-D path,
// with a (rows×n) result.
struct Affine {
    static constexpr std::string_view name = "affine";
    static constexpr std::size_t arity = 3;
    static constexpr bool any_rank = true;
    static constexpr Notation notation{"{0} · {1} + {2}", "{0} . {1} + {2}", Prec::Sum};

    // The rows of X read as one matrix: every axis but the last.
    static std::size_t flat_rows(const Shape& x) noexcept { return x.lead() * x.rows(); }

    Shape shape(Shape x, Shape w, Shape b) const {
        if (w.rank() > 2) [[unlikely]]
            fail("affine: the weight has shape {}; it must be a matrix (in×out), X being {}", w, x);
        if (x.cols() != w.rows()) fail("affine: inner dimensions differ: {}·{}", x, w);
        std::size_t m = x.rows();
        for (std::size_t i = 0; i + 2 < x.rank() && m <= kMaxBlasExtent; ++i) m *= x[i];  // no wrap-around
        if ((m | x.cols() | w.cols()) > kMaxBlasExtent) [[unlikely]]
            fail("affine: {}·{} has an extent above 2³¹ − 1, BLAS's int", x, w);
        if (b.rank() > 2 || b.rows() != 1 || b.cols() != w.cols())
            fail("affine: the bias has shape {}; {}·{} needs a bias of shape (1×{})", b, x, w, w.cols());
        if (x.rank() > 2) return x.with(x.rank() - 1, w.cols());
        return {x.rows(), w.cols()};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& b) const {
        const std::size_t n = out.cols();
        const std::size_t m = out.rank() > 2 ? flat_rows(out.shape()) : out.rows();
        for (std::size_t i = 0; i < m; ++i) std::copy_n(b.data(), n, out.data() + i * n);
        if (x.rank() <= 2) [[likely]] {
            gemm(false, false, T(1), x, w, T(1), out);
            return;
        }
        Tensor<T> y = matrix_view(out, m);
        gemm(false, false, T(1), matrix_view(x, m), w, T(1), y);
    }
    // The VJPs of x and W are matmul's (X·W with no transposes), in every reading; at rank ≥ 3,
    // on X and dY reshaped to matrices.
    template <class V>
    V vjp(In<0>, const V& g, const V& y, const V& x, const V& w, const V&) const {
        if (x.shape().rank() <= 2) return MatMul{}.vjp(In<0>{}, g, y, x, w);
        const V g2 = apply(Reshape{Shape{flat_rows(g.shape()), g.shape().cols()}}, g);
        return apply(Reshape{x.shape()}, apply(MatMul{false, true}, g2, w));
    }
    template <class V>
    V vjp(In<1>, const V& g, const V& y, const V& x, const V& w, const V&) const {
        if (x.shape().rank() <= 2) return MatMul{}.vjp(In<1>{}, g, y, x, w);
        const V x2 = apply(Reshape{Shape{flat_rows(x.shape()), x.shape().cols()}}, x);
        const V g2 = apply(Reshape{Shape{flat_rows(g.shape()), g.shape().cols()}}, g);
        return apply(MatMul{true, false}, x2, g2);
    }
    template <class V>
    V vjp(In<2>, const V& g, const V&, const V&, const V&, const V&) const {
        return g;
    }
    template <class T, std::size_t I>
        requires(I < 2)
    void vjp_into(In<I> in, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>& y, const Tensor<T>& x,
                  const Tensor<T>& w, const Tensor<T>&) const {
        if (x.rank() <= 2) [[likely]] {
            MatMul{}.vjp_into(in, dst, add, g, y, x, w);
            return;
        }
        const std::size_t m = flat_rows(x.shape());
        const Tensor<T> g2 = matrix_view(g, m);
        if constexpr (I == 0) {
            Tensor<T> d2 = matrix_view(dst, m);
            gemm(false, true, T(1), g2, w, add ? T(1) : T(0), d2);  // dX = dY·Wᵀ
        } else {
            gemm(true, false, T(1), matrix_view(x, m), g2, add ? T(1) : T(0), dst);  // dW = Xᵀ·dY
        }
    }

private:
    // A contiguous tensor of rank ≥ 3 seen as its (m × last axis) matrix: an alias, no copy.
    template <class T>
    static Tensor<T> matrix_view(const Tensor<T>& t, std::size_t m) {
        return Tensor<T>::view(const_cast<T*>(t.data()), Shape{m, t.cols()}, t.resource());
    }
};

// op(A)·op(B); `ta`/`tb` transpose an operand without copying it.
template <Value V>
V matmul(const V& a, const V& b, bool ta = false, bool tb = false, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(MatMul{ta, tb}, a, b);
}
// x·W + b with b a 1×n row: what a dense layer computes, fused (see Affine); x may be (…, in).
template <Value V>
V affine(const V& x, const V& w, const V& b, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Affine{}, x, w, b);
}
template <Value V>
V transpose(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Transpose{}, x);
}

}  // namespace tapegrad
