// DistributedDataParallel<T>: one replica of a module per rank, gradients averaged after backward.
//
//   tg::dist::Env env(argc, argv);
//   tg::dist::DistributedDataParallel<float> ddp(net);   // rank 0's parameters on every rank
//   for (…) {                                              // each rank: its share of the batch
//       tape.reset();
//       auto loss = tg::softmax_cross_entropy(ddp(tape, tape.constant_ref(x_r)), tape.constant_ref(y_r));
//       tape.backward(loss);
//       ddp.finish_backward();                             // p.grad = (Σ_ranks ∂E_r/∂p) ÷ N
//       opt.step(); opt.zero_grad();
//   }
//
// Averaging: N ranks with B/N rows each and a mean loss reproduce one process with B rows at the
// same learning rate, since the mean over B is the mean of the N per-rank means (equal shares).
//
// Construction (collective: every rank constructs, in the same order):
//   - every rank checks that all hold the same parameters (name, shape, precision, frozen flag,
//     in parameters() order); if not, every rank raises an Error naming the first mismatching
//     parameter and the ranks (rank 0's description and the other rank's);
//   - rank 0's parameter values are broadcast to all;
//   - the trainable parameters are laid out, in reverse parameters() order (the order their
//     gradients complete in a backward of a feed-forward net), in buckets of at most
//     Options::bucket_bytes (a larger parameter gets one of its own) (25 MiB by default, as torch's DDP), and every parameter's gradient
//     buffer becomes a view into its bucket: the sweep writes gradients straight into the memory
//     that is reduced. No copies, and no heap allocation per step.
//
// Reduction (Options::deterministic, the default): each bucket is summed by OrderedReducer
// (env.hpp) — split into N chunks, rank c sums chunk c's contributions in rank order
// ((g_0 + g_1) + g_2) + …, then all-gathers — on MPI_Isend/Irecv, so every element is bitwise
// what one process gets by adding micro-batches 0 … N−1, for any N, bucket size and overlap.
// deterministic = false uses Open MPI's MPI_Iallreduce (blocking MPI_Allreduce without overlap),
// whose order Open MPI chooses. Options::timeout > 0 bounds each wait (an Error naming the
// bucket, the rank and the time waited; the job must then end).
//
// Backward: each trainable parameter gets a post-accumulate hook (core/hooks.hpp). When a
// parameter's gradient is complete the hook marks it; when a bucket and all buckets before it
// are complete, their reduction (in place, sum) is started — in bucket order on every rank,
// whatever order the sweep completed them in — and the hook polls the requests in flight, so the
// reduction overlaps the rest of the sweep (Options::overlap = false starts them all at
// finish_backward instead). finish_backward() starts the buckets not started yet — a parameter
// the sweep never reached contributes zeros (its gradient as it stands: zero after zero_grad()),
// so a branch taken on some ranks only never hangs — waits for all and divides by N. When the
// sweep reached every parameter, its last hook has already done all of this, and
// finish_backward() returns at once: a loop that never calls it (nn::train_epoch) still gets
// averaged gradients as long as every parameter takes part in every step. With overlap = false
// no hook is registered, and finish_backward() starts and completes every bucket's reduction
// (with deterministic = false: the blocking MPI_Allreduce, bucket by bucket); a parameter not
// reached is then told by its still cleared buffer.
//
// no_sync(): within its scope backward() only accumulates locally (gradient accumulation over
// micro-batches; torch's no_sync). The first backward after the scope averages the accumulated
// gradients.
//
// One backward per finish_backward() (outside no_sync): a second backward() into a bucket whose
// reduction is in flight raises an Error.
//
// Buffers (Module::buffers(): batch norm's running mean and variance, num_batches_tracked):
// checked like the parameters and broadcast from rank 0 at construction; and, with
// Options::broadcast_buffers (true by default, torch's broadcast_buffers=True), again before
// every forward() / forward_with() through the DDP — so every replica's forward (and the
// evaluation after training, once one more forward or broadcast_buffers() has run) uses rank 0's
// statistics, while training-mode batch statistics stay those of each rank's share (this is not
// synchronised batch norm). All buffers travel in one MPI_Bcast of a byte buffer made at
// construction: nothing is allocated per step. infer() broadcasts nothing (it is not collective:
// rank 0 may evaluate alone); call broadcast_buffers() first if the others must match.
//
// Not covered (stated): the parameter set, the buffers and the frozen flags are fixed at
// construction (freeze before wrapping); the optimiser stays local (each rank steps the same
// averaged gradients: replicas stay equal).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <memory_resource>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/core/error.hpp>
#include <tapegrad/core/tensor.hpp>
#include <tapegrad/dist/env.hpp>
#include <tapegrad/nn/parameter.hpp>

