// Checkpoints: round trip, resume == uninterrupted (bitwise, double), and every kind of damage.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include <tapegrad/nn.hpp>

#include "nn_fixtures.hpp"

#include "test_errors.hpp"

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("tapegrad_nn_ckpt_" + std::to_string(::getpid()));
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

using tapegrad::test::synthetic;

std::vector<std::uint8_t> read_all(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), {}};
}
void write_all(const fs::path& p, const std::vector<std::uint8_t>& b) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
void fix_crcs(std::vector<std::uint8_t>& b) {
    const std::uint32_t p = nn::crc32({b.data() + 32, b.size() - 32});
    std::memcpy(b.data() + 24, &p, 4);
    const std::uint32_t h = nn::crc32({b.data(), 28});
    std::memcpy(b.data() + 28, &h, 4);
}

template <class Net>
std::string load_error(const fs::path& p, Net& net, nn::Optimizer<double>* opt) {
    nn::TrainState st;
    try {
        nn::load_checkpoint<double>(p, net.parameters(), opt, st);
    } catch (const tg::Error& e) {
        return e.what();
    }
    return "no error";
}

// Trains until `stop_step` optimiser steps (or `epochs` epochs) have run.
void train(nn::MLP<double>& net, nn::Optimizer<double>& opt, const nn::Dataset& d, nn::TrainState& st,
           std::size_t epochs, std::size_t stop_step) {
    tg::Tape<double> tape;
    nn::BatchBuffers<double> buf(32, d.features);
    while (st.epoch < epochs) {
        const bool done = nn::train_epoch(net, opt, tape, d, 32, st, buf,
                                          [&](const nn::BatchReport&) { return st.step < stop_step; });
        if (!done) return;
    }
}

}  // namespace

TEST_CASE("a checkpoint round trip restores parameters, Adam moments, step count and position exactly") {
    TempDir dir;
    nn::MLP<double> a({24, 16, 4}, nn::Activation::relu, 1);
    nn::Adam<double> oa(a.parameters(), {.lr = 1e-2});
    auto d = synthetic(200, 3);
    nn::TrainState sa{.rng = nn::Rng(77)};
    train(a, oa, d, sa, 10, 9);
    REQUIRE(sa.step == 9);
    const fs::path p = dir.path / "ck.tgc";
    nn::save_checkpoint<double>(p, a.parameters(), &oa, sa);
    CHECK_FALSE(fs::exists(dir.path / (".ck.tgc.tmp." + std::to_string(::getpid()))));

    nn::MLP<double> b({24, 16, 4}, nn::Activation::relu, 999);  // different initial weights
    nn::Adam<double> ob(b.parameters(), {.lr = 1e-2});
    nn::TrainState sb;
    nn::load_checkpoint<double>(p, b.parameters(), &ob, sb);
    for (std::size_t k = 0; k < a.parameters().size(); ++k)
        CHECK(tg::max_abs_diff(a.parameters()[k]->value, b.parameters()[k]->value) == 0.0);
    auto sta = oa.state(), stb = ob.state();
    REQUIRE(sta.size() == stb.size());
    for (std::size_t k = 0; k < sta.size(); ++k) CHECK(tg::max_abs_diff(*sta[k].tensor, *stb[k].tensor) == 0.0);
    CHECK(ob.steps() == 9);
    CHECK(sb.epoch == sa.epoch);
    CHECK(sb.batch == sa.batch);
    CHECK(sb.step == 9);
    CHECK(sb.rng == sa.rng);
}

