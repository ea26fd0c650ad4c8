// A user's data-parallel program, linked against tapegrad::dist (installed, or add_subdirectory):
// a world of one without mpirun. Checks the environment, a collective, and DDP around a layer.
// Exit status 0 when everything holds.
#include <cstdio>

#include <tapegrad/dist.hpp>
#include <tapegrad/nn.hpp>

namespace tg = tapegrad;
namespace nn = tapegrad::nn;
namespace dist = tapegrad::dist;

int main(int argc, char** argv) {
    try {
        dist::Env env(argc, argv);
        if (dist::world_size() != 1 || dist::rank() != 0) {
            std::printf("consumer_dist: expected a world of one, got rank %d of %d\n", dist::rank(), dist::world_size());
            return 1;
        }
        double v[3] = {1, 2, 3};
        dist::allreduce_sum(std::span<double>(v));
        nn::MLP<double> net({2, 3, 2}, nn::Activation::tanh, 1);
        dist::DistributedDataParallel<double> ddp(net);
        tg::Tape<double> tape;
        auto y = ddp(tape, tape.constant(tg::Tensor<double>(1, 2, {0.5, -1})));
        tape.backward(tg::sum(y * y));
        ddp.finish_backward();
        if (v[2] != 3 || ddp.bucket_count() != 1 || net.parameters().front()->grad.tensor().size() != 6) {
            std::printf("consumer_dist: unexpected result\n");
            return 1;
        }
        std::printf("consumer_dist: ok (%s)\n", dist::built_with_mpi() ? "MPI" : "no MPI");
        return 0;
    } catch (const std::exception& e) {
        std::printf("consumer_dist: %s\n", e.what());
        return 1;
    }
}
