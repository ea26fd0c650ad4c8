// Bench rows of the functional transforms and activation checkpointing (issue 15 items 5, 6):
//
//   jvp_over_forward       time of tg::jvp(f, x, v) ÷ time of recording f(x) on a tape, for the
//                          demo's MLP 784-256-128-10 (tanh) on a batch of 128, w.r.t. the batch
//   checkpoint_mem_ratio   activation memory of a training step (forward + backward) of a deep
//                          tanh MLP with checkpointing ÷ without: bytes the step's tapes hold
//                          (the caller's arena high-water + the scratch regions' reserved bytes),
//                          and, as a second measure, peak RSS growth of a forked process
//   checkpoint_time_ratio  step time with ÷ without
//
// Medians of interleaved rounds of process CPU time (see now_s), one BLAS thread, float. Included
// by one translation unit per program (toolbox_rows.cpp, toolbox_bench.cpp).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <tapegrad/core/checkpoint_op.hpp>
#include <tapegrad/core/functional.hpp>
#include <tapegrad/tapegrad.hpp>

#include "toolbox_rows.hpp"

namespace bench::toolbox {

namespace tg = tapegrad;

// The process's CPU time (all threads: BLAS's too, if it had any): on a shared machine (more
// runnable threads than cores) wall time also measures the waits for a core, and a task longer
// than a scheduler slice (a jvp) waits more often than a short one (a forward), which skews a
// ratio of the two. Measured here: wall 11 ms vs CPU 3.7 ms for the jvp, 1.5 vs 1.5 for the forward.
inline double now_s() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}
inline double median_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
inline tg::Tensor<float> randn(tg::Shape s, std::mt19937_64& rng, float scale) {
    std::normal_distribution<float> n(0.0f, scale);
    tg::Tensor<float> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = n(rng);
    return t;
}

// f(x) = tanh(tanh(x·W₁ + b₁)·W₂ + b₂)·W₃ + b₃ with constant weights, differentiated w.r.t. x.
JvpTimes time_jvp(int rounds) {
    tg::set_blas_threads(1);
    std::mt19937_64 rng(3);
    const std::vector<std::size_t> sz = {784, 256, 128, 10};
    std::vector<tg::Tensor<float>> w, b;
    for (std::size_t l = 0; l + 1 < sz.size(); ++l) {
        w.push_back(randn({sz[l], sz[l + 1]}, rng, 1.0f / std::sqrt(float(sz[l]))));
        b.push_back(randn({1, sz[l + 1]}, rng, 0.1f));
    }
    const tg::Tensor<float> x = randn({128, 784}, rng, 1.0f), v = randn({128, 784}, rng, 1.0f);
    auto f = [&](const tg::Var<float>& a) {
        tg::Tape<float>& t = a.tape();
        tg::Var<float> h = a;
        for (std::size_t l = 0; l < w.size(); ++l) {
            h = tg::affine(h, t.constant_ref(w[l]), t.constant_ref(b[l]));
            if (l + 1 < w.size()) h = tg::tanh(h);
        }
        return h;
    };
    tg::Tape<float> tape(std::size_t(8) << 20);
    volatile float sink = 0;
    auto forward = [&] {
        tape.reset();
        sink = sink + f(tape.variable(x)).value()[0];
    };
    auto jvp = [&] { sink = sink + tg::jvp(f, x, v).second[0]; };
    forward();
    jvp();
    std::vector<double> tf, tj;
    for (int r = 0; r < rounds; ++r) {
        for (int k = 0; k < 2; ++k) {
            const bool first = (k + r) % 2 == 0;
            const double t0 = now_s();
            first ? forward() : jvp();
            (first ? tf : tj).push_back((now_s() - t0) * 1e3);
        }
    }
    return {median_of(tf), median_of(tj)};
}

