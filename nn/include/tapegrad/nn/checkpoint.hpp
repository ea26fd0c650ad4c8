// Checkpoints: parameters, optimiser state (momentum buffers, Adam moments, step count, lr)
// and the position in training (epoch, batch, step, RNG state), so that a resumed run ends
// with exactly the parameters of an uninterrupted one. Each parameter's frozen flag
// (Parameter::requires_grad) is kept as entry "frozen/<name>" (u64, 1 = frozen); a checkpoint
// without these entries leaves the flags as they are. An optimiser's per-parameter step counts
// (Adam's t) are entries "optimizer/step/<name>" (u64) and the rate of every parameter group
// "optimizer/group_lr" (f64: lr, initial lr of each group); a checkpoint without them (older
// files) gives every parameter the optimiser's step count and every group optimizer/lr's rate.
//
// File format (little-endian), version 2:
//   offset  0  8 bytes   magic "TGCKPT\r\n"
//           8  u32       format version (2)
//          12  u32       number of entries
//          16  u64       payload length in bytes (the file is 32 + this long)
//          24  u32       CRC32 (zlib) of the payload
//          28  u32       CRC32 of bytes 0–27 (the header itself)
//          32  payload:  entries, each
//                u32 name length (≤ 4096), u32 kind (1 f32, 2 f64, 3 u64, 4 bytes),
//                u32 rank (0 to kMaxRank), u32 reserved (0), rank × u64 dims,
//                the name (UTF-8), then the product of the dims elements, row-major
// Version 1 (still read) had no rank: each entry header was u32 name length, u32 kind, u64 rows,
// u64 cols, and the entry a rows×cols matrix. A version-1 entry (r×c) loads into a tensor of rank
// ≤ 2 whose last two dims (rows(), cols()) are r and c — (1×n) into a vector of n, (1×1) into a
// scalar — since that is how version 1 stored such tensors.
// Saving writes a temporary file in the target's directory, fsyncs it, renames it into place
// and fsyncs the directory, so a crash mid-save leaves the previous checkpoint intact.
// Loading reads and checks the whole file (sizes against the file's length before any
// allocation, both checksums, every entry's bounds) and raises tapegrad::Error naming the
// file, what is wrong and the offset; a model is only modified once every check has passed.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <tapegrad/core/error.hpp>
#include <tapegrad/core/tensor.hpp>
#include <tapegrad/nn/optim.hpp>
#include <tapegrad/nn/parameter.hpp>
#include <tapegrad/nn/random.hpp>

namespace tapegrad::nn {

inline constexpr std::uint32_t kCheckpointVersion = 2;
inline constexpr std::uint32_t kCheckpointOldestVersion = 1;
inline constexpr std::size_t kCheckpointHeaderBytes = 32;
inline constexpr char kCheckpointMagic[8] = {'T', 'G', 'C', 'K', 'P', 'T', '\r', '\n'};

// CRC-32 (zlib's, as in gzip and PNG).
std::uint32_t crc32(std::span<const std::uint8_t> bytes);

// A set of named arrays: the in-memory form of a checkpoint file.
class Archive {
public:
    enum class Kind : std::uint32_t { f32 = 1, f64 = 2, u64 = 3, bytes = 4 };
    struct Entry {
        Kind kind;
        Shape shape;
        std::vector<std::uint8_t> data;  // shape.numel() elements
    };

    template <class T>
    void put(const std::string& name, const Tensor<T>& t) {
        put_raw(name, std::is_same_v<T, float> ? Kind::f32 : Kind::f64, t.shape(), t.data(), t.size() * sizeof(T));
    }
    void put_u64(const std::string& name, std::span<const std::uint64_t> v) {
        put_raw(name, Kind::u64, {1, v.size()}, v.data(), v.size_bytes());
    }
    void put_f64(const std::string& name, std::span<const double> v) {
        put_raw(name, Kind::f64, {1, v.size()}, v.data(), v.size_bytes());
    }
    // Each put adds a new entry: a name already present raises an Error (nothing is replaced).
    void put_string(const std::string& name, std::string_view s) {
        put_raw(name, Kind::bytes, {1, s.size()}, s.data(), s.size());
    }

