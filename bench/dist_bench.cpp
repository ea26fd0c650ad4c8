// Issue 14's data-parallel figures for bench/run: the gradient all-reduce of the benchmarked MLP
// and of the demo CNN at 2 ranks, and the MLP's training epoch as 2 processes × 1 BLAS thread
// (mpirun -np 2) vs 1 process × 2 BLAS threads (no mpirun). Writes a flat JSON object on rank 0;
// bench_main.cpp merges it (--dist FILE).
//
//   tapegrad_dist_bench --world N --threads T --out FILE [--data DIR] [--steps K] [--reps R]
//
// The MLP is bench_main's (784-256-128-10, ReLU, float, Adam), global batch 128 split into N
// consecutive shares, DDP with its defaults (25 MiB buckets, overlap on, deterministic
// reduction). An epoch is ⌊n/128⌋ steps (468 on Fashion-MNIST); --steps K > 0 times K steps after
// 3 warm-up steps and scales to the epoch (epoch_s = t_K · steps_per_epoch / K): the quick bench's
// shortened epoch. The all-reduce figures are the blocking MPI_Allreduce of the model's whole
// float gradient (one bucket: the MLP's 235,146 values, the CNN's 421,642), median over R
// repetitions, each after a barrier (rank skew excluded).
//
// With N > 1 also (median over R, each after a barrier):
//   reduce_ms_mlp_{N}r_ordered / _iallreduce: the MLP's gradient reduced as DDP does it, by the
//     deterministic OrderedReducer (the default) and by MPI_Iallreduce (deterministic = false);
//   step_ms_mlp_{N}r_compute / _ordered / _ordered_nooverlap / _ordered_256k / _iallreduce: a
//     whole training step of the MLP (N shares of 128 rows) without DDP, with DDP's defaults,
//     without overlap, with overlap and 256 KiB buckets, and with MPI_Iallreduce; the median of 5
//     alternating rounds of K steps (20 without --steps);
//   step_ms_cnn_{N}r_compute: the demo CNN's Adam step on 128/N rows per rank, every rank at
//     once, no DDP (the t_c of docs/distributed.md's scaling model); step_ms_cnn_{N}r_ddp: the
//     same under DDP (defaults); allreduce_ms_per_step_cnn_{N}r.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <tapegrad/dist.hpp>
#include <tapegrad/nn.hpp>

#include "cnn_bench.hpp"
#include "data.hpp"

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
namespace dist = tapegrad::dist;

