// The op table: one row per op (and per broadcasting pattern / flag combination), shared by every
// sweep over the op library — first-order gradient checks (test_ops_gradcheck.cpp) and
// second-order ones (helper "gradgrad"). Self-contained: include it after doctest or not at all.
//
// A row says which op it exercises (`op`, the Op::name), how to draw random input shapes
// (`shapes`), from which domain each input's values come (`domains`, chosen away from kinks
// and singularities), and how to build the op from its inputs on a tape (`build`, the signature
// tg::gradcheck takes). Adding an op to the library means adding a row here: the coverage test
// in test_ops_gradcheck.cpp scans the op headers for `name = "..."` and fails on any op that
// has no row (OneHot is the only exclusion: it has no VJP).
//
//   for (const auto& c : tapegrad::test::op_cases()) {
//       std::mt19937_64 rng(42);
//       auto inputs = c.inputs(rng);                        // random shapes and values
//       auto report = tapegrad::gradcheck(c.build, inputs);
//   }
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <tapegrad/tapegrad.hpp>
#include <utility>
#include <vector>

namespace tapegrad::test {

// Where an input's values are drawn from.
enum class Domain {
    Real,          // uniform in [−2, 2]
    Positive,      // uniform in [0.5, 2]: log, sqrt, pow, divisors
    AwayFromZero,  // |x| uniform in [0.1, 2], random sign: the kinks of abs, relu, leaky_relu
    Unit,          // uniform in [0.05, 0.95]: probabilities, binary targets
};

using Build = std::function<Var<double>(Tape<double>&, std::span<const Var<double>>)>;
using ShapeGen = std::function<std::vector<Shape>(std::mt19937_64&)>;

inline double draw(Domain d, std::mt19937_64& rng) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    switch (d) {
        case Domain::Real:
            return -2.0 + 4.0 * u(rng);
        case Domain::Positive:
            return 0.5 + 1.5 * u(rng);
        case Domain::AwayFromZero: {
            double m = 0.1 + 1.9 * u(rng);
            return u(rng) < 0.5 ? -m : m;
        }
        case Domain::Unit:
            return 0.05 + 0.9 * u(rng);
    }
    return 0;
}

inline Tensor<double> random_tensor(Shape s, Domain d, std::mt19937_64& rng) {
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = draw(d, rng);
    return t;
}

// A size in [lo, hi].
inline std::size_t dim(std::mt19937_64& rng, std::size_t lo = 1, std::size_t hi = 5) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
}

struct OpCase {
    std::string_view op;          // Op::name of the op under test (a function's name for a composition)
    std::string_view label;       // what this row checks (unique), for messages
    ShapeGen shapes;              // one shape per input
    std::vector<Domain> domains;  // one per input; a single entry applies to all inputs
    Build build;                  // the op applied to the inputs (as gradcheck wants it)

    std::vector<Tensor<double>> inputs(std::mt19937_64& rng) const {
        std::vector<Shape> s = shapes(rng);
        std::vector<Tensor<double>> x;
        for (std::size_t i = 0; i < s.size(); ++i)
            x.push_back(random_tensor(s[i], domains.size() == 1 ? domains[0] : domains.at(i), rng));
        return x;
    }
};