    bool contains(const std::string& name) const { return entries_.count(name) != 0; }
    const Entry& entry(const std::string& name) const;
    // Checks that `name` holds a tensor of T with `shape` (else Error naming file and entry).
    template <class T>
    void check_tensor(const std::string& name, Shape shape) const {
        const Entry& e = entry(name);
        const Kind want = std::is_same_v<T, float> ? Kind::f32 : Kind::f64;
        if (e.kind != want)
            fail("{}: entry '{}' holds {} data, expected {}", source_, name, kind_name(e.kind), kind_name(want));
        if (e.shape != shape && !legacy_match(e.shape, shape))
            fail("{}: entry '{}' has shape {} in the file, the model has {}", source_, name, e.shape, shape);
    }
    template <class T>
    void get(const std::string& name, Tensor<T>& into) const {
        check_tensor<T>(name, into.shape());
        if (into.size()) std::memcpy(into.data(), entry(name).data.data(), into.size() * sizeof(T));
    }
    std::vector<std::uint64_t> get_u64(const std::string& name) const { return get_vec<std::uint64_t>(name, Kind::u64); }
    std::vector<double> get_f64(const std::string& name) const { return get_vec<double>(name, Kind::f64); }
    std::string get_string(const std::string& name) const {
        const Entry& e = expect(name, Kind::bytes);
        return {reinterpret_cast<const char*>(e.data.data()), e.data.size()};
    }

    // The file (or description) this archive came from, used in error messages.
    const std::string& source() const noexcept { return source_; }
    // The format version of the file read (kCheckpointVersion for an archive built in memory).
    std::uint32_t version() const noexcept { return version_; }
    const std::map<std::string, Entry>& entries() const noexcept { return entries_; }

    std::vector<std::uint8_t> serialize() const;
    static Archive deserialize(std::span<const std::uint8_t> file, std::string source);
    // Atomic save (temp file, fsync, rename, fsync of the directory).
    void save(const std::filesystem::path& path) const;
    static Archive load(const std::filesystem::path& path);

