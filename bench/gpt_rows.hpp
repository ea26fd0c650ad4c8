// The GPT rows of tapegrad_bench (issue 13, "Speed and memory"), compiled in gpt_rows.cpp (their
// own translation unit, as the toolbox rows). The model and batch of examples/char_gpt: 4 layers,
// 4 heads, 128 dims, context 64, batch 12, vocabulary 113 (the fortunes text's), float, and its
// recipe (AdamW groups, warm-up + cosine, gradient clipping; scripts/pytorch_gpt.py --bench-steps
// times the same); batches of random tokens (the step's cost does not depend on the text).
#pragma once

#include <cstddef>

namespace bench::gpt {

// Tokens per training step (batch 12 × context 64), the same on both sides.
inline constexpr std::size_t kTokensPerStep = 12 * 64;

struct StepFigures {
    double step_ms = 0;         // median wall time of a training step (forward, backward, clip, AdamW)
    double step_cpu_ms = 0;     // the same in process CPU time (less sensitive to a loaded machine)
    double allocs_per_step = -1;  // heap allocations per steady-state step (-1: not counted)
    double loss = 0;            // the last step's loss (a sanity check: finite, ≈ ln 113 at first)
};
StepFigures time_steps(int threads, int steps);

struct AttentionFigures {
    double fwd_ms = 0, bwd_ms = 0;  // causal attention on (12, 4, 64, 32): forward; backward alone
};
AttentionFigures time_attention(int threads, int reps);

// Trains for `seconds` (for perf / callgrind): tapegrad_bench --profile gpt.
double profile(double seconds, int threads);

}  // namespace bench::gpt
