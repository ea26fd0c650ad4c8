#!/usr/bin/python3
"""Writes tests/reference/cases.txt: differential fixtures from PyTorch, in double.

Run by hand (Debian: apt-get install python3-torch), from anywhere:
    /usr/bin/python3 tests/reference/make_cases.py
The test suite reads the committed file (tests/test_reductions.cpp); it needs no Python.

Each case computes out = f(inputs) and the gradients of loss = Σ out ⊙ w for a fixed random
weight tensor w (so every gradient is a full vector-Jacobian product, not just ones). A case is

    case <key>
    tensor <name> <rank> <dims…> <values…>      (inputs, labels, w, out, grad_<input>, …)
    end

values in repr() (round-trip exact doubles). The key tells the C++ test what to build:
    <binary op>;<tag>               add, sub, mul, div of inputs a, b (broadcasting)
    <reduction>;<axes>;<keepdim>;<extra>   sum, mean, amax, amin, max, min, argmax, logsumexp,
                                    var, std (extra: the correction)
    softmax;<axis> / log_softmax;<axis>
    ce;<reduction>;<ignore_index>;<tag>
    view;<name>                     a chain of view ops (see VIEWS below and the C++ table)
"""
import os
import torch

from fixture_common import DT, fmt_tensor, t

torch.manual_seed(11)
cases = []


def add_case(key, inputs, f, consts=None):
    """inputs: dict name → tensor (differentiable); consts: dict name → tensor (data)."""
    consts = consts or {}
    leaves = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    out = f(**leaves, **consts)
    extra = {}
    if isinstance(out, tuple):  # (values, indices)
        out, idx = out
        extra["indices"] = idx.to(DT)
    if out.dtype != DT:  # argmax: indices, no gradient
        lines = [f"case {key}"] + [fmt_tensor(k, v) for k, v in inputs.items()]
        lines += [fmt_tensor("out", out.to(DT)), "end"]
        cases.append("\n".join(lines))
        return
    w = t(*out.shape)
    (out * w).sum().backward()
    lines = [f"case {key}"]
    lines += [fmt_tensor(k, v) for k, v in inputs.items()]
    lines += [fmt_tensor(k, v.to(DT)) for k, v in consts.items()]
    lines += [fmt_tensor("w", w), fmt_tensor("out", out)]
    lines += [fmt_tensor(k, v) for k, v in extra.items()]
    lines += [fmt_tensor("grad_" + k, leaves[k].grad) for k in inputs]
    lines.append("end")
    cases.append("\n".join(lines))


# ---- broadcasting patterns ------------------------------------------------------------------
BCAST = [
    ((2, 3, 4), (3, 1)),
    ((2, 1, 4), (3, 1)),
    ((4,), (2, 3, 4)),
    ((1, 3, 1, 2), (2, 1, 1, 2, 1)),
    ((), (2, 2, 3)),
    ((2, 1, 3, 1, 2, 1), (1, 2, 1, 2, 1, 2)),
]
OPS = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
for i, (sa, sb) in enumerate(BCAST):
    for name, op in OPS.items():
        b = t(*sb, lo=0.5, hi=2.0) if name == "div" else t(*sb)
        add_case(f"{name};{i}", {"a": t(*sa), "b": b}, lambda a, b, op=op: op(a, b))

# ---- reductions ---------------------------------------------------------------------------------
X3 = (2, 3, 4)
X5 = (2, 1, 3, 2, 2)
AXES = [(X3, ()), (X3, (1,)), (X3, (0, 2)), (X3, (-1,)), (X3, (0, 1, 2)), (X5, (0, 2, 4)), (X5, (-2, 1))]


def axes_str(a):
    return ",".join(str(k) for k in a)


for shape, axes in AXES:
    for keep in (0, 1):
        dims = axes if axes else tuple(range(len(shape)))
        x = t(*shape)
        k = bool(keep)
        add_case(f"sum;{axes_str(dims)};{keep};0", {"x": x}, lambda x, d=dims, k=k: x.sum(d, keepdim=k))
        add_case(f"mean;{axes_str(dims)};{keep};0", {"x": x}, lambda x, d=dims, k=k: x.mean(d, keepdim=k))
        add_case(f"logsumexp;{axes_str(dims)};{keep};0", {"x": x}, lambda x, d=dims, k=k: torch.logsumexp(x, d, keepdim=k))
        # ties: values on a coarse grid, so equal maxima occur and the gradient is split
        xt = torch.round(t(*shape) * 1.5) / 1.5
        add_case(f"amax;{axes_str(dims)};{keep};0", {"x": xt}, lambda x, d=dims, k=k: x.amax(d, keepdim=k))
        add_case(f"amin;{axes_str(dims)};{keep};0", {"x": xt}, lambda x, d=dims, k=k: x.amin(d, keepdim=k))
        for corr in (0, 1):
            add_case(f"var;{axes_str(dims)};{keep};{corr}", {"x": x},
                     lambda x, d=dims, k=k, c=corr: torch.var(x, d, correction=c, keepdim=k))
            add_case(f"std;{axes_str(dims)};{keep};{corr}", {"x": x},
                     lambda x, d=dims, k=k, c=corr: torch.std(x, d, correction=c, keepdim=k))
