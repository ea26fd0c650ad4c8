// Shared by the five seed examples and tests/test_seeds.cpp: random problems, plain-loop linear
// algebra for the documents' closed-form formulas (no engine involved), central finite
// differences, relative errors, the side-by-side table, and writing the graph as DOT/SVG.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/core/dot.hpp>
#include <tapegrad/ops/activations.hpp>
#include <tapegrad/ops/losses.hpp>
#include <tapegrad/ops/math.hpp>
#include <tapegrad/ops/reductions.hpp>
#include <tapegrad/ops/structure.hpp>
#include <tapegrad/tapegrad.hpp>

namespace seeds {

namespace tg = tapegrad;
using Mat = tg::Tensor<double>;

// ---- data --------------------------------------------------------------------------------------

// rows × cols, entries N(0, scale²).
inline Mat random_mat(std::size_t rows, std::size_t cols, std::mt19937_64& rng, double scale = 1.0) {
    std::normal_distribution<double> d(0.0, scale);
    Mat m(rows, cols);
    for (std::size_t i = 0; i < m.size(); ++i) m[i] = d(rng);
    return m;
}
// rows × cols, entries 0 or 1.
inline Mat random_bits(std::size_t rows, std::size_t cols, std::mt19937_64& rng) {
    std::bernoulli_distribution d(0.5);
    Mat m(rows, cols);
    for (std::size_t i = 0; i < m.size(); ++i) m[i] = d(rng) ? 1.0 : 0.0;
    return m;
}
// rows × cols, entries uniform in (lo, hi).
inline Mat random_uniform(std::size_t rows, std::size_t cols, std::mt19937_64& rng, double lo, double hi) {
    std::uniform_real_distribution<double> d(lo, hi);
    Mat m(rows, cols);
    for (std::size_t i = 0; i < m.size(); ++i) m[i] = d(rng);
    return m;
}

// ---- plain loops, for the closed forms ---------------------------------------------------------

inline double sigma(double z) { return z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z)); }
// σ′(z) = σ(z)σ(−z): the stable form (document 001, eq. 4).
inline double sigma_prime(double z) { return sigma(z) * sigma(-z); }

// C = A·B, three nested loops.
inline Mat mm(const Mat& a, const Mat& b) {
    if (a.cols() != b.rows()) tg::fail("mm: inner dimensions differ: {}·{}", a.shape(), b.shape());
    Mat c(a.rows(), b.cols());
    for (std::size_t i = 0; i < a.rows(); ++i)
        for (std::size_t k = 0; k < a.cols(); ++k)
            for (std::size_t j = 0; j < b.cols(); ++j) c(i, j) += a(i, k) * b(k, j);
    return c;
}
inline Mat tr(const Mat& a) {
    Mat t(a.cols(), a.rows());
    for (std::size_t i = 0; i < a.rows(); ++i)
        for (std::size_t j = 0; j < a.cols(); ++j) t(j, i) = a(i, j);
    return t;
}
template <class F>
Mat map(const Mat& a, F f) {
    Mat r(a.rows(), a.cols());
    for (std::size_t i = 0; i < a.size(); ++i) r[i] = f(a[i]);
    return r;
}
template <class F>
Mat zip(const Mat& a, const Mat& b, F f) {
    if (a.shape() != b.shape()) tg::fail("zip: shapes differ: {} and {}", a.shape(), b.shape());
    Mat r(a.rows(), a.cols());
    for (std::size_t i = 0; i < a.size(); ++i) r[i] = f(a[i], b[i]);
    return r;
}
// A ⊙ B
inline Mat had(const Mat& a, const Mat& b) {
    return zip(a, b, [](double x, double y) { return x * y; });
}
inline Mat minus(const Mat& a, const Mat& b) {
    return zip(a, b, [](double x, double y) { return x - y; });
}
// A − α·B
inline Mat axpy(const Mat& a, double alpha, const Mat& b) {
    return zip(a, b, [alpha](double x, double y) { return x - alpha * y; });
}
// diag(v) for a column v.
inline Mat diag(const Mat& v) {
    Mat d(v.size(), v.size());
    for (std::size_t i = 0; i < v.size(); ++i) d(i, i) = v[i];
    return d;
}
// Each column of a with m×1 column v added.
inline Mat add_col(const Mat& a, const Mat& v) {
    Mat r = a;
    for (std::size_t i = 0; i < a.rows(); ++i)
        for (std::size_t j = 0; j < a.cols(); ++j) r(i, j) += v[i];
    return r;
}
// [1, X]: a column of ones prepended.
inline Mat with_ones(const Mat& x) {
    Mat r(x.rows(), x.cols() + 1);
    for (std::size_t i = 0; i < x.rows(); ++i) {
        r(i, 0) = 1;
        for (std::size_t j = 0; j < x.cols(); ++j) r(i, j + 1) = x(i, j);
    }
    return r;
}

// ---- comparisons -------------------------------------------------------------------------------

