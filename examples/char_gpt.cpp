// A character-level GPT trained on the text of Debian's fortunes package (issue 13's demo):
// nanoGPT's CPU configuration (4 layers, 4 heads, 128 dims, context 64, batch 12, no dropout,
// 2000 iterations) with nanoGPT's recipe (config/train_shakespeare_char.py): AdamW (lr 1e-3,
// betas 0.9/0.99, eps 1e-8) in two parameter groups, weight decay 0.1 on the Linear weights
// (attention, MLP, lm_head) and none on biases, LayerNorms and the embedding tables; linear
// warm-up over 100 iterations, then cosine decay to 1e-4 at --lr-decay-iters (the last
// iteration); the gradients clipped to a total 2-norm of 1.0 before each step.
// scripts/pytorch_gpt.py is the same recipe, data split, batches and evaluation in PyTorch.
//
//   char_gpt [--iters 2000] [--seed 1337] [--threads 1] [--precision float|double]
//            [--data /usr/share/games/fortunes | --text FILE] [--out runs/char_gpt]
//            [--checkpoint PATH] [--resume PATH] [--max-steps N] [--eval-interval 250]
//            [--eval-batches 50] [--full-val 1] [--sample 400] [--prompt TEXT]
//            [--temperature 0.8] [--top-k 0] [--log-steps N]
//            [--layers 4] [--heads 4] [--embd 128] [--block 64] [--batch 12] [--lr 1e-3]
//            [--min-lr 1e-4] [--warmup-iters 100] [--lr-decay-iters ITERS] [--beta2 0.99]
//            [--weight-decay 0.1] [--grad-clip 1.0]
//
// Data: the files of the fortunes directory without .dat/.u8 (sorted by name, concatenated,
// decoded as UTF-8: 2,576,627 characters, 113 distinct); the vocabulary is the sorted distinct
// characters; the first 90 % train, the rest validates. A training batch is --batch windows of
// --block characters starting at uniform random offsets (nanoGPT's get_batch), the targets the
// same windows shifted by one; the offsets come from nn::Rng (xoshiro256**), which
// scripts/pytorch_gpt.py reimplements, so that both sides train on the same batches.
//
// Evaluation (scripts/pytorch_gpt.py does the same): every --eval-interval steps, the mean loss
// of --eval-batches random batches of each split (nanoGPT's estimate_loss; those batches are
// drawn from a generator seeded by (seed, step), so they do not perturb training); at the end
// the validation loss over every non-overlapping --block-character window of the validation
// split (windows at 0, block, 2·block, …, targets shifted by one), mean over every position.
//
// Same seed, same curve: weights, batches and samples come from tg::nn::Rng streams seeded by
// --seed. Writes <out>/history.csv and <out>/history.svg; --checkpoint saves parameters, AdamW
// state, the step and the batch generator at every evaluation (and when --max-steps stops the
// run); --resume continues from such a file exactly where it stopped. Parameters are saved under
// nanoGPT's state_dict names (transformer.wte.weight, …); a checkpoint of an older char_gpt
// (names with a "000." prefix, one AdamW group at a constant rate) is refused with an Error.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/nn.hpp>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
namespace fs = std::filesystem;

