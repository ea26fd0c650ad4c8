// Must NOT compile: a vjp that leaves out the output y is a near miss of the op protocol, and
// recording the op is a compile-time error naming the expected signature (ctest
// compile_fail_vjp_missing_y checks the compiler's message). Before, the op was silently
// "not differentiable".
// expect: this op's vjp for In<i> leaves out the output y
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

struct MissingY {
    static constexpr std::string_view name = "missing_y";
    static constexpr std::size_t arity = 1;
    tg::Shape shape(tg::Shape x) const { return x; }
    template <class T>
    void forward(tg::Tensor<T>& out, const tg::Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = 2 * x[i];
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V& /*x*/) const {  // (In<0>, g, y, x) expected
        return tg::scale(g, 2.0);
    }
};

int main() {
    tg::Tape<double> tape;
    auto x = tape.variable(tg::Tensor<double>(1, 2));
    tape.backward(tg::sum(tg::apply(MissingY{}, x)));
}
