// Random expression graphs, gradient-checked: a seeded generator draws programs over the whole
// op library — random ops, random shapes with broadcasting, fan-out (a node used several times),
// shared leaves, matmul with transpose flags, slices and concatenations, reductions and losses —
// and tg::gradcheck compares the tape with finite differences on each.
//
// A failure prints the seed, the program and the graph in DOT; replay one seed with
//   TAPEGRAD_GRAPH_SEED=<seed> ./test_random_graphs
// (the count of graphs per run: TAPEGRAD_GRAPHS, default 1000).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <tapegrad/core/dot.hpp>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
using tg::Shape;
using tg::Tensor;
using tg::Var;

namespace {

// One instruction: node[out] = op(node[a], node[b]) with parameters. Leaves come first.
enum class Op {
    tanh, sigmoid, softplus, square, exp, log_pos, sqrt_pos, scale, shift, neg, transpose, relu, leaky_relu,
    abs, softmax, log_softmax, sigmoid_grad, sum, mean, sum_rows, sum_cols, slice_rows, slice_cols,
    add, sub, mul, div_pos, matmul, concat_cols, concat_rows, mse, bce_logits, sce_probs, sce_labels, sse_half,
    pow_pos, log_sigmoid, tanh_grad,
    // N-D (NdGenerator only): views, reductions over axes, batched matmul, concat/stack
    nd_permute, nd_reshape, nd_unsqueeze, nd_squeeze, nd_expand, nd_slice, nd_select, nd_sum_axes, nd_mean_axes,
    nd_amax, nd_logsumexp, nd_softmax_axis, nd_bmm, nd_concat, nd_stack,
};

const char* op_name(Op o) {
    static const char* k[] = {"tanh", "sigmoid", "softplus", "square", "exp", "log(x+0.5)", "sqrt(x+0.5)",
                              "scale", "shift", "neg", "transpose", "relu", "leaky_relu", "abs", "softmax",
                              "log_softmax", "sigmoid_grad", "sum", "mean", "sum_rows", "sum_cols", "slice_rows",
                              "slice_cols", "add", "sub", "mul", "div(a, sigmoid(b)+0.5)", "matmul", "concat_cols",
                              "concat_rows", "mse", "bce_with_logits", "softmax_ce_probs", "softmax_ce_labels",
                              "sse_half", "pow(x+0.5, p)", "log_sigmoid", "tanh_grad", "permute", "reshape",
                              "unsqueeze", "squeeze", "expand", "slice_axis", "select", "sum_axes", "mean_axes",
                              "amax", "logsumexp", "softmax_axis", "bmm", "concat", "stack"};
    return k[static_cast<int>(o)];
}

struct Instr {
    Op op;
    int a = -1, b = -1;
    double c = 0;             // scale/shift constant, leaky slope
    std::size_t i0 = 0, i1 = 0;  // slice bounds
    bool ta = false, tb = false;
    std::vector<double> labels{};  // sce_labels: class indices
    std::vector<std::ptrdiff_t> axes{};  // N-D: permutation, reduced axes, or {axis} (+ step for slices)
    Shape to{};                         // N-D: reshape / expand target
    bool keep = false;                  // N-D: keepdim
};

struct NodeInfo {
    Shape shape;
    double mag;     // rough bound on |value|
    bool nonneg;    // value ≥ 0
};

struct Program {
    std::uint64_t seed = 0;
    std::vector<Tensor<double>> leaves;
    std::vector<Instr> code;
    std::vector<NodeInfo> info;  // leaves, then one per instruction

    std::string listing() const {
        std::string s;
        for (std::size_t i = 0; i < leaves.size(); ++i)
            s += fmt::format("  v{} = leaf {}\n", i, leaves[i].shape());
        for (std::size_t k = 0; k < code.size(); ++k) {
            const Instr& in = code[k];
            const std::size_t id = leaves.size() + k;
            s += fmt::format("  v{} = {}(v{}", id, op_name(in.op), in.a);
            if (in.b >= 0) s += fmt::format(", v{}", in.b);
            if (in.op == Op::scale || in.op == Op::shift || in.op == Op::leaky_relu || in.op == Op::pow_pos)
                s += fmt::format(", {:g}", in.c);
            if (in.op == Op::slice_rows || in.op == Op::slice_cols) s += fmt::format(", {}, {}", in.i0, in.i1);
            if (in.op == Op::matmul || in.op == Op::nd_bmm) s += fmt::format(", ta={}, tb={}", in.ta, in.tb);
            if (!in.axes.empty()) s += fmt::format(", axes=[{}]", fmt::join(in.axes, ","));
            if (in.op == Op::nd_reshape || in.op == Op::nd_expand) s += fmt::format(", to={}", in.to);
            if (in.op == Op::nd_slice) s += fmt::format(", {}:{}", in.i0, in.i1);
            if (in.op == Op::nd_select) s += fmt::format(", index {}", in.i0);
            if (in.keep) s += ", keepdim";
            s += fmt::format(")  {}\n", info[id].shape);
        }
        return s;
    }
};

bool broadcastable(Shape a, Shape b) {
    return (a.rows() == b.rows() || a.rows() == 1 || b.rows() == 1) && (a.cols() == b.cols() || a.cols() == 1 || b.cols() == 1);
}
Shape broadcast(Shape a, Shape b) { return {std::max(a.rows(), b.rows()), std::max(a.cols(), b.cols())}; }

class Generator {
public:
    explicit Generator(std::uint64_t seed) : rng_(seed) { p_.seed = seed; }

