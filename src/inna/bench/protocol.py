"""The paper's protocol: tasks, suites, γ₀ selection on the training loss, then full runs over seeds.

For every (task, optimizer): each γ₀ of the optimizer's grid is trained for ``tune_epochs`` epochs with the first
seed; the γ₀ with the lowest **training** loss (mean cross-entropy on the whole training set) at the end of that
budget is selected (diverged runs count as +inf). The test set is never looked at. Then the selected γ₀ is
trained for ``epochs`` epochs with every seed; for a given seed all optimizers start from the same weights.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .config import RunConfig
from .data import DATASETS, TEXT_PREFIX, dataset_available, is_text_dataset, load_dataset
from .execution import execute_runs
from .optimizers import OptimizerSpec, parse_optimizer
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
from .training import clear_data_cache, preload_dataset

__all__ = ["LM_OPTIMIZERS", "SUITES", "Suite", "Task", "run_suite", "select_lr", "suite_with_overrides",
           "suite_with_text"]  # fmt: skip


@dataclass(frozen=True)
class Task:
    """One data set + network + training budget.

    Attributes:
        name: the task's label (``"fashion-nin"``).
        dataset, model, width: see :mod:`inna.bench.data` and :mod:`inna.bench.models`.
        epochs: the budget of the full runs; tune_epochs: the budget of the γ₀ selection (paper: 15 of 200).
        batch_size: mini-batch size (paper: 32).
        train_subset, test_subset: keep that many examples (stratified, fixed draw) to fit a CPU budget.
        target_loss: the training loss whose first crossing the report counts in steps (None: chosen by the report).
    """

    name: str
    dataset: str
    model: str
    epochs: int
    tune_epochs: int
    width: float = 1.0
    batch_size: int = 32
    train_subset: int | None = None
    test_subset: int | None = None
    target_loss: float | None = None


@dataclass(frozen=True)
class Suite:
    """A set of tasks, the optimizers compared on each, and the number of seeds of the full runs."""

    name: str
    description: str
    tasks: tuple[Task, ...]
    optimizers: tuple[str, ...]
    seeds: int = 3
    grid_points: int | None = None  # keep only this many central points of each γ₀ grid (None: all)
    optional_datasets: frozenset[str] = field(default_factory=frozenset)


_PAPER_OPTIMIZERS = ("inna", "inna-0.1-0.1", "inna-0.5-0.5", "inna-libinit", "sgd", "adagrad", "adam",
                     "sgd-momentum", "adamw")  # fmt: skip

SUITES: dict[str, Suite] = {
    "quick": Suite(
        "quick",
        "A few-minute CPU smoke comparison on offline data: MLPs on digits, MNIST-1D and a Fashion-MNIST subset, "
        "a small CNN on MNIST-5k; INNA(0.5,0.1) vs SGD, Adam, Adagrad; 5-point γ₀ grids tuned on the full budget; "
        "2 seeds.",
        (
            Task("digits-mlp", "digits", "mlp", epochs=8, tune_epochs=8),
            Task("mnist1d-mlp", "mnist1d", "mlp", epochs=8, tune_epochs=8),
            Task("mnist5k-cnn", "mnist5k", "cnn", epochs=2, tune_epochs=2, width=0.5, train_subset=2000),
            Task("fashion-mlp", "fashion-mnist", "mlp", epochs=2, tune_epochs=2, train_subset=4000, test_subset=2000),
        ),
        ("inna", "sgd", "adam", "adagrad"),
        seeds=2,
        optional_datasets=frozenset({"fashion-mnist"}),
    ),
    "paper": Suite(
        "paper",
        "The paper's protocol: Network in Network, batch 32, 200 epochs, γ₀ selected by the training loss after 15 "
        "epochs, 5 seeds, on --dataset (cifar100 by default, also cifar10, mnist, fashion-mnist).",
        (Task("cifar100-nin", "cifar100", "nin", epochs=200, tune_epochs=15),),
        _PAPER_OPTIMIZERS,
        seeds=5,
    ),
    "cpu-paper": Suite(
        "cpu-paper",
        "A CPU-sized version of the paper's protocol: a width-1/4 NiN on a 2,000-image Fashion-MNIST subset (3 epochs) "
        "and a 1-D CNN on MNIST-1D (10 epochs), batch 32, γ₀ by training loss after a short budget, 3 seeds.",
        (
            Task("fashion-nin", "fashion-mnist", "nin", 3, 1, width=0.25, train_subset=2000, test_subset=1000),
            Task("mnist1d-cnn", "mnist1d", "cnn1d", epochs=10, tune_epochs=4),
        ),
        ("inna", "inna-0.1-0.1", "inna-0.5-0.5", "inna-libinit", "sgd", "adagrad", "adam", "sgd-momentum"),
        seeds=3,
    ),
}


# ------------------------------------------------------------------ the language-model suite (issue 8, §2)

#: The LM suite's optimizers: every one under the same warmup + cosine schedule over the whole run (5 % warmup,
#: down to 0.1·γ₀, as the INNAprop paper trains GPT-2) and the same decoupled weight decay 0.01 where the
#: optimizer has one (AdamW, INNAprop, and INNA with ``decoupled_weight_decay``: θ ← (1 − γλ)θ as AdamW). Adam
#: runs without decay (torch's Adam decay is an L2 penalty in the gradient, not AdamW's). INNAprop uses
#: its authors' σ = 0.99 for language-model pre-training; INNA the guidance setting (α, β) = (0.5, 0.5) of
#: docs/results/guidance.md, with the common schedule in place of its q = 1/4 decay.
_COS = "schedule=warmup-cosine:warmup=0.05:final_lr=0.1"
LM_OPTIMIZERS: tuple[str, ...] = (
    f"adamw:beta2=0.95:{_COS}:label=AdamW(β₂=0.95)",
    f"adamw:beta2=0.999:{_COS}:label=AdamW(β₂=0.999)",
    f"adam:{_COS}:label=Adam",
    f"innaprop:sigma=0.99:{_COS}:label=INNAprop(0.1,0.9)",
    f"innaprop-1-1:sigma=0.99:{_COS}:label=INNAprop(1,1)",
    f"innaprop-2-2:sigma=0.99:{_COS}:label=INNAprop(2,2)",
    f"inna-guidance:power=0:weight_decay=0.01:decoupled_weight_decay=true:{_COS}:label=INNA(0.5,0.5)",
)

SUITES_LM = {
    "lm": Suite(
        "lm",
        "Character-level language model: a 2-block, 64-wide causal transformer (TinyGPT, ≈ 110k parameters) on "
        "4,096 windows of 64 characters of the CPython standard library's source (or --text FILE), 6 epochs "
        "(768 steps of batch 32), validation on 512 held-out windows; AdamW (β₂ 0.95, 0.999), Adam, INNAprop "
        "(0.1,0.9), (1,1), (2,2) and INNA(0.5,0.5), all with warmup + cosine; γ₀ by training loss on the full "
        "budget (5-point grids); 3 seeds.",
        (Task("stdlib-gpt", "stdlib-text", "gpt", epochs=6, tune_epochs=6, train_subset=4096, test_subset=512),),
        LM_OPTIMIZERS,
        seeds=3,
    ),
}


def suite_with_text(suite: Suite, text_file: str | os.PathLike[str]) -> Suite:
    """A copy of ``suite`` whose text tasks read ``text_file`` (``inna bench --text FILE``) instead of the stdlib
    corpus; the task is renamed ``<file stem>-<model>`` (its runs are other runs)."""
    path = Path(text_file).expanduser().resolve()
    tasks = [replace(t, name=f"{path.stem}-{t.model}", dataset=f"{TEXT_PREFIX}{path}") if is_text_dataset(t.dataset)
             else t for t in suite.tasks]  # fmt: skip
    if tasks == list(suite.tasks):
        raise ValueError(f"--text FILE: suite {suite.name!r} has no text task (use --suite lm)")
    return replace(suite, tasks=tuple(tasks))


def _text_corpora(tasks: Sequence[Task], data_dir: str | None) -> dict[str, Any]:
    """dataset → the corpus it read (source, files, SHA-256, ...), for the suite record of a text task."""
    return {t.dataset: preload_dataset(t.dataset, data_dir, t.train_subset, t.test_subset).info
            for t in tasks if is_text_dataset(t.dataset)}  # fmt: skip


SUITES.update(SUITES_LM)


def suite_with_overrides(
    suite: Suite,
    *,
    datasets: Sequence[str] | None = None,
    model: str | None = None,
    width: float | None = None,
    epochs: int | None = None,
    tune_epochs: int | None = None,
    batch_size: int | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    seeds: int | None = None,
    optimizers: Sequence[str] | None = None,
    grid_points: int | None = None,
) -> Suite:
    """A copy of ``suite`` with the command-line overrides applied (``None``: keep the suite's value).

    ``datasets`` replaces the tasks' data sets: each listed data set gets the suite's first task's network and
    budget (the paper suite's NiN on cifar100 becomes the NiN on cifar10, say).
    """
    tasks = list(suite.tasks)
    optional = suite.optional_datasets
    if datasets:
        for d in datasets:
            if d not in DATASETS and not d.startswith(TEXT_PREFIX):
                raise ValueError(f"Unknown dataset {d!r}; allowed values: {', '.join(DATASETS)}")
        by_dataset = {t.dataset: t for t in tasks}
        template = tasks[0]
        tasks = [by_dataset.get(d) or replace(template, name=f"{d}-{template.model}", dataset=d) for d in datasets]
        if suite.name == "paper":
            tasks = [replace(t, name=f"{t.dataset}-{t.model}") for t in tasks]
        optional = frozenset()
    changes: dict[str, Any] = {}
    given = {"model": model, "width": width, "epochs": epochs, "tune_epochs": tune_epochs, "batch_size": batch_size,
             "train_subset": train_subset, "test_subset": test_subset}  # fmt: skip
    for key, value in given.items():
        if value is not None:
            changes[key] = value
    for key in ("epochs", "tune_epochs", "batch_size", "train_subset", "test_subset"):
        if key in changes and changes[key] < 1:
            raise ValueError(f"Invalid {key} value: {changes[key]} (must be >= 1)")
    if "width" in changes and not changes["width"] > 0:
        raise ValueError(f"Invalid width value: {changes['width']} (must be > 0)")
    if changes:
        tasks = [replace(t, **changes) for t in tasks]
        if "model" in changes:
            tasks = [replace(t, name=f"{t.dataset}-{t.model}") for t in tasks]
    if seeds is not None and seeds < 1:
        raise ValueError(f"Invalid seeds value: {seeds} (must be >= 1)")
    opts = tuple(optimizers) if optimizers else suite.optimizers
    for o in opts:
        parse_optimizer(o)  # validates
    return replace(
        suite,
        tasks=tuple(tasks),
        optimizers=opts,
        seeds=seeds if seeds is not None else suite.seeds,
        grid_points=grid_points if grid_points is not None else suite.grid_points,
        optional_datasets=optional,
    )


def _central(grid: tuple[float, ...], n: int | None) -> tuple[float, ...]:
    if n is None or n >= len(grid):
        return grid
    start = (len(grid) - n) // 2
    return grid[start : start + n]


def select_lr(losses: dict[float, float | None]) -> float | None:
    """The γ₀ with the lowest final training loss (None / NaN / inf count as diverged); None if all diverged.

    Ties go to the smaller γ₀.
    """
    finite = {lr: v for lr, v in losses.items() if v is not None and math.isfinite(v)}
    if not finite:
        return None
    return min(sorted(finite), key=lambda lr: finite[lr])


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
    specs = {o: parse_optimizer(o) for o in suite.optimizers}
    for name in fixed_lrs:
        if name not in specs:
            raise ValueError(f"--lr {name}=...: {name!r} is not among the optimizers ({', '.join(specs)})")
    names = [s.name for s in specs.values()]
    if len(set(names)) != len(names):
        raise ValueError(f"two optimizers have the same label: {names}; give one a :label=...")

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
    meta = {"type": RecordType.SUITE, "name": suite.name, "description": suite.description, "seeds": suite.seeds,
            "tasks": [dict(t.__dict__) for t in tasks], "optimizers": list(suite.optimizers)}  # fmt: skip
    if corpora := _text_corpora(tasks, data_dir):  # which text an LM task read (only suites with one)
        meta["corpora"] = corpora
    last = latest_suite(store.records())
    if last is None or last != json.loads(json.dumps(meta)):  # the report reads the latest
        store.append(meta)
    seeds = list(range(suite.seeds))

    def config(t: Task, spec: OptimizerSpec, lr: float, seed: int, epochs: int) -> RunConfig:
        return RunConfig(t.name, t.dataset, t.model, t.width, spec, lr, seed, epochs, t.batch_size, t.train_subset,
                         t.test_subset, data_dir, device)  # fmt: skip

    # 1. γ₀ selection on the training loss, first seed, short budget
    tune: dict[tuple[str, str], dict[float, RunConfig]] = {}
    for t in tasks:
        for key, spec in specs.items():
            if key in fixed_lrs:
                continue
            grid = _central(spec.grid, suite.grid_points)
            tune[t.name, key] = {lr: config(t, spec, lr, seeds[0], t.tune_epochs) for lr in grid}
    all_tune = [c for d in tune.values() for c in d.values()]
    execute_runs(all_tune, store, ckpt, workers, progress, desc="select γ₀", log=log)
    records = store.records()
    by_id = {run.run_id: run for run in group_runs(records)}
    selections: list[Record] = []
    existing = latest_selections(records)
    for t in tasks:
        for key, spec in specs.items():
            if key in fixed_lrs:
                chosen, losses = fixed_lrs[key], {}
            else:
                grid = tune[t.name, key]
                losses = {lr: _final_train_loss(by_id.get(c.run_id)) for lr, c in grid.items()}
                chosen = select_lr(losses)
            finals = [] if chosen is None else [config(t, spec, chosen, s, t.epochs) for s in seeds]
            rec = {"type": RecordType.SELECTION, "task": t.name, "optimizer": spec.name, "spec": key, "lr": chosen,
                   "criterion": "training loss" if key not in fixed_lrs else "fixed",
                   "tune_epochs": t.tune_epochs, "losses": {f"{lr:g}": v for lr, v in losses.items()},
                   "tune_run_ids": [c.run_id for c in tune.get((t.name, key), {}).values()],
                   "run_ids": [c.run_id for c in finals]}  # fmt: skip
            if chosen is None:
                log(f"[inna bench] {t.name} {spec.name}: every γ₀ diverged during selection")
            old = existing.get((t.name, spec.name))
            if old is None or any(old.get(k) != rec[k] for k in ("lr", "run_ids", "losses", "tune_run_ids")):
                store.append(rec)
            selections.append(rec)

    # 2. full runs with the selected γ₀, every seed
    finals = [
        config(t, specs[s["spec"]], s["lr"], seed, t.epochs)
        for t in tasks
        for s in selections
        if s["task"] == t.name and s["lr"] is not None
        for seed in seeds
    ]
    execute_runs(finals, store, ckpt, workers, progress, desc="full runs", log=log)
    return selections
