// Shared by gradcheck.cpp and hessian.cpp (not installed): random directions and the
// bookkeeping of one analytic-vs-numeric comparison.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include <tapegrad/core/gradcheck.hpp>

namespace tapegrad::detail {

inline Tensor<double> random_like(Shape s, std::mt19937_64& rng) {
    std::normal_distribution<double> n(0.0, 1.0);
    Tensor<double> t(s);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = n(rng);
    return t;
}

// Records |analytic − numeric| (absolute, and relative to max(1, |analytic|, |numeric|)) in r,
// keeping the worst element; a NaN on either side counts as an infinite error.
inline void note(InputReport& r, double analytic, double numeric, std::size_t index) {
    const double err = std::abs(analytic - numeric);
    const double rel = err / std::max({1.0, std::abs(analytic), std::abs(numeric)});
    ++r.checked;
    if (!(err <= r.max_abs_err)) r.max_abs_err = err;  // NaN-safe: a NaN error sticks
    if (!(rel <= r.max_rel_err) || std::isnan(rel)) {
        r.max_rel_err = std::isnan(rel) ? std::numeric_limits<double>::infinity() : rel;
        r.worst_index = index;
        r.worst_numeric = numeric;
        r.worst_analytic = analytic;
    }
}

}  // namespace tapegrad::detail
