// The gradient-check sweep: every row of the op table (op_cases.hpp), ten random shapes and
// values each, in double, against central finite differences; and a coverage check that no op
// declared in the op headers is missing from the table.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "op_cases.hpp"

namespace tg = tapegrad;

namespace {

constexpr int kTrials = 10;

// Op names declared (`static constexpr std::string_view name = "…";`, or `= Flag ? "…" : "…";`
// for an op whose template flag chooses its name) in a header.
std::set<std::string> declared_ops(const std::filesystem::path& file) {
    std::ifstream in(file);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    static const std::regex decl(
        R"re(static\s+constexpr\s+std::string_view\s+name\s*=\s*(?:\w+\s*\?\s*"([^"]+)"\s*:\s*)?"([^"]+)")re");
    std::set<std::string> names;
    for (std::sregex_iterator it(text.begin(), text.end(), decl), end; it != end; ++it) {
        if ((*it)[1].matched) names.insert((*it)[1]);
        names.insert((*it)[2]);
    }
    return names;
}

}  // namespace

TEST_CASE("every op's VJP agrees with central finite differences on random shapes and values") {
    std::size_t checked = 0;
    for (const auto& c : tg::test::op_cases()) {
        std::mt19937_64 rng(std::hash<std::string_view>{}(c.label));
        for (int trial = 0; trial < kTrials; ++trial) {
            auto inputs = c.inputs(rng);
            std::string shapes;
            for (const auto& x : inputs) shapes += fmt::format("{} ", x.shape());
            CAPTURE(c.label);
            CAPTURE(trial);
            CAPTURE(shapes);
            tg::GradcheckReport r = tg::gradcheck(c.build, inputs);
            INFO(fmt::format("{}", r));
            CHECK(r.passed);
            CHECK(r.max_rel_err() <= 1e-6);
            ++checked;
        }
    }
    CHECK(checked == kTrials * tg::test::op_cases().size());
}

TEST_CASE("every op declared in the op headers has a row in the gradient-check table") {
    const std::filesystem::path root = TAPEGRAD_SOURCE_DIR;
    std::set<std::string> declared = declared_ops(root / "core/include/tapegrad/core/engine_ops.hpp");
    for (const auto& e : std::filesystem::directory_iterator(root / "ops/include/tapegrad/ops"))
        if (e.path().extension() == ".hpp") declared.merge(declared_ops(e.path()));
    REQUIRE(declared.size() >= 30);

    std::set<std::string> covered;
    for (const auto& c : tg::test::op_cases()) covered.insert(std::string(c.op));
    for (auto ex : tg::test::ops_without_cases()) covered.insert(std::string(ex));
    for (const auto& name : declared) {
        CAPTURE(name);
        CHECK(covered.count(name) == 1);
    }
}

TEST_CASE("every row that names an op records that op on the tape") {
    const std::filesystem::path root = TAPEGRAD_SOURCE_DIR;
    std::set<std::string> declared = declared_ops(root / "core/include/tapegrad/core/engine_ops.hpp");
    for (const auto& e : std::filesystem::directory_iterator(root / "ops/include/tapegrad/ops"))
        if (e.path().extension() == ".hpp") declared.merge(declared_ops(e.path()));
    std::mt19937_64 rng(3);
    for (const auto& c : tg::test::op_cases()) {
        CAPTURE(c.label);
        tg::Tape<double> tape;
        std::vector<tg::Var<double>> x;
        for (const auto& t : c.inputs(rng)) x.push_back(tape.variable(t));
        c.build(tape, x);
        std::set<std::string> recorded;
        for (std::uint32_t i = 0; i < tape.size(); ++i)
            if (tape.node(i).op) recorded.insert(std::string(tape.node(i).op->name()));
        // Rows of compositions (mse, sse_half, …) name a function, not an op.
        if (declared.count(std::string(c.op))) CHECK(recorded.count(std::string(c.op)) == 1);
    }
}

TEST_CASE("the op table's labels are unique") {
    std::set<std::string_view> seen;
    for (const auto& c : tg::test::op_cases()) {
        CAPTURE(c.label);
        CHECK(seen.insert(c.label).second);
    }
}

TEST_CASE("the symbolic reading of activation VJPs names the derivative helpers") {
    tg::Tape<double> tape;
    auto Z0 = tape.constant(tg::Tensor<double>(4, 3), "Z0");
    auto W0 = tape.variable(tg::Tensor<double>(3, 5), "W0");
    auto W1 = tape.variable(tg::Tensor<double>(5, 2), "W1");
    auto A0 = tg::matmul(Z0, W0).named("A0");
    auto Z1 = tg::sigmoid(A0).named("Z1");
    auto A1 = tg::matmul(Z1, W1).named("A1");
    auto E = tg::sum(tg::relu(A1) + tg::tanh(A1)).named("E");
    tape.backward(E);
    const std::string u = tape.explain(W0);
    const std::string a = tape.explain(W0, {.ascii = true});
    CAPTURE(u);
    CAPTURE(a);
    CHECK(u.find("∂E/∂A1 = relu′(A1) + tanh′(A1)") != std::string::npos);
    CHECK(u.find("∂E/∂Z1 ⊙ σ′(A0)") != std::string::npos);
    CHECK(u.find("∂E/∂W0 = Z0ᵀ · ∂E/∂A0") != std::string::npos);
    CHECK(a.find("dE/dZ1 * sigmoid'(A0)") != std::string::npos);
    CHECK(a.find("relu'(A1) + tanh'(A1)") != std::string::npos);
}

TEST_CASE("the fused softmax cross-entropy explains itself as softmax minus one-hot over m") {
    tg::Tape<double> tape;
    auto Z = tape.variable(tg::Tensor<double>(4, 3), "Z");
    auto y = tape.constant(tg::Tensor<double>(4, 1, {0, 1, 2, 0}), "y");
    auto L = tg::softmax_cross_entropy(Z, y).named("L");
    tape.backward(L);
    CHECK(tape.explain(Z) == "∂L/∂Z = 0.25·(softmax(Z) − onehot(y))");
}
