"""Running many runs: the executor seam, the driver's session, and the local executor.

An :class:`Executor` trains the runs it is given (:meth:`Executor.submit`) and says which have finished
(:meth:`Executor.wait`). The protocol (:mod:`inna.bench.protocol`) talks to this interface only, so its rounds do
not know what runs them: :class:`LocalExecutor` (this process, or worker processes on this machine, one per
device with ``--devices``), :class:`~inna.bench.executor_slurm.SlurmExecutor` (job arrays through submitit) or
:class:`~inna.bench.executor_ray.RayExecutor` (Ray core tasks). Whatever the executor, the **driver** (the
process that holds the results directory's lock, through its :class:`Session`) is the only writer of
``results.jsonl``. A run's numbers do not depend on where it runs (see :mod:`inna.bench.training`).

**Local workers never outlive the driver.** Each worker (a ``spawn``-ed process with a pipe of its own) asks
the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG`` through ``prctl`` on Linux) and also runs a
watchdog thread that exits as soon as its parent process changes (every POSIX system), so a ``kill -9`` of the
parent, or the OOM killer, takes the workers with it within about a second; the ``multiprocessing`` resource
tracker then exits too. Workers ignore SIGINT: a Ctrl-C reaches the parent, which stops and reaps them
(``KeyboardInterrupt`` propagates, with no tracebacks from the workers). A worker that dies (killed, out of
memory) stops the suite with an error naming the run it was training and the runs left; rerunning resumes.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import signal
import sys
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from .checkpoints import prepare_checkpoints
from .config import RunConfig
from .devices import WorkerSlot, worker_slots
from .records import Record, RecordType, ResultsStore, RunIndex, encode
from .training import train_run

__all__ = ["Detached", "Executor", "LocalExecutor", "Session", "WorkerError", "execute_runs"]


class WorkerError(RuntimeError):
    """A worker (process, Slurm task, Ray task) failed or died; the message names the runs and the cause."""


class Detached(Exception):
    """The driver stops waiting while its runs go on (``--detach``, or Ctrl-C with Slurm); the message says how
    to follow them and how to attach again."""

    def __init__(self, message: str, interrupted: bool = False) -> None:
        super().__init__(message)
        self.interrupted = interrupted


class _Progress:
    def __init__(self, enabled: bool, desc: str) -> None:
        self.enabled, self.desc = enabled, desc
        self.bar: Any = None

    def expect(self, epochs: int) -> None:
        if not self.enabled or epochs <= 0:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            # a log file gets a line every 30 s, a terminal a live bar
            interval = 0.5 if sys.stderr.isatty() else 30.0
            self.bar = tqdm(total=0, desc=self.desc, unit="epoch", dynamic_ncols=True, leave=True, mininterval=interval)
        self.bar.total += epochs
        self.bar.refresh()

    def update(self, record: Record) -> None:
        if self.bar is not None and record.get("type") == RecordType.EPOCH and record.get("epoch", 0) > 0:
            self.bar.set_postfix_str(f"{record['task']} {record['optimizer']} γ₀={record['lr']:g}", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Session:
    """The driver's side of a results directory: the only writer of its results file, what the file holds (a
    :class:`~inna.bench.records.RunIndex`, kept up to date without reading the file again), the checkpoint
    directory, the log and the progress bar."""

    def __init__(
        self, store: ResultsStore, checkpoint_dir: str | os.PathLike[str], *, log: Callable[[str], Any] = print,
        progress: bool = True, desc: str = "runs",
    ) -> None:  # fmt: skip
        self.store = store
        self.out = store.path.parent
        self.checkpoint_dir = Path(checkpoint_dir)
        self.log = log
        self.index = RunIndex(store.records())
        self._progress = _Progress(progress, desc)

    def finished(self, run_id: str) -> bool:
        run = self.index.get(run_id)
        return run is not None and run.finished

    def last_recorded_epochs(self, configs: Iterable[RunConfig]) -> dict[str, int]:
        """run_id → the last epoch of the run on record (every one before it too); -1 for none."""
        out = {}
        for c in configs:
            run = self.index.get(c.run_id)
            out[c.run_id] = -1 if run is None else run.last_recorded_epoch
        return out

    def expect(self, configs: Sequence[RunConfig]) -> None:
        """The progress bar counts these runs' epochs too."""
        self._progress.expect(sum(c.epochs for c in configs))

    def write(self, record: Record) -> None:
        """Append one record (a local worker's records arrive one by one)."""
        self.write_run([record])

    def write_run(self, records: Sequence[Record]) -> None:
        """Append records with one write (every record of a run from a shard or a Ray task: the run is whole or
        absent); the index keeps them as the file has them (JSON values: enums as strings, NaN as null)."""
        stored = [json.loads(encode(r)) for r in records]
        self.store.append_many(stored)
        for r in stored:
            self.index.add(r)
            self._progress.update(r)

    def close(self) -> None:
        self._progress.close()


