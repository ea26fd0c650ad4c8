// Fine-tuning only the last layer of the Fashion-MNIST MLP (784-256-128-10, relu) from a
// checkpoint: the hidden layers are frozen (Parameter::requires_grad(false)), so backward runs
// no VJP for them and Adam leaves them untouched; the output layer is re-initialised (a new
// head) and trained alone, on a subset, in a few seconds.
//
//   finetune_last_layer [--checkpoint PATH] [--limit 6000] [--epochs 2] [--lr 3e-3] [--data DIR]
//
// PATH is a checkpoint of the demo's network (fashion_mnist --checkpoint PATH writes one). When
// it does not exist, the whole network is first trained for one epoch on the subset and saved
// there (default: runs/finetune_base.ckpt), so that the example runs on its own.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <tapegrad/nn.hpp>
#include <vector>

namespace tg = tapegrad;
namespace nn = tapegrad::nn;

namespace {

struct Options {
    std::string checkpoint = "runs/finetune_base.ckpt";
    std::size_t limit = 6000;
    std::size_t epochs = 2;
    double lr = 3e-3;
    std::string data;
};

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "-h" || a == "--help") {
            fmt::print(
                "usage: finetune_last_layer [--checkpoint PATH] [--limit N] [--epochs N] [--lr X] [--data "
                "DIR]\n");
            std::exit(0);
        }
        if (i + 1 >= argc) tg::fail("{}: missing value (see --help)", a);
        const std::string v = argv[++i];
        char* end = nullptr;
        if (a == "--checkpoint")
            o.checkpoint = v;
        else if (a == "--data")
            o.data = v;
        else if (a == "--limit")
            o.limit = std::strtoull(v.c_str(), &end, 10);
        else if (a == "--epochs")
            o.epochs = std::strtoull(v.c_str(), &end, 10);
        else if (a == "--lr")
            o.lr = std::strtod(v.c_str(), &end);
        else
            tg::fail("unknown option {} (see --help)", a);
        if (end != nullptr && (*end != '\0' || v.empty())) tg::fail("{}: '{}' is not a number", a, v);
    }
    if (o.limit == 0 || o.epochs == 0 || !(o.lr > 0)) tg::fail("--limit, --epochs and --lr must be positive");
    return o;
}

void train(nn::MLP<float>& net, nn::Optimizer<float>& opt, const nn::Dataset& data, std::size_t epochs) {
    tg::Tape<float> tape(std::size_t(16) << 20);
    nn::BatchBuffers<float> buf(128, data.features);
    nn::TrainState st;
    while (st.epoch < epochs)
        nn::train_epoch(net, opt, tape, data, 128, st, buf, [](const nn::BatchReport&) { return true; });
}

int run(const Options& o) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto dir = o.data.empty() ? nn::fashion_mnist_dir() : std::filesystem::path(o.data);
    nn::Dataset train_set = nn::load_fashion_mnist("train", dir);
    nn::Dataset test_set = nn::load_fashion_mnist("test", dir);
    train_set.truncate(o.limit);
    const std::vector<std::size_t> sizes = {train_set.features, 256, 128, 10};
    nn::BatchBuffers<float> eval_buf(1000, test_set.features);

    if (!std::filesystem::exists(o.checkpoint)) {
        fmt::print("no checkpoint at {}: training the whole network for one epoch on {} images first\n",
                   o.checkpoint, train_set.size());
        nn::MLP<float> base(sizes, nn::Activation::relu, 42);
        nn::Adam<float> opt(base.parameters(), {.lr = 1e-3});
        train(base, opt, train_set, 1);
        if (auto parent = std::filesystem::path(o.checkpoint).parent_path(); !parent.empty())
            std::filesystem::create_directories(parent);
        nn::save_checkpoint<float>(o.checkpoint, base.parameters(), nullptr, nn::TrainState{});
    }

    nn::MLP<float> net(sizes, nn::Activation::relu, 42);
    nn::TrainState ignored;
    nn::restore_checkpoint<float>(nn::Archive::load(o.checkpoint), net.parameters(), nullptr, ignored);
    const auto loaded = nn::evaluate(net, test_set, eval_buf);  // no tape: plain tensors
    fmt::print("loaded {}: test accuracy {:.2f}%\n", o.checkpoint, 100 * loaded.accuracy);

    // A new head: the last layer re-initialised (from another network's initialisation).
    const auto ps = net.parameters();  // W0 b0 W1 b1 W2 b2
    nn::MLP<float> fresh(sizes, nn::Activation::relu, 7);
    for (std::size_t k = 4; k < 6; ++k) ps[k]->mutable_value() = fresh.parameters()[k]->value;
    const auto before = nn::evaluate(net, test_set, eval_buf);
    fmt::print("new head: test accuracy {:.2f}%\n", 100 * before.accuracy);

    // Freeze everything, then unfreeze the head. Adam is given all parameters and skips the frozen.
    net.freeze();
    ps[4]->requires_grad(true);
    ps[5]->requires_grad(true);
    std::vector<tg::Tensor<float>> hidden;
    for (std::size_t k = 0; k < 4; ++k) hidden.push_back(ps[k]->value);
    nn::Adam<float> opt(net.parameters(), {.lr = o.lr});
    train(net, opt, train_set, o.epochs);
    const auto after = nn::evaluate(net, test_set, eval_buf);

    bool unchanged = true;
    for (std::size_t k = 0; k < 4; ++k)
        unchanged = unchanged &&
                    std::memcmp(hidden[k].data(), ps[k]->value.data(), hidden[k].size() * sizeof(float)) == 0;
    const std::size_t trained = ps[4]->size() + ps[5]->size();
    fmt::print(
        "fine-tuned the last layer ({} of {} parameters) for {} epoch{} on {} images: test accuracy "
        "{:.2f}%\n",
        trained, net.parameter_count(), o.epochs, o.epochs == 1 ? "" : "s", train_set.size(),
        100 * after.accuracy);
    fmt::print("hidden layers bit-for-bit unchanged: {}\n", unchanged ? "yes" : "NO");
    fmt::print("time: {:.1f}s\n",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return unchanged ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(parse(argc, argv));
    } catch (const std::exception& e) {
        fmt::print(stderr, "finetune_last_layer: {}\n", e.what());
        return 1;
    }
}