for shape in (X3, X5):
    for dim in range(-1, len(shape)):
        for keep in (0, 1):
            xt = torch.round(t(*shape) * 1.5) / 1.5  # ties: the gradient goes to the first
            k = bool(keep)
            add_case(f"max;{dim};{keep};0", {"x": xt}, lambda x, d=dim, k=k: tuple(torch.max(x, d, keepdim=k)))
            add_case(f"min;{dim};{keep};0", {"x": xt}, lambda x, d=dim, k=k: tuple(torch.min(x, d, keepdim=k)))
            add_case(f"argmax;{dim};{keep};0", {"x": xt}, lambda x, d=dim, k=k: torch.argmax(x, d, keepdim=k))

# ---- softmax / log_softmax over each axis ------------------------------------------------------
for shape in ((5,), (3, 4), X3, (2, 3, 1, 2, 2)):
    x = t(*shape) * 2
    for axis in range(-1, len(shape)):
        add_case(f"softmax;{axis}", {"x": x}, lambda x, a=axis: torch.softmax(x, a))
        add_case(f"log_softmax;{axis}", {"x": x}, lambda x, a=axis: torch.log_softmax(x, a))

# ---- cross-entropy: (C), (N, C), (N, C, d1), (N, C, d1, d2); ignore_index; reductions ----------
CE = [((5,), ()), ((4, 3), (4,)), ((3, 4, 5), (3, 5)), ((2, 3, 2, 3), (2, 2, 3))]
for i, (zs, ls) in enumerate(CE):
    C = zs[1] if len(zs) >= 2 else zs[0]
    labels = torch.randint(0, C, ls)
    for ignore in (-100, 1):
        lab = labels.clone()
        if lab.dim() > 0:
            flat = lab.view(-1)
            flat[::3] = ignore  # every third position ignored (or labelled 1 = ignore_index)
        for red in ("mean", "sum", "none"):
            if lab.dim() == 0 and ignore == 1 and red == "mean":
                continue
            add_case(f"ce;{red};{ignore};{i}", {"z": t(*zs) * 2},
                     lambda z, labels, r=red, ig=ignore: torch.nn.functional.cross_entropy(
                         z, labels, ignore_index=ig, reduction=r),
                     consts={"labels": lab})

# ---- views and their combinations (the C++ table builds the same chains) ----------------------
VIEWS = {
    "permute_reshape_tanh": ((2, 3, 4), lambda x: torch.tanh(x.permute(2, 0, 1).reshape(4, -1))),
    "transpose_times_permute": ((2, 3, 4), lambda x: x.transpose(0, 2) * x.permute(2, 1, 0)),
    "expand_mul": ((3, 1), lambda x: x.expand(2, 3, 4) * x.expand(2, 3, 4).tanh()),
    "slice_step_narrow": ((5, 4, 3), lambda x: x[1:5:2].narrow(2, 1, 2).exp()),
    "select_transpose": ((3, 4, 2), lambda x: x.select(1, 2).transpose(0, 1) ** 2),
    "unsqueeze_flatten_squeeze": ((2, 1, 3), lambda x: (x.unsqueeze(0).flatten(1, 2).squeeze(0) * x.squeeze(1)).tanh()),
    "permute_sum_softmax": ((2, 3, 4), lambda x: torch.softmax(x.permute(1, 2, 0), 1).sum((0,), keepdim=True)),
    "reshape_of_transposed": ((3, 4), lambda x: x.t().reshape(2, 6) * 3.0),
    "expand_slice_select": ((4, 1), lambda x: x.expand(4, 3)[::2].select(1, 1) * x[1:3, 0]),
}
for name, (shape, f) in VIEWS.items():
    add_case(f"view;{name}", {"x": t(*shape)}, f)

