// Must NOT compile: a vjp that is not a const member function is a near miss of the op
// protocol (ctest compile_fail_vjp_not_const checks the compiler's message).
// expect: this op's vjp for In<i> is not a const member function
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

struct NotConst {
    static constexpr std::string_view name = "not_const";
    static constexpr std::size_t arity = 1;
    tg::Shape shape(tg::Shape x) const { return x; }
    template <class T>
    void forward(tg::Tensor<T>& out, const tg::Tensor<T>& x) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = 2 * x[i];
    }
    template <class V>
    V vjp(tg::In<0>, const V& g, const V& /*y*/, const V& /*x*/) {  // const missing
        return tg::scale(g, 2.0);
    }
};

int main() {
    tg::Tape<double> tape;
    auto x = tape.variable(tg::Tensor<double>(1, 2));
    tape.backward(tg::sum(tg::apply(NotConst{}, x)));
}
