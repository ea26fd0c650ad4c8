#!/usr/bin/python3
# Fixtures of tests/test_index.cpp ("PyTorch fixtures"): run by hand with Debian's /usr/bin/python3 and
# python3-torch (1.13, double):
#     /usr/bin/python3 tests/reference/index_fixtures.py > tests/index_fixtures.hpp
# Inputs are sin(a·(i+1) + b) (the C++ test builds the same); each case's gradients are those of
# sum(out ⊙ c) for c = sin(0.9·(i+1) + 0.1) of out's shape. Index and mask data are literal.
import math
import torch
torch.set_default_dtype(torch.float64)


def seq(shape, a=1.0, b=0.0):
    n = 1
    for d in shape:
        n *= d
    return torch.tensor([math.sin(a * (i + 1) + b) for i in range(n)]).reshape(shape)


out = {}


def run(name, f, **inputs):
    leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}
    y = f(**leaves)
    (y * seq(tuple(y.shape), 0.9, 0.1)).sum().backward()
    out[f"{name}_y"] = y
    for k, v in leaves.items():
        out[f"{name}_d{k}"] = v.grad


gi = torch.tensor([[[2, 0, 1, 2], [1, 1, 0, 0]], [[0, 2, 2, 1], [2, 2, 2, 0]]])
run("gather", lambda x: torch.gather(x, 1, gi), x=seq((2, 3, 4)))
si = torch.tensor([[2, 0, 1, 2], [2, 1, 0, 2]])
run("scatter_add", lambda x, s: x.scatter_add(0, si, s), x=seq((3, 4)), s=seq((2, 4), 0.7))
ii = torch.tensor([3, 0, 3])
run("index_select", lambda x: torch.index_select(x, 1, ii), x=seq((3, 4, 2)))
run("index_add", lambda x, s: x.index_add(1, ii, s), x=seq((3, 4, 2)), s=seq((3, 3, 2), 0.3))
cond = torch.tensor([[True], [False]])
run("where", lambda a, b: torch.where(cond, a, b), a=seq((2, 3)), b=seq((3,), 1.3))
mask = torch.tensor([[True], [False], [True]])
run("masked_fill", lambda x: x.masked_fill(mask, 0.25), x=seq((2, 3, 4)))
run("tril", lambda x: torch.tril(x, -1), x=seq((3, 4)))
run("triu", lambda x: torch.triu(x, 1), x=seq((2, 3, 3)))
lab = torch.tensor([1, 4, -100])
run("ce_mean", lambda z: torch.nn.functional.cross_entropy(z, lab), z=seq((3, 5)))
lab3 = torch.tensor([[0, 2], [1, 1]])
run("ce_none", lambda z: torch.nn.functional.cross_entropy(z, lab3, reduction="none", ignore_index=1),
    z=seq((2, 3, 2)))
ei = torch.tensor([[4, 2, 0], [2, 2, 1]])
run("embedding", lambda w: torch.nn.functional.embedding(ei, w, padding_idx=2), w=seq((5, 3)))

print(f"// Written by tests/reference/index_fixtures.py with torch {torch.__version__} (double). Do not edit.")
print("#pragma once")
print("#include <map>\n#include <string>\n#include <vector>")
print("inline const std::map<std::string, std::vector<double>>& index_fixtures() {")
print("    static const std::map<std::string, std::vector<double>> m{")
for k, v in out.items():
    vals = ", ".join(repr(float(e)) for e in v.detach().reshape(-1))
    print(f'        {{"{k}", {{{vals}}}}},')
print("    };")
print("    return m;")
print("}")