namespace {

struct Options {
    std::size_t iters = 2000, batch = 12, block = 64, layers = 4, heads = 4, embd = 128;
    double lr = 1e-3, min_lr = 1e-4, beta2 = 0.99, weight_decay = 0.1, grad_clip = 1.0;
    std::size_t warmup_iters = 100, lr_decay_iters = 0;  // 0: max(--iters, --warmup-iters)
    std::uint64_t seed = 1337;
    int threads = 1;
    std::string precision = "float";
    std::string data = "/usr/share/games/fortunes";
    std::string text;  // one text file instead of the fortunes directory
    std::string out = "runs/char_gpt";
    std::string checkpoint, resume;
    std::size_t max_steps = 0;
    std::size_t eval_interval = 250, eval_batches = 50;
    bool full_val = true;
    std::size_t sample = 400;
    std::string prompt = "\n";
    double temperature = 0.8;
    std::size_t top_k = 0;
    std::size_t log_steps = 0;
};

void usage(std::FILE* f) {
    fmt::print(f,
               "usage: char_gpt [options]\n"
               "  --iters N            training iterations (2000)\n"
               "  --seed N             weights, batches and sampling (1337)\n"
               "  --threads N          OpenBLAS threads (1)\n"
               "  --precision P        float | double (float)\n"
               "  --data DIR           fortunes directory (/usr/share/games/fortunes)\n"
               "  --text FILE          train on one UTF-8 text file instead\n"
               "  --out DIR            where history.csv and history.svg go (runs/char_gpt)\n"
               "  --checkpoint PATH    save a checkpoint at every evaluation\n"
               "  --resume PATH        continue from a checkpoint (and keep saving to it)\n"
               "  --max-steps N        stop after N steps in total (saving a checkpoint)\n"
               "  --eval-interval N    estimate train/val loss every N steps (250)\n"
               "  --eval-batches N     batches per estimate (50)\n"
               "  --full-val 0|1       at the end, the loss over every validation window (1)\n"
               "  --sample N           characters sampled at the end (400; 0: none)\n"
               "  --prompt TEXT        the sample's prompt (a newline)\n"
               "  --temperature X      sampling temperature (0.8)\n"
               "  --top-k N            sample among the N likeliest characters (0: all)\n"
               "  --log-steps N        print the loss of each of the first N steps\n"
               "  --layers N --heads N --embd N --block N --batch N   model and batch (4 4 128 64 12)\n"
               "  --lr X --min-lr X --beta2 X --weight-decay X        AdamW (1e-3, 1e-4, 0.99, 0.1)\n"
               "  --warmup-iters N     linear warm-up iterations (100)\n"
               "  --lr-decay-iters N   cosine decay to --min-lr ends here (--iters, at least --warmup-iters)\n"
               "  --grad-clip X        clip the gradients' total 2-norm (1.0; 0: no clipping)\n");
}

std::size_t to_size(std::string_view opt, const std::string& v) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long x = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end || errno || v[0] == '-') tg::fail("{}: '{}' is not a non-negative integer", opt, v);
    return static_cast<std::size_t>(x);
}
double to_double(std::string_view opt, const std::string& v) {
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end || !std::isfinite(x) || x < 0) tg::fail("{}: '{}' is not a non-negative number", opt, v);
    return x;
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "-h" || a == "--help") {
            usage(stdout);
            std::exit(0);
        }
        if (i + 1 >= argc) tg::fail("{}: missing value (see --help)", a);
        const std::string v = argv[++i];
        if (a == "--iters") o.iters = to_size(a, v);
        else if (a == "--batch") o.batch = to_size(a, v);
        else if (a == "--block") o.block = to_size(a, v);
        else if (a == "--layers") o.layers = to_size(a, v);
        else if (a == "--heads") o.heads = to_size(a, v);
        else if (a == "--embd") o.embd = to_size(a, v);
        else if (a == "--lr") o.lr = to_double(a, v);
        else if (a == "--min-lr") o.min_lr = to_double(a, v);
        else if (a == "--beta2") o.beta2 = to_double(a, v);
        else if (a == "--weight-decay") o.weight_decay = to_double(a, v);
        else if (a == "--grad-clip") o.grad_clip = to_double(a, v);
        else if (a == "--warmup-iters") o.warmup_iters = to_size(a, v);
        else if (a == "--lr-decay-iters") o.lr_decay_iters = to_size(a, v);
        else if (a == "--seed") o.seed = to_size(a, v);
        else if (a == "--threads") o.threads = static_cast<int>(to_size(a, v));
        else if (a == "--precision") o.precision = v;
        else if (a == "--data") o.data = v;
        else if (a == "--text") o.text = v;
        else if (a == "--out") o.out = v;
        else if (a == "--checkpoint") o.checkpoint = v;
        else if (a == "--resume") o.resume = v;
        else if (a == "--max-steps") o.max_steps = to_size(a, v);
        else if (a == "--eval-interval") o.eval_interval = to_size(a, v);
        else if (a == "--eval-batches") o.eval_batches = to_size(a, v);
        else if (a == "--full-val") o.full_val = to_size(a, v) != 0;
        else if (a == "--sample") o.sample = to_size(a, v);
        else if (a == "--prompt") o.prompt = v;
        else if (a == "--temperature") o.temperature = to_double(a, v);
        else if (a == "--top-k") o.top_k = to_size(a, v);
        else if (a == "--log-steps") o.log_steps = to_size(a, v);
        else tg::fail("unknown option {} (see --help)", a);
    }
    if (o.batch == 0 || o.block == 0) tg::fail("--batch and --block must be positive");
    if (o.eval_interval == 0) tg::fail("--eval-interval must be positive");
    if (o.precision != "float" && o.precision != "double")
        tg::fail("--precision: '{}' is not float or double", o.precision);
    if (o.threads < 1) tg::fail("--threads must be at least 1");
    if (!(o.temperature > 0)) tg::fail("--temperature must be positive");
    if (!(o.lr > 0)) tg::fail("--lr must be positive");
    if (o.lr_decay_iters == 0) o.lr_decay_iters = std::max(o.iters, o.warmup_iters);
    if (o.lr_decay_iters < o.warmup_iters)
        tg::fail("--lr-decay-iters {} is below --warmup-iters {}", o.lr_decay_iters, o.warmup_iters);
    if (o.checkpoint.empty()) o.checkpoint = o.resume;
    return o;
}