namespace cases {

using Vars = std::span<const Var<double>>;

// Shape generators.
inline ShapeGen one() {
    return [](std::mt19937_64& r) { return std::vector<Shape>{{dim(r), dim(r)}}; };
}
inline ShapeGen same2() {
    return [](std::mt19937_64& r) {
        Shape s{dim(r), dim(r)};
        return std::vector<Shape>{s, s};
    };
}
// Broadcasting pairs: `a` and `b` each one of "mn", "1n", "m1", "11".
inline ShapeGen bcast(std::string_view a, std::string_view b) {
    return [a, b](std::mt19937_64& r) {
        std::size_t m = dim(r, 2, 5), n = dim(r, 2, 5);
        auto pick = [&](std::string_view k) -> Shape {
            if (k == "mn") return {m, n};
            if (k == "1n") return {1, n};
            if (k == "m1") return {m, 1};
            return {1, 1};
        };
        return std::vector<Shape>{pick(a), pick(b)};
    };
}
// One input of kind "1n", "m1" or "11".
inline ShapeGen single(std::string_view k) {
    return [k](std::mt19937_64& r) { return std::vector<Shape>{bcast(k, k)(r)[0]}; };
}
// Operands of op(A)·op(B) for the given transpose flags.
inline ShapeGen matmul_shapes(bool ta, bool tb) {
    return [ta, tb](std::mt19937_64& r) {
        std::size_t m = dim(r), k = dim(r), n = dim(r);
        Shape a = ta ? Shape{k, m} : Shape{m, k};
        Shape b = tb ? Shape{n, k} : Shape{k, n};
        return std::vector<Shape>{a, b};
    };
}
// At least 2 rows and 2 columns (for slices that are proper sub-blocks).
inline ShapeGen at_least2() {
    return [](std::mt19937_64& r) { return std::vector<Shape>{{dim(r, 2, 6), dim(r, 2, 6)}}; };
}
// A smaller block and a larger shape to pad it into.
inline ShapeGen pad_shapes() {
    return [](std::mt19937_64& r) { return std::vector<Shape>{{dim(r, 1, 3), dim(r, 1, 3)}}; };
}

// N-D: an output of random rank 0–5 (extents 1–3, or 1–2 from rank 4 on, to keep the sweeps
// small); each operand a random trailing part of it with each axis kept or set to 1 — every
// NumPy broadcasting pattern, on either side, and operands of different ranks.
inline std::vector<std::size_t> random_dims(std::mt19937_64& r, std::size_t lo_rank, std::size_t hi_rank) {
    const std::size_t rank = dim(r, lo_rank, hi_rank);
    std::vector<std::size_t> d(rank);
    for (auto& e : d) e = dim(r, 1, rank >= 4 ? 2 : 3);
    return d;
}
inline Shape stretched_part(const std::vector<std::size_t>& out, std::mt19937_64& r) {
    const std::size_t k = dim(r, 0, out.size());
    std::vector<std::size_t> s(out.end() - static_cast<std::ptrdiff_t>(k), out.end());
    for (auto& e : s)
        if (dim(r, 0, 2) == 0) e = 1;
    return Shape::from_range(s.begin(), s.end());
}
inline ShapeGen bcast_nd() {
    return [](std::mt19937_64& r) {
        const auto out = random_dims(r, 0, 5);
        Shape a = stretched_part(out, r);
        Shape b = stretched_part(out, r);
        return std::vector<Shape>{a, b};
    };
}
// One input of random rank lo–hi.
inline ShapeGen one_nd(std::size_t lo = 0, std::size_t hi = 5) {
    return [lo, hi](std::mt19937_64& r) {
        const auto d = random_dims(r, lo, hi);
        return std::vector<Shape>{Shape::from_range(d.begin(), d.end())};
    };
}
// x's shape with every other axis (from the last) set to 1 and its leading axis dropped: a
// sum_to target that stretches back to x's shape.
inline Shape reduced_pattern(Shape x) {
    std::vector<std::size_t> d;
    for (std::size_t k = 1; k < x.rank(); ++k) d.push_back((x.rank() - k) % 2 ? x[k] : 1);
    return Shape::from_range(d.begin(), d.end());
}
// x's shape with its unit axes stretched to 2 and a leading axis of 2: a broadcast target.
inline Shape stretched_pattern(Shape x) {
    std::vector<std::size_t> d{2};
    for (std::size_t k = 0; k < x.rank(); ++k) d.push_back(x[k] == 1 ? 2 : x[k]);
    if (d.size() > kMaxRank) d.erase(d.begin());
    return Shape::from_range(d.begin(), d.end());
}

inline std::vector<OpCase> elementwise_nd() {
    std::vector<OpCase> v;
    v.push_back({"add", "add, N-D broadcasting (ranks 0–5)", bcast_nd(), {Domain::Real},
                 [](Tape<double>&, Vars x) { return x[0] + x[1]; }});
    v.push_back({"sub", "sub, N-D broadcasting (ranks 0–5)", bcast_nd(), {Domain::Real},
                 [](Tape<double>&, Vars x) { return x[0] - x[1]; }});
    v.push_back({"mul", "mul, N-D broadcasting (ranks 0–5)", bcast_nd(), {Domain::Real},
                 [](Tape<double>&, Vars x) { return x[0] * x[1]; }});
    v.push_back({"div", "div, N-D broadcasting (ranks 0–5)", bcast_nd(), {Domain::Real, Domain::Positive},
                 [](Tape<double>&, Vars x) { return x[0] / x[1]; }});
    // A chain through both broadcast sides and an elementwise op: the engine's reduction meets
    // adjoints from two consumers of different shapes.
    v.push_back({"mul", "tanh(a) ⊙ b + a, N-D broadcasting", bcast_nd(), {Domain::Real},
                 [](Tape<double>&, Vars x) { return tanh(x[0]) * x[1] + x[0]; }});
    v.push_back({"tanh", "tanh at ranks 0–5", one_nd(), {Domain::Real},
                 [](Tape<double>&, Vars x) { return tanh(x[0]); }});
    v.push_back({"sigmoid", "sigmoid at ranks 0–5", one_nd(), {Domain::Real},
                 [](Tape<double>&, Vars x) { return sigmoid(x[0]); }});
    v.push_back({"sum_to", "sum of every element at ranks 0–5", one_nd(), {Domain::Real},
                 [](Tape<double>&, Vars x) { return sum(x[0]); }});
    v.push_back({"sum_to", "sum_to alternate axes at ranks 1–5", one_nd(1, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return apply(SumTo{reduced_pattern(x[0].shape())}, x[0]); }});
    v.push_back({"broadcast", "broadcast unit and new axes at ranks 0–5", one_nd(0, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) {
                     return apply(BroadcastTo{stretched_pattern(x[0].shape())}, x[0]);
                 }});
    v.push_back({"mean", "mean at ranks 0–5", one_nd(), {Domain::Real},
                 [](Tape<double>&, Vars x) { return mean(x[0]); }});
    return v;
}

// Views: each a row, and the strided results fed to ordinary (contiguous-input) ops.
// An input of random rank lo–hi whose leading axis has extent 4–5 (for slices with a step).
inline ShapeGen long_first(std::size_t lo, std::size_t hi) {
    return [lo, hi](std::mt19937_64& r) {
        auto d = random_dims(r, lo, hi);
        d[0] = dim(r, 4, 5);
        return std::vector<Shape>{Shape::from_range(d.begin(), d.end())};
    };
}
inline Shape reversed(Shape x) {
    std::vector<std::size_t> d(x.dims().rbegin(), x.dims().rend());
    return Shape::from_range(d.begin(), d.end());
}
inline std::vector<OpCase> views() {
    std::vector<OpCase> v;
    v.push_back({"reshape", "reshape to the reversed dims (a view)", one_nd(0, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return reshape(x[0], reversed(x[0].shape())); }});
    v.push_back({"reshape", "reshape of a transposed view (a copy), with −1", one_nd(2, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return reshape(transpose(x[0], 0, -1), {-1}); }});
    v.push_back({"reshape", "flatten, unsqueeze and squeeze", one_nd(1, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) { return squeeze(unsqueeze(flatten(x[0]), 0), 0) * 2.0; }});
    v.push_back({"permute", "permute, axes rotated", one_nd(1, 5), {Domain::Real}, [](Tape<double>&, Vars x) {
                     const std::size_t r = x[0].shape().rank();
                     std::vector<std::ptrdiff_t> p;
                     for (std::size_t k = 1; k <= r; ++k) p.push_back(static_cast<std::ptrdiff_t>(k % r));
                     return apply(Permute::of(p, r, x[0].shape()), x[0]);
                 }});
    v.push_back({"permute", "transpose(0, −1) then tanh (a strided operand gathered)", one_nd(1, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return tanh(transpose(x[0], 0, -1)); }});
    v.push_back({"permute", "transposed views multiplied", one_nd(2, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) { return transpose(x[0], 0, 1) * transpose(x[0], 1, 0); }});
    v.push_back({"expand", "expand unit and new axes (stride 0)", one_nd(0, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) { return expand(x[0], stretched_pattern(x[0].shape())); }});
    v.push_back({"expand", "an expanded view times itself", one_nd(0, 4), {Domain::Real}, [](Tape<double>&, Vars x) {
                     auto e = expand(x[0], stretched_pattern(x[0].shape()));
                     return e * e;
                 }});
    v.push_back({"slice_axis", "slice 1::2 along axis 0", long_first(1, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) { return slice_axis(x[0], 0, 1, x[0].shape()[0], 2); }});
    v.push_back({"slice_axis", "narrow the last axis, then sigmoid", long_first(1, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) {
                     const std::size_t n = x[0].shape().dim(-1);
                     return sigmoid(narrow(x[0], -1, n > 1 ? 1 : 0, n > 1 ? n - 1 : 1));
                 }});
    v.push_back({"slice_backward", "slice_backward into zeros", one_nd(1, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) {
                     const Shape s = x[0].shape();
                     return apply(SliceBackward{0, 1, 2 * s[0] + 1, 2, s.with(0, 2 * s[0] + 1)}, x[0]);
                 }});
    v.push_back({"select", "select index 1 of axis 0", long_first(1, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) { return select(x[0], 0, 1); }});
    v.push_back({"select", "select the last index of the last axis, squared", one_nd(1, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return square(select(x[0], -1, x[0].shape().dim(-1) - 1)); }});
    v.push_back({"select_backward", "select_backward into zeros", one_nd(0, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) {
                     const Shape s = x[0].shape();
                     std::vector<std::size_t> d{3};
                     d.insert(d.end(), s.dims().begin(), s.dims().end());
                     return apply(SelectBackward{0, 1, Shape::from_range(d.begin(), d.end())}, x[0]);
                 }});
    v.push_back({"contiguous", "contiguous of a permuted view", one_nd(2, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return contiguous(transpose(x[0], 0, -1)); }});
    return v;
}

inline std::vector<OpCase> elementwise() {
    std::vector<OpCase> v;
    // Every broadcasting pattern on either side (mn with each of 1n, m1, 11; and both ways).
    std::vector<std::pair<std::string_view, std::string_view>> pats{{"mn", "mn"}};
    for (const char* k : {"1n", "m1", "11"}) {
        pats.push_back({"mn", k});
        pats.push_back({k, "mn"});
    }
    pats.push_back({"1n", "m1"});  // row with column: both stretch
    pats.push_back({"m1", "1n"});
    // Labels must outlive the table: keep them in static storage.
    static const std::vector<std::string> labels = [&] {
        std::vector<std::string> l;
        for (const char* op : {"add", "sub", "mul", "div"})
            for (auto [a, b] : pats)
                l.push_back(std::string(op) + " " + std::string(a) + " with " + std::string(b));
        return l;
    }();
    std::size_t li = 0;
    for (auto [a, b] : pats)
        v.push_back({"add", labels[li++], bcast(a, b), {Domain::Real}, [](Tape<double>&, Vars x) {
                         return x[0] + x[1];
                     }});
    for (auto [a, b] : pats)
        v.push_back({"sub", labels[li++], bcast(a, b), {Domain::Real}, [](Tape<double>&, Vars x) {
                         return x[0] - x[1];
                     }});
    for (auto [a, b] : pats)
        v.push_back({"mul", labels[li++], bcast(a, b), {Domain::Real}, [](Tape<double>&, Vars x) {
                         return x[0] * x[1];
                     }});
    for (auto [a, b] : pats)
        v.push_back(
            {"div", labels[li++], bcast(a, b), {Domain::Real, Domain::Positive}, [](Tape<double>&, Vars x) {
                 return x[0] / x[1];
             }});
    v.push_back({"neg", "neg", one(), {Domain::Real}, [](Tape<double>&, Vars x) { return -x[0]; }});
    v.push_back(
        {"scale", "scale by -1.5", one(), {Domain::Real}, [](Tape<double>&, Vars x) { return x[0] * -1.5; }});
    v.push_back(
        {"shift", "shift by 0.75", one(), {Domain::Real}, [](Tape<double>&, Vars x) { return x[0] + 0.75; }});
    v.push_back({"shift", "constant minus x", one(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return 1.0 - x[0];
                 }});
    v.push_back({"rdiv", "constant over x", one(), {Domain::AwayFromZero}, [](Tape<double>&, Vars x) {
                     return 10.0 / x[0];
                 }});
    v.push_back({"rdiv", "negative constant over x", one(), {Domain::AwayFromZero},
                 [](Tape<double>&, Vars x) { return -0.5 / x[0]; }});
    return v;
}

inline std::vector<OpCase> linalg() {
    std::vector<OpCase> v;
    v.push_back(
        {"matmul", "matmul A·B", matmul_shapes(false, false), {Domain::Real}, [](Tape<double>&, Vars x) {
             return matmul(x[0], x[1]);
         }});
    v.push_back(
        {"matmul", "matmul Aᵀ·B", matmul_shapes(true, false), {Domain::Real}, [](Tape<double>&, Vars x) {
             return matmul(x[0], x[1], true, false);
         }});
    v.push_back(
        {"matmul", "matmul A·Bᵀ", matmul_shapes(false, true), {Domain::Real}, [](Tape<double>&, Vars x) {
             return matmul(x[0], x[1], false, true);
         }});
    v.push_back(
        {"matmul", "matmul Aᵀ·Bᵀ", matmul_shapes(true, true), {Domain::Real}, [](Tape<double>&, Vars x) {
             return matmul(x[0], x[1], true, true);
         }});
    v.push_back({"affine", "affine X·W + b",
                 [](std::mt19937_64& r) {
                     std::size_t m = dim(r), k = dim(r), n = dim(r);
                     return std::vector<Shape>{{m, k}, {k, n}, {1, n}};
                 },
                 {Domain::Real},
                 [](Tape<double>&, Vars x) { return affine(x[0], x[1], x[2]); }});
    v.push_back({"transpose", "transpose", one(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return transpose(x[0]);
                 }});
    return v;
}

inline std::vector<OpCase> engine() {
    std::vector<OpCase> v;
    v.push_back({"sum_to", "sum_to 1×1 (sum)", one(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return sum(x[0]);
                 }});
    v.push_back({"sum_to", "sum_to 1×n (sum_rows)", one(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return sum_rows(x[0]);
                 }});
    v.push_back({"sum_to", "sum_to m×1 (sum_cols)", one(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return sum_cols(x[0]);
                 }});
    v.push_back(
        {"broadcast", "broadcast 1×n to m×n", single("1n"), {Domain::Real}, [](Tape<double>&, Vars x) {
             return apply(BroadcastTo{{3, x[0].cols()}}, x[0]);
         }});
    v.push_back(
        {"broadcast", "broadcast m×1 to m×n", single("m1"), {Domain::Real}, [](Tape<double>&, Vars x) {
             return apply(BroadcastTo{{x[0].rows(), 4}}, x[0]);
         }});
    v.push_back(
        {"broadcast", "broadcast 1×1 to m×n", single("11"), {Domain::Real}, [](Tape<double>&, Vars x) {
             return apply(BroadcastTo{{2, 3}}, x[0]);
         }});
    v.push_back({"mean", "mean", one(), {Domain::Real}, [](Tape<double>&, Vars x) { return mean(x[0]); }});
    // zeros_like(x)·x + x: the zero adjoint flows, the identity keeps the gradient non-trivial.
    v.push_back({"zeros_like", "zeros_like", one(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return zeros_like(x[0]) * x[0] + x[0];
                 }});
    return v;
}

inline std::vector<OpCase> math() {
    std::vector<OpCase> v;
    v.push_back(
        {"square", "square", one(), {Domain::Real}, [](Tape<double>&, Vars x) { return square(x[0]); }});
    v.push_back(
        {"sqrt", "sqrt", one(), {Domain::Positive}, [](Tape<double>&, Vars x) { return sqrt(x[0]); }});
    v.push_back({"exp", "exp", one(), {Domain::Real}, [](Tape<double>&, Vars x) { return exp(x[0]); }});
    v.push_back({"log", "log", one(), {Domain::Positive}, [](Tape<double>&, Vars x) { return log(x[0]); }});
    v.push_back(
        {"pow", "pow 3", one(), {Domain::Real}, [](Tape<double>&, Vars x) { return pow(x[0], 3.0); }});
    v.push_back({"pow", "pow -1.5", one(), {Domain::Positive}, [](Tape<double>&, Vars x) {
                     return pow(x[0], -1.5);
                 }});
    v.push_back(
        {"pow", "pow 0.5", one(), {Domain::Positive}, [](Tape<double>&, Vars x) { return pow(x[0], 0.5); }});
    v.push_back(
        {"abs", "abs", one(), {Domain::AwayFromZero}, [](Tape<double>&, Vars x) { return abs(x[0]); }});
    // sign is piecewise constant: its (zero) VJP is checked through sign(x)·x.
    v.push_back({"sign", "sign times x", one(), {Domain::AwayFromZero}, [](Tape<double>&, Vars x) {
                     return sign(x[0]) * x[0];
                 }});
    return v;
}

inline std::vector<OpCase> activations() {
    std::vector<OpCase> v;
    v.push_back(
        {"sigmoid", "sigmoid", one(), {Domain::Real}, [](Tape<double>&, Vars x) { return sigmoid(x[0]); }});
    v.push_back({"sigmoid_grad", "sigmoid_grad", one(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return sigmoid_grad(x[0]);
                 }});
    v.push_back({"tanh", "tanh", one(), {Domain::Real}, [](Tape<double>&, Vars x) { return tanh(x[0]); }});
    v.push_back({"tanh_grad", "tanh_grad", one(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return tanh_grad(x[0]);
                 }});
    v.push_back(
        {"relu", "relu", one(), {Domain::AwayFromZero}, [](Tape<double>&, Vars x) { return relu(x[0]); }});
    v.push_back({"relu_backward", "relu_backward(g, x) times x", same2(), {Domain::Real, Domain::AwayFromZero},
                 [](Tape<double>&, Vars x) { return relu_backward(x[0], x[1]) * x[1]; }});
    v.push_back({"relu_grad", "relu_grad times x", one(), {Domain::AwayFromZero}, [](Tape<double>&, Vars x) {
                     return relu_grad(x[0]) * x[0];
                 }});
    v.push_back({"leaky_relu", "leaky_relu 0.1", one(), {Domain::AwayFromZero}, [](Tape<double>&, Vars x) {
                     return leaky_relu(x[0], 0.1);
                 }});
    v.push_back({"leaky_relu_grad",
                 "leaky_relu_grad times x",
                 one(),
                 {Domain::AwayFromZero},
                 [](Tape<double>&, Vars x) { return leaky_relu_grad(x[0], 0.1) * x[0]; }});
    v.push_back({"softplus", "softplus", one(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return softplus(x[0]);
                 }});
    v.push_back({"softplus", "log_sigmoid (composed)", one(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return log_sigmoid(x[0]);
                 }});
    v.push_back(
        {"softmax", "softmax", one(), {Domain::Real}, [](Tape<double>&, Vars x) { return softmax(x[0]); }});
    v.push_back({"log_softmax", "log_softmax", one(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return log_softmax(x[0]);
                 }});
    return v;
}

inline std::vector<OpCase> structure() {
    std::vector<OpCase> v;
    v.push_back({"concat_cols",
                 "concat_cols",
                 [](std::mt19937_64& r) {
                     std::size_t m = dim(r);
                     return std::vector<Shape>{{m, dim(r)}, {m, dim(r)}};
                 },
                 {Domain::Real},
                 [](Tape<double>&, Vars x) { return concat_cols(x[0], x[1]); }});
    v.push_back({"concat_rows",
                 "concat_rows",
                 [](std::mt19937_64& r) {
                     std::size_t n = dim(r);
                     return std::vector<Shape>{{dim(r), n}, {dim(r), n}};
                 },
                 {Domain::Real},
                 [](Tape<double>&, Vars x) { return concat_rows(x[0], x[1]); }});
    v.push_back({"slice", "slice_rows", at_least2(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     std::size_t m = x[0].rows();
                     return slice_rows(x[0], m >= 3 ? 1 : 0, m - 1);
                 }});
    v.push_back({"slice", "slice_cols", at_least2(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     std::size_t n = x[0].cols();
                     return slice_cols(x[0], n >= 3 ? 1 : 0, n - 1);
                 }});
    v.push_back({"slice", "slice block", at_least2(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return slice(x[0], 1, x[0].rows(), 0, x[0].cols() - 1);
                 }});
    v.push_back({"pad", "pad", pad_shapes(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return pad(x[0], Shape{x[0].rows() + 2, x[0].cols() + 1}, 1, 1);
                 }});
    return v;
}

inline std::vector<OpCase> losses() {
    std::vector<OpCase> v;
    v.push_back({"sse_half", "sse_half (composed)", same2(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return sse_half(x[0], x[1]);
                 }});
    v.push_back({"mse", "mse (composed)", same2(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return mse(x[0], x[1]);
                 }});
    v.push_back({"binary_cross_entropy_with_logits",
                 "binary_cross_entropy_with_logits (composed)",
                 same2(),
                 {Domain::Real, Domain::Unit},
                 [](Tape<double>&, Vars x) { return binary_cross_entropy_with_logits(x[0], x[1]); }});
    // Labels are data, made from the logits' shape: row i has class (3i + 1) mod n.
    v.push_back({"softmax_cross_entropy",
                 "softmax_cross_entropy",
                 one(),
                 {Domain::Real},
                 [](Tape<double>& t, Vars x) {
                     Tensor<double> labels(x[0].rows(), 1);
                     for (std::size_t i = 0; i < labels.size(); ++i)
                         labels[i] = static_cast<double>((3 * i + 1) % x[0].cols());
                     return softmax_cross_entropy(x[0], t.constant(labels, "labels"));
                 }});
    v.push_back({"softmax_cross_entropy_probs",
                 "softmax_cross_entropy_probs (composed)",
                 same2(),
                 {Domain::Real, Domain::Unit},
                 [](Tape<double>&, Vars x) { return softmax_cross_entropy_probs(x[0], x[1]); }});
    return v;
}


// ---- reduce: reductions over axes, softmax over an axis, N-D cross-entropy ----
// Every other axis of x (0, 2, 4, …): the axes a row reduces over.
inline detail::AxisSet alternate_axes(const Shape& x, bool keepdim) {
    std::uint8_t m = 0;
    for (std::size_t k = 0; k < x.rank(); k += 2) m = static_cast<std::uint8_t>(m | (1u << k));
    return {m, keepdim};
}
// Class indices for logits z (class axis 1, or 0 at rank 1): position p gets (3p + 1) mod C, and
// every fourth position (p ≡ 2 mod 4) the ignore_index −100 when `ignore`.
inline Tensor<double> nd_labels(const Shape& z, bool ignore) {
    const std::size_t a = z.rank() >= 2 ? 1 : 0, c = z[a];
    std::vector<std::size_t> d;
    for (std::size_t k = 0; k < z.rank(); ++k)
        if (k != a) d.push_back(z[k]);
    Tensor<double> l(Shape::from_range(d.begin(), d.end()));
    for (std::size_t p = 0; p < l.size(); ++p)
        l[p] = ignore && p % 4 == 2 ? -100.0 : static_cast<double>((3 * p + 1) % c);
    return l;
}
inline std::vector<OpCase> reduce_axes() {
    std::vector<OpCase> v;
    v.push_back({"sum_axes", "sum over every other axis (ranks 0–5)", one_nd(0, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return apply(SumAxes{alternate_axes(x[0].shape(), false)}, x[0]); }});
    v.push_back({"sum_axes", "sum over the last axis, keepdim, times x (ranks 1–5)", one_nd(1, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return sum(x[0], {-1}, true) * x[0]; }});
    v.push_back({"mean_axes", "mean over every other axis, keepdim (ranks 0–5)", one_nd(0, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return apply(MeanAxes{alternate_axes(x[0].shape(), true)}, x[0]); }});
    v.push_back({"mean_axes", "mean over axes 0 and −1, squared (ranks 2–5)", one_nd(2, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return square(mean(x[0], {0, -1})); }});
    v.push_back({"amax", "amax over every other axis (ranks 0–5)", one_nd(0, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return apply(Amax{alternate_axes(x[0].shape(), false)}, x[0]); }});
    v.push_back({"amax", "amax of everything times x (ranks 0–5)", one_nd(0, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return amax(x[0]) * x[0]; }});
    v.push_back({"amin", "amin over the last axis, keepdim, times x (ranks 1–5)", one_nd(1, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return amin(x[0], {-1}, true) * x[0]; }});
    v.push_back({"max_along", "max(x, −1).values (ranks 1–5)", one_nd(1, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return max(x[0], -1).values; }});
    v.push_back({"max_along", "min(x, 0, keepdim).values times x (ranks 1–5)", one_nd(1, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return min(x[0], 0, true).values * x[0]; }});
    // The weights are piecewise constant: their (zero) VJPs are checked through a product with
    // x, as sign's. (argmax is data, an IndexTensor: not an op.)
    v.push_back({"extremum_weights", "[x = amax(x)] times x (ranks 0–5)", one_nd(0, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) {
                     const auto a = alternate_axes(x[0].shape(), false);
                     return apply(ExtremumWeights{a, false}, x[0], apply(Amax{a}, x[0])) * x[0];
                 }});
    v.push_back({"logsumexp", "logsumexp over every other axis (ranks 0–5)", one_nd(0, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return apply(LogSumExp{alternate_axes(x[0].shape(), false)}, x[0]); }});
    v.push_back({"logsumexp", "logsumexp over the last axis, keepdim, times x (ranks 1–5)", one_nd(1, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return logsumexp(x[0], {-1}, true) * x[0]; }});
    v.push_back({"sum_axes", "var over axis 0, unbiased (ranks 1–4)", long_first(1, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) { return var(x[0], {0}); }});
    v.push_back({"sum_axes", "std over axis 0, population, keepdim (ranks 1–4)", long_first(1, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) { return std(x[0], {0}, 0.0, true); }});
    v.push_back({"softmax", "softmax over the last axis (ranks 0–5)", one_nd(0, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return softmax(x[0]); }});
    v.push_back({"softmax", "softmax over axis 0 (ranks 1–5)", one_nd(1, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return softmax(x[0], 0); }});
    v.push_back({"log_softmax", "log_softmax over axis −2 (ranks 2–5)", one_nd(2, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return log_softmax(x[0], -2); }});
    v.push_back({"log_softmax", "log_softmax over the last axis (ranks 0–5)", one_nd(0, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return log_softmax(x[0]); }});
    for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none})
        v.push_back({"softmax_cross_entropy_nd",
                     red == Reduction::mean ? "cross-entropy (N, C, d…), ignore_index, mean (ranks 1–5)"
                     : red == Reduction::sum ? "cross-entropy (N, C, d…), ignore_index, sum (ranks 1–5)"
                                             : "cross-entropy (N, C, d…), ignore_index, none (ranks 1–5)",
                     one_nd(1, 5), {Domain::Real}, [red](Tape<double>& t, Vars x) {
                         const Tensor<double> l = nd_labels(x[0].shape(), true);
                         return softmax_cross_entropy(x[0], t.constant(l, "labels"), {.reduction = red});
                     }});
    v.push_back({"softmax_cross_entropy_nd", "cross-entropy (N, C) with labels (N), default options", one(),
                 {Domain::Real}, [](Tape<double>& t, Vars x) {
                     return softmax_cross_entropy(x[0], t.constant(nd_labels(x[0].shape(), false), "labels"));
                 }});
    return v;
}
// ---- conv: conv2d, im2col/col2im, pooling, batch norm, dropout ----
// Shapes drawn small (gradcheck differences every element) within each row's fixed parameters.
inline ShapeGen conv_shapes(Conv2dParams p, std::size_t kh, std::size_t kw, std::size_t cg_max, bool bias,
                            bool depthwise = false) {
    return [=](std::mt19937_64& r) {
        const std::size_t g = p.groups;
        const std::size_t cg = depthwise ? 1 : dim(r, 1, cg_max);
        const std::size_t og = depthwise ? dim(r, 1, 2) : dim(r, 1, 3);
        const std::size_t eh = p.dilation[0] * (kh - 1) + 1, ew = p.dilation[1] * (kw - 1) + 1;
        const std::size_t lo_h = eh > 2 * p.padding[0] ? eh - 2 * p.padding[0] : 1;
        const std::size_t lo_w = ew > 2 * p.padding[1] ? ew - 2 * p.padding[1] : 1;
        Shape x{dim(r, 1, 2), cg * g, dim(r, lo_h, lo_h + 3), dim(r, lo_w, lo_w + 3)};
        Shape w{og * g, cg, kh, kw};
        std::vector<Shape> v{x, w};
        if (bias) v.push_back(Shape{og * g});
        return v;
    };
}
// conv2d's output shape for x, w under p (the shape check gives it).
inline Shape conv_out(const Shape& x, const Shape& w, Conv2dParams p) { return Conv2d{p}.shape(x, w); }
// (adjoint, weight) operands of conv2d_input_grad, and the input shape they belong to.
inline ShapeGen conv_input_grad_shapes(Conv2dParams p, std::size_t kh, std::size_t kw) {
    return [=](std::mt19937_64& r) {
        auto xw = conv_shapes(p, kh, kw, 2, false)(r);
        return std::vector<Shape>{conv_out(xw[0], xw[1], p), xw[1]};
    };
}
// The input height/width that gives output extent `out` exactly (no rows dropped by the stride).
inline std::size_t conv_in_extent(std::size_t out, std::size_t k, std::size_t s, std::size_t pad, std::size_t d) {
    return (out - 1) * s + d * (k - 1) + 1 - 2 * pad;
}
inline ShapeGen pool_shapes(Pool2dParams q) {
    return [=](std::mt19937_64& r) {
        const std::size_t eh = q.dilation[0] * (q.kernel[0] - 1) + 1, ew = q.dilation[1] * (q.kernel[1] - 1) + 1;
        return std::vector<Shape>{{dim(r, 1, 2), dim(r, 1, 3), dim(r, eh, eh + 4), dim(r, ew, ew + 4)}};
    };
}
inline ShapeGen nchw_pair() {
    return [](std::mt19937_64& r) {
        Shape s{dim(r, 1, 2), dim(r, 1, 3), dim(r, 2, 6), dim(r, 2, 6)};
        return std::vector<Shape>{s, s};
    };
}
inline std::vector<OpCase> conv() {
    std::vector<OpCase> v;
    const Conv2dParams p31{{1, 1}, {1, 1}, {1, 1}, 1};
    v.push_back({"conv2d_bias", "conv2d 3×3, padding 1, with bias", conv_shapes(p31, 3, 3, 3, true), {Domain::Real},
                 [p31](Tape<double>&, Vars x) { return conv2d(x[0], x[1], x[2], p31); }});
    const Conv2dParams pns{{2, 1}, {0, 1}, {2, 1}, 1};
    v.push_back({"conv2d", "conv2d 2×3 kernel, stride 2×1, padding 0×1, dilation 2×1", conv_shapes(pns, 2, 3, 2, false),
                 {Domain::Real}, [pns](Tape<double>&, Vars x) { return conv2d(x[0], x[1], pns); }});
    const Conv2dParams pg{{1, 2}, {1, 0}, {1, 1}, 2};
    v.push_back({"conv2d_bias", "conv2d groups 2, stride 1×2, padding 1×0, with bias", conv_shapes(pg, 3, 2, 2, true),
                 {Domain::Real}, [pg](Tape<double>&, Vars x) { return conv2d(x[0], x[1], x[2], pg); }});
    const Conv2dParams pdw{{1, 1}, {1, 1}, {1, 1}, 3};
    v.push_back({"conv2d", "conv2d depthwise (groups = C = 3)", conv_shapes(pdw, 3, 3, 1, false, true), {Domain::Real},
                 [pdw](Tape<double>&, Vars x) { return conv2d(x[0], x[1], pdw); }});
    v.push_back({"conv2d_bias", "conv2d 1×1 pointwise (no im2col), then tanh", conv_shapes({}, 1, 1, 3, true),
                 {Domain::Real}, [](Tape<double>&, Vars x) { return tanh(conv2d(x[0], x[1], x[2])); }});
    const Conv2dParams ps2{{2, 2}, {1, 1}, {1, 1}, 1};
    v.push_back({"conv2d_input_grad", "conv2d_input_grad stride 2, padding 1", conv_input_grad_shapes(ps2, 3, 3),
                 {Domain::Real}, [ps2](Tape<double>&, Vars x) {
                     const Shape gs = x[0].shape(), ws = x[1].shape();
                     const Shape in{gs[0], ws[1], conv_in_extent(gs[2], 3, 2, 1, 1), conv_in_extent(gs[3], 3, 2, 1, 1)};
                     return apply(Conv2dInputGrad{ps2, in}, x[0], x[1]);
                 }});
    v.push_back({"conv2d_weight_grad", "conv2d_weight_grad dilation 2, padding 1", [](std::mt19937_64& r) {
                     const Conv2dParams p{{1, 1}, {1, 1}, {2, 2}, 1};
                     auto xw = conv_shapes(p, 2, 2, 2, false)(r);
                     return std::vector<Shape>{xw[0], conv_out(xw[0], xw[1], p)};
                 }, {Domain::Real}, [](Tape<double>&, Vars x) {
                     const Conv2dParams p{{1, 1}, {1, 1}, {2, 2}, 1};
                     const Shape ws{x[1].shape()[1], x[0].shape()[1], 2, 2};
                     return apply(Conv2dWeightGrad{p, ws}, x[0], x[1]);
                 }});
    const Conv2dParams pic{{2, 1}, {1, 0}, {1, 2}, 1};
    v.push_back({"im2col", "im2col 2×2, stride 2×1, padding 1×0, dilation 1×2", conv_shapes(pic, 2, 2, 2, false),
                 {Domain::Real}, [pic](Tape<double>&, Vars x) { return im2col(x[0], {2, 2}, pic) * 1.0; }});
    v.push_back({"col2im", "col2im 3×2, stride 2, padding 1", [](std::mt19937_64& r) {
                     const Conv2dParams p{{2, 2}, {1, 1}, {1, 1}, 1};
                     const Shape x = conv_shapes(p, 3, 2, 3, false)(r)[0];
                     return std::vector<Shape>{Im2Col{{3, 2}, p}.shape(x), x};
                 }, {Domain::Real}, [](Tape<double>&, Vars x) {
                     const Conv2dParams p{{2, 2}, {1, 1}, {1, 1}, 1};
                     return col2im(x[0], x[1].shape(), {3, 2}, p) * x[1];
                 }});
    // Pooling. Random reals: ties in a window have probability 0.
    const Pool2dParams mp2{{2, 2}};
    v.push_back({"max_pool2d", "max_pool2d 2×2", pool_shapes(mp2), {Domain::Real},
                 [mp2](Tape<double>&, Vars x) { return max_pool2d(x[0], mp2); }});
    const Pool2dParams mp3{{3, 2}, {2, 1}, {1, 1}, {1, 1}, true};
    v.push_back({"max_pool2d", "max_pool2d 3×2, stride 2×1, padding 1, ceil_mode", pool_shapes(mp3), {Domain::Real},
                 [mp3](Tape<double>&, Vars x) { return max_pool2d(x[0], mp3); }});
    const Pool2dParams mpd{{3, 3}, {2, 2}, {1, 0}, {2, 1}, false};
    v.push_back({"max_pool2d", "max_pool2d 3×3, stride 2, padding 1×0, dilation 2×1, then square", pool_shapes(mpd),
                 {Domain::Real}, [mpd](Tape<double>&, Vars x) { return square(max_pool2d(x[0], mpd)); }});
    v.push_back({"max_pool2d_backward", "max_pool2d_backward 2×2 stride 1", [](std::mt19937_64& r) {
                     const Pool2dParams q{{2, 2}, {1, 1}};
                     const Shape x = pool_shapes(q)(r)[0];
                     return std::vector<Shape>{MaxPool2d{q}.shape(x), x};
                 }, {Domain::Real}, [](Tape<double>&, Vars x) {
                     return apply(MaxPool2dBackward{Pool2dParams{{2, 2}, {1, 1}}}, x[0], x[1]);
                 }});
    v.push_back({"max_pool2d_gather", "max_pool2d_gather 2×3", nchw_pair(), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return apply(MaxPool2dGather{Pool2dParams{{2, 2}}}, x[0], x[1]);
                 }});
    const Pool2dParams ap2{{2, 2}};
    v.push_back({"avg_pool2d", "avg_pool2d 2×2", pool_shapes(ap2), {Domain::Real},
                 [ap2](Tape<double>&, Vars x) { return avg_pool2d(x[0], ap2); }});
    const Pool2dParams ap3{{3, 3}, {2, 2}, {1, 1}, {1, 1}, true};
    v.push_back({"avg_pool2d", "avg_pool2d 3×3, stride 2, padding 1, ceil_mode, count_include_pad = false",
                 pool_shapes(ap3), {Domain::Real},
                 [ap3](Tape<double>&, Vars x) { return square(avg_pool2d(x[0], ap3, false)); }});
    v.push_back({"avg_pool2d_backward", "avg_pool2d_backward 3×2, stride 2×1, padding 1, ceil_mode",
                 [](std::mt19937_64& r) {
                     const Pool2dParams q{{3, 2}, {2, 1}, {1, 1}, {1, 1}, true};
                     const Shape x = pool_shapes(q)(r)[0];
                     return std::vector<Shape>{AvgPool2d{q}.shape(x), x};
                 }, {Domain::Real}, [](Tape<double>&, Vars x) {
                     const Pool2dParams q{{3, 2}, {2, 1}, {1, 1}, {1, 1}, true};
                     return apply(AvgPool2dBackward{q, true, x[1].shape()}, x[0]) * x[1];
                 }});
    v.push_back({"adaptive_avg_pool2d", "adaptive_avg_pool2d to 1×1 (composed)", pool_shapes({{1, 1}}), {Domain::Real},
                 [](Tape<double>&, Vars x) { return square(adaptive_avg_pool2d(x[0])); }});
    // Batch norm and dropout.
    v.push_back({"batch_norm_normalize", "batch_norm_normalize N×C×H×W", [](std::mt19937_64& r) {
                     return std::vector<Shape>{{dim(r, 1, 3), dim(r, 1, 3), dim(r, 2, 3), dim(r, 1, 3)}};
                 }, {Domain::Real}, [](Tape<double>&, Vars x) { return apply(BatchNormNormalize{1e-5}, x[0]); }});
    v.push_back({"batch_norm", "batch_norm N×C with weight and bias, training (composed)", [](std::mt19937_64& r) {
                     const std::size_t c = dim(r, 1, 4);
                     return std::vector<Shape>{{dim(r, 2, 5), c}, {c}, {c}};
                 }, {Domain::Real}, [](Tape<double>&, Vars x) { return square(batch_norm(x[0], x[1], x[2])); }});
    v.push_back({"batch_norm", "batch_norm N×C×H×W, eval with running statistics (composed)", [](std::mt19937_64& r) {
                     const std::size_t c = dim(r, 1, 3);
                     return std::vector<Shape>{{dim(r, 1, 2), c, dim(r, 1, 3), dim(r, 1, 3)}, {c}, {c}};
                 }, {Domain::Real}, [](Tape<double>&, Vars x) {
                     const std::size_t c = x[1].shape().numel();
                     Tensor<double> rm(Shape{c}), rv(Shape{c});  // read (copied) while building
                     for (std::size_t i = 0; i < c; ++i) rm[i] = 0.1 * double(i), rv[i] = 0.5 + double(i);
                     BatchNormOptions<double> o;
                     o.running_mean = &rm, o.running_var = &rv, o.training = false;
                     return batch_norm(x[0], x[1], x[2], o);
                 }});
    v.push_back({"dropout", "dropout p = 0.3", one_nd(1, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) { return dropout(x[0], 0.3, true, 7, 2); }});
    return v;
}
// ---- bmm: batched matmul, concat / stack ----
// Batch axes of rank 1–3 (extents 1–3), each operand's a random trailing part of them with axes
// set to 1 (every broadcasting pattern, operands of different ranks); m, k, n in 1–3. `ta`/`tb`
// give the operand shapes for the transpose flags.
inline ShapeGen bmm_shapes(bool ta, bool tb, std::size_t lo = 1, std::size_t hi = 3) {
    return [=](std::mt19937_64& r) {
        const auto batch = random_dims(r, lo, hi);
        const std::size_t m = dim(r, 1, 3), k = dim(r, 1, 3), n = dim(r, 1, 3);
        auto with = [](Shape b, std::size_t x, std::size_t y) {
            std::vector<std::size_t> d(b.dims().begin(), b.dims().end());
            d.push_back(x);
            d.push_back(y);
            return Shape::from_range(d.begin(), d.end());
        };
        Shape a = with(stretched_part(batch, r), ta ? k : m, ta ? m : k);
        Shape b = with(stretched_part(batch, r), tb ? n : k, tb ? k : n);
        return std::vector<Shape>{a, b};
    };
}
inline std::vector<OpCase> bmm() {
    std::vector<OpCase> v;
    for (int f = 0; f < 4; ++f) {
        static constexpr std::string_view labels[4] = {
            "batched matmul A·B, broadcast batch axes (rank 2–5)", "batched matmul Aᵀ·B, broadcast batch axes",
            "batched matmul A·Bᵀ, broadcast batch axes", "batched matmul Aᵀ·Bᵀ, broadcast batch axes"};
        const bool ta = (f & 1) != 0, tb = (f & 2) != 0;
        v.push_back({"matmul", labels[f], bmm_shapes(ta, tb, f == 0 ? 1 : 0, 3), {Domain::Real},
                     [ta, tb](Tape<double>&, Vars x) { return matmul(x[0], x[1], ta, tb); }});
    }
    v.push_back({"matmul", "batched matmul of a transposed view (a transpose flag, no copy)", bmm_shapes(false, true),
                 {Domain::Real}, [](Tape<double>&, Vars x) { return matmul(x[0], transpose(x[1], -1, -2)); }});
    v.push_back({"matmul", "batched matmul of two transposed views with the flags set too", bmm_shapes(false, true),
                 {Domain::Real}, [](Tape<double>&, Vars x) {
                     return matmul(transpose(x[0], -1, -2), transpose(x[1], -1, -2), true, false);
                 }});
    v.push_back({"matmul", "matmul of a permuted (B, m, H, k) view: (B, H, m, k)·(k, n)",
                 [](std::mt19937_64& r) {
                     const std::size_t b = dim(r, 1, 3), m = dim(r, 1, 3), h = dim(r, 1, 3), k = dim(r, 1, 3),
                                       n = dim(r, 1, 3);
                     return std::vector<Shape>{{b, m, h, k}, {k, n}};
                 },
                 {Domain::Real}, [](Tape<double>&, Vars x) { return matmul(permute(x[0], {0, 2, 1, 3}), x[1]); }});
    v.push_back({"matmul", "matmul of a view with no unit stride (a step-2 slice: gathered)",
                 [](std::mt19937_64& r) {
                     const std::size_t b = dim(r, 1, 3), m = dim(r, 1, 3), k = dim(r, 1, 3), n = dim(r, 1, 3);
                     return std::vector<Shape>{{b, m, 2 * k}, {b, k, n}};
                 },
                 {Domain::Real}, [](Tape<double>&, Vars x) {
                     return matmul(slice_axis(x[0], -1, 0, x[0].shape().dim(-1), 2), x[1]);
                 }});
    v.push_back({"matmul", "2-D matmul of a transposed view", matmul_shapes(true, false), {Domain::Real},
                 [](Tape<double>&, Vars x) { return matmul(transpose(x[0], 0, 1), x[1]); }});
    v.push_back({"matmul", "attention-shaped S = Q·Kᵀ then O = S·V (rank 4)",
                 [](std::mt19937_64& r) {
                     const std::size_t b = dim(r, 1, 2), h = dim(r, 1, 2), t = dim(r, 1, 3), d = dim(r, 1, 3);
                     Shape s{b, h, t, d};
                     return std::vector<Shape>{s, s, s};
                 },
                 {Domain::Real}, [](Tape<double>&, Vars x) {
                     return matmul(matmul(x[0], transpose(x[1], -1, -2)), x[2]);
                 }});
    // concat / stack: inputs of one random shape (rank 1–4) with the extent along a random axis
    // redrawn per input; the axis given negative half of the time.
    for (std::size_t n : {1, 2, 3, 7}) {
        static constexpr std::string_view labels[] = {"", "concat of 1 input along a random axis",
                                                      "concat of 2 inputs along a random axis",
                                                      "concat of 3 inputs along a random (negative) axis", "", "",
                                                      "", "concat of 7 inputs (two nodes) along a random axis"};
        v.push_back({"concat", labels[n],
                     [n](std::mt19937_64& r) {
                         auto d = random_dims(r, 1, 4);
                         const std::size_t axis = dim(r, 0, d.size() - 1);
                         std::vector<Shape> s;
                         for (std::size_t i = 0; i < n; ++i) {
                             d[axis] = dim(r, 1, 3);
                             s.push_back(Shape::from_range(d.begin(), d.end()));
                         }
                         return s;
                     },
                     {Domain::Real}, [n](Tape<double>&, Vars x) {
                         // The axis is the one along which the inputs' extents differ (or, all
                         // equal, the first): recovered from the shapes.
                         const Shape s0 = x[0].shape();
                         std::size_t axis = 0;
                         for (std::size_t i = 1; i < n; ++i)
                             for (std::size_t k = 0; k < s0.rank(); ++k)
                                 if (x[i].shape()[k] != s0[k]) axis = k;
                         const auto a = static_cast<std::ptrdiff_t>(axis);
                         return concat(x, n == 3 ? a - static_cast<std::ptrdiff_t>(s0.rank()) : a);
                     }});
    }
    v.push_back({"concat", "stack of 3 along new axis −2, then tanh",
                 [](std::mt19937_64& r) {
                     const auto d = random_dims(r, 1, 3);
                     const Shape s = Shape::from_range(d.begin(), d.end());
                     return std::vector<Shape>{s, s, s};
                 },
                 {Domain::Real}, [](Tape<double>&, Vars x) { return tanh(stack(x, -1 - 1)); }});
    v.push_back({"concat", "stack of 2 scalars, and of strided views", [](std::mt19937_64& r) {
                     return std::vector<Shape>{Shape{}, Shape{}, {dim(r, 1, 3), dim(r, 1, 3)}};
                 },
                 {Domain::Real}, [](Tape<double>&, Vars x) {
                     auto t = transpose(x[2], 0, 1);
                     return sum(stack(std::vector<Var<double>>{x[0], x[1]}, 0)) + sum(stack({t, t * 2.0}, 2));
                 }});
    return v;
}
// ---- end bmm ----