    Program make() {
        const std::size_t m = pick(1, 4), n = pick(1, 4);
        const Shape kinds[] = {{m, n}, {m, n}, {1, n}, {m, 1}, {1, 1}, {n, m}};
        const std::size_t leaves = pick(2, 4);
        for (std::size_t i = 0; i < leaves; ++i) {
            Shape s = kinds[pick(0, 5)];
            Tensor<double> t(s);
            std::uniform_real_distribution<double> u(-1.5, 1.5);
            for (std::size_t k = 0; k < t.size(); ++k) t[k] = u(rng_);
            p_.leaves.push_back(std::move(t));
            p_.info.push_back({s, 1.5, false});
        }
        const std::size_t ops = pick(4, 14);
        for (std::size_t k = 0; k < ops; ++k) step();
        return std::move(p_);
    }

private:
    std::size_t pick(std::size_t lo, std::size_t hi) { return std::uniform_int_distribution<std::size_t>(lo, hi)(rng_); }
    double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }
    // Prefers recent nodes (deep graphs) but reaches back to any (fan-out, shared leaves).
    int node() {
        const std::size_t n = p_.info.size();
        if (pick(0, 2) == 0) return static_cast<int>(pick(0, n - 1));
        return static_cast<int>(n - 1 - std::min(n - 1, pick(0, 2)));
    }
    int emit(Instr in, NodeInfo out) {
        p_.code.push_back(std::move(in));
        p_.info.push_back(out);
        return static_cast<int>(p_.info.size() - 1);
    }
    // The operand `i`, squashed by tanh first when its values may be large (keeps every value
    // and difference quotient well conditioned).
    int tame(int i) {
        if (p_.info[i].mag <= 4) return i;
        return emit({Op::tanh, i}, {p_.info[i].shape, 1, false});
    }
    const NodeInfo& at(int i) const { return p_.info[i]; }

    void step() {
        const int a = tame(node());
        const Shape s = at(a).shape;
        const double ma = at(a).mag;
        switch (pick(0, 37)) {
            case 0: emit({Op::tanh, a}, {s, 1, false}); return;
            case 1: emit({Op::sigmoid, a}, {s, 1, true}); return;
            case 2: emit({Op::softplus, a}, {s, ma + 1, true}); return;
            case 3: emit({Op::square, a}, {s, ma * ma, true}); return;
            case 4: emit({Op::exp, a}, {s, std::exp(ma), true}); return;
            case 5: emit({Op::log_pos, a}, {s, std::log(ma + 3) + 1, false}); return;
            case 6: emit({Op::sqrt_pos, a}, {s, std::sqrt(ma + 3), true}); return;
            case 7: {
                Instr in{Op::scale, a};
                in.c = uniform(-2, 2);
                emit(in, {s, std::abs(in.c) * ma, false});
                return;
            }
            case 8: {
                Instr in{Op::shift, a};
                in.c = uniform(-1, 1);
                emit(in, {s, ma + 1, false});
                return;
            }
            case 9: emit({Op::neg, a}, {s, ma, false}); return;
            case 10: emit({Op::transpose, a}, {{s.cols(), s.rows()}, ma, at(a).nonneg}); return;
            case 11: emit({Op::relu, a}, {s, ma, true}); return;
            case 12: {
                Instr in{Op::leaky_relu, a};
                in.c = uniform(0.01, 0.3);
                emit(in, {s, ma, false});
                return;
            }
            case 13: emit({Op::abs, a}, {s, ma, true}); return;
            case 14: emit({Op::softmax, a}, {s, 1, true}); return;
            case 15: emit({Op::log_softmax, a}, {s, 2 * ma + 2, false}); return;
            case 16: emit({Op::sigmoid_grad, a}, {s, 0.25, true}); return;
            case 17: emit({Op::sum, a}, {{1, 1}, ma * double(s.size()), at(a).nonneg}); return;
            case 18: emit({Op::mean, a}, {{1, 1}, ma, at(a).nonneg}); return;
            case 19: emit({Op::sum_rows, a}, {{1, s.cols()}, ma * double(s.rows()), at(a).nonneg}); return;
            case 20: emit({Op::sum_cols, a}, {{s.rows(), 1}, ma * double(s.cols()), at(a).nonneg}); return;
            case 21:
            case 22: {
                const bool rows = pick(0, 1) == 0;
                const std::size_t len = rows ? s.rows() : s.cols();
                if (len < 2) return step();
                Instr in{rows ? Op::slice_rows : Op::slice_cols, a};
                in.i0 = pick(0, len - 1);
                in.i1 = pick(in.i0 + 1, len);
                const Shape o = rows ? Shape{in.i1 - in.i0, s.cols()} : Shape{s.rows(), in.i1 - in.i0};
                emit(in, {o, ma, at(a).nonneg});
                return;
            }
            case 23: {
                Instr in{Op::pow_pos, a};
                in.c = uniform(-1.5, 2.5);
                emit(in, {s, std::pow(ma + 3, std::abs(in.c)) + 2, true});
                return;
            }
            case 24: emit({Op::log_sigmoid, a}, {s, ma + 1, false}); return;
            case 25: emit({Op::tanh_grad, a}, {s, 1, true}); return;
            default: break;
        }
        binary(a);
    }

