// Where in the user's code a node is recorded: the call site of the public op function.
//
// A public op function takes `std::source_location loc = std::source_location::current()` as
// its last parameter (the default argument is evaluated at the caller's line) and opens a
// CallSite with it before applying its op:
//
//   template <Value V>
//   V sigmoid(const V& x, std::source_location loc = std::source_location::current()) {
//       CallSite at(loc);
//       return apply(Sigmoid{}, x);
//   }
//
// Only the outermost CallSite of a thread counts, so a function composed of other public
// functions (mse = mean(square(p − t))) reports the user's line, not its own. Tape::record
// appends the active site to the message of any Error raised while recording (shape
// mismatch, Var of another tape, stale Var), and anomaly mode keeps it per node.
//
// Operators (a + b, a * b, …) cannot take a defaulted extra parameter, so an expression made of
// operators only has no site of its own: errors and anomaly reports then name the last site
// seen on this thread, marked as such ("after file:line").
#pragma once

#include <cstdint>
#include <source_location>
#include <string>

#include <fmt/format.h>

namespace tapegrad {

namespace detail {
struct SiteState {
    const std::source_location* active = nullptr;  // the outermost open CallSite, if any
    std::source_location last{};                    // the last outermost CallSite opened
    bool has_last = false;
};
inline thread_local SiteState site_state;
}  // namespace detail

// RAII: marks `loc` as the call site of everything recorded until it closes (outermost wins).
class CallSite {
public:
    explicit CallSite(const std::source_location& loc) noexcept : loc_(loc) {
        detail::SiteState& s = detail::site_state;
        if (s.active == nullptr) {
            s.active = &loc_;
            s.last = loc_;
            s.has_last = true;
            owner_ = true;
        }
    }
    ~CallSite() {
        if (owner_) detail::site_state.active = nullptr;
    }
    CallSite(const CallSite&) = delete;
    CallSite& operator=(const CallSite&) = delete;

private:
    std::source_location loc_;
    bool owner_ = false;
};

// A recorded site: exact (an open CallSite) or approximate (an operator after the last one).
struct Site {
    std::source_location loc{};
    enum class Kind : std::uint8_t { none, exact, after } kind = Kind::none;

    // The site that applies now on this thread.
    static Site current() noexcept {
        const detail::SiteState& s = detail::site_state;
        if (s.active) return {*s.active, Kind::exact};
        if (s.has_last) return {s.last, Kind::after};
        return {};
    }
    // "at file:line (in function)", "in an operator expression after file:line (…)", or "".
    std::string str() const {
        if (kind == Kind::none) return {};
        return fmt::format("{} {}:{} (in {})", kind == Kind::after ? "in an operator expression after" : "at",
                           loc.file_name(), loc.line(), loc.function_name());
    }
};

}  // namespace tapegrad