// ---- gpt: transformer ops (gelu, layer norm, embedding, where / masked_fill, causal, attention) ----
// Integer data (indices, masks, conditions) are tape constants made from the inputs' shapes.
inline Tensor<double> pattern_mask(const Shape& s, std::size_t period, std::size_t phase) {
    Tensor<double> m(s);
    for (std::size_t i = 0; i < m.size(); ++i) m[i] = (i % period) == phase ? 1.0 : 0.0;
    return m;
}
inline Tensor<double> index_tensor(const Shape& s, std::size_t rows) {
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<double>((3 * i + 1) % rows);
    return t;
}
inline ShapeGen qkv_shapes(bool cross) {
    return [cross](std::mt19937_64& r) {
        const std::size_t b = dim(r, 1, 2), h = dim(r, 1, 2), t = dim(r, 1, 3), d = dim(r, 1, 3);
        const std::size_t s = cross ? dim(r, 1, 3) : t, dv = cross ? dim(r, 1, 3) : d;
        return std::vector<Shape>{{b, h, t, d}, {b, h, s, d}, {b, h, s, dv}};
    };
}
inline std::vector<OpCase> gpt() {
    std::vector<OpCase> v;
    v.push_back({"gelu", "gelu exact (erf), rank 0–4", one_nd(0, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) { return gelu(x[0]); }});
    v.push_back({"gelu", "gelu approximate=\"tanh\", rank 0–4", one_nd(0, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) { return gelu(x[0], "tanh"); }});
    v.push_back({"gelu_grad", "gelu′ exact", one_nd(0, 3), {Domain::Real},
                 [](Tape<double>&, Vars x) { return apply(GeluGrad{GeluApprox::None}, x[0]); }});
    v.push_back({"gelu_grad", "gelu′ tanh", one_nd(0, 3), {Domain::Real},
                 [](Tape<double>&, Vars x) { return apply(GeluGrad{GeluApprox::Tanh}, x[0]); }});
    v.push_back({"layer_normalize", "layer_norm over the last axis with weight and bias",
                 [](std::mt19937_64& r) {
                     auto d = random_dims(r, 0, 3);
                     d.push_back(dim(r, 2, 4));
                     const Shape w{d.back()};
                     return std::vector<Shape>{Shape::from_range(d.begin(), d.end()), w, w};
                 },
                 {Domain::Real}, [](Tape<double>&, Vars x) {
                     return layer_norm(x[0], x[1].shape(), x[1], x[2]);
                 }});
    v.push_back({"layer_normalize", "layer_norm over the last two axes, no affine, eps 0.1",
                 [](std::mt19937_64& r) {
                     return std::vector<Shape>{{dim(r, 1, 3), dim(r, 1, 3), dim(r, 2, 3)}};
                 },
                 {Domain::Real}, [](Tape<double>&, Vars x) {
                     const Shape s = x[0].shape();
                     return layer_norm<Var<double>>(x[0], Shape{s[1], s[2]}, nullptr, nullptr, 0.1);
                 }});
    v.push_back({"embedding", "embedding of (2×3) indices with repeats", [](std::mt19937_64& r) {
                     return std::vector<Shape>{{dim(r, 2, 4), dim(r, 1, 3)}};
                 },
                 {Domain::Real}, [](Tape<double>& t, Vars x) {
                     auto idx = t.constant(index_tensor(Shape{2, 3}, x[0].shape()[0]), "I");
                     return tanh(embedding(idx, x[0]));
                 }});
    // padding_idx: the padding row gets no gradient (as torch), which finite differences see only
    // if the output does not depend on that row: its values are zeroed first (masked_fill).
    v.push_back({"embedding", "embedding with padding_idx 1 (the padding row zeroed)", [](std::mt19937_64& r) {
                     return std::vector<Shape>{{dim(r, 2, 4), dim(r, 1, 3)}};
                 },
                 {Domain::Real}, [](Tape<double>& t, Vars x) {
                     auto idx = t.constant(index_tensor(Shape{5}, x[0].shape()[0]), "I");
                     Tensor<double> row(Shape{x[0].shape()[0], 1});
                     row[1] = 1;
                     return tanh(embedding(idx, masked_fill(x[0], t.constant(row, "P"), 0.0), 1));
                 }});
    v.push_back({"embedding_backward", "scatter-add of an adjoint (padding_idx 1 left out)",
                 [](std::mt19937_64& r) { return std::vector<Shape>{{2, 3, dim(r, 1, 3)}}; }, {Domain::Real},
                 [](Tape<double>& t, Vars x) {
                     auto idx = t.constant(index_tensor(Shape{2, 3}, 4), "I");
                     return tanh(apply(EmbeddingBackward{4, 1}, x[0], idx));
                 }});
    v.push_back({"where_mask", "where(C, A, B) with a 0/1 tensor C, A, B, C broadcast", bcast_nd(), {Domain::Real},
                 [](Tape<double>& t, Vars x) {
                     const Shape o = broadcast_shape("where", x[0].shape(), x[1].shape());
                     auto c = t.constant(pattern_mask(o, 3, 1), "C");
                     return where(c, x[0], x[1]);
                 }});
    v.push_back({"masked_fill_mask", "masked_fill with a 0/1 tensor mask broadcast along the leading axes", one_nd(1, 4),
                 {Domain::Real}, [](Tape<double>& t, Vars x) {
                     const Shape s = x[0].shape();
                     auto m = t.constant(pattern_mask(Shape{s[s.rank() - 1]}, 2, 0), "M");
                     return masked_fill(x[0], m, 0.5);
                 }});
    v.push_back({"masked_fill_mask", "masked_fill where a 0/1 tensor is 0 (attention's convention)", one_nd(0, 3),
                 {Domain::Real}, [](Tape<double>&, Vars x) {
                     const MaskTensor m = detail::mask_of("masked_fill", "mask", pattern_mask(x[0].shape(), 3, 2), true);
                     return apply(MaskedFillMask{Saved<bool>::of(m), -1.5}, x[0]);
                 }});
    v.push_back({"causal_fill", "causal_fill with a finite value, rank 2–4",
                 [](std::mt19937_64& r) {
                     auto d = random_dims(r, 0, 2);
                     d.push_back(dim(r, 1, 4));
                     d.push_back(dim(r, 1, 4));
                     return std::vector<Shape>{Shape::from_range(d.begin(), d.end())};
                 },
                 {Domain::Real}, [](Tape<double>&, Vars x) { return causal_fill(x[0], 0.5); }});
    v.push_back({"causal_fill", "softmax of causal_fill(−∞) (the causal attention weights)",
                 [](std::mt19937_64& r) { return std::vector<Shape>{{dim(r, 1, 2), dim(r, 1, 4), dim(r, 1, 4)}}; },
                 {Domain::Real}, [](Tape<double>&, Vars x) { return softmax(causal_fill(x[0])); }});
    v.push_back({"scaled_dot_product_attention", "causal self-attention (B, H, T, D)", qkv_shapes(false),
                 {Domain::Real}, [](Tape<double>&, Vars x) {
                     return scaled_dot_product_attention(x[0], x[1], x[2], true);
                 }});
    v.push_back({"scaled_dot_product_attention", "cross-attention with a boolean attend mask (T, S)",
                 qkv_shapes(true), {Domain::Real}, [](Tape<double>& t, Vars x) {
                     const std::size_t tq = x[0].shape()[2], s = x[1].shape()[2];
                     Tensor<double> m(Shape{tq, s});
                     for (std::size_t i = 0; i < tq; ++i)
                         for (std::size_t j = 0; j < s; ++j) m[i * s + j] = (j == i % s || (i + j) % 2 == 0) ? 1 : 0;
                     return scaled_dot_product_attention(x[0], x[1], x[2], t.constant(m, "M"));
                 }});
    return v;
}
// ---- end gpt ----
// ---- ndio: affine at any rank ----
// affine(X, W, b) with X of rank 1 to 5: (…, k)·(k×n) + b, one GEMM over the flattened leading
// axes; the bias as a (1×n) row or an (n) vector.
inline std::vector<OpCase> ndio() {
    std::vector<OpCase> v;
    static constexpr std::string_view labels[5][2] = {
        {"affine X·W + b, X rank 1 (k), b (1×n)", "affine X·W + b, X rank 1 (k), b (n)"},
        {"affine X·W + b, X rank 2, b (1×n) [ndio]", "affine X·W + b, X rank 2, b (n)"},
        {"affine X·W + b, X rank 3 (…, k), b (1×n)", "affine X·W + b, X rank 3 (…, k), b (n)"},
        {"affine X·W + b, X rank 4 (…, k), b (1×n)", "affine X·W + b, X rank 4 (…, k), b (n)"},
        {"affine X·W + b, X rank 5 (…, k), b (1×n)", "affine X·W + b, X rank 5 (…, k), b (n)"}};
    for (std::size_t rank = 1; rank <= 5; ++rank)
        for (bool vector_bias : {false, true})
            v.push_back({"affine", labels[rank - 1][vector_bias ? 1 : 0],
                         [rank, vector_bias](std::mt19937_64& r) {
                             std::vector<std::size_t> d;
                             for (std::size_t i = 0; i + 1 < rank; ++i) d.push_back(dim(r, 1, 3));
                             const std::size_t k = dim(r, 1, 4), n = dim(r, 1, 4);
                             d.push_back(k);
                             const Shape b = vector_bias ? Shape{n} : Shape{1, n};
                             return std::vector<Shape>{Shape::from_range(d.begin(), d.end()), {k, n}, b};
                         },
                         {Domain::Real}, [](Tape<double>&, Vars x) { return affine(x[0], x[1], x[2]); }});
    return v;
}
// ---- end ndio ----

