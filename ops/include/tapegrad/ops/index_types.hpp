// Index and mask tensors: IndexTensor = Tensor<std::int64_t>, MaskTensor = Tensor<bool>. Exact at
// any size (a float holds integers exactly only up to 2²⁴); operands without gradients, taken by
// the ops of index.hpp and mask.hpp and returned by argmax / max(x, dim) (reduce_axes.hpp).
// Here with the two helpers every op on them shares: a contiguous copy and a position's text.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <string>

#include <fmt/format.h>

#include <tapegrad/core/shape.hpp>
#include <tapegrad/core/tensor.hpp>

namespace tapegrad {

using IndexTensor = Tensor<std::int64_t>;
using MaskTensor = Tensor<bool>;

namespace detail {

// "(1, 0, 2)": the multi-index of flat position p in a row-major shape s.
inline std::string position(const Shape& s, std::size_t p) {
    std::array<std::size_t, kMaxRank> idx{};
    for (std::size_t k = s.rank(); k-- > 0;) {
        idx[k] = s[k] ? p % s[k] : 0;
        p = s[k] ? p / s[k] : 0;
    }
    std::string r = "(";
    for (std::size_t k = 0; k < s.rank(); ++k) r += fmt::format("{}{}", k ? ", " : "", idx[k]);
    return r + ")";
}
// A contiguous tensor with t's values, kept alive by the caller for one call.
template <class U>
Tensor<U> dense_data(const Tensor<U>& t) {
    if (t.is_contiguous()) return Tensor<U>::view(const_cast<U*>(t.data()), t.shape(), std::pmr::get_default_resource());
    return t.clone(std::pmr::get_default_resource());
}

}  // namespace detail
}  // namespace tapegrad
