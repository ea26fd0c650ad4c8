// Data-parallel training (dist/): run by tests/dist_test_main.cpp as a world of one and under
// mpirun with 1–4 ranks. Every case is collective: all ranks run it, in the same order.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include <tapegrad/dist.hpp>
#include <tapegrad/nn.hpp>
#include <tapegrad/tapegrad.hpp>

#include "count_new.hpp"

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
namespace dist = tapegrad::dist;

namespace {

constexpr std::size_t kB = 96, kIn = 8, kClasses = 4;

template <class T>
struct Batch {
    tg::Tensor<T> x, y;
};

// The global batch of step `step`: the same on every rank.
template <class T>
Batch<T> global_batch(std::uint64_t step, std::size_t rows = kB) {
    nn::Rng rng(1000 + step);
    Batch<T> b{tg::Tensor<T>(rows, kIn), tg::Tensor<T>(rows, 1)};
    for (std::size_t i = 0; i < b.x.size(); ++i) b.x.data()[i] = static_cast<T>(rng.uniform(-1, 1));
    for (std::size_t i = 0; i < rows; ++i) b.y.data()[i] = static_cast<T>(rng.below(kClasses));
    return b;
}

template <class T>
tg::Tensor<T> rows_of(const tg::Tensor<T>& t, std::size_t r0, std::size_t r1) {
    tg::Tensor<T> out(r1 - r0, t.cols());
    std::copy_n(t.data() + r0 * t.cols(), out.size(), out.data());
    return out;
}
template <class T>
Batch<T> slice(const Batch<T>& b, std::size_t r0, std::size_t r1) {
    return {rows_of(b.x, r0, r1), rows_of(b.y, r0, r1)};
}

// Mean cross-entropy of the batch, times `scale`, backward into the parameters' gradients.
template <class T>
double loss_backward(nn::Module<T>& net, tg::Tape<T>& tape, const Batch<T>& b, double scale = 1) {
    tape.reset();
    auto loss = tg::softmax_cross_entropy(net(tape, tape.constant_ref(b.x)), tape.constant_ref(b.y));
    if (scale != 1) loss = loss * scale;
    tape.backward(loss);
    return static_cast<double>(loss.item());
}

template <class T>
nn::MLP<T> make_mlp(std::uint64_t seed, std::size_t hidden = 16) {
    return nn::MLP<T>({kIn, hidden, 12, kClasses}, nn::Activation::tanh, seed);
}

template <class T>
std::vector<T> flat(const std::vector<nn::Parameter<T>*>& ps, bool grads) {
    std::vector<T> v;
    for (auto* p : ps) {
        const tg::Tensor<T>& t = grads ? p->grad.tensor() : p->value;
        v.insert(v.end(), t.data(), t.data() + t.size());
    }
    return v;
}

double max_rel(const auto& a, const auto& b) {
    REQUIRE(a.size() == b.size());
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double d = std::abs(double(a[i]) - double(b[i])), s = std::max(std::abs(double(b[i])), 1e-3);
        if (std::isnan(d)) return std::numeric_limits<double>::infinity();  // NaN is no agreement
        m = std::max(m, d / s);
    }
    return m;
}

// Rank 0's copy of v (bitwise) equals every rank's?
template <class T>
bool same_on_all_ranks(const std::vector<T>& v) {
    std::vector<T> zero = v;
    dist::broadcast(std::span<T>(zero), 0);
    std::int64_t differ = std::memcmp(zero.data(), v.data(), v.size() * sizeof(T)) != 0;
    dist::allreduce_max(&differ, 1, dist::Dtype::i64);
    return differ == 0;
}

// A module whose second head is used on rank 0 only: the branch the others never reach.
template <class T>
class TwoHeads final : public nn::Module<T> {
public:
    TwoHeads(std::uint64_t seed, bool use_b) : rng_(seed), a_(kIn, kClasses, rng_, {}, 0), b_(kIn, kClasses, rng_, {}, 1), use_b_(use_b) {}
    tg::Var<T> forward(tg::Tape<T>& tape, const tg::Var<T>& x) override {
        auto y = a_(tape, x);
        return use_b_ ? y + b_(tape, x) : y;
    }
    tg::Var<T> forward_with(tg::Tape<T>&, const tg::Var<T>&, std::span<const tg::Var<T>>) override {
        tg::fail("TwoHeads: forward_with not needed here");
    }
    std::vector<nn::Parameter<T>*> parameters() override {
        auto p = a_.parameters(), q = b_.parameters();
        p.insert(p.end(), q.begin(), q.end());
        return p;
    }
    std::string describe() const override { return "TwoHeads"; }
    void set_use_b(bool on) { use_b_ = on; }

private:
    nn::Rng rng_;
    nn::Linear<T> a_, b_;
    bool use_b_;
};

}  // namespace

TEST_CASE("the world: rank and size are consistent on every rank") {
    const int r = dist::rank(), n = dist::world_size();
    CHECK(n >= 1);
    CHECK(r >= 0);
    CHECK(r < n);
    const auto all = dist::allgather(r);
    REQUIRE(all.size() == static_cast<std::size_t>(n));
    for (int k = 0; k < n; ++k) CHECK(all[static_cast<std::size_t>(k)] == k);
    if (!dist::built_with_mpi()) CHECK(n == 1);
}

