// Transformer layers (names and defaults follow torch.nn / nanoGPT): Embedding, LayerNorm, GELU,
// MultiheadAttention (causal option; batch-first (B, T, C)), a pre-LayerNorm TransformerBlock
// (x + attn(ln1(x)), then x + mlp(ln2(x))), and a small GPT (token + position embeddings, blocks,
// final LayerNorm, linear head to the vocabulary). Indices are tensors of T holding integers.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <tapegrad/nn/checkpoint.hpp>
#include <tapegrad/nn/layers.hpp>
#include <tapegrad/nn/parameter.hpp>
#include <tapegrad/nn/random.hpp>
#include <tapegrad/ops/transformer.hpp>
#include <tapegrad/ops/views.hpp>
#include <vector>

namespace tapegrad::nn {

namespace detail {
template <class T>
void check_params(const Module<T>& m, std::span<const Var<T>> p, std::size_t n) {  // (describe(): on error only)
    if (p.size() != n) fail("{}: forward_with needs {} parameter Vars, {} given", m.describe(), n, p.size());
}
// The composite modules below write their computation once, as compute(x, call), where
// call(k, child, v) runs a child that owns k parameter tensors: forward() passes a call that runs
// child.forward(tape, v) (each child puts its own parameters on the tape), forward_with() one
// that runs child.forward_with on the next k of its Vars (take). The counts k are taken at
// construction, so that a step allocates nothing (parameters() builds a vector).
template <class T>
std::span<const Var<T>> take(std::span<const Var<T>>& params, std::size_t k) {
    if (params.size() < k) fail("forward_with: {} parameter Vars left, a layer needs {}", params.size(), k);
    auto head = params.first(k);
    params = params.subspan(k);
    return head;
}
template <class T>
auto own_params(Tape<T>& tape) {
    return [&tape](std::size_t, Module<T>& m, const Var<T>& v) { return m.forward(tape, v); };
}
template <class T>
auto given_params(Tape<T>& tape, std::span<const Var<T>>& params) {
    return [&tape, &params](std::size_t k, Module<T>& m, const Var<T>& v) {
        return m.forward_with(tape, v, take(params, k));
    };
}
}  // namespace detail

// y = weight[x], weight (num_embeddings, embedding_dim) drawn from N(0, 1) as torch.nn.Embedding;
// padding_idx's row starts at zero and receives no gradient.
template <class T>
class Embedding final : public Module<T> {
public:
    Embedding(std::size_t num_embeddings, std::size_t embedding_dim, Rng& rng,
              std::ptrdiff_t padding_idx = -1, std::string name = "embedding")
        : pad_(padding_idx), w_(Tensor<T>(num_embeddings, embedding_dim), name + ".weight") {
        if (num_embeddings == 0 || embedding_dim == 0)
            fail("Embedding: zero-sized table {}×{}", num_embeddings, embedding_dim);
        for (std::size_t i = 0; i < w_.value.size(); ++i) w_.value[i] = static_cast<T>(rng.normal());
        if (pad_ >= 0 && static_cast<std::size_t>(pad_) < num_embeddings)
            for (std::size_t j = 0; j < embedding_dim; ++j)
                w_.value[static_cast<std::size_t>(pad_) * embedding_dim + j] = 0;
    }
    Var<T> forward(Tape<T>& tape, const Var<T>& idx) override { return embedding(idx, w_.var(tape), pad_); }
    Var<T> forward_with(Tape<T>&, const Var<T>& idx, std::span<const Var<T>> p) override {
        detail::check_params<T>(*this, p, 1);
        return embedding(idx, p[0], pad_);
    }
    std::vector<Parameter<T>*> parameters() override { return {&w_}; }
    std::string describe() const override {
        return fmt::format("Embedding({}, {})", w_.value.shape()[0], w_.value.shape()[1]);
    }
    Parameter<T>& weight() noexcept { return w_; }

private:
    std::ptrdiff_t pad_;
    Parameter<T> w_;
};

// layer_norm over the last axis (normalized_shape = (dim)), weight 1 and bias 0 at the start.
template <class T>
class LayerNorm final : public Module<T> {
public:
    explicit LayerNorm(std::size_t dim, double eps = 1e-5, std::string name = "ln")
        : dim_(dim),
          eps_(eps),
          w_(Tensor<T>(Shape{dim}), name + ".weight"),
          b_(Tensor<T>(Shape{dim}), name + ".bias") {
        for (std::size_t i = 0; i < dim; ++i) w_.value[i] = T(1);
    }
    Var<T> forward(Tape<T>& tape, const Var<T>& x) override {
        return layer_norm(x, Shape{dim_}, w_.var(tape), b_.var(tape), eps_);
    }
    Var<T> forward_with(Tape<T>&, const Var<T>& x, std::span<const Var<T>> p) override {
        detail::check_params<T>(*this, p, 2);
        return layer_norm(x, Shape{dim_}, p[0], p[1], eps_);
    }
    std::vector<Parameter<T>*> parameters() override { return {&w_, &b_}; }
    std::string describe() const override { return fmt::format("LayerNorm({})", dim_); }

private:
    std::size_t dim_;
    double eps_;
    Parameter<T> w_, b_;
};

template <class T>
class GELU final : public Module<T> {
public:
    explicit GELU(std::string_view approximate = "none") : tanh_(approximate == "tanh") {
        if (approximate != "none" && approximate != "tanh")
            fail("GELU: approximate must be \"none\" or \"tanh\", not \"{}\"", approximate);
    }
    Var<T> forward(Tape<T>&, const Var<T>& x) override { return gelu(x, tanh_ ? "tanh" : "none"); }
    Var<T> forward_with(Tape<T>& tape, const Var<T>& x, std::span<const Var<T>> p) override {
        detail::check_params<T>(*this, p, 0);
        return forward(tape, x);
    }
    std::string describe() const override { return tanh_ ? "GELU(tanh)" : "GELU"; }

private:
    bool tanh_;
};

// Multi-head self-attention on x (B, T, C), batch first: one Linear C → 3C for q, k, v (as
// nanoGPT's c_attn), heads of size C/H, scaled_dot_product_attention (causal or not), heads
// merged, output Linear C → C.
template <class T>
class MultiheadAttention final : public Module<T> {
public:
    MultiheadAttention(std::size_t embed_dim, std::size_t num_heads, Rng& rng, bool causal = true)
        : c_(embed_dim),
          h_(num_heads),
          causal_(causal),
          qkv_(checked(embed_dim, num_heads), 3 * embed_dim, rng, torch_linear()),
          proj_(embed_dim, embed_dim, rng, torch_linear()),
          n_qkv_(qkv_.parameters().size()),
          n_proj_(proj_.parameters().size()) {}