    static std::string_view kind_name(Kind k) noexcept;

private:
    void put_raw(const std::string& name, Kind k, Shape s, const void* p, std::size_t n);
    const Entry& expect(const std::string& name, Kind k) const;
    template <class U>
    std::vector<U> get_vec(const std::string& name, Kind k) const {
        const Entry& e = expect(name, k);
        std::vector<U> v(e.shape.size());
        if (!v.empty()) std::memcpy(v.data(), e.data.data(), v.size() * sizeof(U));
        return v;
    }
    // A version-1 file stored every tensor as rows×cols: such an entry fits a tensor of rank ≤ 2
    // with the same last two dims (and so the same element count).
    bool legacy_match(const Shape& stored, const Shape& want) const noexcept {
        return version_ == 1 && want.rank() <= 2 && stored.rank() == 2 && stored.rows() == want.rows() &&
               stored.cols() == want.cols();
    }
    std::map<std::string, Entry> entries_;
    std::string source_ = "<archive>";
    std::uint32_t version_ = kCheckpointVersion;
};

// Where training stands: the next batch to run is `batch` of epoch `epoch`, whose sample order
// is the shuffle drawn from `rng` (the generator's state at the start of that epoch); `step`
// counts optimiser steps overall.
struct TrainState {
    std::uint64_t epoch = 0;
    std::uint64_t batch = 0;
    std::uint64_t step = 0;
    Rng rng{0};
};

// Parameters (by name), the optimiser (by name: its kind must match) and the train state.
template <class T>
Archive make_checkpoint(const std::vector<Parameter<T>*>& params, Optimizer<T>* opt, const TrainState& st) {
    detail::check_parameters(params, "checkpoint", true);
    Archive a;
    a.put_string("format/dtype", std::is_same_v<T, float> ? "float" : "double");
    for (const Parameter<T>* p : params) a.put("param/" + p->name, p->value);
    for (const Parameter<T>* p : params) {  // frozen flags (Parameter::requires_grad)
        const std::uint64_t frozen[1] = {p->requires_grad() ? 0u : 1u};
        a.put_u64("frozen/" + p->name, frozen);
    }
    if (opt) {
        a.put_string("optimizer/name", opt->name());
        const std::uint64_t steps[1] = {opt->steps()};
        a.put_u64("optimizer/steps", steps);
        const double lr[2] = {opt->lr(), opt->initial_lr()};
        a.put_f64("optimizer/lr", lr);
        for (const auto& s : opt->state()) a.put("optimizer/" + s.name, *s.tensor);
        const auto counts = opt->param_steps();
        for (std::size_t k = 0; k < counts.size(); ++k) {
            const std::uint64_t t[1] = {counts[k]};
            a.put_u64("optimizer/step/" + opt->params()[k]->name, t);
        }
        std::vector<double> rates;
        for (std::size_t g = 0; g < opt->group_count(); ++g) {
            rates.push_back(opt->group_lr(g));
            rates.push_back(opt->group_initial_lr(g));
        }
        a.put_f64("optimizer/group_lr", rates);
    }
    const std::uint64_t pos[3] = {st.epoch, st.batch, st.step};
    a.put_u64("train/position", pos);
    a.put_u64("train/rng", st.rng.state());
    return a;
}

// Restores what make_checkpoint stored. Every entry is validated (present, type, shape)
// before anything is modified.
template <class T>
void restore_checkpoint(const Archive& a, const std::vector<Parameter<T>*>& params, Optimizer<T>* opt, TrainState& st) {
    const std::string dtype = a.get_string("format/dtype");
    const char* want = std::is_same_v<T, float> ? "float" : "double";
    if (dtype != want) fail("{}: checkpoint holds {} parameters, the model is {}", a.source(), dtype, want);
    detail::check_parameters(params, a.source(), true);
    for (const Parameter<T>* p : params) {
        if (!a.contains("param/" + p->name)) fail("{}: no parameter '{}' in the checkpoint", a.source(), p->name);
        a.check_tensor<T>("param/" + p->name, p->shape());
    }
    std::size_t stored = 0;
    for (const auto& [name, e] : a.entries()) stored += name.rfind("param/", 0) == 0;
    if (stored != params.size())
        fail("{}: checkpoint holds {} parameters, the model has {}", a.source(), stored, params.size());
    std::vector<int> frozen(params.size(), -1);  // -1: not in the file (older checkpoints): unchanged
    for (std::size_t k = 0; k < params.size(); ++k) {
        const std::string key = "frozen/" + params[k]->name;
        if (!a.contains(key)) continue;
        const auto f = a.get_u64(key);
        if (f.size() != 1 || f[0] > 1) fail("{}: malformed entry '{}'", a.source(), key);
        frozen[k] = static_cast<int>(f[0]);
    }
    std::vector<typename Optimizer<T>::StateTensor> state;
    std::vector<std::uint64_t> steps;
    std::vector<double> lr, group_lr;
    std::vector<std::uint64_t> param_steps;
    if (opt) {
        const std::string name = a.contains("optimizer/name") ? a.get_string("optimizer/name") : std::string("none");
        if (name != opt->name())
            fail("{}: checkpoint was written with optimizer '{}', resuming with '{}'", a.source(), name, opt->name());
        steps = a.get_u64("optimizer/steps");
        lr = a.get_f64("optimizer/lr");
        if (steps.size() != 1 || lr.size() != 2) fail("{}: malformed optimizer/steps or optimizer/lr entry", a.source());
        if (!(std::isfinite(lr[0]) && lr[0] >= 0)) fail("{}: invalid learning rate {} in optimizer/lr", a.source(), lr[0]);
        state = opt->state();
        for (const auto& s : state) a.check_tensor<T>("optimizer/" + s.name, s.tensor->shape());
        const auto counts = opt->param_steps();
        for (std::size_t k = 0; k < counts.size(); ++k) {
            const std::string key = "optimizer/step/" + opt->params()[k]->name;
            if (!a.contains(key)) {  // an older checkpoint: one count for every parameter
                param_steps.push_back(steps[0]);
                continue;
            }
            const auto t = a.get_u64(key);
            if (t.size() != 1) fail("{}: malformed entry '{}'", a.source(), key);
            param_steps.push_back(t[0]);
        }
        if (a.contains("optimizer/group_lr")) {
            group_lr = a.get_f64("optimizer/group_lr");
            if (group_lr.size() != 2 * opt->group_count())
                fail("{}: checkpoint holds the rates of {} parameter groups, the optimizer has {}", a.source(),
                     group_lr.size() / 2, opt->group_count());
            for (std::size_t i = 0; i < group_lr.size(); i += 2)
                if (!(std::isfinite(group_lr[i]) && group_lr[i] >= 0))
                    fail("{}: invalid learning rate {} in optimizer/group_lr", a.source(), group_lr[i]);
        }
    }
    const auto pos = a.get_u64("train/position");
    const auto rng = a.get_u64("train/rng");
    if (pos.size() != 3 || rng.size() != 4) fail("{}: malformed train/position or train/rng entry", a.source());

    for (Parameter<T>* p : params) a.get("param/" + p->name, p->mutable_value());
    for (std::size_t k = 0; k < params.size(); ++k)
        if (frozen[k] >= 0) params[k]->requires_grad(frozen[k] == 0);
    if (opt) {
        for (const auto& s : state) a.get("optimizer/" + s.name, *s.tensor);
        opt->set_steps(steps[0]);
        opt->set_lr(lr[0]);
        for (std::size_t i = 0; i < group_lr.size(); i += 2) opt->set_group_lr(i / 2, group_lr[i]);
        const auto counts = opt->param_steps();
        for (std::size_t k = 0; k < counts.size(); ++k) counts[k] = param_steps[k];
    }
    st.epoch = pos[0];
    st.batch = pos[1];
    st.step = pos[2];
    st.rng.set_state({rng[0], rng[1], rng[2], rng[3]});
}

// ---- importing a PyTorch state_dict -------------------------------------------------------------
// A state_dict exported by a script into an Archive file (tests/reference/gpt_lockstep.py writes
// one with Python's struct and zlib.crc32): one f64 (or f32) entry per tensor, named by its
// state_dict key, a torch vector (n) stored as 1×n and a matrix (r, c) as r×c. Each parameter is
// read from the entry named like it; `transposed(p)` says that the file holds pᵀ (torch's Linear
// stores its weight out×in, tapegrad's Linear in×out). A vector parameter (n) or a 1×n row (a
// Linear's bias) takes a 1×n entry. Strict, as torch's load_state_dict: a missing entry, a shape
// that differs or an entry that no parameter reads (outside `ignore`) raises an Error naming it,
// before any parameter is modified. Values are converted to T.
template <class T, class Transposed>
void import_state_dict(const Archive& a, const std::vector<Parameter<T>*>& params, Transposed&& transposed,
                       const std::vector<std::string>& ignore = {}) {
    detail::check_parameters(params, a.source(), true);
    std::vector<bool> flip(params.size());
    for (std::size_t k = 0; k < params.size(); ++k) {
        const Parameter<T>& p = *params[k];
        if (!a.contains(p.name)) fail("{}: no entry '{}' for the parameter of shape {}", a.source(), p.name, p.shape());
        const Archive::Entry& e = a.entry(p.name);
        if (e.kind != Archive::Kind::f32 && e.kind != Archive::Kind::f64)
            fail("{}: entry '{}' holds {} data, expected floating point", a.source(), p.name, Archive::kind_name(e.kind));
        const Shape s = p.shape();
        flip[k] = transposed(p);
        bool ok;
        if (flip[k])
            ok = s.rank() == 2 && e.shape == Shape{s[1], s[0]};
        else
            ok = e.shape == s || (e.shape == Shape{1, s.numel()} && (s.rank() == 1 || (s.rank() == 2 && s[0] == 1)));
        if (!ok)
            fail("{}: entry '{}' has shape {}, the parameter has {}{}", a.source(), p.name, e.shape, s,
                 flip[k] ? " (read transposed: torch's Linear stores out×in)" : "");
    }
    for (const auto& [name, e] : a.entries()) {
        bool used = std::find(ignore.begin(), ignore.end(), name) != ignore.end();
        for (const Parameter<T>* p : params) used = used || p->name == name;
        if (!used) fail("{}: entry '{}' ({}) matches no parameter of the model", a.source(), name, e.shape);
    }
    for (std::size_t k = 0; k < params.size(); ++k) {
        Parameter<T>& p = *params[k];
        const Archive::Entry& e = a.entry(p.name);
        auto at = [&](std::size_t i) -> T {
            if (e.kind == Archive::Kind::f64) {
                double v;
                std::memcpy(&v, e.data.data() + i * sizeof(double), sizeof v);
                return static_cast<T>(v);
            }
            float v;
            std::memcpy(&v, e.data.data() + i * sizeof(float), sizeof v);
            return static_cast<T>(v);
        };
        Tensor<T>& w = p.mutable_value();
        const std::size_t rows = flip[k] ? p.shape()[0] : 1, cols = flip[k] ? p.shape()[1] : w.size();
        for (std::size_t i = 0; i < rows; ++i)
            for (std::size_t j = 0; j < cols; ++j) w[i * cols + j] = flip[k] ? at(j * rows + i) : at(i * cols + j);
    }
}

template <class T>
void save_checkpoint(const std::filesystem::path& path, const std::vector<Parameter<T>*>& params, Optimizer<T>* opt,
                     const TrainState& st) {
    make_checkpoint(params, opt, st).save(path);
}
template <class T>
void load_checkpoint(const std::filesystem::path& path, const std::vector<Parameter<T>*>& params, Optimizer<T>* opt,
                     TrainState& st) {
    restore_checkpoint(Archive::load(path), params, opt, st);
}

}  // namespace tapegrad::nn