class Executor(ABC):
    """Trains runs for a driver. The driver calls :meth:`start` once, then :meth:`submit` and :meth:`wait` as the
    protocol goes, then :meth:`close` (always, also after an error)."""

    #: the ``--executor`` name
    name: ClassVar[str]
    session: Session

    @property
    def in_process(self) -> bool:
        """Whether the runs train in this process (which then keeps the data sets it has loaded)."""
        return False

    def start(self, session: Session) -> None:
        """Bind to the driver's session (and start what the executor needs: a cluster connection, ...)."""
        self.session = session

    @abstractmethod
    def submit(self, configs: Sequence[RunConfig]) -> None:
        """Start training these runs (none of them finished, none submitted before and still running)."""

    @abstractmethod
    def wait(self) -> list[str]:
        """Block until at least one submitted run has finished and its records are in the results file; return the
        ids of the runs that finished since the last call (``[]`` when no run is outstanding). Raises
        :class:`WorkerError` when a run cannot be completed, :class:`Detached` when the driver is to stop waiting."""

    def close(self) -> None:  # noqa: B027 (most executors have nothing to release)
        """Release what :meth:`start` took. Called once, also after an error or an interrupt."""

    def describe(self) -> str:
        """One line saying where the runs go (for the log and ``--plan``)."""
        return self.name

    def interrupted_message(self) -> str | None:
        """What to tell the user after a Ctrl-C, when it is more than "rerun to resume" (runs that go on)."""
        return None


def execute_runs(
    configs: list[RunConfig],
    store: ResultsStore,
    checkpoint_dir: str | os.PathLike[str],
    workers: int = 1,
    progress: bool = True,
    desc: str = "runs",
    log: Callable[[str], Any] = print,
    executor: Executor | None = None,
) -> dict[str, Record]:
    """Run every config that has not finished yet (resuming interrupted ones) and wait for all of them; return
    run_id → ``run_end``. Without ``executor``, a :class:`LocalExecutor` with ``workers`` processes."""
    executor = executor or LocalExecutor(workers)
    session = Session(store, checkpoint_dir, log=log, progress=progress, desc=desc)
    unique = {c.run_id: c for c in configs}
    executor.start(session)
    try:
        pending = [c for rid, c in unique.items() if not session.finished(rid)]
        if pending:
            session.expect(pending)
            executor.submit(pending)
            while executor.wait():
                pass
    finally:
        executor.close()
        session.close()
    out = {}
    for rid in unique:
        run = session.index.get(rid)
        if run is None or not run.finished or run.end is None:
            raise WorkerError(f"run {rid} did not finish")
        out[rid] = run.end
    return out


# --------------------------------------------------------------------------------------------------- local


class LocalExecutor(Executor):
    """Runs in this process (``workers == 1``, no ``devices``) or in worker processes on this machine: ``workers``
    of them, or one per entry of ``devices`` (``["cuda:0", "cuda:1"]``), each pinned to its device
    (:mod:`inna.bench.devices`). Workers start as runs arrive, stay until :meth:`close`, and send every record to
    the driver as it is made."""

    name = "local"

    def __init__(self, workers: int = 1, devices: Sequence[str] | None = None) -> None:
        if devices is not None and not devices:
            raise ValueError("--devices: no device given")
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"Invalid workers value: {workers} (must be >= 1)")
        self.slots: list[WorkerSlot] | None = worker_slots(devices) if devices else None
        self.workers = len(self.slots) if self.slots else workers
        self._queue: deque[RunConfig] = deque()  # runs for this process
        self._pool: _Pool | None = None

    @property
    def in_process(self) -> bool:
        return self.workers == 1 and not self.slots

    def describe(self) -> str:
        if self.slots:
            return f"local, one worker per device ({', '.join(s.label for s in self.slots)})"
        return "local, in this process" if self.workers == 1 else f"local, {self.workers} worker processes"

    def submit(self, configs: Sequence[RunConfig]) -> None:
        s = self.session
        prepare_checkpoints(configs, s.last_recorded_epochs(configs), s.checkpoint_dir, s.log)
        if self.workers == 1 and not self.slots:
            self._queue.extend(configs)
            return
        if self._pool is None:
            self._pool = _Pool(self.workers, str(s.checkpoint_dir), self.slots)
        self._pool.submit(configs)

    def wait(self) -> list[str]:
        if self._pool is not None:
            return self._pool.wait(self.session.write)
        if not self._queue:
            return []
        cfg = self._queue.popleft()
        train_run(cfg, self.session.write, self.session.checkpoint_dir, self.session.log)
        return [cfg.run_id]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._queue.clear()


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Make this process end when ``parent`` does: PR_SET_PDEATHSIG on Linux, a watchdog thread everywhere."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog alone
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(1)

    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=watch, name="inna-parent-watchdog", daemon=True).start()


