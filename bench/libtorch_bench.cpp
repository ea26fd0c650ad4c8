// The libtorch (PyTorch's C++ API) side of tapegrad's benchmarks: the workloads of
// bench/pytorch_bench.py without the Python interpreter, on the same data and initial weights
// (bench/data.cpp). Built and run by bench/run only when libtorch is installed (Debian:
// libtorch-dev, which python3-torch pulls in); never a build or test dependency of tapegrad.
//
//   libtorch_bench --threads N --out FILE [--quick] [--steps-only] [--data DIR] [--check-steps N]
//   (--steps-only: the MLP and CNN step times only)
//
// Writes a flat JSON object: mlp_step_ms_libtorch_<N>t and cnn_step_ms_libtorch_<N>t (issue 12's
// CNN, as bench/pytorch_bench.py --cnn), and with one thread also epoch_s_libtorch_1t,
// tiny_ns_per_op_libtorch and the losses of the first steps ("losses").
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "data.hpp"

namespace {

constexpr std::size_t kBatch = 128;
constexpr double kLr = 0.05;
constexpr int kTinySteps = 10000;  // 3 ops each
const std::vector<std::size_t> kSizes = {784, 256, 128, 10};

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}
double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Batch {
    torch::Tensor x, y;
};
Batch make_batch(const bench::Dataset& d, std::size_t first, std::size_t m) {
    std::vector<float> x(m * d.dim), yf(m);
    std::vector<int> yi(m);
    bench::fill_batch(d, first, m, x.data(), yf.data(), yi.data());
    Batch b;
    b.x = torch::from_blob(x.data(), {long(m), long(d.dim)}, torch::kFloat32).clone();
    b.y = torch::from_blob(yi.data(), {long(m)}, torch::kInt32).to(torch::kInt64);
    return b;
}

// One optimiser step on cross-entropy: the step every libtorch row times.
float train_step(torch::nn::Sequential& net, torch::optim::Optimizer& opt, const Batch& b) {
    opt.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(net->forward(b.x), b.y);
    loss.backward();
    opt.step();
    return loss.item<float>();
}

// Linear, ReLU, Linear, ReLU, Linear with bench::init_params's weights, and plain SGD.
struct Model {
    torch::nn::Sequential net;
    std::unique_ptr<torch::optim::SGD> opt;
    explicit Model(const bench::Params& p) {
        for (std::size_t l = 0; l + 1 < p.sizes.size(); ++l) {
            const long in = long(p.sizes[l]), out = long(p.sizes[l + 1]);
            torch::nn::Linear lin(in, out);
            torch::NoGradGuard ng;
            // Ours is in × out (samples are rows); torch's weight is out × in.
            auto w = torch::from_blob(const_cast<float*>(p.w[l].data()), {in, out}, torch::kFloat32);
            lin->weight.copy_(w.t());
            lin->bias.copy_(torch::from_blob(const_cast<float*>(p.b[l].data()), {out}, torch::kFloat32));
            net->push_back(lin);
            if (l + 2 < p.sizes.size()) net->push_back(torch::nn::ReLU());
        }
        opt = std::make_unique<torch::optim::SGD>(net->parameters(), torch::optim::SGDOptions(kLr));
    }
    float step(const Batch& b) { return train_step(net, *opt, b); }
};

// Issue 12's CNN (bench/pytorch_bench.py's cnn_model, examples/fashion_cnn.cpp): conv(1→32, 3×3,
// pad 1)–ReLU–maxpool 2 → conv(32→64, 3×3, pad 1)–ReLU–maxpool 2 → flatten → 3136→128–ReLU →
// 128→10, PyTorch's default initialisation (seed 0), Adam 1e-3.
struct CnnModel {
    torch::nn::Sequential net;
    std::unique_ptr<torch::optim::Adam> opt;
    CnnModel() {
        namespace nn = torch::nn;
        torch::manual_seed(0);
        net = nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1)), nn::ReLU(),
                             nn::MaxPool2d(nn::MaxPool2dOptions(2)),
                             nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1)), nn::ReLU(),
                             nn::MaxPool2d(nn::MaxPool2dOptions(2)), nn::Flatten(), nn::Linear(3136, 128),
                             nn::ReLU(), nn::Linear(128, 10));
        opt = std::make_unique<torch::optim::Adam>(net->parameters(), torch::optim::AdamOptions(1e-3));
    }
    float step(const Batch& b) { return train_step(net, *opt, b); }
};

