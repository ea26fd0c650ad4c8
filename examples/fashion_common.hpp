// The machinery the two Fashion-MNIST demos share (examples/fashion_mnist.cpp, the MLP, and
// examples/fashion_cnn.cpp, the CNN): command line, optimiser choice, the training loop with its
// progress bar, evaluation after every epoch, history CSV/SVG, checkpoint/resume (parameters,
// optimiser, position, layer buffers, history), and the data-parallel mode (--ddp, under
// `mpirun -np N`, docs/distributed.md). A demo supplies only its network (DemoSpec::build).
//
// Data-parallel: every rank holds a replica (tg::dist::DistributedDataParallel: rank 0's
// weights and buffers everywhere, gradients averaged); each global batch of --batch rows (the
// same batches in the same order as one process) is split into N consecutive shares, so the
// steps are the single-process steps up to rounding. Only rank 0 prints (the other ranks' stdout
// and progress bar go to /dev/null), writes the history and the checkpoints; --resume is read by
// rank 0 and broadcast. Evaluation is split over the ranks (batch i on rank i mod N) and summed.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <tapegrad/dist.hpp>
#include <tapegrad/nn.hpp>

namespace fashion {

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
namespace dist = tapegrad::dist;

// The command line; a demo's recipe is its DemoSpec::defaults.
struct Options {
    std::size_t epochs = 5;
    std::size_t batch = 128;
    std::optional<double> lr;
    std::string optimizer = "adam";
    std::vector<std::size_t> hidden = {256, 128};  // MLP only
    std::uint64_t seed = 42;
    std::string precision = "float";
    int threads = 1;
    std::size_t limit = 0;
    std::string checkpoint, resume;
    std::size_t max_steps = 0;
    std::string out = "runs";
    std::string data;
    std::string init = "he";  // MLP only
    bool ddp = false;           // data-parallel over MPI (run under mpirun)
    std::size_t log_steps = 0;  // print the loss of the first N steps
    std::string schedule = "cosine";
};

// A network built by a demo, with the lines that describe it.
template <class T>
struct Network {
    std::unique_ptr<nn::Module<T>> net;
    std::string header;  // printed once before training ("network …")
    std::string title;   // the SVG's title
};

struct DemoSpec {
    const char* name;          // program name, for messages
    Options defaults;          // the demo's recipe (what no option changes)
    bool mlp_options = false;  // accepts --hidden and --init
    std::size_t tape_bytes = std::size_t(16) << 20;
};

inline void usage(const DemoSpec& d, std::FILE* f) {
    const Options& o = d.defaults;
    fmt::print(f,
               "usage: {} [options]\n"
               "  --epochs N           training epochs ({})\n"
               "  --batch N            mini-batch size, global: split over the ranks with --ddp ({})\n"
               "  --lr X               learning rate (adam/adamw 1e-3, sgd 0.1, momentum 0.05)\n"
               "  --optimizer NAME     sgd | momentum (0.9, Nesterov) | adam | adamw ({})\n",
               d.name, o.epochs, o.batch, o.optimizer);
    if (d.mlp_options) fmt::print(f, "  --hidden A,B,...     hidden layer sizes ({})\n", fmt::join(o.hidden, ","));
    fmt::print(f,
               "  --seed N             weights and shuffling ({})\n"
               "  --precision P        float | double ({})\n"
               "  --threads N          OpenBLAS threads ({})\n"
               "  --limit N            train on the first N images only\n"
               "  --checkpoint PATH    save a checkpoint after every epoch\n"
               "  --resume PATH        continue from a checkpoint (and keep saving to it)\n"
               "  --max-steps N        stop after N optimiser steps in total (saving a checkpoint)\n"
               "  --out DIR            where history.csv and history.svg go ({})\n"
               "  --data DIR           Fashion-MNIST directory (/usr/share/datasets/fashion-mnist)\n",
               o.seed, o.precision, o.threads, o.out);
    if (d.mlp_options)
        fmt::print(f,
                   "  --init he|torch      He-uniform weights and zero biases, or torch.nn.Linear's\n"
                   "                       U(±1/√fan_in) for weights and biases ({})\n",
                   o.init);
    fmt::print(f,
               "  --schedule S         none | cosine (CosineAnnealingLR over the epochs) ({})\n"
               "  --ddp                data-parallel: run under mpirun -np N (docs/distributed.md)\n"
               "  --log-steps N        print the loss of each of the first N steps\n",
               o.schedule);
}

inline std::size_t to_size(std::string_view opt, const std::string& v) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long x = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end || errno || v[0] == '-') tg::fail("{}: '{}' is not a non-negative integer", opt, v);
    return static_cast<std::size_t>(x);
}

