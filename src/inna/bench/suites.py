"""The suites of ``inna bench``: what a task and a suite are (:class:`Task`, :class:`Suite`, checked when made),
the registry of named suites (:data:`SUITES`, the single source of ``--suite``'s vocabulary) and the copies the
command line makes of them (:func:`suite_with_overrides`, :func:`suite_with_text`).

How a suite runs (γ₀ selection, then the full runs) is :mod:`inna.bench.protocol`'s business.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .data import DATASETS, TEXT_PREFIX, is_text_dataset
from .models import MODELS
from .optimizers import OptimizerSpec, parse_optimizer

__all__ = [
    "CNN_ADAMW_OPTIMIZERS",
    "LM_OPTIMIZERS",
    "SUITES",
    "OptimizerEntry",
    "Suite",
    "Task",
    "optimizer_key",
    "resolve_optimizer",
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


# --------------------------------------------------------------------------------------------------- lineups

_PAPER_OPTIMIZERS = ("inna", "inna-0.1-0.1", "inna-0.5-0.5", "inna-libinit", "sgd", "adagrad", "adam",
                     "sgd-momentum", "adamw")  # fmt: skip
_CPU_OPTIMIZERS = ("inna", "inna-0.1-0.1", "inna-0.5-0.5", "inna-guidance", "innaprop", "sgd", "adagrad", "adam",
                   "sgd-momentum")  # fmt: skip
_GPU_OPTIMIZERS = ("inna", "inna-guidance", "innaprop", "sgd", "adagrad", "adam")

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

#: The same lineup on the CNN tasks of ``cpu-paper`` (INNAprop against AdamW where AdamW is the default), with
#: INNAprop's default σ = 0.999 (its authors' value outside language-model pre-training).
CNN_ADAMW_OPTIMIZERS: tuple[str, ...] = tuple(o.replace("sigma=0.99:", "") for o in LM_OPTIMIZERS)

#: The two CNN tasks of ``cpu-paper``, shared by ``cnn-adamw``.
_CPU_PAPER_TASKS = (
    Task("fashion-nin", "fashion-mnist", "nin", 5, 2, width=0.25, train_subset=3000, test_subset=1000),
    Task("mnist1d-cnn", "mnist1d", "cnn1d", epochs=20, tune_epochs=6),
)


# --------------------------------------------------------------------------------------------------- the registry

#: name → suite: every suite of ``inna bench --suite``, in the order ``--help`` lists them.
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
        _CPU_PAPER_TASKS,
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
    "cnn-adamw": Suite(
        "cnn-adamw",
        "The language-model suite's lineup on cpu-paper's two CNN tasks (the width-1/4 NiN on 3,000 Fashion-MNIST "
        "images, 5 epochs; the 1-D CNN on MNIST-1D, 20 epochs; batch 32): AdamW (β₂ 0.95, 0.999), Adam, INNAprop "
        "(0.1,0.9), (1,1), (2,2) with σ = 0.999 and INNA(0.5,0.5), all with warmup + cosine and decoupled decay "
        "0.01; γ₀ by training loss after 2 and 6 epochs; 3 seeds (570 s on 2 cores, measured).",
        _CPU_PAPER_TASKS,
        CNN_ADAMW_OPTIMIZERS,
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