// max|a − b| / max(max|a|, max|b|): the normwise relative error (0 when both are 0).
// For the documents whose networks keep weights W and biases b apart (002–004): J at `params`
// on a fresh tape (for finite differences), and the tape's gradients, weights first then biases.
// `build(tape, problem, params)` returns a net with members W, b (Vars) and J.
template <class Problem, class Build>
double tape_cost(const Problem& p, const std::vector<Mat>& params, Build build) {
    tg::Tape<double> tape;
    return build(tape, p, params).J.item();
}
template <class Problem, class Build>
std::vector<Mat> tape_gradients_wb(const Problem& p, Build build) {
    tg::Tape<double> tape;
    auto n = build(tape, p, p.params());
    tape.backward(n.J);
    std::vector<Mat> g;
    for (auto& w : n.W) g.push_back(tape.grad(w));
    for (auto& b : n.b) g.push_back(tape.grad(b));
    return g;
}

inline double rel_err(const Mat& a, const Mat& b) {
    if (a.shape() != b.shape()) tg::fail("rel_err: shapes differ: {} and {}", a.shape(), b.shape());
    double d = 0, s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        d = std::max(d, std::abs(a[i] - b[i]));
        s = std::max({s, std::abs(a[i]), std::abs(b[i])});
    }
    return s == 0 ? d : d / s;
}

// A scalar cost as a function of the parameter tensors.
using CostFn = std::function<double(const std::vector<Mat>&)>;

// ∂f/∂p[k] by central differences, step h·max(1, |x|) per element.
inline Mat central_diff(const CostFn& f, std::vector<Mat> p, std::size_t k, double h = 1e-6) {
    Mat g(p[k].rows(), p[k].cols());
    for (std::size_t i = 0; i < g.size(); ++i) {
        const double x = p[k][i];
        const double step = h * std::max(1.0, std::abs(x));
        p[k][i] = x + step;
        const double up = f(p);
        p[k][i] = x - step;
        const double down = f(p);
        p[k][i] = x;
        g[i] = (up - down) / (2 * step);
    }
    return g;
}

// One parameter's three gradients.
struct Gradients {
    std::string name;
    Mat tape, closed, fd;
    double tape_vs_closed() const { return rel_err(tape, closed); }
    double tape_vs_fd() const { return rel_err(tape, fd); }
    double closed_vs_fd() const { return rel_err(closed, fd); }
};

// Prints, per parameter, the first entries of the three gradients side by side and the largest
// relative error between each pair.
inline void print_gradients(const std::vector<Gradients>& gs, std::size_t max_entries = 4) {
    fmt::print("{:<10} {:>9}  {:>17} {:>17} {:>17}\n", "parameter", "entry", "tape", "closed form", "finite diff.");
    for (const Gradients& g : gs) {
        const std::size_t n = std::min(max_entries, g.tape.size());
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t r = i / g.tape.cols(), c = i % g.tape.cols();
            fmt::print("{:<10} {:>9}  {:>17.10e} {:>17.10e} {:>17.10e}\n", i == 0 ? g.name : "",
                       fmt::format("({},{})", r, c), g.tape[i], g.closed[i], g.fd[i]);
        }
        fmt::print("{:<10} {:>9}  tape↔closed {:.2e}   tape↔fd {:.2e}   closed↔fd {:.2e}\n", "",
                   fmt::format("{}", g.tape.shape()), g.tape_vs_closed(), g.tape_vs_fd(), g.closed_vs_fd());
    }
}

inline double worst(const std::vector<Gradients>& gs, double (Gradients::*f)() const) {
    double m = 0;
    for (const Gradients& g : gs) m = std::max(m, (g.*f)());
    return m;
}

// ---- command line and pictures -----------------------------------------------------------------

struct Args {
    std::filesystem::path out = ".";  // --out DIR: where the .dot (and .svg) files go
};

inline Args parse_args(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        std::string_view s = argv[i];
        if (s == "--out" && i + 1 < argc) {
            a.out = argv[++i];
        } else if (s.starts_with("--out=")) {
            a.out = std::string(s.substr(6));
        } else {
            fmt::print(stderr, "usage: {} [--out DIR]\n", argv[0]);
            std::exit(2);
        }
    }
    return a;
}

// Writes DIR/stem.dot, and DIR/stem.svg when Graphviz's `dot` is on the PATH.
template <class T>
void write_graph(const tg::Tape<T>& tape, const Args& args, const std::string& stem, std::string_view title) {
    std::filesystem::create_directories(args.out);
    const std::filesystem::path dot = args.out / (stem + ".dot");
    const std::filesystem::path svg = args.out / (stem + ".svg");
    {
        std::ofstream f(dot);
        f << tg::to_dot(tape, {.values = false, .adjoints = false, .title = title});
        if (!f) tg::fail("write_graph: cannot write {}", dot.string());
    }
    fmt::print("graph written to {}", dot.string());
    if (std::system("command -v dot > /dev/null 2>&1") == 0) {
        const std::string cmd = fmt::format("dot -Tsvg '{}' -o '{}'", dot.string(), svg.string());
        if (std::system(cmd.c_str()) == 0) fmt::print(" and {}", svg.string());
    }
    fmt::print("\n");
}

}  // namespace seeds