// ---- text ---------------------------------------------------------------------------------------

// Strict UTF-8 → code points (an invalid sequence is an Error naming the file and the offset).
void decode_utf8(const std::string& bytes, const std::string& what, std::vector<char32_t>& out) {
    std::size_t i = 0;
    while (i < bytes.size()) {
        const auto b0 = static_cast<unsigned char>(bytes[i]);
        std::size_t n = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > bytes.size()) tg::fail("{}: invalid UTF-8 at byte {}", what, i);
        char32_t c = n == 1 ? b0 : n == 2 ? (b0 & 0x1f) : n == 3 ? (b0 & 0x0f) : (b0 & 0x07);
        for (std::size_t k = 1; k < n; ++k) {
            const auto b = static_cast<unsigned char>(bytes[i + k]);
            if ((b >> 6) != 2) tg::fail("{}: invalid UTF-8 at byte {}", what, i);
            c = (c << 6) | (b & 0x3f);
        }
        out.push_back(c);
        i += n;
    }
}

void encode_utf8(char32_t c, std::string& s) {
    if (c < 0x80) {
        s += static_cast<char>(c);
    } else if (c < 0x800) {
        s += static_cast<char>(0xc0 | (c >> 6));
        s += static_cast<char>(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
        s += static_cast<char>(0xe0 | (c >> 12));
        s += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
        s += static_cast<char>(0x80 | (c & 0x3f));
    } else {
        s += static_cast<char>(0xf0 | (c >> 18));
        s += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
        s += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
        s += static_cast<char>(0x80 | (c & 0x3f));
    }
}

std::string read_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    if (!f) tg::fail("cannot open {}", p.string());
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

struct Corpus {
    std::vector<char32_t> vocab;            // sorted distinct characters
    std::vector<std::uint32_t> train, val;  // token ids
    std::size_t files = 0;
};

Corpus load_corpus(const Options& o) {
    std::vector<char32_t> text;
    Corpus c;
    if (!o.text.empty()) {
        decode_utf8(read_file(o.text), o.text, text);
        c.files = 1;
    } else {
        const fs::path dir(o.data);
        std::error_code ec;
        if (!fs::is_directory(dir, ec))
            tg::fail("the fortunes directory {} does not exist (Debian: apt-get install fortunes; "
                     "or give --data DIR or --text FILE)",
                     dir.string());
        std::vector<fs::path> files;
        for (const auto& e : fs::directory_iterator(dir)) {
            const std::string name = e.path().filename().string();
            if (!e.is_regular_file() || name.ends_with(".dat") || name.ends_with(".u8")) continue;
            files.push_back(e.path());
        }
        std::sort(files.begin(), files.end());
        if (files.empty()) tg::fail("no fortune files (without .dat/.u8) in {}", dir.string());
        for (const auto& f : files) decode_utf8(read_file(f), f.string(), text);
        c.files = files.size();
    }
    if (text.size() < 10 * (o.block + 1))
        tg::fail("{} characters of text are too few for windows of {}", text.size(), o.block + 1);
    c.vocab = text;
    std::sort(c.vocab.begin(), c.vocab.end());
    c.vocab.erase(std::unique(c.vocab.begin(), c.vocab.end()), c.vocab.end());
    std::vector<std::uint32_t> ids(text.size());
    for (std::size_t i = 0; i < text.size(); ++i)
        ids[i] = static_cast<std::uint32_t>(std::lower_bound(c.vocab.begin(), c.vocab.end(), text[i]) - c.vocab.begin());
    const std::size_t n_train = text.size() * 9 / 10;  // int(0.9 * n), as nanoGPT
    c.train.assign(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n_train));
    c.val.assign(ids.begin() + static_cast<std::ptrdiff_t>(n_train), ids.end());
    if (c.val.size() < o.block + 1) tg::fail("the validation split is shorter than a window");
    return c;
}

