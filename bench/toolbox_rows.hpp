// The toolbox rows of tapegrad_bench (jvp, checkpointing), compiled in toolbox_rows.cpp: kept
// out of bench_main.cpp's translation unit, where more instantiated code changes GCC's inlining
// of the tiny-op chain (measured: Tape::check and record<Add> went out of line, +2 % instructions).
#pragma once

#include <cstddef>

namespace bench::toolbox {

struct JvpTimes {
    double forward_ms = 0, jvp_ms = 0;
};
struct CheckpointFigures {
    std::size_t layers = 0, width = 0, batch = 0, seg = 0;
    double bytes_plain = 0, bytes_ckpt = 0;  // arena bytes of a step
    double rss_plain_mb = -1, rss_ckpt_mb = -1;
    double ms_plain = 0, ms_ckpt = 0;
    float loss_plain = 0, loss_ckpt = 0;
};

JvpTimes time_jvp(int rounds);
CheckpointFigures measure_checkpoint(std::size_t layers, std::size_t width, std::size_t batch, std::size_t seg,
                                     int rounds);

}  // namespace bench::toolbox
