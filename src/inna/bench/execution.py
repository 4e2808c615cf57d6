"""Running many runs: in this process or in worker processes, the parent writing every record, with progress.

:func:`execute_runs` skips the runs that already finished, prepares the checkpoints of the others
(:func:`~inna.bench.checkpoints.prepare_checkpoints`) and trains them, with ``workers == 1`` in this process,
otherwise in that many ``spawn``-ed worker processes that send their records to the parent over a queue. The
parent is the only writer of the results file. A run's numbers do not depend on where it runs (see
:mod:`inna.bench.training`).

**Workers never outlive the parent.** Each worker asks the kernel to kill it when its parent dies
(``PR_SET_PDEATHSIG`` through ``prctl`` on Linux) and also runs a watchdog thread that exits as soon as its
parent process changes (every POSIX system), so a ``kill -9`` of the parent, or the OOM killer, takes the
workers with it within about a second; the ``multiprocessing`` resource tracker then exits too. Workers ignore
SIGINT: a Ctrl-C reaches the parent, which stops and reaps them (``KeyboardInterrupt`` propagates, with no
tracebacks from the workers). A worker that dies (killed, out of memory) stops the suite with an error naming
the run it was training; rerunning resumes.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from .checkpoints import prepare_checkpoints
from .config import RunConfig
from .records import Record, RecordType, ResultsStore, finished_runs
from .training import train_run

__all__ = ["WorkerError", "execute_runs"]


class WorkerError(RuntimeError):
    """A worker process failed or died; the message names the run and the cause."""


class _Progress:
    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.bar = None
        if enabled and total > 0:
            from tqdm.auto import tqdm

            # a log file gets a line every 30 s, a terminal a live bar
            interval = 0.5 if sys.stderr.isatty() else 30.0
            self.bar = tqdm(total=total, desc=desc, unit="epoch", dynamic_ncols=True, leave=True, mininterval=interval)

    def update(self, record: Record) -> None:
        if self.bar is not None and record.get("type") == RecordType.EPOCH and record.get("epoch", 0) > 0:
            self.bar.set_postfix_str(f"{record['task']} {record['optimizer']} γ₀={record['lr']:g}", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def execute_runs(
    configs: list[RunConfig],
    store: ResultsStore,
    checkpoint_dir: str | os.PathLike[str],
    workers: int = 1,
    progress: bool = True,
    desc: str = "runs",
    log: Callable[[str], Any] = print,
) -> dict[str, Record]:
    """Run every config that has not finished yet (resuming interrupted ones); return run_id → ``run_end``.

    With ``workers > 1`` (and more than one pending run) the runs go to that many processes; the parent
    writes every record to ``store`` as it arrives.
    """
    if workers < 1:
        raise ValueError(f"Invalid workers value: {workers} (must be >= 1)")
    records = store.records()
    done = finished_runs(records)
    unique: dict[str, RunConfig] = {}
    for c in configs:
        unique.setdefault(c.run_id, c)
    pending = [c for rid, c in unique.items() if rid not in done]
    prepare_checkpoints(pending, records, checkpoint_dir, log)
    bar = _Progress(sum(c.epochs for c in pending), desc, progress)

    def sink(record: Record) -> None:
        store.append(record)
        bar.update(record)

    try:
        if workers == 1 or len(pending) <= 1:
            for c in pending:
                done[c.run_id] = train_run(c, sink, checkpoint_dir, log)
        else:
            done.update(_execute_parallel(pending, sink, str(checkpoint_dir), workers))
    finally:
        bar.close()
    return {rid: done[rid] for rid in unique}


# --------------------------------------------------------------------------------------------------- workers

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


def _worker_main(parent: int, tasks: Any, results: Any, checkpoint_dir: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _die_with_parent(parent)
    while True:
        cfg = tasks.get()
        if cfg is None:
            break
        try:
            train_run(cfg, results.put, checkpoint_dir)
        except BaseException:
            results.put({"type": "_error", "run_id": cfg.run_id, "traceback": traceback.format_exc()})
            break
    results.close()
    results.join_thread()


@contextlib.contextmanager
def _pool(n: int, checkpoint_dir: str) -> Iterator[tuple[Any, Any, list[Any]]]:
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(os.getpid(), tasks, results, checkpoint_dir), daemon=True,
                         name=f"inna-bench-worker-{i}") for i in range(n)]  # fmt: skip
    try:
        for p in procs:
            p.start()
        yield tasks, results, procs
    finally:
        started = [p for p in procs if p.pid is not None]
        for p in started:
            if p.is_alive():
                p.terminate()
        deadline = time.monotonic() + 5.0
        for p in started:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():  # pragma: no cover - did not stop on SIGTERM
                p.kill()
                p.join(1.0)
        for q in (tasks, results):
            q.cancel_join_thread()
            q.close()


def _check_workers(procs: list[Any], remaining: set[str]) -> None:
    dead = [p for p in procs if not p.is_alive() and p.exitcode != 0]
    if dead:
        code = dead[0].exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"status {code}"
        raise WorkerError(f"a worker process died ({how}) with runs unfinished ({', '.join(sorted(remaining))}); "
                          "rerun the same command to resume")  # fmt: skip
    if not any(p.is_alive() for p in procs):
        raise WorkerError(f"the workers stopped with runs unfinished: {', '.join(sorted(remaining))}")


def _execute_parallel(
    pending: list[RunConfig], sink: Callable[[Record], None], checkpoint_dir: str, workers: int
) -> dict[str, Record]:
    n = min(workers, len(pending))
    results: dict[str, Record] = {}
    remaining = {c.run_id for c in pending}
    with _pool(n, checkpoint_dir) as (tasks, queue, procs):
        for c in pending:
            tasks.put(c)
        for _ in procs:
            tasks.put(None)
        while remaining:
            try:
                record = queue.get(timeout=0.5)
            except queue_mod.Empty:
                record = None
            if record is None:
                _check_workers(procs, remaining)
                continue
            if record.get("type") == "_error":
                raise WorkerError(f"run {record['run_id']} failed in a worker:\n{record['traceback']}")
            sink(record)
            if record.get("type") == RecordType.RUN_END:
                remaining.discard(record["run_id"])
                results[record["run_id"]] = record
    return results