// ---- batches and evaluation ---------------------------------------------------------------------

// x[b, t] = data[i_b + t], y[b, t] = data[i_b + t + 1], i_b uniform in [0, n − block).
template <class T>
void get_batch(const std::vector<std::uint32_t>& data, std::size_t block, nn::Rng& rng, tg::Tensor<T>& x,
               tg::Tensor<T>& y) {
    const std::size_t batch = x.shape()[0];
    for (std::size_t b = 0; b < batch; ++b) {
        const auto i = static_cast<std::size_t>(rng.below(data.size() - block));
        for (std::size_t t = 0; t < block; ++t) {
            x[b * block + t] = static_cast<T>(data[i + t]);
            y[b * block + t] = static_cast<T>(data[i + t + 1]);
        }
    }
}

// Mean cross-entropy of logits (B, T, V) against targets y (B, T): the (B·T, V) rows against
// y viewed as a (B·T × 1) column (F.cross_entropy(logits.view(-1, V), y.view(-1)) in nanoGPT).
template <class T>
tg::Var<T> lm_loss(tg::Tape<T>& tape, const tg::Var<T>& logits, const tg::Tensor<T>& y) {
    const tg::Shape s = logits.shape();
    const auto col = tg::Tensor<T>::view(const_cast<T*>(y.data()), tg::Shape{s[0] * s[1], 1},
                                         std::pmr::get_default_resource());
    return tg::softmax_cross_entropy(tg::reshape(logits, tg::Shape{s[0] * s[1], s[2]}), tape.constant(col));
}

template <class T>
double batch_loss(nn::GPT<T>& gpt, tg::Tape<T>& tape, const tg::Tensor<T>& x, const tg::Tensor<T>& y) {
    tape.reset();
    auto guard = tape.no_grad();
    const tg::Var<T> logits = gpt(tape, tape.constant_ref(x));
    return static_cast<double>(lm_loss(tape, logits, y).item());
}

// nanoGPT's estimate_loss: the mean loss of `batches` random batches, drawn from a generator of
// their own (seeded by the run's seed and the step), so that evaluating does not move training's.
template <class T>
double estimate_loss(nn::GPT<T>& gpt, tg::Tape<T>& tape, const std::vector<std::uint32_t>& data, const Options& o,
                     std::uint64_t salt, tg::Tensor<T>& x, tg::Tensor<T>& y) {
    nn::Rng rng(o.seed * 0x9e3779b97f4a7c15ull + salt);
    double s = 0;
    for (std::size_t k = 0; k < o.eval_batches; ++k) {
        get_batch(data, o.block, rng, x, y);
        s += batch_loss(gpt, tape, x, y);
    }
    return o.eval_batches ? s / static_cast<double>(o.eval_batches) : 0.0;
}

