// Issue 14's data-parallel figures for bench/run: the gradient all-reduce of the benchmarked MLP
// at 2 ranks, and the MLP's training epoch as 2 processes × 1 BLAS thread (mpirun -np 2) vs
// 1 process × 2 BLAS threads (no mpirun). Writes a flat JSON object on rank 0; bench_main.cpp
// merges it (--dist FILE).
//
//   tapegrad_dist_bench --world N --threads T --out FILE [--data DIR] [--steps K] [--reps R]
//
// The MLP is bench_main's (784-256-128-10, ReLU, float, Adam), global batch 128 split into N
// consecutive shares, DDP with its defaults (25 MiB buckets, overlap on). An epoch is
// ⌊n/128⌋ steps (468 on Fashion-MNIST); --steps K > 0 times K steps after 3 warm-up steps and
// scales to the epoch (epoch_s = t_K · steps_per_epoch / K): the quick bench's shortened epoch.
// The all-reduce figure is the blocking MPI_Allreduce of the MLP's whole float gradient (one
// bucket, 235,146 values), median over R repetitions, each after a barrier (rank skew excluded).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <tapegrad/dist.hpp>
#include <tapegrad/nn.hpp>

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

    std::size_t count = 0;
    for (auto* p : net.parameters()) count += p->value.size();
    std::vector<float> g(count, 1.0f);
    std::vector<double> ms;
    if (n > 1)
        for (std::size_t k = 0; k < reps + 3; ++k) {
            dist::barrier();
            const double a = now_s();
            dist::allreduce_sum(std::span<float>(g));
            if (k >= 3) ms.push_back((now_s() - a) * 1e3);
        }

    if (r == 0) {
        std::string s = "{\n";
        if (n == 1)
            s += "  \"epoch_s_mlp_1proc_" + std::to_string(threads) + "t\": " + std::to_string(epoch_s) + ",\n";
        else
            s += "  \"epoch_s_mlp_" + std::to_string(n) + "ranks_" + std::to_string(threads) + "t\": " +
                 std::to_string(epoch_s) + ",\n  \"allreduce_ms_per_step_mlp_" + std::to_string(n) +
                 "r\": " + std::to_string(median(ms)) + ",\n";
        s += "  \"dist_epoch_steps_timed\": " + std::to_string(timed) + ",\n  \"dist_steps_per_epoch\": " +
             std::to_string(per_epoch) + "\n}\n";
        std::ofstream f(out);
        f << s;
        if (!f) throw std::runtime_error("cannot write " + out);
        std::printf("dist bench, %d process%s × %d thread%s: epoch %.3f s (%zu of %zu steps timed)%s\n", n,
                    n > 1 ? "es" : "", threads, threads > 1 ? "s" : "", epoch_s, timed, per_epoch,
                    n > 1 ? (", all-reduce " + std::to_string(median(ms)) + " ms").c_str() : "");
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