inline Options parse(const DemoSpec& d, int argc, char** argv) {
    Options o = d.defaults;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--ddp") {
            o.ddp = true;
            continue;
        }
        if (a == "-h" || a == "--help") {
            usage(d, stdout);
            std::exit(0);
        }
        if (i + 1 >= argc) tg::fail("{}: missing value (see --help)", a);
        const std::string v = argv[++i];
        if (a == "--epochs") o.epochs = to_size(a, v);
        else if (a == "--batch") o.batch = to_size(a, v);
        else if (a == "--lr") {
            char* end = nullptr;
            o.lr = std::strtod(v.c_str(), &end);
            if (*end || !(*o.lr > 0)) tg::fail("--lr: '{}' is not a positive number", v);
        } else if (a == "--optimizer") o.optimizer = v;
        else if (a == "--hidden" && d.mlp_options) {
            o.hidden.clear();
            std::size_t start = 0;
            while (start <= v.size()) {
                const std::size_t comma = std::min(v.find(',', start), v.size());
                if (comma > start) o.hidden.push_back(to_size(a, v.substr(start, comma - start)));
                start = comma + 1;
            }
        } else if (a == "--seed") o.seed = to_size(a, v);
        else if (a == "--precision") o.precision = v;
        else if (a == "--threads") o.threads = static_cast<int>(to_size(a, v));
        else if (a == "--limit") o.limit = to_size(a, v);
        else if (a == "--checkpoint") o.checkpoint = v;
        else if (a == "--resume") o.resume = v;
        else if (a == "--max-steps") o.max_steps = to_size(a, v);
        else if (a == "--out") o.out = v;
        else if (a == "--data") o.data = v;
        else if (a == "--init" && d.mlp_options) o.init = v;
        else if (a == "--schedule") o.schedule = v;
        else if (a == "--log-steps") o.log_steps = to_size(a, v);
        else tg::fail("unknown option {} (see --help)", a);
    }
    if (o.batch == 0) tg::fail("--batch must be positive");
    if (o.optimizer != "sgd" && o.optimizer != "momentum" && o.optimizer != "adam" && o.optimizer != "adamw")
        tg::fail("--optimizer: '{}' is not one of sgd, momentum, adam, adamw", o.optimizer);
    if (o.precision != "float" && o.precision != "double")
        tg::fail("--precision: '{}' is not float or double", o.precision);
    if (o.init != "he" && o.init != "torch") tg::fail("--init: '{}' is not he or torch", o.init);
    if (o.schedule != "none" && o.schedule != "cosine") tg::fail("--schedule: '{}' is not none or cosine", o.schedule);
    if (o.threads < 1) tg::fail("--threads must be at least 1");
    if (o.checkpoint.empty()) o.checkpoint = o.resume;
    return o;
}

