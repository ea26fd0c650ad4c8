// Linear algebra: matmul (with transpose flags, so no VJP materialises a transpose) and transpose.
#pragma once

#include <string_view>

#include <tapegrad/core/op.hpp>
#include <tapegrad/core/site.hpp>
#include <tapegrad/core/tape.hpp>

namespace tapegrad {

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
        Shape oa = ta ? Shape{a.cols, a.rows} : a;
        Shape ob = tb ? Shape{b.cols, b.rows} : b;
        if (oa.cols != ob.rows)
            fail("matmul: inner dimensions differ: {}{}·{}{}", a, ta ? "ᵀ" : "", b, tb ? "ᵀ" : "");
        return {oa.rows, ob.cols};
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
};

// Y = Xᵀ.  dX = dYᵀ.
struct Transpose {
    static constexpr std::string_view name = "transpose";
    static constexpr std::size_t arity = 1;
    static constexpr Notation notation{"{0}ᵀ", "{0}^T", Prec::Postfix};

    Shape shape(Shape x) const { return {x.cols, x.rows}; }
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

// op(A)·op(B); `ta`/`tb` transpose an operand without copying it.
template <Value V>
V matmul(const V& a, const V& b, bool ta = false, bool tb = false, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(MatMul{ta, tb}, a, b);
}
template <Value V>
V transpose(const V& x, SourceLocation loc = SourceLocation::current()) {
    CallSite at(loc);
    return apply(Transpose{}, x);
}

}  // namespace tapegrad
