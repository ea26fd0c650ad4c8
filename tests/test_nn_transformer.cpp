// Transformer layers (nn/transformer.hpp): a tiny pre-LN block's parameter gradients against
// finite differences (gradcheck, double), a tiny GPT whose loss decreases over Adam steps on a
// fixed batch, and the errors of the layers (head count, sequence length, vocabulary).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <filesystem>
#include <random>
#include <tapegrad/nn.hpp>
#include <tapegrad/nn/transformer.hpp>
#include <tapegrad/tapegrad.hpp>
#include <vector>

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
using tg::Shape;
using tg::Tensor;

namespace {
std::vector<Tensor<double>> values_of(tg::nn::Module<double>& m) {
    std::vector<Tensor<double>> v;
    for (auto* p : m.parameters()) v.push_back(p->value.clone(std::pmr::get_default_resource()));
    return v;
}
Tensor<double> random(Shape s, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = u(rng);
    return t;
}
}  // namespace

TEST_CASE("a tiny pre-LN TransformerBlock's parameter gradients pass gradcheck (causal, 2 heads)") {
    nn::Rng rng(3);
    nn::TransformerBlock<double> block(4, 2, rng);
    const Tensor<double> x = random(Shape{2, 3, 4}, 7), c = random(Shape{2, 3, 4}, 8);
    auto report = tg::gradcheck(
        [&](tg::Tape<double>& t, std::span<const tg::Var<double>> v) {
            return tg::sum(block.forward_with(t, t.constant(x), v) * t.constant(c));
        },
        values_of(block));
    INFO(fmt::format("{}", report));
    CHECK(report);
    CHECK(block.parameters().size() == 12);  // ln1 (2), qkv (2), proj (2), ln2 (2), fc (2), out (2)
}

TEST_CASE("a tiny GPT's loss decreases over Adam steps on a fixed batch") {
    nn::Rng rng(1);
    nn::GPT<double> gpt({.vocab_size = 7, .block_size = 4, .n_layer = 1, .n_head = 2, .n_embd = 8}, rng);
    const Tensor<double> idx(Shape{2, 4}, {0, 1, 2, 3, 4, 5, 6, 0});
    const Tensor<double> tgt(Shape{8}, {1, 2, 3, 4, 5, 6, 0, 1});
    nn::Adam<double> opt(gpt.parameters(), {.lr = 1e-2});
    std::vector<double> losses;
    for (int step = 0; step < 30; ++step) {
        tg::Tape<double> tape;
        opt.zero_grad();
        auto logits = gpt(tape, tape.constant(idx));
        REQUIRE(logits.shape() == Shape{2, 4, 7});
        auto loss = tg::softmax_cross_entropy(tg::reshape(logits, Shape{8, 7}), tape.constant(tgt));
        losses.push_back(loss.value().item());
        tape.backward(loss);
        opt.step();
    }
    INFO("first ", losses.front(), " last ", losses.back());
    CHECK(losses.back() < 0.5 * losses.front());
    CHECK(losses[10] < losses.front());

    tg::Tape<double> tape;
    CHECK_THROWS_WITH_AS(
        gpt(tape, tape.constant(Tensor<double>(Shape{1, 5}))),
        doctest::Contains("GPT: sequence of length 5 (indices (1×5)) is longer than the positional "
                          "table (4)"),
        tg::Error);
    CHECK_THROWS_WITH_AS(gpt(tape, tape.constant(Tensor<double>(Shape{1, 2}, {0, 7}))),
                         doctest::Contains("embedding: index 7 at position 1"), tg::Error);
    CHECK_THROWS_WITH_AS(nn::MultiheadAttention<double>(6, 4, rng),
                         doctest::Contains("MultiheadAttention: 4 heads do not divide the model width 6"),
                         tg::Error);
}

// ---- gpttrain: weight tying, the state-dict importer, lockstep with PyTorch ---------------------

