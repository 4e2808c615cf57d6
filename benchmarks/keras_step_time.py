"""Optimizer apply time of inna.keras against Keras's own SGD(momentum=0.9) and AdamW, on every backend, as ratios.

Each backend runs in its own subprocess (Keras picks its backend once per process). Every contender applies preset
gradients to the same ResNet-18 parameter shapes (62 tensors, 11.7 M values, Keras's channels-last kernels) the
way ``model.fit`` runs it: inside ``tf.function`` on TensorFlow (XLA only with a GPU, as Keras's ``"auto"``),
through a jitted ``stateless_apply`` on JAX (weights and state donated, as Keras's JAX trainer does), eagerly on
PyTorch (Keras's default there). Rounds are interleaved (each round times every contender once) so machine noise
hits all alike; the table reports medians and the ratios INNA / SGD(momentum=0.9) and INNAprop / AdamW measured in
the same process. On PyTorch it also times our update through Keras's per-variable ``update_step`` loop, to show
what the multi-tensor path buys.

    PYTHONPATH=src python benchmarks/keras_step_time.py                  # all three backends, 20 rounds
    PYTHONPATH=src python benchmarks/keras_step_time.py --backends jax --rounds 50 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time


def resnet18_shapes(num_classes: int = 1000) -> list[tuple[int, ...]]:
    """The 62 trainable shapes of a ResNet-18 in Keras's layout ((kh, kw, cin, cout) kernels), 11,689,512 values."""
    shapes: list[tuple[int, ...]] = [(7, 7, 3, 64), (64,), (64,)]
    in_ch = 64
    for out_ch, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            cin = in_ch if block == 0 else out_ch
            shapes += [(3, 3, cin, out_ch), (out_ch,), (out_ch,), (3, 3, out_ch, out_ch), (out_ch,), (out_ch,)]
            if block == 0 and (stride != 1 or cin != out_ch):
                shapes += [(1, 1, cin, out_ch), (out_ch,), (out_ch,)]
        in_ch = out_ch
    shapes += [(512, num_classes), (num_classes,)]
    return shapes


def contenders():
    import keras

    import inna.keras

    found = {
        "keras SGD(momentum=0.9)": lambda: keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
        "inna.keras.INNA": lambda: inna.keras.INNA(learning_rate=0.05),
        "keras AdamW": lambda: keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.01),
        "inna.keras.INNAprop": lambda: inna.keras.INNAprop(learning_rate=1e-3, weight_decay=0.01),
    }
    if keras.backend.backend() == "torch":

        def per_variable():
            opt = inna.keras.INNA(learning_rate=0.05)
            opt._multi_tensor = False  # Keras's loop over update_step
            return opt

        def per_variable_prop():
            opt = inna.keras.INNAprop(learning_rate=1e-3, weight_decay=0.01)
            opt._multi_tensor = False
            return opt

        found["inna.keras.INNA, per-variable update_step"] = per_variable
        found["inna.keras.INNAprop, per-variable update_step"] = per_variable_prop
    return found


def _stepper(opt, shapes, rng):
    """A function that applies one step of ``opt`` (as model.fit does on this backend) and waits for it."""
    import keras

    backend = keras.backend.backend()
    variables = [keras.Variable(rng.standard_normal(s).astype("float32") * 0.05) for s in shapes]
    grads = [keras.ops.convert_to_tensor(rng.standard_normal(s).astype("float32") * 0.01) for s in shapes]
    opt.build(variables)
    if backend == "tensorflow":
        import tensorflow as tf

        # Keras's jit_compile="auto" turns XLA off on CPU-only machines and on with a GPU: do the same
        apply = tf.function(
            lambda: opt.apply(grads, variables), jit_compile=bool(tf.config.list_physical_devices("GPU"))
        )

        def step():
            apply()
            variables[0].numpy()  # wait for the update

        return step
    if backend == "jax":
        import jax

        apply = jax.jit(opt.stateless_apply, donate_argnums=(0, 2))
        state = {"opt": [v.value for v in opt.variables], "vars": [v.value for v in variables]}

        def step():
            new_vars, new_opt = apply(state["opt"], grads, state["vars"])
            jax.block_until_ready(new_vars)
            state["vars"], state["opt"] = new_vars, new_opt

        return step

    def step():
        opt.apply(grads, variables)

    return step


def run_backend(rounds: int, warmup: int) -> dict:
    """Time every contender on the current backend (``KERAS_BACKEND``)."""
    import warnings

    import keras
    import numpy as np

    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    shapes = resnet18_shapes()
    steppers = {name: _stepper(make(), shapes, rng) for name, make in contenders().items()}
    for step in steppers.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(rounds):
        for name, step in steppers.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(ts) * 1e3 for name, ts in times.items()}
    return {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "framework": _framework_version(keras.backend.backend()),
        "values": int(sum(np.prod(s) for s in shapes)),
        "tensors": len(shapes),
        "median_ms": medians,
    }


def _framework_version(backend: str) -> str:
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    return f"{module} {__import__(module).__version__}"


def table(results: list[dict], rounds: int) -> str:
    lines = [
        "| backend | INNA | SGD(momentum=0.9) | INNA / SGD | INNAprop | AdamW | INNAprop / AdamW |",
        "|---|---|---|---|---|---|---|",
    ]
    extra = []
    for r in results:
        m = r["median_ms"]
        inna, sgd = m["inna.keras.INNA"], m["keras SGD(momentum=0.9)"]
        prop, adamw = m["inna.keras.INNAprop"], m["keras AdamW"]
        lines.append(
            f"| {r['framework']} | {inna:.2f} ms | {sgd:.2f} ms | **{inna / sgd:.2f}×** | {prop:.2f} ms | "
            f"{adamw:.2f} ms | **{prop / adamw:.2f}×** |"
        )
        for name, value in m.items():
            if "per-variable" in name:
                base = inna if name.startswith("inna.keras.INNA,") else prop
                extra.append(f"- {r['framework']}, {name}: {value:.2f} ms ({value / base:.2f}× the multi-tensor path)")
    header = (
        f"Keras {results[0]['keras']}, ResNet-18 shapes ({results[0]['tensors']} tensors, {results[0]['values']:,} "
        f"float32 values), median of {rounds} interleaved rounds, {platform.processor() or platform.machine()}"
    )
    return "\n".join([header, "", *lines, "", *extra])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=900, help="seconds per backend subprocess")
    parser.add_argument("--json", help="also write the raw medians here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(run_backend(args.rounds, args.warmup)))
        return
    results = []
    for backend in args.backends:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
        command = [sys.executable, __file__, "--worker", "--rounds", str(args.rounds), "--warmup", str(args.warmup)]
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"{backend} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
        results.append(json.loads(lines[-1][len("RESULT ") :]))
        print(f"{backend}: {results[-1]['median_ms']}", file=sys.stderr)
    print(table(results, args.rounds))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
