#include <tapegrad/core/sym.hpp>

#include <charconv>
#include <vector>

#include <fmt/format.h>

namespace tapegrad {

namespace {

std::string fill(std::string_view pattern, const std::vector<std::string>& parts) {
    std::string out;
    out.reserve(pattern.size() + 32);
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        char c = pattern[i];
        if (c == '{' && i + 2 < pattern.size() && pattern[i + 2] == '}' && pattern[i + 1] >= '0' &&
            pattern[i + 1] <= '9') {
            std::size_t k = static_cast<std::size_t>(pattern[i + 1] - '0');
            if (k < parts.size()) out += parts[k];
            i += 2;
        } else {
            out += c;
        }
    }
    return out;
}

// The operator between {0} and {1} in a pattern, without transposes, spaces or the ones-vector
// of 1ᵀ·X and X·1: "{0}ᵀ · {1}" → "·", "{0} ⊙ {1}" → "⊙", "1ᵀ·{0}" → "·", "σ({0})" → "".
std::string infix_of(std::string_view pattern) {
    std::size_t a = pattern.find("{0}");
    std::size_t b = pattern.find("{1}");
    std::string_view mid;
    if (a != std::string_view::npos && b != std::string_view::npos && b > a)
        mid = pattern.substr(a + 3, b - a - 3);
    else if (pattern.starts_with("1ᵀ·") || pattern.ends_with("·1"))
        mid = "·";
    std::string out;
    for (std::size_t i = 0; i < mid.size();) {
        if (mid.substr(i).starts_with("ᵀ")) {
            i += std::string_view("ᵀ").size();
        } else if (mid[i] == ' ') {
            ++i;
        } else {
            out += mid[i++];
        }
    }
    return out;
}

constexpr Notation kAdd{"{0} + {1}", "{0} + {1}", Prec::Sum};
constexpr Notation kSub{"{0} − {1}", "{0} - {1}", Prec::Sum, true};
constexpr Notation kTranspose{"{0}ᵀ", "{0}^T", Prec::Postfix};

std::string wrap(const std::string& t, bool paren) { return paren ? "(" + t + ")" : t; }

// a + b without operator+ on a literal (which trips GCC 12's -Wrestrict false positive).
std::string cat(std::string_view a, std::string_view b) {
    std::string r;
    r.reserve(a.size() + b.size());
    r.append(a).append(b);
    return r;
}

std::optional<double> parse_number(std::string_view s) {
    double v = 0;
    // Digits only: a node the user named "inf" or "nan" is a name, not a number.
    if (s.empty() || !((s[0] >= '0' && s[0] <= '9') || s[0] == '-' || s[0] == '.')) return std::nullopt;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

Sym make_number(double v, Shape s) {
    std::string a = fmt::format("{:g}", v);
    std::string u = v < 0 ? cat("−", fmt::format("{:g}", -v)) : a;
    Sym r(u, a, v < 0 ? Prec::Prefix : Prec::Atom, s);
    r.number = v;
    return r;
}

// "(…)" enclosing the whole of s → its inside.
std::optional<std::string> unwrap(std::string_view s) {
    if (s.size() < 2 || s.front() != '(' || s.back() != ')') return std::nullopt;
    int depth = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '(') ++depth;
        if (s[i] == ')' && --depth == 0 && i + 1 != s.size()) return std::nullopt;
    }
    return std::string(s.substr(1, s.size() - 2));
}

// Recognises the numbers and "c·X" products that ops build by hand in their simplify().
Sym normalise(const Sym& s) {
    if (s.number || s.base || s.kind != Sym::Kind::Expr) return s;
    if (auto v = parse_number(s.ascii)) {
        Sym r = s;
        r.number = v;
        return r;
    }
    if (s.prec != Prec::Product || !s.infix.empty()) return s;
    const std::size_t ua = s.text.find("·"), aa = s.ascii.find('*');
    if (ua == std::string::npos || aa == std::string::npos) return s;
    auto c = parse_number(std::string_view(s.ascii).substr(0, aa));
    if (!c || parse_number(std::string_view(s.text).substr(0, ua)) != c) return s;
    std::string ut = s.text.substr(ua + std::string_view("·").size()), at = s.ascii.substr(aa + 1);
    auto uu = unwrap(ut), au = unwrap(at);
    Sym base = (uu && au) ? Sym(*uu, *au, Prec::Sum, s.dims) : Sym(ut, at, Prec::Product, s.dims);
    Sym r = s;
    r.coef = *c;
    r.base = std::make_shared<const Sym>(normalise(base));
    return r;
}

