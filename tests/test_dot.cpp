// to_dot: the recorded graph as Graphviz DOT — nodes, edges, labels, options and escaping.
#include <doctest/doctest.h>

#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

#include <tapegrad/core/dot.hpp>
#include <tapegrad/ops/activations.hpp>
#include <tapegrad/ops/reductions.hpp>
#include <tapegrad/tapegrad.hpp>

#include "test_errors.hpp"

namespace tg = tapegrad;

namespace {

std::vector<std::string> lines_of(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

std::size_t count(const std::string& s, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
    return n;
}

// Unescaped double quotes on a line come in pairs.
bool quotes_balanced(const std::string& line) {
    std::size_t q = 0;
    for (std::size_t i = 0; i < line.size(); ++i) {
        if (line[i] == '\\') {
            ++i;
            continue;
        }
        if (line[i] == '"') ++q;
    }
    return q % 2 == 0;
}

}  // namespace

TEST_CASE("to_dot writes one node per tape node and one edge per input") {
    tg::Tape<double> tape;
    auto X = tape.constant(tg::Tensor<double>(3, 2), "X");  // n0
    auto W = tape.variable(tg::Tensor<double>(2, 4), "W");  // n1
    auto A = tg::matmul(X, W).named("A");                   // n2
    auto S = tg::sigmoid(A);                                // n3
    auto E = tg::sum(S).named("E");                         // n4
    tape.backward(E);

    const std::string dot = tg::to_dot(tape);
    const std::vector<std::string> lines = lines_of(dot);
    REQUIRE(lines.size() >= 2);
    CHECK(lines.front() == "digraph tapegrad {");
    CHECK(lines.back() == "}");

    CHECK(contains(dot, "  n0 [label=\"X\\nconstant (3×2)\", shape=ellipse];"));
    CHECK(contains(dot, "  n1 [label=\"W\\nvariable (2×4)\""));
    CHECK(contains(dot, "  n2 [label=\"A\\nmatmul (3×4)\", shape=box, style=bold];"));
    CHECK(contains(dot, "  n3 [label=\"t3\\nsigmoid (3×4)\", shape=box];"));  // generated name
    CHECK(contains(dot, "  n4 [label=\"E\\nsum_to (1×1)\", shape=doubleoctagon"));  // the loss

    // Edges: matmul's two inputs are labelled with their position; unary edges are not.
    CHECK(contains(dot, "  n0 -> n2 [label=\"0\"];"));
    CHECK(contains(dot, "  n1 -> n2 [label=\"1\"];"));
    CHECK(contains(dot, "  n2 -> n3;"));
    CHECK(contains(dot, "  n3 -> n4;"));
    CHECK(count(dot, " -> ") == 4);
    CHECK(count(dot, "[label=\"") == 5 + 2);  // five nodes, two labelled edges

    for (const std::string& l : lines) {
        CAPTURE(l);
        CHECK(quotes_balanced(l));
    }
    // Without options, no norms.
    CHECK_FALSE(contains(dot, "‖value‖"));
    CHECK_FALSE(contains(dot, "‖adjoint‖"));
}

TEST_CASE("to_dot adds value and adjoint norms on request") {
    tg::Tape<double> tape;
    auto x = tape.variable(tg::Tensor<double>(1, 2, {3.0, 4.0}), "x");
    auto E = tg::sum(x).named("E");
    tape.backward(E);

    const std::string values = tg::to_dot(tape, {.values = true});
    CHECK(contains(values, "x\\nvariable (1×2)\\n‖value‖ = 5\""));
    CHECK_FALSE(contains(values, "‖adjoint‖"));

    // ∂E/∂x = (1, 1): ‖·‖ = √2.
    const std::string both = tg::to_dot(tape, {.values = true, .adjoints = true});
    CHECK(contains(both, "‖value‖ = 5\\n‖adjoint‖ = 1.414\""));
    CHECK(contains(both, "E\\nsum_to (1×1)\\n‖value‖ = 7\\n‖adjoint‖ = 1\""));
}

TEST_CASE("to_dot escapes quotes, backslashes and line breaks in names and titles") {
    tg::Tape<double> tape;
    auto x = tape.variable(tg::Tensor<double>(1, 1), "say \"hi\"\\now\nnext");
    tape.backward(tg::sum(x));
    const std::string dot = tg::to_dot(tape, {.title = "a \"title\""});
    CHECK(contains(dot, "label=\"say \\\"hi\\\"\\\\now\\nnext\\nvariable (1×1)\""));
    CHECK(contains(dot, "  label=\"a \\\"title\\\"\";"));
    for (const std::string& l : lines_of(dot)) {
        CAPTURE(l);
        CHECK(quotes_balanced(l));
    }
}

TEST_CASE("to_dot of an empty tape is an empty digraph") {
    tg::Tape<float> tape;
    const std::string dot = tg::to_dot(tape, {.rankdir = "TB"});
    CHECK(dot == "digraph tapegrad {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=11];\n"
                 "  edge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n}\n");
}