    // A second operand compatible with `a` for op `o`, or -1.
    int partner(int a, bool (*ok)(Shape, Shape)) {
        std::vector<int> c;
        for (int i = 0; i < static_cast<int>(p_.info.size()); ++i)
            if (ok(at(a).shape, at(i).shape)) c.push_back(i);
        if (c.empty()) return -1;
        return tame(c[pick(0, c.size() - 1)]);
    }

    void binary(int a) {
        const Shape s = at(a).shape;
        const double ma = at(a).mag;
        switch (pick(0, 11)) {
            case 0:
            case 1:
            case 2:
            case 3: {  // add, sub, mul, div with broadcasting (either side)
                const int b = partner(a, broadcastable);
                const Shape o = broadcast(s, at(b).shape);
                const double mb = at(b).mag;
                static const Op k[] = {Op::add, Op::sub, Op::mul, Op::div_pos};
                const Op op = k[pick(0, 3)];
                const double mag = op == Op::add || op == Op::sub ? ma + mb : op == Op::mul ? ma * mb : 2 * ma;
                const bool nn = op == Op::mul ? at(a).nonneg && at(b).nonneg : op == Op::add && at(a).nonneg && at(b).nonneg;
                if (pick(0, 1)) emit({op, a, b}, {o, mag, nn});
                else emit({op, b, a}, {o, op == Op::div_pos ? 2 * mb : mag, nn});
                return;
            }
            case 4:
            case 5:
            case 6: {  // matmul with random transpose flags
                Instr in{Op::matmul, a};
                in.ta = pick(0, 1);
                in.tb = pick(0, 1);
                const std::size_t k = in.ta ? s.rows() : s.cols();
                std::vector<int> c;
                for (int i = 0; i < static_cast<int>(p_.info.size()); ++i) {
                    const Shape t = at(i).shape;
                    if ((in.tb ? t.cols() : t.rows()) == k) c.push_back(i);
                }
                if (c.empty()) return;
                in.b = tame(c[pick(0, c.size() - 1)]);
                const Shape t = at(in.b).shape;
                const Shape o{in.ta ? s.cols() : s.rows(), in.tb ? t.rows() : t.cols()};
                emit(in, {o, ma * at(in.b).mag * double(k), false});
                return;
            }
            case 7: {
                const bool cols = pick(0, 1) == 0;
                const int b = cols ? partner(a, [](Shape x, Shape y) { return x.rows() == y.rows(); })
                                   : partner(a, [](Shape x, Shape y) { return x.cols() == y.cols(); });
                const Shape t = at(b).shape;
                const Shape o = cols ? Shape{s.rows(), s.cols() + t.cols()} : Shape{s.rows() + t.rows(), s.cols()};
                emit({cols ? Op::concat_cols : Op::concat_rows, a, b},
                     {o, std::max(ma, at(b).mag), at(a).nonneg && at(b).nonneg});
                return;
            }
            case 8: {  // squared errors
                const int b = partner(a, [](Shape x, Shape y) { return x == y; });
                emit({pick(0, 1) ? Op::mse : Op::sse_half, a, b}, {{1, 1}, 4 * (ma + at(b).mag) * (ma + at(b).mag) * double(s.size()), true});
                return;
            }
            case 9: {  // binary cross-entropy from logits; targets squashed into (0, 1)
                const int y = partner(a, [](Shape x, Shape y) { return x == y; });
                const int t = emit({Op::sigmoid, y}, {s, 1, true});
                emit({Op::bce_logits, a, t}, {{1, 1}, ma + 1, true});
                return;
            }
            case 10: {  // softmax cross-entropy with probability targets (a softmax of a partner)
                const int y = partner(a, [](Shape x, Shape y) { return x == y; });
                const int t = emit({Op::softmax, y}, {s, 1, true});
                emit({Op::sce_probs, a, t}, {{1, 1}, 2 * ma + 2, true});
                return;
            }
            case 11: {  // softmax cross-entropy with integer labels (a constant)
                Instr in{Op::sce_labels, a};
                for (std::size_t r = 0; r < s.rows(); ++r) in.labels.push_back(double(pick(0, s.cols() - 1)));
                emit(in, {{1, 1}, 2 * ma + 2, true});
                return;
            }
        }
    }

    std::mt19937_64 rng_;
    Program p_;
};

// The N-D instructions (NdGenerator's), on Vars.
Var<double> eval_nd(const Instr& in, const Var<double>& a, const Var<double>& b) {
    const std::span<const std::ptrdiff_t> axes(in.axes);
    const Shape s = a.shape();
    switch (in.op) {
        case Op::nd_permute: return tg::apply(tg::Permute::of(axes, s.rank(), s), a);
        case Op::nd_reshape: return tg::reshape(a, in.to);
        case Op::nd_unsqueeze: return tg::unsqueeze(a, in.axes[0]);
        case Op::nd_squeeze: return tg::squeeze(a, in.axes[0]);
        case Op::nd_expand: return tg::expand(a, in.to);
        case Op::nd_slice: return tg::slice_axis(a, in.axes[0], in.i0, in.i1, static_cast<std::size_t>(in.axes[1]));
        case Op::nd_select: return tg::select(a, in.axes[0], in.i0);
        case Op::nd_sum_axes: return tg::apply(tg::SumAxes{tg::detail::axis_set("sum", axes, s, in.keep)}, a);
        case Op::nd_mean_axes: return tg::apply(tg::MeanAxes{tg::detail::axis_set("mean", axes, s, in.keep)}, a);
        case Op::nd_amax: return tg::apply(tg::Amax{tg::detail::axis_set("amax", axes, s, in.keep)}, a);
        case Op::nd_logsumexp: return tg::apply(tg::LogSumExp{tg::detail::axis_set("logsumexp", axes, s, in.keep)}, a);
        case Op::nd_softmax_axis: return tg::softmax(a, in.axes[0]);
        case Op::nd_bmm: return tg::matmul(a, b, in.ta, in.tb);
        case Op::nd_concat: return tg::concat({a, b}, in.axes[0]);
        case Op::nd_stack: return tg::stack({a, b}, in.axes[0]);
        default: break;
    }
    FAIL("not an N-D instruction: " << op_name(in.op));
    return a;
}

