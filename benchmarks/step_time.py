"""Median ``optimizer.step()`` time of each INNA path against torch's own optimizers, as ratios.

Every contender steps the same parameter shapes with preset gradients; the rounds are interleaved
(each round times every contender once) so that machine noise hits all of them alike, and the table
reports each median as a ratio to fused ``torch.optim.SGD(momentum=0.9)`` measured in the same run.
Timings on shared machines vary by tens of percent between runs: compare ratios, not milliseconds.

    python benchmarks/step_time.py                 # both models, 30 timed rounds
    python benchmarks/step_time.py --rounds 50 --model resnet18 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch

from inna import INNA


def resnet18_shapes(num_classes: int = 1000) -> list[tuple[int, ...]]:
    """The 62 parameter shapes of torchvision's ResNet-18 (11,689,512 values), without torchvision."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]
    in_ch = 64
    for out_ch, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            s = stride if block == 0 else 1
            cin = in_ch if block == 0 else out_ch
            shapes += [(out_ch, cin, 3, 3), (out_ch,), (out_ch,), (out_ch, out_ch, 3, 3), (out_ch,), (out_ch,)]
            if block == 0 and (s != 1 or cin != out_ch):
                shapes += [(out_ch, cin, 1, 1), (out_ch,), (out_ch,)]
        in_ch = out_ch
    shapes += [(num_classes, 512), (num_classes,)]
    return shapes


def many_small_shapes(n: int = 400, seed: int = 0) -> list[tuple[int, ...]]:
    """``n`` small tensors (biases, norms, small matrices: 16 to 4096 values), the overhead-bound case."""
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.randint(4, 13, (n,), generator=gen)
    return [((2 ** int(s)) // 16, 16) if s > 6 else (2 ** int(s),) for s in sizes]


class AuthorsStyleINNA(torch.optim.Optimizer):
    """A per-parameter Python loop in the style of the authors' PyTorch code (for comparison only).

    It keeps psi, recomputes the phase (alpha - 1/beta) theta + psi / beta with fresh temporaries for
    every tensor and applies the two updates with separate operations, as the paper's equations read.
    """

    def __init__(self, params, lr: float = 0.1, alpha: float = 0.5, beta: float = 0.1) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, beta=beta))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, alpha, beta = group["lr"], group["alpha"], group["beta"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "psi" not in state:
                    state["psi"] = (1 - alpha * beta) * p.data.clone()
                psi = state["psi"]
                phase = (alpha - 1.0 / beta) * p.data + (1.0 / beta) * psi
                geom = beta * p.grad.data
                psi.add_(-lr * phase)
                p.data.add_(-lr * (phase + geom))


def contenders() -> dict[str, Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]]:
    return {
        "SGD(momentum=0.9) fused": lambda ps: torch.optim.SGD(ps, lr=1e-4, momentum=0.9, fused=True),
        "SGD(momentum=0.9) foreach": lambda ps: torch.optim.SGD(ps, lr=1e-4, momentum=0.9, foreach=True),
        "Adam fused": lambda ps: torch.optim.Adam(ps, lr=1e-4, fused=True),
        "INNA fused": lambda ps: INNA(ps, lr=1e-4, fused=True),
        "INNA default (foreach)": lambda ps: INNA(ps, lr=1e-4),
        "INNA single-tensor": lambda ps: INNA(ps, lr=1e-4, foreach=False),
        "authors-style loop": lambda ps: AuthorsStyleINNA(ps, lr=1e-4),
    }


def measure(shapes: list[tuple[int, ...]], rounds: int, warmup: int, steps_per_round: int) -> dict[str, dict]:
    makers = contenders()
    opts: dict[str, torch.optim.Optimizer] = {}
    first_step: dict[str, float] = {}
    for name, make in makers.items():
        params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
        for p in params:
            p.grad = torch.randn_like(p)
        opts[name] = make(params)
        t0 = time.perf_counter()
        opts[name].step()  # creates the state (and compiles, for the fused INNA path)
        first_step[name] = time.perf_counter() - t0
        for _ in range(warmup):
            opts[name].step()
    samples: dict[str, list[float]] = {name: [] for name in opts}
    for _ in range(rounds):
        for name, opt in opts.items():
            t0 = time.perf_counter()
            for _ in range(steps_per_round):
                opt.step()
            samples[name].append((time.perf_counter() - t0) / steps_per_round)
    base = statistics.median(samples["SGD(momentum=0.9) fused"])
    return {
        name: {
            "median_ms": 1e3 * statistics.median(s),
            "ratio_to_fused_sgd": statistics.median(s) / base,
            "first_step_s": first_step[name],
        }
        for name, s in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["resnet18", "many-small", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds per contender (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per contender (default 5)")
    parser.add_argument("--steps-per-round", type=int, default=1, help="steps timed together in a round")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    models = {"resnet18": resnet18_shapes(), "many-small": many_small_shapes()}
    chosen = list(models) if args.model == "both" else [args.model]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
        f"{args.rounds} interleaved rounds, median per contender"
    )
    results = {}
    for key in chosen:
        shapes = models[key]
        n = sum(torch.Size(s).numel() for s in shapes)
        results[key] = measure(shapes, args.rounds, args.warmup, args.steps_per_round)
        print(f"\n{key}: {len(shapes)} tensors, {n:,} values")
        print(f"| {'optimizer':<28} | {'median step (ms)':>16} | {'× fused SGD':>11} |")
        print(f"|{'-' * 30}|{'-' * 18}|{'-' * 13}|")
        for name, r in results[key].items():
            print(f"| {name:<28} | {r['median_ms']:>16.2f} | {r['ratio_to_fused_sgd']:>11.2f} |")
        print(f"(first INNA fused step, including compilation: {results[key]['INNA fused']['first_step_s']:.1f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