TEST_CASE("allreduce and broadcast are exact on integer-valued data of sizes 0, 1, 7 and 2^20+3") {
    const int r = dist::rank(), n = dist::world_size();
    for (std::size_t size : {std::size_t(0), std::size_t(1), std::size_t(7), (std::size_t(1) << 20) + 3}) {
        CAPTURE(size);
        std::vector<float> f(size);
        std::vector<double> d(size);
        std::vector<std::int64_t> i(size);
        for (std::size_t k = 0; k < size; ++k) {
            f[k] = static_cast<float>(k % 1000) + static_cast<float>(r);
            d[k] = static_cast<double>(k) * 3 - r;
            i[k] = static_cast<std::int64_t>(k) * (r + 1);
        }
        dist::allreduce_sum(std::span<float>(f));
        dist::allreduce_sum(std::span<double>(d));
        dist::allreduce_sum(std::span<std::int64_t>(i));
        const double rs = n * (n - 1) / 2.0;
        bool ok = true;
        for (std::size_t k = 0; k < size && ok; ++k)
            ok = f[k] == static_cast<float>(n * static_cast<double>(k % 1000) + rs) &&
                 d[k] == n * static_cast<double>(k) * 3 - rs &&
                 i[k] == static_cast<std::int64_t>(k) * (n * (n + 1) / 2);
        CHECK(ok);

        const int root = n - 1;
        std::vector<double> b(size);
        for (std::size_t k = 0; k < size; ++k) b[k] = r == root ? static_cast<double>(k) + 0.5 : -1.0;
        dist::broadcast(std::span<double>(b), root);
        ok = true;
        for (std::size_t k = 0; k < size && ok; ++k) ok = b[k] == static_cast<double>(k) + 0.5;
        CHECK(ok);
    }
    std::string s = dist::rank() == 0 ? std::string("from rank 0") : std::string();
    dist::broadcast_string(s, 0);
    CHECK(s == "from rank 0");
}

TEST_CASE("an MPI error is a tapegrad::Error carrying MPI's error string") {
    std::vector<double> v(3, 1.0);
    std::string msg;
    try {
        dist::broadcast(std::span<double>(v), dist::world_size());  // no such root: on every rank
    } catch (const tg::Error& e) {
        msg = e.what();
    }
    CAPTURE(msg);
    if (dist::built_with_mpi()) {
        CHECK(msg.find("dist: MPI_Bcast failed: ") == 0);
        CHECK(msg.find("root") != std::string::npos);  // Open MPI: "MPI_ERR_ROOT: invalid root"
    } else {
        CHECK(msg.find("root 1 in a world of one") != std::string::npos);
    }
    CHECK(v == std::vector<double>(3, 1.0));
}

TEST_CASE("differently seeded ranks hold rank 0's parameters after construction") {
    auto net = make_mlp<double>(1 + static_cast<std::uint64_t>(dist::rank()));
    dist::DistributedDataParallel<double> ddp(net);
    auto ref = make_mlp<double>(1);
    CHECK(flat(net.parameters(), false) == flat(ref.parameters(), false));
    CHECK(same_on_all_ranks(flat(net.parameters(), false)));
}

TEST_CASE("a different model on one rank is an Error on every rank naming the parameter and the ranks") {
    const int n = dist::world_size();
    if (n == 1) {
        MESSAGE("a world of one: nothing to differ from");
        return;
    }
    auto net = make_mlp<double>(1, dist::rank() == n - 1 ? 17 : 16);
    std::string msg;
    try {
        dist::DistributedDataParallel<double> ddp(net);
    } catch (const tg::Error& e) {
        msg = e.what();
    }
    CAPTURE(msg);
    CHECK(msg.find("different models") != std::string::npos);
    CHECK(msg.find(fmt::format("rank {} has", n - 1)) != std::string::npos);
    CHECK(msg.find("rank 0 has 'W0' (8×16)") != std::string::npos);
    CHECK(msg.find(fmt::format("ranks differing from rank 0: {}", n - 1)) != std::string::npos);
}

TEST_CASE("N ranks × B/N rows reproduce one process × B rows (double, SGD with momentum and Adam)") {
    const int r = dist::rank(), n = dist::world_size();
    const std::size_t m = kB / static_cast<std::size_t>(n);
    REQUIRE(m * static_cast<std::size_t>(n) == kB);  // ctest runs 1–4 ranks: 96 divides
    for (std::size_t bucket : {std::size_t(25) << 20, std::size_t(512), std::size_t(1)})
        for (bool overlap : {true, false})
            for (bool adam : {false, true}) {
                CAPTURE(bucket);
                CAPTURE(overlap);
                CAPTURE(adam);
                auto net = make_mlp<double>(5);
                dist::DistributedDataParallel<double> ddp(net, {.bucket_bytes = bucket, .overlap = overlap});
                auto ref = make_mlp<double>(5);
                std::unique_ptr<nn::Optimizer<double>> opt, opt_ref;
                if (adam) {
                    opt = std::make_unique<nn::Adam<double>>(net.parameters(), nn::AdamOptions{.lr = 1e-2});
                    opt_ref = std::make_unique<nn::Adam<double>>(ref.parameters(), nn::AdamOptions{.lr = 1e-2});
                } else {
                    opt = std::make_unique<nn::SGD<double>>(net.parameters(), nn::SGDOptions{.lr = 0.1, .momentum = 0.9});
                    opt_ref = std::make_unique<nn::SGD<double>>(ref.parameters(), nn::SGDOptions{.lr = 0.1, .momentum = 0.9});
                }
                tg::Tape<double> tape, tape_ref;
                for (std::uint64_t step = 0; step < 4; ++step) {
                    const auto b = global_batch<double>(step);
                    loss_backward(ddp, tape, slice(b, r * m, (r + 1) * m));
                    ddp.finish_backward();
                    loss_backward(ref, tape_ref, b);
                    CHECK(max_rel(flat(net.parameters(), true), flat(ref.parameters(), true)) <= 1e-12);
                    opt->step();
                    opt->zero_grad();
                    opt_ref->step();
                    opt_ref->zero_grad();
                    CHECK(max_rel(flat(net.parameters(), false), flat(ref.parameters(), false)) <= 1e-12);
                    CHECK(same_on_all_ranks(flat(net.parameters(), false)));  // replicas bitwise equal
                }
            }
}