TEST_CASE("a run resumed from a mid-epoch checkpoint ends with bitwise the parameters of an uninterrupted run") {
    TempDir dir;
    auto d = synthetic(300, 5);  // 10 batches of 32 (the last one 12) per epoch
    const std::size_t epochs = 3;
    for (int which = 0; which < 2; ++which) {
        CAPTURE(which);
        nn::MLP<double> ref({24, 16, 4}, nn::Activation::relu, 11);
        std::unique_ptr<nn::Optimizer<double>> oref;
        if (which == 0)
            oref = std::make_unique<nn::Adam<double>>(ref.parameters(), nn::AdamOptions{.lr = 5e-3});
        else
            oref = std::make_unique<nn::SGD<double>>(ref.parameters(),
                                                     nn::SGDOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true});
        nn::TrainState sref{.rng = nn::Rng(123)};
        train(ref, *oref, d, sref, epochs, ~std::size_t(0));
        REQUIRE(sref.epoch == epochs);

        // Interrupted at step 14 (epoch 1, batch 4), saved, and resumed in fresh objects.
        const fs::path p = dir.path / "mid.tgc";
        {
            nn::MLP<double> net({24, 16, 4}, nn::Activation::relu, 11);
            std::unique_ptr<nn::Optimizer<double>> opt;
            if (which == 0)
                opt = std::make_unique<nn::Adam<double>>(net.parameters(), nn::AdamOptions{.lr = 5e-3});
            else
                opt = std::make_unique<nn::SGD<double>>(net.parameters(),
                                                        nn::SGDOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true});
            nn::TrainState st{.rng = nn::Rng(123)};
            train(net, *opt, d, st, epochs, 14);
            REQUIRE(st.step == 14);
            REQUIRE(st.epoch == 1);
            nn::save_checkpoint<double>(p, net.parameters(), opt.get(), st);
        }
        nn::MLP<double> net({24, 16, 4}, nn::Activation::relu, 12345);
        std::unique_ptr<nn::Optimizer<double>> opt;
        if (which == 0)
            opt = std::make_unique<nn::Adam<double>>(net.parameters(), nn::AdamOptions{.lr = 5e-3});
        else
            opt = std::make_unique<nn::SGD<double>>(net.parameters(),
                                                    nn::SGDOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true});
        nn::TrainState st;
        nn::load_checkpoint<double>(p, net.parameters(), opt.get(), st);
        train(net, *opt, d, st, epochs, ~std::size_t(0));
        CHECK(st.step == sref.step);
        CHECK(st.rng == sref.rng);
        for (std::size_t k = 0; k < net.parameters().size(); ++k) {
            const auto& x = net.parameters()[k]->value;
            const auto& y = ref.parameters()[k]->value;
            CHECK(std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0);
        }
    }
}

