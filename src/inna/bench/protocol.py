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
from .models import MODELS
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
from .selection import GridDecision, decide, select_lr
from .training import clear_data_cache, preload_dataset

__all__ = [
    "CNN_ADAMW_OPTIMIZERS",
    "LM_OPTIMIZERS",
    "SUITES",
    "OptimizerEntry",
    "Suite",
    "Task",
    "optimizer_key",
    "run_suite",
    "select_lr",
    "suite_with_overrides",
    "suite_with_text",
]


def _check_count(owner: str, key: str, value: int | None, *, optional: bool = False, minimum: int = 1) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"Invalid {key} value: {value} (must be an integer >= {minimum}) in {owner}")


@dataclass(frozen=True)
class Task:
    """One data set + network + training budget (checked when made: a bad value is an error naming it).

    Attributes:
        name: the task's label (``"fashion-nin"``).
        dataset, model, width: see :data:`inna.bench.data.DATASETS` and :data:`inna.bench.models.MODELS`.
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

    def __post_init__(self) -> None:
        where = f"task {self.name!r}"
        if not self.name:
            raise ValueError("a task needs a name")
        if self.dataset not in DATASETS and not is_text_dataset(self.dataset):
            raise ValueError(f"Unknown dataset {self.dataset!r}; allowed values: {', '.join(DATASETS)}")
        if self.model not in MODELS:
            raise ValueError(f"Unknown model {self.model!r}; allowed values: {', '.join(MODELS)}")
        for key in ("epochs", "tune_epochs", "batch_size"):
            _check_count(where, key, getattr(self, key))
        for key in ("train_subset", "test_subset"):
            _check_count(where, key, getattr(self, key), optional=True)
        if not (isinstance(self.width, (int, float)) and math.isfinite(self.width) and self.width > 0):
            raise ValueError(f"Invalid width value: {self.width} (must be > 0) in {where}")
        if self.target_loss is not None and not (math.isfinite(self.target_loss) and self.target_loss > 0):
            raise ValueError(f"Invalid target_loss value: {self.target_loss} (must be > 0) in {where}")

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


OptimizerEntry = str | OptimizerSpec  # a command-line spec (``inna:alpha=0.3``) or a spec object


def optimizer_key(entry: OptimizerEntry) -> str:
    """How a suite's optimizer entry is named in records and ``--lr``: the text itself, or a spec's label."""
    return entry if isinstance(entry, str) else entry.name


def resolve_optimizer(entry: OptimizerEntry) -> OptimizerSpec:
    return parse_optimizer(entry) if isinstance(entry, str) else entry


@dataclass(frozen=True)
class Suite:
    """A set of tasks, the optimizers compared on each, and the number of seeds of the full runs.

    Attributes:
        optimizers: command-line specs (``"inna"``, ``"adam:grid=1e-4,1e-3"``) or :class:`OptimizerSpec` objects.
        grid_points: keep only this many central points of each γ₀ grid (None: all).
        max_extensions: how many log steps the γ₀ grid may grow past each end (:mod:`inna.bench.selection`).
        optional_datasets: tasks on these data sets are skipped (with a line saying so) when the files are absent.
        dataset_option: the suite is meant to be run with ``--dataset``; its tasks' data sets are the default
            (they name the default output directory, ``runs/paper-cifar100``).
        workers: the suite's default ``--workers`` (None: the command's default).
    """

    name: str
    description: str
    tasks: tuple[Task, ...]
    optimizers: tuple[OptimizerEntry, ...]
    seeds: int = 3
    grid_points: int | None = None
    optional_datasets: frozenset[str] = field(default_factory=frozenset)
    max_extensions: int = 3
    dataset_option: bool = False
    workers: int | None = None

    def __post_init__(self) -> None:
        where = f"suite {self.name!r}"
        if not self.tasks:
            raise ValueError(f"{where} has no task")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"{where}: two tasks have the same name: {names}")
        _check_count(where, "seeds", self.seeds)
        _check_count(where, "grid_points", self.grid_points, optional=True)
        _check_count(where, "max_extensions", self.max_extensions, minimum=0)
        _check_count(where, "workers", self.workers, optional=True)
        unknown = sorted(set(self.optional_datasets) - set(DATASETS))
        if unknown:
            raise ValueError(f"Unknown dataset {unknown[0]!r} in {where}; allowed values: {', '.join(DATASETS)}")
        if not self.optimizers:
            raise ValueError(f"{where} has no optimizer")
        labels = [resolve_optimizer(o).name for o in self.optimizers]  # a bad spec is an error now
        if len(set(labels)) != len(labels):
            raise ValueError(f"two optimizers have the same label: {labels}; give one a :label=...")

    def default_datasets(self) -> list[str] | None:
        """The data sets that name the default output directory (suites run with ``--dataset``)."""
        return [t.dataset for t in self.tasks] if self.dataset_option else None


_PAPER_OPTIMIZERS = ("inna", "inna-0.1-0.1", "inna-0.5-0.5", "inna-libinit", "sgd", "adagrad", "adam",
                     "sgd-momentum", "adamw")  # fmt: skip
_CPU_OPTIMIZERS = ("inna", "inna-0.1-0.1", "inna-0.5-0.5", "inna-guidance", "innaprop", "sgd", "adagrad", "adam",
                   "sgd-momentum")  # fmt: skip
_GPU_OPTIMIZERS = ("inna", "inna-guidance", "innaprop", "sgd", "adagrad", "adam")

SUITES: dict[str, Suite] = {
    "quick": Suite(
        "quick",
        "A few-minute CPU smoke comparison on offline data: MLPs on digits, MNIST-1D and a Fashion-MNIST subset, "
        "a small CNN on MNIST-5k; the paper's INNA(0.5,0.1), the recommended INNA(0.5,0.5,q=0.25) and INNAprop "
        "vs SGD, Adam, Adagrad; 5-point γ₀ grids (extended past an edge) tuned on the full budget; 2 seeds.",
        (
            Task("digits-mlp", "digits", "mlp", epochs=8, tune_epochs=8),
            Task("mnist1d-mlp", "mnist1d", "mlp", epochs=8, tune_epochs=8),
            Task("mnist5k-cnn", "mnist5k", "cnn", epochs=2, tune_epochs=2, width=0.5, train_subset=2000),
            Task("fashion-mlp", "fashion-mnist", "mlp", epochs=2, tune_epochs=2, train_subset=4000, test_subset=2000),
        ),
        ("inna", "inna-guidance", "innaprop", "sgd", "adam", "adagrad"),
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
        dataset_option=True,
    ),
    "cpu-paper": Suite(
        "cpu-paper",
        "A CPU-sized version of the paper's protocol: a width-1/4 NiN on a 3,000-image Fashion-MNIST subset "
        "(5 epochs, 470 steps) and a 1-D CNN on MNIST-1D (20 epochs, 2,500 steps), batch 32, γ₀ by training loss "
        "after 2 and 6 epochs, 3 seeds; the paper's three INNA settings, the recommended one, INNAprop and four "
        "baselines (about 20 minutes on 2 cores).",
        (
            Task("fashion-nin", "fashion-mnist", "nin", 5, 2, width=0.25, train_subset=3000, test_subset=1000),
            Task("mnist1d-cnn", "mnist1d", "cnn1d", epochs=20, tune_epochs=6),
        ),
        _CPU_OPTIMIZERS,
        seeds=3,
    ),
    "cpu-long": Suite(
        "cpu-long",
        "About 32 minutes on 2 cores (--workers 2, measured): a width-1/4 NiN on a 12,000-image Fashion-MNIST subset, "
        "batch 32, 8 epochs (3,000 steps), γ₀ by training loss after 2 epochs, 3 seeds.",
        (Task("fashion-nin", "fashion-mnist", "nin", 8, 2, width=0.25, train_subset=12000, test_subset=2000),),
        ("inna", "inna-guidance", "innaprop", "sgd", "adagrad", "adam"),
        seeds=3,
    ),
    "gpu-paper": Suite(
        "gpu-paper",
        "The paper's network on one GPU in minutes: the full-width NiN (967k parameters) on the full Fashion-MNIST "
        "(and on CIFAR-10/100 when --data-dir has them), batch 32, γ₀/√(k+1) for INNA and SGD, γ₀ by training loss "
        "after 2 epochs, 8 epochs, 3 seeds; independent runs trained concurrently (--workers, default 6).",
        (
            Task("fashion-nin", "fashion-mnist", "nin", epochs=8, tune_epochs=2),
            Task("cifar10-nin", "cifar10", "nin", epochs=8, tune_epochs=2),
            Task("cifar100-nin", "cifar100", "nin", epochs=8, tune_epochs=2),
        ),
        _GPU_OPTIMIZERS,
        seeds=3,
        optional_datasets=frozenset({"cifar10", "cifar100"}),
        workers=6,
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


#: The same lineup on the CNN tasks of ``cpu-paper`` (issue 8: INNAprop against AdamW where AdamW is the
#: default), with INNAprop's default σ = 0.999 (its authors' value outside language-model pre-training).
CNN_ADAMW_OPTIMIZERS: tuple[str, ...] = tuple(o.replace("sigma=0.99:", "") for o in LM_OPTIMIZERS)

SUITES_LM["cnn-adamw"] = Suite(
    "cnn-adamw",
    "The language-model suite's lineup on cpu-paper's two CNN tasks (the width-1/4 NiN on 3,000 Fashion-MNIST "
    "images, 5 epochs; the 1-D CNN on MNIST-1D, 20 epochs; batch 32): AdamW (β₂ 0.95, 0.999), Adam, INNAprop "
    "(0.1,0.9), (1,1), (2,2) with σ = 0.999 and INNA(0.5,0.5), all with warmup + cosine and decoupled decay "
    "0.01; γ₀ by training loss after 2 and 6 epochs; 3 seeds (570 s on 2 cores, measured).",
    SUITES["cpu-paper"].tasks,
    CNN_ADAMW_OPTIMIZERS,
    seeds=3,
)

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
    optimizers: Sequence[OptimizerEntry] | None = None,
    grid_points: int | None = None,
    max_extensions: int | None = None,
) -> Suite:
    """A copy of ``suite`` with the command-line overrides applied (``None``: keep the suite's value).

    ``datasets`` replaces the tasks' data sets: each listed data set gets the suite's first task's network and
    budget (the paper suite's NiN on cifar100 becomes the NiN on cifar10, say). Values are checked by
    :class:`Task` and :class:`Suite`.
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
        if suite.dataset_option:
            tasks = [replace(t, name=f"{t.dataset}-{t.model}") for t in tasks]
        optional = frozenset()
    given = {"model": model, "width": width, "epochs": epochs, "tune_epochs": tune_epochs, "batch_size": batch_size,
             "train_subset": train_subset, "test_subset": test_subset}  # fmt: skip
    changes: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if changes:
        tasks = [replace(t, **changes) for t in tasks]
        if "model" in changes:
            tasks = [replace(t, name=f"{t.dataset}-{t.model}") for t in tasks]
    suite_changes = {"seeds": seeds, "grid_points": grid_points, "max_extensions": max_extensions,
                     "optimizers": tuple(optimizers) if optimizers else None}  # fmt: skip
    return replace(suite, tasks=tuple(tasks), optional_datasets=optional,
                   **{k: v for k, v in suite_changes.items() if v is not None})  # fmt: skip


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
    meta = {"type": RecordType.SUITE, "name": suite.name, "description": suite.description, "seeds": suite.seeds,
            "tasks": [t.to_json() for t in tasks], "optimizers": list(specs),
            "max_extensions": suite.max_extensions}  # fmt: skip
    if corpora := _text_corpora(tasks, data_dir):  # which text an LM task read (only suites with one)
        meta["corpora"] = corpora
    last = latest_suite(store.records())
    if last is None or last != json.loads(json.dumps(meta)):  # the report reads the latest
        store.append(meta)
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
            losses = {lr: _final_train_loss(by_id.get(c.run_id)) for lr, c in grid.items()}
            decisions[pair] = decide(initial[pair], losses, max_extensions=suite.max_extensions)
            probe = decisions[pair].probe
            if probe is not None:
                t, spec = by_task[pair[0]], specs[pair[1]]
                grid[probe] = config(t, spec, probe, seeds[0], t.tune_epochs)
                pending.append(grid[probe])
        round_no += 1
    records = store.records()
    by_id = {run.run_id: run for run in group_runs(records)}
    selections: list[Record] = []
    existing = latest_selections(records)
    for t in tasks:
        for key, spec in specs.items():
            edge = None
            if key in fixed_lrs:
                chosen, losses, grid = fixed_lrs[key], {}, {}
            else:
                grid = dict(sorted(tune[t.name, key].items()))
                losses = {lr: _final_train_loss(by_id.get(c.run_id)) for lr, c in grid.items()}
                chosen, edge = decisions[t.name, key].chosen, decisions[t.name, key].edge
            finals = [] if chosen is None else [config(t, spec, chosen, s, t.epochs) for s in seeds]
            rec = {"type": RecordType.SELECTION, "task": t.name, "optimizer": spec.name, "spec": key, "lr": chosen,
                   "criterion": "training loss" if key not in fixed_lrs else "fixed",
                   "tune_epochs": t.tune_epochs, "losses": {f"{lr:g}": v for lr, v in losses.items()},
                   "tune_run_ids": [c.run_id for c in grid.values()],
                   "run_ids": [c.run_id for c in finals],
                   "family": spec.family, "options": spec.options, "power": spec.power, "note": spec.note,
                   "initial_grid": list(initial.get((t.name, key), ())),
                   "max_extensions": suite.max_extensions, "edge": edge}  # fmt: skip
            if chosen is None:
                log(f"[inna bench] {t.name} {spec.name}: every γ₀ diverged during selection")
            elif edge is not None:
                log(f"[inna bench] {t.name} {spec.name}: γ₀ = {chosen:g} is still the {edge} end of the grid "
                    f"after {suite.max_extensions} extension(s): the bound was reached")  # fmt: skip
            old = existing.get((t.name, spec.name))
            if old is None or any(old.get(k) != v for k, v in json.loads(json.dumps(rec)).items()):
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
