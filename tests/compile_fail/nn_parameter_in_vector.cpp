// Must NOT compile: a std::vector of Parameters moves them when it reallocates, and a tape that
// holds a parameter's gradient address would then write into freed memory (issue 16, defect 7).
// Parameters are neither copyable nor movable; hold them in place or through std::unique_ptr.
// expect: use of deleted function
#include <vector>

#include <tapegrad/nn/parameter.hpp>

namespace tg = tapegrad;
namespace nn = tapegrad::nn;

int main() {
    std::vector<nn::Parameter<float>> ps;
    ps.emplace_back(tg::Tensor<float>(2, 2), "W0");
    ps.emplace_back(tg::Tensor<float>(1, 2), "b0");
    return static_cast<int>(ps.size());
}
