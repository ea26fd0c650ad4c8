#!/usr/bin/env python3
"""PyTorch side of tapegrad's benchmarks (run by bench/run; never a build or test dependency).

The same workloads as bench/bench_main.cpp, on the same data and initial weights:
  * MLP 784-256-128-10, ReLU, softmax cross-entropy, batch 128, float32, plain SGD (lr 0.05)
  * one epoch over the 60,000 training images in order (last batch 96)
  * a chain of 30,000 tiny ops, x <- tanh(x.w + b) on 1x1 tensors, forward + backward
  * the losses of the first N steps, which bench_main compares with tapegrad's

Images are kept as bytes and each batch converted to float (pixel/255) when used, exactly as
the C++ side does, so that peak RSS compares the engines rather than two data layouts.

Thread counts must be fixed before torch is imported: bench/run sets OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS and MKL_NUM_THREADS; this script also calls torch.set_num_threads.
Writes a flat JSON object (numbers, nulls, one list) to --out.
"""
import argparse
import gzip
import json
import math
import os
import resource
import statistics
import struct
import sys
import time

import numpy as np

SIZES = [784, 256, 128, 10]
BATCH = 128
LR = 0.05
TINY_STEPS = 10000  # 3 ops each


def splitmix64(seed, n, start=0):
    """Elements start..start+n-1 of stream `seed`: mix(seed + (i+1)*gamma), as bench/data.cpp."""
    with np.errstate(over="ignore"):
        i = np.arange(start + 1, start + n + 1, dtype=np.uint64)
        z = np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def init_params():
    """Layer l: W (in x out) and b (out), uniform in +-1/sqrt(in), streams 1000+2l, 1001+2l."""
    params = []
    for l in range(len(SIZES) - 1):
        fan_in, fan_out = SIZES[l], SIZES[l + 1]
        bound = 1.0 / math.sqrt(float(fan_in))

        def draw(seed, n):
            u = (splitmix64(seed, n) >> np.uint64(40)).astype(np.float64) * 2.0**-24
            return ((2.0 * u - 1.0) * bound).astype(np.float32)

        w = draw(1000 + 2 * l, fan_in * fan_out).reshape(fan_in, fan_out)
        b = draw(1001 + 2 * l, fan_out)
        params.append((w, b))
    return params


