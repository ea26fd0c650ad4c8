#include "gpt_rows.hpp"

#include <ctime>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include <tapegrad/nn.hpp>
#include <tapegrad/tapegrad.hpp>

#include "alloc_count.hpp"

namespace tg = tapegrad;
namespace nn = tapegrad::nn;

namespace bench::gpt {
namespace {

constexpr std::size_t kVocab = 113, kBlock = 64, kBatch = 12;
static_assert(kBatch * kBlock == kTokensPerStep);

double wall_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double cpu_ms() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
}
double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n == 0 ? NAN : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// One model, optimiser, schedule, tape and batch, as examples/char_gpt's training loop (its
// recipe: AdamW groups with decay on the Linear weights, warm-up + cosine, clipping at 1.0).
struct Trainer {
    nn::Rng rng{1337};
    nn::GPT<float> gpt{{.vocab_size = kVocab, .block_size = kBlock, .n_layer = 4, .n_head = 4, .n_embd = 128}, rng};
    std::vector<nn::Parameter<float>*> params = gpt.parameters();
    nn::AdamW<float> opt{nn::adamw_param_groups<float>(params, 0.1, nn::gpt_linear_weight<float>),
                         nn::AdamWOptions{.lr = 1e-3, .beta2 = 0.99}};
    nn::WarmupCosineLR sched{opt, {.warmup_iters = 100, .lr_decay_iters = 2000, .min_lr = 1e-4}};
    tg::Tape<float> tape{std::size_t(64) << 20};
    tg::Tensor<float> x{tg::Shape{kBatch, kBlock}}, y{tg::Shape{kBatch * kBlock, 1}};

    float step() {
        for (std::size_t i = 0; i < x.size(); ++i) {
            x[i] = float(rng.below(kVocab));
            y[i] = float(rng.below(kVocab));
        }
        tape.reset();
        const tg::Var<float> logits = gpt(tape, tape.constant_ref(x));
        const tg::Var<float> loss =
            tg::softmax_cross_entropy(tg::reshape(logits, tg::Shape{kBatch * kBlock, kVocab}), tape.constant_ref(y));
        tape.backward(loss);
        nn::clip_grad_norm<float>(params, 1.0);
        opt.step();
        opt.zero_grad();
        sched.step();
        return loss.item();
    }
};

}  // namespace

StepFigures time_steps(int threads, int steps) {
    tg::set_blas_threads(threads);
    Trainer t;
    StepFigures f;
    for (int k = 0; k < 3; ++k) f.loss = t.step();  // warm-up: arena, BLAS buffers, AdamW moments
    std::vector<double> wall, cpu;
    // reserved before counting: the vectors' growth was the 0.6 "allocations per step" (12 over
    // 20 steps) that earlier runs reported, the steps themselves allocate nothing
    wall.reserve(std::size_t(steps));
    cpu.reserve(std::size_t(steps));
    const long a0 = bench::alloc_count();
    for (int k = 0; k < steps; ++k) {
        const double w0 = wall_ms(), c0 = cpu_ms();
        f.loss = t.step();
        wall.push_back(wall_ms() - w0);
        cpu.push_back(cpu_ms() - c0);
    }
    const long a1 = bench::alloc_count();
    f.allocs_per_step = a0 < 0 ? -1 : double(a1 - a0) / double(steps);
    f.step_ms = median(wall);
    f.step_cpu_ms = median(cpu);
    return f;
}

AttentionFigures time_attention(int threads, int reps) {
    tg::set_blas_threads(threads);
    const tg::Shape s{kBatch, 4, kBlock, 32};
    nn::Rng rng(7);
    tg::Tensor<float> q(s), k(s), v(s);
    for (tg::Tensor<float>* t : {&q, &k, &v})
        for (std::size_t i = 0; i < t->size(); ++i) (*t)[i] = float(rng.normal());
    tg::GradBuffer<float> gq(s), gk(s), gv(s);
    tg::Tape<float> tape{std::size_t(16) << 20};
    volatile float sink = 0;
    std::vector<double> fwd, all;
    for (int r = 0; r < reps + 2; ++r) {
        tape.reset();
        gq.clear();
        gk.clear();
        gv.clear();
        const double t0 = wall_ms();
        auto vq = tape.external(q, &gq), vk = tape.external(k, &gk), vv = tape.external(v, &gv);
        auto o = tg::scaled_dot_product_attention(vq, vk, vv, true);
        const double t1 = wall_ms();
        tape.backward(tg::sum(o));
        const double t2 = wall_ms();
        sink = sink + gq.tensor()[0];
        if (r >= 2) {  // warm-up
            fwd.push_back(t1 - t0);
            all.push_back(t2 - t0);
        }
    }
    const double f = median(fwd);
    return {f, median(all) - f};
}

double profile(double seconds, int threads) {
    tg::set_blas_threads(threads);
    Trainer t;
    t.step();
    std::size_t n = 0;
    const double t0 = wall_ms();
    volatile float sink = 0;
    while (wall_ms() - t0 < seconds * 1e3) {
        sink = sink + t.step();
        ++n;
    }
    return (wall_ms() - t0) / double(n);
}

}  // namespace bench::gpt
