// Shape mismatches and bad labels: every one raises tapegrad::Error naming the op and the
// offending shapes (or the offending label), in the numeric reading and on a tape alike.
#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <tapegrad/tapegrad.hpp>

#include "test_errors.hpp"

namespace tg = tapegrad;
using tg::Shape;
using tg::Tensor;

namespace {

// The message's first line (errors raised while recording on a tape may add where it happened).
std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

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

// ---- offsets near SIZE_MAX (e.g. the result of a size_t subtraction that went below zero) ------
// Every shape/offset check is written so that it cannot wrap around: an offset near SIZE_MAX is
// an Error naming the op, the offsets and the shapes, never a write outside the output.

namespace {
constexpr std::size_t kHuge = std::size_t(-1);
}  // namespace

TEST_CASE("a pad at an offset near SIZE_MAX is an error and leaves the previous node's value intact") {
    tg::Tape<double> tape;
    auto x = tape.variable(Tensor<double>(2, 2, {1, 2, 3, 4}), "x");
    auto x4 = tape.variable(Tensor<double>::filled(4, 4, 9.0), "x4");
    auto c = tape.constant(Tensor<double>::filled(4, 4, 7.0), "c");
    const Tensor<double> fourteens = Tensor<double>::filled(4, 4, 14.0);
    // Each pad follows a 4×4 node whose storage ends where the pad's output starts; before the
    // fix, the exact example below wrote x's first row into that node's last row.
    auto prev = c + c;
    std::string m = error_of([&] { tg::pad(x, Shape{4, 4}, kHuge, 0); });
    CAPTURE(m);
    CHECK(m.rfind("pad:", 0) == 0);
    CHECK(contains(m, "(2×2)"));
    CHECK(contains(m, "(4×4)"));
    CHECK(contains(m, fmt::format("({}, 0)", kHuge)));
    CHECK(tg::max_abs_diff(prev.value(), fourteens) == 0);
    // Offsets −1, −2, −3 (wrapped) with a 4×4 input: up to 12 elements below the output.
    for (std::size_t back = 1; back <= 3; ++back) {
        CAPTURE(back);
        auto before = c + c;
        CHECK(error_of([&] { tg::pad(x4, Shape{4, 4}, std::size_t(0) - back, 0); }).rfind("pad:", 0) == 0);
        CHECK(tg::max_abs_diff(before.value(), fourteens) == 0);
        auto left = c + c;
        CHECK(error_of([&] { tg::pad(x4, Shape{4, 4}, 0, std::size_t(0) - back); }).rfind("pad:", 0) == 0);
        CHECK(tg::max_abs_diff(left.value(), fourteens) == 0);
    }
    CHECK(error_of([&] { tg::pad(x, Shape{4, 4}, kHuge - 1, kHuge - 1); }).rfind("pad:", 0) == 0);
    CHECK(tape.size() == 10);  // 3 leaves and 7 sums: nothing recorded by the failed calls
    // The numeric reading.
    check_names(error_of([] { tg::pad(z(2, 2), Shape{4, 4}, kHuge, 0); }), "pad", {2, 2}, {4, 4});
    check_names(error_of([] { tg::pad(z(2, 2), Shape{4, 4}, 1, kHuge - 1); }), "pad", {2, 2}, {4, 4});
    // A pad that fits exactly still works.
    Tensor<double> p = tg::pad(Tensor<double>(2, 2, {1, 2, 3, 4}), Shape{4, 4}, 2, 2);
    CHECK(p(3, 3) == 4);
    CHECK(p(2, 2) == 1);
    CHECK(p(0, 0) == 0);
}

TEST_CASE("slices with bounds near SIZE_MAX are errors naming the op, the range and the shape") {
    auto is_slice_error = [](const std::string& m) {
        CAPTURE(m);
        CHECK(m.rfind("slice:", 0) == 0);
        CHECK(contains(m, "(4×3)"));
    };
    is_slice_error(error_of([] { tg::slice(z(4, 3), kHuge, 2, 0, 3); }));
    is_slice_error(error_of([] { tg::slice(z(4, 3), 0, kHuge, 0, 3); }));
    is_slice_error(error_of([] { tg::slice(z(4, 3), 0, 2, kHuge - 1, kHuge); }));
    is_slice_error(error_of([] { tg::slice(z(4, 3), 0, 2, 1, kHuge); }));
    is_slice_error(error_of([] { tg::slice_rows(z(4, 3), kHuge, 1); }));
    is_slice_error(error_of([] { tg::slice_rows(z(4, 3), 1, kHuge); }));
    is_slice_error(error_of([] { tg::slice_cols(z(4, 3), kHuge, kHuge); }));
    is_slice_error(error_of([] { tg::slice_cols(z(4, 3), 2, 2 + kHuge); }));  // wraps to 1: empty
    tg::Tape<double> tape;
    auto X = tape.variable(z(4, 3), "X");
    is_slice_error(error_of([&] { tg::slice(X, 1, 3, kHuge, 1); }));
    CHECK(tape.size() == 1);  // nothing recorded by the failed calls
}

TEST_CASE("concatenations whose summed extent would wrap around are errors naming the op and both shapes") {
    // A shape's extents are below 2³² (Shape refuses more, naming it); two of them may still sum
    // past that, which the op names rather than the shape constructor.
    CHECK(error_of([] { (void)Shape{2, kHuge - 1}; }) == "tensor: shape (2×18446744073709551614) has an extent above 2³² − 1");
    const Shape a{2, tg::kMaxExtent - 1}, b{2, 3};
    check_names(error_of([&] { tg::concat_cols(tg::Sym::atom("A", a), tg::Sym::atom("B", b)); }), "concat_cols",
                a, b);
    const Shape c{tg::kMaxExtent / 2 + 1, 2}, d{tg::kMaxExtent / 2 + 1, 2};
    check_names(error_of([&] { tg::concat_rows(tg::Sym::atom("C", c), tg::Sym::atom("D", d)); }), "concat_rows",
                c, d);
    check_names(error_of([&] {
                    tg::apply(tg::Pad{Shape{4, tg::kMaxExtent}, 0, kHuge}, tg::Sym::atom("X", Shape{2, 2}));
                }),
                "pad", {2, 2}, {4, tg::kMaxExtent});
}

TEST_CASE("one_hot with a class count near SIZE_MAX and labels near it are errors, not wild writes") {
    std::string m = error_of([] { tg::one_hot(Tensor<double>(2, 1, {0, 1}), kHuge); });
    CAPTURE(m);
    CHECK(m.rfind("one_hot:", 0) == 0);
    CHECK(contains(m, "(2×1)"));
    // Labels at or beyond 2⁶⁴ and 2³² (where a conversion to size_t would overflow or wrap).
    for (std::string msg : {error_of([] { tg::one_hot(Tensor<double>(2, 1, {0, 1.8446744073709552e19}), 3); }),
                            error_of([] { tg::one_hot(Tensor<double>(2, 1, {0, 1e300}), 3); }),
                            error_of([] { tg::one_hot(Tensor<float>(2, 1, {0, 4294967296.f}), 3); })}) {
        CAPTURE(msg);
        CHECK(msg.rfind("one_hot: label ", 0) == 0);
        CHECK(contains(msg, "at row 1 is not a class index in [0, 3)"));
    }
}

// ---- the composed losses check their shapes before recording anything: the error still ends
// with the caller's line, as an error raised while recording does ------------------------------

TEST_CASE("a shape error from a composed loss on a tape names the caller's file and line") {
    tg::Tape<double> tape;
    auto P = tape.variable(z(2, 3), "P");
    auto T2 = tape.constant(z(3, 2), "T");
    auto Y = tape.constant(z(2, 1), "Y");
    auto at_line = [](const std::string& msg, unsigned line) {
        CAPTURE(msg);
        CHECK(contains(msg, fmt::format("\n  at {}:{} (in ", __FILE__, line)));
    };
    unsigned line = 0;
    std::string m = error_of([&] { line = __LINE__; tg::mse(P, T2); });
    CHECK(first_line(m) == "mse: prediction (2×3) and target (3×2) differ in shape");
    at_line(m, line);
    m = error_of([&] { line = __LINE__; tg::sse_half(P, Y); });
    CHECK(first_line(m) == "sse_half: prediction (2×3) and target (2×1) differ in shape");
    at_line(m, line);
    m = error_of([&] { line = __LINE__; tg::binary_cross_entropy_with_logits(P, T2); });
    CHECK(first_line(m) == "binary_cross_entropy_with_logits: logits (2×3) and targets (3×2) differ in shape");
    at_line(m, line);
    m = error_of([&] { line = __LINE__; tg::softmax_cross_entropy_probs(P, Y); });
    CHECK(first_line(m) == "softmax_cross_entropy_probs: logits (2×3) and targets (2×1) differ in shape");
    at_line(m, line);
    CHECK(tape.size() == 3);  // nothing recorded by the failed calls
}

TEST_CASE("the sum_to kernel refuses a pair of shapes that is not a sum over broadcast axes") {
    // Before: anything unknown was summed into element (0, 0) of the output, silently.
    Tensor<double> in(3, 4), out(4, 3);
    check_names(error_of([&] { tg::sum_to(out, in); }), "sum_to", {3, 4}, {4, 3});
    Tensor<double> one(1, 1);
    tg::sum_to(one, Tensor<double>(2, 2, {1, 2, 3, 4}));
    CHECK(one[0] == 10);
}

TEST_CASE("shapes whose element count would wrap are still checked extent by extent") {
    // 2³¹·2³¹·4 wraps to 0 elements: mean must not call it empty, and matmul refuses extents
    // that CBLAS's int cannot hold rather than truncating them.
    const Shape wraps{std::size_t(1) << 31, std::size_t(1) << 31, 4};
    CHECK(wraps.numel() == 0);
    CHECK(error_of([&] { tg::mean(tg::Sym::atom("X", wraps)); }) == "");
    CHECK(error_of([] { tg::mean(tg::Sym::atom("E", Shape{2, 0, 3})); }) == "mean: empty input (2×0×3)");
    const Shape huge{tg::kMaxExtent, tg::kMaxExtent};
    CHECK(error_of([] { tg::mean(tg::Sym::atom("E", Shape{0, 3})); }) == "mean: empty input (0×3)");
    check_names(error_of([&] { tg::matmul(tg::Sym::atom("A", huge), tg::Sym::atom("B", huge)); }), "matmul", huge,
                huge);
    check_names(error_of([&] { tg::matmul(tg::Sym::atom("A", {2, 3}), tg::Sym::atom("B", {3, 0x80000000u})); }),
                "matmul", {2, 3}, {3, 0x80000000u});
    CHECK(error_of([&] { tg::matmul(tg::Sym::atom("A", {2, 3}), tg::Sym::atom("B", {3, 0x7fffffffu})); }) == "");
    check_names(error_of([&] {
                    tg::affine(tg::Sym::atom("X", {0x80000000u, 3}), tg::Sym::atom("W", {3, 2}),
                               tg::Sym::atom("b", {1, 2}));
                }),
                "affine", {0x80000000u, 3}, {3, 2});
}