// Every non-overlapping window of the validation split (starts 0, block, 2·block, … with a
// shifted target inside the split), `per` windows at a time; the mean over every position.
template <class T>
std::pair<double, std::size_t> full_validation(nn::GPT<T>& gpt, tg::Tape<T>& tape, const std::vector<std::uint32_t>& val,
                                               std::size_t block) {
    const std::size_t windows = (val.size() - 1) / block, per = 64;
    tg::Tensor<T> x(tg::Shape{per, block}), y(tg::Shape{per, block});
    double s = 0;
    for (std::size_t w0 = 0; w0 < windows; w0 += per) {
        const std::size_t m = std::min(per, windows - w0);
        for (std::size_t b = 0; b < m; ++b)
            for (std::size_t t = 0; t < block; ++t) {
                x[b * block + t] = static_cast<T>(val[(w0 + b) * block + t]);
                y[b * block + t] = static_cast<T>(val[(w0 + b) * block + t + 1]);
            }
        const auto xv = tg::Tensor<T>::view(x.data(), tg::Shape{m, block}, std::pmr::get_default_resource());
        const auto yv = tg::Tensor<T>::view(y.data(), tg::Shape{m, block}, std::pmr::get_default_resource());
        s += batch_loss(gpt, tape, xv, yv) * static_cast<double>(m);
    }
    return {s / static_cast<double>(windows), windows};
}

// ---- history ------------------------------------------------------------------------------------

struct Row {
    double iter, train, val, step_loss, seconds;  // estimates at `iter`; mean step loss since the last row
};

void write_csv(const fs::path& p, const std::vector<Row>& rows) {
    std::string s = "iter,train_loss,val_loss,mean_step_loss,seconds\n";
    for (const Row& r : rows)
        s += fmt::format("{:.0f},{:.6f},{:.6f},{:.6f},{:.3f}\n", r.iter, r.train, r.val, r.step_loss, r.seconds);
    std::ofstream(p) << s;
}

// One panel: the train and validation estimates over the iterations.
void write_svg(const fs::path& p, const std::vector<Row>& rows, const std::string& title) {
    const double W = 640, H = 400, L = 60, R = 20, Tp = 40, B = 50;
    double xmax = 1, ymin = 1e300, ymax = -1e300;
    for (const Row& r : rows) {
        xmax = std::max(xmax, r.iter);
        ymin = std::min({ymin, r.train, r.val});
        ymax = std::max({ymax, r.train, r.val});
    }
    if (rows.empty()) ymin = 0, ymax = 1;
    if (ymax - ymin < 1e-9) ymax = ymin + 1;
    auto X = [&](double v) { return L + (W - L - R) * v / xmax; };
    auto Y = [&](double v) { return Tp + (H - Tp - B) * (ymax - v) / (ymax - ymin); };
    std::string s = fmt::format(R"(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif">)"
                                "\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
                                W, H);
    s += fmt::format(R"(<text x="{}" y="22" font-size="14" text-anchor="middle">{}</text>)" "\n", W / 2, title);
    s += fmt::format(R"(<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#888"/>)" "\n", L, Tp, W - L - R,
                     H - Tp - B);
    for (int k = 0; k <= 4; ++k) {
        const double v = ymin + (ymax - ymin) * k / 4, xv = xmax * k / 4;
        s += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="11" text-anchor="end">{:.2f}</text>)" "\n", L - 6,
                         Y(v) + 4, v);
        s += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="11" text-anchor="middle">{:.0f}</text>)" "\n", X(xv),
                         H - B + 16, xv);
    }
    s += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="12" text-anchor="middle">iteration</text>)" "\n",
                     (L + W - R) / 2, H - 12);
    auto line = [&](auto get, const char* colour, const char* name, double ly) {
        std::string pts;
        for (const Row& r : rows) pts += fmt::format("{:.1f},{:.1f} ", X(r.iter), Y(get(r)));
        s += fmt::format(R"(<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>)" "\n", pts, colour);
        s += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" font-size="12" fill="{}">{}</text>)" "\n", W - R - 120, ly,
                         colour, name);
    };
    line([](const Row& r) { return r.train; }, "#1f77b4", "train loss", Tp + 16);
    line([](const Row& r) { return r.val; }, "#d62728", "validation loss", Tp + 32);
    s += "</svg>\n";
    std::ofstream(p) << s;
}