namespace tapegrad::dist {

template <class T>
class DistributedDataParallel : public nn::Module<T> {
public:
    struct Options {
        std::size_t bucket_bytes = std::size_t(25) << 20;  // torch's bucket_cap_mb = 25
        bool overlap = true;                               // start reductions from the sweep
        bool broadcast_buffers = true;                     // rank 0's buffers before each forward
        // The sum in rank order on every element, ((g_0 + g_1) + g_2) + … (OrderedReducer: our
        // own reduce-scatter + all-gather on MPI_Isend/Irecv), so the result is bitwise that of
        // one process accumulating micro-batches 0 … N−1, for any N; false: Open MPI's
        // MPI_Iallreduce / MPI_Allreduce, whose order depends on N and its algorithm choice.
        bool deterministic = true;
        // > 0: a rank waiting longer than this many seconds for a bucket's reduction raises a
        // tapegrad::Error naming the bucket, the rank and the time waited; the reduction is then
        // abandoned and the job must end (dist::abort; an uncaught exception does it too, as
        // mpirun ends the job when a rank dies). 0: wait forever. (Not with overlap = false and
        // deterministic = false, whose blocking MPI_Allreduce cannot time out: the requests of
        // MPI_Iallreduce are used instead then.)
        double timeout = 0;
    };

    explicit DistributedDataParallel(nn::Module<T>& module) : DistributedDataParallel(module, Options{}) {}
    DistributedDataParallel(nn::Module<T>& module, Options opt);
    ~DistributedDataParallel() override;

    // Completes the gradient averaging of the last backward() (see above). Collective.
    void finish_backward();

    class NoSync {
    public:
        explicit NoSync(DistributedDataParallel& d) : d_(&d), prev_(d.s_->sync) { d.s_->sync = false; }
        ~NoSync() { d_->s_->sync = prev_; }
        NoSync(const NoSync&) = delete;
        NoSync& operator=(const NoSync&) = delete;

    private:
        DistributedDataParallel* d_;
        bool prev_;
    };
    [[nodiscard]] NoSync no_sync() { return NoSync(*this); }

    // Rank 0's parameter values to every rank (done at construction; again after a load on rank 0).
    void broadcast_parameters();
    // Rank 0's buffers to every rank (done at construction and, with Options::broadcast_buffers,
    // before every forward). Collective; allocates nothing.
    void broadcast_buffers();
    std::size_t buffer_count() const noexcept { return buffers_.size(); }
    // For a rank that takes part in a step without a forward (an empty share of an uneven last
    // batch): makes the buffer broadcast the others' forward makes, so the collectives match.
    void forward_skipped() {
        if (sync_buffers_) broadcast_buffers();
    }

    nn::Module<T>& module() noexcept { return *module_; }
    std::size_t bucket_count() const noexcept { return s_->buckets.size(); }
    // Elements in bucket b (with the alignment padding between parameters).
    std::size_t bucket_elements(std::size_t b) const { return s_->buckets.at(b).count; }
    std::size_t bucket_of(const nn::Parameter<T>& p) const;

