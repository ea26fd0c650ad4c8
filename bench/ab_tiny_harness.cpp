// The tiny-op chain alone, for bench/ab_tiny's A/B rounds: the same source compiled with the same
// flags against two refs' public headers and core library (no CMake target of its own; the
// script compiles it). The chain is bench::tiny_chain_tapegrad's (bench/tapegrad_side.hpp):
// x ← tanh(x·w + b) on 1×1, 10,000 steps = 30,000 ops, recorded and swept backward, timed per op.
// A copy rather than an #include of tapegrad_side.hpp on purpose: the harness is compiled against
// the old ref's headers too, where that file (and the nn headers it pulls in) differ or are missing.
//
//   ab_tiny_harness [REPS]     (default 201)
//
// Prints "tiny_ns_per_op MEDIAN MIN" and "grad_w G" (∂x_N/∂w: both refs must agree).
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace {

namespace tg = tapegrad;

constexpr std::size_t kTinySteps = 10000;  // 3 ops each: 30,000 tiny ops
constexpr float kTinyX0 = 0.5f, kTinyW = 1.0f, kTinyB = 0.0f;

float tiny_chain(tg::Tape<float>& tape, std::size_t steps) {
    static const tg::Tensor<float> x0(1, 1, {kTinyX0}), w0(1, 1, {kTinyW}), b0(1, 1, {kTinyB});
    tape.reset();
    auto x = tape.variable(x0);
    auto w = tape.variable(w0);
    auto b = tape.variable(b0);
    for (std::size_t i = 0; i < steps; ++i) x = tg::tanh(tg::matmul(x, w) + b);
    tape.backward(x);
    return tape.grad(w)[0];
}

double now_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
    const int reps = argc > 1 ? std::atoi(argv[1]) : 201;
    if (reps < 1) {
        std::fprintf(stderr, "usage: ab_tiny_harness [REPS >= 1]\n");
        return 2;
    }
    tg::Tape<float> tape;
    volatile float sink = tiny_chain(tape, kTinySteps);  // warm-up: arena, node array
    const float grad_w = sink;
    std::vector<double> t;
    t.reserve(std::size_t(reps));
    for (int r = 0; r < reps; ++r) {
        const double t0 = now_s();
        sink = sink + tiny_chain(tape, kTinySteps);
        t.push_back((now_s() - t0) * 1e9 / double(3 * kTinySteps));
    }
    std::sort(t.begin(), t.end());
    const std::size_t n = t.size();
    const double median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    std::printf("tiny_ns_per_op %.3f %.3f\n", median, t.front());
    std::printf("grad_w %.9g\n", double(grad_w));
    return 0;
}
