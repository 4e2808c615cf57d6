"""One training run: (task, optimizer, γ₀, seed) trained epoch by epoch, its records emitted as each epoch ends.

**Determinism contract.** A run's numbers depend only on its definition (:class:`~inna.bench.config.RunConfig`:
task, optimizer spec, γ₀, seed, budget) and the code version, on a given machine and torch build: they are
the same in the parent process or in a worker, with any ``--workers``, and whether the run was interrupted and
resumed (from its checkpoint) or restarted (from nothing) or not. :func:`train_run` makes it so by

* running with exactly :data:`RUN_THREADS` torch threads (CPU kernels split their reductions by thread, so the
  thread count changes the rounding), restored afterwards;
* drawing every random number from seeds derived from the run's seed: the initial weights
  (:func:`~inna.bench.config.init_seed`, the same for every optimizer), the mini-batch order of epoch e (its
  own generator), the dropout masks of epoch e (the global generator reseeded at each epoch); Python's and
  NumPy's global generators are seeded too, and every global generator is restored afterwards;
* on CUDA, cuDNN's deterministic mode (as far as torch makes GPU kernels deterministic).

Only ``wall_time`` differs between two executions of the same run.

A run whose mini-batch loss or training loss becomes NaN/inf stops and ends with status ``diverged``. The step
never waits for the device: whether a mini-batch loss was non-finite is accumulated in an on-device flag, read
once per epoch (a diverged run therefore finishes the epoch in which it diverged, on NaNs, and stops there).

**Cost.** The paper's per-epoch loss on the whole training set costs about as much as the epoch's training, so
:func:`evaluate` runs in ``torch.inference_mode``, sums on the device (one host sync per pass), and uses batches
sized for the device (:func:`eval_batch_size`: small on a CPU, where batches of 64 stay in cache and run 2x faster
per image than batches of 1000; large on a GPU). The data sets are moved to the device once per process.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from inna.formulas import INNAStabilityWarning

from .checkpoints import CheckpointError, atomic_save, checkpoint_path, load_checkpoint, set_aside
from .config import RunConfig, derive_seed, init_seed
from .data import Dataset, load_dataset
from .models import build_model
from .optimizers import build_optimizer
from .records import Record, RecordType, RunStatus, encode

__all__ = [
    "RUN_THREADS",
    "check_device",
    "clear_data_cache",
    "eval_batch_size",
    "evaluate",
    "get_dataset",
    "pinned_run",
    "preload_dataset",
    "resolve_device",
    "train_run",
]

#: The torch intra-op thread count of every run (part of the determinism contract). Parallelism comes from
#: running independent runs in ``--workers`` processes.
RUN_THREADS = 1


def check_device(device: str) -> str:
    """``device`` if it names a device kind (``auto``, ``cpu``, ``cuda``, ``cuda:N``), without asking whether this
    machine has it (runs on other hosts resolve it there)."""
    if device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit()):
        return device
    raise ValueError(f"Invalid device {device!r}; allowed values: auto, cpu, cuda, cuda:N")


def resolve_device(device: str) -> str:
    """``auto`` → ``cuda`` if available else ``cpu``; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available to torch (use --device cpu or auto)")
        return device
    if device == "cpu":
        return device
    raise ValueError(f"Invalid device {device!r}; allowed values: auto, cpu, cuda, cuda:N")


_DATA_CACHE: dict[tuple[str, str | None, int | None, int | None], Dataset] = {}


def preload_dataset(
    name: str, data_dir: str | None = None, train_subset: int | None = None, test_subset: int | None = None
) -> Dataset:
    """Load (once per process) a data set with its subsets (a fixed class-stratified draw, seed 0); every file
    is read and checked here (:func:`~inna.bench.data.load_dataset`)."""
    key = (name, data_dir, train_subset, test_subset)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_dataset(name, data_dir).subset(train_subset, test_subset, seed=0)
    return _DATA_CACHE[key]


def get_dataset(cfg: RunConfig) -> Dataset:
    """The data set of ``cfg`` (see :func:`preload_dataset`)."""
    return preload_dataset(cfg.dataset, cfg.data_dir, cfg.train_subset, cfg.test_subset)