    // Module interface: the wrapped module's (forward and forward_with broadcast the buffers
    // first when Options::broadcast_buffers).
    Var<T> forward(Tape<T>& tape, const Var<T>& x) override {
        if (sync_buffers_) broadcast_buffers();
        return module_->forward(tape, x);
    }
    Tensor<T> infer(const Tensor<T>& x) override { return module_->infer(x); }
    Var<T> forward_with(Tape<T>& tape, const Var<T>& x, std::span<const Var<T>> params) override {
        if (sync_buffers_) broadcast_buffers();
        return module_->forward_with(tape, x, params);
    }
    std::vector<nn::Parameter<T>*> parameters() override { return module_->parameters(); }
    std::vector<nn::Buffer<T>> buffers() override { return module_->buffers(); }
    void set_training(bool on) override {
        nn::Module<T>::set_training(on);
        module_->set_training(on);
    }
    std::string describe() const override { return "DistributedDataParallel(" + module_->describe() + ")"; }

private:
    static constexpr std::size_t kAlignElems = 64 / sizeof(T);  // each gradient starts on 64 bytes

    struct Bucket {
        std::size_t offset = 0, count = 0;  // elements of storage
        std::size_t first = 0, last = 0;    // its parameters: params[first, last)
        std::size_t pending = 0;            // parameters not complete yet in this backward
        bool started = false;
    };
    // Reached from the hooks, which outlive this object (a GradBuffer's hooks cannot be removed
    // one by one): at destruction `alive` becomes false, the memory is given back, and the small
    // remainder is kept (graveyard()) so that a later backward's hooks find it and do nothing.
    // A hook captures (State*, index): 16 bytes, which std::function holds without allocating.
    struct State {
        bool alive = true;
        bool sync = true;
        bool overlap = true;
        bool deterministic = true;
        double timeout = 0;
        int world = 1;
        std::vector<nn::Parameter<T>*> params;  // trainable, bucket order
        std::vector<std::size_t> bucket_of;     // per params entry
        std::vector<std::size_t> offset_of;     // per params entry, in storage
        std::vector<char> done;                 // per params entry: gradient complete
        std::vector<Bucket> buckets;
        std::size_t next = 0;  // first bucket not started
        std::size_t ready_count = 0;
        bool completed = false;  // by the last hook, since the last finish_backward()
        std::unique_ptr<T[]> storage;
        std::unique_ptr<Requests> req;            // deterministic = false
        std::unique_ptr<OrderedReducer> ordered;  // deterministic = true

        bool abandoned() const { return (req && req->abandoned()) || (ordered && ordered->abandoned()); }
        void poll() {
            if (ordered) ordered->poll();
            else req->test_all();
        }
        void on_complete(std::size_t i);
        void start_ready();
        void complete();  // start the rest, wait, average, reset
    };

    void verify_same_parameters(const std::vector<nn::Parameter<T>*>& all);
    static std::vector<std::unique_ptr<State>>& graveyard() {
        static std::vector<std::unique_ptr<State>> g;
        return g;
    }