namespace {
namespace fs = std::filesystem;
const std::vector<std::string> kLockstepEntries = {"lockstep/config", "lockstep/idx", "lockstep/targets",
                                                   "lockstep/losses"};
nn::Archive lockstep_file(const char* name) {
    return nn::Archive::load(fs::path(TAPEGRAD_SOURCE_DIR) / "tests" / "reference" / name);
}
nn::GPTConfig lockstep_config(const nn::Archive& a) {
    const auto c = a.get_u64("lockstep/config");
    REQUIRE(c.size() == 7);
    return {.vocab_size = c[0], .block_size = c[1], .n_layer = c[2], .n_head = c[3], .n_embd = c[4],
            .gelu = "tanh", .tie_weights = c[6] != 0};
}

// The recipe of tests/reference/gpt_lockstep.py, on the same batches; returns the largest
// relative difference of a step's loss from PyTorch's.
double train_in_lockstep(const char* file) {
    const nn::Archive a = lockstep_file(file);
    const nn::GPTConfig cfg = lockstep_config(a);
    const std::size_t b = a.get_u64("lockstep/config")[5], t = cfg.block_size, steps = 50;
    nn::Rng rng(99);  // every parameter is then overwritten by the import
    nn::GPT<double> gpt(cfg, rng);
    nn::import_torch_gpt(gpt, a, kLockstepEntries);
    Tensor<double> idx(Shape{steps, b * t}), tgt(Shape{steps, b * t}), losses(Shape{1, steps});
    a.get("lockstep/idx", idx);
    a.get("lockstep/targets", tgt);
    a.get("lockstep/losses", losses);

    const auto params = gpt.parameters();
    nn::AdamW<double> opt(nn::adamw_param_groups(params, 0.1), {.lr = 3e-3, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8});
    nn::WarmupCosineLR sched(opt, {.warmup_iters = 5, .lr_decay_iters = 50, .min_lr = 3e-4});
    double worst = 0;
    tg::Tape<double> tape;
    for (std::size_t s = 0; s < steps; ++s) {
        tape.reset();
        opt.zero_grad();
        const auto x = tape.constant(Tensor<double>::view(idx.data() + s * b * t, Shape{b, t}, std::pmr::get_default_resource()));
        const auto y = tape.constant(Tensor<double>::view(tgt.data() + s * b * t, Shape{b * t}, std::pmr::get_default_resource()));
        const auto loss = tg::softmax_cross_entropy(tg::reshape(gpt(tape, x), Shape{b * t, cfg.vocab_size}), y);
        const double want = losses[s], got = loss.value().item();
        worst = std::max(worst, std::abs(got - want) / std::abs(want));
        tape.backward(loss);
        nn::clip_grad_norm(params, 1.0);
        opt.step();
        sched.step();
    }
    CHECK(losses[steps - 1] < 0.75 * losses[0]);  // the run learns something: not a flat comparison
    return worst;
}
}  // namespace

TEST_CASE("a GPT imported from PyTorch and trained 50 steps of AdamW in double gives PyTorch's losses within "
          "1e-9 relative (tests/reference/gpt_lockstep.py)") {
    const double worst = train_in_lockstep("gpt_lockstep.tgc");
    MESSAGE("lockstep (untied): largest relative loss difference from PyTorch ", worst);
    CHECK(worst <= 1e-9);
}

TEST_CASE("a weight-tied GPT imported from PyTorch trains in lockstep with PyTorch's tied model") {
    const double worst = train_in_lockstep("gpt_lockstep_tied.tgc");
    MESSAGE("lockstep (tied): largest relative loss difference from PyTorch ", worst);
    CHECK(worst <= 1e-9);
}

TEST_CASE("a tied GPT counts the shared table once and its gradient, from both uses, passes gradcheck") {
    const nn::GPTConfig untied{.vocab_size = 5, .block_size = 3, .n_layer = 1, .n_head = 2, .n_embd = 4};
    nn::GPTConfig tied = untied;
    tied.tie_weights = true;
    nn::Rng r1(4), r2(4);
    nn::GPT<double> a(untied, r1), g(tied, r2);
    CHECK(a.parameter_count() - g.parameter_count() == 5 * 4);
    CHECK(g.parameters().size() + 1 == a.parameters().size());
    CHECK(g.parameters().back()->name == "transformer.ln_f.bias");
    CHECK(g.describe().find("tied head") != std::string::npos);
    const Tensor<double> idx(Shape{2, 3}, {0, 3, 2, 3, 1, 0}), c = random(Shape{2, 3, 5}, 11);  // token 4 unused
    auto report = tg::gradcheck(
        [&](tg::Tape<double>& t, std::span<const tg::Var<double>> v) {
            return tg::sum(g.forward_with(t, t.constant(idx), v) * t.constant(c));
        },
        values_of(g));
    INFO(fmt::format("{}", report));
    CHECK(report);
    // row 4 of wte is no input: its gradient is the head's share alone, dlogitsᵀ·x, not zero
    tg::Tape<double> tape;
    auto loss = tg::sum(g(tape, tape.constant(idx)) * tape.constant(c));
    tape.backward(loss);
    double head_share = 0;
    for (std::size_t i = 0; i < 4; ++i) head_share += std::abs(g.parameters()[0]->grad[4 * 4 + i]);
    CHECK(head_share > 1e-6);
}