// One instruction on Vars.
Var<double> eval(const Instr& in, const Var<double>& a, const Var<double>& b, tg::Tape<double>& tape) {
    Var<double> r;
    switch (in.op) {
        case Op::tanh: r = tg::tanh(a); break;
        case Op::sigmoid: r = tg::sigmoid(a); break;
        case Op::softplus: r = tg::softplus(a); break;
        case Op::square: r = tg::square(a); break;
        case Op::exp: r = tg::exp(a); break;
        case Op::log_pos: r = tg::log(tg::softplus(a) + 0.5); break;
        case Op::sqrt_pos: r = tg::sqrt(tg::softplus(a) + 0.5); break;
        case Op::scale: r = tg::scale(a, in.c); break;
        case Op::shift: r = tg::shift(a, in.c); break;
        case Op::neg: r = -a; break;
        case Op::transpose: r = tg::transpose(a); break;
        case Op::relu: r = tg::relu(a); break;
        case Op::leaky_relu: r = tg::leaky_relu(a, in.c); break;
        case Op::abs: r = tg::abs(a); break;
        case Op::softmax: r = tg::softmax(a); break;
        case Op::log_softmax: r = tg::log_softmax(a); break;
        case Op::sigmoid_grad: r = tg::sigmoid_grad(a); break;
        case Op::pow_pos: r = tg::pow(tg::softplus(a) + 0.5, in.c); break;
        case Op::log_sigmoid: r = tg::log_sigmoid(a); break;
        case Op::tanh_grad: r = tg::tanh_grad(a); break;
        case Op::sum: r = tg::sum(a); break;
        case Op::mean: r = tg::mean(a); break;
        case Op::sum_rows: r = tg::sum_rows(a); break;
        case Op::sum_cols: r = tg::sum_cols(a); break;
        case Op::slice_rows: r = tg::slice_rows(a, in.i0, in.i1); break;
        case Op::slice_cols: r = tg::slice_cols(a, in.i0, in.i1); break;
        case Op::add: r = a + b; break;
        case Op::sub: r = a - b; break;
        case Op::mul: r = a * b; break;
        case Op::div_pos: r = a / (tg::sigmoid(b) + 0.5); break;
        case Op::matmul: r = tg::matmul(a, b, in.ta, in.tb); break;
        case Op::concat_cols: r = tg::concat_cols(a, b); break;
        case Op::concat_rows: r = tg::concat_rows(a, b); break;
        case Op::mse: r = tg::mse(a, b); break;
        case Op::sse_half: r = tg::sse_half(a, b); break;
        case Op::bce_logits: r = tg::binary_cross_entropy_with_logits(a, b); break;
        case Op::sce_probs: r = tg::softmax_cross_entropy_probs(a, b); break;
        case Op::sce_labels: {
            Tensor<double> l(in.labels.size(), 1);
            for (std::size_t i = 0; i < in.labels.size(); ++i) l[i] = in.labels[i];
            r = tg::softmax_cross_entropy(a, tape.constant(l));
            break;
        }
        default: r = eval_nd(in, a, b); break;
    }
    return r;
}

// Builds the program on a tape from its leaves; the output folds every unused node in, so
// that each branch contributes: out = last + Σ sum(sink).
Var<double> build(const Program& p, tg::Tape<double>& tape, std::span<const Var<double>> x) {
    std::vector<Var<double>> v(x.begin(), x.end());
    std::vector<int> uses(p.info.size(), 0);
    for (const Instr& in : p.code) {
        const Var<double>& a = v[in.a];
        ++uses[in.a];
        if (in.b >= 0) ++uses[in.b];
        const Var<double> b = in.b >= 0 ? v[in.b] : Var<double>();
        const Var<double> r = eval(in, a, b, tape);
        v.push_back(r);
    }
    Var<double> out = v.back();
    for (std::size_t i = p.leaves.size(); i + 1 < v.size(); ++i)
        if (uses[i] == 0) out = out + tg::scale(tg::sum(v[i]), 0.5);
    return out;
}

// ---- ndio: N-D random graphs (issue 11 item 6) --------------------------------------------------
// Programs over tensors of rank 0 to 5: leaves drawn as NumPy-broadcasting variants of one base
// shape (axes set to 1, leading axes dropped, a scalar), then elementwise ops with broadcasting,
// views (permute, reshape, unsqueeze/squeeze, expand, strided slices, select), reductions over
// random axis sets with or without keepdim (sum, mean, amax, logsumexp), softmax over any axis,
// batched matmul with transpose flags and broadcast batch axes, concat and stack. Each candidate
// is run on a scratch tape as it is drawn, so its shape and value range (for tame()) are the
// library's own; its parameters are valid by construction, so an Error here is a finding.
class NdGenerator {
public:
    explicit NdGenerator(std::uint64_t seed) : rng_(seed) { p_.seed = seed; }

