// A rank that dies or stalls mid-training (ctest: tests/dist_rank_dies.sh, TIMEOUT 30):
//   dist_rank_dies          rank 1 exits with code 3 after two steps while the others go on
//                           all-reducing: mpirun must end the job with a non-zero exit, never hang;
//   dist_rank_dies timeout  DDP training with DdpOptions timeout = 2 s; at step 2 the last rank
//                           sleeps 60 s before its backward: every other rank raises the timeout
//                           Error (printed) and ends the job (dist::abort), well before the
//                           sleeper wakes.
//   dist_rank_dies timeout-mpi   the same with deterministic = false and overlap = false: the
//                           path whose blocking MPI_Allreduce cannot time out, so DDP must use
//                           MPI_Iallreduce requests there and still raise the timeout.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <tapegrad/dist.hpp>
#include <tapegrad/nn.hpp>

namespace {

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
namespace dist = tapegrad::dist;

int rank_dies() {
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

int rank_stalls(bool mpi_path) {
    const int r = dist::rank(), last = dist::world_size() - 1;
    nn::MLP<float> net({8, 16, 4}, nn::Activation::tanh, 1);
    typename dist::DistributedDataParallel<float>::Options o{.bucket_bytes = 256, .timeout = 2.0};
    if (mpi_path) {
        o.overlap = false;
        o.deterministic = false;
    }
    dist::DistributedDataParallel<float> ddp(net, o);
    nn::SGD<float> opt(net.parameters(), {.lr = 0.1f});
    tg::Tape<float> tape;
    tg::Tensor<float> x(4, 8), y(4, 1);
    for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(i % 5) * 0.1f;
    try {
        for (int step = 0; step < 10; ++step) {
            if (r == last && step == 2) {
                std::printf("dist_rank_dies: rank %d sleeps 60 s at step 2\n", r);
                std::fflush(stdout);
                std::this_thread::sleep_for(std::chrono::seconds(60));
            }
            tape.reset();
            auto loss = tg::softmax_cross_entropy(ddp(tape, tape.constant_ref(x)), tape.constant_ref(y));
            tape.backward(loss);
            ddp.finish_backward();
            opt.step();
            opt.zero_grad();
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "dist_rank_dies: %s\n", e.what());
        std::fflush(stderr);
        dist::abort(4);
    }
    std::printf("dist_rank_dies: rank %d finished without a timeout\n", r);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    dist::Env env(argc, argv);
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "timeout" || mode == "timeout-mpi") return rank_stalls(mode == "timeout-mpi");
    return rank_dies();
}