def read_idx_gz(path):
    """An IDX file of unsigned bytes, inflated straight into one writable array."""
    with gzip.open(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 8 or not 1 <= head[3] <= 3:
            raise ValueError(f"{path}: not an IDX file of unsigned bytes")
        dims = struct.unpack(">" + "I" * head[3], f.read(4 * head[3]))
        arr = np.empty(int(np.prod(dims)), dtype=np.uint8)
        if f.readinto(memoryview(arr)) != arr.size:
            raise ValueError(f"{path}: truncated")
    return arr.reshape(dims)


def synthetic(n=60000, dim=784):
    """bench/data.cpp's synthetic_dataset, bit for bit."""
    labels = (splitmix64(7, n) % np.uint64(10)).astype(np.uint8)
    images = np.empty((n, dim), dtype=np.uint8)
    band_of = np.arange(dim) * 10 // dim
    for r in range(0, n, 1000):  # in chunks: the 64-bit temporaries stay small
        m = min(1000, n - r)
        noise = (splitmix64(11, m * dim, r * dim) & np.uint64(127)).astype(np.uint16).reshape(m, dim)
        band = band_of[None, :] == labels[r : r + m, None].astype(np.int64)
        images[r : r + m] = (noise + 128 * band).astype(np.uint8)
    return images, labels


def load_data(d):
    try:
        x = read_idx_gz(os.path.join(d, "train-images-idx3-ubyte.gz"))
        y = read_idx_gz(os.path.join(d, "train-labels-idx1-ubyte.gz"))
        return x.reshape(x.shape[0], -1), y, True
    except (OSError, ValueError):
        print(f"pytorch_bench: Fashion-MNIST not found in {d}; synthetic data", file=sys.stderr)
        x, y = synthetic()
        return x, y, False


def train_step(F, model, opt, x, y):
    """One optimiser step on cross-entropy: the step every PyTorch row times."""
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def median_step_ms(step, batches, warmup, reps, budget_s=None, min_reps=0):
    """Median wall time (ms) of single steps over the pre-converted batches, after `warmup` steps;
    with a budget, stops after `min_reps` steps once `budget_s` seconds have passed."""
    for k in range(warmup):
        step(*batches[k % len(batches)])
    times = []
    budget_end = None if budget_s is None else time.perf_counter() + budget_s
    for k in range(reps):
        t0 = time.perf_counter()
        step(*batches[k % len(batches)])
        times.append((time.perf_counter() - t0) * 1e3)
        if budget_end is not None and k >= min_reps and time.perf_counter() > budget_end:
            break
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tag", default="", help="suffix for the keys (e.g. passive)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--check-steps", type=int, default=100)
    ap.add_argument("--steps-only", action="store_true", help="only the MLP step timing")
    ap.add_argument("--cnn", action="store_true", help="only issue 12's CNN and LeNet-5 rows (conv)")
    ap.add_argument("--cnn-steps", action="store_true",
                    help="with --cnn: only the step rows (one of bench/run's interleaved rounds)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    suffix = f"_{a.threads}t" + (f"_{a.tag}" if a.tag else "")
    out = {"torch_version": torch.__version__, "threads_pytorch": torch.get_num_threads()}

    images_u8, labels_u8, real = load_data(a.data)
    images = torch.from_numpy(images_u8)
    labels = torch.from_numpy(labels_u8.astype(np.int64))
    n = images.shape[0]
    init = init_params()

    def batch(first, m):
        return images[first : first + m].float().mul_(1.0 / 255.0), labels[first : first + m]

    def make_model():
        layers = []
        for l, (w, b) in enumerate(init):
            lin = torch.nn.Linear(w.shape[0], w.shape[1])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(w.T.copy()))
                lin.bias.copy_(torch.from_numpy(b))
            layers.append(lin)
            if l + 1 < len(init):
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        return model, torch.optim.SGD(model.parameters(), lr=LR)

    def step(model, opt, x, y):
        return train_step(F, model, opt, x, y)

    # ---- conv: issue 12's rows, in a process of their own (its peak RSS is the CNN's) ----
    if a.cnn:
        out.update(cnn_rows(torch, F, a, suffix, images, labels))
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1)
        return
    # ---- end conv ----

    # Losses of the first N steps (compared with tapegrad's by bench_main).
    if not a.steps_only:
        model, opt = make_model()
        nb = n // BATCH
        out["losses"] = [step(model, opt, *batch((s % nb) * BATCH, BATCH)) for s in range(a.check_steps)]

    # MLP step: pre-converted batches, warm-up, then the median of single steps.
    model, opt = make_model()
    batches = [batch(k * BATCH, BATCH) for k in range(16)]
    # At most ~10 s (2 busy-waiting pools on a loaded 2-core machine can take 70 ms a step).
    out["mlp_step_ms_pytorch" + suffix] = median_step_ms(
        lambda x, y: step(model, opt, x, y), batches, warmup=5 if a.quick else 10,
        reps=80 if a.quick else 200, budget_s=2.0 if a.quick else 10.0, min_reps=10 if a.quick else 20)

    if not a.steps_only and not a.quick:
        # One epoch, in order, batch conversion included.
        model, opt = make_model()
        t0 = time.perf_counter()
        total, steps = 0.0, 0
        for first in range(0, n, BATCH):
            total += step(model, opt, *batch(first, min(BATCH, n - first)))
            steps += 1
        out["epoch_s_pytorch" + suffix] = time.perf_counter() - t0
        out["epoch_mean_loss_pytorch" + suffix] = total / steps

    if not a.steps_only and a.threads == 1:
        # 30,000 tiny ops: x <- tanh(x.w + b) on 1x1, forward + backward, per op.
        def chain():
            # w = 1, b = 0 as in bench/tapegrad_side.hpp: no subnormal adjoints.
            x = torch.tensor([[0.5]], requires_grad=True)
            w = torch.tensor([[1.0]], requires_grad=True)
            b = torch.tensor([[0.0]], requires_grad=True)
            t0 = time.perf_counter()
            h = x
            for _ in range(TINY_STEPS):
                h = torch.tanh(h @ w + b)
            h.backward()
            dt = time.perf_counter() - t0
            del h
            return dt * 1e9 / (3 * TINY_STEPS)

        chain()
        out["tiny_ns_per_op_pytorch"] = statistics.median(chain() for _ in range(2 if a.quick else 5))
        out["peak_rss_mb_pytorch"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    if not a.tag:
        # N-D workloads (bench_main.cpp times the same on tapegrad): forward + backward on leaves
        # whose .grad is reset each time, median ms after two warm-up runs.
        def timed(body, reps):
            body()
            body()
            t = []
            for _ in range(reps):
                t0 = time.perf_counter()
                body()
                t.append((time.perf_counter() - t0) * 1e3)
            return statistics.median(t)

        g = torch.Generator().manual_seed(0)

        def leaf(*shape):
            return (torch.rand(*shape, generator=g) * 2 - 1).requires_grad_()

        x, b, c = leaf(64, 128, 256), leaf(128, 1), leaf(1, 256)

        def bcast_reduce():
            x.grad = b.grad = c.grad = None
            (x + b + c).sum().backward()

        out["bcast_reduce_ms_pytorch" + suffix] = timed(bcast_reduce, 5 if a.quick else 21)
        q, k, v = leaf(12, 4, 64, 32), leaf(12, 4, 64, 32), leaf(12, 4, 64, 32)

        def bmm_attention():
            q.grad = k.grad = v.grad = None
            ((q @ k.transpose(-1, -2)) @ v).sum().backward()

        out["bmm_attention_ms_pytorch" + suffix] = timed(bmm_attention, 9 if a.quick else 41)

    out["real_data_pytorch"] = 1 if real else 0
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


# ---- conv: the demo CNN (examples/fashion_cnn.cpp) and LeNet-5, Adam 1e-3, batch 128 ----
def cnn_model(torch, kind):
    nn = torch.nn
    if kind == "lenet":
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))


