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

// A 2-D shape: rows × cols. Scalars are 1×1, vectors 1×n or m×1.
struct Shape {
    std::size_t rows = 0;
    std::size_t cols = 0;
    constexpr std::size_t size() const noexcept { return rows * cols; }
    friend constexpr bool operator==(Shape, Shape) = default;
};

template <class... Args>
[[noreturn]] inline void fail(fmt::format_string<Args...> f, Args&&... args) {
    throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace tapegrad

template <>
struct fmt::formatter<tapegrad::Shape> {
    constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
    auto format(tapegrad::Shape s, fmt::format_context& ctx) const {
        return fmt::format_to(ctx.out(), "({}×{})", s.rows, s.cols);
    }
};