TEST_CASE("damaged, foreign or mismatched checkpoint files raise errors naming the file and the problem") {
    TempDir dir;
    nn::MLP<double> net({6, 5, 3}, nn::Activation::relu, 1);
    nn::Adam<double> opt(net.parameters());
    const fs::path good = dir.path / "good.tgc";
    nn::save_checkpoint<double>(good, net.parameters(), &opt, nn::TrainState{});
    const auto bytes = read_all(good);
    REQUIRE(bytes.size() > 100);
    CHECK(load_error(good, net, &opt) == "no error");
    const fs::path bad = dir.path / "bad.tgc";

    SUBCASE("truncated inside the payload") {
        auto b = bytes;
        b.resize(b.size() - 10);
        write_all(bad, b);
        const auto e = load_error(bad, net, &opt);
        CHECK(contains(e, "bad.tgc"));
        CHECK(contains(e, "truncated"));
        CHECK(contains(e, "offset"));
    }
    SUBCASE("truncated inside the header") {
        auto b = bytes;
        b.resize(20);
        write_all(bad, b);
        CHECK(contains(load_error(bad, net, &opt), "truncated"));
    }
    SUBCASE("one flipped payload bit") {
        auto b = bytes;
        b[b.size() - 3] ^= 0x10;
        write_all(bad, b);
        const auto e = load_error(bad, net, &opt);
        CHECK(contains(e, "CRC32"));
        CHECK(contains(e, "corrupted"));
    }
    SUBCASE("one flipped header bit") {
        auto b = bytes;
        b[17] ^= 0x01;
        write_all(bad, b);
        CHECK(contains(load_error(bad, net, &opt), "corrupted checkpoint header"));
    }
    SUBCASE("a newer format version") {
        auto b = bytes;
        b[8] = 3;
        fix_crcs(b);
        write_all(bad, b);
        const auto e = load_error(bad, net, &opt);
        CHECK(contains(e, "version 3"));
        CHECK(contains(e, "offset 8"));
    }
    SUBCASE("not a checkpoint at all") {
        write_all(bad, std::vector<std::uint8_t>(64, 'x'));
        CHECK(contains(load_error(bad, net, &opt), "bad magic at offset 0"));
    }
    SUBCASE("an entry whose declared size exceeds the file (CRCs forged to match)") {
        auto b = bytes;
        std::uint64_t huge = 0xfffffff0u;  // an extent the format allows, far more than the file holds
        // The first entry ("format/dtype", bytes of shape (1×6)): name length, kind, rank 2,
        // reserved, then its dims at offsets 48 and 56.
        std::memcpy(b.data() + 32 + 16, &huge, 8);
        fix_crcs(b);
        write_all(bad, b);
        const auto e = load_error(bad, net, &opt);
        CHECK(contains(e, "remain"));
        CHECK(contains(e, "offset 64"));
        huge = std::uint64_t(1) << 40;  // an extent above 2³² − 1
        std::memcpy(b.data() + 32 + 24, &huge, 8);
        fix_crcs(b);
        write_all(bad, b);
        CHECK(contains(load_error(bad, net, &opt), "overflows"));
    }
    SUBCASE("a model of another shape") {
        nn::MLP<double> other({6, 7, 3}, nn::Activation::relu, 1);
        nn::Adam<double> oo(other.parameters());
        const auto e = load_error(good, other, &oo);
        CHECK(contains(e, "param/W0"));
        CHECK(contains(e, "(6×5) in the file"));
        CHECK(contains(e, "(6×7)"));
        // Nothing was modified by the failed load.
        nn::MLP<double> fresh({6, 7, 3}, nn::Activation::relu, 1);
        CHECK(tg::max_abs_diff(other.parameters()[0]->value, fresh.parameters()[0]->value) == 0.0);
    }
    SUBCASE("a model with more layers") {
        nn::MLP<double> deeper({6, 5, 3, 3}, nn::Activation::relu, 1);
        CHECK(contains(load_error(good, deeper, nullptr), "no parameter 'W2'"));
    }
    SUBCASE("another optimiser") {
        nn::SGD<double> sgd(net.parameters(), {.lr = 0.1, .momentum = 0.9});
        CHECK(contains(load_error(good, net, &sgd), "optimizer 'adam', resuming with 'sgd-momentum'"));
    }
    SUBCASE("another precision") {
        nn::MLP<float> f({6, 5, 3}, nn::Activation::relu, 1);
        nn::TrainState st;
        CHECK_THROWS_WITH_AS(nn::load_checkpoint<float>(good, f.parameters(), nullptr, st),
                             doctest::Contains("holds double parameters, the model is float"), tg::Error);
    }
    SUBCASE("a missing file") {
        CHECK(contains(load_error(dir.path / "none.tgc", net, &opt), "none.tgc"));
    }
}

TEST_CASE("saving over an existing checkpoint replaces it atomically and leaves no temporary file") {
    TempDir dir;
    nn::MLP<float> net({4, 3, 2}, nn::Activation::relu, 1);
    const fs::path p = dir.path / "c.tgc";
    nn::save_checkpoint<float>(p, net.parameters(), nullptr, nn::TrainState{.epoch = 1});
    nn::save_checkpoint<float>(p, net.parameters(), nullptr, nn::TrainState{.epoch = 2});
    nn::TrainState st;
    nn::load_checkpoint<float>(p, net.parameters(), nullptr, st);
    CHECK(st.epoch == 2);
    std::size_t files = 0;
    for (const auto& e : fs::directory_iterator(dir.path)) files += e.is_regular_file();
    CHECK(files == 1);
    CHECK_THROWS_AS(nn::save_checkpoint<float>(dir.path / "no" / "such" / "dir.tgc", net.parameters(), nullptr, st),
                    tg::Error);
}