// The micro-batch gradients of make_mlp<float>(3) on shares 0 … N−1 of global batch 0, each
// computed alone, summed in the order given, then divided by N.
std::vector<float> micro_batch_sum(const std::vector<int>& order) {
    const std::size_t n = order.size(), m = kB / n;
    auto ref = make_mlp<float>(3);
    tg::Tape<float> tape;
    const auto b = global_batch<float>(0);
    std::vector<float> sum;
    for (int k : order) {
        ref.zero_grad();
        loss_backward(ref, tape, slice(b, k * m, (k + 1) * m));
        const auto g = flat(ref.parameters(), true);
        if (sum.empty()) sum = g;
        else for (std::size_t i = 0; i < g.size(); ++i) sum[i] = sum[i] + g[i];
    }
    for (float& v : sum) v /= static_cast<float>(n);
    return sum;
}

// This rank's averaged float gradient after one step of make_mlp<float>(3) under DDP.
std::vector<float> ddp_float_gradient(const dist::DistributedDataParallel<float>::Options& o) {
    const int r = dist::rank(), n = dist::world_size();
    const std::size_t m = kB / static_cast<std::size_t>(n);
    auto net = make_mlp<float>(3);
    dist::DistributedDataParallel<float> ddp(net, o);
    tg::Tape<float> tape;
    loss_backward(ddp, tape, slice(global_batch<float>(0), r * m, (r + 1) * m));
    ddp.finish_backward();
    return flat(net.parameters(), true);
}

TEST_CASE("the averaged gradient is bitwise the micro-batch gradients summed in rank order, then divided by N") {
    // The default reduction (Options::deterministic) adds every element's contributions in rank
    // order, ((g_0 + g_1) + g_2) + …, for any N, bucket size and overlap, whatever algorithm
    // Open MPI would pick: bitwise one process adding micro-batches 0 … N−1. (The tests run
    // with Open MPI's default algorithm choice: no MCA variable forces one.)
    const int n = dist::world_size();
    std::vector<int> ranks(static_cast<std::size_t>(n));
    std::iota(ranks.begin(), ranks.end(), 0);
    const auto want = micro_batch_sum(ranks);
    std::vector<float> one_process;  // one process × B (another summation order)
    {
        auto ref = make_mlp<float>(3);
        tg::Tape<float> tape;
        loss_backward(ref, tape, global_batch<float>(0));
        one_process = flat(ref.parameters(), true);
    }
    // With 3 or more ranks another order gives other bits here (else the test would prove little).
    if (n >= 3) CHECK(micro_batch_sum(std::vector<int>(ranks.rbegin(), ranks.rend())) != want);
    for (std::size_t bucket : {std::size_t(25) << 20, std::size_t(512), std::size_t(1)})
        for (bool overlap : {true, false}) {
            CAPTURE(bucket);
            CAPTURE(overlap);
            const auto got = ddp_float_gradient({.bucket_bytes = bucket, .overlap = overlap});
            CHECK(got == want);
            // the same through the polling wait of a timeout (60 s: not reached)
            CHECK(ddp_float_gradient({.bucket_bytes = bucket, .overlap = overlap, .timeout = 60}) == want);
            CHECK(same_on_all_ranks(got));
            CHECK(max_rel(got, one_process) <= 1e-5);  // float against one process × B
        }

    // deterministic = false: Open MPI's all-reduce, whose order is its own. Bitwise only where it
    // is known: with 2 ranks a + b = b + a, with 1 there is nothing to add; with 3 or 4 only when
    // ctest's test_dist_linear_np3/np4 force the blocking all-reduce to the basic linear
    // algorithm (OMPI_MCA_coll_tuned_allreduce_algorithm=1: rank 0 reduces g_0 + (g_1 + (… +
    // g_{N−1})), then broadcasts), checked for overlap = false (the blocking path). The
    // non-blocking MPI_Iallreduce (libnbc) has an order of its own, not modelled.
    const char* alg = std::getenv("OMPI_MCA_coll_tuned_allreduce_algorithm");
    const bool linear = alg != nullptr && std::string(alg) == "1" && dist::built_with_mpi();
    const auto want_linear = micro_batch_sum(std::vector<int>(ranks.rbegin(), ranks.rend()));
    for (std::size_t bucket : {std::size_t(25) << 20, std::size_t(1)})
        for (bool overlap : {true, false}) {
            CAPTURE(bucket);
            CAPTURE(overlap);
            const auto got = ddp_float_gradient({.bucket_bytes = bucket, .overlap = overlap, .deterministic = false});
            CHECK(max_rel(got, one_process) <= 1e-5);
            if (n <= 2 || (linear && !overlap)) CHECK(got == want_linear);
        }
    if (n > 2 && !linear) MESSAGE("deterministic = false: bitwise only with 1–2 ranks or the forced linear all-reduce");
}

