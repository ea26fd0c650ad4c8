# Fixtures of tests/test_transformer.cpp ("PyTorch fixtures"): run by hand with Debian's /usr/bin/python3 and
# python3-torch (1.13, double); paste the printed rows into the test. Inputs are sin(a·(i+1) + b).
# PyTorch 1.13 has no scaled_dot_product_attention: attention is the composed formula.
import torch, math
torch.set_default_dtype(torch.float64)
def seq(shape, a=1.0, b=0.0):
    n = 1
    for d in shape: n *= d
    return torch.tensor([math.sin(a*(i+1)+b) for i in range(n)]).reshape(shape)
def fmt(t): return ", ".join(repr(float(v)) for v in t.detach().reshape(-1))
out = {}
# gelu exact and tanh, gradient of sum(gelu(x) * c)
x = seq((2,3)).requires_grad_(); c = seq((2,3), 0.7, 0.3)
for ap in ["none", "tanh"]:
    x.grad = None
    y = torch.nn.functional.gelu(x, approximate=ap); (y*c).sum().backward()
    out[f"gelu_{ap}_y"] = y; out[f"gelu_{ap}_dx"] = x.grad.clone()
# layer_norm over last axis with w, b
x = seq((2,3,4)).requires_grad_(); w = seq((4,), 1.3).requires_grad_(); b = seq((4,), 0.4).requires_grad_()
c = seq((2,3,4), 0.9, 0.1)
y = torch.nn.functional.layer_norm(x, (4,), w, b, 1e-5); (y*c).sum().backward()
out["ln_y"]=y; out["ln_dx"]=x.grad; out["ln_dw"]=w.grad; out["ln_db"]=b.grad
# sdpa composed causal (B,H,T,D) = (1,2,3,2)
q = seq((1,2,3,2), 1.1).requires_grad_(); k = seq((1,2,3,2), 0.5, 1.0).requires_grad_(); v = seq((1,2,3,2), 1.7, 0.2).requires_grad_()
c = seq((1,2,3,2), 0.3, 0.5)
s = q @ k.transpose(-1,-2) / math.sqrt(2)
m = torch.ones(3,3).tril().bool()
s = s.masked_fill(~m, float('-inf'))
o = torch.softmax(s, -1) @ v; (o*c).sum().backward()
out["att_o"]=o; out["att_dq"]=q.grad; out["att_dk"]=k.grad; out["att_dv"]=v.grad
for k_, t in out.items():
    print(f'    {{"{k_}", {{{fmt(t)}}}}},')
