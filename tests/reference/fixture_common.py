"""What every PyTorch fixture script here shares (make_cases.py, ce_fixtures.py,
loss_fixtures.py): float64, uniform random inputs, and the `tensor` line of the case format

    tensor <name> <rank> <dims...> <values...>

that tests/reference_cases.hpp reads. Each script seeds torch itself before drawing."""
import torch

DT = torch.double


def t(*shape, lo=-2.0, hi=2.0):
    """Uniform in [lo, hi), float64, from torch's global generator."""
    return lo + (hi - lo) * torch.rand(tuple(shape), dtype=DT)


def fmt_tensor(name, x):
    """One `tensor` line: rank, dims, then every value (repr: exact round trip)."""
    x = x.detach().to(DT).contiguous()
    dims = list(x.shape)
    vals = [repr(float(v)) for v in x.reshape(-1).tolist()]
    return f"tensor {name} {len(dims)} " + " ".join(str(d) for d in dims) + (" " if dims else "") + " ".join(vals)