def _worker_main(parent: int, conn: Any, checkpoint_dir: str, slot: WorkerSlot | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _die_with_parent(parent)
    if slot is not None:
        os.environ.update(slot.env)  # before torch initialises CUDA: this process sees its device only
    while True:
        cfg = conn.recv()
        if cfg is None:
            break
        if slot is not None:
            cfg = replace(cfg, device=slot.device)
        try:
            train_run(cfg, conn.send, checkpoint_dir)
        except BaseException:
            conn.send({"type": "_error", "run_id": cfg.run_id, "traceback": traceback.format_exc()})
            break
    conn.close()


class _Worker:
    def __init__(self, proc: Any, conn: Any) -> None:
        self.proc, self.conn = proc, conn
        self.run: str | None = None  # the run it is training


class _Pool:
    """Spawned worker processes, each with a pipe of its own (no shared queue, so no semaphore for the resource
    tracker to find leaked after a Ctrl-C), started as runs arrive (at most ``n``); the parent hands a run to an
    idle worker and reads every record as it comes."""

    def __init__(self, n: int, checkpoint_dir: str, slots: list[WorkerSlot] | None) -> None:
        self.ctx = mp.get_context("spawn")
        self.n, self.checkpoint_dir, self.slots = n, checkpoint_dir, slots
        self.workers: list[_Worker] = []
        self.queue: deque[RunConfig] = deque()
        self.outstanding: set[str] = set()

    def submit(self, configs: Sequence[RunConfig]) -> None:
        self.queue.extend(configs)
        self.outstanding.update(c.run_id for c in configs)
        while len(self.workers) < min(self.n, len(self.outstanding)):
            i = len(self.workers)
            slot = self.slots[i] if self.slots else None
            mine, theirs = self.ctx.Pipe()
            p = self.ctx.Process(target=_worker_main, args=(os.getpid(), theirs, self.checkpoint_dir, slot),
                                 daemon=True, name=f"inna-bench-worker-{i}")  # fmt: skip
            p.start()
            theirs.close()
            self.workers.append(_Worker(p, mine))
        self._dispatch()

    def _dispatch(self) -> None:
        for w in self.workers:
            if w.run is None and self.queue:
                cfg = self.queue.popleft()
                w.run = cfg.run_id
                try:
                    w.conn.send(cfg)
                except OSError:  # the worker died while idle
                    raise self._died(w) from None

    def _died(self, w: _Worker) -> WorkerError:
        w.proc.join(1.0)
        code = w.proc.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"status {code}"
        return WorkerError(f"a worker process died ({how}) while training run {w.run}, with runs unfinished "
                           f"({', '.join(sorted(self.outstanding))}); rerun the same command to resume")  # fmt: skip

    def wait(self, write: Callable[[Record], None]) -> list[str]:
        finished: list[str] = []
        while self.outstanding and not finished:
            busy = {w.conn: w for w in self.workers if w.run is not None}
            if not busy:
                raise WorkerError(f"no worker is training the runs left ({', '.join(sorted(self.outstanding))})")
            for conn in mp_connection.wait(list(busy), timeout=0.5):
                w = busy[conn]
                try:
                    record = conn.recv()
                except (EOFError, OSError):
                    raise self._died(w) from None
                if record.get("type") == "_error":
                    raise WorkerError(f"run {record['run_id']} failed in a worker:\n{record['traceback']}")
                write(record)
                if record.get("type") == RecordType.RUN_END:
                    self.outstanding.discard(record["run_id"])
                    finished.append(record["run_id"])
                    w.run = None
            self._dispatch()
        return finished

    def close(self) -> None:
        for w in self.workers:
            if w.proc.is_alive():
                w.proc.terminate()
        deadline = time.monotonic() + 5.0
        for w in self.workers:
            w.proc.join(max(0.0, deadline - time.monotonic()))
            if w.proc.is_alive():  # pragma: no cover - did not stop on SIGTERM
                w.proc.kill()
                w.proc.join(1.0)
            w.conn.close()
        self.workers.clear()
