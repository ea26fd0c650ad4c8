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
};

const char* op_name(Op o) {
    static const char* k[] = {"tanh", "sigmoid", "softplus", "square", "exp", "log(x+0.5)", "sqrt(x+0.5)",
                              "scale", "shift", "neg", "transpose", "relu", "leaky_relu", "abs", "softmax",
                              "log_softmax", "sigmoid_grad", "sum", "mean", "sum_rows", "sum_cols", "slice_rows",
                              "slice_cols", "add", "sub", "mul", "div(a, sigmoid(b)+0.5)", "matmul", "concat_cols",
                              "concat_rows", "mse", "bce_with_logits", "softmax_ce_probs", "softmax_ce_labels",
                              "sse_half", "pow(x+0.5, p)", "log_sigmoid", "tanh_grad"};
    return k[static_cast<int>(o)];
}

struct Instr {
    Op op;
    int a = -1, b = -1;
    double c = 0;             // scale/shift constant, leaky slope
    std::size_t i0 = 0, i1 = 0;  // slice bounds
    bool ta = false, tb = false;
    std::vector<double> labels{};  // sce_labels: class indices
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
            if (in.op == Op::matmul) s += fmt::format(", ta={}, tb={}", in.ta, in.tb);
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
        }
        v.push_back(r);
    }
    Var<double> out = v.back();
    for (std::size_t i = p.leaves.size(); i + 1 < v.size(); ++i)
        if (uses[i] == 0) out = out + tg::scale(tg::sum(v[i]), 0.5);
    return out;
}

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
