// Must NOT compile: a member named vjp that no call of the VJP form reaches (here: written for
// one input of a two-input op with the inputs left out) — the catch-all diagnosis (ctest
// compile_fail_vjp_no_match checks the compiler's message).
// expect: this op declares a member named vjp, but it cannot be called as a VJP of any input
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

struct NoMatch {
    static constexpr std::string_view name = "no_match";
    static constexpr std::size_t arity = 2;
    tg::Shape shape(tg::Shape x, tg::Shape) const { return x; }
    template <class T>
    void forward(tg::Tensor<T>& out, const tg::Tensor<T>& x, const tg::Tensor<T>& y) const {
        for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] + y[i];
    }
    template <class V>
    V vjp(const V& g) const {  // no In<i> tag, no y, no inputs
        return g;
    }
};

int main() {
    tg::Tape<double> tape;
    auto x = tape.variable(tg::Tensor<double>(1, 2));
    tape.backward(tg::sum(tg::apply(NoMatch{}, x, x)));
}
