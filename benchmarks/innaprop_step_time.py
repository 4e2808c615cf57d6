"""Median ``optimizer.step()`` time of each INNAprop path against torch's AdamW, as ratios in one run.

INNAprop and AdamW move the same bytes per step (read θ, g and two state tensors, write θ and the two states), so
AdamW is the baseline: every contender steps the same parameter shapes with preset gradients, the rounds are
interleaved (each round times every contender once) so that machine noise hits all alike, and the table reports
each median as a ratio to fused and to foreach ``torch.optim.AdamW`` measured in the same run. Timings on shared
machines vary by tens of percent between runs: compare ratios, not milliseconds.

On CPU, ``fused=True`` and the default are INNAprop's C loop (``inna.torch._fused``, the hand-written loop of
``kernels/inna_kernels.c``); ``--compiled`` adds ``fused=True`` forced onto its ``torch.compile`` route (the one CUDA
takes; its first step compiles: tens of seconds on a CPU, more on many tensors).

    python benchmarks/innaprop_step_time.py                 # both models, 30 timed rounds
    python benchmarks/innaprop_step_time.py --rounds 50 --model resnet18 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from step_time import many_small_shapes, resnet18_shapes  # the same shapes as INNA's benchmark

from inna import INNAprop
from inna.torch._dispatch import c_loop_applies, choose_path

BASELINES = ("AdamW fused", "AdamW foreach")


class CompiledRoute:
    """``INNAprop(fused=True)`` forced onto its ``torch.compile`` route (``INNA_CPU_KERNEL=0`` around each step)."""

    def __init__(self, params: list[torch.nn.Parameter]) -> None:
        self.opt = INNAprop(params, lr=1e-4, fused=True)

    def step(self) -> None:
        old = os.environ.get("INNA_CPU_KERNEL")
        os.environ["INNA_CPU_KERNEL"] = "0"
        try:
            self.opt.step()
        finally:
            if old is None:
                del os.environ["INNA_CPU_KERNEL"]
            else:
                os.environ["INNA_CPU_KERNEL"] = old


def contenders(compiled: bool = False) -> dict[str, Callable[[list[torch.nn.Parameter]], Any]]:
    table: dict[str, Callable[[list[torch.nn.Parameter]], Any]] = {
        "AdamW fused": lambda ps: torch.optim.AdamW(ps, lr=1e-4, fused=True),
        "AdamW foreach": lambda ps: torch.optim.AdamW(ps, lr=1e-4, foreach=True),
        "INNAprop fused": lambda ps: INNAprop(ps, lr=1e-4, fused=True),
        "INNAprop default": lambda ps: INNAprop(ps, lr=1e-4),
        "INNAprop foreach": lambda ps: INNAprop(ps, lr=1e-4, foreach=True),
        "INNAprop single-tensor": lambda ps: INNAprop(ps, lr=1e-4, foreach=False),
    }
    if compiled:
        table["INNAprop fused, torch.compile"] = CompiledRoute
    return table


def route(name: str, opt: Any) -> str:
    """What an INNAprop contender ran on its last step here (C loop, compiled, foreach, reference)."""
    if not name.startswith("INNAprop"):
        return ""
    if isinstance(opt, CompiledRoute):
        return "torch.compile"
    group = opt.param_groups[0]
    params = [p for p in group["params"] if p.grad is not None]
    fused, foreach = choose_path(params, group["foreach"], group["fused"], group["differentiable"])
    if fused:
        return "C loop" if c_loop_applies(params) else "torch.compile"
    return "foreach" if foreach else "reference"


def measure(shapes: list[tuple[int, ...]], rounds: int, warmup: int, compiled: bool = False) -> dict[str, dict]:
    opts: dict[str, Any] = {}
    first_step: dict[str, float] = {}
    for name, make in contenders(compiled).items():
        params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
        for p in params:
            p.grad = torch.randn_like(p)
        opts[name] = make(params)
        t0 = time.perf_counter()
        opts[name].step()  # creates the state (and builds the C loop or compiles, for the fused INNAprop paths)
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
            "path": route(name, opts[name]),
        }
        for name, s in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["resnet18", "many-small", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds per contender (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per contender (default 5)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--compiled", action="store_true", help="also time fused=True's torch.compile route")
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
        results[key] = r = measure(shapes, args.rounds, args.warmup, args.compiled)
        print(f"\n{key}: {len(shapes)} tensors, {n:,} values")
        print(
            f"| {'optimizer':<30} | {'runs':<13} | {'median step (ms)':>16} | {'× AdamW fused':>13} "
            f"| {'× AdamW foreach':>15} | {'first step (s)':>14} |"
        )
        print(f"|{'-' * 32}|{'-' * 15}|{'-' * 18}|{'-' * 15}|{'-' * 17}|{'-' * 16}|")
        for name, v in r.items():
            print(
                f"| {name:<30} | {v['path']:<13} | {v['median_ms']:>16.2f} | {v['ratio_to_AdamW_fused']:>13.2f} "
                f"| {v['ratio_to_AdamW_foreach']:>15.2f} | {v['first_step_s']:>14.3f} |"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