TEST_CASE("GPT parameters carry nanoGPT's state_dict names, so a GPT checkpoint names each one once") {
    nn::Rng rng(2);
    nn::GPT<double> gpt({.vocab_size = 5, .block_size = 3, .n_layer = 2, .n_head = 2, .n_embd = 4}, rng);
    const auto names = nn::gpt_state_dict_names(gpt.config());
    REQUIRE(names.size() == gpt.parameters().size());
    CHECK(gpt.parameters()[2]->name == "transformer.h.0.ln_1.weight");
    CHECK(gpt.parameters()[4]->name == "transformer.h.0.attn.c_attn.weight");
    CHECK(gpt.parameters()[14 + 11]->name == "transformer.h.1.mlp.c_proj.bias");
    CHECK(gpt.parameters().back()->name == "lm_head.weight");
    CHECK_NOTHROW(nn::make_checkpoint<double>(gpt.parameters(), nullptr, {}));
}

TEST_CASE("the state-dict importer transposes Linear weights and rejects a missing, misshapen or unknown entry") {
    const nn::Archive a = lockstep_file("gpt_lockstep.tgc");
    nn::Rng rng(5);
    nn::GPT<double> gpt(lockstep_config(a), rng);
    nn::import_torch_gpt(gpt, a, kLockstepEntries);
    // c_attn.weight: torch (96, 32) out×in, here (32, 96): element (i, j) is torch's (j, i)
    nn::Parameter<double>& w = *gpt.parameters()[4];
    REQUIRE(w.name == "transformer.h.0.attn.c_attn.weight");
    REQUIRE(w.shape() == Shape{32, 96});
    const auto& e = a.entry(w.name);
    CHECK(e.shape == Shape{96, 32});
    double torch_5_7 = 0;  // torch's element (row 5, column 7)
    std::memcpy(&torch_5_7, e.data.data() + (5 * 32 + 7) * sizeof(double), sizeof(double));
    CHECK(w.value[7 * 96 + 5] == torch_5_7);

    CHECK_THROWS_WITH_AS(nn::import_torch_gpt(gpt, a), doctest::Contains("entry 'lockstep/config'"), tg::Error);
    nn::Rng r2(5);
    nn::GPT<double> wide({.vocab_size = 20, .block_size = 16, .n_layer = 2, .n_head = 2, .n_embd = 16}, r2);
    CHECK_THROWS_WITH_AS(nn::import_torch_gpt(wide, a, kLockstepEntries),
                         doctest::Contains("entry 'transformer.wte.weight' has shape (20×32), the parameter has (20×16)"),
                         tg::Error);
    nn::Rng r3(5);
    nn::GPT<double> deeper({.vocab_size = 20, .block_size = 16, .n_layer = 3, .n_head = 2, .n_embd = 32}, r3);
    const double before = deeper.parameters()[0]->value[0];
    CHECK_THROWS_WITH_AS(nn::import_torch_gpt(deeper, a, kLockstepEntries),
                         doctest::Contains("no entry 'transformer.h.2.ln_1.weight'"), tg::Error);
    CHECK(deeper.parameters()[0]->value[0] == before);  // nothing imported on an error
}

// ---- gpt13: char_gpt's recipe, sampling, allocation-free steps ---------------------------------

