#!/usr/bin/python3
"""Writes tests/reference/gpt_lockstep.tgc and gpt_lockstep_tied.tgc: the lockstep fixtures of
tests/test_nn_transformer.cpp ("a GPT trained 50 steps of AdamW matches PyTorch's losses").

Run by hand with Debian's /usr/bin/python3 and python3-torch 1.13, from anywhere:
    /usr/bin/python3 tests/reference/gpt_lockstep.py
The test reads the committed files; it needs no Python.

The model is nanoGPT's GPT (pre-LN blocks, tanh-GELU, causal softmax attention, biases as
torch.nn.Linear / LayerNorm; lm_head without bias), in float64: vocab 20, block 16, 2 layers,
2 heads, 32 dims; once with its own lm_head and once tied to wte. The recipe (the C++ test runs
the same): AdamW (betas 0.9, 0.99; eps 1e-8) with nanoGPT's two groups (weight_decay 0.1 on
every parameter of dim >= 2, 0 on the others), nanoGPT's get_lr (lr 3e-3, warmup_iters 5,
lr_decay_iters 50, min_lr 3e-4) stepped per iteration, clip_grad_norm_(1.0), batches of 4
windows of 16 tokens at random offsets of a fixed token sequence, loss F.cross_entropy over
(B*T, V).

File format: tapegrad's checkpoint format (nn/checkpoint.hpp, version 1), written here with
struct and zlib.crc32: the initial state_dict under its keys (f64; a vector (n) as 1xn, a
matrix as stored by torch: Linear weights out x in), plus
    lockstep/config   u64  vocab, block, layers, heads, embd, batch, tied
    lockstep/idx      f64  50 x (4*16): each step's input windows, row-major (B, T)
    lockstep/targets  f64  50 x (4*16): the next tokens
    lockstep/losses   f64  1 x 50: the loss of each step, before its update
"""
import math
import os
import struct
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
V, BLOCK, L, H, C, B, T, STEPS = 20, 16, 2, 2, 32, 4, 16, 50
LR, WARMUP, DECAY, MIN_LR, WD = 3e-3, 5, 50, 3e-4, 0.1


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(C)
        self.attn = nn.Module()
        self.attn.c_attn = nn.Linear(C, 3 * C)
        self.attn.c_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(C, 4 * C)
        self.mlp.c_proj = nn.Linear(4 * C, C)

    def attention(self, x):
        b, t, c = x.shape
        q, k, v = self.attn.c_attn(x).split(C, dim=2)
        q, k, v = (z.view(b, t, H, c // H).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(c // H)
        mask = torch.ones(t, t).tril().bool()
        att = torch.softmax(att.masked_fill(~mask, float("-inf")), dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        return self.attn.c_proj(y)

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.mlp.c_proj(F.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, tied):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(wte=nn.Embedding(V, C), wpe=nn.Embedding(BLOCK, C),
                                              h=nn.ModuleList([Block() for _ in range(L)]), ln_f=nn.LayerNorm(C)))
        self.lm_head = nn.Linear(C, V, bias=False)
        if tied:
            self.lm_head.weight = self.transformer.wte.weight
        # nanoGPT's init (normal 0.02), with non-trivial biases and LayerNorm parameters so that
        # the importer's mapping of every tensor is tested.
        for name, p in self.named_parameters():
            with torch.no_grad():
                if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                    p.copy_(1 + 0.1 * torch.randn_like(p))
                else:
                    p.copy_(0.02 * torch.randn_like(p) if p.dim() >= 2 else 0.05 * torch.randn_like(p))

    def forward(self, idx):
        t = idx.shape[1]
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(t))
        for blk in self.transformer.h:
            x = blk(x)
        return self.lm_head(self.transformer.ln_f(x))


def get_lr(it):
    if it < WARMUP:
        return LR * (it + 1) / (WARMUP + 1)
    if it > DECAY:
        return MIN_LR
    r = (it - WARMUP) / (DECAY - WARMUP)
    return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * r)) * (LR - MIN_LR)


def entry(name, kind, rows, cols, data):
    n = name.encode()
    return struct.pack("<IIQQ", len(n), kind, rows, cols) + n + data


def f64(name, t):
    t = t.detach().to(torch.float64).contiguous()
    rows, cols = (1, t.numel()) if t.dim() <= 1 else (t.shape[0], t[0].numel())
    return entry(name, 2, rows, cols, struct.pack(f"<{t.numel()}d", *t.reshape(-1).tolist()))


def write_archive(path, entries):
    payload = b"".join(entries)
    head = b"TGCKPT\r\n" + struct.pack("<IIQI", 1, len(entries), len(payload), zlib.crc32(payload))
    head += struct.pack("<I", zlib.crc32(head))
    with open(path, "wb") as f:
        f.write(head + payload)


def run(tied, path):
    torch.manual_seed(1234)
    # a token sequence with structure to learn: x[i+1] = (3 x[i] + 1 + noise) mod V
    g = torch.Generator().manual_seed(5)
    seq = [0]
    for _ in range(499):
        seq.append((3 * seq[-1] + 1 + int(torch.randint(0, 2, (1,), generator=g))) % V)
    data = torch.tensor(seq)
    model = GPT(tied)
    sd = model.state_dict()
    entries = [f64(k, v) for k, v in sd.items()]
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.99), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: get_lr(it) / LR)
    idxs, tgts, losses = [], [], []
    for step in range(STEPS):
        off = torch.randint(0, len(seq) - T - 1, (B,), generator=g)
        x = torch.stack([data[o:o + T] for o in off])
        y = torch.stack([data[o + 1:o + T + 1] for o in off])
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, V), y.view(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        idxs.append(x.reshape(-1))
        tgts.append(y.reshape(-1))
        losses.append(loss.item())
    cfg = [V, BLOCK, L, H, C, B, int(tied)]
    entries.append(entry("lockstep/config", 3, 1, len(cfg), struct.pack(f"<{len(cfg)}Q", *cfg)))
    entries.append(f64("lockstep/idx", torch.stack(idxs)))
    entries.append(f64("lockstep/targets", torch.stack(tgts)))
    entries.append(f64("lockstep/losses", torch.tensor(losses)))
    write_archive(path, entries)
    print(path, os.path.getsize(path), "bytes; losses", losses[0], "->", losses[-1])


here = os.path.dirname(os.path.abspath(__file__))
run(False, os.path.join(here, "gpt_lockstep.tgc"))
run(True, os.path.join(here, "gpt_lockstep_tied.tgc"))