void save_rows(nn::Archive& a, const std::vector<Row>& rows) {
    std::vector<double> flat;
    for (const Row& r : rows) flat.insert(flat.end(), {r.iter, r.train, r.val, r.step_loss, r.seconds});
    a.put_f64("char_gpt/history", flat);
}
std::vector<Row> load_rows(const nn::Archive& a) {
    std::vector<Row> rows;
    if (!a.contains("char_gpt/history")) return rows;
    const auto f = a.get_f64("char_gpt/history");
    if (f.size() % 5) tg::fail("{}: malformed char_gpt/history", a.source());
    for (std::size_t i = 0; i < f.size(); i += 5) rows.push_back({f[i], f[i + 1], f[i + 2], f[i + 3], f[i + 4]});
    return rows;
}

std::string vocab_utf8(const std::vector<char32_t>& vocab) {
    std::string s;
    for (char32_t c : vocab) encode_utf8(c, s);
    return s;
}

// ---- the recipe ---------------------------------------------------------------------------------

template <class T>
std::size_t count_no_decay(const nn::AdamW<T>& opt) {
    std::size_t n = 0;
    for (std::size_t k = 0; k < opt.params().size(); ++k) n += opt.group_weight_decay(opt.group_of(k)) == 0;
    return n;
}

// Checkpoints of this recipe carry char_gpt/version 2. Version 1 (before the recipe above) had
// one AdamW group at a constant rate and parameter names prefixed by their index ("000.…"):
// resuming such a run here would continue a different recipe, so it is refused.
constexpr std::uint64_t kCheckpointVersion = 2;
void check_checkpoint_version(const nn::Archive& a) {
    if (!a.contains("char_gpt/version")) {
        if (a.contains("param/000.transformer.wte.weight"))
            tg::fail("{}: a checkpoint of an older char_gpt (parameter names with an index prefix, '000.transformer."
                     "wte.weight'; one AdamW group at a constant learning rate), which this version cannot resume: "
                     "its recipe differs (parameter groups, warm-up + cosine, clipping); start a new run",
                     a.source());
        tg::fail("{}: not a char_gpt checkpoint (no char_gpt/version entry)", a.source());
    }
    const auto v = a.get_u64("char_gpt/version");
    if (v.size() != 1 || v[0] != kCheckpointVersion)
        tg::fail("{}: char_gpt checkpoint version {}, this char_gpt reads version {}", a.source(),
                 v.empty() ? 0 : v[0], kCheckpointVersion);
}

// ---- the run ------------------------------------------------------------------------------------

