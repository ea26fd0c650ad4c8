// Linear algebra: matmul (with transpose flags, so no VJP materialises a transpose), the fused
// affine map x·W + b of a dense layer, and transpose.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

#include <tapegrad/core/op.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>

namespace tapegrad {

// The GEMM wrapper passes extents to CBLAS as int: a larger extent is refused at the shape check
// rather than truncated (a 1×2³¹ float row is 8 GiB, under Tensor's cap).
inline constexpr std::size_t kMaxBlasExtent = 0x7fffffff;  // 2³¹ − 1, all ones: (a | b) > it iff a or b is

// C = op(A)·op(B), op(X) = Xᵀ when the flag is set.
//   C = A·B     dA = dC·Bᵀ        dB = Aᵀ·dC
//   C = Aᵀ·B    dA = B·dCᵀ        dB = A·dC
//   C = A·Bᵀ    dA = dC·B         dB = dCᵀ·A
//   C = Aᵀ·Bᵀ   dA = Bᵀ·dCᵀ       dB = dCᵀ·Aᵀ
struct MatMul {
    static constexpr std::string_view name = "matmul";
    static constexpr std::size_t arity = 2;
    bool ta = false;
    bool tb = false;

    Shape shape(Shape a, Shape b) const {
        Shape oa = ta ? Shape{a.cols(), a.rows()} : a;
        Shape ob = tb ? Shape{b.cols(), b.rows()} : b;
        if (oa.cols() != ob.rows())
            fail("matmul: inner dimensions differ: {}{}·{}{}", a, ta ? "ᵀ" : "", b, tb ? "ᵀ" : "");
        if ((a.rows() | a.cols() | b.rows() | b.cols()) > kMaxBlasExtent) [[unlikely]]
            fail("matmul: {}·{} has an extent above 2³¹ − 1, BLAS's int", a, b);
        return {oa.rows(), ob.cols()};
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
        if (out.size() == 1 && a.size() == 1 && b.size() == 1) {  // 1×1·1×1: a plain product
            out[0] = a[0] * b[0];
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
        if (dst.size() == 1 && g.size() == 1 && b.size() == 1) {  // 1×1: a plain product
            dst[0] = (add ? dst[0] : T(0)) + g[0] * b[0];
            return;
        }
        if (!ta) gemm(false, !tb, T(1), g, b, add ? T(1) : T(0), dst);
        else gemm(tb, true, T(1), b, g, add ? T(1) : T(0), dst);
    }
    template <class T>
    void vjp_into(In<1>, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>&, const Tensor<T>& a,
                  const Tensor<T>&) const {
        if (dst.size() == 1 && g.size() == 1 && a.size() == 1) {  // 1×1: a plain product
            dst[0] = (add ? dst[0] : T(0)) + a[0] * g[0];
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
struct Affine {
    static constexpr std::string_view name = "affine";
    static constexpr std::size_t arity = 3;
    static constexpr Notation notation{"{0} · {1} + {2}", "{0} . {1} + {2}", Prec::Sum};

    Shape shape(Shape x, Shape w, Shape b) const {
        if (x.cols() != w.rows()) fail("affine: inner dimensions differ: {}·{}", x, w);
        if ((x.rows() | x.cols() | w.cols()) > kMaxBlasExtent) [[unlikely]]
            fail("affine: {}·{} has an extent above 2³¹ − 1, BLAS's int", x, w);
        if (b.rows() != 1 || b.cols() != w.cols())
            fail("affine: the bias has shape {}; {}·{} needs a bias of shape (1×{})", b, x, w, w.cols());
        return {x.rows(), w.cols()};
    }
    template <class T>
    void forward(Tensor<T>& out, const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& b) const {
        const std::size_t n = out.cols();
        for (std::size_t i = 0; i < out.rows(); ++i) std::copy_n(b.data(), n, out.data() + i * n);
        gemm(false, false, T(1), x, w, T(1), out);
    }
    // The VJPs of x and W are matmul's (X·W with no transposes), in every reading.
    template <class V>
    V vjp(In<0>, const V& g, const V& y, const V& x, const V& w, const V&) const {
        return MatMul{}.vjp(In<0>{}, g, y, x, w);
    }
    template <class V>
    V vjp(In<1>, const V& g, const V& y, const V& x, const V& w, const V&) const {
        return MatMul{}.vjp(In<1>{}, g, y, x, w);
    }
    template <class V>
    V vjp(In<2>, const V& g, const V&, const V&, const V&, const V&) const {
        return g;
    }
    template <class T, std::size_t I>
        requires(I < 2)
    void vjp_into(In<I> in, Tensor<T>& dst, bool add, const Tensor<T>& g, const Tensor<T>& y, const Tensor<T>& x,
                  const Tensor<T>& w, const Tensor<T>&) const {
        MatMul{}.vjp_into(in, dst, add, g, y, x, w);
    }
};

// op(A)·op(B); `ta`/`tb` transpose an operand without copying it.
template <Value V>
V matmul(const V& a, const V& b, bool ta = false, bool tb = false, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(MatMul{ta, tb}, a, b);
}
// x·W + b with b a 1×n row: what a dense layer computes, fused (see Affine).
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
