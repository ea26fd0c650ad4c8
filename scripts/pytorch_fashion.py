#!/usr/bin/python3
"""Reference run for examples/fashion_mnist.cpp with PyTorch (Debian's python3-torch).

Same network (784-256-128-10 ReLU, torch's default nn.Linear initialisation), same loss
(softmax cross-entropy, mean over the batch), same data scaling (pixels / 255), same optimiser
settings (default: Adam, lr 1e-3, batch 128, 5 epochs — 10 with --model cnn —, cosine schedule,
shuffled every epoch), one thread by
default. Not a dependency of the build or the tests:  apt-get install -y python3-torch

    /usr/bin/python3 scripts/pytorch_fashion.py [--epochs 5|10] [--batch 128] [--lr 1e-3]
        [--optimizer adam|adamw|sgd|momentum] [--hidden 256,128] [--seed 42] [--threads 1]
        [--precision float|double] [--data /usr/share/datasets/fashion-mnist] [--model mlp|cnn]

--model cnn is examples/fashion_cnn.cpp's network (issue 12): conv(1→32, 3×3, pad 1)–ReLU–maxpool 2
→ conv(32→64, 3×3, pad 1)–ReLU–maxpool 2 → flatten → linear 3136→128–ReLU → linear 128→10;
it also prints the mean training-step time per epoch.
"""
import argparse
import gzip
import os
import struct
import time

import numpy as np
import torch


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: size does not match the header")
    return arr.reshape(dims)


def load(data_dir, prefix):
    def find(stem):
        for ext in (".gz", ""):
            p = os.path.join(data_dir, stem + ext)
            if os.path.exists(p):
                return p
        raise SystemExit(f"{stem} not found in {data_dir}: apt-get install dataset-fashion-mnist")
    x = read_idx(find(f"{prefix}-images-idx3-ubyte")).reshape(-1, 784)
    y = read_idx(find(f"{prefix}-labels-idx1-ubyte"))
    return torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=None,
                    help="default: 5 for the MLP, 10 for the CNN (the demos' defaults)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--optimizer", default="adam", choices=["sgd", "momentum", "adam", "adamw"])
    ap.add_argument("--hidden", default="256,128")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", default="float", choices=["float", "double"])
    ap.add_argument("--schedule", default="cosine", choices=["none", "cosine"],
                    help="cosine: CosineAnnealingLR(T_max=epochs) stepped after each epoch, as the demo's default")
    ap.add_argument("--model", default="mlp", choices=["mlp", "cnn"])
    ap.add_argument("--data", default=os.environ.get("TAPEGRAD_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
    a = ap.parse_args()
    if a.epochs is None:
        a.epochs = 10 if a.model == "cnn" else 5

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    dtype = torch.float32 if a.precision == "float" else torch.float64
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    xte_f = xte.to(dtype) / 255

    sizes = [784] + [int(h) for h in a.hidden.split(",") if h] + [10]
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i + 2 < len(sizes):
            layers.append(torch.nn.ReLU())
    if a.model == "cnn":
        sizes = ["cnn"]
        layers = [torch.nn.Unflatten(1, (1, 28, 28)),
                  torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                  torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                  torch.nn.Flatten(), torch.nn.Linear(3136, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)]
    net = torch.nn.Sequential(*layers).to(dtype)
    params = net.parameters()
    if a.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=a.lr or 0.1)
    elif a.optimizer == "momentum":
        opt = torch.optim.SGD(params, lr=a.lr or 0.05, momentum=0.9, nesterov=True)
    elif a.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=a.lr or 1e-3)
    else:
        opt = torch.optim.Adam(params, lr=a.lr or 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs) if a.schedule == "cosine" else None

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), network {'-'.join(map(str, sizes))} relu, "
          f"({sum(p.numel() for p in net.parameters())} parameters), {a.optimizer} lr {opt.param_groups[0]['lr']} ({a.schedule} schedule), batch {a.batch}, seed {a.seed}, {a.precision}")
    n = xtr.shape[0]
    total = 0.0
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        loss_sum, correct = 0.0, 0
        net.train()
        for b0 in range(0, n, a.batch):
            idx = perm[b0:b0 + a.batch]
            x = xtr[idx].to(dtype) / 255
            y = ytr[idx]
            logits = net(x)
            loss = loss_fn(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
        dt = time.perf_counter() - t0
        total += dt
        if sched is not None:
            sched.step()
        net.eval()
        with torch.no_grad():
            logits = net(xte_f)
            test_loss = loss_fn(logits, yte).item()
            test_acc = (logits.argmax(1) == yte).float().mean().item()
        print(f"epoch {epoch}/{a.epochs}  train loss {loss_sum / n:.4f}  train acc {100 * correct / n:.2f}%  "
              f"test loss {test_loss:.4f}  test acc {100 * test_acc:.2f}%  {dt:.1f}s ({n / dt:.0f} samples/s, "
              f"{1000 * dt / ((n + a.batch - 1) // a.batch):.1f} ms/step)")
    print(f"summary: final test accuracy {100 * test_acc:.2f}%, training time {total:.1f}s")


if __name__ == "__main__":
    main()
