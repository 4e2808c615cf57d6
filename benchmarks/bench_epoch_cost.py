"""Where a benchmark run's time goes: one epoch's training steps vs the per-epoch full-set evaluation.

    PYTHONPATH=src python benchmarks/bench_epoch_cost.py --dataset fashion-mnist --model nin --width 0.25 \
        --train-subset 4000 --test-subset 1000 --optimizer inna --epochs 2

Trains one run through :func:`inna.bench.training.train_run` (the harness itself, one torch thread) and prints,
per epoch, the training wall time the run records and the total time of the epoch (training + evaluation of the
full training and test sets), from which the evaluation's share follows. Then it times, in the same process and
interleaved (a ratio in one run, robust to a shared machine), one full-set evaluation as the harness did before
(``torch.no_grad``, batches of 1000, a host sync per batch) and as it does now (:func:`evaluate`).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from inna.bench.config import RunConfig
from inna.bench.models import build_model
from inna.bench.optimizers import parse_optimizer
from inna.bench.training import RUN_THREADS, device_tensors, evaluate, get_dataset, train_run


@torch.no_grad()
def evaluate_before(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    """The evaluation as it was: no_grad, batches of 1000, a host sync per batch."""
    model.eval()
    total = 0.0
    for i in range(0, len(y), batch):
        total += float(F.cross_entropy(model(x[i : i + batch]), y[i : i + batch], reduction="sum"))
    return total / len(y)


def compare_eval(cfg: RunConfig, repeats: int = 3) -> None:
    torch.set_num_threads(RUN_THREADS)
    data = get_dataset(cfg)
    x, y, _, _ = device_tensors(cfg)
    model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.width).to(cfg.device)
    before, after = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        old = evaluate_before(model, x, y)
        before.append(time.perf_counter() - t)
        t = time.perf_counter()
        new, _ = evaluate(model, x, y)
        after.append(time.perf_counter() - t)
    b, a = statistics.median(before), statistics.median(after)
    print(
        f"full training-set evaluation ({len(y)} examples): before {b:.2f} s, now {a:.2f} s "
        f"({b / a:.2f}x faster); loss before {old:.6f}, now {new:.6f}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument("--model", default="nin")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--train-subset", type=int, default=4000)
    p.add_argument("--test-subset", type=int, default=1000)
    p.add_argument("--optimizer", default="inna")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the evaluation comparison")
    a = p.parse_args()
    cfg = RunConfig("cost", a.dataset, a.model, a.width, parse_optimizer(a.optimizer), a.lr, 0, a.epochs,
                    a.batch_size, a.train_subset, a.test_subset, None, a.device)  # fmt: skip
    marks: list[tuple[float, dict]] = []

    def emit(record: dict) -> None:
        if record["type"] == "epoch":
            marks.append((time.perf_counter(), record))

    with tempfile.TemporaryDirectory() as ckpt:
        train_run(cfg, emit, ckpt)
    previous_wall = 0.0
    for (t0, _), (t1, rec) in itertools.pairwise(marks):
        train = rec["wall_time"] - previous_wall
        previous_wall = rec["wall_time"]
        total = t1 - t0
        print(
            f"epoch {rec['epoch']}: {rec['steps']} steps, train {train:.2f} s, epoch total {total:.2f} s, "
            f"evaluation + bookkeeping {total - train:.2f} s ({100 * (total - train) / total:.0f} %), "
            f"train loss {rec['train_loss']:.4f}"
        )
    compare_eval(cfg, a.repeats)


if __name__ == "__main__":
    main()
