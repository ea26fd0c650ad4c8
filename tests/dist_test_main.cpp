// The doctest driver of the data-parallel tests: every rank runs every case (the cases are
// collective), rank 0 prints the summary, the other ranks print only their failures; the
// failure counts are combined (max over ranks), so one failing rank fails the run on all.
// (Debian's doctest has no doctest_mpi.h.)
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdint>
#include <exception>

#include <fmt/format.h>

#include <tapegrad/dist/env.hpp>

int main(int argc, char** argv) {
    namespace dist = tapegrad::dist;
    try {
        dist::Env env(argc, argv);
        doctest::Context ctx(argc, argv);
        if (dist::rank() != 0) ctx.setOption("minimal", true);
        std::int64_t failed = ctx.run() != 0 ? 1 : 0;
        if (ctx.shouldExit()) return static_cast<int>(failed);
        dist::allreduce_max(&failed, 1, dist::Dtype::i64);
        if (dist::rank() == 0)
            fmt::print("dist: {} rank(s){}, {}\n", dist::world_size(), dist::built_with_mpi() ? " (MPI)" : " (no MPI)",
                       failed ? "FAILED on some rank" : "all ranks passed");
        return failed ? 1 : 0;
    } catch (const std::exception& e) {
        fmt::print(stderr, "dist test driver: {}\n", e.what());
        return 2;
    }
}
