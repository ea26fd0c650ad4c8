// dist::Env and the collectives: MPI's C API when built with it (TAPEGRAD_DIST_MPI), a world of
// one otherwise.
#include <tapegrad/dist/env.hpp>

#include <algorithm>
#include <climits>
#include <cstdlib>

#include <sched.h>

#include <tapegrad/core/error.hpp>

#if TAPEGRAD_DIST_MPI
#include <mpi.h>
#endif

namespace tapegrad::dist {

namespace {

int g_envs = 0;  // live Env objects

void need_env(const char* what) {
    if (g_envs == 0) fail("dist::{}: no dist::Env is alive (create one at the top of main)", what);
}

#if TAPEGRAD_DIST_MPI
// Largest count handed to MPI in one call (its counts are int).
constexpr std::size_t kChunk = std::size_t(1) << 30;

void check(int rc, const char* call) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    fail("dist: {} failed: {}", call, len ? std::string(msg, static_cast<std::size_t>(len)) : std::string("unknown MPI error"));
}

MPI_Datatype mpi_type(Dtype t) {
    switch (t) {
        case Dtype::f32: return MPI_FLOAT;
        case Dtype::f64: return MPI_DOUBLE;
        case Dtype::i64: return MPI_INT64_T;
        case Dtype::u64: return MPI_UINT64_T;
        case Dtype::u8: return MPI_UINT8_T;
    }
    return MPI_BYTE;
}
#endif

#if TAPEGRAD_DIST_MPI
std::size_t dtype_size(Dtype t) {
    switch (t) {
        case Dtype::f32: return 4;
        case Dtype::f64: case Dtype::i64: case Dtype::u64: return 8;
        case Dtype::u8: return 1;
    }
    return 1;
}

template <class F>
void chunked(void* data, std::size_t count, Dtype t, F&& f) {
    auto* p = static_cast<unsigned char*>(data);
    const std::size_t es = dtype_size(t);
    for (std::size_t done = 0; done < count;) {
        const std::size_t n = std::min(kChunk, count - done);
        f(p + done * es, static_cast<int>(n));
        done += n;
    }
}

bool mpi_live() {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

// Waits for reqs[0, n) (a DDP bucket's requests). timeout_s > 0: polls (MPI_Testall, yielding
// the core between polls) and, after timeout_s seconds, sets `abandoned` and raises an Error
// naming the bucket, this rank and the time waited. 0: MPI_Waitall.
void wait_bucket(MPI_Request* reqs, int n, double timeout_s, std::size_t bucket, bool& abandoned) {
    if (timeout_s <= 0) {
        check(MPI_Waitall(n, reqs, MPI_STATUSES_IGNORE), "MPI_Waitall");
        return;
    }
    const double t0 = MPI_Wtime();
    for (;;) {
        int done = 0;
        check(MPI_Testall(n, reqs, &done, MPI_STATUSES_IGNORE), "MPI_Testall");
        if (done) return;
        const double waited = MPI_Wtime() - t0;
        if (waited > timeout_s) {
            abandoned = true;
            int r = -1;
            MPI_Comm_rank(MPI_COMM_WORLD, &r);
            fail("dist: rank {} waited {:.2f} s for the reduction of gradient bucket {} (timeout {} s): another rank is "
                 "late, stuck or gone; the reduction cannot be completed, end the job (dist::abort)",
                 r, waited, bucket, timeout_s);
        }
        sched_yield();
    }
}
#endif

}  // namespace

bool built_with_mpi() noexcept { return TAPEGRAD_DIST_MPI != 0; }

Env::Env() {
#if TAPEGRAD_DIST_MPI
    int init = 0;
    check(MPI_Initialized(&init), "MPI_Initialized");
    if (!init) {
        int provided = 0;
        check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
        owns_ = true;
    }
    check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
#endif
    ++g_envs;
}

Env::Env(int& argc, char**& argv) {
#if TAPEGRAD_DIST_MPI
    int init = 0;
    check(MPI_Initialized(&init), "MPI_Initialized");
    if (!init) {
        int provided = 0;
        check(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
        owns_ = true;
    }
    check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
#else
    (void)argc;
    (void)argv;
#endif
    ++g_envs;
}

Env::~Env() {
    --g_envs;
#if TAPEGRAD_DIST_MPI
    if (owns_) MPI_Finalize();
#endif
}

bool initialized() noexcept { return g_envs > 0; }

int rank() {
    need_env("rank");
#if TAPEGRAD_DIST_MPI
    int r = 0;
    check(MPI_Comm_rank(MPI_COMM_WORLD, &r), "MPI_Comm_rank");
    return r;
#else
    return 0;
#endif
}

int world_size() {
    need_env("world_size");
#if TAPEGRAD_DIST_MPI
    int n = 1;
    check(MPI_Comm_size(MPI_COMM_WORLD, &n), "MPI_Comm_size");
    return n;
#else
    return 1;
#endif
}

void allreduce_sum(void* data, std::size_t count, Dtype t) {
    need_env("allreduce_sum");
#if TAPEGRAD_DIST_MPI
    chunked(data, count, t, [&](void* p, int n) {
        check(MPI_Allreduce(MPI_IN_PLACE, p, n, mpi_type(t), MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    });
#else
    (void)data, (void)count, (void)t;
#endif
}

void allreduce_max(void* data, std::size_t count, Dtype t) {
    need_env("allreduce_max");
#if TAPEGRAD_DIST_MPI
    chunked(data, count, t, [&](void* p, int n) {
        check(MPI_Allreduce(MPI_IN_PLACE, p, n, mpi_type(t), MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
    });
#else
    (void)data, (void)count, (void)t;
#endif
}

void broadcast(void* data, std::size_t count, Dtype t, int root) {
    need_env("broadcast");
#if TAPEGRAD_DIST_MPI
    chunked(data, count, t, [&](void* p, int n) { check(MPI_Bcast(p, n, mpi_type(t), root, MPI_COMM_WORLD), "MPI_Bcast"); });
#else
    if (root != 0) fail("dist::broadcast: root {} in a world of one", root);
    (void)data, (void)count, (void)t;
#endif
}

void broadcast_bytes(std::vector<std::uint8_t>& bytes, int root) {
    std::uint64_t n = bytes.size();
    broadcast(&n, 1, Dtype::u64, root);
    bytes.resize(n);
    broadcast(bytes.data(), bytes.size(), Dtype::u8, root);
}

void broadcast_string(std::string& s, int root) {
    std::uint64_t n = s.size();
    broadcast(&n, 1, Dtype::u64, root);
    s.resize(n);
    broadcast(s.data(), s.size(), Dtype::u8, root);
}

std::vector<std::int64_t> allgather(std::int64_t value) {
    need_env("allgather");
    std::vector<std::int64_t> all(static_cast<std::size_t>(world_size()));
#if TAPEGRAD_DIST_MPI
    check(MPI_Allgather(&value, 1, MPI_INT64_T, all.data(), 1, MPI_INT64_T, MPI_COMM_WORLD), "MPI_Allgather");
#else
    all[0] = value;
#endif
    return all;
}

void barrier() {
    need_env("barrier");
#if TAPEGRAD_DIST_MPI
    check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
#endif
}

void abort(int code) {
#if TAPEGRAD_DIST_MPI
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    std::exit(code);
}

// ---- Requests ---------------------------------------------------------------------------------

struct Requests::Impl {
#if TAPEGRAD_DIST_MPI
    std::vector<MPI_Request> req;
#endif
    bool abandoned = false;
};

Requests::Requests(std::size_t slots) : impl_(std::make_unique<Impl>()), slots_(slots) {
#if TAPEGRAD_DIST_MPI
    impl_->req.assign(slots, MPI_REQUEST_NULL);
#endif
}

Requests::~Requests() {
#if TAPEGRAD_DIST_MPI
    // Requests still in flight (an exception unwound past wait_all): complete them, since MPI
    // may still write into their buffers — unless a timeout abandoned them.
    if (!impl_->abandoned && mpi_live())
        MPI_Waitall(static_cast<int>(impl_->req.size()), impl_->req.data(), MPI_STATUSES_IGNORE);
#endif
}

void Requests::start_sum(std::size_t slot, void* data, std::size_t count, Dtype t) {
    if (slot >= slots_) fail("dist::Requests: slot {} of {}", slot, slots_);
#if TAPEGRAD_DIST_MPI
    if (count > static_cast<std::size_t>(INT_MAX))
        fail("dist::Requests: {} elements in one non-blocking all-reduce (at most {}): use smaller buckets", count, INT_MAX);
    if (impl_->req[slot] != MPI_REQUEST_NULL) fail("dist::Requests: slot {} started twice", slot);
    check(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count), mpi_type(t), MPI_SUM, MPI_COMM_WORLD,
                         &impl_->req[slot]),
          "MPI_Iallreduce");
#else
    (void)data, (void)count, (void)t;
#endif
}

bool Requests::test_all() {
#if TAPEGRAD_DIST_MPI
    int done = 0;
    check(MPI_Testall(static_cast<int>(impl_->req.size()), impl_->req.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
    return done != 0;
#else
    return true;
#endif
}

void Requests::wait_all(double timeout_s) {
#if TAPEGRAD_DIST_MPI
    for (std::size_t i = 0; i < impl_->req.size(); ++i) wait_bucket(&impl_->req[i], 1, timeout_s, i, impl_->abandoned);
#else
    (void)timeout_s;
#endif
}

bool Requests::abandoned() const noexcept { return impl_->abandoned; }

// ---- OrderedReducer ---------------------------------------------------------------------------

#if TAPEGRAD_DIST_MPI
namespace {

// own[0, len) = Σ_k src_k in rank order, ((src_0 + src_1) + src_2) + …, where src_me = own and
// the others' chunks lie in `others` (len each, ranks in order, skipping me).
template <class T>
void sum_in_rank_order(T* own, const T* others, std::size_t len, int n, int me) {
    constexpr std::size_t kBlock = 256;
    T acc[kBlock];
    for (std::size_t i0 = 0; i0 < len; i0 += kBlock) {
        const std::size_t m = std::min(kBlock, len - i0);
        auto src = [&](int k) -> const T* {
            return k == me ? own + i0 : others + static_cast<std::size_t>(k < me ? k : k - 1) * len + i0;
        };
        std::copy_n(src(0), m, acc);
        for (int k = 1; k < n; ++k) {
            const T* s = src(k);
            for (std::size_t i = 0; i < m; ++i) acc[i] += s[i];
        }
        std::copy_n(acc, m, own + i0);
    }
}

}  // namespace
#endif

struct OrderedReducer::Impl {
    std::vector<Span> spans;
    std::vector<std::uint8_t> phase;  // per bucket: 0 idle, 1 reducing, 2 gathering, 3 done
    unsigned char* base = nullptr;
    Dtype t = Dtype::f32;
    std::size_t es = 4;
    int n = 1, me = 0;
    bool abandoned = false;
#if TAPEGRAD_DIST_MPI
    static constexpr int kTagReduce = 1, kTagGather = 2;
    MPI_Comm comm = MPI_COMM_NULL;
    std::vector<MPI_Request> req;         // per bucket 2(N−1): receives, then sends
    std::unique_ptr<double[]> scratch;    // per bucket (N−1) chunks of this rank's size
    std::vector<std::size_t> scratch_at;  // per bucket, in bytes

    std::size_t lo(std::size_t b, int c) const { return spans[b].count * static_cast<std::size_t>(c) / static_cast<std::size_t>(n); }
    std::size_t len(std::size_t b, int c) const { return lo(b, c + 1) - lo(b, c); }
    unsigned char* chunk(std::size_t b, int c) const { return base + (spans[b].offset + lo(b, c)) * es; }
    MPI_Request* slice(std::size_t b) { return req.data() + b * 2 * static_cast<std::size_t>(n - 1); }

    // Posts, for bucket b, a receive of chunk `recv_of(k)` into `recv_at(k)` from every other
    // rank k and a send of `send_of(k)` to it (zero-length chunks: nothing, on both sides).
    template <class RecvAt, class SendOf>
    void post(std::size_t b, int tag, RecvAt recv_at, SendOf send_of) {
        MPI_Request* r = slice(b);
        const MPI_Datatype dt = mpi_type(t);
        for (int k = 0, j = 0; k < n; ++k) {
            if (k == me) continue;
            auto [rp, rn] = recv_at(k);
            auto [sp, sn] = send_of(k);
            if (rn) check(MPI_Irecv(rp, static_cast<int>(rn), dt, k, tag, comm, &r[j]), "MPI_Irecv");
            if (sn) check(MPI_Isend(sp, static_cast<int>(sn), dt, k, tag, comm, &r[n - 1 + j]), "MPI_Isend");
            ++j;
        }
    }
    void start_reduce(std::size_t b) {
        unsigned char* tmp = reinterpret_cast<unsigned char*>(scratch.get()) + scratch_at[b];
        const std::size_t mine = len(b, me);
        post(
            b, kTagReduce,
            [&](int k) { return std::pair{tmp + static_cast<std::size_t>(k < me ? k : k - 1) * mine * es, mine}; },
            [&](int k) { return std::pair{chunk(b, k), len(b, k)}; });
        phase[b] = 1;
    }
    void start_gather(std::size_t b) {
        const unsigned char* tmp = reinterpret_cast<const unsigned char*>(scratch.get()) + scratch_at[b];
        const std::size_t mine = len(b, me);
        if (t == Dtype::f32)
            sum_in_rank_order(reinterpret_cast<float*>(chunk(b, me)), reinterpret_cast<const float*>(tmp), mine, n, me);
        else
            sum_in_rank_order(reinterpret_cast<double*>(chunk(b, me)), reinterpret_cast<const double*>(tmp), mine, n, me);
        post(
            b, kTagGather, [&](int k) { return std::pair{chunk(b, k), len(b, k)}; },
            [&](int) { return std::pair{chunk(b, me), mine}; });
        phase[b] = 2;
    }
    bool test(std::size_t b) {
        int done = 0;
        check(MPI_Testall(2 * (n - 1), slice(b), &done, MPI_STATUSES_IGNORE), "MPI_Testall");
        return done != 0;
    }
#endif
};

OrderedReducer::OrderedReducer(void* base, std::span<const Span> buckets, Dtype t) : impl_(std::make_unique<Impl>()) {
    need_env("OrderedReducer");
    if (t != Dtype::f32 && t != Dtype::f64) fail("dist::OrderedReducer: float or double only");
    Impl& m = *impl_;
    m.spans.assign(buckets.begin(), buckets.end());
    m.phase.assign(buckets.size(), 0);
    m.base = static_cast<unsigned char*>(base);
    m.t = t;
    m.es = t == Dtype::f32 ? 4 : 8;
    m.n = world_size();
    m.me = rank();
#if TAPEGRAD_DIST_MPI
    check(MPI_Comm_dup(MPI_COMM_WORLD, &m.comm), "MPI_Comm_dup");
    check(MPI_Comm_set_errhandler(m.comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    m.req.assign(buckets.size() * 2 * static_cast<std::size_t>(m.n - 1), MPI_REQUEST_NULL);
    std::size_t bytes = 0;
    for (std::size_t b = 0; b < buckets.size(); ++b) {
        if (buckets[b].count / static_cast<std::size_t>(m.n) + 1 > static_cast<std::size_t>(INT_MAX))  // a chunk's size
            fail("dist::OrderedReducer: bucket {} of {} elements: chunks of more than {} elements (use smaller buckets)", b,
                 buckets[b].count, INT_MAX);
        m.scratch_at.push_back(bytes);
        bytes += (m.len(b, m.me) * static_cast<std::size_t>(m.n - 1) * m.es + 63) / 64 * 64;
    }
    m.scratch = std::make_unique<double[]>(bytes / sizeof(double) + 1);
#endif
}

OrderedReducer::~OrderedReducer() {
#if TAPEGRAD_DIST_MPI
    Impl& m = *impl_;
    if (m.abandoned) {
        (void)m.scratch.release();  // MPI may still write into it: it must outlive the process
        return;
    }
    if (mpi_live()) {
        MPI_Waitall(static_cast<int>(m.req.size()), m.req.data(), MPI_STATUSES_IGNORE);
        MPI_Comm_free(&m.comm);
    }
#endif
}

std::size_t OrderedReducer::buckets() const noexcept { return impl_->spans.size(); }
bool OrderedReducer::abandoned() const noexcept { return impl_->abandoned; }

void OrderedReducer::start(std::size_t b) {
    Impl& m = *impl_;
    if (b >= m.spans.size()) fail("dist::OrderedReducer: bucket {} of {}", b, m.spans.size());
    if (m.phase[b] != 0) fail("dist::OrderedReducer: bucket {} started twice", b);
#if TAPEGRAD_DIST_MPI
    if (m.n > 1) {
        m.start_reduce(b);
        return;
    }
#endif
    m.phase[b] = 3;  // a world of one: the sum is the contribution
}

void OrderedReducer::poll() {
#if TAPEGRAD_DIST_MPI
    // Messages match by (source, tag) in the order they were posted, so every rank must post
    // the all-gathers, like the reduce-scatters, in bucket order: a bucket moves to its
    // all-gather only after every bucket before it has.
    Impl& m = *impl_;
    bool in_order = true;
    for (std::size_t b = 0; b < m.spans.size(); ++b) {
        if (m.phase[b] == 1) {
            if (in_order && m.test(b)) m.start_gather(b);
            else in_order = false;
        } else if (m.phase[b] == 2 && m.test(b)) {
            m.phase[b] = 3;
        }
    }
#endif
}

void OrderedReducer::wait_all(double timeout_s) {
    Impl& m = *impl_;
    for (std::size_t b = 0; b < m.spans.size(); ++b)
        if (m.phase[b] == 0) fail("dist::OrderedReducer: waiting for bucket {}, which was never started", b);
#if TAPEGRAD_DIST_MPI
    const int per = 2 * (m.n - 1);
    for (std::size_t b = 0; b < m.spans.size(); ++b)
        if (m.phase[b] == 1) {
            wait_bucket(m.slice(b), per, timeout_s, b, m.abandoned);
            m.start_gather(b);
        }
    for (std::size_t b = 0; b < m.spans.size(); ++b)
        if (m.phase[b] == 2) wait_bucket(m.slice(b), per, timeout_s, b, m.abandoned);
#else
    (void)timeout_s;
#endif
    std::fill(m.phase.begin(), m.phase.end(), std::uint8_t(0));
}

}  // namespace tapegrad::dist
