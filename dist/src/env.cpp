// dist::Env and the collectives: MPI's C API when built with it (TAPEGRAD_DIST_MPI), a world of
// one otherwise.
#include <tapegrad/dist/env.hpp>

#include <algorithm>
#include <climits>
#include <cstdlib>

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
};

Requests::Requests(std::size_t slots) : impl_(std::make_unique<Impl>()), slots_(slots) {
#if TAPEGRAD_DIST_MPI
    impl_->req.assign(slots, MPI_REQUEST_NULL);
#endif
}

Requests::~Requests() {
#if TAPEGRAD_DIST_MPI
    // Requests still in flight (an exception unwound past wait_all): complete them, since MPI
    // may still write into their buffers.
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Waitall(static_cast<int>(impl_->req.size()), impl_->req.data(), MPI_STATUSES_IGNORE);
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

void Requests::wait_all() {
#if TAPEGRAD_DIST_MPI
    check(MPI_Waitall(static_cast<int>(impl_->req.size()), impl_->req.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
#endif
}

}  // namespace tapegrad::dist