template <class T>
std::unique_ptr<nn::Optimizer<T>> make_optimizer(const Options& o, nn::Module<T>& net) {
    if (o.optimizer == "sgd") return std::make_unique<nn::SGD<T>>(net.parameters(), nn::SGDOptions{.lr = o.lr.value_or(0.1)});
    if (o.optimizer == "momentum")
        return std::make_unique<nn::SGD<T>>(net.parameters(),
                                            nn::SGDOptions{.lr = o.lr.value_or(0.05), .momentum = 0.9, .nesterov = true});
    if (o.optimizer == "adamw") return std::make_unique<nn::AdamW<T>>(net.parameters(), nn::AdamWOptions{.lr = o.lr.value_or(1e-3)});
    return std::make_unique<nn::Adam<T>>(net.parameters(), nn::AdamOptions{.lr = o.lr.value_or(1e-3)});
}

// The running sums of the epoch in progress (saved with mid-epoch checkpoints).
struct EpochSums {
    double loss = 0;  // Σ batch loss · rows
    double correct = 0, samples = 0, seconds = 0;
};

inline void save_history(nn::Archive& a, const nn::History& h, const EpochSums& s) {
    std::vector<double> cols[6];
    for (const auto& r : h.records()) {
        cols[0].push_back(static_cast<double>(r.epoch));
        cols[1].push_back(r.train_loss);
        cols[2].push_back(r.train_accuracy);
        cols[3].push_back(r.test_loss);
        cols[4].push_back(r.test_accuracy);
        cols[5].push_back(r.seconds);
    }
    for (int k = 0; k < 6; ++k) a.put_f64(fmt::format("history/{}", k), cols[k]);
    const double partial[4] = {s.loss, s.correct, s.samples, s.seconds};
    a.put_f64("history/partial", partial);
}

inline void load_history(const nn::Archive& a, nn::History& h, EpochSums& s) {
    if (!a.contains("history/0")) return;
    std::vector<double> cols[6];
    for (int k = 0; k < 6; ++k) cols[k] = a.get_f64(fmt::format("history/{}", k));
    for (std::size_t i = 0; i < cols[0].size(); ++i) {
        nn::EpochRecord r;
        r.epoch = static_cast<std::size_t>(cols[0][i]);
        double* f[5] = {&r.train_loss, &r.train_accuracy, &r.test_loss, &r.test_accuracy, &r.seconds};
        for (int k = 1; k < 6; ++k) {
            if (cols[k].size() != cols[0].size()) tg::fail("{}: history columns of different lengths", a.source());
            *f[k - 1] = cols[k][i];
        }
        h.add(r);
    }
    const auto p = a.get_f64("history/partial");
    if (p.size() == 4) s = {p[0], p[1], p[2], p[3]};
}

// nn::train_epoch, data-parallel: the same global batches in the same order; rank r of N
// computes rows [⌊r·m/N⌋, ⌊(r+1)·m/N⌋) of each batch of m rows, its mean loss scaled by
// N·m_r/m, so that the average over ranks (ddp) is the batch's mean loss whatever the shares
// (the last batch may not divide; a rank with no rows takes part with zero gradients). The
// report (loss, correct) is the whole batch's, summed over the ranks.
template <class T, class OnBatch>
bool train_epoch_ddp(dist::DistributedDataParallel<T>& ddp, nn::Optimizer<T>& opt, tg::Tape<T>& tape,
                     const nn::Dataset& data, std::size_t batch, nn::TrainState& st, nn::BatchBuffers<T>& buf,
                     OnBatch&& on_batch) {
    const std::size_t n = data.size(), r = static_cast<std::size_t>(dist::rank()),
                      w = static_cast<std::size_t>(dist::world_size());
    nn::Rng rng = st.rng;
    nn::epoch_order(buf.order, n, rng, true);
    const std::size_t nb = (n + batch - 1) / batch;
    while (st.batch < nb) {
        const std::size_t b0 = static_cast<std::size_t>(st.batch) * batch, m = std::min(batch, n - b0);
        const std::size_t lo = r * m / w, hi = (r + 1) * m / w, mr = hi - lo;
        double sums[2] = {0, 0};  // Σ loss over this rank's rows, correct
        if (mr > 0) {
            nn::gather_batch(data, std::span<const std::uint32_t>(buf.order).subspan(b0 + lo, mr), buf.x, buf.y);
            const tg::Tensor<T> xv = buf.x_rows(mr), yv = buf.y_rows(mr);
            tape.reset();
            tg::Var<T> logits = ddp(tape, tape.constant_ref(xv));
            tg::Var<T> loss = tg::softmax_cross_entropy(logits, tape.constant_ref(yv));
            tape.backward(mr * w == m ? loss : loss * (static_cast<double>(mr * w) / static_cast<double>(m)));
            sums[0] = static_cast<double>(loss.item()) * static_cast<double>(mr);
            sums[1] = static_cast<double>(nn::count_correct(logits.value(), yv));
        } else {
            ddp.forward_skipped();  // the buffer broadcast the others' forward makes
        }
        ddp.finish_backward();
        dist::allreduce_sum(std::span<double>(sums));
        nn::BatchReport rep{static_cast<std::size_t>(st.batch), nb, m, sums[0] / static_cast<double>(m),
                            static_cast<std::size_t>(sums[1])};
        opt.step();
        opt.zero_grad();
        ++st.batch;
        ++st.step;
        if (!on_batch(rep)) return false;
    }
    st.rng = rng;
    st.batch = 0;
    ++st.epoch;
    return true;
}

