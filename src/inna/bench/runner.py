"""Training runs: one (task, optimizer, γ₀, seed) per run, results appended to a JSONL file as each epoch ends.

Durability and resume:

* Only the parent process writes the results file. Each record is one complete line, written with a single
  ``write`` and followed by ``flush`` + ``fsync``; :func:`read_records` ignores a torn last line and
  :class:`ResultsStore` cuts it off before appending again.
* After each epoch the run's state (model, optimizer, scheduler, counters) is saved to ``checkpoints/<run_id>.pt``
  (temporary file + ``os.replace``). An interrupted run restarts from its last finished epoch; a finished run
  (one with a ``run_end`` record) is never run again. Shuffling and dropout are seeded per (seed, epoch), so a
  resumed run gives the same numbers as an uninterrupted one.
* A run whose mini-batch or training loss becomes NaN/inf stops and is recorded with ``status: "diverged"``;
  the other runs go on.

Record types (one JSON object per line, ``"type"`` first): ``run_start`` (the run's full config), ``epoch``
(``epoch``, ``steps``, ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc``, ``wall_time``, ``lr_now``),
``run_end`` (``status``, ``epochs``, ``steps``, ``wall_time``); the protocol adds ``suite`` and ``selection``.
Non-finite numbers are written as ``null``.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import os
import queue as queue_mod
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from inna.formulas import INNAStabilityWarning

from .data import Dataset, load_dataset
from .models import build_model
from .optimizers import OptimizerSpec, build_optimizer

__all__ = [
    "ResultsStore",
    "RunConfig",
    "execute_runs",
    "read_records",
    "resolve_device",
    "train_run",
]

Record = dict[str, Any]


# --------------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run (and therefore its ``run_id``), plus where to run it.

    ``data_dir`` and ``device`` are not part of the identity: the same run on another machine is the same run.
    """

    task: str
    dataset: str
    model: str
    width: float
    optimizer: OptimizerSpec
    lr: float
    seed: int
    epochs: int
    batch_size: int = 32
    train_subset: int | None = None
    test_subset: int | None = None
    data_dir: str | None = field(default=None, compare=False)
    device: str = field(default="cpu", compare=False)

    def identity(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("data_dir")
        d.pop("device")
        d["optimizer"] = self.optimizer.key()
        return d

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]

    def summary(self) -> Record:
        """The fields copied into every record of the run, for readers that look at one line."""
        return {
            "run_id": self.run_id,
            "task": self.task,
            "optimizer": self.optimizer.name,
            "lr": self.lr,
            "seed": self.seed,
        }

    def to_json(self) -> Record:
        d = asdict(self)
        d["optimizer"] = asdict(self.optimizer)
        return d

    @staticmethod
    def from_json(d: Record) -> RunConfig:
        d = dict(d)
        o = d.pop("optimizer")
        o["grid"] = tuple(o.get("grid", ()))
        return RunConfig(optimizer=OptimizerSpec(**o), **d)