TEST_CASE("OrderedReducer: exact on integer-valued data, rank order on float, buckets of 0 … 2^20+3 elements") {
    const int r = dist::rank(), n = dist::world_size();
    const std::vector<std::size_t> sizes = {0, 1, 3, 7, (std::size_t(1) << 20) + 3};  // 1 and 3: chunks of 0 elements
    std::vector<dist::OrderedReducer::Span> spans;
    std::size_t total = 0;
    for (std::size_t s : sizes) {
        spans.push_back({total, s});
        total += s + 5;  // gaps between buckets: left alone
    }
    std::vector<double> d(total, -7.0);
    std::vector<float> f(total, -7.0f);
    for (std::size_t b = 0; b < sizes.size(); ++b)
        for (std::size_t k = 0; k < sizes[b]; ++k) {
            const std::size_t i = spans[b].offset + k;
            d[i] = static_cast<double>(k % 1000) * (r + 1);
            // 1 + 2^24 rounds to 2^24 in float (ties to even): the order of the additions shows
            f[i] = r == 0 ? 1.0f : r == 1 ? 16777216.0f : (k % 2 ? 1.0f : -16777216.0f);
        }
    {
        dist::OrderedReducer rd(d.data(), spans, dist::Dtype::f64), rf(f.data(), spans, dist::Dtype::f32);
        CHECK(rd.buckets() == sizes.size());
        for (int round = 0; round < 2; ++round) {  // reusable: wait_all leaves it ready for the next
            for (std::size_t b = 0; b < sizes.size(); ++b) {
                rd.start(b);
                rf.start(b);
                rd.poll();
            }
            rd.wait_all();
            rf.wait_all(60.0);  // the polling wait, with a timeout that is not reached
            if (round == 0)  // the second round reduces the sums again: back to the inputs' scale
                for (const auto& sp : spans)
                    for (std::size_t i = sp.offset; i < sp.offset + sp.count; ++i) d[i] /= n;
        }
        CHECK_THROWS_AS(rd.wait_all(), tg::Error);  // nothing started
    }
    bool ok = true;
    for (std::size_t b = 0; b < sizes.size(); ++b) {
        for (std::size_t k = 0; k < sizes[b] && ok; ++k) {
            const std::size_t i = spans[b].offset + k;
            ok = d[i] == static_cast<double>(k % 1000) * (n * (n + 1) / 2);
            float want = 1.0f;  // rank order: ((1 + 2^24) + x_2) + x_3 …
            for (int q = 1; q < n; ++q) want = want + (q == 1 ? 16777216.0f : (k % 2 ? 1.0f : -16777216.0f));
            float twice = want;  // round 2 adds this sum from every rank, in rank order
            for (int q = 1; q < n; ++q) twice = twice + want;
            ok = ok && f[i] == twice;
        }
        ok = ok && d[spans[b].offset + sizes[b]] == -7.0 && f[spans[b].offset + sizes[b]] == -7.0f;  // the gap after it
    }
    CHECK(ok);
}

TEST_CASE("a branch used on rank 0 only: no hang, and its gradient is rank 0's ÷ N") {
    const int r = dist::rank(), n = dist::world_size();
    const std::size_t m = kB / static_cast<std::size_t>(n);
    for (std::size_t bucket : {std::size_t(25) << 20, std::size_t(1)})
        for (bool overlap : {true, false}) {
            TwoHeads<double> net(9, r == 0);
            dist::DistributedDataParallel<double> ddp(net, {.bucket_bytes = bucket, .overlap = overlap});
            tg::Tape<double> tape;
            for (std::uint64_t step = 0; step < 2; ++step) {
                const auto b = global_batch<double>(step);
                net.zero_grad();
                loss_backward(ddp, tape, slice(b, r * m, (r + 1) * m));
                ddp.finish_backward();
                // What each rank contributed, recomputed here: rank k uses head b iff k = 0.
                TwoHeads<double> ref(9, true);
                std::vector<double> sum;
                for (int k = 0; k < n; ++k) {
                    ref.set_use_b(k == 0);
                    ref.zero_grad();
                    loss_backward(ref, tape, slice(b, k * m, (k + 1) * m));
                    auto g = flat(ref.parameters(), true);
                    if (sum.empty()) sum = g;
                    else for (std::size_t i = 0; i < g.size(); ++i) sum[i] += g[i];
                }
                for (double& v : sum) v /= n;
                CHECK(max_rel(flat(net.parameters(), true), sum) <= 1e-12);
            }
        }
}

TEST_CASE("no_sync over k micro-batches, then one synchronised backward, equals one large batch") {
    const int r = dist::rank(), n = dist::world_size();
    const std::size_t m = kB / static_cast<std::size_t>(n), k = 4, mk = m / k;
    REQUIRE(mk * k == m);
    auto net = make_mlp<double>(4);
    dist::DistributedDataParallel<double> ddp(net, {.bucket_bytes = 256});
    auto ref = make_mlp<double>(4);
    tg::Tape<double> tape;
    const auto b = global_batch<double>(7);
    const auto mine = slice(b, r * m, (r + 1) * m);
    net.zero_grad();
    {
        auto guard = ddp.no_sync();
        for (std::size_t j = 0; j + 1 < k; ++j) loss_backward(ddp, tape, slice(mine, j * mk, (j + 1) * mk), 1.0 / k);
        ddp.finish_backward();  // a no-op inside no_sync
    }
    loss_backward(ddp, tape, slice(mine, (k - 1) * mk, k * mk), 1.0 / k);
    ddp.finish_backward();
    loss_backward(ref, tape, b);
    CHECK(max_rel(flat(net.parameters(), true), flat(ref.parameters(), true)) <= 1e-12);
}

