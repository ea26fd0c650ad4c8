// Checkpoints in data-parallel training: rank 0 writes, everyone resumes from rank 0's file.
//
// The replicas are equal (DistributedDataParallel keeps them so), so one file is the state of
// all: rank 0 saves it (atomically, nn::Archive::save); the others wait for the outcome, and an
// error on rank 0 (disk full) is raised on every rank. Resuming, rank 0 reads the file and
// broadcasts its bytes; every rank restores from the same bytes, so a file only rank 0 can see
// is enough (a node-local disk), and resumed == uninterrupted on every rank.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <tapegrad/core/error.hpp>
#include <tapegrad/dist/env.hpp>
#include <tapegrad/nn/checkpoint.hpp>

namespace tapegrad::dist {

// Runs f() on rank 0; if it throws, every rank raises an Error with rank 0's message.
template <class F>
void on_rank0(F&& f, const char* what) {
    std::string err;
    if (rank() == 0) {
        try {
            f();
        } catch (const std::exception& e) {
            err = e.what();
            if (err.empty()) err = "failed";
        }
    }
    broadcast_string(err, 0);
    if (!err.empty()) fail("{} (on rank 0): {}", what, err);
}

// Rank 0 writes `a` to `path`. Collective.
inline void save_archive(const nn::Archive& a, const std::filesystem::path& path) {
    on_rank0([&] { a.save(path); }, "dist::save_archive");
}

// Rank 0 reads `path`; every rank gets its contents. Collective.
inline nn::Archive load_archive(const std::filesystem::path& path) {
    std::vector<std::uint8_t> bytes;
    on_rank0([&] { bytes = nn::Archive::load(path).serialize(); }, "dist::load_archive");
    broadcast_bytes(bytes, 0);
    return nn::Archive::deserialize(bytes, path.string());
}

template <class T>
void save_checkpoint(const std::filesystem::path& path, const std::vector<nn::Parameter<T>*>& params,
                     nn::Optimizer<T>* opt, const nn::TrainState& st) {
    // Only rank 0 builds the archive (the others' state is the same).
    on_rank0([&] { nn::make_checkpoint(params, opt, st).save(path); }, "dist::save_checkpoint");
}

template <class T>
void load_checkpoint(const std::filesystem::path& path, const std::vector<nn::Parameter<T>*>& params,
                     nn::Optimizer<T>* opt, nn::TrainState& st) {
    nn::restore_checkpoint(load_archive(path), params, opt, st);
}

}  // namespace tapegrad::dist
