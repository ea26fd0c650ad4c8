// Located errors (the user's line appended) and anomaly mode: the cold paths of the tape.
// Included at the end of tape.hpp.
#pragma once

#include <tapegrad/core/tape.hpp>

namespace tapegrad {

// ---- located errors and anomaly mode (cold paths) ----------------------------------------------

template <class T>
void Tape<T>::rethrow_located(const Error& e) const {
    std::string msg = e.what();
    if (sweeping_ != kNoNode)
        msg += fmt::format("\n  while running the VJP of '{}' ({})", nodes_[sweeping_].op->name(), describe(sweeping_));
    // Only an exact site is appended: after an operator the last site is a hint, which anomaly
    // reports give but a plain error (whose first line tests may match) does not.
    const Site here = Site::current();
    if (here.kind == Site::Kind::exact && msg.find("\n  at ") == std::string::npos)
        msg += fmt::format("\n  {}", here.str());
    throw Error(msg);
}

template <class T>
void Tape<T>::wrong_vjp_shape(std::uint32_t target, std::size_t input, Shape got) const {
    std::string msg;
    if (sweeping_ != kNoNode) {
        msg = fmt::format(
            "{}: the VJP of input {} returned an adjoint of shape {} for an input of shape {} (a VJP returns "
            "the input's shape, or a shape the input broadcasts to)\n  the op: {}\n  the input: {}",
            nodes_[sweeping_].op->name(), input, got, nodes_[target].value.shape(), describe(sweeping_),
            describe(target));
    } else {
        msg = fmt::format("backward: an adjoint of shape {} for {}", got, describe(target));
    }
    throw Error(msg);
}

template <class T>
void Tape<T>::check_thread(std::string_view who) {
    const std::thread::id me = std::this_thread::get_id();
    std::thread::id owner = std::thread::id{};
    if (owner_.compare_exchange_strong(owner, me, std::memory_order_relaxed) || owner == me) return;
    fail("anomaly: {}: the tape is used from a second thread (another thread has recorded on it since its "
         "last reset); a tape is not thread-safe: use one tape per thread",
         who);
}

template <class T>
void Tape<T>::modified_external(std::uint32_t id) const {
    fail("backward: parameter '{}' was modified in place after it was recorded ({}); its value is no longer "
         "the one the forward pass used: record the forward pass again after changing it",
         display_name(id), describe(id));
}

template <class T>
Var<T> Tape<T>::leaf_of(const GradBuffer<T>& g, std::string_view name) const {
    std::uint32_t found = kNoNode;
    for (std::uint32_t id : externals_) {
        if (nodes_[id].extra->sink != &g) continue;
        if (found != kNoNode)
            fail("explain: parameter '{}' is on this tape more than once (nodes {} and {}); explain the Var of "
                 "each use",
                 display_name(id), found, id);
        found = id;
    }
    if (found == kNoNode) {
        if (name.empty()) fail("explain: the parameter of this gradient buffer was not used on this tape");
        fail("explain: parameter '{}' was not used on this tape", name);
    }
    return Var<T>(const_cast<Tape*>(this), found, generation_);
}

template <class T>
std::string Tape<T>::describe(std::uint32_t id) const {
    const Node<T>& n = nodes_[id];
    const char* kind = n.kind == NodeKind::Op         ? "node"
                       : n.kind == NodeKind::Constant ? "constant"
                                                      : "variable";
    std::string out = fmt::format("{} {} {}", kind, display_name(id), n.value.shape());
    const Site where = site(id);
    if (where.kind != Site::Kind::none) out += fmt::format(", recorded {}", where.str());
    return out;
}

namespace detail {
// The first element of t that is NaN or ±Inf (all exponent bits set), as a flat index, or
// t.size(). The scan is an OR over the exponent bits (vectorisable); the index is sought only
// when something was found.
template <class T>
std::size_t first_non_finite(const Tensor<T>& t) noexcept {
    using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    constexpr Bits kExp = sizeof(T) == 4 ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
    const T* p = t.data();
    const std::size_t n = t.size();
    bool bad = false;
    for (std::size_t i = 0; i < n; ++i) {
        Bits b;
        std::memcpy(&b, p + i, sizeof b);
        bad |= (b & kExp) == kExp;
    }
    if (!bad) return n;
    for (std::size_t i = 0; i < n; ++i)
        if (!std::isfinite(p[i])) return i;
    return n;
}
template <class T>
std::string non_finite_at(const Tensor<T>& t, std::size_t i) {
    const T v = t.data()[i];
    const char* what = std::isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf";
    // The flat index as a multi-index of t's shape (row-major), e.g. (1, 0, 2).
    const Shape s = t.shape();
    if (s.rank() == 0) return fmt::format("{} at ()", what);
    std::array<std::size_t, kMaxRank> idx{};
    for (std::size_t k = s.rank(), rest = i; k-- > 0;) {
        idx[k] = rest % s[k];
        rest /= s[k];
    }
    std::string at;
    for (std::size_t k = 0; k < s.rank(); ++k) at += fmt::format("{}{}", k ? ", " : "", idx[k]);
    return fmt::format("{} at ({})", what, at);
}
}  // namespace detail

template <class T>
void Tape<T>::anomaly_forward(std::string_view op, const Tensor<T>& out, std::initializer_list<Shape> inputs) const {
    if (!out.is_contiguous()) return;  // a view: its elements were checked where they were made
    const std::size_t i = detail::first_non_finite(out);
    if (i == out.size()) return;
    std::string shapes;
    for (Shape s : inputs) shapes += fmt::format("{}{}", shapes.empty() ? "" : ", ", s);
    std::string msg = fmt::format("anomaly: forward of '{}' produced {} of its {} output (inputs {})", op,
                                  detail::non_finite_at(out, i), out.shape(), shapes);
    if (sweeping_ != kNoNode)
        msg += fmt::format("\n  while recording the VJP of '{}' ({})", nodes_[sweeping_].op->name(), describe(sweeping_));
    const Site here = Site::current();
    if (here.kind != Site::Kind::none) msg += fmt::format("\n  {}", here.str());
    throw Error(msg);
}

template <class T>
void Tape<T>::anomaly_leaf(std::uint32_t id) const {
    const Tensor<T>& v = nodes_[id].value;
    const std::size_t i = detail::first_non_finite(v);
    if (i == v.size()) return;
    throw Error(fmt::format("anomaly: {} holds {}", describe(id), detail::non_finite_at(v, i)));
}

template <class T>
void Tape<T>::anomaly_adjoint(std::uint32_t target) const {
    const Tensor<T>& a = nodes_[target].adj;
    const std::size_t i = detail::first_non_finite(a);
    if (i == a.size()) return;
    if (sweeping_ == kNoNode)
        throw Error(fmt::format("anomaly: the seed of backward() holds {}; output {}", detail::non_finite_at(a, i),
                                describe(target)));
    const Node<T>& n = nodes_[sweeping_];
    std::size_t k = 0;
    while (k + 1 < n.in.size() && n.in[k] != target) ++k;
    std::string inputs;
    for (std::uint32_t j : n.in) inputs += fmt::format("{}{}", inputs.empty() ? "" : ", ", nodes_[j].value.shape());
    throw Error(fmt::format(
        "anomaly: the VJP of '{}' produced {} in the adjoint of its input {}\n"
        "  the op: {} (inputs {})\n  the input: {}",
        n.op->name(), detail::non_finite_at(a, i), k, describe(sweeping_), inputs, describe(target)));
}

}  // namespace tapegrad
