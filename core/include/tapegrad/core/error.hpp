// tapegrad::Error — the one exception type for user-facing failures.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace tapegrad {

// Every failure caused by user input (shapes, misuse of a Var, a bad file) is an Error whose
// message names the op or the file and the offending shapes or offset.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

template <class... Args>
[[noreturn]] inline void fail(fmt::format_string<Args...> f, Args&&... args) {
    throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace tapegrad