TEST_CASE("randomly damaged checkpoints, with checksums forged to match, load or raise Error, never crash") {
    nn::MLP<double> net({6, 5, 3}, nn::Activation::relu, 1);
    nn::SGD<double> opt(net.parameters(), {.lr = 0.1, .momentum = 0.9});
    nn::TrainState st;
    const auto good = nn::make_checkpoint<double>(net.parameters(), &opt, st).serialize();
    nn::Rng rng(2024);
    int errors = 0, loaded = 0;
    for (int trial = 0; trial < 3000; ++trial) {
        auto b = good;
        const int edits = 1 + static_cast<int>(rng.below(4));
        for (int e = 0; e < edits; ++e) {
            const std::size_t at = 32 + rng.below(b.size() - 32);
            switch (rng.below(3)) {
                case 0: b[at] = static_cast<std::uint8_t>(rng.below(256)); break;
                case 1: b[at] ^= static_cast<std::uint8_t>(1u << rng.below(8)); break;
                default: b.resize(at); break;
            }
        }
        if (b.size() >= 32) {
            const std::uint64_t payload = b.size() - 32;
            std::memcpy(b.data() + 16, &payload, 8);
            fix_crcs(b);
        }
        try {
            const auto a = nn::Archive::deserialize(b, "fuzz");
            nn::restore_checkpoint<double>(a, net.parameters(), &opt, st);
            ++loaded;
        } catch (const tg::Error&) {
            ++errors;
        }
    }
    CHECK(errors + loaded == 3000);
    CHECK(errors > 2000);
}

// ---- parameter names are unique (issue 16, defect 3) ------------------------------------------

namespace {
}  // namespace

TEST_CASE("two Linears built by hand get distinct default names, and both survive a checkpoint round trip") {
    TempDir dir;
    nn::Rng rng(3);
    nn::Linear<double> a(3, 2, rng), b(3, 2, rng);
    CHECK(a.weight().name != b.weight().name);
    CHECK(a.bias().name != b.bias().name);
    std::vector<nn::Parameter<double>*> ps{&a.weight(), &a.bias(), &b.weight(), &b.bias()};
    const fs::path file = dir.path / "by_hand.tgc";
    nn::save_checkpoint<double>(file, ps, nullptr, nn::TrainState{});

    nn::Rng other(77);
    nn::Linear<double> a2(3, 2, other), b2(3, 2, other);
    a2.weight().name = a.weight().name;
    a2.bias().name = a.bias().name;
    b2.weight().name = b.weight().name;
    b2.bias().name = b.bias().name;
    nn::TrainState st;
    nn::load_checkpoint<double>(file, {&a2.weight(), &a2.bias(), &b2.weight(), &b2.bias()}, nullptr, st);
    for (std::size_t i = 0; i < 6; ++i) {
        CHECK(a2.weight().value[i] == a.weight().value[i]);
        CHECK(b2.weight().value[i] == b.weight().value[i]);
    }
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(a2.bias().value[i] == a.bias().value[i]);
        CHECK(b2.bias().value[i] == b.bias().value[i]);
    }
}

TEST_CASE("saving or loading parameters with a duplicate name raises an Error naming it and writes nothing") {
    TempDir dir;
    nn::Rng rng(3);
    nn::Linear<double> a(3, 2, rng, {}, 0), b(3, 2, rng, {}, 0);  // both W0, b0
    std::vector<nn::Parameter<double>*> ps{&a.weight(), &a.bias(), &b.weight(), &b.bias()};
    const fs::path file = dir.path / "dup.tgc";
    const auto e = error_of([&] { nn::save_checkpoint<double>(file, ps, nullptr, nn::TrainState{}); });
    CHECK(contains(e, "duplicate parameter name 'W0'"));
    CHECK(contains(e, "parameters 0 and 2"));
    CHECK_FALSE(fs::exists(file));
    CHECK(contains(error_of([&] { (void)nn::make_checkpoint<double>(ps, nullptr, nn::TrainState{}); }),
                   "duplicate parameter name 'W0'"));

    nn::save_checkpoint<double>(file, {&a.weight(), &a.bias()}, nullptr, nn::TrainState{});
    nn::TrainState st;
    const auto le = error_of([&] { nn::load_checkpoint<double>(file, ps, nullptr, st); });
    CHECK(contains(le, "dup.tgc"));
    CHECK(contains(le, "duplicate parameter name 'W0'"));

    nn::Archive archive;
    archive.put_string("x", "1");
    CHECK_THROWS_WITH_AS(archive.put_string("x", "2"), "checkpoint: duplicate entry 'x'", tg::Error);
    CHECK(archive.get_string("x") == "1");
}

