// A no-grad scope: NoGradGuard g(tape), or auto g = tape.no_grad(), as torch.no_grad().
//
// While a guard lives, every op recorded on `tape` computes its value as usual but records a
// constant node (requires_grad = false): backward never enters it, and a value computed there
// and used afterwards is a constant, whatever its inputs were. Leaves are unaffected: a
// variable() or a parameter recorded inside the scope is still differentiable (PyTorch's rule).
// Guards nest and restore the previous mode when destroyed, also during stack unwinding.
//
// Why constant nodes rather than no nodes: a Var is a (tape, node) handle, so a value that is to
// be usable as an input afterwards needs a node; the forward pass of this engine saves nothing
// beyond node values anyway. For inference with no tape at all, modules run on plain tensors
// (nn::Module::operator()(const Tensor&)); docs/toolbox.md gives the measured costs.
#pragma once

namespace tapegrad {

template <class T>
class Tape;

template <class T>
class NoGradGuard {
public:
    explicit NoGradGuard(Tape<T>& tape) noexcept : tape_(tape), previous_(tape.grad_enabled()) {
        tape.set_grad_enabled(false);
    }
    ~NoGradGuard() { tape_.set_grad_enabled(previous_); }
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;

private:
    Tape<T>& tape_;
    bool previous_;
};

// Turns recording back on inside a no-grad scope (torch.enable_grad()), or sets either mode.
template <class T>
class GradModeGuard {
public:
    GradModeGuard(Tape<T>& tape, bool enabled) noexcept : tape_(tape), previous_(tape.grad_enabled()) {
        tape.set_grad_enabled(enabled);
    }
    ~GradModeGuard() { tape_.set_grad_enabled(previous_); }
    GradModeGuard(const GradModeGuard&) = delete;
    GradModeGuard& operator=(const GradModeGuard&) = delete;

private:
    Tape<T>& tape_;
    bool previous_;
};

}  // namespace tapegrad