// Heap allocations of steps 3–5 of training the MLP: with `ddp` (overlap on or off), or with no
// DDP and a do-nothing post-accumulate hook on every parameter (`hooks`).
long step_allocations(int mode) {
    const int r = dist::rank(), n = dist::world_size();
    const std::size_t m = kB / static_cast<std::size_t>(n);
    auto net = make_mlp<float>(2);
    std::unique_ptr<dist::DistributedDataParallel<float>> ddp;
    if (mode == 0 || mode == 1)
        ddp = std::make_unique<dist::DistributedDataParallel<float>>(
            net, dist::DistributedDataParallel<float>::Options{.bucket_bytes = 300, .overlap = mode == 1});
    else
        for (auto* p : net.parameters()) p->grad.register_post_accumulate_hook([](tg::GradBuffer<float>&) {});
    nn::SGD<float> opt(net.parameters(), {.lr = 0.05f, .momentum = 0.9f});
    tg::Tape<float> tape;
    const auto b = slice(global_batch<float>(3), r * m, (r + 1) * m);
    const float* before = net.parameters().front()->grad.data();
    long news = 0;
    for (int step = 0; step < 5; ++step) {
        const long n0 = tg::test::g_news.load();
        tape.reset();
        auto loss = tg::softmax_cross_entropy(net(tape, tape.constant_ref(b.x)), tape.constant_ref(b.y));
        tape.backward(loss);
        if (ddp) ddp->finish_backward();
        opt.step();
        opt.zero_grad();
        if (step >= 2) news += tg::test::g_news.load() - n0;
    }
    CHECK(net.parameters().front()->grad.data() == before);  // the gradient stayed where it was
    return news;
}

TEST_CASE("gradients live in the buckets, and DDP allocates nothing on the heap per step") {
    auto net = make_mlp<float>(2);
    dist::DistributedDataParallel<float> ddp(net, {.bucket_bytes = 300});
    CHECK(ddp.bucket_count() > 1);
    // Reverse parameters() order: the last parameter is in bucket 0.
    CHECK(ddp.bucket_of(*net.parameters().back()) == 0);
    CHECK(ddp.bucket_of(*net.parameters().front()) == ddp.bucket_count() - 1);

    // Without overlap DDP registers no hook: a step allocates nothing at all.
    CHECK(step_allocations(0) == 0);
    // With overlap (the default) neither: the hook-aware sweep reuses the tape's vectors and
    // calls the hooks in place (core/hook_sweep.hpp), and DDP's hooks allocate nothing.
    CHECK(step_allocations(1) == 0);
    // The same for any post-accumulate hook on every parameter, without DDP.
    CHECK(step_allocations(2) == 0);
}

TEST_CASE("DistributedSampler: equal shares, every sample once per epoch, shared shuffle, pad or drop_last") {
    for (std::size_t size : {std::size_t(0), std::size_t(1), std::size_t(10), std::size_t(11), std::size_t(97)})
        for (int world : {1, 2, 3, 4})
            for (bool drop : {false, true}) {
                CAPTURE(size);
                CAPTURE(world);
                CAPTURE(drop);
                std::vector<std::size_t> seen(size, 0);
                std::vector<std::vector<std::uint32_t>> shares;
                for (int r = 0; r < world; ++r) {
                    dist::DistributedSampler s(size, r, world, {.shuffle = true, .seed = 11, .drop_last = drop});
                    s.set_epoch(2);
                    shares.push_back(s.indices());
                    const std::size_t want = drop ? size / world : (size + world - 1) / world;
                    CHECK(shares.back().size() == want);
                    CHECK(s.num_samples() == want);
                    for (auto i : shares.back()) {
                        REQUIRE(i < size);
                        ++seen[i];
                    }
                }
                std::size_t once = 0, twice = 0;
                for (auto c : seen) once += c == 1, twice += c >= 2;
                if (drop) CHECK(once == size / world * world);  // the tail is dropped, nothing repeats
                else CHECK(once + twice == size);               // all seen; padding repeats a few
                CHECK(std::accumulate(seen.begin(), seen.end(), std::size_t(0)) == shares[0].size() * world);
            }
    dist::DistributedSampler a(100, 0, 2, {.seed = 3}), b(100, 0, 2, {.seed = 3});
    a.set_epoch(1);
    b.set_epoch(1);
    CHECK(a.indices() == b.indices());
    b.set_epoch(2);
    CHECK(a.indices() != b.indices());  // reshuffled per epoch
    dist::DistributedSampler plain(10, 1, 3, {.shuffle = false});
    CHECK(plain.indices() == std::vector<std::uint32_t>{1, 4, 7, 0});  // 9 + pad with 0: torch's order
    CHECK_THROWS_AS(dist::DistributedSampler(10, 3, 3), tg::Error);
}