    Program make() {
        const std::size_t rank = pick(2, 4);
        std::vector<std::size_t> base(rank);
        for (auto& d : base) d = pick(1, 3);
        const std::size_t leaves = pick(2, 4);
        for (std::size_t i = 0; i < leaves; ++i) {
            std::vector<std::size_t> d = base;
            switch (pick(0, 5)) {
                case 0:
                case 1: break;
                case 2:
                case 3:
                    for (auto& e : d)
                        if (pick(0, 1)) e = 1;
                    break;
                case 4: d.erase(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(pick(1, rank - 1))); break;
                default: d.clear(); break;  // a rank-0 scalar
            }
            Tensor<double> t(Shape::from_range(d.begin(), d.end()));
            std::uniform_real_distribution<double> u(-1.5, 1.5);
            for (std::size_t k = 0; k < t.size(); ++k) t.data()[k] = u(rng_);
            v_.push_back(tape_.variable(t));
            p_.leaves.push_back(std::move(t));
            p_.info.push_back({p_.leaves.back().shape(), 1.5, false});
        }
        const std::size_t ops = pick(4, 10);
        for (std::size_t k = 0; k < ops; ++k) step();
        return std::move(p_);
    }

private:
    static constexpr std::size_t kMaxNumel = 216;  // keeps each gradient check cheap
    std::size_t pick(std::size_t lo, std::size_t hi) { return std::uniform_int_distribution<std::size_t>(lo, hi)(rng_); }
    double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }
    std::ptrdiff_t signed_axis(std::size_t k, std::size_t r) {  // axis k, sometimes written as k − r
        return pick(0, 1) ? static_cast<std::ptrdiff_t>(k) : static_cast<std::ptrdiff_t>(k) - static_cast<std::ptrdiff_t>(r);
    }
    int node() {
        const std::size_t n = p_.info.size();
        if (pick(0, 2) == 0) return static_cast<int>(pick(0, n - 1));
        return static_cast<int>(n - 1 - std::min(n - 1, pick(0, 2)));
    }
    const Shape& shape(int i) const { return p_.info[i].shape; }
    int emit(Instr in) {
        const Var<double> r = eval(in, v_[in.a], in.b >= 0 ? v_[in.b] : Var<double>(), tape_);
        double mag = 0;
        const Tensor<double> val = r.value().is_contiguous() ? r.value() : tg::contiguous(r.value());
        for (std::size_t k = 0; k < val.size(); ++k) mag = std::max(mag, std::abs(val.data()[k]));
        p_.code.push_back(std::move(in));
        p_.info.push_back({r.shape(), mag, false});
        v_.push_back(r);
        return static_cast<int>(p_.info.size() - 1);
    }
    int tame(int i) {
        if (p_.info[i].mag <= 3) return i;
        return emit({Op::tanh, i});
    }
    // A random non-empty set of axes of a rank-r shape (r ≥ 1).
    std::vector<std::ptrdiff_t> axis_set(std::size_t r) {
        std::vector<std::ptrdiff_t> a;
        for (std::size_t k = 0; k < r; ++k)
            if (pick(0, 1)) a.push_back(signed_axis(k, r));
        if (a.empty()) a.push_back(signed_axis(pick(0, r - 1), r));
        return a;
    }

    void step() {
        const int a = tame(node());
        const Shape s = shape(a);
        const std::size_t r = s.rank();
        switch (pick(0, 20)) {
            case 0: emit({Op::tanh, a}); return;
            case 1: emit({Op::sigmoid, a}); return;
            case 2: emit({Op::square, a}); return;
            case 3: {
                Instr in{Op::scale, a};
                in.c = uniform(-2, 2);
                emit(in);
                return;
            }
            case 4: emit({Op::exp, a}); return;
            case 5: emit({Op::log_pos, a}); return;
            case 6: {  // permute
                if (r < 2) break;
                Instr in{Op::nd_permute, a};
                for (std::size_t k = 0; k < r; ++k) in.axes.push_back(static_cast<std::ptrdiff_t>(k));
                std::shuffle(in.axes.begin(), in.axes.end(), rng_);
                emit(in);
                return;
            }
            case 7: {  // reshape: flatten everything, merge two adjacent axes, or add a unit axis
                Instr in{Op::nd_reshape, a};
                std::vector<std::size_t> d(s.dims().begin(), s.dims().end());
                const std::size_t how = pick(0, 2);
                if (how == 0 || r < 2) d = {s.numel()};
                else if (how == 1) {
                    const std::size_t k = pick(0, r - 2);
                    d[k] *= d[k + 1];
                    d.erase(d.begin() + static_cast<std::ptrdiff_t>(k) + 1);
                } else if (r < 5) {
                    d.insert(d.begin() + static_cast<std::ptrdiff_t>(pick(0, r)), 1);
                }
                in.to = Shape::from_range(d.begin(), d.end());
                emit(in);
                return;
            }
            case 8: {
                if (r >= 5) break;
                Instr in{Op::nd_unsqueeze, a};
                in.axes = {signed_axis(pick(0, r), r + 1)};
                emit(in);
                return;
            }
            case 9: {  // squeeze a unit axis
                std::vector<std::size_t> unit;
                for (std::size_t k = 0; k < r; ++k)
                    if (s[k] == 1) unit.push_back(k);
                if (unit.empty()) break;
                Instr in{Op::nd_squeeze, a};
                in.axes = {signed_axis(unit[pick(0, unit.size() - 1)], r)};
                emit(in);
                return;
            }
            case 10: {  // expand: stretch the unit axes, maybe add a leading one
                if (s.numel() * 3 > kMaxNumel) break;
                std::vector<std::size_t> d(s.dims().begin(), s.dims().end());
                bool grew = false;
                for (auto& e : d)
                    if (e == 1 && !grew && pick(0, 1)) {
                        e = pick(2, 3);
                        grew = true;
                    }
                if ((!grew || pick(0, 2) == 0) && d.size() < 5) d.insert(d.begin(), 2);
                Instr in{Op::nd_expand, a};
                in.to = Shape::from_range(d.begin(), d.end());
                emit(in);
                return;
            }
            case 11: {  // a strided slice of an axis of extent ≥ 2
                std::vector<std::size_t> ok;
                for (std::size_t k = 0; k < r; ++k)
                    if (s[k] >= 2) ok.push_back(k);
                if (ok.empty()) break;
                const std::size_t k = ok[pick(0, ok.size() - 1)];
                Instr in{Op::nd_slice, a};
                in.i0 = pick(0, s[k] - 1);
                in.i1 = pick(in.i0 + 1, s[k]);
                in.axes = {signed_axis(k, r), static_cast<std::ptrdiff_t>(pick(1, 2))};
                emit(in);
                return;
            }
            case 12: {
                if (r < 1) break;
                const std::size_t k = pick(0, r - 1);
                Instr in{Op::nd_select, a};
                in.axes = {signed_axis(k, r)};
                in.i0 = pick(0, s[k] - 1);
                emit(in);
                return;
            }
            case 13:
            case 14:
            case 15:
            case 16: {  // sum / mean / amax / logsumexp over axes
                if (r < 1) break;
                static const Op k[] = {Op::nd_sum_axes, Op::nd_mean_axes, Op::nd_amax, Op::nd_logsumexp};
                Instr in{k[pick(0, 3)], a};
                in.axes = axis_set(r);
                in.keep = pick(0, 1);
                emit(in);
                return;
            }
            case 17: {
                if (r < 1) break;
                Instr in{Op::nd_softmax_axis, a};
                in.axes = {signed_axis(pick(0, r - 1), r)};
                emit(in);
                return;
            }
            default: binary(a); return;
        }
        emit({Op::tanh, a});  // the drawn op does not apply to this shape
    }

    // Candidates b for a binary op with a, by a shape predicate (a itself included: fan-out).
    int partner(int a, auto&& ok) {
        std::vector<int> c;
        for (int i = 0; i < static_cast<int>(p_.info.size()); ++i)
            if (ok(shape(a), shape(i))) c.push_back(i);
        if (c.empty()) return -1;
        return tame(c[pick(0, c.size() - 1)]);
    }
    static bool nd_broadcastable(const Shape& x, const Shape& y) {
        const std::size_t r = std::max(x.rank(), y.rank());
        std::size_t n = 1;
        for (std::size_t k = 0; k < r; ++k) {
            const std::size_t ex = k < x.rank() ? x[x.rank() - 1 - k] : 1, ey = k < y.rank() ? y[y.rank() - 1 - k] : 1;
            if (ex != ey && ex != 1 && ey != 1) return false;
            n *= std::max(ex, ey);
        }
        return n <= kMaxNumel;
    }

    void binary(int a) {
        const Shape s = shape(a);
        const std::size_t r = s.rank();
        switch (pick(0, 5)) {
            case 0:
            case 1: {  // add, sub, mul, div with NumPy broadcasting (either side)
                const int b = partner(a, nd_broadcastable);
                if (b < 0) break;
                static const Op k[] = {Op::add, Op::sub, Op::mul, Op::div_pos};
                const Op op = k[pick(0, 3)];
                if (pick(0, 1)) emit({op, a, b});
                else emit({op, b, a});
                return;
            }
            case 2:
            case 3: {  // batched matmul: (…, m, k)·(…, k, n), flags, broadcast batch axes
                if (r < 2) break;
                Instr in{Op::nd_bmm, a};
                in.ta = pick(0, 1);
                in.tb = pick(0, 1);
                const std::size_t k = in.ta ? s.rows() : s.cols();
                const bool tb = in.tb;
                in.b = partner(a, [&](const Shape& x, const Shape& y) {
                    if (y.rank() < 2 || (tb ? y.cols() : y.rows()) != k) return false;
                    const std::size_t mn = (in.ta ? x.cols() : x.rows()) * (tb ? y.rows() : y.cols());
                    if (x.rank() <= 2 && y.rank() <= 2) return mn <= kMaxNumel;
                    const Shape bx = Shape::from_range(x.dims().begin(), x.dims().end() - 2);
                    const Shape by = Shape::from_range(y.dims().begin(), y.dims().end() - 2);
                    return nd_broadcastable(bx, by) && mn * std::max(bx.numel(), by.numel()) <= kMaxNumel;
                });
                if (in.b < 0) break;
                emit(in);
                return;
            }
            case 4: {  // concat along an axis where the shapes may differ
                if (r < 1) break;
                const std::size_t ax = pick(0, r - 1);
                const int b = partner(a, [&](const Shape& x, const Shape& y) {
                    return y.rank() == x.rank() && x.with(ax, 1) == y.with(ax, 1) && x.numel() + y.numel() <= kMaxNumel;
                });
                if (b < 0) break;
                Instr in{Op::nd_concat, a, b};
                in.axes = {signed_axis(ax, r)};
                emit(in);
                return;
            }
            default: {  // stack two tensors of one shape along a new axis
                if (r >= 5 || 2 * s.numel() > kMaxNumel) break;
                const int b = partner(a, [](const Shape& x, const Shape& y) { return x == y; });
                if (b < 0) break;
                Instr in{Op::nd_stack, a, b};
                in.axes = {signed_axis(pick(0, r), r + 1)};
                emit(in);
                return;
            }
        }
        emit({Op::sigmoid, a});  // no partner of the right shape
    }

    std::mt19937_64 rng_;
    Program p_;
    tg::Tape<double> tape_;
    std::vector<Var<double>> v_;
};

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
    const char* s = std::getenv(name);
    return s && *s ? std::strtoull(s, nullptr, 10) : fallback;
}

}  // namespace

