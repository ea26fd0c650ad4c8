#!/usr/bin/python3
# Fixtures of tests/test_nn_optim.cpp ("torch 1.13 AdamW with parameter groups, a frozen parameter
# and nanoGPT's warm-up + cosine schedule"): run by hand with Debian's /usr/bin/python3 and
# python3-torch (1.13), in double; paste the printed rows into the test.
# Parameters a (2×3) and c (2×2) in group 0 (weight_decay 0.1, the default lr 0.01), b (3) in
# group 1 (lr 0.02, weight_decay 0); c has no gradient at steps 1 and 2 (of 0..5), so its
# state['step'] ends at 4 while a's and b's end at 6. The rate follows nanoGPT's get_lr with
# warmup_iters 2, lr_decay_iters 4, min_lr 0.001 as a LambdaLR.
import math
import torch
torch.set_default_dtype(torch.float64)

def seq(n, a, b):
    return torch.tensor([math.sin(a * (i + 1) + b) for i in range(n)])

a = torch.nn.Parameter(seq(6, 1.0, 0.0).reshape(2, 3))
b = torch.nn.Parameter(seq(3, 0.7, 0.2))
c = torch.nn.Parameter(seq(4, 1.3, 0.5).reshape(2, 2))
opt = torch.optim.AdamW([{"params": [a, c], "weight_decay": 0.1}, {"params": [b], "lr": 0.02, "weight_decay": 0.0}],
                        lr=0.01, betas=(0.9, 0.95), eps=1e-8)
W, D, base, min_lr = 2, 4, 0.01, 0.001
def get_lr(it):
    if it < W: return base * (it + 1) / (W + 1)
    if it > D: return min_lr
    r = (it - W) / (D - W)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * r)) * (base - min_lr)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: get_lr(it) / base)
rates = []
for step in range(6):
    rates.append([g["lr"] for g in opt.param_groups])
    a.grad = seq(6, 0.3 * step + 0.1, 1.0).reshape(2, 3)
    b.grad = seq(3, 0.5 * step + 0.2, 0.4)
    c.grad = None if step in (1, 2) else seq(4, 0.9 * step + 0.3, 0.7).reshape(2, 2)
    opt.step()
    sched.step()
fmt = lambda t: ", ".join(repr(float(v)) for v in t.detach().reshape(-1))
print("rates", [r for pair in rates for r in pair])
for n, p in (("a", a), ("b", b), ("c", c)):
    st = opt.state[p]
    print(f'    {{"{n}", {{{fmt(p)}}}, {int(st["step"])}}},')
