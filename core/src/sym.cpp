#include <tapegrad/core/sym.hpp>

#include <utility>

#include <fmt/format.h>

namespace tapegrad {

namespace {

using Kind = Sym::Kind;

// ---- rendering: a node's text from its operands' text, with the brackets precedence needs ----

// The product-like operator a node renders with ("·", "⊙", "⊘"; "" for anything else). Two
// different operators of equal precedence do not associate with each other, so an operand built
// with one is parenthesised under the other: (G · Wᵀ) ⊙ σ′(A), never G · Wᵀ ⊙ σ′(A).
std::string_view infix_of_pattern(std::string_view pattern) {
    const std::size_t a = pattern.find("{0}"), b = pattern.find("{1}");
    if (a == std::string_view::npos || b == std::string_view::npos || b < a) return {};
    std::string_view mid = pattern.substr(a + 3, b - a - 3);
    for (std::string_view op : {"·", "⊙", "⊘"})
        if (mid.find(op) != std::string_view::npos) return op;
    return {};
}

std::string_view infix_of(const Sym& s, bool ascii) {
    switch (s.kind) {
        case Kind::MatMul: return "·";
        case Kind::Hadamard: return "⊙";
        case Kind::Divide: return "⊘";
        // 1ᵀ·X and X·1 are bracketed under another product: (A·1) · (1ᵀ·B), not A·1 · 1ᵀ·B.
        case Kind::Reduce: return ascii || s.axes.empty() ? "" : "Σ";
        case Kind::Apply: return infix_of_pattern(s.pattern);
        default: return {};
    }
}

struct Rule {
    Prec prec;                // the parent's precedence
    std::string_view infix;   // the parent's product operator, if any
    bool strict = false;      // an operand of equal precedence is parenthesised too
};

bool needs_paren(const Sym& x, bool ascii, Rule r) {
    const Prec p = x.precedence(ascii);
    if (static_cast<int>(p) < static_cast<int>(r.prec)) return true;
    if (p != r.prec) return false;
    if (r.strict) return true;
    if (p != Prec::Product || r.infix.empty()) return false;
    const std::string_view op = infix_of(x, ascii);
    return !op.empty() && op != r.infix;
}

std::string operand(const Sym& x, bool ascii, Rule r) {
    const std::string& t = x.str(ascii);
    if (!needs_paren(x, ascii, r)) return t;
    std::string out;
    out.reserve(t.size() + 2);
    out.append("(").append(t).append(")");
    return out;
}

std::string number_text(double v, bool ascii) {
    if (v < 0 && !ascii) return fmt::format("−{:g}", -v);
    return fmt::format("{:g}", v);
}

// Fills {0}, {1}, … of a pattern; an operand directly followed by ᵀ binds as a postfix.
std::string fill(std::string_view pattern, const Sym& s, bool ascii, Rule base) {
    std::string out;
    out.reserve(pattern.size() + 32);
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '{' && i + 2 < pattern.size() && pattern[i + 2] == '}' && pattern[i + 1] >= '0' &&
            pattern[i + 1] <= '9') {
            const auto k = static_cast<std::size_t>(pattern[i + 1] - '0');
            if (k < s.args.size()) {
                Rule r = base;
                r.strict = base.strict && k > 0;
                const std::string_view after = pattern.substr(i + 3);
                if (after.starts_with("ᵀ") || after.starts_with("^T")) r = {Prec::Postfix, {}};
                if (base.prec == Prec::Atom) r = {Prec::Sum, {}};  // function notation brackets itself
                out += operand(*s.args[k], ascii, r);
            }
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

// Renders node s (both notations) from its operands.
void finish(Sym& s) {
    for (const bool a : {false, true}) {
        std::string t;
        Prec p = Prec::Atom;
        auto arg = [&](std::size_t k, Rule r) { return operand(*s.args[k], a, r); };
        switch (s.kind) {
            case Kind::Expr:
            case Kind::Name: continue;  // text given
            case Kind::One: t = "1"; break;
            case Kind::Zero: t = "0"; break;
            case Kind::Number:
                t = number_text(s.coef, a);
                p = s.coef < 0 ? Prec::Prefix : Prec::Atom;
                break;
            case Kind::Scale:
                if (s.coef == -1) {
                    t = a ? "-" : "−";
                    t += arg(0, {Prec::Prefix, {}});
                    p = Prec::Prefix;
                } else {
                    // c·(A + B), c·(A ⊙ B): a product operand is bracketed after a coefficient.
                    t = number_text(s.coef, a);
                    t += a ? "*" : "·";
                    t += arg(0, {Prec::Prefix, {}});
                    p = Prec::Product;
                }
                break;
            case Kind::Add:
                t = arg(0, {Prec::Sum, {}}) + " + " + arg(1, {Prec::Sum, {}});
                p = Prec::Sum;
                break;
            case Kind::Sub:
                t = arg(0, {Prec::Sum, {}}) + (a ? " - " : " − ") + arg(1, {Prec::Sum, {}, true});
                p = Prec::Sum;
                break;
            case Kind::MatMul:
                t = arg(0, {Prec::Product, "·"}) + (a ? " . " : " · ") + arg(1, {Prec::Product, "·"});
                p = Prec::Product;
                break;
            case Kind::Hadamard:
                t = arg(0, {Prec::Product, "⊙"}) + (a ? " * " : " ⊙ ") + arg(1, {Prec::Product, "⊙"});
                p = Prec::Product;
                break;
            case Kind::Divide:
                t = arg(0, {Prec::Product, "⊘"}) + (a ? " / " : " ⊘ ") + arg(1, {Prec::Product, "⊘", true});
                p = Prec::Product;
                break;
            case Kind::Transpose:
                t = arg(0, {Prec::Postfix, {}}) + (a ? "^T" : "ᵀ");
                p = Prec::Postfix;
                break;
            case Kind::Reduce:
                // 2-D: Σ over everything, over the rows (1ᵀ·X) or over the columns (X·1).
                if (s.axes.empty()) {
                    t = a ? "sum(" : "Σ(";
                    t += s.args[0]->str(a) + ")";
                } else if (a) {
                    t = s.axes == std::vector<int>{0} ? "colsum(" : "rowsum(";
                    t += s.args[0]->ascii + ")";
                } else {
                    const Rule r{Prec::Product, "Σ"};
                    t = s.axes == std::vector<int>{0} ? "1ᵀ·" : "";
                    t += arg(0, r);
                    if (s.axes != std::vector<int>{0}) t += "·1";
                    p = Prec::Product;
                }
                break;
            case Kind::Apply:
                t = fill(a && !s.pattern_ascii.empty() ? s.pattern_ascii : s.pattern, s, a,
                         {s.notation_prec, infix_of_pattern(s.pattern), s.strict_right});
                p = s.notation_prec;
                break;
            case Kind::Call: {
                t = s.pattern + "(";
                for (std::size_t k = 0; k < s.args.size(); ++k) t += (k ? ", " : "") + s.args[k]->str(a);
                t += ")";
                break;
            }
        }
        (a ? s.ascii : s.text) = std::move(t);
        (a ? s.prec_ascii : s.prec) = p;
    }
}

Sym node(Kind k, Shape out, std::initializer_list<const Sym*> args, double coef = 1) {
    Sym s;
    s.kind = k;
    s.dims = out;
    s.coef = coef;
    for (const Sym* a : args) s.args.push_back(std::make_shared<const Sym>(*a));
    finish(s);
    return s;
}

Sym reshaped(Sym s, Shape out) {
    s.dims = out;
    return s;
}

// Takes the constant factor off x (c·Y → Y), returning it.
double pull(Sym& x) {
    if (x.kind != Kind::Scale) return 1;
    const double c = x.coef;
    Sym inner = *x.args[0];
    x = std::move(inner);
    return c;
}

bool negative(const Sym& s) { return (s.kind == Kind::Scale || s.kind == Kind::Number) && s.coef < 0; }
bool unit(const Sym& s) { return s.is_one() && s.dims == Shape{1, 1}; }

}  // namespace

Sym Sym::atom(std::string name, Shape s) {
    std::string a = name;
    return atom(std::move(name), std::move(a), s);
}
Sym Sym::atom(std::string uni, std::string asc, Shape s) {
    Sym r(std::move(uni), std::move(asc), Prec::Atom, s);
    r.kind = Kind::Name;
    return r;
}
Sym Sym::one(Shape s) { return node(Kind::One, s, {}); }
Sym Sym::zero(Shape s) { return node(Kind::Zero, s, {}); }
Sym Sym::number(double v, Shape s) { return node(Kind::Number, s, {}, v); }

namespace sym {

Sym scale(double c, const Sym& x0, Shape out) {
    Sym x = x0;
    c *= pull(x);
    if (x.is_zero() || c == 0) return Sym::zero(out);
    if (x.is_one()) return c == 1 ? reshaped(std::move(x), out) : Sym::number(c, out);
    if (x.kind == Kind::Number) return Sym::number(c * x.coef, out);
    if (c == 1) return reshaped(std::move(x), out);
    return node(Kind::Scale, out, {&x}, c);
}

Sym neg(const Sym& x, Shape out) { return scale(-1, x, out); }

Sym add(const Sym& a, const Sym& b, Shape out) {
    if (a.is_zero()) return reshaped(b, out);
    if (b.is_zero()) return reshaped(a, out);
    if (negative(b)) {
        const Sym nb = neg(b, b.dims);
        return node(Kind::Sub, out, {&a, &nb});
    }
    if (negative(a)) {  // −A + B = B − A
        const Sym na = neg(a, a.dims);
        return node(Kind::Sub, out, {&b, &na});
    }
    return node(Kind::Add, out, {&a, &b});
}

Sym sub(const Sym& a, const Sym& b, Shape out) {
    if (b.is_zero()) return reshaped(a, out);
    if (a.is_zero()) return neg(b, out);
    if (negative(b)) {
        const Sym nb = neg(b, b.dims);
        return node(Kind::Add, out, {&a, &nb});
    }
    return node(Kind::Sub, out, {&a, &b});
}

Sym matmul(const Sym& a0, const Sym& b0, Shape out) {
    Sym a = a0, b = b0;
    double c = pull(a) * pull(b);
    // A constant matrix is v·1: Xᵀ · 0.25 would read as a scalar factor; 0.25·(Xᵀ · 1) does not.
    for (Sym* x : {&a, &b})
        if (x->kind == Kind::Number) c *= std::exchange(*x, Sym::one(x->dims)).coef;
    if (a.is_zero() || b.is_zero()) return Sym::zero(out);
    // X · 1 with the 1×1 unit (the seed of a scalar loss) is X.
    if (unit(b)) return scale(c, a, out);
    if (unit(a)) return scale(c, b, out);
    return scale(c, node(Kind::MatMul, out, {&a, &b}), out);
}

Sym hadamard(const Sym& a0, const Sym& b0, Shape out) {
    Sym a = a0, b = b0;
    const double c = pull(a) * pull(b);
    if (a.is_zero() || b.is_zero()) return Sym::zero(out);
    if (a.kind == Kind::Number) return scale(c * a.coef, b, out);
    if (b.kind == Kind::Number) return scale(c * b.coef, a, out);
    if (a.is_one()) return scale(c, b, out);
    if (b.is_one()) return scale(c, a, out);
    return scale(c, node(Kind::Hadamard, out, {&a, &b}), out);
}

Sym divide(const Sym& a0, const Sym& b, Shape out) {
    Sym a = a0;
    const double c = pull(a);  // linear in the numerator only
    if (a.is_zero()) return Sym::zero(out);
    return scale(c, node(Kind::Divide, out, {&a, &b}), out);
}

Sym transpose(const Sym& x0, Shape out) {
    Sym x = x0;
    const double c = pull(x);
    switch (x.kind) {
        case Kind::Zero:
        case Kind::One:
        case Kind::Number: return scale(c, reshaped(std::move(x), out), out);
        case Kind::Transpose: return scale(c, reshaped(*x.args[0], out), out);  // (Aᵀ)ᵀ = A
        default: return scale(c, node(Kind::Transpose, out, {&x}), out);
    }
}

Sym reduce(const Sym& x0, std::vector<int> axes, Shape out) {
    Sym x = x0;
    const double c = pull(x);
    if (x.is_zero()) return Sym::zero(out);
    Sym r;
    r.kind = Kind::Reduce;
    r.dims = out;
    r.axes = std::move(axes);
    r.args.push_back(std::make_shared<const Sym>(std::move(x)));
    finish(r);
    return scale(c, r, out);
}

Sym call(std::string_view name, std::initializer_list<const Sym*> args, Shape out) {
    Sym r;
    r.kind = Kind::Call;
    r.dims = out;
    r.pattern = name;
    for (const Sym* a : args) r.args.push_back(std::make_shared<const Sym>(*a));
    finish(r);
    return r;
}

Sym apply_notation(const Notation& n, std::initializer_list<const Sym*> args, Shape out) {
    Sym r;
    r.kind = Kind::Apply;
    r.dims = out;
    r.pattern = n.unicode;
    r.pattern_ascii = n.ascii;
    r.notation_prec = n.prec;
    r.strict_right = n.strict_right;
    for (const Sym* a : args) r.args.push_back(std::make_shared<const Sym>(*a));
    finish(r);
    return r;
}

}  // namespace sym

Sym scaled(double c, const Sym& x, Shape out) { return sym::scale(c, x, out); }

Sym render(const Notation& n, std::initializer_list<const Sym*> args, Shape out) {
    const std::string_view p = n.unicode;
    const Sym* const* a = args.begin();
    const std::size_t k = args.size();
    using namespace sym;
    if (k == 1) {
        const Sym& x = *a[0];
        if (p == "−{0}") return neg(x, out);
        if (p == "{0}ᵀ") return transpose(x, out);
        if (p == "Σ({0})") return reduce(x, {}, out);
        if (p == "1ᵀ·{0}") return reduce(x, {0}, out);
        if (p == "{0}·1") return reduce(x, {1}, out);
        if (p == "{0}") return reshaped(x, out);
    } else if (k == 2) {
        const Sym &x = *a[0], &y = *a[1];
        if (p == "{0} + {1}") return add(x, y, out);
        if (p == "{0} − {1}") return sub(x, y, out);
        if (p == "{0} ⊙ {1}") return hadamard(x, y, out);
        if (p == "{0} ⊘ {1}") return divide(x, y, out);
        if (p == "{0} · {1}") return matmul(x, y, out);
        if (p == "{0}ᵀ · {1}") return matmul(transpose(x, {x.cols(), x.rows()}), y, out);
        if (p == "{0} · {1}ᵀ") return matmul(x, transpose(y, {y.cols(), y.rows()}), out);
        if (p == "{0}ᵀ · {1}ᵀ")
            return matmul(transpose(x, {x.cols(), x.rows()}), transpose(y, {y.cols(), y.rows()}), out);
    } else if (k == 3 && p == "{0} · {1} + {2}") {
        return add(matmul(*a[0], *a[1], {a[0]->rows(), a[1]->cols()}), *a[2], out);
    }
    return apply_notation(n, args, out);
}

Sym render_call(std::string_view name, std::initializer_list<const Sym*> args, Shape out) {
    return sym::call(name, args, out);
}

}  // namespace tapegrad
