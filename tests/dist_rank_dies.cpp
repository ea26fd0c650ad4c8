// A rank that dies mid-training: rank 1 exits with code 3 after two steps while rank 0 goes on
// all-reducing. mpirun must end the job with a non-zero exit (ctest: tests/dist_rank_dies.sh,
// TIMEOUT 30), never hang.
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include <tapegrad/dist/env.hpp>

int main(int argc, char** argv) {
    namespace dist = tapegrad::dist;
    dist::Env env(argc, argv);
    std::vector<float> g(1000, 1.0f);
    for (int step = 0; step < 1000000; ++step) {
        if (dist::rank() == 1 && step == 2) {
            std::printf("dist_rank_dies: rank 1 exits at step 2\n");
            std::fflush(stdout);
            std::_Exit(3);
        }
        dist::allreduce_sum(std::span<float>(g));
        for (float& x : g) x = 1.0f;
    }
    return 0;  // not reached when the job is torn down as it should be
}