TEST_CASE("an optimiser given the same parameter twice, or a null one, raises an Error naming it") {
    nn::Rng rng(3);
    nn::Linear<double> a(3, 2, rng, {}, 4);
    CHECK(contains(error_of([&] { nn::SGD<double> opt({&a.weight(), &a.bias(), &a.weight()}); }),
                   "SGD: parameter 'W4' is listed twice (entries 0 and 2)"));
    CHECK(contains(error_of([&] { nn::Adam<double> opt({&a.weight(), nullptr}); }), "Adam: parameter 1 is null"));
}

TEST_CASE("assembling a Sequential whose layers share a parameter name raises an Error naming it") {
    nn::Rng rng(3);
    nn::Sequential<double> s;
    s.emplace<nn::Linear<double>>(4, 3, rng, nn::LinearOptions{}, 0);
    s.emplace<nn::ActivationLayer<double>>(nn::Activation::relu);
    const auto e = error_of([&] { s.emplace<nn::Linear<double>>(3, 2, rng, nn::LinearOptions{}, 0); });
    CHECK(contains(e, "Sequential: duplicate parameter name 'W0'"));
    CHECK(contains(e, "Linear(3→2)"));
    CHECK(contains(e, "Linear(4→3)"));
    CHECK(s.size() == 2);  // the offending layer was not added
    CHECK(s.parameters().size() == 2);
    CHECK_THROWS_WITH_AS(s.add(std::make_unique<nn::Linear<double>>(3, 2, rng, nn::LinearOptions{}, 0)),
                         doctest::Contains("duplicate parameter name 'W0'"), tg::Error);
}

TEST_CASE("a Sequential of default-named Linears names their parameters by position, as an MLP does") {
    nn::Rng rng(3);
    nn::Linear<double> before(2, 2, rng);  // takes a default name first: positions do not depend on it
    (void)before;
    nn::Sequential<double> s;
    s.emplace<nn::Linear<double>>(4, 3, rng);
    s.emplace<nn::ActivationLayer<double>>(nn::Activation::tanh);
    s.add(std::make_unique<nn::Linear<double>>(3, 2, rng, nn::LinearOptions{.fold_bias = true}));
    s.emplace<nn::Linear<double>>(2, 2, rng, nn::LinearOptions{.bias = false});
    std::vector<std::string> names;
    for (const auto* p : s.parameters()) names.push_back(p->name);
    CHECK(names == std::vector<std::string>{"W0", "b0", "W1", "W2"});

    nn::MLP<double> mlp({4, 3, 2, 2}, nn::Activation::tanh, 1);
    names.clear();
    for (const auto* p : mlp.parameters()) names.push_back(p->name);
    CHECK(names == std::vector<std::string>{"W0", "b0", "W1", "b1", "W2", "b2"});
}

// ---- ndio: checkpoints carry ranks (issue 11 item 12) ---------------------------------------

namespace {
tg::Tensor<double> counting(const tg::Shape& s, double from) {
    tg::Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = from + 0.25 * static_cast<double>(i);
    return t;
}
const std::vector<tg::Shape>& rank_shapes() {
    static const std::vector<tg::Shape> shapes{
        tg::Shape{}, tg::Shape{5}, tg::Shape{2, 3}, tg::Shape{2, 3, 4}, tg::Shape{1, 2, 3, 2},
        tg::Shape{2, 1, 3, 1, 2}, tg::Shape{2, 1, 2, 1, 3, 2}};
    return shapes;
}
}  // namespace

