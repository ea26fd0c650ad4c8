// toolbox_bench: the jvp and checkpointing rows of tapegrad_bench on their own, with the sizes
// as arguments:  toolbox_bench [layers width batch segment rounds]   (default 32 1024 256 4 5)
#include <cstdlib>

#include <fmt/format.h>

#include "toolbox_bench.hpp"

int main(int argc, char** argv) {
    namespace tb = bench::toolbox;
    auto arg = [&](int i, std::size_t d) { return argc > i ? std::size_t(std::strtoul(argv[i], nullptr, 10)) : d; };
    const std::size_t layers = arg(1, 32), width = arg(2, 1024), batch = arg(3, 256), seg = arg(4, 4);
    const int rounds = int(arg(5, 5));
    const tb::JvpTimes j = tb::time_jvp(15);
    fmt::print("jvp: forward {:.3f} ms, jvp {:.3f} ms, jvp_over_forward {:.2f}\n", j.forward_ms, j.jvp_ms,
               j.jvp_ms / j.forward_ms);
    const tb::CheckpointFigures c = tb::measure_checkpoint(layers, width, batch, seg, rounds);
    fmt::print("checkpoint: {} layers of {}, batch {}, segments of {}\n", layers, width, batch, seg);
    fmt::print("  step arena bytes: plain {:.1f} MiB, checkpointed {:.1f} MiB: checkpoint_mem_ratio {:.3f}\n",
               c.bytes_plain / 1048576, c.bytes_ckpt / 1048576, c.bytes_ckpt / c.bytes_plain);
    fmt::print("  peak RSS growth of a step (incl. weight gradients): plain {:.1f} MiB, checkpointed {:.1f} MiB\n",
               c.rss_plain_mb, c.rss_ckpt_mb);
    fmt::print("  step time: plain {:.1f} ms, checkpointed {:.1f} ms: checkpoint_time_ratio {:.3f}\n", c.ms_plain,
               c.ms_ckpt, c.ms_ckpt / c.ms_plain);
    fmt::print("  losses: {} {}\n", c.loss_plain, c.loss_ckpt);
    return 0;
}
