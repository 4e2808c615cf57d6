"""Minimum ``optimizer.step()`` time of INNA's and INNAprop's fused and default paths against fused SGD and AdamW.

Only public APIs, so it runs against any checkout: ``PYTHONPATH=<checkout>/src python benchmarks/step_min.py``
compares two designs of the C loop back to back. Rounds are interleaved (each round steps every contender once);
the minimum is the statistic least disturbed by other work on a shared machine (the median is
``benchmarks/step_time.py``'s). INNA's ratio is to fused SGD with momentum, INNAprop's to fused AdamW (the same
bytes per step).

    python benchmarks/step_min.py --shapes many-small --threads 1 --rounds 300
"""

from __future__ import annotations

import argparse
import time

import torch
from step_time import SHAPES

from inna import INNA, INNAprop

CONTENDERS = {
    "SGD(momentum=0.9) fused": lambda ps: torch.optim.SGD(ps, lr=1e-4, momentum=0.9, fused=True),
    "INNA fused": lambda ps: INNA(ps, lr=1e-4, fused=True),
    "INNA default": lambda ps: INNA(ps, lr=1e-4),
    "AdamW fused": lambda ps: torch.optim.AdamW(ps, lr=1e-4, fused=True),
    "INNAprop fused": lambda ps: INNAprop(ps, lr=1e-4, fused=True),
    "INNAprop default": lambda ps: INNAprop(ps, lr=1e-4),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", choices=list(SHAPES), default="many-small")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = SHAPES[args.shapes]()
    opts = {}
    for name, make in CONTENDERS.items():
        params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
        for p in params:
            p.grad = torch.randn_like(p)
        opts[name] = make(params)
        opts[name].step()  # state, builds
    best = dict.fromkeys(opts, float("inf"))
    for _ in range(args.rounds):
        for name, opt in opts.items():
            t0 = time.perf_counter()
            opt.step()
            best[name] = min(best[name], time.perf_counter() - t0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.shapes}, min of {args.rounds} rounds")
    for name, t in best.items():
        anchor = best["AdamW fused" if name.startswith(("INNAprop", "AdamW")) else "SGD(momentum=0.9) fused"]
        print(f"| {name:<24} | {1e3 * t:>8.3f} ms | {t / anchor:>5.2f} x |")


if __name__ == "__main__":
    main()