// nn::evaluate, split over the ranks: batch i (of buf's rows) on rank i mod N, the loss sums and
// correct counts added up. The accuracy is exactly one process's; the mean loss may differ in
// its last bits (another summation order).
template <class T>
nn::Evaluation evaluate_ddp(nn::Module<T>& net, const nn::Dataset& data, nn::BatchBuffers<T>& buf) {
    const std::size_t n = data.size(), batch = buf.x.rows(), r = static_cast<std::size_t>(dist::rank()),
                      w = static_cast<std::size_t>(dist::world_size());
    double sums[2] = {0, 0};  // Σ loss · rows, correct
    buf.order.resize(batch);
    for (std::size_t b0 = r * batch; b0 < n; b0 += w * batch) {
        const std::size_t m = std::min(batch, n - b0);
        for (std::size_t i = 0; i < m; ++i) buf.order[i] = static_cast<std::uint32_t>(b0 + i);
        nn::gather_batch(data, std::span<const std::uint32_t>(buf.order).first(m), buf.x, buf.y);
        const tg::Tensor<T> xv = buf.x_rows(m), yv = buf.y_rows(m);
        const tg::Tensor<T> logits = net(xv);
        sums[0] += static_cast<double>(tg::softmax_cross_entropy(logits, yv).item()) * static_cast<double>(m);
        sums[1] += static_cast<double>(nn::count_correct(logits, yv));
    }
    dist::allreduce_sum(std::span<double>(sums));
    nn::Evaluation e;
    e.samples = n;
    if (n) {
        e.loss = sums[0] / static_cast<double>(n);
        e.accuracy = sums[1] / static_cast<double>(n);
    }
    return e;
}

