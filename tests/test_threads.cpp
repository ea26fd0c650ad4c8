// Independent tapes on separate threads: two models trained side by side end with exactly
// (bitwise) the parameters they reach when trained one after the other. .ci/tsan.sh runs this
// file under ThreadSanitizer. What is and is not thread-safe: docs/guarantees.md.
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <tapegrad/nn.hpp>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
using tg::Tensor;

namespace {

// A fixed synthetic classification problem: 3 classes by the sign pattern of two features.
template <class T>
void make_problem(std::uint64_t seed, Tensor<T>& x, Tensor<T>& y) {
    nn::Rng rng(seed);
    for (std::size_t i = 0; i < x.rows(); ++i) {
        for (std::size_t j = 0; j < x.cols(); ++j) x(i, j) = static_cast<T>(rng.uniform() * 2 - 1);
        const int c = (x(i, 0) > 0 ? 1 : 0) + (x(i, 1) > 0 ? 1 : 0);
        y[i] = static_cast<T>(c);
    }
}

struct Result {
    std::vector<std::vector<double>> params;  // every parameter's values, in order
    std::vector<double> losses;               // the loss of every step
    std::string formula;                      // explain() of the first weight on the last tape
};

// Trains a small MLP with Adam on its own tape; everything it touches is its own.
template <class T>
Result train(std::uint64_t seed, int steps) {
    Tensor<T> x(48, 8), y(48, 1);
    make_problem(seed, x, y);
    nn::MLP<T> net({8, 16, 16, 3}, nn::Activation::tanh, seed);
    nn::Adam<T> opt(net.parameters(), {.lr = 1e-2});
    tg::Tape<T> tape;
    Result r;
    for (int s = 0; s < steps; ++s) {
        tape.reset();
        auto logits = net(tape, tape.constant_ref(x));
        auto loss = tg::softmax_cross_entropy(logits, tape.constant_ref(y));
        tape.backward(loss);
        opt.step();
        opt.zero_grad();
        r.losses.push_back(static_cast<double>(loss.item()));
    }
    for (nn::Parameter<T>* p : net.parameters()) {
        std::vector<double> v;
        for (std::size_t i = 0; i < p->value.size(); ++i) v.push_back(static_cast<double>(p->value[i]));
        r.params.push_back(std::move(v));
    }
    // A gradient graph explained on this thread's tape.
    tape.reset();
    auto w = tape.variable(Tensor<T>(8, 3), "W");
    auto loss = tg::softmax_cross_entropy(tg::matmul(tape.constant_ref(x), w), tape.constant_ref(y));
    tape.backward(loss);
    r.formula = tape.explain(w);
    return r;
}

template <class T>
void check_same(const Result& a, const Result& b) {
    REQUIRE(a.params.size() == b.params.size());
    for (std::size_t k = 0; k < a.params.size(); ++k) {
        REQUIRE(a.params[k].size() == b.params[k].size());
        for (std::size_t i = 0; i < a.params[k].size(); ++i) CHECK(a.params[k][i] == b.params[k][i]);
    }
    CHECK(a.losses == b.losses);
    CHECK(a.formula == b.formula);
}

}  // namespace

TEST_CASE("two models trained on two threads end exactly as when trained one after the other") {
    tg::set_blas_threads(1);
    constexpr int kSteps = 25;
    const Result seq_a = train<double>(1, kSteps);
    const Result seq_b = train<float>(2, kSteps);

    Result par_a, par_b;
    std::thread ta([&] { par_a = train<double>(1, kSteps); });
    std::thread tb([&] { par_b = train<float>(2, kSteps); });
    ta.join();
    tb.join();

    check_same<double>(seq_a, par_a);
    check_same<float>(seq_b, par_b);
    CHECK(seq_a.losses.back() < seq_a.losses.front());  // they did learn something
    CHECK(seq_b.losses.back() < seq_b.losses.front());
}