TEST_CASE("checkpoint on rank 0, resume on every rank from its broadcast bytes: resumed == uninterrupted") {
    const int r = dist::rank(), n = dist::world_size();
    const std::size_t m = kB / static_cast<std::size_t>(n);
    std::string path = r == 0 ? (std::filesystem::temp_directory_path() / fmt::format("tapegrad_dist_{}.ckpt", ::getpid())).string()
                              : std::string();
    dist::broadcast_string(path, 0);
    auto train = [&](nn::Module<double>& model, dist::DistributedDataParallel<double>& ddp, nn::Optimizer<double>& opt,
                     nn::TrainState& st, std::uint64_t steps) {
        tg::Tape<double> tape;
        for (std::uint64_t s = 0; s < steps; ++s, ++st.step) {
            loss_backward(model, tape, slice(global_batch<double>(st.step), r * m, (r + 1) * m));
            ddp.finish_backward();
            opt.step();
            opt.zero_grad();
        }
    };
    auto net = make_mlp<double>(21);
    dist::DistributedDataParallel<double> ddp(net);
    nn::Adam<double> opt(net.parameters(), {.lr = 1e-2});
    nn::TrainState st;
    train(ddp, ddp, opt, st, 2);
    dist::save_checkpoint(path, net.parameters(), &opt, st);
    train(ddp, ddp, opt, st, 3);
    const auto uninterrupted = flat(net.parameters(), false);

    auto net2 = make_mlp<double>(100 + static_cast<std::uint64_t>(r));  // "killed": a fresh process
    dist::DistributedDataParallel<double> ddp2(net2);
    nn::Adam<double> opt2(net2.parameters(), {.lr = 1e-2});
    nn::TrainState st2;
    dist::load_checkpoint(path, net2.parameters(), &opt2, st2);
    CHECK(st2.step == 2);
    train(ddp2, ddp2, opt2, st2, 3);
    CHECK(flat(net2.parameters(), false) == uninterrupted);
    dist::barrier();
    if (r == 0) std::filesystem::remove(path);

    std::string err;
    try {
        dist::load_checkpoint(path + ".missing", net2.parameters(), &opt2, st2);
    } catch (const tg::Error& e) {
        err = e.what();
    }
    CHECK(err.find("on rank 0") != std::string::npos);  // every rank learns of rank 0's failure
}

// ---- buffers (batch norm's running statistics): broadcast at construction and before each forward ----

namespace {

// Input rows of kIn = 8 features as 2×2×2 images → batch norm (buffers) → a linear head. The
// batch norm comes first, so its running statistics depend on the input rows only.
template <class T>
std::unique_ptr<nn::Sequential<T>> make_bn_net(std::uint64_t seed, bool track = true) {
    auto net = std::make_unique<nn::Sequential<T>>();
    nn::Rng rng(seed);
    net->template emplace<nn::Unflatten<T>>(tg::Shape{2, 2, 2});
    net->template emplace<nn::BatchNorm2d<T>>(2, nn::BatchNormLayerOptions{.track_running_stats = track});
    net->template emplace<nn::Flatten<T>>();
    net->template emplace<nn::Linear<T>>(kIn, kClasses, rng);
    return net;
}

// Every buffer's values (counters as doubles), in buffers() order.
template <class T>
std::vector<double> buffer_values(nn::Module<T>& m) {
    std::vector<double> v;
    for (const nn::Buffer<T>& b : m.buffers()) {
        if (b.tensor) v.insert(v.end(), b.tensor->data(), b.tensor->data() + b.tensor->size());
        if (b.count) v.push_back(static_cast<double>(*b.count));
    }
    return v;
}
template <class T>
void set_buffer_values(nn::Module<T>& m, const std::vector<double>& v) {
    std::size_t at = 0;
    for (const nn::Buffer<T>& b : m.buffers()) {
        if (b.tensor)
            for (std::size_t i = 0; i < b.tensor->size(); ++i) b.tensor->data()[i] = static_cast<T>(v.at(at++));
        if (b.count) *b.count = static_cast<std::int64_t>(v.at(at++));
    }
    REQUIRE(at == v.size());
}

// A training forward of `net` on the rows of `b` (updates its running statistics).
template <class T>
void forward_only(nn::Module<T>& net, const Batch<T>& b) {
    tg::Tape<T> tape;
    (void)net(tape, tape.constant_ref(b.x));
}

}  // namespace

TEST_CASE("buffers: differently initialised ranks hold rank 0's buffers after construction") {
    const int r = dist::rank();
    auto net = make_bn_net<double>(3);
    std::vector<double> mine = buffer_values(*net);
    REQUIRE(mine.size() == 2 + 2 + 1);  // running_mean, running_var, num_batches_tracked
    for (double& v : mine) v += r;
    set_buffer_values(*net, mine);
    dist::DistributedDataParallel<double> ddp(*net);
    CHECK(ddp.buffer_count() == 3);
    auto ref = make_bn_net<double>(3);
    CHECK(buffer_values(*net) == buffer_values(*ref));  // rank 0's: the initial values + 0
    CHECK(same_on_all_ranks(buffer_values(*net)));
}