Sym plain_render(const Notation& n, const std::vector<Sym>& args, Shape out) {
    std::vector<std::string> uni, asc;
    std::string op = infix_of(n.unicode);
    std::size_t k = 0;
    for (const Sym* a = args.data(); a != args.data() + args.size(); ++a) {
        bool paren = static_cast<int>(a->prec) < static_cast<int>(n.prec) ||
                     (n.strict_right && k > 0 && a->prec == n.prec) ||
                     (a->prec == n.prec && n.prec == Prec::Product && !op.empty() && !a->infix.empty() &&
                      a->infix != op);
        // Function-call style notations (prec Atom) bracket their operands themselves.
        if (n.prec == Prec::Atom) paren = false;
        uni.push_back(paren ? "(" + a->text + ")" : a->text);
        asc.push_back(paren ? "(" + a->ascii + ")" : a->ascii);
        ++k;
    }
    Sym r(fill(n.unicode, uni), fill(n.ascii.empty() ? n.unicode : n.ascii, asc), n.prec, out);
    r.infix = std::move(op);
    return r;
}

bool negative(const Sym& s) { return (s.base && s.coef < 0) || (s.number && *s.number < 0); }

}  // namespace

Sym scaled(double c, const Sym& x0, Shape out) {
    Sym x = normalise(x0);
    if (x.is_zero()) {
        x.dims = out;
        return x;
    }
    if (x.base) {
        c *= x.coef;
        Sym b = *x.base;
        x = std::move(b);
    }
    if (x.is_one()) return make_number(c, out);
    if (x.number) return make_number(c * *x.number, out);
    x.dims = out;
    if (c == 1) return x;
    Sym r;
    if (c == -1) {
        const bool p = static_cast<int>(x.prec) < static_cast<int>(Prec::Prefix);
        r = Sym(cat("−", wrap(x.text, p)), cat("-", wrap(x.ascii, p)), Prec::Prefix, out);
    } else {
        const bool p = static_cast<int>(x.prec) <= static_cast<int>(Prec::Product);
        const std::string a = fmt::format("{:g}", c);
        const std::string u = c < 0 ? cat("−", fmt::format("{:g}", -c)) : a;
        r = Sym(cat(cat(u, "·"), wrap(x.text, p)), cat(cat(a, "*"), wrap(x.ascii, p)), Prec::Product, out);
    }
    r.coef = c;
    r.base = std::make_shared<const Sym>(std::move(x));
    return r;
}

Sym render(const Notation& n, std::initializer_list<const Sym*> args, Shape out) {
    std::vector<Sym> a;
    for (const Sym* s : args) a.push_back(normalise(*s));
    const std::string_view pat = n.unicode;
    const std::string op = infix_of(pat);
    if (pat == "−{0}" && a.size() == 1) return scaled(-1, a[0], out);
    // Linear in every operand (⊙, matrix products, 1ᵀ·X, X·1, ᵀ, Σ) or in the first (⊘):
    // constant factors move to the front.
    const bool linear_all = op == "⊙" || op == "·" || pat == "{0}ᵀ" || pat == "Σ({0})";
    if (linear_all || op == "⊘") {
        double c = 1;
        for (std::size_t k = 0; k < a.size(); ++k) {
            if (!linear_all && k > 0) break;
            if (a[k].base) {
                c *= a[k].coef;
                Sym b = *a[k].base;
                a[k] = std::move(b);
            }
        }
        if (op == "⊙" && a.size() == 2) {
            if (a[0].number) return scaled(c * *a[0].number, a[1], out);
            if (a[1].number) return scaled(c * *a[1].number, a[0], out);
        }
        if (c != 1) return scaled(c, plain_render(n, a, out), out);
    }
    // X · 1 with the 1×1 unit (the seed of a scalar loss) is X (or Xᵀ where the pattern transposes X).
    if (op == "·" && a.size() == 2) {
        for (std::size_t k = 0; k < 2; ++k) {
            if (!a[k].is_one() || a[k].dims != Shape{1, 1}) continue;
            const std::size_t o = 1 - k;
            const std::string mark = o == 0 ? "{0}ᵀ" : "{1}ᵀ";
            if (pat.find(mark) != std::string_view::npos) return plain_render(kTranspose, {a[o]}, out);
            Sym r = a[o];
            r.dims = out;
            return r;
        }
    }
    if (op == "+" && a.size() == 2) {
        if (negative(a[1])) return plain_render(kSub, {a[0], scaled(-1, a[1], a[1].dims)}, out);
        if (negative(a[0])) return plain_render(kSub, {a[1], scaled(-1, a[0], a[0].dims)}, out);
    }
    if (op == "−" && a.size() == 2 && negative(a[1]))
        return plain_render(kAdd, {a[0], scaled(-1, a[1], a[1].dims)}, out);
    return plain_render(n, a, out);
}

Sym render_call(std::string_view name, std::initializer_list<const Sym*> args, Shape out) {
    std::string u(name), a(name);
    u += '(';
    a += '(';
    bool first = true;
    for (const Sym* s : args) {
        if (!first) u += ", ", a += ", ";
        u += s->text;
        a += s->ascii;
        first = false;
    }
    u += ')';
    a += ')';
    return Sym(u, a, Prec::Atom, out);
}

}  // namespace tapegrad
