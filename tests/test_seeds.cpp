// The five seed documents: for several random sizes and seeds, the tape's gradients agree with
// each document's closed-form formula (coded literally in examples/seeds/) to 1e-8 and with
// central finite differences to 1e-6; and the documents' loose notations are shown wrong.
#include <doctest/doctest.h>

#include "../examples/seeds/seed_000.hpp"
#include "../examples/seeds/seed_001.hpp"
#include "../examples/seeds/seed_002.hpp"
#include "../examples/seeds/seed_003.hpp"
#include "../examples/seeds/seed_004.hpp"

using namespace seeds;

namespace {

constexpr double kClosedTol = 1e-8;
constexpr double kFdTol = 1e-6;

void check_agreement(const std::vector<Gradients>& gs) {
    for (const Gradients& g : gs) {
        INFO("parameter ", g.name, " ", fmt::format("{}", g.tape.shape()));
        CHECK(g.tape_vs_closed() <= kClosedTol);
        CHECK(g.tape_vs_fd() <= kFdTol);
    }
}

}  // namespace

TEST_CASE("seed 000: the tape's batch gradients equal eqs. 15-17 and finite differences") {
    struct Case {
        std::size_t N;
        std::vector<std::size_t> sizes;
        std::uint64_t seed;
    };
    for (const Case& c : {Case{4, {3, 4, 2}, 1}, Case{7, {2, 5, 3, 1}, 2}, Case{1, {4, 3}, 3}, Case{9, {5, 2, 6, 2}, 4}}) {
        CAPTURE(c.N);
        CAPTURE(c.seed);
        check_agreement(s000::compare(s000::make_problem(c.N, c.sizes, c.seed)));
    }
}

TEST_CASE("seed 000: eq. 17 read literally is ill-shaped and the exact form matches the tape") {
    s000::Problem p = s000::make_problem(5, {3, 4, 2}, 7);
    Mat literal = s000::literal_eq17(p, p.W, 0);
    CHECK(literal.shape() == tg::Shape{5, 5});  // N×N, whatever the widths
    tg::Tape<double> tape;
    s000::Net n = s000::build(tape, p, p.W);
    tape.backward(n.E);
    CHECK(tape.grad(n.A[0]).shape() == tg::Shape{5, 4});
    s000::Forward f = s000::forward(p, p.W);
    CHECK(rel_err(s000::deltas(p, p.W, f)[0], tape.grad(n.A[0])) <= kClosedTol);

    // When N = K¹ the literal reading has the right shape, and the wrong values.
    s000::Problem q = s000::make_problem(4, {3, 4, 2}, 8);
    Mat lq = s000::literal_eq17(q, q.W, 0);
    tg::Tape<double> t2;
    s000::Net n2 = s000::build(t2, q, q.W);
    t2.backward(n2.E);
    REQUIRE(lq.shape() == t2.grad(n2.A[0]).shape());
    CHECK(rel_err(lq, t2.grad(n2.A[0])) > 1e-2);
}

TEST_CASE("seed 000: one update W <- W - eta dE/dW lowers E for a small step") {
    s000::Problem p = s000::make_problem(6, {3, 4, 2}, 11);
    std::vector<Mat> g = s000::tape_gradients(p, p.W), next;
    for (std::size_t l = 0; l < p.W.size(); ++l) next.push_back(axpy(p.W[l], 0.1, g[l]));
    CHECK(s000::cost(p, next) < s000::cost(p, p.W));
}

TEST_CASE("seed 001: the gradient of the log-likelihood J equals (y - a) a^T with the delta recursion") {
    struct Case {
        std::size_t m;
        std::vector<std::size_t> sizes;
        std::uint64_t seed;
    };
    for (const Case& c : {Case{5, {3, 4, 2}, 1}, Case{1, {2, 3, 1}, 2}, Case{8, {4, 3, 3, 2}, 3}, Case{3, {3, 1}, 4}}) {
        CAPTURE(c.m);
        CAPTURE(c.seed);
        check_agreement(s001::compare(s001::make_problem(c.m, c.sizes, c.seed)));
    }
}

