// Training helpers for classifiers: one epoch of mini-batch training with softmax
// cross-entropy, resumable at any batch (TrainState), and evaluation (loss, accuracy).
//
// Each step is the loop the design prescribes, with batch tensors reused across steps:
//   tape.reset(); x = tape.constant_ref(batch); logits = net(tape, x);
//   loss = softmax_cross_entropy(logits, tape.constant_ref(labels)); tape.backward(loss);
//   opt.step(); opt.zero_grad();
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <tapegrad/core/tape.hpp>
#include <tapegrad/core/tensor.hpp>
#include <tapegrad/ops/losses.hpp>
#include <tapegrad/nn/checkpoint.hpp>
#include <tapegrad/nn/data.hpp>
#include <tapegrad/nn/optim.hpp>
#include <tapegrad/nn/parameter.hpp>

namespace tapegrad::nn {

// Number of rows of `logits` (m×k) whose largest entry is at the column given by `labels` (m×1).
template <class T>
std::size_t count_correct(const Tensor<T>& logits, const Tensor<T>& labels) {
    if (labels.rows() != logits.rows() || labels.cols() != 1)
        fail("count_correct: logits {} and labels {} do not match", logits.shape(), labels.shape());
    std::size_t correct = 0;
    const std::size_t k = logits.cols();
    for (std::size_t i = 0; i < logits.rows(); ++i) {
        const T* row = logits.data() + i * k;
        const auto best = static_cast<std::size_t>(std::max_element(row, row + k) - row);
        correct += best == static_cast<std::size_t>(labels[i]);
    }
    return correct;
}

// Reusable buffers of one training or evaluation loop (allocated once, at the largest batch).
template <class T>
struct BatchBuffers {
    Tensor<T> x, y;
    std::vector<std::uint32_t> order;
    BatchBuffers(std::size_t batch, std::size_t features) : x(batch, features), y(batch, 1) {}
    // Views of the first m rows.
    Tensor<T> x_rows(std::size_t m) { return Tensor<T>::view(x.data(), {m, x.cols()}, std::pmr::get_default_resource()); }
    Tensor<T> y_rows(std::size_t m) { return Tensor<T>::view(y.data(), {m, 1}, std::pmr::get_default_resource()); }
};

struct BatchReport {
    std::size_t batch = 0;    // index of the batch just trained (0-based)
    std::size_t batches = 0;  // batches in the epoch
    std::size_t rows = 0;     // samples in this batch
    double loss = 0;          // its mean cross-entropy
    std::size_t correct = 0;  // its correctly classified samples (before the step)
};

// Trains from st.batch to the end of epoch st.epoch (the sample order is drawn from st.rng,
// the generator's state at the epoch's start). After each step st points at the next batch and
// on_batch(const BatchReport&) is called; returning false stops there (st can then be
// checkpointed and resumed). At the end of the epoch st moves to batch 0 of the next epoch.
// Returns true when the epoch was completed.
template <class T, class OnBatch>
bool train_epoch(Module<T>& net, Optimizer<T>& opt, Tape<T>& tape, const Dataset& data, std::size_t batch,
                 TrainState& st, BatchBuffers<T>& buf, OnBatch&& on_batch) {
    if (batch == 0 || buf.x.rows() < batch || buf.x.cols() != data.features)
        fail("train_epoch: batch {} does not fit buffers {}", batch, buf.x.shape());
    const std::size_t n = data.size();
    Rng rng = st.rng;
    epoch_order(buf.order, n, rng, true);
    const std::size_t nb = (n + batch - 1) / batch;
    while (st.batch < nb) {
        const std::size_t b0 = static_cast<std::size_t>(st.batch) * batch, m = std::min(batch, n - b0);
        gather_batch(data, std::span<const std::uint32_t>(buf.order).subspan(b0, m), buf.x, buf.y);
        const Tensor<T> xv = buf.x_rows(m), yv = buf.y_rows(m);
        tape.reset();
        Var<T> logits = net(tape, tape.constant_ref(xv));
        Var<T> loss = softmax_cross_entropy(logits, tape.constant_ref(yv));
        tape.backward(loss);
        BatchReport r{static_cast<std::size_t>(st.batch), nb, m, static_cast<double>(loss.item()),
                      count_correct(logits.value(), yv)};
        opt.step();
        opt.zero_grad();
        ++st.batch;
        ++st.step;
        if (!on_batch(r)) return false;
    }
    st.rng = rng;
    st.batch = 0;
    ++st.epoch;
    return true;
}

struct Evaluation {
    double loss = 0;      // mean cross-entropy
    double accuracy = 0;  // fraction correct
    std::size_t samples = 0;
};

// Forward passes only, in batches of buf.x.rows(), in the data set's order, with no tape: the
// network runs on plain tensors (Module::operator()(const Tensor&)), giving the same logits
// bit for bit as a recorded forward pass, without recording one.
template <class T>
Evaluation evaluate(Module<T>& net, const Dataset& data, BatchBuffers<T>& buf) {
    const std::size_t n = data.size(), batch = buf.x.rows();
    Evaluation e;
    double loss_sum = 0;
    std::size_t correct = 0;
    buf.order.resize(batch);
    for (std::size_t b0 = 0; b0 < n; b0 += batch) {
        const std::size_t m = std::min(batch, n - b0);
        for (std::size_t i = 0; i < m; ++i) buf.order[i] = static_cast<std::uint32_t>(b0 + i);
        gather_batch(data, std::span<const std::uint32_t>(buf.order).first(m), buf.x, buf.y);
        const Tensor<T> xv = buf.x_rows(m), yv = buf.y_rows(m);
        const Tensor<T> logits = net(xv);
        const Tensor<T> loss = softmax_cross_entropy(logits, yv);
        loss_sum += static_cast<double>(loss.item()) * static_cast<double>(m);
        correct += count_correct(logits, yv);
    }
    e.samples = n;
    if (n) {
        e.loss = loss_sum / static_cast<double>(n);
        e.accuracy = static_cast<double>(correct) / static_cast<double>(n);
    }
    return e;
}

// The same; `tape` is no longer used (evaluation records nothing) and is left reset.
template <class T>
Evaluation evaluate(Module<T>& net, Tape<T>& tape, const Dataset& data, BatchBuffers<T>& buf) {
    tape.reset();
    return evaluate(net, data, buf);
}

}  // namespace tapegrad::nn
