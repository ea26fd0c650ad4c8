// The process environment of data-parallel training: MPI's world, or a world of one.
//
//   tg::dist::Env env(argc, argv);           // MPI_Init_thread … MPI_Finalize (RAII)
//   int r = tg::dist::rank(), n = tg::dist::world_size();
//
// Built with MPI (CMake found it: tg::dist::built_with_mpi()), Env initialises MPI and every
// collective below is the plain MPI-3 C call on MPI_COMM_WORLD. Built without, the same API
// runs as a world of one: rank 0 of 1, every collective the identity. Either way an Env must be
// alive to use them (a program that forgot it under mpirun would otherwise run N copies that
// each think they are rank 0).
//
// Errors: MPI_COMM_WORLD's handler is MPI_ERRORS_RETURN, and a failed call raises a
// tapegrad::Error naming the call and carrying MPI's error string. A rank that dies makes
// mpirun end the whole job (non-zero exit): nothing here waits for it forever.
//
// MPI takes counts as int: the collectives split larger arrays into chunks themselves.
// Nothing in this header includes <mpi.h>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace tapegrad::dist {

enum class Dtype : std::uint8_t { f32, f64, i64, u64, u8 };

template <class T>
constexpr Dtype dtype_of() noexcept {
    if constexpr (std::is_same_v<T, float>) return Dtype::f32;
    else if constexpr (std::is_same_v<T, double>) return Dtype::f64;
    else if constexpr (std::is_same_v<T, std::int64_t>) return Dtype::i64;
    else if constexpr (std::is_same_v<T, std::uint64_t>) return Dtype::u64;
    else {
        static_assert(std::is_same_v<T, std::uint8_t>, "dist: collectives take float, double, int64, uint64 or uint8");
        return Dtype::u8;
    }
}

// True when tapegrad was built with MPI (otherwise every world has one rank).
bool built_with_mpi() noexcept;

// Initialises MPI (MPI_THREAD_FUNNELED: only the thread that made the Env calls MPI) and
// finalises it when destroyed. One per process; if MPI was already initialised by someone else,
// Env neither initialises nor finalises it.
class Env {
public:
    Env(int& argc, char**& argv);
    Env();
    ~Env();
    Env(const Env&) = delete;
    Env& operator=(const Env&) = delete;

private:
    bool owns_ = false;
};

bool initialized() noexcept;  // an Env is alive
int rank();                   // this process's rank in the world, 0 … world_size() − 1
int world_size();             // number of processes (1 without MPI)

// Element-wise sum (max) over all ranks, in place; every rank gets the result.
void allreduce_sum(void* data, std::size_t count, Dtype t);
void allreduce_max(void* data, std::size_t count, Dtype t);
// root's data to every rank.
void broadcast(void* data, std::size_t count, Dtype t, int root);
// Every rank's `value`, indexed by rank.
std::vector<std::int64_t> allgather(std::int64_t value);
void barrier();
// Ends every rank of the job with `code` (MPI_Abort); without MPI, std::exit.
[[noreturn]] void abort(int code);

template <class T>
void allreduce_sum(std::span<T> v) { allreduce_sum(v.data(), v.size(), dtype_of<T>()); }
template <class T>
void allreduce_max(std::span<T> v) { allreduce_max(v.data(), v.size(), dtype_of<T>()); }
template <class T>
void broadcast(std::span<T> v, int root = 0) { broadcast(v.data(), v.size(), dtype_of<T>(), root); }
// root's bytes to every rank (the others' vectors are resized to root's length).
void broadcast_bytes(std::vector<std::uint8_t>& bytes, int root = 0);
void broadcast_string(std::string& s, int root = 0);

// A fixed set of non-blocking in-place sum-all-reduces (MPI_Iallreduce): slot i is started
// with start_sum(i, …), all progress with test_all() (Open MPI makes no progress in the
// background: whoever waits must poll) and finish with wait_all(). The request array is made
// once, at construction: starting and finishing allocate nothing.
class Requests {
public:
    explicit Requests(std::size_t slots);
    ~Requests();
    Requests(const Requests&) = delete;
    Requests& operator=(const Requests&) = delete;

    std::size_t slots() const noexcept { return slots_; }
    void start_sum(std::size_t slot, void* data, std::size_t count, Dtype t);
    bool test_all();  // true when every started request has completed
    // Waits slot by slot, in order. timeout_s > 0: a slot not complete after that many seconds
    // raises a tapegrad::Error naming the slot (a DDP bucket), this rank and the time waited
    // (see abandon()); 0: no limit.
    void wait_all(double timeout_s = 0);
    // After a timeout: the requests stay in flight, and the destructor will not wait for them
    // (the job is to be ended: dist::abort()). Their buffers must then outlive the process.
    bool abandoned() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::size_t slots_;
};

// A deterministic in-place sum-all-reduce of a fixed set of buckets of one array, on
// non-blocking point-to-point messages (MPI_Isend / MPI_Irecv on a duplicate of the world's
// communicator), whose summation order is fixed and documented:
//
//   each bucket is split into N chunks (chunk c: elements [c·n/N, (c+1)·n/N) of the bucket's n);
//   rank c receives chunk c from every other rank and sums, element by element, in rank order:
//   ((g_0 + g_1) + g_2) + … + g_{N−1}; then every rank receives every summed chunk from its
//   owner (an all-gather).
//
// So each element is the contributions added in rank order, whatever N and whatever Open MPI's
// algorithm choice: one process that accumulates micro-batch 0, then 1, …, then N−1 into the
// same buffers computes the same bits. Buckets are started with start(b) (in the same order on
// every rank), progress with poll() (also moves a bucket from its reduce to its all-gather) and
// finish with wait_all(timeout_s) (as Requests::wait_all). Everything (requests, the receive
// scratch: (N−1)/N of the array) is allocated at construction: start, poll and wait allocate
// nothing. Collective construction. f32 and f64 only.
class OrderedReducer {
public:
    struct Span {
        std::size_t offset = 0, count = 0;  // elements of the array
    };
    OrderedReducer(void* base, std::span<const Span> buckets, Dtype t);
    ~OrderedReducer();
    OrderedReducer(const OrderedReducer&) = delete;
    OrderedReducer& operator=(const OrderedReducer&) = delete;

    std::size_t buckets() const noexcept;
    void start(std::size_t b);
    void poll();
    void wait_all(double timeout_s = 0);
    bool abandoned() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace tapegrad::dist