TEST_CASE("checkpoints of version 2 keep the rank and every dim of parameters of ranks 0 to 6") {
    TempDir dir;
    std::vector<std::unique_ptr<nn::Parameter<double>>> params, fresh;
    std::vector<nn::Parameter<double>*> ps, fs_;
    for (std::size_t r = 0; r < rank_shapes().size(); ++r) {
        params.push_back(std::make_unique<nn::Parameter<double>>(counting(rank_shapes()[r], double(r)), fmt::format("P{}", r)));
        fresh.push_back(std::make_unique<nn::Parameter<double>>(tg::Tensor<double>(rank_shapes()[r]), fmt::format("P{}", r)));
        ps.push_back(params.back().get());
        fs_.push_back(fresh.back().get());
    }
    nn::SGD<double> opt(ps, {.lr = 0.1, .momentum = 0.9});
    const fs::path file = dir.path / "ranks.tgc";
    nn::save_checkpoint<double>(file, ps, &opt, nn::TrainState{});

    const nn::Archive a = nn::Archive::load(file);
    CHECK(a.version() == 2);
    const auto bytes = read_all(file);
    CHECK(bytes[8] == 2);
    for (std::size_t r = 0; r < rank_shapes().size(); ++r) {
        const auto& e = a.entry(fmt::format("param/P{}", r));
        CHECK(e.shape == rank_shapes()[r]);
        CHECK(e.shape.rank() == r);
        CHECK(a.entry(fmt::format("optimizer/momentum_buffer/P{}", r)).shape == rank_shapes()[r]);
    }
    nn::SGD<double> opt2(fs_, {.lr = 0.1, .momentum = 0.9});
    nn::TrainState st;
    nn::load_checkpoint<double>(file, fs_, &opt2, st);
    for (std::size_t r = 0; r < rank_shapes().size(); ++r) {
        REQUIRE(fresh[r]->value.shape() == rank_shapes()[r]);
        CHECK(tg::max_abs_diff(fresh[r]->value, params[r]->value) == 0.0);
    }

    SUBCASE("a model whose parameter has the same numel but another rank is refused, naming both shapes") {
        nn::Parameter<double> flat(tg::Tensor<double>(tg::Shape{6, 4}), "P3");
        std::vector<nn::Parameter<double>*> wrong = fs_;
        wrong[3] = &flat;
        const auto e = error_of([&] { nn::load_checkpoint<double>(file, wrong, nullptr, st); });
        CHECK(contains(e, "param/P3"));
        CHECK(contains(e, "(2×3×4) in the file"));
        CHECK(contains(e, "(6×4)"));
    }
}

TEST_CASE("a committed version-1 checkpoint still loads, also into a rank-1 bias") {
    // Written by fuzz/make_corpus before version 2: W0 (2×3) = 1…6, b0 (1×3), SGD with momentum
    // 0.9 after no step, position epoch 1, batch 2, step 3.
    const fs::path v1 = fs::path(TAPEGRAD_SOURCE_DIR) / "tests/reference/checkpoint_v1_sgd_momentum.tgc";
    const auto bytes = read_all(v1);
    REQUIRE(bytes.size() == 662);
    CHECK(bytes[8] == 1);
    const nn::Archive a = nn::Archive::load(v1);
    CHECK(a.version() == 1);
    CHECK(a.entry("param/W0").shape == tg::Shape{2, 3});
    CHECK(a.entry("param/b0").shape == tg::Shape{1, 3});

    nn::Parameter<double> w(tg::Tensor<double>(2, 3), "W0");
    nn::Parameter<double> b(tg::Tensor<double>(tg::Shape{3}), "b0");  // rank 1: stored as (1×3) in v1
    std::vector<nn::Parameter<double>*> params{&w, &b};
    nn::SGD<double> opt(params, {.lr = 0.1, .momentum = 0.9});
    nn::TrainState st;
    nn::restore_checkpoint<double>(a, params, &opt, st);
    for (std::size_t i = 0; i < 6; ++i) CHECK(w.value.data()[i] == static_cast<double>(i + 1));
    CHECK(b.value.shape() == tg::Shape{3});
    CHECK(b.value.data()[0] == 0.5);
    CHECK(b.value.data()[1] == -0.5);
    CHECK(b.value.data()[2] == 0.0);
    CHECK(st.epoch == 1);
    CHECK(st.batch == 2);
    CHECK(st.step == 3);

    SUBCASE("a version-1 (r×c) entry does not fit a rank-3 tensor or other last two dims") {
        nn::Parameter<double> w3(tg::Tensor<double>(tg::Shape{1, 2, 3}), "W0");
        std::vector<nn::Parameter<double>*> p3{&w3, &b};
        const auto e = error_of([&] { nn::restore_checkpoint<double>(a, p3, nullptr, st); });
        CHECK(contains(e, "checkpoint_v1_sgd_momentum.tgc"));
        CHECK(contains(e, "(2×3) in the file, the model has (1×2×3)"));
        nn::Parameter<double> w6(tg::Tensor<double>(tg::Shape{6}), "W0");
        std::vector<nn::Parameter<double>*> p6{&w6, &b};
        CHECK(contains(error_of([&] { nn::restore_checkpoint<double>(a, p6, nullptr, st); }), "(2×3) in the file"));
    }
    SUBCASE("re-saved, it is a version-2 file with the same entries") {
        const nn::Archive again = nn::Archive::deserialize(a.serialize(), "again");
        CHECK(again.version() == 2);
        CHECK(again.entries().size() == a.entries().size());
        for (const auto& [name, e] : a.entries()) {
            CHECK(again.entry(name).shape == e.shape);
            CHECK(again.entry(name).data == e.data);
        }
    }
}