TEST_CASE("hundreds of random expression graphs pass the gradient check") {
    const std::uint64_t only = env_or("TAPEGRAD_GRAPH_SEED", 0);
    const std::uint64_t count = only ? 1 : env_or("TAPEGRAD_GRAPHS", 1000);
    tg::GradcheckOptions opt;
    opt.rtol = 1e-5;  // values up to ~e⁴ and long chains: central differences are good to ~1e-7
    if (const char* r = std::getenv("TAPEGRAD_GRAPH_RTOL")) opt.rtol = std::strtod(r, nullptr);
    std::size_t nodes = 0, checked = 0, comparisons = 0;
    double worst = 0;
    for (std::uint64_t k = 0; k < count; ++k) {
        const std::uint64_t seed = only ? only : 1000 + k;
        const Program p = Generator(seed).make();
        auto f = [&p](tg::Tape<double>& tape, std::span<const Var<double>> x) { return build(p, tape, x); };
        tg::GradcheckReport r;
        try {
            r = tg::gradcheck(f, p.leaves, opt);
        } catch (const tg::Error& e) {
            FAIL_CHECK(fmt::format("seed {}: {}\n{}", seed, e.what(), p.listing()));
            continue;
        }
        nodes += p.code.size();
        ++checked;
        for (const auto& in : r.inputs) comparisons += in.checked;
        worst = std::max(worst, r.max_rel_err());
        if (!r) {
            tg::Tape<double> tape;
            std::vector<Var<double>> xs;
            for (std::size_t i = 0; i < p.leaves.size(); ++i) xs.push_back(tape.variable(p.leaves[i], fmt::format("v{}", i)));
            Var<double> out = build(p, tape, xs);
            Tensor<double> seedt(out.shape());
            for (std::size_t i = 0; i < seedt.size(); ++i) seedt[i] = 1;
            tape.backward(out, seedt);
            FAIL_CHECK(fmt::format("random graph seed {} (replay: TAPEGRAD_GRAPH_SEED={} ./test_random_graphs)\n"
                                   "program:\n{}{}\nDOT:\n{}",
                                   seed, seed, p.listing(), r, tg::to_dot(tape, {.values = true, .adjoints = true})));
        }
    }
    MESSAGE(fmt::format("{} graphs, {} op instructions, {} gradient comparisons; worst relative error {:.2e}",
                        checked, nodes, comparisons, worst));
    CHECK(comparisons > 10 * checked);
    CHECK(checked == count);
}

