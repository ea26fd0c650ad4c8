#include <tapegrad/core/parallel.hpp>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <tapegrad/core/tensor.hpp>

namespace tapegrad {

namespace {

thread_local bool t_in_region = false;

// Parked workers: each waits for a new generation, runs its part of the current job, and counts
// down `pending`; the caller waits for 0. One job at a time (`run_lock`).
class Pool {
public:
    ~Pool() {
        {
            std::lock_guard lk(m_);
            stop_ = true;
        }
        wake_.notify_all();
        for (auto& t : workers_) t.join();
    }

    void run(std::size_t n, std::size_t parts, detail::RangeFn fn, void* ctx) {
        std::lock_guard job(run_lock_);
        {
            std::lock_guard lk(m_);
            while (workers_.size() < parts - 1) {
                const std::size_t id = workers_.size() + 1, seen = generation_;  // part 0 is the caller's
                try {
                    workers_.emplace_back([this, id, seen] { work(id, seen); });
                } catch (...) {  // no thread to be had: fewer parts
                    parts = workers_.size() + 1;
                    break;
                }
            }
            n_ = n, parts_ = parts, fn_ = fn, ctx_ = ctx;
            pending_ = parts - 1;
            ++generation_;
        }
        wake_.notify_all();
        t_in_region = true;
        fn(ctx, 0, n / parts);
        t_in_region = false;
        std::unique_lock lk(m_);
        done_.wait(lk, [&] { return pending_ == 0; });
    }

private:
    // seen: the generation current when the worker was made (the job that made it comes next).
    void work(std::size_t id, std::size_t seen) {
        t_in_region = true;
        std::unique_lock lk(m_);
        for (;;) {
            wake_.wait(lk, [&] { return stop_ || generation_ != seen; });
            if (stop_) return;
            seen = generation_;
            if (id >= parts_) continue;  // a job with fewer parts: not counted in pending_
            const std::size_t n = n_, parts = parts_;
            const detail::RangeFn fn = fn_;
            void* ctx = ctx_;
            lk.unlock();
            fn(ctx, n * id / parts, n * (id + 1) / parts);
            lk.lock();
            if (--pending_ == 0) done_.notify_one();
        }
    }

    std::mutex run_lock_;
    std::mutex m_;
    std::condition_variable wake_, done_;
    std::vector<std::thread> workers_;
    std::size_t generation_ = 0, pending_ = 0;
    std::size_t n_ = 0, parts_ = 0;
    detail::RangeFn fn_ = nullptr;
    void* ctx_ = nullptr;
    bool stop_ = false;
};

Pool& pool() {
    static Pool p;
    return p;
}

}  // namespace

int parallel_threads() noexcept {
    static const int cores = std::max(1, int(std::thread::hardware_concurrency()));
    return std::min(blas_threads(), cores);
}

namespace detail {

void parallel_run(std::size_t n, std::size_t parts, RangeFn fn, void* ctx) noexcept { pool().run(n, parts, fn, ctx); }

bool in_parallel_region() noexcept { return t_in_region; }

}  // namespace detail

}  // namespace tapegrad
