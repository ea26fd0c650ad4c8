#!/usr/bin/python3
"""Writes tests/reference/loss_cases.txt: PyTorch fixtures (float64) of the losses sse_half, mse,
binary_cross_entropy_with_logits and softmax_cross_entropy_probs (cross_entropy with probability
targets) at ranks 0 to 5. Read by tests/test_reductions.cpp with tests/reference_cases.hpp; the
format is tests/reference/make_cases.py's:

    case <loss>;<shape index>
    tensor <name> <rank> <dims...> <values...>      (p, t, out, w, grad_p, grad_t)

out is the loss (a scalar; tapegrad returns it as 1×1); grad_p and grad_t are the gradients of
out * w for a fixed random w. sse_half is 0.5 * ((p - t) ** 2).sum(); cross_entropy with
probabilities takes its classes on axis 1 (axis 0 for a rank-1 input) and means over the other
positions, as torch. Run by hand:
    /usr/bin/python3 tests/reference/loss_fixtures.py
"""
import os
import torch
import torch.nn.functional as F

from fixture_common import DT, fmt_tensor, t

torch.manual_seed(29)


SHAPES = [(), (4,), (3, 2), (2, 3, 4), (2, 3, 2, 2), (1, 2, 3, 1, 2), (2, 1, 2, 2, 1, 3)]
LOSSES = {
    "sse_half": lambda p, y: 0.5 * ((p - y) ** 2).sum(),
    "mse": lambda p, y: F.mse_loss(p, y),
    "bce_logits": lambda p, y: F.binary_cross_entropy_with_logits(p, y),
    "ce_probs": lambda p, y: F.cross_entropy(p, y),
}
cases = []
for name, f in LOSSES.items():
    for i, s in enumerate(SHAPES):
        if name == "ce_probs" and len(s) == 0:
            continue  # cross_entropy needs a class axis
        p = t(*s).requires_grad_(True)
        if name == "bce_logits":
            y = t(*s, lo=0.05, hi=0.95)
        elif name == "ce_probs":
            axis = 0 if len(s) == 1 else 1
            y = torch.softmax(t(*s), axis)  # probabilities along the class axis
        else:
            y = t(*s)
        y.requires_grad_(True)
        out = f(p, y)
        w = t()
        (out * w).sum().backward()
        cases += [f"case {name};{i}", fmt_tensor("p", p), fmt_tensor("t", y), fmt_tensor("out", out),
                  fmt_tensor("w", w), fmt_tensor("grad_p", p.grad), fmt_tensor("grad_t", y.grad), "end"]

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loss_cases.txt")
with open(path, "w") as fh:
    fh.write(f"# Written by tests/reference/loss_fixtures.py with torch {torch.__version__} (float64). Do not edit.\n")
    fh.write("\n".join(cases) + "\n")
print(f"{len([c for c in cases if c.startswith('case')])} cases -> {path}")