    Var<T> forward(Tape<T>& tape, const Var<T>& x) override { return compute(x, detail::own_params(tape)); }
    Var<T> forward_with(Tape<T>& tape, const Var<T>& x, std::span<const Var<T>> params) override {
        detail::check_params<T>(*this, params, n_qkv_ + n_proj_);
        return compute(x, detail::given_params(tape, params));
    }
    std::vector<Parameter<T>*> parameters() override {
        std::vector<Parameter<T>*> v = qkv_.parameters();
        for (Parameter<T>* p : proj_.parameters()) v.push_back(p);
        return v;
    }
    std::string describe() const override {
        return fmt::format("MultiheadAttention({}, heads {}{})", c_, h_, causal_ ? ", causal" : "");
    }

private:
    static std::size_t checked(std::size_t c, std::size_t h) {
        if (h == 0 || c % h != 0) fail("MultiheadAttention: {} heads do not divide the model width {}", h, c);
        return c;
    }
    static LinearOptions torch_linear() { return LinearOptions{.init = Init::torch_default, .gain = 1.0}; }
    template <class Call>
    Var<T> compute(const Var<T>& x, Call&& call) {
        const Shape s = x.shape();
        if (s.rank() != 3 || s[2] != c_) fail("{}: input {} must be (B, T, {})", describe(), s, c_);
        const std::size_t b = s[0], t = s[1], d = c_ / h_;
        const Var<T> qkv = call(n_qkv_, qkv_, x);
        auto head = [&](std::size_t i) {  // (B, T, C) slice i → (B, H, T, D)
            const Var<T> part = contiguous(slice_axis(qkv, -1, i * c_, (i + 1) * c_));
            return contiguous(permute(reshape(part, Shape{b, t, h_, d}), {0, 2, 1, 3}));
        };
        const Var<T> o = scaled_dot_product_attention(head(0), head(1), head(2), causal_);
        const Var<T> merged = reshape(contiguous(permute(o, {0, 2, 1, 3})), Shape{b, t, c_});
        return call(n_proj_, proj_, merged);
    }
    std::size_t c_, h_;
    bool causal_;
    Linear<T> qkv_, proj_;
    std::size_t n_qkv_, n_proj_;  // parameter tensors of each
};

// Pre-LayerNorm block: x + attn(ln1(x)), then x + mlp(ln2(x)), mlp = Linear C→4C, GELU, Linear 4C→C.
template <class T>
class TransformerBlock final : public Module<T> {
public:
    TransformerBlock(std::size_t embed_dim, std::size_t num_heads, Rng& rng, std::string_view gelu = "tanh",
                     bool causal = true)
        : ln1_(embed_dim),
          attn_(embed_dim, num_heads, rng, causal),
          ln2_(embed_dim),
          fc_(embed_dim, 4 * embed_dim, rng, LinearOptions{.init = Init::torch_default, .gain = 1.0}),
          act_(gelu),
          out_(4 * embed_dim, embed_dim, rng, LinearOptions{.init = Init::torch_default, .gain = 1.0}) {
        const std::vector<Module<T>*> c = children();
        for (std::size_t i = 0; i < c.size(); ++i) n_[i] = c[i]->parameters().size();
    }