// ---- ndint: index (int64) and mask (bool) operands: gather / scatter_add, index_select / index_add,
// where / masked_fill with a mask, tril / triu, int64 cross-entropy and embedding ----
// Index and mask data are made from the inputs' shapes (deterministic), kept by the ops in the tape.
inline IndexTensor index_pattern(const Shape& s, std::size_t extent) {
    IndexTensor t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<std::int64_t>((3 * i + 1) % extent);
    return t;
}
inline MaskTensor mask_pattern(const Shape& s, std::size_t period, std::size_t phase) {
    MaskTensor m(s);
    for (std::size_t i = 0; i < m.size(); ++i) m[i] = (i % period) == phase;
    return m;
}
// The axis a row indexes along (varies with the drawn shape), and gather's index shape for x:
// extent 1–3 along the axis, one less along the last other axis (when above 1).
inline std::size_t index_axis(const Shape& x) { return x.numel() % x.rank(); }
inline Shape gather_index_shape(const Shape& x) {
    const std::size_t a = index_axis(x);
    Shape s = x.with(a, x.numel() % 3 + 1);
    for (std::size_t k = x.rank(); k-- > 0;)
        if (k != a) {
            if (s[k] > 1) s = s.with(k, s[k] - 1);
            break;
        }
    return s;
}
inline ShapeGen scatter_shapes() {
    return [](std::mt19937_64& r) {
        const auto d = random_dims(r, 1, 4);
        const Shape x = Shape::from_range(d.begin(), d.end());
        return std::vector<Shape>{x, gather_index_shape(x)};
    };
}
inline ShapeGen index_add_shapes() {
    return [](std::mt19937_64& r) {
        const auto d = random_dims(r, 1, 4);
        const Shape x = Shape::from_range(d.begin(), d.end());
        return std::vector<Shape>{x, x.with(index_axis(x), 4)};
    };
}
inline std::vector<OpCase> ndint() {
    std::vector<OpCase> v;
    v.push_back({"gather", "gather along a drawn axis, ranks 1–4, repeated indices", one_nd(1, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) {
                     const Shape s = x[0].shape(), is = gather_index_shape(s);
                     return tanh(gather(x[0], static_cast<std::ptrdiff_t>(index_axis(s)), index_pattern(is, s[index_axis(s)])));
                 }});
    v.push_back({"scatter_add", "scatter_add of a source into x along a drawn axis", scatter_shapes(), {Domain::Real},
                 [](Tape<double>&, Vars x) {
                     const Shape s = x[0].shape();
                     const auto a = index_axis(s);
                     return tanh(scatter_add(x[0], static_cast<std::ptrdiff_t>(a), index_pattern(x[1].shape(), s[a]), x[1]));
                 }});
    v.push_back({"index_select", "index_select of 4 entries (repeats) along a drawn axis", one_nd(1, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) {
                     const Shape s = x[0].shape();
                     const auto a = index_axis(s);
                     return tanh(index_select(x[0], static_cast<std::ptrdiff_t>(a), index_pattern(Shape{4}, s[a])));
                 }});
    v.push_back({"index_add", "index_add of 4 slices (repeats) along a drawn axis", index_add_shapes(), {Domain::Real},
                 [](Tape<double>&, Vars x) {
                     const Shape s = x[0].shape();
                     const auto a = index_axis(s);
                     return tanh(index_add(x[0], static_cast<std::ptrdiff_t>(a), index_pattern(Shape{4}, s[a]), x[1]));
                 }});
    v.push_back({"index_select", "embedding with int64 indices and padding_idx 0 (the padding row zeroed)",
                 [](std::mt19937_64& r) { return std::vector<Shape>{{dim(r, 2, 4), dim(r, 1, 3)}}; }, {Domain::Real},
                 [](Tape<double>&, Vars x) {
                     const IndexTensor idx = index_pattern(Shape{2, 3}, x[0].shape()[0]);
                     return tanh(embedding(idx, masked_fill(x[0], mask_pattern(Shape{x[0].shape()[0], 1}, 1000, 1), 0.0), 1));
                 }});
    v.push_back({"where_mask", "where(bool C, A, B) with A, B, C broadcast", bcast_nd(), {Domain::Real},
                 [](Tape<double>&, Vars x) {
                     const Shape o = broadcast_shape("where", x[0].shape(), x[1].shape());
                     return where(mask_pattern(o, 3, 1), x[0], x[1]);
                 }});
    v.push_back({"masked_fill_mask", "masked_fill with a bool mask broadcast along the leading axes", one_nd(1, 4),
                 {Domain::Real}, [](Tape<double>&, Vars x) {
                     const Shape s = x[0].shape();
                     return tanh(masked_fill(x[0], mask_pattern(Shape{s[s.rank() - 1]}, 2, 0), 0.5));
                 }});
    v.push_back({"mask_keep", "mask_keep stretching its input to the mask's shape", one_nd(0, 3), {Domain::Real},
                 [](Tape<double>&, Vars x) {
                     const MaskTensor m = mask_pattern(stretched_pattern(x[0].shape()), 3, 0);
                     return tanh(apply(MaskKeep{Saved<bool>::of(m), false}, x[0]));
                 }});
    v.push_back({"tril", "tril with diagonal 0 and −1, rank 2–4", one_nd(2, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) { return tanh(tril(x[0])) + tril(x[0], -1); }});
    v.push_back({"triu", "triu with diagonal 1, rank 2–4", one_nd(2, 4), {Domain::Real},
                 [](Tape<double>&, Vars x) { return tanh(triu(x[0], 1)); }});
    v.push_back({"cross_entropy_labels", "cross-entropy of (N, C) logits, int64 labels, mean, ignore_index 0",
                 [](std::mt19937_64& r) { return std::vector<Shape>{{dim(r, 2, 4), dim(r, 2, 4)}}; }, {Domain::Real},
                 [](Tape<double>&, Vars x) {
                     const Shape s = x[0].shape();
                     return softmax_cross_entropy(x[0], index_pattern(Shape{s[0]}, s[1]), CrossEntropyOptions{0, Reduction::mean});
                 }});
    v.push_back({"cross_entropy_labels", "cross-entropy of (N, C, d) logits, int64 labels, none",
                 [](std::mt19937_64& r) { return std::vector<Shape>{{dim(r, 1, 3), dim(r, 2, 4), dim(r, 1, 3)}}; },
                 {Domain::Real}, [](Tape<double>&, Vars x) {
                     const Shape s = x[0].shape();
                     auto l = softmax_cross_entropy(x[0], index_pattern(Shape{s[0], s[2]}, s[1]),
                                                    CrossEntropyOptions{-100, Reduction::none});
                     return l * l;
                 }});
    v.push_back({"label_weight", "label weights (ignore_index 0, sum) on a labels-shaped adjoint", one_nd(1, 3),
                 {Domain::Real}, [](Tape<double>&, Vars x) {
                     const IndexTensor l = index_pattern(x[0].shape(), 4);
                     return tanh(apply(LabelWeight{Saved<std::int64_t>::of(l), {0, Reduction::sum}}, x[0]));
                 }});
    v.push_back({"one_hot_labels", "one-hot of int64 labels (constant in z) times z",
                 [](std::mt19937_64& r) { return std::vector<Shape>{{dim(r, 1, 3), dim(r, 2, 4)}}; }, {Domain::Real},
                 [](Tape<double>&, Vars x) {
                     const Shape s = x[0].shape();
                     const IndexTensor l = index_pattern(Shape{s[0]}, s[1]);
                     return tanh(x[0]) * apply(OneHotLabels{Saved<std::int64_t>::of(l), -100}, x[0]);
                 }});
    return v;
}
// ---- end ndint ----