namespace {

double now_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Milliseconds per call of one(s) over k calls (s = 1 … k) after one unmeasured call (one(0)),
// timed between two barriers so that every rank's steps are inside the interval.
template <class F>
double per_step_ms(F&& one, std::size_t k) {
    one(0);
    dist::barrier();
    const double a = now_s();
    for (std::size_t s = 0; s < k; ++s) one(1 + s);
    dist::barrier();
    return (now_s() - a) * 1e3 / double(k);
}

int run(int argc, char** argv) {
    int want_world = 1, threads = 1;
    std::size_t steps = 0, reps = 50;
    std::string out, data = "/usr/share/datasets/fashion-mnist";
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) {
            std::fprintf(stderr, "tapegrad_dist_bench: %s needs a value\n", a.c_str());
            return 2;
        }
        const std::string v = argv[++i];
        if (a == "--world") want_world = std::stoi(v);
        else if (a == "--threads") threads = std::stoi(v);
        else if (a == "--steps") steps = std::stoul(v);
        else if (a == "--reps") reps = std::stoul(v);
        else if (a == "--out") out = v;
        else if (a == "--data") data = v;
        else {
            std::fprintf(stderr, "usage: tapegrad_dist_bench --world N --threads T --out FILE [--data DIR] [--steps K] [--reps R]\n");
            return 2;
        }
    }
    dist::Env env(argc, argv);
    const int r = dist::rank(), n = dist::world_size();
    if (n != want_world) {  // e.g. a build without MPI started by mpirun: N worlds of one
        std::fprintf(stderr, "tapegrad_dist_bench: world of %d, expected %d\n", n, want_world);
        return 1;
    }
    tg::set_blas_threads(threads);

    constexpr std::size_t kBatch = 128;
    const bench::Dataset d = bench::load_fashion_mnist(data);
    const std::size_t per_epoch = d.n / kBatch;
    const std::size_t m = kBatch / static_cast<std::size_t>(n), r0 = static_cast<std::size_t>(r) * m;
    const std::size_t timed = steps > 0 ? std::min(steps, per_epoch) : per_epoch;
    const std::size_t warm = steps > 0 ? 3 : 0;

    nn::MLP<float> net({784, 256, 128, 10}, nn::Activation::relu, 42);
    dist::DistributedDataParallel<float> ddp(net);
    nn::Adam<float> opt(net.parameters(), {});
    tg::Tape<float> tape;
    tg::Tensor<float> x(m, d.dim), y(m, 1);
    std::vector<int> yi(m);
    auto step = [&](std::size_t s) {
        bench::fill_batch(d, (s % per_epoch) * kBatch + r0, m, x.data(), y.data(), yi.data());
        tape.reset();
        auto loss = tg::softmax_cross_entropy(net(tape, tape.constant_ref(x)), tape.constant_ref(y));
        tape.backward(loss);
        ddp.finish_backward();
        opt.step();
        opt.zero_grad();
    };
    for (std::size_t s = 0; s < warm; ++s) step(s);
    dist::barrier();
    const double t0 = now_s();
    for (std::size_t s = 0; s < timed; ++s) step(warm + s);
    dist::barrier();
    const double epoch_s = (now_s() - t0) * double(per_epoch) / double(timed);

    // Median ms of f() over `reps` runs (after 3 unmeasured), each after a barrier.
    auto timed_ms = [&](auto&& f) {
        std::vector<double> ms;
        for (std::size_t k = 0; k < reps + 3; ++k) {
            dist::barrier();
            const double a = now_s();
            f();
            if (k >= 3) ms.push_back((now_s() - a) * 1e3);
        }
        return median(ms);
    };
    auto gradient_count = [](nn::Module<float>& m) {
        std::size_t count = 0;
        for (auto* p : m.parameters()) count += p->value.size();
        return count;
    };
    std::vector<std::pair<std::string, double>> rows;  // (key without the "_{N}r" suffix, value)
    if (n > 1) {
        std::vector<float> g(gradient_count(net), 1.0f);
        rows.emplace_back("allreduce_ms_per_step_mlp", timed_ms([&] { dist::allreduce_sum(std::span<float>(g)); }));
        const dist::OrderedReducer::Span whole{0, g.size()};
        dist::OrderedReducer ordered(g.data(), std::span(&whole, 1), dist::Dtype::f32);
        dist::Requests req(1);
        rows.emplace_back("reduce_ms_mlp_ordered", timed_ms([&] {
                              ordered.start(0);
                              ordered.wait_all();
                          }));
        rows.emplace_back("reduce_ms_mlp_iallreduce", timed_ms([&] {
                              req.start_sum(0, g.data(), g.size(), dist::Dtype::f32);
                              req.wait_all();
                          }));

        // Whole training steps of the MLP (128/N rows per rank) in alternating rounds, one mode
        // after the other in each round: no DDP (compute only), DDP's default (deterministic,
        // overlap, one 25 MiB bucket), without overlap, with overlap and 256 KiB buckets (four
        // buckets: the early ones can reduce during the sweep), and MPI_Iallreduce.
        struct Mode {
            const char* key;
            bool ddp;
            typename dist::DistributedDataParallel<float>::Options opt;
        };
        const Mode modes[] = {
            {"step_ms_mlp_compute", false, {}},
            {"step_ms_mlp_ordered", true, {}},
            {"step_ms_mlp_ordered_nooverlap", true, {.overlap = false}},
            {"step_ms_mlp_ordered_256k", true, {.bucket_bytes = std::size_t(256) << 10}},
            {"step_ms_mlp_iallreduce", true, {.deterministic = false}},
        };
        const std::size_t k_steps = steps > 0 ? steps : 20;
        std::vector<std::vector<double>> per_mode(std::size(modes));
        for (int round = 0; round < 5; ++round)
            for (std::size_t mode = 0; mode < std::size(modes); ++mode) {
                nn::MLP<float> m2({784, 256, 128, 10}, nn::Activation::relu, 42);
                std::unique_ptr<dist::DistributedDataParallel<float>> d2;
                if (modes[mode].ddp) d2 = std::make_unique<dist::DistributedDataParallel<float>>(m2, modes[mode].opt);
                nn::Adam<float> o2(m2.parameters(), {});
                auto one = [&](std::size_t s) {
                    bench::fill_batch(d, (s % per_epoch) * kBatch + r0, m, x.data(), y.data(), yi.data());
                    tape.reset();
                    nn::Module<float>& net2 = d2 ? static_cast<nn::Module<float>&>(*d2) : m2;
                    auto loss = tg::softmax_cross_entropy(net2(tape, tape.constant_ref(x)), tape.constant_ref(y));
                    tape.backward(loss);
                    if (d2) d2->finish_backward();
                    o2.step();
                    o2.zero_grad();
                };
                per_mode[mode].push_back(per_step_ms(one, k_steps));
            }
        for (std::size_t mode = 0; mode < std::size(modes); ++mode)
            rows.emplace_back(modes[mode].key, median(per_mode[mode]));

        // The demo CNN: 128/N rows per rank, without and with DDP, and its gradient's all-reduce.
        const std::size_t cnn_steps = steps > 0 ? std::min<std::size_t>(steps, 10) : 20;
        auto cnn_ms = [&](bool with_ddp) {
            bench::CnnNet cnn("cnn");
            std::unique_ptr<dist::DistributedDataParallel<float>> cd;
            if (with_ddp) cd = std::make_unique<dist::DistributedDataParallel<float>>(cnn.net());
            // (all parameters take part in every step: the last hook completes the averaging)
            auto one = [&](std::size_t s) {
                bench::fill_batch(d, (s % per_epoch) * kBatch + r0, m, x.data(), y.data(), yi.data());
                (void)cnn.step(x, y);
            };
            return per_step_ms(one, cnn_steps);
        };
        rows.emplace_back("step_ms_cnn_compute", cnn_ms(false));
        rows.emplace_back("step_ms_cnn_ddp", cnn_ms(true));
        bench::CnnNet cnn("cnn");
        std::vector<float> gc(gradient_count(cnn.net()), 1.0f);
        rows.emplace_back("allreduce_ms_per_step_cnn", timed_ms([&] { dist::allreduce_sum(std::span<float>(gc)); }));
    }

    if (r == 0) {
        std::string s = "{\n";
        if (n == 1)
            s += "  \"epoch_s_mlp_1proc_" + std::to_string(threads) + "t\": " + std::to_string(epoch_s) + ",\n";
        else
            s += "  \"epoch_s_mlp_" + std::to_string(n) + "ranks_" + std::to_string(threads) + "t\": " +
                 std::to_string(epoch_s) + ",\n";
        for (const auto& [key, v] : rows) {
            // the rank count goes after the model: allreduce_ms_per_step_mlp_2r, reduce_ms_mlp_2r_ordered
            const std::size_t at = key.find(key.find("_mlp") != std::string::npos ? "_mlp" : "_cnn") + 4;
            s += "  \"" + key.substr(0, at) + "_" + std::to_string(n) + "r" + key.substr(at) + "\": " + std::to_string(v) + ",\n";
            std::printf("%s_%dr%s: %.3f ms\n", key.substr(0, at).c_str(), n, key.substr(at).c_str(), v);
        }
        s += "  \"dist_epoch_steps_timed\": " + std::to_string(timed) + ",\n  \"dist_steps_per_epoch\": " +
             std::to_string(per_epoch) + "\n}\n";
        std::ofstream f(out);
        f << s;
        if (!f) throw std::runtime_error("cannot write " + out);
        std::printf("dist bench, %d process%s × %d thread%s: epoch %.3f s (%zu of %zu steps timed)\n", n,
                    n > 1 ? "es" : "", threads, threads > 1 ? "s" : "", epoch_s, timed, per_epoch);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "tapegrad_dist_bench: %s\n", e.what());
        return 1;
    }
}