TEST_CASE("gpt_linear_weight picks the Linear weights of a GPT: char_gpt's decay group leaves out biases, "
          "LayerNorms and the embedding tables") {
    for (const bool tied : {false, true}) {
        CAPTURE(tied);
        nn::Rng rng(6);
        nn::GPT<double> gpt({.vocab_size = 5, .block_size = 3, .n_layer = 2, .n_head = 2, .n_embd = 4,
                             .tie_weights = tied},
                            rng);
        const auto params = gpt.parameters();
        const auto groups = nn::adamw_param_groups<double>(params, 0.1, nn::gpt_linear_weight<double>);
        REQUIRE(groups.size() == 2);
        std::vector<std::string> decay;
        for (auto* p : groups[0].params) decay.push_back(p->name);
        // per block c_attn, attn.c_proj, c_fc, mlp.c_proj; then lm_head unless tied (wte is the head)
        std::vector<std::string> want;
        for (int i = 0; i < 2; ++i)
            for (const char* w : {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"})
                want.push_back(fmt::format("transformer.h.{}.{}.weight", i, w));
        if (!tied) want.push_back("lm_head.weight");
        CHECK(decay == want);
        CHECK(groups[0].params.size() + groups[1].params.size() == params.size());
        CHECK(groups[1].params[0]->name == "transformer.wte.weight");
        CHECK(groups[1].params[1]->name == "transformer.wpe.weight");
        // adamw_param_groups' default (nanoGPT's rule) decays the embedding tables as well
        CHECK(nn::adamw_param_groups<double>(params, 0.1)[0].params.size() == want.size() + 2);
    }
}

TEST_CASE("nn::generate: the same seed gives the same tokens, top_k = 1 is the argmax at each step, bad "
          "arguments are Errors") {
    nn::Rng init(8);
    nn::GPT<double> gpt({.vocab_size = 7, .block_size = 4, .n_layer = 1, .n_head = 2, .n_embd = 8}, init);
    const std::vector<std::size_t> prompt = {1, 2};
    const std::span<const std::size_t> pr(prompt);
    const double w0 = gpt.parameters()[0]->value[0];

    nn::Rng r1(5), r2(5), r3(6);
    const auto a = nn::generate(gpt, pr, 12, r1, {.temperature = 0.9});
    const auto b = nn::generate(gpt, pr, 12, r2, {.temperature = 0.9});
    const auto c = nn::generate(gpt, pr, 12, r3, {.temperature = 0.9});
    REQUIRE(a.size() == 14);  // the prompt, then 12 tokens (longer than block_size: cropped windows)
    CHECK(a[0] == 1);
    CHECK(a[1] == 2);
    CHECK(a == b);
    CHECK(a != c);  // another seed, other tokens
    CHECK(r1 == r2);
    for (std::size_t t : a) CHECK(t < 7);
    CHECK(gpt.parameters()[0]->value[0] == w0);  // nothing trained

    // The logits of the last position given the last block_size tokens of `seq`, recomputed here.
    auto last_logits = [&](const std::vector<std::size_t>& seq) {
        const std::size_t t = std::min<std::size_t>(seq.size(), 4), first = seq.size() - t;
        Tensor<double> idx(Shape{1, t});
        for (std::size_t j = 0; j < t; ++j) idx[j] = double(seq[first + j]);
        tg::Tape<double> tape;
        const Tensor<double>& z = gpt(tape, tape.constant(idx)).value();
        return std::vector<double>(z.data() + (t - 1) * 7, z.data() + t * 7);
    };
    // top_k = 1: greedy, whatever the temperature and the generator
    nn::Rng g1(1), g2(99);
    const auto greedy = nn::generate(gpt, pr, 10, g1, {.temperature = 0.5, .top_k = 1});
    CHECK(nn::generate(gpt, pr, 10, g2, {.temperature = 3.0, .top_k = 1}) == greedy);
    for (std::size_t i = prompt.size(); i < greedy.size(); ++i) {
        const std::vector<std::size_t> before(greedy.begin(), greedy.begin() + static_cast<std::ptrdiff_t>(i));
        const auto z = last_logits(before);
        const auto argmax = static_cast<std::size_t>(std::max_element(z.begin(), z.end()) - z.begin());
        CHECK(greedy[i] == argmax);
    }
    // top_k = 2: every token is one of the two largest logits
    nn::Rng g3(4);
    const auto two = nn::generate(gpt, pr, 10, g3, {.top_k = 2});
    for (std::size_t i = prompt.size(); i < two.size(); ++i) {
        auto z = last_logits(std::vector<std::size_t>(two.begin(), two.begin() + static_cast<std::ptrdiff_t>(i)));
        const double picked = z[two[i]];
        std::sort(z.begin(), z.end(), std::greater<>());
        CHECK(picked >= z[1]);
    }

    nn::Rng r(1);
    CHECK_THROWS_WITH_AS(nn::generate(gpt, std::span<const std::size_t>(), 3, r),
                         doctest::Contains("generate: the prompt is empty"), tg::Error);
    const std::vector<std::size_t> outside = {1, 7};
    CHECK_THROWS_WITH_AS(nn::generate(gpt, std::span<const std::size_t>(outside), 3, r),
                         doctest::Contains("generate: prompt token 7 at position 1 is outside the vocabulary (7)"),
                         tg::Error);
    for (const double bad : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()})
        CHECK_THROWS_WITH_AS(nn::generate(gpt, pr, 3, r, {.temperature = bad}),
                             doctest::Contains("must be a positive number"), tg::Error);
    CHECK(r == nn::Rng(1));  // errors before any draw
}