// ---- gpttrain: softmax_cross_entropy with weight, label_smoothing, class_axis ----
inline Tensor<double> ce_labels(const Shape& z, std::ptrdiff_t axis, bool ignore) {
    const std::size_t a = z.rank() <= 1 ? 0 : static_cast<std::size_t>(axis < 0 ? axis + static_cast<std::ptrdiff_t>(z.rank()) : axis);
    const std::size_t c = z[a];
    std::vector<std::size_t> d;
    for (std::size_t k = 0; k < z.rank(); ++k)
        if (k != a) d.push_back(z[k]);
    Tensor<double> l(Shape::from_range(d.begin(), d.end()));
    for (std::size_t p = 0; p < l.size(); ++p)
        l[p] = ignore && p % 4 == 2 ? -100.0 : static_cast<double>((3 * p + 1) % c);
    return l;
}
inline Tensor<double> ce_class_weights(const Shape& z, std::ptrdiff_t axis) {
    const std::size_t a = z.rank() <= 1 ? 0 : static_cast<std::size_t>(axis < 0 ? axis + static_cast<std::ptrdiff_t>(z.rank()) : axis);
    Tensor<double> w(Shape{z[a]});
    for (std::size_t c = 0; c < w.size(); ++c) w[c] = 0.5 + 0.3 * static_cast<double>(c);
    return w;
}
inline std::vector<OpCase> gpttrain() {
    std::vector<OpCase> v;
    for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none})
        v.push_back({"softmax_cross_entropy_weighted",
                     red == Reduction::mean ? "weighted cross-entropy (N, C, d…), smoothing 0.1, ignore_index, mean (ranks 1–5)"
                     : red == Reduction::sum ? "weighted cross-entropy (N, C, d…), smoothing 0.1, ignore_index, sum (ranks 1–5)"
                                             : "weighted cross-entropy (N, C, d…), smoothing 0.1, ignore_index, none (ranks 1–5)",
                     one_nd(1, 5), {Domain::Real}, [red](Tape<double>& t, Vars x) {
                         const Shape s = x[0].shape();
                         return softmax_cross_entropy(x[0], t.constant(ce_labels(s, 1, true), "labels"),
                                                      t.constant(ce_class_weights(s, 1), "weight"),
                                                      {.reduction = red, .label_smoothing = 0.1});
                     }});
    v.push_back({"softmax_cross_entropy_weighted", "weighted cross-entropy (…, C), class_axis −1, mean (ranks 2–4)",
                 one_nd(2, 4), {Domain::Real}, [](Tape<double>& t, Vars x) {
                     const Shape s = x[0].shape();
                     return softmax_cross_entropy(x[0], t.constant(ce_labels(s, -1, false), "labels"),
                                                  t.constant(ce_class_weights(s, -1), "weight"), {.class_axis = -1});
                 }});
    v.push_back({"softmax_cross_entropy_nd", "cross-entropy (N, C, d…), label_smoothing 0.2, ignore_index, mean (ranks 1–5)",
                 one_nd(1, 5), {Domain::Real}, [](Tape<double>& t, Vars x) {
                     return softmax_cross_entropy(x[0], t.constant(ce_labels(x[0].shape(), 1, true), "labels"),
                                                  {.label_smoothing = 0.2});
                 }});
    v.push_back({"softmax_cross_entropy_nd", "cross-entropy (…, C), class_axis −1, smoothing 0.1, none (ranks 2–4)",
                 one_nd(2, 4), {Domain::Real}, [](Tape<double>& t, Vars x) {
                     return softmax_cross_entropy(x[0], t.constant(ce_labels(x[0].shape(), -1, true), "labels"),
                                                  {.reduction = Reduction::none, .label_smoothing = 0.1, .class_axis = -1});
                 }});
    return v;
}
// ---- end gpttrain ----

