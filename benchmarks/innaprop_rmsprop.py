r"""Does INNAprop track RMSprop? Trajectories of INNAprop(α, β) and of RMSprop at lr γβ, compared step by step.

For a constant step γ and no weight decay, INNAprop's phase φ starts at 0 and obeys
φ ← (1 − γα)φ + γ(1 − αβ)u, θ ← θ − γβu − γφ, with u = g/D the bias-corrected RMSprop scaling (torch's Adam with
β₁ = 0 computes the same u). So INNAprop is RMSprop at lr γβ plus γφ, and with a steady u the extra step relative to
RMSprop's is

    R(T) = (1 − αβ)/(αβ) · (1 − (1 − γα)^T)          (0 when αβ = 1: then INNAprop *is* RMSprop at lr γβ).

This script trains both, and INNAprop(1/β, β) as the control (RMSprop exactly, but for rounding), from the same
initial weights on the same mini-batches (seed by seed) on MNIST-1D with the 1-D CNN of ``inna bench``, and reports
at each checkpoint T the training loss of each and the parameter distance ‖θ_INNAprop − θ_RMSprop‖ /
‖θ_RMSprop − θ₀‖, next to γαT and R(T). One torch thread; the numbers depend only on the
arguments (and the machine's torch kernels).

    python benchmarks/innaprop_rmsprop.py --steps 768,3000,10000 --seeds 3 --json docs/results/innaprop-rmsprop.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import inna
from inna.bench.config import derive_seed, init_seed
from inna.bench.data import load_dataset
from inna.bench.models import build_model


def predicted(alpha: float, beta: float, lr: float, steps: int) -> float:
    """R(T): INNAprop's extra step over RMSprop's, relative, for a steady scaled gradient (module docstring)."""
    return (1 - alpha * beta) / (alpha * beta) * (1 - (1 - lr * alpha) ** steps)


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def train(name: str, seed: int, steps: list[int], lr: float, beta: float, alpha: float | None, sigma: float) -> dict:
    """One run: INNAprop(alpha, beta) at lr, or (alpha None) RMSprop with INNAprop's scaling at lr·beta."""
    data = load_dataset("mnist1d")
    x, y = data.x_train, data.y_train
    torch.manual_seed(init_seed(seed))
    model = build_model("cnn1d", data.input_shape, data.num_classes, 1.0)
    if alpha is None:
        opt = torch.optim.Adam(model.parameters(), lr=lr * beta, betas=(0.0, sigma), eps=1e-8)
    else:
        opt = inna.INNAprop(model.parameters(), lr=lr, alpha=alpha, beta=beta, sigma=sigma, weight_decay=0.0)
    theta0 = _flat(model)
    n, batch = len(y), 32
    per_epoch = math.ceil(n / batch)
    out: dict = {"name": name, "seed": seed, "theta0": theta0, "at": {}}
    order = torch.empty(0, dtype=torch.long)
    for k in range(max(steps)):
        if k % per_epoch == 0:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, k // per_epoch, 1)))
        idx = order[(k % per_epoch) * batch : (k % per_epoch + 1) * batch]
        model.train()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if k + 1 in steps:
            model.eval()
            with torch.inference_mode():
                full = float(F.cross_entropy(model(x), y))
            out["at"][k + 1] = {"train_loss": full, "theta": _flat(model)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", default="768,3000,10000", help="checkpoints T (comma-separated)")
    p.add_argument("--alphas", default="0.1,1,2", help="INNAprop's α values (comma-separated)")
    p.add_argument("--beta", type=float, default=0.9)
    p.add_argument("--lr", type=float, default=3e-3, help="INNAprop's constant γ (RMSprop gets γβ)")
    p.add_argument("--sigma", type=float, default=0.99)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--json", type=Path, help="write the table here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    steps = sorted(int(s) for s in args.steps.split(","))
    # α = 1/β is the control: INNAprop is then RMSprop exactly, so its distance is the rounding's amplification alone
    alphas = [float(a) for a in args.alphas.split(",")] + [1 / args.beta]
    t0 = time.perf_counter()
    runs: dict[tuple[str, int], dict] = {}
    for seed in range(args.seeds):
        runs["rmsprop", seed] = train("RMSprop", seed, steps, args.lr, args.beta, None, args.sigma)
        for a in alphas:
            runs[f"{a:g}", seed] = train(
                f"INNAprop({a:g},{args.beta:g})", seed, steps, args.lr, args.beta, a, args.sigma
            )
        print(f"seed {seed} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    rows = []
    for a in alphas:
        for t in steps:
            dist, dloss = [], []
            for seed in range(args.seeds):
                i, r = runs[f"{a:g}", seed], runs["rmsprop", seed]
                ti, tr = i["at"][t]["theta"], r["at"][t]["theta"]
                dist.append(float((ti - tr).norm() / (tr - r["theta0"]).norm()))
                dloss.append(i["at"][t]["train_loss"] - r["at"][t]["train_loss"])
            rms = [runs["rmsprop", s]["at"][t]["train_loss"] for s in range(args.seeds)]
            rows.append({"alpha": a, "beta": args.beta, "steps": t, "gamma_alpha_T": args.lr * a * t,
                         "R": predicted(a, args.beta, args.lr, t), "distance": statistics.fmean(dist),
                         "distances": dist, "delta_loss": statistics.fmean(dloss), "delta_losses": dloss,
                         "rmsprop_loss": statistics.fmean(rms)})  # fmt: skip
    print("| α | T | γαT | R(T) | ‖θ_I − θ_R‖ / ‖θ_R − θ₀‖ (mean over seeds) | Δ train loss (INNAprop − RMSprop) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['alpha']:g} | {r['steps']:,} | {r['gamma_alpha_T']:.2f} | {r['R']:+.2f} | {r['distance']:.3f} | "
              f"{r['delta_loss']:+.4f} ({', '.join(f'{d:+.4f}' for d in r['delta_losses'])}) |")  # fmt: skip
    if args.json:
        meta = {
            "command": "python benchmarks/innaprop_rmsprop.py " + " ".join(sys.argv[1:]),
            "torch": torch.__version__,
            "seconds": time.perf_counter() - t0,
            "lr": args.lr,
            "sigma": args.sigma,
            "seeds": args.seeds,
        }
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
