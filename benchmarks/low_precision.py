"""How far INNA in bf16/fp16 drifts from the same run in fp32, with and without ``state_dtype=torch.float32``.

An MLP (784-256-10) trains on Fashion-MNIST (the Debian package's IDX files; scikit-learn's digits if absent)
with batch 32 and the paper's step decay, from the same initial weights and batches in every precision. The
model, its gradients and INNA's update run in the given dtype; the table reports the relative distance of the
model's final weights (the low-precision parameters themselves, not INNA's master copy) from the fp32 run, and
the final training loss and test accuracy of those weights (evaluated in fp32).

    python benchmarks/low_precision.py              # 3 epochs of Fashion-MNIST
    python benchmarks/low_precision.py --epochs 1
"""

from __future__ import annotations

import argparse
import gzip
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from inna import INNA, INNAStabilityWarning, PowerDecayLR

FASHION = Path("/usr/share/datasets/fashion-mnist")


def load():
    def idx(name: str, offset: int) -> np.ndarray:
        with gzip.open(FASHION / name) as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)

    if (FASHION / "train-images-idx3-ubyte.gz").exists():
        x_tr = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 784) / 255.0
        x_te = idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784) / 255.0
        y_tr, y_te = idx("train-labels-idx1-ubyte.gz", 8), idx("t10k-labels-idx1-ubyte.gz", 8)
        name = "Fashion-MNIST"
    else:
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        x = np.pad(x / 16.0, ((0, 0), (0, 720)))
        x_tr, x_te, y_tr, y_te, name = x[:1400], x[1400:], y[:1400], y[1400:], "digits (Fashion-MNIST absent)"
    t = lambda a, dt: torch.tensor(np.asarray(a), dtype=dt)  # noqa: E731
    return name, t(x_tr, torch.float32), t(y_tr, torch.long), t(x_te, torch.float32), t(y_te, torch.long)


def run(dtype, state_dtype, data, epochs: int, lr: float):
    _, x_tr, y_tr, x_te, y_te = data
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)).to(dtype)
    opt = INNA(model.parameters(), lr=lr, state_dtype=state_dtype)
    sched = PowerDecayLR(opt)
    gen = torch.Generator().manual_seed(0)
    loss_fn = nn.CrossEntropyLoss()
    xs = x_tr.to(dtype)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(xs), generator=gen)
        for i in range(0, len(xs), 32):
            idx = perm[i : i + 32]
            opt.zero_grad()
            loss_fn(model(xs[idx]).float(), y_tr[idx]).backward()
            opt.step()
            sched.step()
    secs = time.perf_counter() - t0
    weights = [p.detach() for p in model.parameters()]  # what the model holds (with a master copy: its rounding)
    flat = torch.cat([w.float().reshape(-1) for w in weights])
    m32 = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    with torch.no_grad():
        for q, w in zip(m32.parameters(), weights):
            q.copy_(w.float())
        loss = loss_fn(m32(x_tr), y_tr).item()
        acc = (m32(x_te).argmax(1) == y_te).float().mean().item()
    return flat, loss, acc, secs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.1, help="gamma_0 (decayed as gamma_0 / sqrt(k + 1))")
    args = parser.parse_args()
    warnings.simplefilter("ignore", INNAStabilityWarning)
    data = load()
    steps = args.epochs * -(-len(data[1]) // 32)
    print(f"{data[0]}, MLP 784-256-10, batch 32, {args.epochs} epochs ({steps} steps), INNA(lr={args.lr}/sqrt(k+1))")
    configs = [
        ("float32", torch.float32, None),
        ("bfloat16", torch.bfloat16, None),
        ("bfloat16, state_dtype=float32", torch.bfloat16, torch.float32),
        ("float16", torch.float16, None),
        ("float16, state_dtype=float32", torch.float16, torch.float32),
    ]
    base = None
    print(f"| {'parameters':<30} | {'drift from fp32':>15} | {'train loss':>10} | {'test acc':>8} | {'time (s)':>8} |")
    print(f"|{'-' * 32}|{'-' * 17}|{'-' * 12}|{'-' * 10}|{'-' * 10}|")
    for name, dtype, state_dtype in configs:
        flat, loss, acc, secs = run(dtype, state_dtype, data, args.epochs, args.lr)
        base = flat if base is None else base
        drift = ((flat - base).norm() / base.norm()).item()
        print(f"| {name:<30} | {100 * drift:>14.2f}% | {loss:>10.4f} | {acc:>8.4f} | {secs:>8.1f} |", flush=True)


if __name__ == "__main__":
    main()
