// Anomaly mode (Tape::set_anomaly_mode) and located errors (core/site.hpp): a NaN or ±Inf is
// reported where it is born — the op, the shapes, the element and the user's line — and an
// error raised while recording names the user's line.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <source_location>
#include <string>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
using tg::Shape;
using tg::Tensor;

namespace {

// A public op function written as the library's should be: the caller's line is captured by
// the defaulted source_location and opened as the call site.
template <tg::Value V>
V located_log(const V& x, tg::SourceLocation loc = tg::SourceLocation::current()) {
    tg::CallSite at(loc);
    return tg::log(x);
}
template <tg::Value V>
V located_sqrt(const V& x, tg::SourceLocation loc = tg::SourceLocation::current()) {
    tg::CallSite at(loc);
    return tg::sqrt(x);
}
template <tg::Value V>
V located_matmul(const V& a, const V& b, tg::SourceLocation loc = tg::SourceLocation::current()) {
    tg::CallSite at(loc);
    return tg::matmul(a, b);
}
// Composed of two located calls: the outer (user's) line must win.
template <tg::Value V>
V located_log_of_matmul(const V& a, const V& b, tg::SourceLocation loc = tg::SourceLocation::current()) {
    tg::CallSite at(loc);
    return located_log(located_matmul(a, b));
}

std::string message_of(auto&& f) {
    try {
        f();
    } catch (const tg::Error& e) {
        return e.what();
    }
    return "<no error>";
}

std::string line_tag(int line) { return fmt::format("test_anomaly.cpp:{}", line); }

const double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

TEST_CASE("anomaly mode names the forward op that produced a NaN, its shapes and the user's line") {
    tg::Tape<double> tape;
    tape.set_anomaly_mode(true);
    auto x = tape.variable(Tensor<double>(2, 2, {1, -1, 2, 3}), "x");
    int line = 0;
    const std::string m = message_of([&] {
        line = __LINE__; (void)located_log(x);
    });
    CHECK(m.find("anomaly: forward of 'log' produced NaN at (0, 1)") != std::string::npos);
    CHECK(m.find("(2×2) output (inputs (2×2))") != std::string::npos);
    CHECK(m.find(line_tag(line)) != std::string::npos);
    INFO(m);
}

TEST_CASE("anomaly mode reports an operator expression after the last located line") {
    tg::Tape<double> tape;
    tape.set_anomaly_mode(true);
    const int line = __LINE__; auto x = tape.variable(Tensor<double>(1, 2, {1, 0}), "x");
    const std::string m = message_of([&] { (void)(tape.constant(Tensor<double>(1, 2, {1, 1})) / x); });
    INFO(m);
    CHECK(m.find("forward of 'div' produced +Inf at (0, 1)") != std::string::npos);
    // The constant leaf above was the last located call, on the lambda's line.
    CHECK(m.find(fmt::format("test_anomaly.cpp:{}", line + 1)) != std::string::npos);
}

TEST_CASE("anomaly mode names the op whose VJP produced a non-finite adjoint") {
    tg::Tape<double> tape;
    tape.set_anomaly_mode(true);
    auto x = tape.variable(Tensor<double>(2, 3, {1, 4, 0, 9, 16, 25}), "x");
    const int line = __LINE__; auto y = tg::log(located_sqrt(x) + 1.0);  // √0 = 0 fine; d√x/dx at 0 = +Inf
    auto loss = tg::sum(y);
    const std::string m = message_of([&] { tape.backward(loss); });
    INFO(m);
    CHECK(m.find("anomaly: the VJP of 'sqrt' produced +Inf at (0, 2) in the adjoint of its input 0") !=
          std::string::npos);
    CHECK(m.find("the input: variable x (2×3)") != std::string::npos);
    CHECK(m.find(line_tag(line)) != std::string::npos);  // where the sqrt node was recorded
}

TEST_CASE("anomaly mode checks leaves and the backward seed") {
    tg::Tape<double> tape;
    tape.set_anomaly_mode(true);
    const int line = __LINE__; const std::string m = message_of([&] { tape.constant(Tensor<double>(1, 2, {0, kNaN}), "c"); });
    INFO(m);
    CHECK(m.find("anomaly: constant c (1×2)") != std::string::npos);
    CHECK(m.find("holds NaN at (0, 1)") != std::string::npos);
    CHECK(m.find(line_tag(line)) != std::string::npos);

    auto x = tape.variable(Tensor<double>(1, 2, {1, 2}), "x");
    auto y = x * x;
    const std::string s = message_of([&] { tape.backward(y, Tensor<double>(1, 2, {1, kNaN})); });
    CHECK(s.find("the seed of backward() holds NaN at (0, 1)") != std::string::npos);
}

TEST_CASE("anomaly mode names the VJP being recorded when create_graph meets a non-finite value") {
    tg::Tape<double> tape;
    tape.set_anomaly_mode(true);
    auto x = tape.variable(Tensor<double>(1, 2, {0, 1}), "x");
    auto loss = tg::sum(tg::sqrt(x));
    const std::string m = message_of([&] { tape.backward(loss, {.create_graph = true}); });
    INFO(m);
    CHECK(m.find("anomaly: forward of") != std::string::npos);
    CHECK(m.find("while recording the VJP of 'sqrt'") != std::string::npos);
}

TEST_CASE("without anomaly mode non-finite values flow through silently") {
    tg::Tape<double> tape;
    auto x = tape.variable(Tensor<double>(1, 2, {0, 1}), "x");
    auto loss = tg::sum(tg::sqrt(x));
    REQUIRE_NOTHROW(tape.backward(loss));
    CHECK(std::isinf(tape.grad(x)[0]));
    CHECK(tape.grad(x)[1] == doctest::Approx(0.5));
}

TEST_CASE("anomaly mode changes no value or gradient of a finite graph") {
    auto run = [](bool anomaly) {
        tg::Tape<double> tape;
        tape.set_anomaly_mode(anomaly);
        auto a = tape.variable(Tensor<double>(2, 3, {0.1, -0.2, 0.3, 0.4, -0.5, 0.6}), "a");
        auto b = tape.variable(Tensor<double>(3, 2, {1, 2, -3, 4, 5, -6}), "b");
        auto z = tg::sigmoid(tg::matmul(a, b)) * tg::exp(tg::sum_rows(tg::matmul(a, b)));
        auto loss = tg::mean(tg::square(z - 0.5));
        tape.backward(loss);
        return std::array<Tensor<double>, 3>{loss.value().clone(nullptr), tape.grad(a).clone(nullptr),
                                             tape.grad(b).clone(nullptr)};
    };
    auto on = run(true);
    auto off = run(false);
    for (std::size_t k = 0; k < 3; ++k)
        for (std::size_t i = 0; i < on[k].size(); ++i) CHECK(on[k][i] == off[k][i]);
}

TEST_CASE("anomaly mode keeps where each node was recorded; without it nothing is kept") {
    tg::Tape<double> tape;
    auto a = tape.variable(Tensor<double>(1, 1, {2}));
    CHECK(tape.site(a.id()).kind == tg::Site::Kind::none);
    tape.set_anomaly_mode(true);
    const int line = __LINE__; auto b = located_log(a);
    CHECK(tape.site(b.id()).kind == tg::Site::Kind::exact);
    CHECK(tape.site(b.id()).loc.line() == static_cast<unsigned>(line));
    tape.reset();
    CHECK(tape.site(0).kind == tg::Site::Kind::none);
}

TEST_CASE("a shape error raised in a located call names the op, the shapes and the user's line") {
    tg::Tape<double> tape;
    auto a = tape.variable(Tensor<double>(2, 3), "a");
    auto b = tape.variable(Tensor<double>(4, 5), "b");
    int line = 0;
    const std::string m = message_of([&] {
        line = __LINE__; (void)located_log_of_matmul(a, b);
    });
    INFO(m);
    CHECK(m.find("matmul: inner dimensions differ: (2×3)·(4×5)") == 0);
    CHECK(m.find(line_tag(line)) != std::string::npos);
}

TEST_CASE("misusing a Var in a located call names the user's line") {
    tg::Tape<double> t1, t2;
    auto a = t1.variable(Tensor<double>(2, 2), "a");
    auto b = t2.variable(Tensor<double>(2, 2), "b");
    int line = 0;
    const std::string m = message_of([&] {
        line = __LINE__; (void)located_matmul(a, b);
    });
    CHECK(m.find("the Var belongs to another tape") != std::string::npos);
    CHECK(m.find(line_tag(line)) != std::string::npos);
    t1.reset();
    const std::string s = message_of([&] {
        line = __LINE__; (void)located_matmul(a, a);
    });
    CHECK(s.find("created before its tape was reset") != std::string::npos);
    CHECK(s.find(line_tag(line)) != std::string::npos);
}

TEST_CASE("an error in an operator expression names the op and the shapes, and no line") {
    tg::Tape<double> tape;
    auto a = tape.variable(Tensor<double>(2, 3), "a");
    auto b = tape.variable(Tensor<double>(3, 2), "b");
    const std::string m = message_of([&] { (void)(a + b); });
    CHECK(m == "add: shapes do not broadcast: (2×3) and (3×2)");
}

TEST_CASE("anomaly mode works for float tapes") {
    tg::Tape<float> tape;
    tape.set_anomaly_mode(true);
    auto x = tape.variable(Tensor<float>(1, 3, {1.0f, 100.0f, 2.0f}), "x");
    const std::string m = message_of([&] { (void)tg::exp(x * x); });  // e^10000 overflows
    CHECK(m.find("forward of 'exp' produced +Inf at (0, 1)") != std::string::npos);
}
