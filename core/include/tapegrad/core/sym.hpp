// Sym: the symbolic reading's value — a small expression tree in matrix notation, with its shape.
//
// The ops' VJP rules run on Syms exactly as they run on tensors and on Vars; what comes out is
// the formula the numeric sweep applies. A Sym is a node (kind, operands, coefficient, shape);
// the constructors below simplify as one would on paper — 0 and 1 eliminated, signs and constant
// factors moved to the front, (Aᵀ)ᵀ = A — and the text is made from the tree with exactly the
// brackets that precedence needs (STYLE §15). An op supplies its notation (a pattern such as
// "{0} ⊙ {1}" with a precedence); the standard notations (+, −, ·, ⊙, ⊘, ᵀ, Σ) become the
// tree's own kinds, any other pattern an `Apply` node that brackets its operands by precedence.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <tapegrad/core/error.hpp>
#include <tapegrad/core/shape.hpp>

namespace tapegrad {

// Precedence of a notation, loosest first.
enum class Prec : int { Sum = 0, Product = 1, Prefix = 2, Postfix = 3, Atom = 4 };

// A rendering pattern. {0}, {1}, … are replaced by the operands (parenthesised when needed).
struct Notation {
    std::string_view unicode;
    std::string_view ascii;
    Prec prec = Prec::Atom;
    // A right operand of equal precedence is parenthesised too (a − (b − c), a / (b · c)).
    bool strict_right = false;
};

struct Sym {
    enum class Kind : unsigned char {
        Expr,       // text made by an op from its operands' text (the string API; opaque to the rules)
        One,        // the unit adjoint: ones of its shape (the seed of a scalar loss)
        Zero,       // zeros of its shape
        Name,       // a node or an adjoint by name: X, ∂E/∂A
        Number,     // a constant (coef): 0.25
        Scale,      // coef·args[0], coef ∉ {0, 1}; −1 renders as −X
        Add,        // args[0] + args[1]
        Sub,        // args[0] − args[1]
        MatMul,     // args[0] · args[1]
        Hadamard,   // args[0] ⊙ args[1]
        Divide,     // args[0] ⊘ args[1]
        Transpose,  // args[0]ᵀ
        Reduce,     // Σ over `axes` of args[0]: {} all (Σ(X)), {0} the rows (1ᵀ·X), {1} the columns (X·1)
        Apply,      // an op's own notation (pattern, pattern_ascii, notation_prec) on args
        Call,       // name(args…), for ops that declare no notation
    };
    using Ptr = std::shared_ptr<const Sym>;

    Kind kind = Kind::Expr;
    Shape dims{};
    double coef = 1;          // Scale: the factor; Number: the value
    std::vector<Ptr> args;    // the operands
    std::vector<int> axes;    // Reduce: the axes summed over (empty: all). N-D notation grows here.
    std::string pattern, pattern_ascii;  // Apply: the notation; Call: the function's name
    Prec notation_prec = Prec::Atom;     // Apply: the notation's precedence
    bool strict_right = false;           // Apply: the notation's strict_right

    // The rendering, made from the operands' renderings when the node is built. Ops written
    // against the string API read text/ascii/prec and build an Expr with the constructor below.
    std::string text;        // Unicode
    std::string ascii;       // plain ASCII
    Prec prec = Prec::Atom;  // of `text`
    Prec prec_ascii = Prec::Atom;

    Sym() = default;
    // Opaque text with its precedence (the string API).
    Sym(std::string t, std::string a, Prec p, Shape s)
        : dims(s), text(std::move(t)), ascii(std::move(a)), prec(p), prec_ascii(p) {}

    static Sym atom(std::string name, Shape s);
    static Sym atom(std::string uni, std::string asc, Shape s);
    static Sym one(Shape s);
    static Sym zero(Shape s);
    static Sym number(double v, Shape s);

    bool is_one() const noexcept { return kind == Kind::One; }
    bool is_zero() const noexcept { return kind == Kind::Zero; }
    Shape shape() const noexcept { return dims; }
    std::size_t rows() const noexcept { return dims.rows(); }
    std::size_t cols() const noexcept { return dims.cols(); }
    const std::string& str(bool use_ascii) const noexcept { return use_ascii ? ascii : text; }
    Prec precedence(bool use_ascii) const noexcept { return use_ascii ? prec_ascii : prec; }
};

// The tree's constructors. Each simplifies: 0 and 1 (the 1×1 unit in products) are eliminated,
// constant factors of linear operands move to the front (c·(Aᵀ · B)), −(−X) = X, A + (−B) = A − B,
// (Aᵀ)ᵀ = A, a constant ⊙ X = c·X.
namespace sym {
// c·x, folded: c·(k·y) = (ck)·y, c·number = number, 1·x = x, 0·x = 0, −1·x = −x.
Sym scale(double c, const Sym& x, Shape out);
Sym neg(const Sym& x, Shape out);
Sym add(const Sym& a, const Sym& b, Shape out);
Sym sub(const Sym& a, const Sym& b, Shape out);
Sym matmul(const Sym& a, const Sym& b, Shape out);
Sym hadamard(const Sym& a, const Sym& b, Shape out);
Sym divide(const Sym& a, const Sym& b, Shape out);
Sym transpose(const Sym& x, Shape out);
// Σ over `axes` (empty: all of them).
Sym reduce(const Sym& x, std::vector<int> axes, Shape out);
// "name(a, b, …)".
Sym call(std::string_view name, std::initializer_list<const Sym*> args, Shape out);
// An op's notation as an Apply node, whatever the pattern (render() maps the standard ones).
Sym apply_notation(const Notation& n, std::initializer_list<const Sym*> args, Shape out);
}  // namespace sym

// sym::scale, under its earlier name.
Sym scaled(double c, const Sym& x, Shape out);

// An op's notation applied to operands: the standard patterns ("{0} + {1}", "{0} − {1}",
// "−{0}", "{0} ⊙ {1}", "{0} ⊘ {1}", "{0}ᵀ", the four "{0}(ᵀ) · {1}(ᵀ)", "{0} · {1} + {2}",
// "Σ({0})", "1ᵀ·{0}", "{0}·1", "{0}") build the kinds above; any other an Apply node.
Sym render(const Notation& n, std::initializer_list<const Sym*> args, Shape out);
// "name(a, b, …)" for ops that declare no notation.
Sym render_call(std::string_view name, std::initializer_list<const Sym*> args, Shape out);

}  // namespace tapegrad