TEST_CASE("buffers: broadcast from rank 0 before each forward (default), per rank with broadcast_buffers = false") {
    const int r = dist::rank(), n = dist::world_size();
    const std::size_t m = kB / static_cast<std::size_t>(n);
    for (bool bcast : {true, false}) {
        CAPTURE(bcast);
        auto net = make_bn_net<double>(11);
        dist::DistributedDataParallel<double> ddp(net.operator*(), {.broadcast_buffers = bcast});
        nn::SGD<double> opt(net->parameters(), {.lr = 0.1, .momentum = 0.9});
        // ref0: the statistics of rank 0's shares alone; mine: of this rank's shares alone.
        auto ref0 = make_bn_net<double>(11), mine = make_bn_net<double>(11), scratch = make_bn_net<double>(11);
        tg::Tape<double> tape;
        for (std::uint64_t step = 0; step < 4; ++step) {
            const auto b = global_batch<double>(step);
            const auto share = slice(b, r * m, (r + 1) * m);
            // Expected on this rank: with the broadcast, rank 0's statistics so far updated by
            // this rank's share; without, this rank's own statistics updated by its share.
            set_buffer_values(*scratch, buffer_values(bcast ? *ref0 : *mine));
            forward_only(*scratch, share);
            loss_backward(ddp, tape, share);
            ddp.finish_backward();
            opt.step();
            opt.zero_grad();
            CHECK(buffer_values(*net) == buffer_values(*scratch));
            CHECK(same_on_all_ranks(flat(net->parameters(), false)));  // replicas bitwise equal
            forward_only(*ref0, slice(b, 0, m));
            forward_only(*mine, share);
        }
        if (n > 1) CHECK(!same_on_all_ranks(buffer_values(*net)));  // each rank's last share
        // Evaluation: with the broadcast, one more forward through the DDP makes every replica
        // normalise with rank 0's statistics, and all ranks compute the same bits.
        ddp.eval();
        CHECK(!net->is_training());
        const auto x = global_batch<double>(99, 5);
        tape.reset();
        const tg::Tensor<double> out = ddp(tape, tape.constant_ref(x.x)).value().clone(std::pmr::get_default_resource());
        std::vector<double> outv(out.data(), out.data() + out.size());
        if (bcast) {
            CHECK(buffer_values(*net) == buffer_values(*ref0));
            CHECK(same_on_all_ranks(buffer_values(*net)));
            CHECK(same_on_all_ranks(outv));
        } else {
            CHECK(buffer_values(*net) == buffer_values(*mine));
            if (n > 1) CHECK(!same_on_all_ranks(outv));  // each rank its own statistics
        }
        ddp.broadcast_buffers();  // explicitly, whatever the option
        CHECK(buffer_values(*net) == buffer_values(*ref0));
    }
}

TEST_CASE("buffers: a rank without them is an Error on every rank naming the buffer") {
    const int n = dist::world_size();
    if (n == 1) {
        MESSAGE("a world of one: nothing to differ from");
        return;
    }
    auto net = make_bn_net<double>(1, dist::rank() != n - 1);
    std::string msg;
    try {
        dist::DistributedDataParallel<double> ddp(*net);
    } catch (const tg::Error& e) {
        msg = e.what();
    }
    CAPTURE(msg);
    CHECK(msg.find("different models: at buffer 0, rank 0 has buffer 'running_mean") != std::string::npos);
    CHECK(msg.find(fmt::format("ranks differing from rank 0: {}", n - 1)) != std::string::npos);
}

TEST_CASE("buffers: broadcasting them before each forward allocates nothing on the heap") {
    const int r = dist::rank(), n = dist::world_size();
    const std::size_t m = kB / static_cast<std::size_t>(n);
    auto allocations = [&](bool bcast) {
        auto net = make_bn_net<float>(2);
        dist::DistributedDataParallel<float> ddp(*net, {.broadcast_buffers = bcast});
        nn::SGD<float> opt(net->parameters(), {.lr = 0.05f});
        tg::Tape<float> tape;
        const auto b = slice(global_batch<float>(3), r * m, (r + 1) * m);
        long news = 0;
        for (int step = 0; step < 5; ++step) {
            const long n0 = tg::test::g_news.load();
            tape.reset();
            auto loss = tg::softmax_cross_entropy(ddp(tape, tape.constant_ref(b.x)), tape.constant_ref(b.y));
            tape.backward(loss);
            ddp.finish_backward();
            opt.step();
            opt.zero_grad();
            if (step >= 2) news += tg::test::g_news.load() - n0;
        }
        return news;
    };
    CHECK(allocations(true) == allocations(false));
}

// ---- where the equivalence N × B/N = 1 × B ends (docs/distributed.md), stated and tested ----

namespace {

// The averaged DDP gradient (double) of make_mlp(seed) when this rank's loss is
// local_loss(ddp, tape).
template <class F>
std::vector<double> ddp_gradient(std::uint64_t seed, F&& local_loss) {
    auto net = make_mlp<double>(seed);
    dist::DistributedDataParallel<double> ddp(net);
    tg::Tape<double> tape;
    tape.backward(local_loss(ddp, tape));
    ddp.finish_backward();
    return flat(net.parameters(), true);
}
template <class F>
std::vector<double> one_process_gradient(std::uint64_t seed, F&& loss) {
    auto net = make_mlp<double>(seed);
    tg::Tape<double> tape;
    tape.backward(loss(net, tape));
    return flat(net.parameters(), true);
}

// Linear → tanh → dropout(0.5) → linear. The dropout is the op with (seed, counter) on this
// rank's rows, or, with a mask, x ⊙ mask (the mask computed by the caller).
class DropNet final : public nn::Module<double> {
public:
    explicit DropNet(std::uint64_t seed) : rng_(seed), a_(kIn, 12, rng_, {}, 0), b_(12, kClasses, rng_, {}, 1) {}
    tg::Var<double> forward(tg::Tape<double>& tape, const tg::Var<double>& x) override {
        auto h = tg::tanh(a_(tape, x));
        h = mask_.size() ? h * tape.constant_ref(mask_) : tg::dropout(h, 0.5, true, /*seed=*/77, /*counter=*/3);
        return b_(tape, h);
    }
    tg::Var<double> forward_with(tg::Tape<double>&, const tg::Var<double>&, std::span<const tg::Var<double>>) override {
        tg::fail("DropNet: forward_with not needed here");
    }
    std::vector<nn::Parameter<double>*> parameters() override {
        auto p = a_.parameters(), q = b_.parameters();
        p.insert(p.end(), q.begin(), q.end());
        return p;
    }
    std::string describe() const override { return "DropNet"; }
    tg::Tensor<double> mask_;

private:
    nn::Rng rng_;
    nn::Linear<double> a_, b_;
};

std::vector<double> grads_of(DropNet& net, const Batch<double>& b, dist::DistributedDataParallel<double>* ddp) {
    tg::Tape<double> tape;
    nn::Module<double>& m = ddp ? static_cast<nn::Module<double>&>(*ddp) : net;
    net.zero_grad();
    tape.backward(tg::softmax_cross_entropy(m(tape, tape.constant_ref(b.x)), tape.constant_ref(b.y)));
    if (ddp) ddp->finish_backward();
    return flat(net.parameters(), true);
}

}  // namespace