def cnn_rows(torch, F, a, suffix, images, labels):
    out = {}
    torch.manual_seed(0)
    n = images.shape[0]

    def batch(first, m):
        return images[first : first + m].float().mul_(1.0 / 255.0).view(m, 1, 28, 28), labels[first : first + m]

    def make(kind):
        model = cnn_model(torch, kind)
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(model, opt, x, y):
        return train_step(F, model, opt, x, y)

    if a.threads == 1 and not a.tag and not a.cnn_steps:
        # Peak RSS as bench_main's cnn child: training steps, then 10,000 images in batches of 1000.
        model, opt = make("cnn")
        for k in range(30 if a.quick else 100):
            step(model, opt, *batch((k * BATCH) % (n - BATCH), BATCH))
        model.eval()
        with torch.no_grad():
            for b0 in range(0, min(n, 10000), 1000):
                model(batch(b0, 1000)[0])
        out["cnn_peak_rss_mb_pytorch"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    batches = [batch(k * BATCH, BATCH) for k in range(16)]
    for kind in ("cnn", "lenet"):
        model, opt = make(kind)
        out[f"{kind}_step_ms_pytorch" + suffix] = median_step_ms(
            lambda x, y: step(model, opt, x, y), batches, warmup=3,
            reps=(30 if kind == "cnn" else 100) // (3 if a.quick else 1))

    if not a.tag and not a.cnn_steps:
        # Epoch in order, batch conversion included (--quick: 40 steps, scaled), as bench_main.
        model, opt = make("cnn")
        nb = (n + BATCH - 1) // BATCH
        steps = min(40, nb) if a.quick else nb
        t0 = time.perf_counter()
        for k in range(steps):
            first = k * BATCH
            step(model, opt, *batch(first, min(BATCH, n - first)))
        out[f"cnn_epoch_s_pytorch_{a.threads}t"] = (time.perf_counter() - t0) * nb / steps
    return out
# ---- end conv ----


if __name__ == "__main__":
    main()
