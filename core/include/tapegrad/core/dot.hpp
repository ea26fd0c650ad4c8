// to_dot: the recorded graph as Graphviz DOT text.
//
//   std::ofstream("net.dot") << tg::to_dot(tape, {.values = true, .adjoints = true});
//   $ dot -Tsvg net.dot -o net.svg
//
// One DOT node per tape node, named n<id>: leaves are ellipses (variables and parameters
// shaded, constants plain), op nodes are boxes labelled with the op's name. Every label gives
// the node's display name (the user's, or a generated v3/c3/t3) and shape, and on request the
// Frobenius norms ‖value‖ and ‖adjoint‖ (after backward()). An edge runs from each input to its
// consumer; when an op has several inputs the edge says which input it feeds.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include <tapegrad/core/tape.hpp>

namespace tapegrad {

struct DotOptions {
    bool values = false;    // add ‖value‖_F to every node
    bool adjoints = false;  // add ‖adjoint‖_F to nodes the last backward() reached
    std::string_view title{};  // graph label, if any
    std::string_view rankdir = "LR";  // "LR": inputs left, loss right; "TB", "BT", "RL"
};

namespace detail {

// Escapes `s` for a double-quoted DOT string: backslash and quote get a backslash, a line
// break becomes DOT's centred-line escape \n, other control characters are dropped.
inline std::string dot_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 8);
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (static_cast<unsigned char>(c) < 0x20) {
            continue;
        } else {
            out += c;
        }
    }
    return out;
}

template <class T>
double frobenius(const Tensor<T>& t) {
    double s = 0;
    for (std::size_t i = 0; i < t.size(); ++i) s += static_cast<double>(t[i]) * static_cast<double>(t[i]);
    return std::sqrt(s);
}

}  // namespace detail

template <class T>
std::string to_dot(const Tape<T>& tape, DotOptions opt = {}) {
    std::string out = "digraph tapegrad {\n";
    out += fmt::format("  rankdir={};\n", opt.rankdir.empty() ? std::string_view("LR") : opt.rankdir);
    out += "  node [fontname=\"Helvetica\", fontsize=11];\n";
    out += "  edge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n";
    if (!opt.title.empty())
        out += fmt::format("  label=\"{}\";\n  labelloc=t;\n  fontname=\"Helvetica\";\n", detail::dot_escape(opt.title));
    const std::uint32_t n = static_cast<std::uint32_t>(tape.size());
    for (std::uint32_t i = 0; i < n; ++i) {
        const Node<T>& node = tape.node(i);
        std::string label = tape.display_name(i);
        std::string_view kind;
        std::string_view style;
        if (node.op) {
            kind = node.op->name();
            style = node.name().empty() ? "shape=box" : "shape=box, style=bold";
        } else if (node.kind == NodeKind::Constant) {
            kind = "constant";
            style = "shape=ellipse";
        } else if (node.kind == NodeKind::External) {
            kind = "parameter";
            style = "shape=ellipse, style=filled, fillcolor=\"#cfe2f3\"";
        } else {
            kind = "variable";
            style = "shape=ellipse, style=filled, fillcolor=\"#cfe2f3\"";
        }
        const std::string attrs = node.op ? node.op->attributes() : std::string();
        if (attrs.empty())
            label += fmt::format("\n{} {}", kind, node.value.shape());
        else
            label += fmt::format("\n{} {} {}", kind, attrs, node.value.shape());
        if (opt.values) label += fmt::format("\n‖value‖ = {:.4g}", detail::frobenius(node.value));
        if (opt.adjoints && !node.adj.empty())
            label += fmt::format("\n‖adjoint‖ = {:.4g}", detail::frobenius(node.adj));
        if (i == tape.last_loss()) style = "shape=doubleoctagon, style=filled, fillcolor=\"#f4cccc\"";
        out += fmt::format("  n{} [label=\"{}\", {}];\n", i, detail::dot_escape(label), style);
    }
    for (std::uint32_t i = 0; i < n; ++i) {
        const Node<T>& node = tape.node(i);
        for (std::size_t k = 0; k < node.in.size(); ++k) {
            if (node.in.size() > 1)
                out += fmt::format("  n{} -> n{} [label=\"{}\"];\n", node.in[k], i, k);
            else
                out += fmt::format("  n{} -> n{};\n", node.in[k], i);
        }
    }
    out += "}\n";
    return out;
}

}  // namespace tapegrad