    nn::Module<T>* module_;
    std::unique_ptr<State> s_;
    std::vector<nn::Buffer<T>> buffers_;     // the module's, fixed at construction
    std::vector<std::uint8_t> buffer_bytes_;  // all of them packed, for one broadcast
    bool sync_buffers_ = false;              // broadcast before each forward
};

// ---- implementation ---------------------------------------------------------------------------

namespace detail {
inline std::string describe_parameter(const std::string& name, const Shape& s, bool is_float, bool frozen) {
    return fmt::format("'{}' {} {}{}", name, s, is_float ? "float" : "double", frozen ? " frozen" : "");
}
}  // namespace detail

template <class T>
DistributedDataParallel<T>::DistributedDataParallel(nn::Module<T>& module, Options opt)
    : module_(&module), s_(std::make_unique<State>()) {
    if (opt.bucket_bytes == 0) fail("DistributedDataParallel: bucket_bytes must be positive");
    const std::vector<nn::Parameter<T>*> all = module.parameters();
    buffers_ = module.buffers();
    verify_same_parameters(all);
    broadcast_parameters();
    std::size_t nbytes = 0;
    for (const nn::Buffer<T>& b : buffers_)
        nbytes += (b.tensor ? b.tensor->size() * sizeof(T) : 0) + (b.count ? sizeof(std::int64_t) : 0);
    buffer_bytes_.resize(nbytes);
    broadcast_buffers();
    sync_buffers_ = opt.broadcast_buffers && !buffers_.empty();
    nn::Module<T>::set_training(module.is_training());  // mirrors the module's mode

    if (!(opt.timeout >= 0)) fail("DistributedDataParallel: timeout must be ≥ 0 seconds (0: none), not {}", opt.timeout);
    State& s = *s_;
    s.overlap = opt.overlap;
    s.deterministic = opt.deterministic;
    s.timeout = opt.timeout;
    s.world = world_size();
    for (auto it = all.rbegin(); it != all.rend(); ++it)
        if ((*it)->requires_grad()) s.params.push_back(*it);

    // Layout: parameters in order, each at a 64-byte boundary; a new bucket once one holds
    // bucket_bytes or more.
    const std::size_t cap = std::max<std::size_t>(1, opt.bucket_bytes / sizeof(T));
    std::size_t off = 0;
    for (std::size_t i = 0; i < s.params.size(); ++i) {
        // A new bucket when this parameter would take the current one past the cap (a
        // parameter larger than the cap gets a bucket of its own), as torch's DDP.
        if (s.buckets.empty() || (s.buckets.back().count > 0 && s.buckets.back().count + s.params[i]->size() > cap)) {
            Bucket b;
            b.offset = off;
            b.first = i;
            b.last = i;
            s.buckets.push_back(b);
        }
        Bucket& b = s.buckets.back();
        const std::size_t start = off;
        s.offset_of.push_back(start);
        s.bucket_of.push_back(s.buckets.size() - 1);
        off = start + s.params[i]->size();
        off = (off + kAlignElems - 1) / kAlignElems * kAlignElems;
        b.count = off - b.offset;
        b.last = i + 1;
    }
    s.storage = std::make_unique<T[]>(off);  // value-initialised: zeros (padding stays zero)
    s.done.assign(s.params.size(), 0);
    for (Bucket& b : s.buckets) b.pending = b.last - b.first;
    if (s.deterministic) {
        std::vector<OrderedReducer::Span> spans;
        for (const Bucket& b : s.buckets) spans.push_back({b.offset, b.count});
        s.ordered = std::make_unique<OrderedReducer>(s.storage.get(), spans, dtype_of<T>());
    } else {
        s.req = std::make_unique<Requests>(s.buckets.size());
    }

    // Gradient buffers become views of the bucket memory, keeping what they hold.
    for (std::size_t i = 0; i < s.params.size(); ++i) {
        nn::Parameter<T>& p = *s.params[i];
        T* slot = s.storage.get() + s.offset_of[i];
        const bool was_cleared = p.grad.cleared();
        Tensor<T>& g = p.grad.mutable_tensor();  // (settles a cleared buffer: zeros)
        if (g.size()) std::copy_n(g.data(), g.size(), slot);
        g = Tensor<T>::view(slot, p.shape(), std::pmr::get_default_resource());
        if (was_cleared) p.grad.clear();
        // Without overlap no hook is needed: finish_backward() reduces every bucket, and a
        // parameter the sweep did not reach is told by its still cleared buffer.
        if (s.overlap) {
            State* st = s_.get();
            p.grad.register_post_accumulate_hook([st, i](GradBuffer<T>&) {
                if (st->alive) st->on_complete(i);
            });
        }
    }
}

template <class T>
DistributedDataParallel<T>::~DistributedDataParallel() {
    State& s = *s_;
    s.alive = false;
    if (s.abandoned()) {
        // A timeout left reductions in flight that may still write into the buckets: the job is
        // ending (Options::timeout), so the memory is left to the process's end.
        (void)s.storage.release();
        s.req.reset();
        s.ordered.reset();
        if (s.overlap && !s.params.empty()) graveyard().push_back(std::move(s_));
        return;
    }
    // The gradients keep their values, in memory of their own again (the buckets go away).
    for (nn::Parameter<T>* p : s.params) {
        const bool was_cleared = p->grad.cleared();
        Tensor<T>& g = p->grad.mutable_tensor();
        g = g.clone(std::pmr::get_default_resource());
        if (was_cleared) p->grad.clear();
    }
    s.storage.reset();
    s.req.reset();
    s.ordered.reset();
    if (s.overlap && !s.params.empty()) graveyard().push_back(std::move(s_));
}

template <class T>
void DistributedDataParallel<T>::verify_same_parameters(const std::vector<nn::Parameter<T>*>& all) {
    // Rank 0's list goes to everyone; each rank finds its first difference; all learn every
    // rank's answer, and the rank with the earliest difference sends its description of it.
    std::vector<std::string> mine;
    for (nn::Parameter<T>* p : all)
        mine.push_back(detail::describe_parameter(p->name, p->shape(), std::is_same_v<T, float>, !p->requires_grad()));
    for (const nn::Buffer<T>& b : buffers_)  // then the buffers, in buffers() order
        mine.push_back(b.tensor ? "buffer " + detail::describe_parameter(b.name, b.tensor->shape(), std::is_same_v<T, float>, false)
                                : fmt::format("buffer '{}' counter", b.name));
    std::string joined;
    for (const std::string& d : mine) joined += d + '\n';
    std::string zero = joined;
    broadcast_string(zero, 0);
    std::vector<std::string> theirs;
    for (std::size_t a = 0, b; (b = zero.find('\n', a)) != std::string::npos; a = b + 1) theirs.push_back(zero.substr(a, b - a));

    constexpr std::int64_t kSame = std::numeric_limits<std::int64_t>::max();
    std::int64_t first = kSame;
    const std::size_t common = std::min(mine.size(), theirs.size());
    for (std::size_t i = 0; i < common && first == kSame; ++i)
        if (mine[i] != theirs[i]) first = static_cast<std::int64_t>(i);
    if (first == kSame && mine.size() != theirs.size()) first = static_cast<std::int64_t>(common);
    const std::vector<std::int64_t> at = allgather(first);
    int worst = -1;
    for (std::size_t r = 0; r < at.size(); ++r)
        if (at[r] != kSame && (worst < 0 || at[r] < at[static_cast<std::size_t>(worst)])) worst = static_cast<int>(r);
    if (worst < 0) return;
    const auto idx = static_cast<std::size_t>(at[static_cast<std::size_t>(worst)]);
    std::string d = idx < mine.size() ? mine[idx] : fmt::format("no entry {} (it has {})", idx, mine.size());
    broadcast_string(d, worst);
    const std::string d0 = idx < theirs.size() ? theirs[idx] : fmt::format("no entry {} (it has {})", idx, theirs.size());
    std::vector<int> differ;
    for (std::size_t r = 0; r < at.size(); ++r)
        if (at[r] != kSame) differ.push_back(static_cast<int>(r));
    const bool is_param = idx < all.size();
    fail("DistributedDataParallel: the ranks hold different models: at {} {}, rank 0 has {} and rank {} has {} "
         "(ranks differing from rank 0: {})",
         is_param ? "parameter" : "buffer", is_param ? idx : idx - all.size(), d0, worst, d, fmt::join(differ, ", "));
}

template <class T>
void DistributedDataParallel<T>::broadcast_buffers() {
    if (buffers_.empty()) return;
    const bool root = rank() == 0;
    std::uint8_t* at = buffer_bytes_.data();
    if (root)
        for (const nn::Buffer<T>& b : buffers_) {
            if (b.tensor) at = std::copy_n(reinterpret_cast<const std::uint8_t*>(b.tensor->data()), b.tensor->size() * sizeof(T), at);
            if (b.count) at = std::copy_n(reinterpret_cast<const std::uint8_t*>(b.count), sizeof(std::int64_t), at);
        }
    broadcast(buffer_bytes_.data(), buffer_bytes_.size(), Dtype::u8, 0);
    if (root) return;
    at = buffer_bytes_.data();
    for (const nn::Buffer<T>& b : buffers_) {
        if (b.tensor) {
            std::copy_n(at, b.tensor->size() * sizeof(T), reinterpret_cast<std::uint8_t*>(b.tensor->data()));
            at += b.tensor->size() * sizeof(T);
        }
        if (b.count) {
            std::copy_n(at, sizeof(std::int64_t), reinterpret_cast<std::uint8_t*>(b.count));
            at += sizeof(std::int64_t);
        }
    }
}

template <class T>
void DistributedDataParallel<T>::broadcast_parameters() {
    for (nn::Parameter<T>* p : module_->parameters()) {
        Tensor<T>& v = p->mutable_value();
        broadcast(v.data(), v.size(), dtype_of<T>(), 0);
    }
}

template <class T>
std::size_t DistributedDataParallel<T>::bucket_of(const nn::Parameter<T>& p) const {
    for (std::size_t i = 0; i < s_->params.size(); ++i)
        if (s_->params[i] == &p) return s_->bucket_of[i];
    fail("DistributedDataParallel: parameter '{}' is not in a bucket (frozen, or not the module's)", p.name);
}

template <class T>
void DistributedDataParallel<T>::State::on_complete(std::size_t i) {
    if (!sync) return;
    Bucket& b = buckets[bucket_of[i]];
    if (b.started)
        fail("DistributedDataParallel: parameter '{}' received a gradient while its bucket was being reduced: one "
             "backward() per finish_backward() (accumulate under no_sync())",
             params[i]->name);
    if (done[i]) return;
    done[i] = 1;
    --b.pending;
    ++ready_count;
    start_ready();
    if (next == buckets.size()) complete();
    else if (next > 0) poll();  // progress for the reductions in flight
}

template <class T>
void DistributedDataParallel<T>::State::start_ready() {
    while (next < buckets.size() && buckets[next].pending == 0) {
        Bucket& b = buckets[next];
        b.started = true;
        if (ordered) ordered->start(next);
        else req->start_sum(next, storage.get() + b.offset, b.count, dtype_of<T>());
        ++next;
    }
}

template <class T>
void DistributedDataParallel<T>::State::complete() {
    // Parameters the sweep did not reach: their gradient as it stands (zeros after zero_grad).
    for (std::size_t i = 0; i < params.size(); ++i)
        if (!done[i] && !buckets[bucket_of[i]].started) {
            (void)params[i]->grad.tensor();  // a cleared buffer writes its zeros now
            done[i] = 1;
            --buckets[bucket_of[i]].pending;
        }
    if (!ordered && !overlap && timeout <= 0) {
        // Blocking, bucket by bucket in order (Open MPI's blocking all-reduce is the faster one
        // when nothing is left to overlap: docs/distributed.md).
        for (Bucket& b : buckets) allreduce_sum(storage.get() + b.offset, b.count, dtype_of<T>());
    } else {
        start_ready();  // every bucket is complete now: all are started, in order
        if (ordered) ordered->wait_all(timeout);
        else req->wait_all(timeout);
    }
    if (world > 1) {
        const T n = static_cast<T>(world);
        T* d = storage.get();
        const std::size_t total = buckets.empty() ? 0 : buckets.back().offset + buckets.back().count;
        for (std::size_t k = 0; k < total; ++k) d[k] /= n;
    }
    for (nn::Parameter<T>* p : params) (void)p->grad.mutable_tensor();  // the gradients changed
    std::fill(done.begin(), done.end(), 0);
    for (Bucket& b : buckets) {
        b.pending = b.last - b.first;
        b.started = false;
    }
    next = 0;
    ready_count = 0;
    completed = true;
}

template <class T>
void DistributedDataParallel<T>::finish_backward() {
    State& s = *s_;
    if (!s.sync) return;
    if (!s.completed) s.complete();  // (else the last hook did it)
    s.completed = false;
}

}  // namespace tapegrad::dist