TEST_CASE("equivalence: dropout matches one process only when its mask is keyed by the global sample index") {
    const int r = dist::rank(), n = dist::world_size();
    const std::size_t m = kB / static_cast<std::size_t>(n), lo = r * m, hidden = 12;
    const auto b = global_batch<double>(5);
    DropNet ref(8);
    const auto want = grads_of(ref, b, nullptr);  // one process: dropout over all B rows

    DropNet net(8);
    dist::DistributedDataParallel<double> ddp(net);
    // Keyed by the global index: element (i, j) of the batch takes uniform number i·12 + j of
    // Philox(seed, counter), so this rank's rows [lo, lo + m) take numbers lo·12 … — the mask
    // the one process drew for them.
    net.mask_ = tg::Tensor<double>(m, hidden);
    const tg::Philox philox(77, 3);
    for (std::size_t k = 0; k < net.mask_.size(); ++k)
        net.mask_.data()[k] = philox.uniform<double>(lo * hidden + k) >= 0.5 ? 2.0 : 0.0;
    CHECK(max_rel(grads_of(net, slice(b, lo, lo + m), &ddp), want) <= 1e-12);
    // The op on the rank's own rows numbers them from 0: every rank draws rank 0's mask.
    net.mask_ = tg::Tensor<double>();
    const double naive = max_rel(grads_of(net, slice(b, lo, lo + m), &ddp), want);
    if (n == 1) CHECK(naive <= 1e-12);
    else CHECK(naive > 1e-3);
}

TEST_CASE("equivalence: cross-entropy with ignore_index needs the kept counts reduced too") {
    const int r = dist::rank(), n = dist::world_size();
    const std::size_t m = kB / static_cast<std::size_t>(n), lo = r * m;
    auto b = global_batch<double>(6);
    constexpr std::size_t kIgnored = 18;  // rows 0–17 ignored: all on rank 0, which keeps some (m ≥ 24)
    for (std::size_t i = 0; i < kIgnored; ++i) b.y.data()[i] = -100;
    const tg::CrossEntropyOptions ignore{.ignore_index = -100};
    const auto want = one_process_gradient(12, [&](nn::Module<double>& net, tg::Tape<double>& tape) {
        return tg::softmax_cross_entropy(net(tape, tape.constant_ref(b.x)), tape.constant_ref(b.y), ignore);
    });
    const auto mine = slice(b, lo, lo + m);
    // Each rank's mean over its own kept rows, averaged over ranks: another weighting.
    const auto naive = ddp_gradient(12, [&](nn::Module<double>& net, tg::Tape<double>& tape) {
        return tg::softmax_cross_entropy(net(tape, tape.constant_ref(mine.x)), tape.constant_ref(mine.y), ignore);
    });
    if (n == 1) CHECK(max_rel(naive, want) <= 1e-12);
    else CHECK(max_rel(naive, want) > 1e-3);
    // The sum over this rank's kept rows × N / (rows kept on all ranks) averages to the global mean.
    std::int64_t kept = 0;
    for (std::size_t i = 0; i < m; ++i) kept += mine.y.data()[i] != -100;
    dist::allreduce_sum(&kept, 1, dist::Dtype::i64);
    CHECK(kept == static_cast<std::int64_t>(kB - kIgnored));
    const auto right = ddp_gradient(12, [&](nn::Module<double>& net, tg::Tape<double>& tape) {
        const tg::CrossEntropyOptions sum{.ignore_index = -100, .reduction = tg::Reduction::sum};
        return tg::softmax_cross_entropy(net(tape, tape.constant_ref(mine.x)), tape.constant_ref(mine.y), sum) *
               (static_cast<double>(n) / static_cast<double>(kept));
    });
    CHECK(max_rel(right, want) <= 1e-12);
}

TEST_CASE("equivalence: an uneven last batch needs each rank's mean weighted by N·m_r/m") {
    const int r = dist::rank(), n = dist::world_size();
    const std::size_t m = 97;  // divides by none of 2, 3, 4
    const std::size_t lo = r * m / n, hi = (r + 1) * m / n;
    const auto b = global_batch<double>(8, m);
    const auto want = one_process_gradient(13, [&](nn::Module<double>& net, tg::Tape<double>& tape) {
        return tg::softmax_cross_entropy(net(tape, tape.constant_ref(b.x)), tape.constant_ref(b.y));
    });
    const auto mine = slice(b, lo, hi);
    auto local = [&](double scale) {
        return ddp_gradient(13, [&](nn::Module<double>& net, tg::Tape<double>& tape) {
            return tg::softmax_cross_entropy(net(tape, tape.constant_ref(mine.x)), tape.constant_ref(mine.y)) * scale;
        });
    };
    const double naive = max_rel(local(1.0), want);  // unweighted mean of the ranks' means
    if (n == 1) CHECK(naive <= 1e-12);
    else CHECK(naive > 1e-4);
    CHECK(max_rel(local(static_cast<double>(n * (hi - lo)) / static_cast<double>(m)), want) <= 1e-12);
}
