// gradcheck: the tape's gradients against central finite differences, in double.
//
//   auto report = tg::gradcheck([](tg::Tape<double>& t, std::span<const tg::Var<double>> x) {
//       return tg::sum(tg::sigmoid(tg::matmul(x[0], x[1])));
//   }, {a, b});
//   if (!report) fmt::print("{}\n", report);
//
// f may return any shape. Small outputs are checked through the full Jacobian (one backward
// per output element); larger ones through random projections w (backward seeded with w,
// against ⟨w, Δy⟩). Small inputs are perturbed element by element; larger ones along random
// directions u, which is the adjoint test ⟨J·u, w⟩ = ⟨u, Jᵀ·w⟩. An element where the one-sided
// differences disagree (a kink such as relu or abs at 0) is detected and skipped, and counted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/core/tape.hpp>

namespace tapegrad {

struct GradcheckOptions {
    double eps = 1e-6;              // step, scaled by max(1, |x|) per element
    double rtol = 1e-6;             // pass: |analytic − numeric| ≤ rtol · max(1, |analytic|, |numeric|)
    std::size_t max_jacobian_outputs = 16;   // above this, random output projections
    std::size_t max_elementwise_inputs = 2048;  // above this, random input directions
    int projections = 4;            // number of random w (and of random u)
    double kink_tol = 1e-2;         // one-sided differences disagreeing by more than this: a kink
    std::uint64_t seed = 0x7a9e;    // for the random projections and directions
};

struct InputReport {
    std::size_t input = 0;
    Shape shape{};
    std::string method;             // "elementwise" or "directional"
    std::size_t checked = 0;        // number of comparisons made
    std::size_t kinks = 0;          // comparisons skipped at detected kinks
    double max_abs_err = 0;
    double max_rel_err = 0;
    std::size_t worst_index = 0;    // flat index of the worst element (elementwise mode)
    double worst_numeric = 0;
    double worst_analytic = 0;
    bool passed = true;
};

struct GradcheckReport {
    std::vector<InputReport> inputs;
    Shape output{};
    bool passed = true;
    explicit operator bool() const noexcept { return passed; }
    double max_rel_err() const noexcept {
        double m = 0;
        for (const auto& r : inputs) m = r.max_rel_err > m ? r.max_rel_err : m;
        return m;
    }
};

using GradFn = std::function<Var<double>(Tape<double>&, std::span<const Var<double>>)>;

GradcheckReport gradcheck(const GradFn& f, const std::vector<Tensor<double>>& inputs,
                          const GradcheckOptions& opt = {});

}  // namespace tapegrad

template <>
struct fmt::formatter<tapegrad::GradcheckReport> {
    constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
    auto format(const tapegrad::GradcheckReport& r, fmt::format_context& ctx) const {
        auto out = fmt::format_to(ctx.out(), "gradcheck: output {}: {}\n", r.output, r.passed ? "PASS" : "FAIL");
        for (const auto& i : r.inputs) {
            out = fmt::format_to(out,
                                 "  input {} {}: {} ({} checks, {} kinks skipped)  max abs err {:.3e}  max rel err {:.3e}",
                                 i.input, i.shape, i.method, i.checked, i.kinks, i.max_abs_err, i.max_rel_err);
            if (i.method == "elementwise")
                out = fmt::format_to(out, "  worst [{}] numeric {:.10g} analytic {:.10g}", i.worst_index,
                                     i.worst_numeric, i.worst_analytic);
            out = fmt::format_to(out, "  {}\n", i.passed ? "ok" : "FAIL");
        }
        return out;
    }
};
