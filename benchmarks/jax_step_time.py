"""Median time of a jitted optax step of inna.optax against optax's own optimizers, as ratios (no torch needed).

INNA is timed against ``optax.sgd(momentum=0.9)`` (the same memory traffic: θ, g and one buffer read, θ and the
buffer written) and INNAprop against ``optax.adamw`` (θ, g and two buffers). Every contender steps the same
ResNet-18 parameter shapes with preset gradients inside one ``jax.jit`` (update + apply_updates, params and state
donated, as a training step would); the rounds are interleaved (each round times every contender once, each call
ending in ``block_until_ready``) so that machine noise hits all of them alike, and each ratio compares two medians
of the same run. Timings on shared machines vary between runs: compare ratios, not milliseconds.

    python benchmarks/jax_step_time.py                     # 30 timed rounds, donated and not donated
    python benchmarks/jax_step_time.py --rounds 50 --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

import inna.optax

#: (name, make, baseline name): each row is timed against its baseline, measured in the same rounds.
CONTENDERS: list[tuple[str, Callable[[], optax.GradientTransformation], str | None]] = [
    ("optax.sgd(momentum=0.9)", lambda: optax.sgd(1e-4, momentum=0.9), None),
    ("inna.optax.inna", lambda: inna.optax.inna(1e-4), "optax.sgd(momentum=0.9)"),
    ("inna.optax.inna, power_decay", lambda: inna.optax.inna(inna.optax.power_decay(1e-4)), "optax.sgd(momentum=0.9)"),
    ("optax.adamw", lambda: optax.adamw(1e-4, weight_decay=0.01), None),
    ("inna.optax.innaprop", lambda: inna.optax.innaprop(1e-4, weight_decay=0.01), "optax.adamw"),
    (
        "inna.optax.innaprop, cosine",
        lambda: inna.optax.innaprop(optax.warmup_cosine_decay_schedule(0.0, 1e-4, 100, 10_000), weight_decay=0.01),
        "optax.adamw",
    ),
]


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


def random_tree(shapes: list[tuple[int, ...]], seed: int, dtype) -> list[jax.Array]:
    keys = jax.random.split(jax.random.key(seed), len(shapes))
    return [jax.random.normal(k, s, dtype) for k, s in zip(keys, shapes)]


def measure(shapes, rounds: int, warmup: int, steps_per_round: int, dtype, donate: bool) -> dict[str, dict]:
    grads = random_tree(shapes, 1, dtype)
    runs: dict[str, list] = {}
    for name, make, _ in CONTENDERS:
        opt = make()

        def step(params, state, grads, opt=opt):
            updates, state = opt.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        jitted = jax.jit(step, donate_argnums=(0, 1) if donate else ())
        params = random_tree(shapes, 0, dtype)
        t0 = time.perf_counter()
        carry = jax.block_until_ready(jitted(params, opt.init(params), grads))  # compiles
        compile_s = time.perf_counter() - t0
        for _ in range(warmup):
            carry = jax.block_until_ready(jitted(*carry, grads))
        runs[name] = [jitted, carry, [], compile_s]
    for _ in range(rounds):
        for run in runs.values():
            jitted, carry = run[0], run[1]
            t0 = time.perf_counter()
            for _ in range(steps_per_round):
                carry = jitted(*carry, grads)
            jax.block_until_ready(carry)
            run[2].append((time.perf_counter() - t0) / steps_per_round)
            run[1] = carry
    medians = {name: statistics.median(run[2]) for name, run in runs.items()}
    return {
        name: {
            "median_ms": 1e3 * medians[name],
            "baseline": base,
            "ratio": medians[name] / medians[base] if base else 1.0,
            "first_call_s": runs[name][3],
        }
        for name, _, base in CONTENDERS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="timed rounds per contender (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per contender (default 5)")
    parser.add_argument("--steps-per-round", type=int, default=3, help="steps timed together in a round (default 3)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument(
        "--donate",
        choices=["both", "yes", "no"],
        default="both",
        help="donate params and state to the jitted step (in-place buffers), or not, or time both (default)",
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    shapes = resnet18_shapes()
    n = sum(math.prod(s) for s in shapes)
    device = jax.devices()[0]
    print(
        f"jax {jax.__version__}, optax {optax.__version__}, {device.platform} ({device.device_kind}), "
        f"{platform.processor() or platform.machine()}; ResNet-18 shapes: {len(shapes)} tensors, {n:,} values, "
        f"{args.dtype}; {args.rounds} interleaved rounds of {args.steps_per_round} steps, median per contender"
    )
    results = {}
    for donate in {"both": [True, False], "yes": [True], "no": [False]}[args.donate]:
        mode = "donated" if donate else "not donated"
        results[mode] = measure(shapes, args.rounds, args.warmup, args.steps_per_round, jnp.dtype(args.dtype), donate)
        print(f"\nparams and state {mode}:")
        print(f"| {'transformation':<30} | {'median step (ms)':>16} | {'ratio':>6} | {'to':<24} |")
        print(f"|{'-' * 32}|{'-' * 18}|{'-' * 8}|{'-' * 26}|")
        for name, r in results[mode].items():
            ratio = f"{r['ratio']:.2f}×" if r["baseline"] else "1"
            print(f"| {name:<30} | {r['median_ms']:>16.2f} | {ratio:>6} | {r['baseline'] or '(baseline)':<24} |")
    if args.json:
        meta = {"jax": jax.__version__, "optax": optax.__version__, "device": str(device), "dtype": args.dtype}
        with open(args.json, "w") as f:
            json.dump({**meta, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
