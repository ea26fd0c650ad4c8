// Sym: the symbolic reading's value — an expression in matrix notation with its shape.
//
// The ops' VJP rules run on Syms exactly as they run on tensors and on Vars; what comes out is
// the formula the numeric sweep applies. Each op supplies its notation (a pattern such as
// "{0} ⊙ {1}" with a precedence); operands of lower precedence are parenthesised.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <tapegrad/core/error.hpp>

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
    std::string text;       // the Unicode rendering
    std::string ascii;      // the plain-ASCII rendering
    Prec prec = Prec::Atom;
    Shape dims{};
    // The infix operator of a binary notation ("·", "⊙", "⊘"; "" otherwise). Two different
    // operators of equal precedence do not associate with each other, so an operand built with
    // one is parenthesised under the other: (G · Wᵀ) ⊙ σ′(A), never G · Wᵀ ⊙ σ′(A).
    std::string infix;
    // Scalar bookkeeping, so that signs and constant factors fold as they would on paper:
    // a numeric constant (0.5), or coef·base (−X is −1·X, 0.2·Y). −(−X) = X, 0.5 ⊙ 2·D = D,
    // A + (−B) = A − B, (c·A)ᵀ · B = c·(Aᵀ · B).
    std::optional<double> number;
    double coef = 1;
    std::shared_ptr<const Sym> base;
    enum class Kind : unsigned char { Expr, One, Zero } kind = Kind::Expr;

    Sym() = default;
    Sym(std::string t, std::string a, Prec p, Shape s) : text(std::move(t)), ascii(std::move(a)), prec(p), dims(s) {}
    static Sym atom(std::string name, Shape s) { return Sym(name, name, Prec::Atom, s); }
    static Sym atom(std::string uni, std::string asc, Shape s) { return Sym(std::move(uni), std::move(asc), Prec::Atom, s); }
    static Sym one(Shape s) {
        Sym r("1", "1", Prec::Atom, s);
        r.kind = Kind::One;
        return r;
    }

    bool is_one() const noexcept { return kind == Kind::One; }
    bool is_zero() const noexcept { return kind == Kind::Zero; }
    Shape shape() const noexcept { return dims; }
    std::size_t rows() const noexcept { return dims.rows; }
    std::size_t cols() const noexcept { return dims.cols; }
    const std::string& str(bool use_ascii) const noexcept { return use_ascii ? ascii : text; }
};

// c·x, folded: c·(k·y) = (ck)·y, c·number = number, 1·x = x, −1·x = −x.
Sym scaled(double c, const Sym& x, Shape out);
// Renders `n` with the given operands; defined in core/src/sym.cpp. Negation, constant factors
// of linear notations (⊙, ·, ⊘'s numerator, ᵀ, Σ) and sums with a negated term are folded.
Sym render(const Notation& n, std::initializer_list<const Sym*> args, Shape out);
// "name(a, b, …)" for ops that declare no notation.
Sym render_call(std::string_view name, std::initializer_list<const Sym*> args, Shape out);

}  // namespace tapegrad
