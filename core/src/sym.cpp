#include <tapegrad/core/sym.hpp>

#include <vector>

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

}  // namespace

Sym render(const Notation& n, std::initializer_list<const Sym*> args, Shape out) {
    std::vector<std::string> uni, asc;
    std::string op = infix_of(n.unicode);
    std::size_t k = 0;
    for (const Sym* a : args) {
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