# --------------------------------------------------------------------------------------------------- JSONL store


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def read_records(path: str | os.PathLike[str]) -> list[Record]:
    """All complete records of a JSONL results file; a torn (partially written) last line is ignored."""
    path = Path(path)
    if not path.is_file():
        return []
    out: list[Record] = []
    with path.open("rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # the last line, without its newline: an interrupted write
                break
            raise ValueError(f"{path}: line {i + 1} is not valid JSON") from None
    return out


class ResultsStore:
    """An append-only JSONL file of records (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()

    def _repair(self) -> None:
        """Cut off a torn last line left by an interrupted write, so the next record starts on its own line."""
        if not self.path.is_file():
            return
        with self.path.open("rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
                f.flush()
                os.fsync(f.fileno())

    def append(self, record: Record) -> None:
        line = (json.dumps(_clean(record), allow_nan=False, ensure_ascii=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[Record]:
        return read_records(self.path)


# --------------------------------------------------------------------------------------------------- training


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


def _seed(*parts: int) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:7], "big")


def init_seed(seed: int) -> int:
    """The torch seed used to initialise the weights: every optimizer starts from the same weights for a seed."""
    return _seed(seed, 0)


_DATA_CACHE: dict[tuple[str, str | None, int | None, int | None], Dataset] = {}


def get_dataset(cfg: RunConfig) -> Dataset:
    """Load (once per process) the dataset of ``cfg``, with its subsets (drawn with a fixed seed)."""
    key = (cfg.dataset, cfg.data_dir, cfg.train_subset, cfg.test_subset)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_dataset(cfg.dataset, cfg.data_dir).subset(cfg.train_subset, cfg.test_subset, seed=0)
    return _DATA_CACHE[key]


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` in eval mode on the whole of (x, y)."""
    model.eval()
    total, correct = 0.0, 0
    for i in range(0, len(y), batch):
        logits = model(x[i : i + batch])
        total += float(F.cross_entropy(logits, y[i : i + batch], reduction="sum"))
        correct += int((logits.argmax(1) == y[i : i + batch]).sum())
    n = max(len(y), 1)
    return total / n, correct / n


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_run(cfg: RunConfig, emit: Callable[[Record], None], checkpoint_dir: str | os.PathLike[str]) -> Record:
    """Train one run to its end (or divergence), emitting records; resume from its checkpoint if there is one.

    Returns the ``run_end`` record. INNA's stability warning is silenced here: the γ₀ grid tries steps beyond
    the stability rule on purpose, and a run that blows up is recorded as diverged.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", INNAStabilityWarning)
        return _train_run(cfg, emit, checkpoint_dir)


def _train_run(cfg: RunConfig, emit: Callable[[Record], None], checkpoint_dir: str | os.PathLike[str]) -> Record:
    device = cfg.device
    data = get_dataset(cfg)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    torch.manual_seed(init_seed(cfg.seed))
    model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.width).to(device)
    opt, sched = build_optimizer(cfg.optimizer, model.parameters(), cfg.lr)
    ckpt = Path(checkpoint_dir) / f"{cfg.run_id}.pt"
    base = cfg.summary()
    epoch, steps, wall = 0, 0, 0.0
    if ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None:
            sched.load_state_dict(state["scheduler"])
        epoch, steps, wall = state["epoch"], state["steps"], state["wall_time"]
    else:
        emit({"type": "run_start", **base, "config": cfg.to_json()})
        train_loss, train_acc = evaluate(model, x_train, y_train)
        test_loss, test_acc = evaluate(model, x_test, y_test)
        emit({"type": "epoch", **base, "epoch": 0, "steps": 0, "train_loss": train_loss, "train_acc": train_acc,
              "test_loss": test_loss, "test_acc": test_acc, "wall_time": 0.0, "lr_now": cfg.lr})  # fmt: skip
    status = "completed"
    n = len(y_train)
    while epoch < cfg.epochs:
        epoch += 1
        order = torch.randperm(n, generator=torch.Generator().manual_seed(_seed(cfg.seed, epoch, 1))).to(device)
        torch.manual_seed(_seed(cfg.seed, epoch, 2))  # dropout
        model.train()
        t0 = time.perf_counter()
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            if not torch.isfinite(loss):
                status = "diverged"
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            steps += 1
        wall += time.perf_counter() - t0
        train_loss, train_acc = evaluate(model, x_train, y_train)
        test_loss, test_acc = evaluate(model, x_test, y_test)
        if not math.isfinite(train_loss):
            status = "diverged"
        lr_now = float(opt.param_groups[0]["lr"])
        emit({"type": "epoch", **base, "epoch": epoch, "steps": steps, "train_loss": train_loss,
              "train_acc": train_acc, "test_loss": test_loss, "test_acc": test_acc, "wall_time": wall,
              "lr_now": lr_now})  # fmt: skip
        if status == "diverged":
            break
        if epoch < cfg.epochs:
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "steps": steps,
                     "wall_time": wall, "scheduler": sched.state_dict() if sched is not None else None}  # fmt: skip
            _atomic_save(state, ckpt)
    end = {"type": "run_end", **base, "status": status, "epochs": epoch, "steps": steps, "wall_time": wall}
    emit(end)
    ckpt.unlink(missing_ok=True)
    return end


# --------------------------------------------------------------------------------------------------- execution

_WORKER_QUEUE: Any = None


def _worker_init(q: Any) -> None:
    global _WORKER_QUEUE
    _WORKER_QUEUE = q
    torch.set_num_threads(1)


def _worker_run(cfg: RunConfig, checkpoint_dir: str) -> Record:
    return train_run(cfg, _WORKER_QUEUE.put, checkpoint_dir)


def finished_runs(records: Iterable[Record]) -> dict[str, Record]:
    """run_id → its ``run_end`` record, for the runs that ended (completed or diverged)."""
    return {r["run_id"]: r for r in records if r.get("type") == "run_end"}


class _Progress:
    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.bar = None
        if enabled and total > 0:
            from tqdm.auto import tqdm

            # a log file gets a line every 30 s, a terminal a live bar
            interval = 0.5 if sys.stderr.isatty() else 30.0
            self.bar = tqdm(total=total, desc=desc, unit="epoch", dynamic_ncols=True, leave=True, mininterval=interval)

    def update(self, record: Record) -> None:
        if self.bar is not None and record.get("type") == "epoch" and record.get("epoch", 0) > 0:
            self.bar.set_postfix_str(f"{record['task']} {record['optimizer']} γ₀={record['lr']:g}", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _drop_checkpoints_ahead_of_the_store(pending: list[RunConfig], records: list[Record], ckpt_dir: Path) -> None:
    """A checkpoint may be ahead of the results: with workers, a run saves its checkpoint once it has *sent* an
    epoch's record, and the parent may die before writing it. Resuming from such a checkpoint would leave that
    epoch out of the results for good, so the run starts again instead (its records are then rewritten)."""
    recorded = {rid: max(epochs, default=-1) for rid, _, epochs, _ in group_runs(records)}
    for c in pending:
        ckpt = ckpt_dir / f"{c.run_id}.pt"
        if ckpt.is_file():
            ahead = torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"] > recorded.get(c.run_id, -1)
            if ahead:
                ckpt.unlink()


def execute_runs(
    configs: list[RunConfig],
    store: ResultsStore,
    checkpoint_dir: str | os.PathLike[str],
    workers: int = 1,
    progress: bool = True,
    desc: str = "runs",
) -> dict[str, Record]:
    """Run every config that has not finished yet (resuming interrupted ones); return run_id → ``run_end``.

    With ``workers > 1`` the runs go to that many processes (one torch thread each); the parent writes every
    record to ``store`` as it arrives.
    """
    if workers < 1:
        raise ValueError(f"Invalid workers value: {workers} (must be >= 1)")
    records = store.records()
    done = finished_runs(records)
    unique: dict[str, RunConfig] = {}
    for c in configs:
        unique.setdefault(c.run_id, c)
    pending = [c for rid, c in unique.items() if rid not in done]
    _drop_checkpoints_ahead_of_the_store(pending, records, Path(checkpoint_dir))
    bar = _Progress(sum(c.epochs for c in pending), desc, progress)

    def sink(record: Record) -> None:
        store.append(record)
        bar.update(record)

    try:
        if workers == 1 or len(pending) <= 1:
            for c in pending:
                done[c.run_id] = train_run(c, sink, checkpoint_dir)
        else:
            done.update(_execute_parallel(pending, sink, str(checkpoint_dir), workers))
    finally:
        bar.close()
    return {rid: done[rid] for rid in unique}


def _execute_parallel(
    pending: list[RunConfig], sink: Callable[[Record], None], checkpoint_dir: str, workers: int
) -> dict[str, Record]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    results: dict[str, Record] = {}
    remaining = {c.run_id for c in pending}
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(q,))
    try:
        futures: list[Future[Record]] = [pool.submit(_worker_run, c, checkpoint_dir) for c in pending]
        while remaining:
            try:
                record = q.get(timeout=0.5)
            except queue_mod.Empty:
                record = None
            if record is None:
                for f in futures:
                    if f.done() and f.exception() is not None:
                        f.result()  # re-raises the worker's exception
                continue
            sink(record)
            if record.get("type") == "run_end":
                remaining.discard(record["run_id"])
                results[record["run_id"]] = record
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def group_runs(records: Iterable[Record]) -> Iterator[tuple[str, Record | None, dict[int, Record], Record | None]]:
    """(run_id, run_start, {epoch: epoch record (the last written wins)}, run_end) for every run in ``records``."""
    starts: dict[str, Record] = {}
    epochs: dict[str, dict[int, Record]] = {}
    ends: dict[str, Record] = {}
    order: list[str] = []
    for r in records:
        rid = r.get("run_id")
        if rid is None:
            continue
        if rid not in epochs:
            epochs[rid] = {}
            order.append(rid)
        t = r.get("type")
        if t == "run_start":
            starts[rid] = r
        elif t == "epoch":
            epochs[rid][int(r["epoch"])] = r
        elif t == "run_end":
            ends[rid] = r
    for rid in order:
        yield rid, starts.get(rid), epochs[rid], ends.get(rid)