TEST_CASE("damaged rank fields of a version-2 checkpoint raise errors naming the file and the offset") {
    TempDir dir;
    nn::Parameter<double> p(counting(tg::Shape{2, 3, 4}, 1.0), "P");
    const fs::path good = dir.path / "r3.tgc";
    nn::save_checkpoint<double>(good, {&p}, nullptr, nn::TrainState{});
    const auto bytes = read_all(good);
    const fs::path bad = dir.path / "bad_rank.tgc";
    auto load = [&](const std::vector<std::uint8_t>& b) {
        write_all(bad, b);
        nn::Parameter<double> q(tg::Tensor<double>(tg::Shape{2, 3, 4}), "P");
        nn::TrainState st;
        return error_of([&] { nn::load_checkpoint<double>(bad, {&q}, nullptr, st); });
    };
    REQUIRE(load(bytes).empty());  // (error_of: "" when nothing throws)
    // First entry: "format/dtype" at offset 32 (name length, kind, rank at 40, reserved at 44).
    SUBCASE("a rank above kMaxRank") {
        auto b = bytes;
        b[40] = 7;
        fix_crcs(b);
        const auto e = load(b);
        CHECK(contains(e, "bad_rank.tgc"));
        CHECK(contains(e, "rank 7 (offset 40)"));
    }
    SUBCASE("a non-zero reserved field") {
        auto b = bytes;
        b[44] = 1;
        fix_crcs(b);
        const auto e = load(b);
        CHECK(contains(e, "bad_rank.tgc"));
        CHECK(contains(e, "reserved field (offset 44)"));
    }
    SUBCASE("a rank that makes the entry claim more dims than bytes left") {
        auto b = bytes;
        b.resize(32 + 16 + 8);  // header, entry header, one of two dims
        const std::uint64_t payload = b.size() - 32;
        std::memcpy(b.data() + 16, &payload, 8);
        fix_crcs(b);
        const auto e = load(b);
        CHECK(contains(e, "truncated in its 2 dims at offset 48"));
    }
    SUBCASE("an extent above 2³² − 1") {
        auto b = bytes;
        const std::uint64_t big = std::uint64_t(1) << 33;
        std::memcpy(b.data() + 48, &big, 8);
        fix_crcs(b);
        const auto e = load(b);
        CHECK(contains(e, "bad_rank.tgc"));
        CHECK(contains(e, "overflows (offset 48)"));
    }
    SUBCASE("truncated anywhere: every prefix raises an Error naming the file") {
        for (std::size_t n = 0; n < bytes.size(); n += 7) {
            auto b = bytes;
            b.resize(n);
            if (n >= 32) {
                const std::uint64_t payload = n - 32;
                std::memcpy(b.data() + 16, &payload, 8);
                fix_crcs(b);
            }
            const auto e = load(b);
            CHECK(contains(e, "bad_rank.tgc"));
            CHECK(contains(e, "offset"));
        }
    }
}
