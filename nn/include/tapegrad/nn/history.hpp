// Training helpers: per-epoch history (CSV and an SVG line chart) and a terminal progress bar.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace tapegrad::nn {

struct EpochRecord {
    std::size_t epoch = 0;       // 1-based
    double train_loss = 0;       // mean over the epoch's batches
    double train_accuracy = 0;   // on the batches as they were trained (0…1)
    double test_loss = 0;
    double test_accuracy = 0;    // 0…1
    double seconds = 0;          // wall time of the epoch's training
};

class History {
public:
    void add(const EpochRecord& r) { records_.push_back(r); }
    const std::vector<EpochRecord>& records() const noexcept { return records_; }
    std::vector<EpochRecord>& records() noexcept { return records_; }
    bool empty() const noexcept { return records_.empty(); }

    // epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds
    std::string csv() const;
    // Two panels (loss; accuracy) of train and test curves over the epochs.
    std::string svg(const std::string& title) const;
    void write_csv(const std::filesystem::path& path) const;
    void write_svg(const std::filesystem::path& path, const std::string& title) const;

private:
    std::vector<EpochRecord> records_;
};

// One line per epoch redrawn in place on a terminal:
//   epoch 2/5 [##########--------] 234/469  41,210 samples/s  loss 0.3412  ETA 3s
// Not on a terminal, update() prints nothing and the caller prints one line per epoch.
class ProgressBar {
public:
    explicit ProgressBar(std::FILE* out = stderr);
    bool interactive() const noexcept { return tty_; }
    // `first` batches of the epoch were done before this start (a resumed epoch).
    void start(std::size_t epoch, std::size_t epochs, std::size_t batches, std::size_t first = 0);
    // batches_done counts from the epoch's start; samples_done only since start().
    void update(std::size_t batches_done, std::size_t samples_done, double running_loss);
    void finish();  // clears the bar line

private:
    std::FILE* out_;
    bool tty_;
    std::size_t epoch_ = 0, epochs_ = 0, batches_ = 0, first_ = 0;
    std::chrono::steady_clock::time_point t0_, last_;
};

}  // namespace tapegrad::nn