_DEVICE_CACHE: dict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def device_tensors(cfg: RunConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_test, y_test) of ``cfg`` on ``cfg.device``, moved there once per process."""
    key = (cfg.dataset, cfg.data_dir, cfg.train_subset, cfg.test_subset, cfg.device)
    if key not in _DEVICE_CACHE:
        data = get_dataset(cfg)
        _DEVICE_CACHE[key] = tuple(t.to(cfg.device) for t in (data.x_train, data.y_train, data.x_test, data.y_test))
    return _DEVICE_CACHE[key]


def clear_data_cache() -> None:
    """Forget the data sets loaded by this process."""
    _DATA_CACHE.clear()
    _DEVICE_CACHE.clear()


@contextlib.contextmanager
def pinned_run(cfg: RunConfig) -> Iterator[None]:
    """Inside: :data:`RUN_THREADS` torch threads, Python's and NumPy's generators seeded from the run's seed,
    cuDNN deterministic; outside, everything as it was (the global torch generator included)."""
    threads = torch.get_num_threads()
    py_state, np_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()  # noqa: NPY002
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.set_num_threads(RUN_THREADS)
    random.seed(derive_seed(cfg.seed, 3))
    np.random.seed(derive_seed(cfg.seed, 4) % 2**32)  # noqa: NPY002 (the legacy global generator, on purpose)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        with warnings.catch_warnings():
            # the γ₀ grid tries steps beyond INNA's stability rule on purpose; a run that blows up is "diverged"
            warnings.simplefilter("ignore", INNAStabilityWarning)
            yield
    finally:
        torch.set_num_threads(threads)
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002
        torch.set_rng_state(torch_state)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


def eval_batch_size(device: str | torch.device) -> int:
    """The evaluation batch: 64 on a CPU (measured fastest per image: the activations stay in cache), 2048 on a
    GPU (fewer launches). The loss is a sum over examples, so the batch changes only the rounding."""
    return 64 if torch.device(device).type == "cpu" else 2048


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int | None = None) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` in eval mode on the whole of (x, y), per label (for sequence
    targets ``(N, T)``: per token); one host sync."""
    model.eval()
    batch = batch or eval_batch_size(x.device)
    with torch.inference_mode():
        total = torch.zeros((), dtype=torch.float64, device=x.device)
        correct = torch.zeros((), dtype=torch.int64, device=x.device)
        for i in range(0, len(y), batch):
            logits = model(x[i : i + batch])
            total += F.cross_entropy(logits, y[i : i + batch], reduction="sum")
            correct += (logits.argmax(1) == y[i : i + batch]).sum()
        n = max(y.numel(), 1)  # per label: per example, or per token for sequence targets (B, T)
        return float(total) / n, int(correct) / n


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def train_run(
    cfg: RunConfig,
    emit: Callable[[Record], None],
    checkpoint_dir: str | Path,
    log: Callable[[str], Any] = _warn,
    *,
    replay: bool = False,
) -> Record:
    """Train one run to its end (or divergence), emitting records; resume from its checkpoint if there is one.

    Returns the ``run_end`` record. A checkpoint that cannot be restored is set aside (``log`` says so) and
    the run starts again from epoch 0. Every checkpoint also holds the records the run emitted up to it (as
    their JSON lines); with ``replay=True`` a resumed run first emits those again, so that ``emit`` sees every
    record of the run, as a process that reports a run only when it ends (a Slurm task, a Ray task) needs.
    """
    with pinned_run(cfg):
        return _train_run(cfg, emit, Path(checkpoint_dir), log, replay)


def _fresh(cfg: RunConfig, data: Dataset) -> tuple[torch.nn.Module, Any, Any]:
    torch.manual_seed(init_seed(cfg.seed))
    model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.width).to(cfg.device)
    total_steps = cfg.epochs * math.ceil(len(data.y_train) / cfg.batch_size)  # for schedules over the whole run
    opt, sched = build_optimizer(cfg.optimizer, model.parameters(), cfg.lr, total_steps=total_steps)
    return model, opt, sched