    Var<T> forward(Tape<T>& tape, const Var<T>& x) override { return compute(x, detail::own_params(tape)); }
    Var<T> forward_with(Tape<T>& tape, const Var<T>& x, std::span<const Var<T>> params) override {
        detail::check_params<T>(*this, params, n_[0] + n_[1] + n_[2] + n_[3] + n_[4]);
        return compute(x, detail::given_params(tape, params));
    }
    std::vector<Parameter<T>*> parameters() override {
        std::vector<Parameter<T>*> v;
        for (Module<T>* m : children())
            for (Parameter<T>* p : m->parameters()) v.push_back(p);
        return v;
    }
    std::string describe() const override { return "TransformerBlock"; }

private:
    std::vector<Module<T>*> children() { return {&ln1_, &attn_, &ln2_, &fc_, &out_}; }  // with parameters
    template <class Call>
    Var<T> compute(const Var<T>& x, Call&& call) {
        Var<T> h = call(n_[0], ln1_, x);
        Var<T> y = x + call(n_[1], attn_, h);
        h = call(n_[2], ln2_, y);
        h = call(n_[3], fc_, h);
        h = call(0, act_, h);
        return y + call(n_[4], out_, h);
    }
    LayerNorm<T> ln1_;
    MultiheadAttention<T> attn_;
    LayerNorm<T> ln2_;
    Linear<T> fc_;
    GELU<T> act_;
    Linear<T> out_;
    std::array<std::size_t, 5> n_{};  // parameter tensors of each of children()
};

struct GPTConfig {
    std::size_t vocab_size = 65;
    std::size_t block_size = 64;  // the longest sequence (positional table)
    std::size_t n_layer = 4;
    std::size_t n_head = 4;
    std::size_t n_embd = 128;
    std::string_view gelu = "tanh";
    // Weight tying (nanoGPT, Press & Wolf 2017): the head is the token embedding, logits =
    // x·wteᵀ; wte's gradient adds up from both uses and the table is counted once.
    bool tie_weights = false;
};

// The names of GPT::parameters(), in order: nanoGPT's state_dict keys. Per block i the
// parameters are ln_1, attn.c_attn (q, k, v), attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj.
inline std::vector<std::string> gpt_state_dict_names(const GPTConfig& cfg) {
    std::vector<std::string> n = {"transformer.wte.weight", "transformer.wpe.weight"};
    for (std::size_t i = 0; i < cfg.n_layer; ++i)
        for (const char* part : {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                                 "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                                 "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"})
            n.push_back(fmt::format("transformer.h.{}.{}", i, part));
    n.push_back("transformer.ln_f.weight");
    n.push_back("transformer.ln_f.bias");
    if (!cfg.tie_weights) n.push_back("lm_head.weight");
    return n;
}

// Whether a GPT parameter (by its state_dict name) is the weight of a Linear layer:
// attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj or lm_head. import_torch_gpt transposes these;
// examples/char_gpt decays only these (adamw_param_groups(params, wd, gpt_linear_weight<T>):
// no decay on biases, LayerNorms and the embedding tables wte and wpe — a tied head is wte, and
// does not decay either; nanoGPT's own rule, adamw_param_groups' default, decays wte and wpe).
template <class T>
bool gpt_linear_weight(const Parameter<T>& p) {
    const std::string& n = p.name;
    return n == "lm_head.weight" ||
           (n.ends_with(".weight") && (n.find(".attn.") != std::string::npos || n.find(".mlp.") != std::string::npos));
}

// logits (B, T, vocab) = head(ln_f(blocks(wte[idx] + wpe[0..T)))), idx (B, T) integer-valued;
// head(x) = x·W (W: n_embd × vocab, no bias), or x·wteᵀ with tie_weights.
// The parameters are named by nanoGPT's state_dict keys (gpt_state_dict_names below), so that
// checkpoints name every parameter once and import_torch_gpt can map a PyTorch state_dict.
template <class T>
class GPT final : public Module<T> {
public:
    GPT(const GPTConfig& cfg, Rng& rng)
        : cfg_(cfg),
          wte_(cfg.vocab_size, cfg.n_embd, rng, -1, "wte"),
          wpe_(cfg.block_size, cfg.n_embd, rng, -1, "wpe"),
          ln_f_(cfg.n_embd, 1e-5, "ln_f") {
        for (std::size_t i = 0; i < cfg.n_layer; ++i)
            blocks_.push_back(std::make_unique<TransformerBlock<T>>(cfg.n_embd, cfg.n_head, rng, cfg.gelu));
        if (!cfg.tie_weights)
            head_ = std::make_unique<Linear<T>>(cfg.n_embd, cfg.vocab_size, rng,
                                                LinearOptions{.bias = false, .init = Init::torch_default, .gain = 1.0});
        pos_ = Tensor<T>(Shape{cfg.block_size});
        for (std::size_t i = 0; i < cfg.block_size; ++i) pos_[i] = static_cast<T>(i);
        const std::vector<std::string> names = gpt_state_dict_names(cfg);
        const std::vector<Parameter<T>*> ps = parameters();
        for (std::size_t k = 0; k < ps.size(); ++k) ps[k]->name = names[k];
        n_total_ = ps.size();
        n_block_ = blocks_.empty() ? 0 : blocks_[0]->parameters().size();
    }

    // wte enters the tape once (a tied head uses the same leaf, so that its gradient sums both
    // uses in the engine, as forward_with).
    Var<T> forward(Tape<T>& tape, const Var<T>& idx) override {
        return compute(tape, idx, wte_.weight().var(tape), detail::own_params(tape));
    }
    Var<T> forward_with(Tape<T>& tape, const Var<T>& idx, std::span<const Var<T>> params) override {
        detail::check_params<T>(*this, params, n_total_);
        const Var<T> wte = params[0];
        params = params.subspan(1);
        return compute(tape, idx, wte, detail::given_params(tape, params));
    }
    std::vector<Parameter<T>*> parameters() override {
        std::vector<Parameter<T>*> v;
        auto add = [&](Module<T>& m) {
            for (Parameter<T>* p : m.parameters()) v.push_back(p);
        };
        add(wte_);
        add(wpe_);
        for (auto& b : blocks_) add(*b);
        add(ln_f_);
        if (head_) add(*head_);
        return v;
    }
    std::string describe() const override {
        return fmt::format("GPT(vocab {}, block {}, {} layers, {} heads, {} dims{})", cfg_.vocab_size,
                           cfg_.block_size, cfg_.n_layer, cfg_.n_head, cfg_.n_embd,
                           cfg_.tie_weights ? ", tied head" : "");
    }
    const GPTConfig& config() const noexcept { return cfg_; }

private:
    template <class Call>
    Var<T> compute(Tape<T>& tape, const Var<T>& idx, const Var<T>& wte, Call&& call) {
        const Shape s = idx.shape();
        if (s.rank() != 2) fail("GPT: indices {} must be (B, T)", s);
        if (s[1] > cfg_.block_size)
            fail("GPT: sequence of length {} (indices {}) is longer than the positional table ({})", s[1], s,
                 cfg_.block_size);
        const Var<T> tok = wte_.forward_with(tape, idx, std::span<const Var<T>>(&wte, 1));
        const Var<T> pos =
            tape.constant(Tensor<T>::view(pos_.data(), Shape{s[1]}, std::pmr::get_default_resource()));
        Var<T> x = tok + call(1, wpe_, pos);
        for (auto& b : blocks_) x = call(n_block_, *b, x);
        x = call(2, ln_f_, x);
        if (!head_) {  // tied: (B·T, C)·wteᵀ, wte (V, C)
            const Var<T> rows = matmul(reshape(x, Shape{s[0] * s[1], cfg_.n_embd}), wte, false, true);
            return reshape(rows, Shape{s[0], s[1], cfg_.vocab_size});
        }
        return call(1, *head_, x);
    }
    GPTConfig cfg_;
    Embedding<T> wte_, wpe_;
    std::vector<std::unique_ptr<TransformerBlock<T>>> blocks_;
    LayerNorm<T> ln_f_;
    std::unique_ptr<Linear<T>> head_;  // null when tied to wte
    Tensor<T> pos_;
    std::size_t n_total_ = 0, n_block_ = 0;  // parameter tensors: all, and each block's
};

// ---- sampling ----------------------------------------------------------------------------------

struct GenerateOptions {
    double temperature = 1.0;  // logits / temperature before the softmax (finite, > 0)
    std::size_t top_k = 0;     // keep only the top_k largest logits (0, or ≥ vocab: all)
};

// nanoGPT's generate: appends n tokens to `prompt` (token ids in [0, vocab)) and returns the
// whole sequence. Each token is drawn from softmax(z / temperature) restricted to the top_k
// largest logits z (a logit tied with the k-th largest is kept), z the logits of the last
// position given the last block_size tokens. The draw is u = rng.uniform() · Σp, the first token
// whose cumulative weight passes u: the same rng state gives the same tokens, and top_k = 1 is
// greedy decoding (the argmax at each step; the lowest id among equal maxima). The forward
// passes run on a tape of their own under no_grad (nothing is recorded for backward); the
// model's parameters are not touched. Bad arguments (an empty prompt, a token outside the
// vocabulary, a temperature that is not a positive number) raise an Error naming generate.
template <class T>
std::vector<std::size_t> generate(GPT<T>& gpt, std::span<const std::size_t> prompt, std::size_t n, Rng& rng,
                                  GenerateOptions o = {}) {
    const GPTConfig& cfg = gpt.config();
    if (prompt.empty()) fail("generate: the prompt is empty (give at least one token)");
    if (!(o.temperature > 0) || !std::isfinite(o.temperature))
        fail("generate: temperature {} must be a positive number", o.temperature);
    for (std::size_t i = 0; i < prompt.size(); ++i)
        if (prompt[i] >= cfg.vocab_size)
            fail("generate: prompt token {} at position {} is outside the vocabulary ({})", prompt[i], i,
                 cfg.vocab_size);
    std::vector<std::size_t> out(prompt.begin(), prompt.end());
    out.reserve(prompt.size() + n);
    Tape<T> tape(std::size_t(8) << 20);
    Tensor<T> idx(Shape{1, cfg.block_size});
    std::vector<double> p(cfg.vocab_size), sorted;
    for (std::size_t step = 0; step < n; ++step) {
        const std::size_t t = std::min(out.size(), cfg.block_size), first = out.size() - t;
        for (std::size_t j = 0; j < t; ++j) idx[j] = static_cast<T>(out[first + j]);
        const Tensor<T> x = Tensor<T>::view(idx.data(), Shape{1, t}, std::pmr::get_default_resource());
        tape.reset();
        auto guard = tape.no_grad();
        const Tensor<T>& logits = gpt(tape, tape.constant_ref(x)).value();
        const T* z = logits.data() + (t - 1) * cfg.vocab_size;
        double cut = -std::numeric_limits<double>::infinity();
        if (o.top_k > 0 && o.top_k < cfg.vocab_size) {
            sorted.assign(z, z + cfg.vocab_size);
            std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(o.top_k - 1), sorted.end(),
                             [](double a, double b) { return a > b; });
            cut = sorted[o.top_k - 1];
        }
        double zmax = -std::numeric_limits<double>::infinity(), total = 0;
        for (std::size_t v = 0; v < cfg.vocab_size; ++v) zmax = std::max(zmax, static_cast<double>(z[v]));
        for (std::size_t v = 0; v < cfg.vocab_size; ++v) {
            const double zv = static_cast<double>(z[v]);
            p[v] = zv < cut ? 0.0 : std::exp((zv - zmax) / o.temperature);
            total += p[v];
        }
        double u = rng.uniform() * total;
        std::size_t pick = cfg.vocab_size - 1;
        for (std::size_t v = 0; v < cfg.vocab_size; ++v) {
            if (p[v] > 0 && u < p[v]) {
                pick = v;
                break;
            }
            u -= p[v];
        }
        while (p[pick] == 0 && pick > 0) --pick;  // rounding left u past the end: the last kept token
        out.push_back(pick);
    }
    return out;
}

// Loads nanoGPT's state_dict (keys: gpt_state_dict_names) from an Archive exported by a script
// (import_state_dict) into `gpt`: every Linear weight (attn.c_attn, attn.c_proj, mlp.c_fc,
// mlp.c_proj, lm_head) is transposed from torch's out×in; embeddings, LayerNorms and biases are
// read as stored. A tied model ignores the file's lm_head.weight (torch lists the shared tensor
// under both keys). The q, k, v thirds of c_attn are in torch's order (columns 0..C, C..2C, 2C..3C
// here, rows there), heads of C/H consecutive features each, as nanoGPT's split and view.
// Entries named in `ignore` may be in the file and are not read.
template <class T>
void import_torch_gpt(GPT<T>& gpt, const Archive& a, std::vector<std::string> ignore = {}) {
    if (gpt.config().tie_weights) ignore.push_back("lm_head.weight");
    import_state_dict<T>(a, gpt.parameters(), gpt_linear_weight<T>, ignore);
}

}  // namespace tapegrad::nn
