#!/usr/bin/python3
"""The model and recipe of examples/char_gpt in PyTorch 1.13 (issue 13's reference side).

Run with Debian's python (where python3-torch lives):

    /usr/bin/python3 scripts/pytorch_gpt.py [--iters 2000] [--seed 1337] [--threads 1]
        [--eval-interval 250] [--eval-batches 50] [--full-val 1] [--json FILE]
    /usr/bin/python3 scripts/pytorch_gpt.py --bench-steps 30 [--threads N] --json FILE

Model: nanoGPT's GPT without dropout: token + position embeddings (nn.Embedding, N(0, 1)),
4 pre-LayerNorm blocks (x + attn(ln_1(x)), x + mlp(ln_2(x))), causal self-attention composed
from matmul + masked_fill(-inf) + softmax (PyTorch 1.13 has no scaled_dot_product_attention),
one Linear C→3C for q, k, v, heads of C/H, output Linear C→C, MLP Linear C→4C, tanh-GELU,
Linear 4C→C, final LayerNorm, lm_head Linear C→V without bias; every Linear and LayerNorm with
torch's default initialisation and biases (830,464 parameters for the fortunes vocabulary of 113).

Recipe (examples/char_gpt's, nanoGPT's config/train_shakespeare_char.py): AdamW (lr 1e-3,
betas (0.9, 0.99), eps 1e-8) in two parameter groups, weight decay 0.1 on the weights of the
nn.Linear modules and 0 on everything else (biases, LayerNorms, embedding tables); nanoGPT's
get_lr: linear warm-up over 100 iterations, cosine decay to 1e-4 at --lr-decay-iters (default
--iters); clip_grad_norm_(1.0) before each step; batch 12 windows of 64 characters; 2000
iterations, float32.

Batches: the window offsets are drawn by a port of tapegrad's nn::Rng (xoshiro256** seeded by
splitmix64, Lemire's bounded integers) with char_gpt's seeds, so that both sides see the same
training batches and the same evaluation batches; only the initial weights (torch's generator,
seeded by --seed) differ.

Data and evaluation as examples/char_gpt: the fortunes files without .dat/.u8 sorted by name,
concatenated, decoded as UTF-8; vocabulary the sorted distinct characters; first 90 % train;
every --eval-interval steps the mean loss of --eval-batches random batches of each split; at
the end the loss over every non-overlapping 64-character window of the validation split.

Prints the estimates every --eval-interval steps and the mean ms per training step
(evaluations excluded). --bench-steps N: only times N training steps after 5 warm-up steps
(the median of the per-step times) and reports peak RSS.
"""
import argparse
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


M64 = (1 << 64) - 1