// ---- conv: conv2d_bias (conv2d with its bias in one kernel; issue 12's speed work) ----
inline std::vector<OpCase> conv_bias() {
    std::vector<OpCase> v;
    const Conv2dParams p21{{2, 1}, {1, 0}, {1, 2}, 1};
    v.push_back({"conv2d_bias", "conv2d_bias (the op) 3×2, stride 2×1, padding 1×0, dilation 1×2",
                 conv_shapes(p21, 3, 2, 2, true), {Domain::Real},
                 [p21](Tape<double>&, Vars x) { return apply(Conv2dBias{p21}, x[0], x[1], x[2]); }});
    const Conv2dParams pg{{1, 1}, {0, 0}, {1, 1}, 2};
    v.push_back({"conv2d_bias", "conv2d_bias 1×1 pointwise, groups 2, then square", conv_shapes(pg, 1, 1, 2, true),
                 {Domain::Real}, [pg](Tape<double>&, Vars x) { return square(apply(Conv2dBias{pg}, x[0], x[1], x[2])); }});
    return v;
}
// ---- end conv ----

// ---- nd11: begin (int64 cross-entropy with smoothing / weight; scatter_add from a larger source) ----
// gpttrain's labels as int64.
inline IndexTensor ce_index_labels(const Shape& z, std::ptrdiff_t axis, bool ignore) {
    const Tensor<double> l = ce_labels(z, axis, ignore);
    IndexTensor t(l.shape());
    for (std::size_t p = 0; p < l.size(); ++p) t[p] = static_cast<std::int64_t>(l[p]);
    return t;
}
// scatter_add's source larger than its index: x, and the index shape of scatter_shapes() grown by
// 1 along axis 0 and by 2 along the last axis (torch reads only the index-shaped corner).
inline Shape larger_source(const Shape& x) {
    const Shape is = gather_index_shape(x);
    const Shape s = is.with(0, is[0] + 1);
    return s.with(s.rank() - 1, s[s.rank() - 1] + 2);
}
inline std::vector<OpCase> nd11() {
    std::vector<OpCase> v;
    v.push_back({"scatter_add", "scatter_add from a source larger than the index (ranks 1–4)",
                 [](std::mt19937_64& r) {
                     const auto d = random_dims(r, 1, 4);
                     const Shape x = Shape::from_range(d.begin(), d.end());
                     return std::vector<Shape>{x, larger_source(x)};
                 },
                 {Domain::Real}, [](Tape<double>&, Vars x) {
                     const Shape s = x[0].shape();
                     const auto a = index_axis(s);
                     return tanh(scatter_add(x[0], static_cast<std::ptrdiff_t>(a), index_pattern(gather_index_shape(s), s[a]), x[1]));
                 }});
    v.push_back({"gather", "gather zero-padded to a larger shape (scatter_add's VJP for a larger source)", one_nd(1, 4),
                 {Domain::Real}, [](Tape<double>&, Vars x) {
                     const Shape s = x[0].shape(), is = gather_index_shape(s);
                     const auto a = index_axis(s);
                     const IndexTensor i = index_pattern(is, s[a]);
                     return tanh(apply(Gather{a, Saved<std::int64_t>::of(i), larger_source(s)}, x[0]));
                 }});
    v.push_back({"cross_entropy_labels", "int64 cross-entropy (N, C, d…), smoothing 0.2, ignore_index, mean (ranks 1–5)",
                 one_nd(1, 5), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return softmax_cross_entropy(x[0], ce_index_labels(x[0].shape(), 1, true), {.label_smoothing = 0.2});
                 }});
    v.push_back({"cross_entropy_labels", "int64 cross-entropy (…, C), class_axis −1, smoothing 0.1, none (ranks 2–4)",
                 one_nd(2, 4), {Domain::Real}, [](Tape<double>&, Vars x) {
                     return softmax_cross_entropy(x[0], ce_index_labels(x[0].shape(), -1, true),
                                                  {.reduction = Reduction::none, .label_smoothing = 0.1, .class_axis = -1});
                 }});
    for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none})
        v.push_back({"cross_entropy_labels_weighted",
                     red == Reduction::mean ? "int64 weighted cross-entropy (N, C, d…), smoothing 0.1, ignore_index, mean (ranks 1–5)"
                     : red == Reduction::sum ? "int64 weighted cross-entropy (N, C, d…), smoothing 0.1, ignore_index, sum (ranks 1–5)"
                                             : "int64 weighted cross-entropy (N, C, d…), smoothing 0.1, ignore_index, none (ranks 1–5)",
                     one_nd(1, 5), {Domain::Real}, [red](Tape<double>& t, Vars x) {
                         const Shape s = x[0].shape();
                         return softmax_cross_entropy(x[0], ce_index_labels(s, 1, true),
                                                      t.constant(ce_class_weights(s, 1), "weight"),
                                                      {.reduction = red, .label_smoothing = 0.1});
                     }});
    v.push_back({"cross_entropy_labels_weighted", "int64 weighted cross-entropy (…, C), class_axis −1, mean (ranks 2–4)",
                 one_nd(2, 4), {Domain::Real}, [](Tape<double>& t, Vars x) {
                     const Shape s = x[0].shape();
                     return softmax_cross_entropy(x[0], ce_index_labels(s, -1, false),
                                                  t.constant(ce_class_weights(s, -1), "weight"), {.class_axis = -1});
                 }});
    // The composed losses at ranks 0–5 (softmax_cross_entropy_probs from rank 1; classes on axis
    // 1 from rank 3, as torch).
    const auto same_nd = [](std::size_t lo, std::size_t hi) -> ShapeGen {
        return [lo, hi](std::mt19937_64& r) {
            const Shape s = one_nd(lo, hi)(r)[0];
            return std::vector<Shape>{s, s};
        };
    };
    v.push_back({"sse_half", "sse_half at ranks 0–5", same_nd(0, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return sse_half(x[0], x[1]); }});
    v.push_back({"mse", "mse at ranks 0–5", same_nd(0, 5), {Domain::Real},
                 [](Tape<double>&, Vars x) { return mse(x[0], x[1]); }});
    v.push_back({"binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits at ranks 0–5", same_nd(0, 5),
                 {Domain::Real, Domain::Unit},
                 [](Tape<double>&, Vars x) { return binary_cross_entropy_with_logits(x[0], x[1]); }});
    v.push_back({"softmax_cross_entropy_probs", "softmax_cross_entropy_probs at ranks 1–5", same_nd(1, 5),
                 {Domain::Real, Domain::Unit},
                 [](Tape<double>&, Vars x) { return softmax_cross_entropy_probs(x[0], x[1]); }});
    return v;
}
// ---- nd11: end ----

}  // namespace cases