template <class T>
int run(const Options& o) {
    using clock = std::chrono::steady_clock;
    tg::set_blas_threads(o.threads);
    const auto t_load = clock::now();
    const Corpus c = load_corpus(o);
    const double load_s = std::chrono::duration<double>(clock::now() - t_load).count();

    nn::Rng init_rng(o.seed);
    nn::GPT<T> gpt({.vocab_size = c.vocab.size(), .block_size = o.block, .n_layer = o.layers, .n_head = o.heads,
                    .n_embd = o.embd},
                   init_rng);
    const auto params = gpt.parameters();
    nn::AdamW<T> opt(nn::adamw_param_groups<T>(params, o.weight_decay, nn::gpt_linear_weight<T>),
                     nn::AdamWOptions{.lr = o.lr, .beta1 = 0.9, .beta2 = o.beta2, .eps = 1e-8});
    nn::TrainState st{.rng = nn::Rng(o.seed ^ 0xba7c4e5ull)};
    std::vector<Row> rows;
    if (!o.resume.empty()) {
        const nn::Archive a = nn::Archive::load(o.resume);
        check_checkpoint_version(a);
        if (!a.contains("char_gpt/vocab") || a.get_string("char_gpt/vocab") != vocab_utf8(c.vocab))
            tg::fail("{}: checkpoint was trained on another vocabulary", o.resume);
        nn::restore_checkpoint<T>(a, params, &opt, st);
        rows = load_rows(a);
        fmt::print("resumed from {} at step {}\n", o.resume, st.step);
    }
    // nanoGPT's get_lr(it) for the iteration about to run (st.step: 0, or the resumed step).
    nn::WarmupCosineLR sched(opt, {.warmup_iters = o.warmup_iters, .lr_decay_iters = o.lr_decay_iters,
                                   .min_lr = o.min_lr});
    sched.set_iteration(static_cast<std::size_t>(st.step));
    auto checkpoint = [&] {
        if (o.checkpoint.empty()) return;
        nn::Archive a = nn::make_checkpoint<T>(params, &opt, st);
        a.put_string("char_gpt/vocab", vocab_utf8(c.vocab));
        const std::uint64_t version[1] = {kCheckpointVersion};
        a.put_u64("char_gpt/version", version);
        save_rows(a, rows);
        a.save(o.checkpoint);
    };

    fmt::print("text: {} characters from {} file{} ({}) in {:.2f}s; vocabulary {}; {} train / {} validation\n",
               c.train.size() + c.val.size(), c.files, c.files == 1 ? "" : "s", o.text.empty() ? o.data : o.text,
               load_s, c.vocab.size(), c.train.size(), c.val.size());
    fmt::print("{} ({} parameters, {}); batch {}×{}, {} iterations, seed {}, {} BLAS thread{}\n", gpt.describe(),
               gpt.parameter_count(), o.precision, o.batch, o.block, o.iters, o.seed, o.threads,
               o.threads == 1 ? "" : "s");
    fmt::print("AdamW lr {} betas (0.9, {}) weight decay {} on {} Linear weights (not on {} biases, LayerNorm "
               "parameters and embedding tables); warm-up {} iterations, cosine to {} at iteration {}; gradient "
               "clipping {}\n",
               o.lr, o.beta2, o.weight_decay, opt.params().size() - count_no_decay(opt), count_no_decay(opt),
               o.warmup_iters, o.min_lr, o.lr_decay_iters, o.grad_clip > 0 ? fmt::format("at norm {}", o.grad_clip) : "off");
    std::fflush(stdout);

    tg::Tape<T> tape(std::size_t(64) << 20), eval_tape(std::size_t(16) << 20);
    tg::Tensor<T> x(tg::Shape{o.batch, o.block}), y(tg::Shape{o.batch, o.block});
    tg::Tensor<T> ex(tg::Shape{o.batch, o.block}), ey(tg::Shape{o.batch, o.block});
    nn::ProgressBar bar(stderr);
    double seconds = rows.empty() ? 0.0 : rows.back().seconds, step_sum = 0;
    std::size_t step_n = 0;
    auto evaluate = [&] {
        const auto t0 = clock::now();
        const double tr = estimate_loss(gpt, eval_tape, c.train, o, 2 * st.step, ex, ey);
        const double va = estimate_loss(gpt, eval_tape, c.val, o, 2 * st.step + 1, ex, ey);
        rows.push_back({static_cast<double>(st.step), tr, va, step_n ? step_sum / static_cast<double>(step_n) : 0.0,
                        seconds});
        fmt::print("step {:5}  train loss {:.4f}  val loss {:.4f}  ({} batches each; {:.1f}s)  {:.1f}s training\n",
                   st.step, tr, va, o.eval_batches, std::chrono::duration<double>(clock::now() - t0).count(), seconds);
        std::fflush(stdout);
        step_sum = 0;
        step_n = 0;
    };
    if (rows.empty() && st.step == 0 && o.eval_batches) evaluate();

    bool stopped = false;
    bar.start(1, 1, o.iters, static_cast<std::size_t>(st.step));
    std::size_t run_samples = 0;
    const auto t_start = clock::now();
    double last_s = 0, train_s = 0;  // this process's training time (evaluations excluded)
    while (st.step < o.iters) {
        get_batch(c.train, o.block, st.rng, x, y);
        tape.reset();
        const tg::Var<T> logits = gpt(tape, tape.constant_ref(x));
        const tg::Var<T> loss = lm_loss(tape, logits, y);
        tape.backward(loss);
        if (o.grad_clip > 0) nn::clip_grad_norm<T>(params, o.grad_clip);
        opt.step();
        opt.zero_grad();
        sched.step();
        ++st.step;
        const double l = static_cast<double>(loss.item());
        if (st.step <= o.log_steps) fmt::print("step {} loss {:.9g}\n", st.step, l);
        step_sum += l;
        ++step_n;
        run_samples += o.batch;
        const double now_s = std::chrono::duration<double>(clock::now() - t_start).count();
        seconds += now_s - last_s;
        train_s += now_s - last_s;
        last_s = now_s;
        bar.update(static_cast<std::size_t>(st.step), run_samples, l);
        const bool stop = o.max_steps && st.step >= o.max_steps && st.step < o.iters;
        if ((st.step % o.eval_interval == 0 || st.step == o.iters) && o.eval_batches) {
            bar.finish();
            evaluate();
            checkpoint();
            bar.start(1, 1, o.iters, static_cast<std::size_t>(st.step));
            last_s = std::chrono::duration<double>(clock::now() - t_start).count();
        }
        if (stop) {
            bar.finish();
            if (st.step % o.eval_interval) checkpoint();
            fmt::print("stopped after step {}{}\n", st.step,
                       o.checkpoint.empty() ? "" : fmt::format("; checkpoint written to {}", o.checkpoint));
            stopped = true;
            break;
        }
    }
    bar.finish();
    const double steps_run = static_cast<double>(run_samples / o.batch);
    if (steps_run > 0)
        fmt::print("training: {:.1f}s for {:.0f} steps ({:.1f} ms/step)\n", train_s, steps_run,
                   1e3 * train_s / steps_run);

    fs::create_directories(o.out);
    const auto csv = fs::path(o.out) / "history.csv", svg = fs::path(o.out) / "history.svg";
    write_csv(csv, rows);
    write_svg(svg, rows,
              fmt::format("char_gpt: {} layers, {} heads, {} dims, AdamW lr {}, wd {}, seed {}", o.layers, o.heads,
                          o.embd, o.lr, o.weight_decay, o.seed));
    fmt::print("history: {} and {}\n", csv.string(), svg.string());
    if (stopped) return 0;

    if (o.full_val) {
        const auto t0 = clock::now();
        const auto [v, windows] = full_validation(gpt, eval_tape, c.val, o.block);
        fmt::print("validation loss over all {} windows of {} characters: {:.4f} ({:.1f}s)\n", windows, o.block, v,
                   std::chrono::duration<double>(clock::now() - t0).count());
    }
    if (o.sample) {
        std::vector<char32_t> ptext;
        decode_utf8(o.prompt, "--prompt", ptext);
        std::vector<std::size_t> prompt;
        for (char32_t ch : ptext) {
            const auto it = std::lower_bound(c.vocab.begin(), c.vocab.end(), ch);
            if (it == c.vocab.end() || *it != ch) {
                std::string one;
                encode_utf8(ch, one);
                tg::fail("--prompt: the character '{}' (U+{:04X}) is not in the vocabulary", one,
                         static_cast<std::uint32_t>(ch));
            }
            prompt.push_back(static_cast<std::size_t>(it - c.vocab.begin()));
        }
        nn::Rng rng(o.seed ^ 0x5a3b1e5ull);
        const auto ids = nn::generate(gpt, prompt, o.sample, rng, {.temperature = o.temperature, .top_k = o.top_k});
        std::string text;
        for (std::size_t id : ids) encode_utf8(c.vocab[id], text);
        fmt::print("\nsample (temperature {}, top-k {}):\n{}\n", o.temperature, o.top_k ? fmt::format("{}", o.top_k) : "all",
                   text);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Options o = parse(argc, argv);
        return o.precision == "double" ? run<double>(o) : run<float>(o);
    } catch (const std::exception& e) {
        fmt::print(stderr, "char_gpt: {}\n", e.what());
        return 1;
    }
}