// Trains and evaluates the network `build` makes, as the options say. Returns the exit code.
template <class T>
int run(const DemoSpec& d, const Options& o,
        const std::function<Network<T>(const Options&, const nn::Dataset& train)>& build) {
    using clock = std::chrono::steady_clock;
    tg::set_blas_threads(o.threads);
    const auto dir = o.data.empty() ? nn::fashion_mnist_dir() : std::filesystem::path(o.data);
    const auto t_load = clock::now();
    nn::Dataset train = nn::load_fashion_mnist("train", dir);
    nn::Dataset test = nn::load_fashion_mnist("test", dir);
    if (o.limit) train.truncate(o.limit);
    const double load_s = std::chrono::duration<double>(clock::now() - t_load).count();

    Network<T> model = build(o, train);
    nn::Module<T>& net = *model.net;
    std::unique_ptr<dist::DistributedDataParallel<T>> ddp;
    if (o.ddp) ddp = std::make_unique<dist::DistributedDataParallel<T>>(net);  // rank 0's weights everywhere
    auto opt = make_optimizer<T>(o, net);
    nn::TrainState st{.rng = nn::Rng(o.seed ^ 0x5eed5eed5eedull)};
    nn::History history;
    EpochSums sums;
    if (!o.resume.empty()) {
        const nn::Archive a = o.ddp ? dist::load_archive(o.resume) : nn::Archive::load(o.resume);  // rank 0 reads
        nn::restore_checkpoint<T>(a, net.parameters(), opt.get(), st);
        nn::get_buffers(a, net);
        load_history(a, history, sums);
        fmt::print("resumed from {}: epoch {}, batch {}, step {}\n", o.resume, st.epoch + 1, st.batch, st.step);
    }
    std::optional<nn::CosineAnnealingLR> cosine;
    if (o.schedule == "cosine") {
        cosine.emplace(*opt, std::max<std::size_t>(o.epochs, 1));
        cosine->set_epoch(static_cast<std::size_t>(st.epoch));
    }
    auto checkpoint = [&] {
        if (o.checkpoint.empty()) return;
        // Every rank builds the same archive; only rank 0's is written.
        nn::Archive a = nn::make_checkpoint<T>(net.parameters(), opt.get(), st);
        nn::put_buffers(a, net);
        save_history(a, history, sums);
        if (o.ddp) dist::save_archive(a, o.checkpoint);
        else a.save(o.checkpoint);
    };

    fmt::print("Fashion-MNIST: {} training / {} test images (loaded in {:.2f}s)\n", train.size(), test.size(), load_s);
    fmt::print("{}\n", model.header);
    fmt::print("{} parameters, {}, {} lr {} ({} schedule), batch {}, seed {}, {} BLAS thread{}\n", net.parameter_count(),
               o.precision, opt->name(), opt->lr(), o.schedule, o.batch, o.seed, o.threads, o.threads == 1 ? "" : "s");
    if (o.ddp)
        fmt::print("data-parallel: {} rank{}{}, {} rows of each batch of {} per rank\n", dist::world_size(),
                   dist::world_size() == 1 ? "" : "s", dist::built_with_mpi() ? " (MPI)" : " (built without MPI)",
                   o.batch / static_cast<std::size_t>(dist::world_size()), o.batch);

    tg::Tape<T> tape(d.tape_bytes);
    nn::BatchBuffers<T> buf(o.batch, train.features);
    nn::BatchBuffers<T> eval_buf(1000, test.features);
    const bool rank0 = !o.ddp || dist::rank() == 0;
    std::FILE* null = rank0 ? nullptr : std::fopen("/dev/null", "w");
    nn::ProgressBar bar(rank0 || !null ? stderr : null);
    bool stopped = false;
    const auto t_all = clock::now();
    double train_seconds = 0;
    while (st.epoch < o.epochs && !stopped) {
        const std::size_t nb = (train.size() + o.batch - 1) / o.batch;
        net.train();
        bar.start(st.epoch + 1, o.epochs, nb, static_cast<std::size_t>(st.batch));
        std::size_t run_samples = 0, run_steps = 0;
        const auto t0 = clock::now();
        const double seconds_before = sums.seconds;
        auto on_batch = [&](const nn::BatchReport& r) {
            if (st.step <= o.log_steps) fmt::print("step {} loss {:.9g}\n", st.step, r.loss);
            sums.loss += r.loss * static_cast<double>(r.rows);
            sums.correct += static_cast<double>(r.correct);
            sums.samples += static_cast<double>(r.rows);
            run_samples += r.rows;
            ++run_steps;
            bar.update(r.batch + 1, run_samples, sums.loss / sums.samples);
            if (o.max_steps && st.step >= o.max_steps) {
                sums.seconds = seconds_before + std::chrono::duration<double>(clock::now() - t0).count();
                return false;
            }
            return true;
        };
        const bool done = ddp ? train_epoch_ddp(*ddp, *opt, tape, train, o.batch, st, buf, on_batch)
                              : nn::train_epoch(net, *opt, tape, train, o.batch, st, buf, on_batch);
        const double epoch_s = std::chrono::duration<double>(clock::now() - t0).count();
        train_seconds += epoch_s;
        bar.finish();
        if (!done) {
            checkpoint();
            fmt::print("stopped after step {} (epoch {}, batch {}){}\n", st.step, st.epoch + 1, st.batch,
                       o.checkpoint.empty() ? "" : fmt::format("; checkpoint written to {}", o.checkpoint));
            stopped = true;
            break;
        }
        net.eval();
        if (ddp) ddp->broadcast_buffers();  // every rank evaluates with rank 0's statistics
        const auto ev = ddp ? evaluate_ddp(net, test, eval_buf) : nn::evaluate(net, test, eval_buf);  // no tape
        nn::EpochRecord rec{static_cast<std::size_t>(st.epoch), sums.loss / sums.samples, sums.correct / sums.samples,
                            ev.loss, ev.accuracy, seconds_before + epoch_s};
        history.add(rec);
        sums = {};
        if (cosine) cosine->step();
        fmt::print("epoch {}/{}  train loss {:.4f}  train acc {:.2f}%  test loss {:.4f}  test acc {:.2f}%  {:.1f}s "
                   "({:.0f} samples/s, {:.1f} ms/step)\n",
                   rec.epoch, o.epochs, rec.train_loss, 100 * rec.train_accuracy, rec.test_loss, 100 * rec.test_accuracy,
                   epoch_s, static_cast<double>(run_samples) / epoch_s,
                   1000 * epoch_s / static_cast<double>(std::max<std::size_t>(run_steps, 1)));
        std::fflush(stdout);
        checkpoint();
    }
    const double total_s = std::chrono::duration<double>(clock::now() - t_all).count();

    if (null) std::fclose(null);
    if (!rank0) return 0;  // the history is rank 0's to write
    std::filesystem::create_directories(o.out);
    const auto csv = std::filesystem::path(o.out) / "history.csv";
    const auto svg = std::filesystem::path(o.out) / "history.svg";
    history.write_csv(csv);
    history.write_svg(svg, fmt::format("Fashion-MNIST {}, {} lr {}, batch {} ({})", model.title, opt->name(), opt->lr(),
                                       o.batch, o.precision));
    if (!history.empty()) {
        const auto& last = history.records().back();
        double best = 0;
        for (const auto& r : history.records()) best = std::max(best, r.test_accuracy);
        fmt::print("\nsummary: {} epochs, final test accuracy {:.2f}% (best {:.2f}%), final train loss {:.4f}\n",
                   last.epoch, 100 * last.test_accuracy, 100 * best, last.train_loss);
    }
    fmt::print("time: {:.1f}s training + evaluation ({:.1f}s training)\n", total_s, train_seconds);
    fmt::print("history: {} and {}\n", csv.string(), svg.string());
    return 0;
}

// main(): parse, start MPI with --ddp (rank ≠ 0 prints nothing on stdout; errors still reach
// stderr from every rank), run in the chosen precision, errors → exit code 1.
template <template <class> class Build>
int demo_main(const DemoSpec& d, int argc, char** argv) {
    try {
        const Options o = parse(d, argc, argv);
        std::optional<dist::Env> env;
        if (o.ddp) {
            env.emplace(argc, argv);
            if (dist::rank() != 0 && !std::freopen("/dev/null", "w", stdout)) tg::fail("cannot silence rank {}", dist::rank());
        }
        return o.precision == "double" ? run<double>(d, o, Build<double>{}) : run<float>(d, o, Build<float>{});
    } catch (const std::exception& e) {
        fmt::print(stderr, "{}: {}\n", d.name, e.what());
        return 1;
    }
}

}  // namespace fashion
