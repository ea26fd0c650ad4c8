// The tape is instantiated for float and double here, once, for every user.
#include <tapegrad/core/tape.hpp>

namespace tapegrad {
template class Tape<float>;
template class Tape<double>;
}  // namespace tapegrad
