// Shape mismatches and bad labels: every one raises tapegrad::Error naming the op and the
// offending shapes (or the offending label), in the numeric reading and on a tape alike.
#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
using tg::Shape;
using tg::Tensor;

namespace {

// The message of the tapegrad::Error thrown by f, or "" if it throws none.
std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const tg::Error& e) {
        return e.what();
    }
    return "";
}

// The message's first line (errors raised while recording on a tape may add where it happened).
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

Tensor<double> z(std::size_t r, std::size_t c) { return Tensor<double>(r, c); }

// Checks that `msg` starts with "op:" and mentions both shapes.
void check_names(const std::string& msg, const std::string& op, Shape a, Shape b) {
    CAPTURE(msg);
    CHECK(msg.rfind(op + ":", 0) == 0);
    CHECK(contains(msg, fmt::format("{}", a)));
    CHECK(contains(msg, fmt::format("{}", b)));
}

}  // namespace

TEST_CASE("matmul with differing inner dimensions names both shapes exactly") {
    CHECK(error_of([] { tg::matmul(z(2, 3), z(4, 5)); }) == "matmul: inner dimensions differ: (2×3)·(4×5)");
    CHECK(error_of([] { tg::matmul(z(2, 3), z(4, 5), true, false); }) ==
          "matmul: inner dimensions differ: (2×3)ᵀ·(4×5)");
    CHECK(error_of([] { tg::matmul(z(2, 3), z(4, 5), false, true); }) ==
          "matmul: inner dimensions differ: (2×3)·(4×5)ᵀ");
    CHECK(error_of([] { tg::matmul(z(2, 3), z(4, 5), true, true); }) ==
          "matmul: inner dimensions differ: (2×3)ᵀ·(4×5)ᵀ");

    tg::Tape<double> tape;
    auto A = tape.variable(z(128, 784), "A");
    auto B = tape.variable(z(785, 256), "B");
    CHECK(first_line(error_of([&] { tg::matmul(A, B); })) ==
          "matmul: inner dimensions differ: (128×784)·(785×256)");
    CHECK(tape.size() == 2);  // nothing recorded by the failed call
}

TEST_CASE("elementwise ops on shapes that do not broadcast name the op and both shapes") {
    const Shape a{2, 3}, b{3, 2};
    check_names(error_of([&] { tg::add(z(2, 3), z(3, 2)); }), "add", a, b);
    check_names(error_of([&] { tg::sub(z(2, 3), z(3, 2)); }), "sub", a, b);
    check_names(error_of([&] { tg::mul(z(2, 3), z(3, 2)); }), "mul", a, b);
    check_names(error_of([&] { tg::div(z(2, 3), z(3, 2)); }), "div", a, b);
    // A row of the wrong length and a column of the wrong height do not stretch either.
    check_names(error_of([&] { tg::add(z(2, 3), z(1, 2)); }), "add", a, {1, 2});
    check_names(error_of([&] { tg::mul(z(3, 1), z(2, 3)); }), "mul", {3, 1}, a);

    tg::Tape<double> tape;
    auto X = tape.variable(z(2, 3), "X");
    auto Y = tape.constant(z(3, 2), "Y");
    check_names(error_of([&] { (void)(X + Y); }), "add", a, b);
    check_names(error_of([&] { (void)(X * Y); }), "mul", a, b);
}

TEST_CASE("reductions and broadcasts to incompatible shapes name the op and both shapes") {
    check_names(error_of([] { tg::apply(tg::SumTo{{2, 2}}, z(3, 4)); }), "sum_to", {3, 4}, {2, 2});
    check_names(error_of([] { tg::apply(tg::BroadcastTo{{3, 4}}, z(2, 4)); }), "broadcast", {2, 4}, {3, 4});
}

TEST_CASE("concatenations of mismatched shapes name the op and both shapes") {
    check_names(error_of([] { tg::concat_cols(z(2, 3), z(3, 3)); }), "concat_cols", {2, 3}, {3, 3});
    check_names(error_of([] { tg::concat_rows(z(2, 3), z(2, 4)); }), "concat_rows", {2, 3}, {2, 4});
}