# ---- ndio: batched matmul, concat/stack, more view chains (issue 11 item 13) ---------------------
# Appended after every earlier case, so the generator's draws above (and their fixtures) are
# unchanged. Keys: bmm;<name> (inputs a, b), cat;<name> (inputs a, b, c), view;<name> (input x);
# tests/test_reductions.cpp builds the same expressions.
BMM = {
    "broadcast_batch": ((2, 1, 3, 4), (5, 4, 2), lambda a, b: a @ b),
    "matrix_times_batch": ((3, 4), (2, 4, 5), lambda a, b: a @ b),
    "batch_times_matrix": ((2, 3, 3, 4), (4, 2), lambda a, b: a @ b),
    "flag_ta": ((2, 4, 3), (2, 4, 5), lambda a, b: a.transpose(-1, -2) @ b),
    "flag_tb_broadcast": ((3, 2, 4), (1, 5, 4), lambda a, b: a @ b.transpose(-1, -2)),
    "flag_ta_tb": ((2, 1, 4, 3), (3, 5, 4), lambda a, b: a.transpose(-1, -2) @ b.transpose(-1, -2)),
    "transpose_view_a": ((2, 4, 3), (1, 4, 2), lambda a, b: a.transpose(1, 2) @ b),
    "permute_view_b": ((5, 2, 4), (2, 3, 4), lambda a, b: b @ a.permute(1, 2, 0)),
    "permuted_batch_axes": ((4, 2, 3, 3), (3, 2), lambda a, b: a.permute(1, 0, 2, 3) @ b),
    "attention_like": ((2, 3, 4, 2), (2, 3, 4, 2),
                       lambda a, b: torch.softmax(a @ b.transpose(-1, -2), -1) @ b),
}
for name, (sa, sb, f) in BMM.items():
    add_case(f"bmm;{name}", {"a": t(*sa), "b": t(*sb)}, f)

CAT = {
    "concat_axis1_tanh": (((2, 3, 4), (2, 1, 4), (2, 2, 4)), lambda a, b, c: torch.cat([a, b, c], 1).tanh()),
    "concat_last_neg": (((3, 2), (3, 1), (3, 4)), lambda a, b, c: torch.cat([a, b * b, c], -1)),
    "concat_permuted": (((3, 2, 4), (1, 3, 4), (2, 3, 4)),
                        lambda a, b, c: torch.cat([a.permute(1, 0, 2), b, c.exp()], 0)),
    "stack_axis0": (((3, 2), (3, 2), (3, 2)), lambda a, b, c: torch.stack([a, b, c * a], 0)),
    "stack_last": (((2, 3, 2), (2, 3, 2), (2, 3, 2)), lambda a, b, c: torch.stack([a, b, c], -1).tanh()),
    "stack_middle_of_views": (((4, 3), (3, 4), (2, 2, 3)),
                              lambda a, b, c: torch.stack([a, b.t(), c.reshape(4, 3)], 1) ** 2),
    "stack_then_matmul": (((2, 3), (2, 3), (3, 4)),
                          lambda a, b, c: torch.stack([a, b], 0) @ c),
}
for name, (shapes, f) in CAT.items():
    sa, sb, sc = shapes
    add_case(f"cat;{name}", {"a": t(*sa), "b": t(*sb), "c": t(*sc)}, f)

VIEWS_ND = {
    "transpose_bmm_sum": ((2, 3, 4), lambda x: (x.transpose(1, 2) @ x).sum(-1)),
    "flatten_matmul_permute": ((2, 3, 4), lambda x: x.reshape(6, 4) @ x.permute(2, 0, 1).flatten(1)),
    "expand_bmm": ((1, 3, 3), lambda x: x.expand(2, 3, 3) @ x.tanh()),
    "slice_concat_self": ((4, 3), lambda x: torch.cat([x[::2], x[1::2]], 1) * x[:2].sum()),
    "unsqueeze_stack_mean": ((3, 2), lambda x: torch.stack([x.unsqueeze(0), x.exp().unsqueeze(0)], 2).mean((1, 3))),
    "select_narrow_matmul": ((3, 4, 4), lambda x: x.select(0, 1).narrow(1, 0, 2).t() @ x[2]),
}
for name, (shape, f) in VIEWS_ND.items():
    add_case(f"view;{name}", {"x": t(*shape)}, f)
# ---- end ndio ---------------------------------------------------------------------------------

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.txt")
with open(path, "w") as fh:
    fh.write(f"# written by tests/reference/make_cases.py with torch {torch.__version__}; {len(cases)} cases\n")
    fh.write("\n".join(cases) + "\n")
print(path, len(cases), "cases")