def _resume(cfg: RunConfig, ckpt: Path, model: Any, opt: Any, sched: Any, log: Callable[[str], Any]) -> Any:
    """Restore ``model``, ``opt`` and ``sched`` from ``ckpt`` and return its state; None (the checkpoint set aside,
    ``log`` saying so) when it cannot be restored."""
    try:
        state = load_checkpoint(ckpt, map_location=cfg.device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None:
            sched.load_state_dict(state["scheduler"])
        return state
    except (CheckpointError, RuntimeError, ValueError, KeyError, TypeError) as err:
        aside = set_aside(ckpt)
        log(f"[inna bench] warning: checkpoint {ckpt} cannot be resumed from ({err}); set aside as "
            f"{aside.name}, run {cfg.run_id} starts again")  # fmt: skip
        return None


def _train_run(
    cfg: RunConfig, emit_record: Callable[[Record], None], ckpt_dir: Path, log: Callable[[str], Any], replay: bool
) -> Record:
    journal: list[str] = []  # the run's records so far, as lines: saved with each checkpoint

    def emit(record: Record) -> None:
        journal.append(encode(record).decode())
        emit_record(record)

    device = cfg.device
    data = get_dataset(cfg)
    x_train, y_train, x_test, y_test = device_tensors(cfg)
    model, opt, sched = _fresh(cfg, data)
    ckpt = checkpoint_path(ckpt_dir, cfg.run_id)
    base = cfg.summary()
    epoch, steps, wall = 0, 0, 0.0
    had_checkpoint = ckpt.is_file()
    state = _resume(cfg, ckpt, model, opt, sched, log) if had_checkpoint else None
    resumed = state is not None
    if state is not None:
        epoch, steps, wall = state["epoch"], state["steps"], state["wall_time"]
        journal = list(state["records"])
    elif had_checkpoint:
        model, opt, sched = _fresh(cfg, data)  # a failed restore may have changed them in part
    if resumed and replay:
        for line in journal:
            emit_record(json.loads(line))
    if not resumed:
        start = {"type": RecordType.RUN_START, **base, "config": cfg.to_json()}
        if data.info:  # what identifies the data beyond its name (an LM task's corpus hash and files)
            start["data"] = data.info
        emit(start)
        train_loss, train_acc = evaluate(model, x_train, y_train)
        test_loss, test_acc = evaluate(model, x_test, y_test)
        emit({"type": RecordType.EPOCH, **base, "epoch": 0, "steps": 0, "train_loss": train_loss,
              "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc, "wall_time": 0.0,
              "lr_now": cfg.lr})  # fmt: skip
    status = RunStatus.COMPLETED
    n = len(y_train)
    while epoch < cfg.epochs:
        epoch += 1
        order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, 1)))
        order = order.to(device)
        torch.manual_seed(derive_seed(cfg.seed, epoch, 2))  # dropout
        model.train()
        nonfinite = torch.zeros((), dtype=torch.bool, device=device)  # read once, after the epoch
        t0 = time.perf_counter()
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            nonfinite |= ~torch.isfinite(loss.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            steps += 1
        if device != "cpu":
            torch.cuda.synchronize(device)  # the epoch's wall time includes its queued kernels
        wall += time.perf_counter() - t0
        train_loss, train_acc = evaluate(model, x_train, y_train)
        test_loss, test_acc = evaluate(model, x_test, y_test)
        if bool(nonfinite) or not math.isfinite(train_loss):
            status = RunStatus.DIVERGED
        lr_now = float(opt.param_groups[0]["lr"])
        emit({"type": RecordType.EPOCH, **base, "epoch": epoch, "steps": steps, "train_loss": train_loss,
              "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc, "wall_time": wall,
              "lr_now": lr_now})  # fmt: skip
        if status == RunStatus.DIVERGED:
            break
        if epoch < cfg.epochs:
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "steps": steps,
                     "wall_time": wall, "scheduler": sched.state_dict() if sched is not None else None,
                     "records": journal}  # fmt: skip
            atomic_save(state, ckpt)
    end = {"type": RecordType.RUN_END, **base, "status": status, "epochs": epoch, "steps": steps, "wall_time": wall}
    emit(end)
    ckpt.unlink(missing_ok=True)
    return end