// A deep MLP h ← tanh(h·Wₗ + bₗ), L layers of `width`, batch `batch`; the loss Σ h.
struct DeepMlp {
    std::vector<tg::Tensor<float>> w, b;
    std::vector<tg::GradBuffer<float>> gw, gb;
    tg::Tensor<float> x;
    DeepMlp(std::size_t layers, std::size_t width, std::size_t batch) : gw(layers), gb(layers) {
        std::mt19937_64 rng(5);
        for (std::size_t l = 0; l < layers; ++l) {
            w.push_back(randn({width, width}, rng, 1.0f / std::sqrt(float(width))));
            b.push_back(randn({1, width}, rng, 0.1f));
        }
        x = randn({batch, width}, rng, 1.0f);
    }
    tg::Var<float> range(std::size_t from, std::size_t to, tg::Var<float> h) {
        for (std::size_t l = from; l < to; ++l) {
            tg::Tape<float>& t = h.tape();
            h = tg::tanh(tg::affine(h, t.external(w[l], &gw[l]), t.external(b[l], &gb[l])));
        }
        return h;
    }
    // One step (forward + backward); seg = 0: no checkpointing. Returns the loss.
    float step(tg::Tape<float>& tape, std::size_t seg) {
        tape.reset();
        for (auto& g : gw) g.clear();
        for (auto& g : gb) g.clear();
        tg::Var<float> h = tape.constant_ref(x);
        const std::size_t L = w.size();
        if (seg == 0) {
            h = range(0, L, h);
        } else {
            for (std::size_t from = 0; from < L; from += seg) {
                const std::size_t to = std::min(L, from + seg);
                h = tg::checkpoint([this, from, to](const tg::Var<float>& a) { return range(from, to, a); }, h);
            }
        }
        tg::Var<float> loss = tg::sum(h);
        tape.backward(loss);
        return loss.item();
    }
};

inline long status_kb(const char* key) {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind(key, 0) == 0) return std::strtol(line.c_str() + std::strlen(key), nullptr, 10);
    return -1;
}

// Peak RSS growth (MiB) of one step in a forked child (fresh arenas), or -1.
inline double step_rss_mb(DeepMlp& m, std::size_t seg) {
    int fd[2];
    if (pipe(fd) != 0) return -1;
    const pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(fd[0]);
        {
            std::ofstream c("/proc/self/clear_refs");
            c << "5";  // reset VmHWM to the current RSS
        }
        const long base = status_kb("VmRSS:");
        tg::Tape<float> tape(std::size_t(1) << 16);
        m.step(tape, seg);
        const double mb = double(status_kb("VmHWM:") - base) / 1024.0;
        if (write(fd[1], &mb, sizeof mb) != sizeof mb) _exit(1);
        _exit(0);
    }
    close(fd[1]);
    double mb = -1;
    if (read(fd[0], &mb, sizeof mb) != sizeof mb) mb = -1;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return mb;
}

CheckpointFigures measure_checkpoint(std::size_t layers, std::size_t width, std::size_t batch, std::size_t seg,
                                     int rounds) {
    tg::set_blas_threads(1);
    CheckpointFigures r{layers, width, batch, seg};
    DeepMlp m(layers, width, batch);
    r.rss_plain_mb = step_rss_mb(m, 0);
    r.rss_ckpt_mb = step_rss_mb(m, seg);
    // Bytes: a fresh tape per side; the caller's arena after the step (it only grows during a
    // step) plus what the scratch regions reserved.
    {
        tg::Tape<float> tape(std::size_t(1) << 16);
        r.loss_plain = m.step(tape, 0);
        r.bytes_plain = double(tape.arena().bytes_used());
    }
    tg::release_checkpoint_scratch<float>();
    {
        tg::Tape<float> tape(std::size_t(1) << 16);
        r.loss_ckpt = m.step(tape, seg);
        r.bytes_ckpt = double(tape.arena().bytes_used() + tg::checkpoint_scratch_bytes<float>());
    }
    tg::Tape<float> plain, ckpt;
    std::vector<double> tp, tc;
    for (int k = 0; k < rounds; ++k) {
        for (int s = 0; s < 2; ++s) {
            const bool first = (s + k) % 2 == 0;
            const double t0 = now_s();
            first ? m.step(plain, 0) : m.step(ckpt, seg);
            (first ? tp : tc).push_back((now_s() - t0) * 1e3);
        }
    }
    r.ms_plain = median_of(tp);
    r.ms_ckpt = median_of(tc);
    return r;
}

}  // namespace bench::toolbox