TEST_CASE("seed 001: J is maximised, its output adjoint is (y - sigma(z))/m, and -J is the library's cross-entropy") {
    s001::Problem p = s001::make_problem(6, {3, 4, 1}, 5);
    tg::Tape<double> tape;
    s001::Net n = s001::build(tape, p, p.theta);
    tape.backward(n.J);
    const Mat& dz = tape.grad(n.z.back());
    Mat expect = map(minus(p.y, map(n.z.back().value(), sigma)), [](double v) { return v / 6.0; });
    CHECK(rel_err(dz, expect) <= kClosedTol);

    tg::Tape<double> t2;
    s001::Net n2 = s001::build(t2, p, p.theta);
    auto bce = tg::binary_cross_entropy_with_logits(n2.z.back(), t2.constant(p.y));
    CHECK(bce.item() == doctest::Approx(-n.J.item()).epsilon(1e-12));

    std::vector<Mat> up;
    for (std::size_t l = 0; l < p.theta.size(); ++l) up.push_back(axpy(p.theta[l], -0.1, tape.grad(n.theta[l])));
    CHECK(s001::cost(p, up) > n.J.item());  // ascent
}

TEST_CASE("seed 001: the engine's sigma' keeps full precision where sigma(1 - sigma) does not") {
    for (double z : {20.0, 30.0, 40.0}) {
        CAPTURE(z);
        const double exact = 0.5 / (1.0 + std::cosh(z));
        tg::Tensor<float> zf(1, 1, {static_cast<float>(z)});
        const double stable_f = tg::sigmoid_grad(zf)[0];
        CHECK(std::abs(stable_f - exact) / exact < 1e-6);
        const float sf = 1.0f / (1.0f + std::exp(-static_cast<float>(z)));
        CHECK(sf * (1.0f - sf) == 0.0f);  // the naive float form has lost everything

        tg::Tensor<double> zd(1, 1, {z});
        CHECK(std::abs(tg::sigmoid_grad(zd)[0] - exact) / exact < 1e-14);
    }
    const double sd = 1.0 / (1.0 + std::exp(-30.0));
    CHECK(std::abs(sd * (1 - sd) - 0.5 / (1 + std::cosh(30.0))) / (0.5 / (1 + std::cosh(30.0))) > 1e-4);
}

TEST_CASE("seed 002: the nested sums, the delta recursion, the tape and finite differences agree") {
    for (std::uint64_t seed : {1u, 2u, 3u}) {
        CAPTURE(seed);
        std::vector<std::size_t> sizes = seed == 1 ? std::vector<std::size_t>{3, 4, 3, 4, 2}
                                        : seed == 2 ? std::vector<std::size_t>{2, 2, 2, 2, 2}
                                                    : std::vector<std::size_t>{5, 3, 4, 2, 3};
        s002::Problem p = s002::make_problem(sizes, seed);
        std::vector<Gradients> g = s002::compare(p);
        check_agreement(g);
        CHECK(rel_err(s002::nested_sums(p), g[0].tape) <= kClosedTol);
    }
}

TEST_CASE("seed 003: the four delta equations averaged over a batch match the tape") {
    struct Case {
        std::size_t m;
        std::vector<std::size_t> sizes;
        std::uint64_t seed;
    };
    for (const Case& c : {Case{6, {3, 4, 2}, 1}, Case{1, {2, 3, 2}, 2}, Case{10, {4, 5, 3, 2}, 3}}) {
        CAPTURE(c.m);
        CAPTURE(c.seed);
        check_agreement(s003::compare(s003::make_problem(c.m, c.sizes, c.seed)));
    }
}

TEST_CASE("seed 004: sensitivities with F-dot give the tape's gradients, and one SGD step matches") {
    for (std::uint64_t seed : {1u, 2u, 3u}) {
        CAPTURE(seed);
        std::vector<std::size_t> sizes = seed == 1 ? std::vector<std::size_t>{3, 4, 2}
                                        : seed == 2 ? std::vector<std::size_t>{2, 3, 3, 1}
                                                    : std::vector<std::size_t>{4, 2};
        s004::Problem p = s004::make_problem(sizes, seed);
        check_agreement(s004::compare(p));

        const double alpha = 0.05;
        std::vector<Mat> doc = s004::sgd_step(p, alpha), params = p.params(), g = s004::tape_gradients(p);
        for (std::size_t k = 0; k < params.size(); ++k) CHECK(rel_err(doc[k], axpy(params[k], alpha, g[k])) <= 1e-12);
    }
}

TEST_CASE("seed 004: the literal F = diag(f(n)) in place of F-dot gives wrong sensitivities") {
    s004::Problem p = s004::make_problem({3, 4, 2}, 9);
    std::vector<Mat> exact = s004::closed_form(p), literal = s004::closed_form(p, true), tape = s004::tape_gradients(p);
    for (std::size_t k = 0; k < tape.size(); ++k) {
        CHECK(rel_err(exact[k], tape[k]) <= kClosedTol);
        CHECK(rel_err(literal[k], tape[k]) > 1e-2);
    }
}
