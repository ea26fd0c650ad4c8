#!/usr/bin/python3
"""Writes tests/reference/ce_cases.txt: PyTorch fixtures (float64) of softmax_cross_entropy with a
per-class `weight`, `label_smoothing`, ignore_index and the three reductions, on (C), (N, C),
(N, C, d1), (N, C, d1, d2) logits and on (..., C) logits (class_axis -1, computed in torch with
movedim). Read by tests/test_transformer.cpp; the format is tests/reference/make_cases.py's:

    case cew;<reduction>;<ignore_index>;<label_smoothing>;<class_axis>;<weighted>;<shape index>
    tensor <name> <rank> <dims...> <values...>      (z, labels, weight, w, out, grad_z)
    end

out = F.cross_entropy(z, labels, weight, ignore_index, reduction, label_smoothing) and grad_z is
the gradient of sum(out * w) for a fixed random w. Run by hand:
    /usr/bin/python3 tests/reference/ce_fixtures.py
"""
import os
import torch
import torch.nn.functional as F

from fixture_common import DT, fmt_tensor, t

torch.manual_seed(13)


# (logits shape, class axis)
SHAPES = [((5,), 0), ((4, 3), 1), ((3, 4, 5), 1), ((2, 3, 2, 3), 1), ((2, 3, 5), -1)]
cases = []
for i, (zs, axis) in enumerate(SHAPES):
    C = zs[axis]
    ls = tuple(d for k, d in enumerate(zs) if k != axis % len(zs))
    labels = torch.randint(0, C, ls)
    weight = 0.25 + 1.5 * torch.rand(C, dtype=DT)
    for ignore in (-100, 1):
        lab = labels.clone()
        if lab.dim() > 0:
            lab.view(-1)[::3] = ignore
        for eps in (0.0, 0.2):
            for weighted in (0, 1):
                if eps == 0.0 and not weighted:
                    continue  # plain: tests/reference/cases.txt
                for red in ("mean", "sum", "none"):
                    if lab.dim() == 0 and int(lab) == ignore and red == "mean":
                        continue  # 0/0
                    z = (t(*zs) * 2).requires_grad_(True)
                    zt = z.movedim(-1, 1) if axis == -1 else z
                    out = F.cross_entropy(zt, lab, weight=weight if weighted else None, ignore_index=ignore,
                                          reduction=red, label_smoothing=eps)
                    w = t(*out.shape)
                    (out * w).sum().backward()
                    lines = [f"case cew;{red};{ignore};{eps};{axis};{weighted};{i}", fmt_tensor("z", z),
                             fmt_tensor("labels", lab.to(DT))]
                    if weighted:
                        lines.append(fmt_tensor("weight", weight))
                    lines += [fmt_tensor("w", w), fmt_tensor("out", out), fmt_tensor("grad_z", z.grad), "end"]
                    cases.append("\n".join(lines))

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ce_cases.txt")
with open(path, "w") as fh:
    fh.write("\n".join(cases) + "\n")
print(len(cases), "cases ->", path)