TEST_CASE("random graphs with the leaves as GradBuffer parameters: the buffers get the variables' gradients") {
    // Each leaf becomes an External leaf over a GradBuffer that is either cleared (over NaN
    // garbage: the sweep must write, never read, it) or holds earlier gradients r (the sweep
    // must add). A second backward on the same tape adds once more.
    const std::uint64_t count = env_or("TAPEGRAD_GRAPHS", 1000) / 2;
    std::size_t claimed = 0, added = 0;
    for (std::uint64_t k = 0; k < count; ++k) {
        const std::uint64_t seed = 1000 + k;
        const Program p = Generator(seed).make();
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<double> u(-1, 1);

        tg::Tape<double> tv;
        std::vector<Var<double>> vs;
        for (const auto& leaf : p.leaves) vs.push_back(tv.variable(leaf));
        Var<double> out_v = build(p, tv, vs);
        Tensor<double> seedt(out_v.shape());
        for (std::size_t i = 0; i < seedt.size(); ++i) seedt[i] = u(rng);
        tv.backward(out_v, seedt);

        tg::Tape<double> te;
        std::vector<tg::GradBuffer<double>> bufs(p.leaves.size());
        std::vector<Tensor<double>> before;
        std::vector<Var<double>> es;
        for (std::size_t i = 0; i < p.leaves.size(); ++i) {
            bufs[i].resize(p.leaves[i].shape());
            Tensor<double>& t = bufs[i].mutable_tensor();
            const bool cleared = rng() % 2 == 0;
            for (std::size_t j = 0; j < t.size(); ++j) t[j] = cleared ? std::nan("") : u(rng);
            before.push_back(cleared ? Tensor<double>(t.shape()) : t);
            if (cleared) bufs[i].clear();
            (cleared ? claimed : added) += 1;
            es.push_back(te.external(p.leaves[i], &bufs[i]));
        }
        Var<double> out_e = build(p, te, es);
        te.backward(out_e, seedt);
        for (int round = 1; round <= 2; ++round) {
            for (std::size_t i = 0; i < p.leaves.size(); ++i) {
                const Tensor<double>& g = tv.grad(vs[i]);
                const Tensor<double>& b = bufs[i].tensor();
                const Tensor<double>& eg = te.grad(es[i]);
                double err = 0;
                for (std::size_t j = 0; j < g.size(); ++j) {
                    const double want = before[i][j] + round * g[j];
                    err = std::max(err, std::abs(b[j] - want) / std::max(1.0, std::abs(want)));
                    err = std::max(err, std::abs(eg[j] - g[j]) / std::max(1.0, std::abs(g[j])));
                }
                if (!(err <= 1e-12))
                    FAIL_CHECK(fmt::format("seed {} leaf {} backward {}: relative error {:.3e}\n{}", seed, i, round,
                                           err, p.listing()));
            }
            if (round == 1) te.backward(out_e, seedt);
        }
    }
    CHECK(claimed > 0);
    CHECK(added > 0);
}