// Every row, in family order.
inline const std::vector<OpCase>& op_cases() {
    static const std::vector<OpCase> all = [] {
        std::vector<OpCase> v;
        for (auto family : {cases::elementwise, cases::elementwise_nd, cases::linalg, cases::engine, cases::math, cases::activations,
                            cases::structure, cases::losses, cases::views, cases::reduce_axes, cases::conv, cases::bmm, cases::gpt, cases::ndio, cases::ndint, cases::gpttrain, cases::conv_bias, cases::nd11 /* nd11 */}) {
            auto f = family();
            v.insert(v.end(), f.begin(), f.end());
        }
        return v;
    }();
    return all;
}

// Ops declared in the op headers that deliberately have no row (no VJP to check).
inline const std::vector<std::string_view>& ops_without_cases() {
    // detach and stop_gradient cut the gradient on purpose (finite differences see through them):
    // tests/test_toolbox.cpp checks them against their definition instead.
    // cross_entropy_weights and one_hot_axis are data ops on labels (inside the N-D
    // cross-entropy's VJP), as one_hot.
    static const std::vector<std::string_view> v{"one_hot", "detach", "stop_gradient", "cross_entropy_weights",
                                                 "one_hot_axis",
                                                 "cross_entropy_targets",  // gpttrain: data op of the weighted CE
                                                 "label_targets"};  // nd11: data op of the int64 weighted CE
    return v;
}

}  // namespace tapegrad::test
