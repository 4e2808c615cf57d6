"""Median ``optimizer.step()`` time of each INNAprop path against torch's AdamW, as ratios in one run.

INNAprop and AdamW move the same bytes per step (read θ, g and two state tensors, write θ and the two states), so
AdamW is the baseline: every contender steps the same parameter shapes with preset gradients, the rounds are
interleaved (each round times every contender once) so that machine noise hits all alike, and the table reports
each median as a ratio to fused and to foreach ``torch.optim.AdamW`` measured in the same run. Timings on shared
machines vary by tens of percent between runs: compare ratios, not milliseconds.

    python benchmarks/innaprop_step_time.py                 # both models, 30 timed rounds
    python benchmarks/innaprop_step_time.py --rounds 50 --model resnet18 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch
from step_time import many_small_shapes, resnet18_shapes  # the same shapes as INNA's benchmark

from inna import INNAprop

BASELINES = ("AdamW fused", "AdamW foreach")


def contenders() -> dict[str, Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer]]:
    return {
        "AdamW fused": lambda ps: torch.optim.AdamW(ps, lr=1e-4, fused=True),
        "AdamW foreach": lambda ps: torch.optim.AdamW(ps, lr=1e-4, foreach=True),
        "INNAprop fused": lambda ps: INNAprop(ps, lr=1e-4, fused=True),
        "INNAprop default (foreach)": lambda ps: INNAprop(ps, lr=1e-4),
        "INNAprop single-tensor": lambda ps: INNAprop(ps, lr=1e-4, foreach=False),
    }


def measure(shapes: list[tuple[int, ...]], rounds: int, warmup: int) -> dict[str, dict]:
    opts: dict[str, torch.optim.Optimizer] = {}
    first_step: dict[str, float] = {}
    for name, make in contenders().items():
        params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
        for p in params:
            p.grad = torch.randn_like(p)
        opts[name] = make(params)
        t0 = time.perf_counter()
        opts[name].step()  # creates the state (and compiles, for the fused INNAprop path)
        first_step[name] = time.perf_counter() - t0
        for _ in range(warmup):
            opts[name].step()
    samples: dict[str, list[float]] = {name: [] for name in opts}
    for _ in range(rounds):
        for name, opt in opts.items():
            t0 = time.perf_counter()
            opt.step()
            samples[name].append(time.perf_counter() - t0)
    base = {b: statistics.median(samples[b]) for b in BASELINES}
    return {
        name: {
            "median_ms": 1e3 * statistics.median(s),
            **{f"ratio_to_{b.replace(' ', '_')}": statistics.median(s) / base[b] for b in BASELINES},
            "first_step_s": first_step[name],
        }
        for name, s in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["resnet18", "many-small", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds per contender (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per contender (default 5)")
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
        results[key] = r = measure(shapes, args.rounds, args.warmup)
        print(f"\n{key}: {len(shapes)} tensors, {n:,} values")
        print(f"| {'optimizer':<28} | {'median step (ms)':>16} | {'× AdamW fused':>13} | {'× AdamW foreach':>15} |")
        print(f"|{'-' * 30}|{'-' * 18}|{'-' * 15}|{'-' * 17}|")
        for name, v in r.items():
            print(
                f"| {name:<28} | {v['median_ms']:>16.2f} | {v['ratio_to_AdamW_fused']:>13.2f} "
                f"| {v['ratio_to_AdamW_foreach']:>15.2f} |"
            )
        print(f"(first INNAprop fused step, including compilation: {r['INNAprop fused']['first_step_s']:.1f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
