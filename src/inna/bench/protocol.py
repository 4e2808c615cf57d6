"""The paper's protocol: γ₀ selection on the training loss, then full runs over seeds, for every (task, optimizer)
of a suite (:mod:`inna.bench.suites`).

For every (task, optimizer): each γ₀ of the optimizer's grid is trained for ``tune_epochs`` epochs with the first
seed; the γ₀ with the lowest **training** loss (mean cross-entropy on the whole training set) at the end of that
budget is selected (diverged runs count as +inf). The test set is never looked at. Then the selected γ₀ is
trained for ``epochs`` epochs with every seed; for a given seed all optimizers start from the same weights. With
``Suite.default_lr`` every optimizer is also trained with every seed at its library-default lr, untuned
(:data:`~inna.bench.optimizers.DEFAULT_LRS`; a run that is also a tuning run is not trained twice).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import RunConfig
from .data import dataset_available, is_text_dataset, load_dataset
from .execution import execute_runs
from .optimizers import DEFAULT_LRS, OptimizerSpec
from .records import (
    Record,
    RecordType,
    ResultsStore,
    RunRecords,
    final_epoch,
    group_runs,
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
) -> list[Record]:
    """Run ``suite`` into ``out_dir`` (``results.jsonl`` + ``checkpoints/``), resuming what is already there.

    ``fixed_lrs`` maps an optimizer's command-line name to a γ₀ that skips its selection. The optimizer specs,
    the data sets (every file read and checked), the output directory (created, writable, and locked for the
    whole run: one writer per directory) and the results file already there are checked in that order, before
    any record is written or any run starts. ``repair=True`` first moves the results file's bad lines aside
    (:func:`~inna.bench.records.repair_results`). Returns the ``selection`` records (one per task × optimizer).
    """
    # checked before any data is loaded or anything is written
    fixed_lrs = dict(fixed_lrs or {})
    specs = {optimizer_key(o): resolve_optimizer(o) for o in suite.optimizers}  # labels checked unique by Suite
    for name in fixed_lrs:
        if name not in specs:
            raise ValueError(f"--lr {name}=...: {name!r} is not among the optimizers ({', '.join(specs)})")

    with open_run_dir(out_dir) as out:  # exits at once if another process holds the directory
        results = out / "results.jsonl"
        if repair:
            log(f"[inna bench] repair: {repair_results(results).summary()}")
        store = ResultsStore(results)
        store.records()  # a bad line is an error now, naming it (and offering --repair)
        tasks: list[Task] = []
        for t in suite.tasks:
            if dataset_available(t.dataset, data_dir):
                tasks.append(t)
            elif t.dataset in suite.optional_datasets:
                log(f"[inna bench] skipping {t.name}: {t.dataset} is not installed here")
            else:
                load_dataset(t.dataset, data_dir)  # raises now, with the message saying where to put which files
                tasks.append(t)
        for t in tasks:  # a damaged data file is an error now, not in the middle of the suite
            preload_dataset(t.dataset, data_dir, t.train_subset, t.test_subset)
        if workers > 1:
            clear_data_cache()  # the workers load their own copy
        return _run_suite(suite, store, out / "checkpoints", tasks, specs, fixed_lrs, data_dir, device, workers,
                          progress, log)  # fmt: skip


def _run_suite(
    suite: Suite, store: ResultsStore, ckpt: Path, tasks: list[Task], specs: dict[str, OptimizerSpec],
    fixed_lrs: dict[str, float], data_dir: str | None, device: str, workers: int, progress: bool, log: Any,
) -> list[Record]:  # fmt: skip
    _record_suite(suite, store, tasks, specs, data_dir)
    seeds = list(range(suite.seeds))

    def config(t: Task, spec: OptimizerSpec, lr: float, seed: int, epochs: int) -> RunConfig:
        return RunConfig(t.name, t.dataset, t.model, t.width, spec, lr, seed, epochs, t.batch_size, t.train_subset,
                         t.test_subset, data_dir, device)  # fmt: skip

    # 1. γ₀ selection on the training loss, first seed, short budget: the initial grid, then rounds of extension
    #    probes (one per (task, optimizer) whose best γ₀ is still at an end), each round's runs in parallel. The
    #    decisions depend only on recorded losses, so a rerun takes the same path and finds every probe done.
    initial: dict[tuple[str, str], tuple[float, ...]] = {}
    tune: dict[tuple[str, str], dict[float, RunConfig]] = {}
    for t in tasks:
        for key, spec in specs.items():
            if key in fixed_lrs:
                continue
            initial[t.name, key] = _central(spec.grid, suite.grid_points)
            tune[t.name, key] = {lr: config(t, spec, lr, seeds[0], t.tune_epochs) for lr in initial[t.name, key]}
    by_task = {t.name: t for t in tasks}
    pending = [c for d in tune.values() for c in d.values()]
    decisions: dict[tuple[str, str], GridDecision] = {}
    round_no = 0
    while pending:
        desc = "select γ₀" if round_no == 0 else f"select γ₀, grid extension {round_no}"
        execute_runs(pending, store, ckpt, workers, progress, desc=desc, log=log)
        by_id = {run.run_id: run for run in group_runs(store.records())}
        pending = []
        for pair, grid in tune.items():
            decisions[pair] = decide(initial[pair], _losses(grid, by_id), max_extensions=suite.max_extensions)
            probe = decisions[pair].probe
            if probe is not None:
                t, spec = by_task[pair[0]], specs[pair[1]]
                grid[probe] = config(t, spec, probe, seeds[0], t.tune_epochs)
                pending.append(grid[probe])
        round_no += 1

    # 2. one selection record per (task, optimizer), then the full runs with the selected γ₀, every seed
    records = store.records()
    by_id = {run.run_id: run for run in group_runs(records)}
    existing = latest_selections(records)
    selections: list[Record] = []
    finals: list[RunConfig] = []
    for t in tasks:
        for key, spec in specs.items():
            if key in fixed_lrs:
                decision, grid = GridDecision(fixed_lrs[key], None, None), {}
            else:
                decision, grid = decisions[t.name, key], dict(sorted(tune[t.name, key].items()))
            runs = [] if decision.chosen is None else [config(t, spec, decision.chosen, s, t.epochs) for s in seeds]
            default = DEFAULT_LRS.get(spec.family) if suite.default_lr else None
            defaults = [] if default is None else [config(t, spec, default, s, t.epochs) for s in seeds]
            rec = _selection_record(suite, t, key, spec, decision, grid, _losses(grid, by_id), runs,
                                    initial.get((t.name, key), ()), fixed=key in fixed_lrs)  # fmt: skip
            if defaults:
                rec.update(default_lr=default, default_run_ids=[c.run_id for c in defaults])
            _log_selection(rec, suite, log)
            old = existing.get((t.name, spec.name))
            if old is None or any(old.get(k) != v for k, v in json.loads(json.dumps(rec)).items()):
                store.append(rec)
            selections.append(rec)
            finals += runs + defaults
    execute_runs(finals, store, ckpt, workers, progress, desc="full runs", log=log)
    return selections


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


def _losses(grid: dict[float, RunConfig], by_id: dict[str, RunRecords]) -> dict[float, float | None]:
    """γ₀ → the final training loss of its tuning run (None: diverged or not finished)."""
    return {lr: _final_train_loss(by_id.get(c.run_id)) for lr, c in grid.items()}


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