TEST_CASE("four threads recording the same ops on their own tapes agree with a single thread") {
    // The same op types on every thread: their shared rules (function-local statics) are
    // initialised once and only read afterwards.
    auto work = [](int id) {
        tg::Tape<double> tape;
        double acc = 0;
        for (int rep = 0; rep < 20; ++rep) {
            tape.reset();
            Tensor<double> a(3, 4), b(4, 2);
            for (std::size_t i = 0; i < a.size(); ++i) a[i] = 0.1 * double(i + id) - 0.3;
            for (std::size_t i = 0; i < b.size(); ++i) b[i] = 0.05 * double(i) - 0.2 * id;
            auto va = tape.variable(a, "a");
            auto vb = tape.variable(b, "b");
            auto loss = tg::mean(tg::square(tg::sigmoid(tg::matmul(va, vb)) - 0.5)) + tg::sum(tg::exp(vb) * 0.01);
            tape.backward(loss);
            acc += loss.item() + tape.grad(va)[0] + tape.grad(vb)[1];
        }
        return acc;
    };
    std::array<double, 4> serial{}, parallel{};
    for (int i = 0; i < 4; ++i) serial[i] = work(i);
    std::vector<std::thread> ts;
    for (int i = 0; i < 4; ++i) ts.emplace_back([&, i] { parallel[i] = work(i); });
    for (auto& t : ts) t.join();
    for (int i = 0; i < 4; ++i) CHECK(serial[i] == parallel[i]);
}

TEST_CASE("anomaly mode and call sites on one thread do not leak into another") {
    std::string m1, m2;
    auto bad = [](std::string& out, bool anomaly) {
        tg::Tape<double> tape;
        tape.set_anomaly_mode(anomaly);
        auto x = tape.variable(Tensor<double>(1, 2, {-1, 1}), "x");
        try {
            auto y = tg::log(x);
            out = std::isnan(y.value()[0]) ? "nan" : "finite";
        } catch (const tg::Error& e) {
            out = e.what();
        }
    };
    std::thread t1([&] { bad(m1, true); });
    std::thread t2([&] { bad(m2, false); });
    t1.join();
    t2.join();
    CHECK(m1.find("anomaly: forward of 'log'") != std::string::npos);
    CHECK(m2 == "nan");
}

TEST_CASE("in anomaly mode, a tape used from a second thread is an Error") {
    tg::Tape<double> tape;
    tape.set_anomaly_mode(true);
    auto x = tape.variable(Tensor<double>(1, 2, {1, 2}), "x");
    auto y = tg::square(x);
    std::string recording, sweeping;
    std::thread other([&] {
        try {
            (void)tg::exp(x);
        } catch (const tg::Error& e) {
            recording = e.what();
        }
        try {
            tape.backward(y, Tensor<double>(1, 2, {1, 1}));
        } catch (const tg::Error& e) {
            sweeping = e.what();
        }
    });
    other.join();
    CHECK(recording.find("anomaly: exp: the tape is used from a second thread") == 0);
    CHECK(sweeping.find("anomaly: backward: the tape is used from a second thread") == 0);
    // The recording thread goes on as before...
    tape.backward(tg::sum(y));
    CHECK(tape.grad(x)[1] == 4.0);
    CHECK(tape.size() == 3);  // nothing was recorded by the other thread
    // ...and after a reset the tape belongs to whichever thread records first.
    tape.reset();
    std::string after;
    std::thread next([&] {
        auto z = tape.variable(Tensor<double>(1, 1, {3}), "z");
        tape.backward(tg::square(z));
        after = fmt::format("{}", tape.grad(z)[0]);
    });
    next.join();
    CHECK(after == "6");
    // Anomaly mode turned on over a recording: the thread that turns it on owns the tape.
    tg::Tape<double> late;
    auto u = late.variable(Tensor<double>(1, 1, {2}), "u");
    auto v = tg::square(u);
    late.set_anomaly_mode(true);
    std::string late_msg;
    std::thread third([&] {
        try {
            late.backward(v);
        } catch (const tg::Error& e) {
            late_msg = e.what();
        }
    });
    third.join();
    CHECK(late_msg.find("anomaly: backward: the tape is used from a second thread") == 0);
}