TEST_CASE("slices outside the input and pads that do not fit name the op, the range and the shape") {
    std::string m = error_of([] { tg::slice_rows(z(4, 3), 2, 5); });
    CAPTURE(m);
    CHECK(m.rfind("slice:", 0) == 0);
    CHECK(contains(m, "[2:5, 0:3]"));
    CHECK(contains(m, "(4×3)"));
    m = error_of([] { tg::slice_cols(z(4, 3), 2, 2); });  // empty
    CHECK(contains(m, "slice:"));
    CHECK(contains(m, "[0:4, 2:2]"));
    check_names(error_of([] { tg::pad(z(2, 2), Shape{3, 3}, 2, 0); }), "pad", {2, 2}, {3, 3});
}

TEST_CASE("losses on mismatched prediction and target shapes name the loss and both shapes") {
    check_names(error_of([] { tg::mse(z(2, 3), z(3, 2)); }), "mse", {2, 3}, {3, 2});
    check_names(error_of([] { tg::sse_half(z(2, 3), z(2, 1)); }), "sse_half", {2, 3}, {2, 1});
    check_names(error_of([] { tg::binary_cross_entropy_with_logits(z(2, 3), z(1, 3)); }),
                "binary_cross_entropy_with_logits", {2, 3}, {1, 3});
    check_names(error_of([] { tg::softmax_cross_entropy_probs(z(2, 3), z(2, 4)); }),
                "softmax_cross_entropy_probs", {2, 3}, {2, 4});
    check_names(error_of([] { tg::softmax_cross_entropy(z(4, 3), z(3, 1)); }), "softmax_cross_entropy",
                {4, 3}, {3, 1});
    check_names(error_of([] { tg::softmax_cross_entropy(z(4, 3), z(4, 2)); }), "softmax_cross_entropy",
                {4, 3}, {4, 2});
}

TEST_CASE("a class label out of range, negative or not an integer is a clear error") {
    Tensor<double> logits(3, 4);
    CHECK(error_of([&] {
              tg::softmax_cross_entropy(logits, Tensor<double>(3, 1, {0, 4, 1}));
          }) == "softmax_cross_entropy: label 4 at row 1 is not a class index in [0, 4)");
    CHECK(error_of([&] {
              tg::softmax_cross_entropy(logits, Tensor<double>(3, 1, {0, 1, -1}));
          }) == "softmax_cross_entropy: label -1 at row 2 is not a class index in [0, 4)");
    CHECK(error_of([&] {
              tg::softmax_cross_entropy(logits, Tensor<double>(3, 1, {1.5, 1, 1}));
          }) == "softmax_cross_entropy: label 1.5 at row 0 is not a class index in [0, 4)");
    CHECK(contains(error_of([&] {
                       tg::softmax_cross_entropy(logits, Tensor<double>(3, 1, {0, NAN, 1}));
                   }),
                   "label nan at row 1"));
    CHECK(error_of([&] {
              tg::one_hot(Tensor<double>(2, 1, {0, 7}), 3);
          }) == "one_hot: label 7 at row 1 is not a class index in [0, 3)");
    check_names(error_of([&] { tg::one_hot(z(2, 2), 3); }), "one_hot", {2, 2}, {2, 2});

    tg::Tape<float> tape;
    auto Z = tape.variable(Tensor<float>(2, 3), "Z");
    auto y = tape.constant(Tensor<float>(2, 1, {2, 3}), "y");
    CHECK(first_line(error_of([&] { tg::softmax_cross_entropy(Z, y); })) ==
          "softmax_cross_entropy: label 3 at row 1 is not a class index in [0, 3)");
}

TEST_CASE("labels that require a gradient are rejected: class indices are not differentiable") {
    tg::Tape<double> tape;
    auto Z = tape.variable(z(2, 3), "Z");
    auto y = tape.variable(Tensor<double>(2, 1, {0, 1}), "y");
    std::string m = error_of([&] { tg::softmax_cross_entropy(Z, y); });
    CAPTURE(m);
    CHECK(m.rfind("softmax_cross_entropy:", 0) == 0);
    CHECK(contains(m, "not differentiable"));
}