TEST_CASE("the graph generator is deterministic for a seed and covers every op kind") {
    const Program a = Generator(42).make();
    const Program b = Generator(42).make();
    CHECK(a.listing() == b.listing());
    std::vector<bool> seen(static_cast<int>(Op::tanh_grad) + 1, false);
    bool fanout = false, broadcast_pair = false;
    for (std::uint64_t s = 1000; s < 2000; ++s) {
        const Program p = Generator(s).make();
        std::vector<int> uses(p.info.size(), 0);
        for (const Instr& in : p.code) {
            seen[static_cast<int>(in.op)] = true;
            if (++uses[in.a] > 1) fanout = true;
            if (in.b >= 0 && ++uses[in.b] > 1) fanout = true;
            if (in.b >= 0 && (in.op == Op::add || in.op == Op::mul) && p.info[in.a].shape != p.info[in.b].shape)
                broadcast_pair = true;
        }
    }
    for (std::size_t i = 0; i < seen.size(); ++i) {
        INFO(op_name(static_cast<Op>(i)));
        CHECK(seen[i]);
    }
    CHECK(fanout);
    CHECK(broadcast_pair);
}

// ---- ndio: N-D random graphs ------------------------------------------------------------------

TEST_CASE("random N-D graphs — broadcasting, views, reductions over axes, batched matmul — pass the gradient check") {
    const std::uint64_t only = env_or("TAPEGRAD_ND_GRAPH_SEED", 0);
    const std::uint64_t count = only ? 1 : env_or("TAPEGRAD_ND_GRAPHS", 300);
    tg::GradcheckOptions opt;
    opt.rtol = 1e-5;  // as for the 2-D graphs above
    std::size_t checked = 0, comparisons = 0, max_rank = 0;
    double worst = 0;
    for (std::uint64_t k = 0; k < count; ++k) {
        const std::uint64_t seed = only ? only : 5000 + k;
        Program p;
        try {
            p = NdGenerator(seed).make();
        } catch (const tg::Error& e) {
            FAIL_CHECK(fmt::format("N-D seed {}: the generator's op raised: {}", seed, e.what()));
            continue;
        }
        for (const NodeInfo& n : p.info) max_rank = std::max(max_rank, n.shape.rank());
        auto f = [&p](tg::Tape<double>& tape, std::span<const Var<double>> x) { return build(p, tape, x); };
        tg::GradcheckReport r;
        try {
            r = tg::gradcheck(f, p.leaves, opt);
        } catch (const tg::Error& e) {
            FAIL_CHECK(fmt::format("N-D seed {}: {}\n{}", seed, e.what(), p.listing()));
            continue;
        }
        ++checked;
        for (const auto& in : r.inputs) comparisons += in.checked;
        worst = std::max(worst, r.max_rel_err());
        if (!r)
            FAIL_CHECK(fmt::format("random N-D graph seed {} (replay: TAPEGRAD_ND_GRAPH_SEED={} ./test_random_graphs)\n"
                                   "program:\n{}{}",
                                   seed, seed, p.listing(), r));
    }
    MESSAGE(fmt::format("{} N-D graphs, {} gradient comparisons, ranks up to {}; worst relative error {:.2e}", checked,
                        comparisons, max_rank, worst));
    CHECK(checked == count);
    CHECK(comparisons > 5 * checked);
}

TEST_CASE("the N-D graph generator is deterministic for a seed and draws every N-D op, rank 0 and rank ≥ 4") {
    CHECK(NdGenerator(42).make().listing() == NdGenerator(42).make().listing());
    std::vector<bool> seen(static_cast<int>(Op::nd_stack) + 1, false);
    bool scalar = false, rank4 = false, bcast = false, batched = false;
    for (std::uint64_t s = 5000; s < 5300; ++s) {
        const Program p = NdGenerator(s).make();
        for (const NodeInfo& n : p.info) {
            scalar |= n.shape.rank() == 0;
            rank4 |= n.shape.rank() >= 4;
        }
        for (const Instr& in : p.code) {
            seen[static_cast<int>(in.op)] = true;
            if (in.b >= 0 && (in.op == Op::add || in.op == Op::mul) && p.info[in.a].shape.rank() != p.info[in.b].shape.rank())
                bcast = true;
            if (in.op == Op::nd_bmm && std::max(p.info[in.a].shape.rank(), p.info[in.b].shape.rank()) >= 3) batched = true;
        }
    }
    for (int i = static_cast<int>(Op::nd_permute); i <= static_cast<int>(Op::nd_stack); ++i) {
        INFO(op_name(static_cast<Op>(i)));
        CHECK(seen[i]);
    }
    CHECK(scalar);
    CHECK(rank4);
    CHECK(bcast);
    CHECK(batched);
}
