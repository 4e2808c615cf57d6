"""The paper's protocol: γ₀ selection on the training loss, then full runs over seeds, for every (task, optimizer)
of a suite (:mod:`inna.bench.suites`).

For every (task, optimizer): each γ₀ of the optimizer's grid is trained for ``tune_epochs`` epochs with the first
seed; the γ₀ with the lowest **training** loss (mean cross-entropy on the whole training set) at the end of that
budget is selected (diverged runs count as +inf). The test set is never looked at. Then the selected γ₀ is
trained for ``epochs`` epochs with every seed; for a given seed all optimizers start from the same weights.

The runs go to an :class:`~inna.bench.execution.Executor` (this machine, Slurm, Ray: ``--executor``), which the
protocol drives through ``submit`` and ``wait`` only; it never knows which one runs them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import RunConfig
from .data import dataset_available, is_text_dataset, load_dataset
from .execution import Executor, LocalExecutor, Session, WorkerError
from .optimizers import OptimizerSpec
from .records import (
    Record,
    RecordType,
    ResultsStore,
    RunRecords,
    final_epoch,
    latest_selections,
    latest_suite,
    repair_results,
)
from .rundir import open_run_dir
from .selection import GridDecision, decide, select_lr
from .suites import Suite, Task, optimizer_key, resolve_optimizer
from .training import clear_data_cache, preload_dataset

__all__ = ["run_suite", "select_lr"]


def _text_corpora(tasks: Sequence[Task], data_dir: str | None) -> dict[str, Any]:
    """dataset → the corpus it read (source, files, SHA-256, ...), for the suite record of a text task."""
    return {t.dataset: preload_dataset(t.dataset, data_dir, t.train_subset, t.test_subset).info
            for t in tasks if is_text_dataset(t.dataset)}  # fmt: skip


def _central(grid: tuple[float, ...], n: int | None) -> tuple[float, ...]:
    if n is None or n >= len(grid):
        return grid
    start = (len(grid) - n) // 2
    return grid[start : start + n]


def _final_train_loss(run: RunRecords | None) -> float | None:
    last = None if run is None else final_epoch(run)
    return None if last is None else last.get("train_loss")


def run_suite(
    suite: Suite,
    out_dir: str | os.PathLike[str],
    *,
    data_dir: str | None = None,
    device: str = "cpu",
    workers: int = 1,
    fixed_lrs: dict[str, float] | None = None,
    progress: bool = True,
    log: Any = print,
    repair: bool = False,
    executor: Executor | None = None,
) -> list[Record]:
    """Run ``suite`` into ``out_dir`` (``results.jsonl`` + ``checkpoints/``), resuming what is already there.

    ``fixed_lrs`` maps an optimizer's command-line name to a γ₀ that skips its selection. The optimizer specs,
    the data sets (every file read and checked), the output directory (created, writable, and locked for the
    whole run: one writer per directory) and the results file already there are checked in that order, before
    any record is written or any run starts. ``repair=True`` first moves the results file's bad lines aside
    (:func:`~inna.bench.records.repair_results`). The runs go to ``executor`` (default: a
    :class:`~inna.bench.execution.LocalExecutor` with ``workers`` processes). Returns the ``selection`` records
    (one per task × optimizer).
    """
    # checked before any data is loaded or anything is written
    fixed_lrs = dict(fixed_lrs or {})
    specs = {optimizer_key(o): resolve_optimizer(o) for o in suite.optimizers}  # labels checked unique by Suite
    for name in fixed_lrs:
        if name not in specs:
            raise ValueError(f"--lr {name}=...: {name!r} is not among the optimizers ({', '.join(specs)})")
    executor = executor or LocalExecutor(workers)

    with open_run_dir(out_dir) as out:  # exits at once if another process holds the directory
        results = out / "results.jsonl"
        if repair:
            log(f"[inna bench] repair: {repair_results(results).summary()}")
        store = ResultsStore(results)
        store.records()  # a bad line is an error now, naming it (and offering --repair)
        tasks = _available_tasks(suite, data_dir, log)
        if not executor.in_process:
            clear_data_cache()  # the workers load their own copy
        session = Session(store, out / "checkpoints", log=log, progress=progress, desc=suite.name)
        executor.start(session)
        try:
            _record_suite(suite, store, tasks, specs, data_dir)
            return _Driver(suite, session, executor, tasks, specs, fixed_lrs, data_dir, device).run()
        finally:
            executor.close()
            session.close()


def _available_tasks(suite: Suite, data_dir: str | None, log: Any) -> list[Task]:
    """The suite's tasks whose data is here (an optional data set that is not is skipped, with a line saying so),
    every file read and checked now, not in the middle of the suite."""
    tasks: list[Task] = []
    for t in suite.tasks:
        if dataset_available(t.dataset, data_dir):
            tasks.append(t)
        elif t.dataset in suite.optional_datasets:
            log(f"[inna bench] skipping {t.name}: {t.dataset} is not installed here")
        else:
            load_dataset(t.dataset, data_dir)  # raises now, with the message saying where to put which files
            tasks.append(t)
    for t in tasks:
        preload_dataset(t.dataset, data_dir, t.train_subset, t.test_subset)
    return tasks


@dataclass
class _Pair:
    """One (task, optimizer) on its way: γ₀ probes (``grid``), then the selection, then the full runs."""

    task: Task
    key: str
    spec: OptimizerSpec
    initial: tuple[float, ...] = ()
    grid: dict[float, RunConfig] = field(default_factory=dict)
    waiting: set[str] = field(default_factory=set)
    selection: Record | None = None


class _Driver:
    """The protocol as events: each (task, optimizer) goes on as soon as its own runs have finished.

    1. γ₀ selection on the training loss, first seed, short budget: the initial grid, then extension probes while
       the best γ₀ sits at an end (:func:`~inna.bench.selection.decide`);
    2. the ``selection`` record, then the full runs with the selected γ₀, every seed: a pair's full runs start as
       soon as its γ₀ is chosen, without waiting for the other pairs.

    Decisions depend only on recorded losses, so a rerun takes the same path and finds every finished run done
    (it is not submitted again). Runs are handed to the executor in batches, one per turn of the loop.
    """

    def __init__(
        self, suite: Suite, session: Session, executor: Executor, tasks: list[Task], specs: dict[str, OptimizerSpec],
        fixed_lrs: dict[str, float], data_dir: str | None, device: str,
    ) -> None:  # fmt: skip
        self.suite, self.session, self.executor = suite, session, executor
        self.fixed_lrs, self.data_dir, self.device = fixed_lrs, data_dir, device
        self.pairs = [_Pair(t, key, spec) for t in tasks for key, spec in specs.items()]
        self.existing = latest_selections(session.store.records())
        self.owners: dict[str, list[_Pair]] = {}
        self.batch: list[RunConfig] = []
        self.ready: list[str] = []  # requested runs found finished: no executor needed
        self.submitted: set[str] = set()

    def config(self, pair: _Pair, lr: float, seed: int, epochs: int) -> RunConfig:
        t = pair.task
        return RunConfig(t.name, t.dataset, t.model, t.width, pair.spec, lr, seed, epochs, t.batch_size,
                         t.train_subset, t.test_subset, self.data_dir, self.device)  # fmt: skip

    def run(self) -> list[Record]:
        for pair in self.pairs:
            if pair.key in self.fixed_lrs:
                self.select(pair, GridDecision(self.fixed_lrs[pair.key], None, None))
            else:
                pair.initial = _central(pair.spec.grid, self.suite.grid_points)
                pair.grid = {lr: self.config(pair, lr, 0, pair.task.tune_epochs) for lr in pair.initial}
                self.request(pair, list(pair.grid.values()))
        while True:
            if self.batch:
                self.session.expect(self.batch)
                self.executor.submit(self.batch)
                self.batch = []
            if self.ready:
                done, self.ready = self.ready, []
            else:
                done = self.executor.wait()
                if not done:
                    break
            for rid in done:
                for pair in self.owners.pop(rid, []):
                    pair.waiting.discard(rid)
                    if not pair.waiting and pair.selection is None:
                        self.advance(pair)
        unfinished = [f"{p.task.name} {p.spec.name}" for p in self.pairs if p.selection is None or p.waiting]
        if unfinished:
            raise WorkerError(f"the executor stopped with runs unfinished ({', '.join(unfinished)})")
        return [p.selection for p in self.pairs if p.selection is not None]

    def request(self, pair: _Pair, configs: list[RunConfig]) -> None:
        for c in configs:
            pair.waiting.add(c.run_id)
            self.owners.setdefault(c.run_id, []).append(pair)
            if self.session.finished(c.run_id):
                self.ready.append(c.run_id)
            elif c.run_id not in self.submitted:
                self.submitted.add(c.run_id)
                self.batch.append(c)

    def advance(self, pair: _Pair) -> None:
        """Every probe of ``pair`` so far has finished: probe the next γ₀, or select."""
        decision = decide(pair.initial, self.losses(pair), max_extensions=self.suite.max_extensions)
        if decision.probe is None:
            self.select(pair, decision)
            return
        c = self.config(pair, decision.probe, 0, pair.task.tune_epochs)
        pair.grid[decision.probe] = c
        self.request(pair, [c])

    def losses(self, pair: _Pair) -> dict[float, float | None]:
        return {lr: _final_train_loss(self.session.index.get(c.run_id)) for lr, c in sorted(pair.grid.items())}

    def select(self, pair: _Pair, decision: GridDecision) -> None:
        fixed = pair.key in self.fixed_lrs
        pair.grid = dict(sorted(pair.grid.items()))
        t = pair.task
        runs = [] if decision.chosen is None else [self.config(pair, decision.chosen, s, t.epochs)
                                                   for s in range(self.suite.seeds)]  # fmt: skip
        rec = _selection_record(self.suite, t, pair.key, pair.spec, decision, pair.grid, self.losses(pair), runs,
                                pair.initial, fixed=fixed)  # fmt: skip
        _log_selection(rec, self.suite, self.session.log)
        old = self.existing.get((t.name, pair.spec.name))
        if old is None or any(old.get(k) != v for k, v in json.loads(json.dumps(rec)).items()):
            self.session.write(rec)
        pair.selection = rec
        self.request(pair, runs)


def _record_suite(
    suite: Suite, store: ResultsStore, tasks: list[Task], specs: dict[str, OptimizerSpec], data_dir: str | None
) -> None:
    """Append the suite record unless the latest one is the same (the report reads the latest)."""
    meta = {"type": RecordType.SUITE, "name": suite.name, "description": suite.description, "seeds": suite.seeds,
            "tasks": [t.to_json() for t in tasks], "optimizers": list(specs),
            "max_extensions": suite.max_extensions}  # fmt: skip
    if corpora := _text_corpora(tasks, data_dir):  # which text an LM task read (only suites with one)
        meta["corpora"] = corpora
    last = latest_suite(store.records())
    if last is None or last != json.loads(json.dumps(meta)):
        store.append(meta)


def _selection_record(
    suite: Suite, t: Task, key: str, spec: OptimizerSpec, decision: GridDecision, grid: dict[float, RunConfig],
    losses: dict[float, float | None], runs: list[RunConfig], initial: Sequence[float], *, fixed: bool,
) -> Record:  # fmt: skip
    """The ``selection`` record of (task, optimizer): the chosen γ₀, how, from which runs, and its full runs."""
    return {"type": RecordType.SELECTION, "task": t.name, "optimizer": spec.name, "spec": key, "lr": decision.chosen,
            "criterion": "fixed" if fixed else "training loss", "tune_epochs": t.tune_epochs,
            "losses": {f"{lr:g}": v for lr, v in losses.items()}, "tune_run_ids": [c.run_id for c in grid.values()],
            "run_ids": [c.run_id for c in runs], "family": spec.family, "options": spec.options, "power": spec.power,
            "note": spec.note, "initial_grid": list(initial), "max_extensions": suite.max_extensions,
            "edge": decision.edge}  # fmt: skip


def _log_selection(rec: Record, suite: Suite, log: Any) -> None:
    if rec["lr"] is None:
        log(f"[inna bench] {rec['task']} {rec['optimizer']}: every γ₀ diverged during selection")
    elif rec["edge"] is not None:
        log(f"[inna bench] {rec['task']} {rec['optimizer']}: γ₀ = {rec['lr']:g} is still the {rec['edge']} end of "
            f"the grid after {suite.max_extensions} extension(s): the bound was reached")  # fmt: skip
