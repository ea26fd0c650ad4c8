// Where in the user's code a node is recorded: the call site of the public op function.
//
// A public op function takes `SourceLocation loc = SourceLocation::current()` (site.hpp's alias
// of std::source_location) as
// its last parameter (the default argument is evaluated at the caller's line) and opens a
// CallSite with it before applying its op:
//
//   template <Value V>
//   V sigmoid(const V& x, SourceLocation loc = SourceLocation::current()) {
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

// std::source_location where the standard library provides it; otherwise (clang ≤ 14 with
// libstdc++, whose <source_location> needs __builtin_source_location) the same interface on
// the __builtin_FILE/LINE/FUNCTION builtins, which GCC and Clang evaluate at the call site
// when they appear in a default argument.
#if defined(__cpp_lib_source_location) && __cpp_lib_source_location >= 201907L
using SourceLocation = std::source_location;
#else
class SourceLocation {
public:
    static constexpr SourceLocation current(const char* file = __builtin_FILE(), unsigned line = __builtin_LINE(),
                                            const char* function = __builtin_FUNCTION()) noexcept {
        SourceLocation s;
        s.file_ = file;
        s.line_ = line;
        s.function_ = function;
        return s;
    }
    constexpr SourceLocation() noexcept = default;
    constexpr const char* file_name() const noexcept { return file_; }
    constexpr const char* function_name() const noexcept { return function_; }
    constexpr std::uint_least32_t line() const noexcept { return line_; }
    constexpr std::uint_least32_t column() const noexcept { return 0; }

private:
    const char* file_ = "";
    const char* function_ = "";
    std::uint_least32_t line_ = 0;
};
#endif

namespace detail {
struct SiteState {
    const SourceLocation* active = nullptr;  // the outermost open CallSite, if any
    SourceLocation last{};                    // the last outermost CallSite opened
    bool has_last = false;
};
inline thread_local SiteState site_state;
}  // namespace detail

// RAII: marks `loc` as the call site of everything recorded until it closes (outermost wins).
class CallSite {
public:
    explicit CallSite(const SourceLocation& loc) noexcept : loc_(loc) {
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
    SourceLocation loc_;
    bool owner_ = false;
};

// A recorded site: exact (an open CallSite) or approximate (an operator after the last one).
struct Site {
    SourceLocation loc{};
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