// The median of single steps (ms) over pre-converted batches, after `warmup` steps.
template <class M>
double median_step_ms(M& m, const std::vector<Batch>& batches, int warmup, int reps) {
    for (int k = 0; k < warmup; ++k) m.step(batches[std::size_t(k) % batches.size()]);
    std::vector<double> t;
    for (int k = 0; k < reps; ++k) {
        const double t0 = now_s();
        m.step(batches[std::size_t(k) % batches.size()]);
        t.push_back((now_s() - t0) * 1e3);
    }
    return median(t);
}

double tiny_chain_ns() {
    // x ← tanh(x·w + b) on 1×1, w = 1, b = 0 (as bench/tapegrad_side.hpp: no subnormals).
    auto x = torch::full({1, 1}, 0.5f, torch::requires_grad());
    auto w = torch::full({1, 1}, 1.0f, torch::requires_grad());
    auto b = torch::full({1, 1}, 0.0f, torch::requires_grad());
    const double t0 = now_s();
    auto h = x;
    for (int i = 0; i < kTinySteps; ++i) h = torch::tanh(torch::matmul(h, w) + b);
    h.backward();
    const double dt = now_s() - t0;
    return dt * 1e9 / (3.0 * kTinySteps);
}

}  // namespace

int main(int argc, char** argv) {
    int threads = 1, check_steps = 100;
    bool quick = false, steps_only = false;
    std::string data = "/usr/share/datasets/fashion-mnist", out;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "libtorch_bench: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--threads") threads = std::atoi(value().c_str());
        else if (a == "--quick") quick = true;
        else if (a == "--steps-only") steps_only = true;
        else if (a == "--data") data = value();
        else if (a == "--check-steps") check_steps = std::atoi(value().c_str());
        else if (a == "--out") out = value();
        else {
            std::fprintf(stderr, "libtorch_bench: unknown argument %s\n", a.c_str());
            return 2;
        }
    }
    if (out.empty() || threads < 1) {
        std::fprintf(stderr, "usage: libtorch_bench --threads N --out FILE [--quick] [--steps-only] [--data DIR]\n");
        return 2;
    }
    torch::set_num_threads(threads);
    const bench::Dataset d = bench::load_fashion_mnist(data);
    const bench::Params init = bench::init_params(kSizes);
    const std::string suffix = "_" + std::to_string(threads) + "t";
    std::string json = "{\n \"threads_libtorch\": " + std::to_string(torch::get_num_threads());

    if (!steps_only) {  // the losses of the first steps, compared with tapegrad's by tapegrad_bench
        Model m(init);
        const std::size_t nb = d.n / kBatch;
        json += ",\n \"losses\": [";
        for (int s = 0; s < check_steps; ++s)
            json += (s ? ", " : "") + num(m.step(make_batch(d, (std::size_t(s) % nb) * kBatch, kBatch)));
        json += "]";
    }

    {  // MLP step: pre-converted batches, warm-up, then the median of single steps
        Model m(init);
        std::vector<Batch> batches;
        for (std::size_t k = 0; k < 16; ++k) batches.push_back(make_batch(d, k * kBatch, kBatch));
        json += ",\n \"mlp_step_ms_libtorch" + suffix + "\": " + num(median_step_ms(m, batches, quick ? 5 : 10, quick ? 80 : 400));
    }

    {  // the CNN step (NCHW batches), as pytorch_bench.py --cnn: 3 warm-up steps (also with --steps-only)
        CnnModel m;
        std::vector<Batch> batches;
        for (std::size_t k = 0; k < 16; ++k) {
            Batch b = make_batch(d, k * kBatch, kBatch);
            b.x = b.x.view({long(kBatch), 1, 28, 28});
            batches.push_back(std::move(b));
        }
        json += ",\n \"cnn_step_ms_libtorch" + suffix + "\": " + num(median_step_ms(m, batches, 3, quick ? 10 : 30));
    }

    if (!steps_only && !quick) {  // one epoch in order, the batch conversion included
        Model m(init);
        const double t0 = now_s();
        for (std::size_t first = 0; first < d.n; first += kBatch)
            m.step(make_batch(d, first, std::min(kBatch, d.n - first)));
        json += ",\n \"epoch_s_libtorch" + suffix + "\": " + num(now_s() - t0);
    }

    if (!steps_only && threads == 1) {
        tiny_chain_ns();
        std::vector<double> t;
        for (int k = 0; k < (quick ? 2 : 5); ++k) t.push_back(tiny_chain_ns());
        json += ",\n \"tiny_ns_per_op_libtorch\": " + num(median(t));
    }
    json += ",\n \"real_data_libtorch\": " + std::string(d.real ? "1" : "0") + "\n}\n";
    std::ofstream f(out);
    f << json;
    return f ? 0 : 1;
}
