// explain(): the symbolic reading of the sweep, rendered as formulas.
// Included at the end of tape.hpp.
#pragma once

#include <tapegrad/core/tape.hpp>

namespace tapegrad {

// ---- explain -----------------------------------------------------------------------------------

template <class T>
std::string Tape<T>::explain(const Var<T>& x, ExplainOptions opt) const {
    if (last_loss_ == kNoNode) fail("explain: call backward(loss) first, or pass the loss");
    Var<T> loss(const_cast<Tape*>(this), last_loss_, generation_);
    return explain(x, loss, opt);
}

template <class T>
std::string Tape<T>::explain(const Var<T>& x, const Var<T>& loss, ExplainOptions opt) const {
    check(x, "explain");
    check(loss, "explain");
    const std::uint32_t root = loss.id_;
    if (x.id_ > root) fail("explain: node {} was recorded after the loss (node {})", x.id_, root);
    const bool a = opt.ascii;
    const std::string lname = display_name(root);
    auto d = [&](std::uint32_t id) {
        for (const auto& [node, alias] : opt.adjoint_names)
            if (node == nodes_[id].name()) return Sym::atom(std::string(alias), nodes_[id].value.shape());
        return a ? Sym::atom(fmt::format("d{}/d{}", lname, display_name(id)), nodes_[id].value.shape())
                 : Sym::atom(fmt::format("∂{}/∂{}", lname, display_name(id)), nodes_[id].value.shape());
    };

    SymSweep s;
    s.value.resize(root + 1);
    s.adj.resize(root + 1);
    s.on_path.assign(root + 1, false);
    for (std::uint32_t i = 0; i <= root; ++i) {
        const Node<T>& n = nodes_[i];
        if (n.op == nullptr || !n.name().empty())
            s.value[i] = Sym::atom(display_name(i), n.value.shape());
        else
            s.value[i] = n.op->forward_symbolic(*this, i, s);
    }
    // Nodes that depend on x: only their equations belong to the answer.
    std::vector<bool>& reach = s.on_path;
    reach[x.id_] = true;
    for (std::uint32_t i = x.id_ + 1; i <= root; ++i)
        for (std::uint32_t j : nodes_[i].in) reach[i] = reach[i] || reach[j];

    struct Line {
        std::uint32_t id;
        Sym rhs;
    };
    std::vector<Line> lines;
    s.adj[root] = Sym::one(nodes_[root].value.shape());
    for (std::uint32_t i = root + 1; i-- > 0;) {
        const Node<T>& n = nodes_[i];
        if (!s.adj[i] || !n.requires_grad || !reach[i]) continue;
        // A named node's adjoint is referred to by name further down, and gets its own line.
        const bool stop = !n.name().empty() && i != root &&
                          (opt.via.empty() || std::find(opt.via.begin(), opt.via.end(), n.name()) != opt.via.end());
        if (stop || i == x.id_) {
            lines.push_back({i, *s.adj[i]});
            s.adj[i] = d(i);
        }
        if (n.op) n.op->vjp_symbolic(*this, i, s);
    }
    if (lines.empty() || lines.back().id != x.id_)
        return fmt::format("{} = 0", a ? d(x.id_).ascii : d(x.id_).text);
    std::string out;
    for (const Line& l : lines) {
        out += fmt::format("{} = {}", d(l.id).str(a), l.rhs.str(a));
        if (opt.shapes) out += fmt::format("    {}", nodes_[l.id].value.shape());
        out += '\n';
    }
    out.pop_back();
    return out;
}

}  // namespace tapegrad