class Rng:
    """tapegrad::nn::Rng (nn/random.hpp): xoshiro256** seeded through splitmix64; below(n) is
    Lemire's multiply-and-reject. The same seed gives the same stream as the C++ class."""

    def __init__(self, seed):
        x = seed & M64
        self.s = []
        for _ in range(4):
            x = (x + 0x9e3779b97f4a7c15) & M64
            z = x
            z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
            z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    def next(self):
        s = self.s
        result = (self._rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def below(self, n):
        m = self.next() * n
        lo = m & M64
        if lo < n:
            threshold = ((1 << 64) - n) % n
            while lo < threshold:
                m = self.next() * n
                lo = m & M64
        return m >> 64


def load_text(data_dir, text_file):
    if text_file:
        with open(text_file, 'rb') as f:
            return f.read().decode('utf-8')
    if not os.path.isdir(data_dir):
        sys.exit(f'pytorch_gpt.py: the fortunes directory {data_dir} does not exist (apt-get install fortunes)')
    names = sorted(n for n in os.listdir(data_dir)
                   if not n.endswith(('.dat', '.u8')) and os.path.isfile(os.path.join(data_dir, n)))
    # sorted by the names' bytes, as std::sort on std::filesystem::path in char_gpt
    names.sort(key=lambda n: n.encode())
    parts = []
    for n in names:
        with open(os.path.join(data_dir, n), 'rb') as f:
            parts.append(f.read().decode('utf-8'))
    return ''.join(parts)


class CausalSelfAttention(nn.Module):
    def __init__(self, c, h, block):
        super().__init__()
        self.c_attn = nn.Linear(c, 3 * c)
        self.c_proj = nn.Linear(c, c)
        self.h = h
        self.register_buffer('mask', torch.tril(torch.ones(block, block, dtype=torch.bool)).view(1, 1, block, block))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.h, C // self.h).transpose(1, 2)
        k = k.view(B, T, self.h, C // self.h).transpose(1, 2)
        v = v.view(B, T, self.h, C // self.h).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(~self.mask[:, :, :T, :T], float('-inf'))
        att = F.softmax(att, dim=-1)
        y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class Block(nn.Module):
    def __init__(self, c, h, block):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c)
        self.attn = CausalSelfAttention(c, h, block)
        self.ln_2 = nn.LayerNorm(c)
        self.c_fc = nn.Linear(c, 4 * c)
        self.c_proj = nn.Linear(4 * c, c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate='tanh'))


class GPT(nn.Module):
    def __init__(self, vocab, block, n_layer, n_head, n_embd):
        super().__init__()
        self.wte = nn.Embedding(vocab, n_embd)
        self.wpe = nn.Embedding(block, n_embd)
        self.h = nn.ModuleList([Block(n_embd, n_head, block) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)

    def forward(self, idx, targets=None):
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T, dtype=torch.long))
        for b in self.h:
            x = b(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--iters', type=int, default=2000)
    ap.add_argument('--seed', type=int, default=1337)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--data', default='/usr/share/games/fortunes')
    ap.add_argument('--text', default='')
    ap.add_argument('--batch', type=int, default=12)
    ap.add_argument('--block', type=int, default=64)
    ap.add_argument('--layers', type=int, default=4)
    ap.add_argument('--heads', type=int, default=4)
    ap.add_argument('--embd', type=int, default=128)
    ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--min-lr', type=float, default=1e-4)
    ap.add_argument('--beta2', type=float, default=0.99)
    ap.add_argument('--warmup-iters', type=int, default=100)
    ap.add_argument('--lr-decay-iters', type=int, default=0, help='0: max(--iters, --warmup-iters)')
    ap.add_argument('--weight-decay', type=float, default=0.1)
    ap.add_argument('--grad-clip', type=float, default=1.0, help='0: no clipping')
    ap.add_argument('--eval-interval', type=int, default=250)
    ap.add_argument('--eval-batches', type=int, default=50)
    ap.add_argument('--full-val', type=int, default=1)
    ap.add_argument('--bench-steps', type=int, default=0)
    ap.add_argument('--json', default='')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    text = load_text(a.data, a.text)
    vocab = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(vocab)}
    data = torch.tensor([stoi[ch] for ch in text], dtype=torch.long)
    n = int(0.9 * len(data))
    train, val = data[:n], data[n:]

    model = GPT(len(vocab), a.block, a.layers, a.heads, a.embd)
    params = sum(p.numel() for p in model.parameters())
    decay = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    decay_ids = {id(p) for p in decay}
    no_decay = [p for p in model.parameters() if id(p) not in decay_ids]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': a.weight_decay},
                             {'params': no_decay, 'weight_decay': 0.0}],
                            lr=a.lr, betas=(0.9, a.beta2), eps=1e-8)
    lr_decay_iters = a.lr_decay_iters or max(a.iters, a.warmup_iters)
    if lr_decay_iters < a.warmup_iters:
        sys.exit(f'pytorch_gpt.py: --lr-decay-iters {lr_decay_iters} is below --warmup-iters {a.warmup_iters}')

    def get_lr(it):  # nanoGPT's
        if it < a.warmup_iters:
            return a.lr * (it + 1) / (a.warmup_iters + 1)
        if it > lr_decay_iters:
            return a.min_lr
        r = (it - a.warmup_iters) / (lr_decay_iters - a.warmup_iters) if lr_decay_iters > a.warmup_iters else 1.0
        return a.min_lr + 0.5 * (1.0 + math.cos(math.pi * r)) * (a.lr - a.min_lr)

    def get_batch(split, rng):  # char_gpt's get_batch: offsets uniform in [0, len - block)
        ix = [rng.below(len(split) - a.block) for _ in range(a.batch)]
        x = torch.stack([split[i:i + a.block] for i in ix])
        y = torch.stack([split[i + 1:i + 1 + a.block] for i in ix])
        return x, y

    @torch.no_grad()
    def estimate(split, salt):  # char_gpt's estimate_loss, with its generator seeds
        rng = Rng(a.seed * 0x9e3779b97f4a7c15 + salt)
        model.eval()
        s = sum(model(*get_batch(split, rng)).item() for _ in range(a.eval_batches))
        model.train()
        return s / a.eval_batches

    @torch.no_grad()
    def full_validation():
        windows = (len(val) - 1) // a.block
        s = 0.0
        for w0 in range(0, windows, 64):
            m = min(64, windows - w0)
            x = torch.stack([val[(w0 + b) * a.block:(w0 + b + 1) * a.block] for b in range(m)])
            y = torch.stack([val[(w0 + b) * a.block + 1:(w0 + b + 1) * a.block + 1] for b in range(m)])
            s += model(x, y).item() * m
        return s / windows, windows

    train_rng = Rng(a.seed ^ 0xba7c4e5)
    it = 0

    def step():  # iteration `it`: nanoGPT's order (lr, forward, backward, clip, step)
        nonlocal it
        for g in opt.param_groups:
            g['lr'] = get_lr(it)
        x, y = get_batch(train, train_rng)
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
        opt.step()
        it += 1
        return loss.item()

    out = {'threads': a.threads, 'parameters': params}
    if a.bench_steps:
        for _ in range(5):
            step()
        times, cpu = [], []
        for _ in range(a.bench_steps):
            t0, c0 = time.perf_counter(), time.process_time()
            step()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        times.sort()
        cpu.sort()
        out['gpt_step_cpu_ms'] = 1e3 * cpu[len(cpu) // 2]
        out['gpt_step_ms'] = 1e3 * times[len(times) // 2]
        out['gpt_step_ms_min'] = 1e3 * times[0]
        out['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # the keys of bench/run --json (tapegrad_bench --gpt merges them)
        out[f'gpt_step_ms_pytorch_{a.threads}t'] = out['gpt_step_ms']
        out[f'gpt_step_cpu_ms_pytorch_{a.threads}t'] = out['gpt_step_cpu_ms']
        out['gpt_peak_rss_mb_pytorch'] = out['peak_rss_mb']
        print(f'PyTorch {torch.__version__} GPT step, {a.threads} thread(s): median {out["gpt_step_ms"]:.1f} ms '
              f'(min {out["gpt_step_ms_min"]:.1f}; CPU {out["gpt_step_cpu_ms"]:.1f}) over {a.bench_steps} steps; peak RSS {out["peak_rss_mb"]:.0f} MB')
    else:
        print(f'text: {len(text)} characters, vocabulary {len(vocab)}; {len(train)} train / {len(val)} validation')
        print(f'GPT: {a.layers} layers, {a.heads} heads, {a.embd} dims, {params} parameters; batch {a.batch}x{a.block}; '
              f'{a.iters} iterations; seed {a.seed}; {a.threads} thread(s)')
        print(f'AdamW lr {a.lr} betas (0.9, {a.beta2}) weight decay {a.weight_decay} on {len(decay)} Linear weights '
              f'(not on {len(no_decay)} others); warm-up {a.warmup_iters} iterations, cosine to {a.min_lr} at '
              f'iteration {lr_decay_iters}; gradient clipping {a.grad_clip if a.grad_clip > 0 else "off"}')
        val_losses = {}
        train_s = 0.0

        def evaluate():
            tr = estimate(train, 2 * it)
            va = estimate(val, 2 * it + 1)
            val_losses[it] = va
            print(f'step {it:5}  train loss {tr:.4f}  val loss {va:.4f}  ({a.eval_batches} batches each)  '
                  f'{1e3 * train_s / max(it, 1):.1f} ms/step', flush=True)

        if a.eval_batches:
            evaluate()
        while it < a.iters:
            t0 = time.perf_counter()
            step()
            train_s += time.perf_counter() - t0
            if a.eval_batches and (it % a.eval_interval == 0 or it == a.iters):
                evaluate()
        out.update({f'val_loss_{k}': v for k, v in val_losses.items()})
        out['ms_per_step'] = 1e3 * train_s / max(a.iters, 1)
        if a.full_val:
            v, windows = full_validation()
            out['val_loss_full'] = v
            out[f'gpt_val_loss_{a.iters}_pytorch'] = v
            print(f'validation loss over all {windows} windows of {a.block} characters: {v:.4f}')
        out['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(out, f, indent=1)


if __name__ == '__main__':
    main()
