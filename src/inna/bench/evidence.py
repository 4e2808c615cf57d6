r"""What every report shows, computed in one place: the runs of each (task, optimizer) read from a results file,
mean ± std over seeds, the best baseline, and the paired verdicts against it with their equivalence margin.

:mod:`inna.bench.report` (every task), :mod:`inna.bench.lm_report` (language-model tasks, in bits per character),
:mod:`inna.bench.profiles` (time to target, performance profiles) and :mod:`inna.bench.sweep` read results through
this module; it needs neither torch nor the training code.

**The best baseline** of a task is the optimizer outside the INNA family with the lowest mean final *training* loss
(a diverged seed counts as :math:`+\infty`): the selection criterion, so the test set never chooses.

**The margin** of a paired verdict is the size of a difference that matters (:class:`Margin`): by default 10 % of
the best baseline's mean final value of the loss compared, and 1 point of test accuracy. A **tie** needs the whole
95 % interval of the paired difference inside :math:`\pm` margin; an interval that holds 0 but reaches past the
margin is **undecided** (:func:`inna.bench.stats.paired_difference`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .records import Record, RunRecords, final_epoch, group_runs, latest_selections, latest_suite
from .stats import PairedDifference, paired_difference

__all__ = [
    "INNA_FAMILIES",
    "Margin",
    "OptimizerResult",
    "TaskResult",
    "Verdict",
    "best_baseline",
    "collect",
    "compare",
    "mean_std",
    "pyplot",
    "verdict_cells",
    "verdicts",
]

#: The optimizer families compared with the best baseline (``inna.bench.optimizers.INNA_FAMILIES``; restated
#: here so that reading results needs no torch; a test checks they agree).
INNA_FAMILIES = frozenset({"inna", "innaprop"})


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend (the one place a report picks the backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def mean_std(values: Iterable[float], fmt: str) -> str:
    """``mean ± std`` of ``values`` formatted with ``fmt``; one value alone; ``—`` for none."""
    values = list(values)
    if not values:
        return "—"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.fmean(values), fmt)} ± {format(statistics.stdev(values), fmt)}"


# ------------------------------------------------------------------------------------------------ the margin


@dataclass(frozen=True)
class Margin:
    """The equivalence margins of the paired verdicts.

    Attributes:
        loss_fraction: the loss margin as a fraction of the best baseline's mean final value of that loss.
        acc_points: the test-accuracy margin, in percentage points.
    """

    loss_fraction: float = 0.1
    acc_points: float = 1.0

    def __post_init__(self) -> None:
        for key in ("loss_fraction", "acc_points"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"Invalid margin {key} value: {value} (must be a finite number > 0)")

    @classmethod
    def parse(cls, text: str) -> Margin:
        """``"0.1"`` (the loss fraction) or ``"0.1,1"`` (the loss fraction, then the accuracy points)."""
        parts = [p.strip() for p in text.split(",")]
        if not 1 <= len(parts) <= 2 or not all(parts):
            raise ValueError(f"Invalid margin {text!r}: expected LOSS_FRACTION or LOSS_FRACTION,ACC_POINTS")
        try:
            values = [float(p.rstrip("%")) / (100 if p.endswith("%") else 1) for p in parts[:1]]
            values += [float(p) for p in parts[1:]]
        except ValueError:
            raise ValueError(f"Invalid margin {text!r}: expected numbers, e.g. 0.1 or 0.1,1") from None
        return cls(*values)

    def loss(self, baseline_mean: float) -> float | None:
        """The loss margin for a best baseline whose mean final loss is ``baseline_mean`` (None: not finite)."""
        m = self.loss_fraction * abs(baseline_mean)
        return m if math.isfinite(m) and m > 0 else None

    def describe(self, what: str = "training loss") -> str:
        return (f"±{100 * self.loss_fraction:g} % of the best baseline's mean final {what} and ±{self.acc_points:g} "
                "point(s) of test accuracy")  # fmt: skip


# ------------------------------------------------------------------------------------------------ the runs


def final_by_seed(runs: Iterable[RunRecords], key: str) -> dict[int, float]:
    """seed → the final ``key`` of that seed's run: the last epoch of a completed run; a diverged run's training
    loss is +inf (its other metrics: the last recorded value). Unfinished runs are left out."""
    out: dict[int, float] = {}
    for run in runs:
        if run.start is None or run.status == "running":
            continue
        seed = int(run.start["seed"])
        last = final_epoch(run)
        if last is not None and last.get(key) is not None:
            out[seed] = float(last[key])
        elif run.status == "diverged":
            if key == "train_loss":
                out[seed] = math.inf
            else:
                values = [r.get(key) for _, r in sorted(run.epochs.items()) if r.get(key) is not None]
                if values:
                    out[seed] = float(values[-1])
    return out


@dataclass
class OptimizerResult:
    """The runs of one optimizer on one task: its selected γ₀ with every seed, and its library-default lr.

    ``tried`` is the γ₀ values the selection probed (the grid and its extensions); ``initial`` the grid alone.
    """

    optimizer: str
    lr: float | None
    grid: dict[str, float | None]
    records: list[RunRecords] = field(default_factory=list)  # per seed, the runs that have records
    family: str | None = None
    edge: str | None = None  # "low" / "high": the selection stopped at the extension bound at that end
    note: str = ""
    initial: list[float] = field(default_factory=list)
    default_lr: float | None = None
    default_records: list[RunRecords] = field(default_factory=list)

    @property
    def is_inna(self) -> bool:
        return self.family in INNA_FAMILIES

    @property
    def tried(self) -> int:
        """How many γ₀ values the selection trained (0 for a fixed γ₀)."""
        return len(self.grid)

    def per_seed(self, key: str) -> dict[int, float]:
        """seed → the final ``key`` of the tuned runs (see :func:`final_by_seed`)."""
        return final_by_seed(self.records, key)

    def default_per_seed(self, key: str) -> dict[int, float]:
        """seed → the final ``key`` of the runs at the library-default lr."""
        return final_by_seed(self.default_records, key)

    @property
    def finished(self) -> list[RunRecords]:
        """The runs that ended (completed or diverged), one per seed."""
        return [r for r in self.records if r.status != "running"]

    @property
    def runs(self) -> list[dict[int, Record]]:
        """Per finished seed: epoch → epoch record."""
        return [r.epochs for r in self.finished]

    @property
    def statuses(self) -> list[str]:
        """Per finished seed: ``completed`` or ``diverged``."""
        return [r.status for r in self.finished]

    def final(self, key: str) -> list[float]:
        """The last epoch's ``key`` of each completed run."""
        out = []
        for run in self.records:
            last = final_epoch(run)
            if last is not None and last.get(key) is not None:
                out.append(float(last[key]))
        return out

    @property
    def diverged(self) -> int:
        return sum(s == "diverged" for s in self.statuses)

    def wall_time(self) -> list[float]:
        return [float(run[max(run)].get("wall_time") or 0.0) for run in self.runs if run]


@dataclass
class TaskResult:
    """One task of a results file: its budgets, its optimizers, the target loss the suite stated (if any), and
    what identifies its data beyond the name (a text task's corpus, from its runs' ``run_start`` records)."""

    task: str
    tune_epochs: int | None
    epochs: int | None
    optimizers: list[OptimizerResult]
    target_loss: float | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def seeds(self) -> int:
        """The most finished runs (seeds) any optimizer of the task has."""
        return max((len(o.finished) for o in self.optimizers), default=0)

    @property
    def is_text(self) -> bool:
        return self.data.get("kind") == "text"


def _family_of(spec: str) -> str:
    """The family of a results file written before selections recorded it, from the spec text's name."""
    name = spec.split(":")[0]
    return "innaprop" if name.startswith("innaprop") else "inna" if name.startswith("inna") else name


def _edge(sel: Record) -> str | None:
    if "edge" in sel:
        return sel.get("edge")
    # written before the grid extension: flag a γ₀ at an end of its grid
    grid = sorted(float(k) for k in sel["losses"])
    return "grid" if sel["lr"] is not None and len(grid) >= 2 and sel["lr"] in (grid[0], grid[-1]) else None


def _runs(ids: Iterable[str], runs: dict[str, RunRecords], task: TaskResult) -> list[RunRecords]:
    out = []
    for rid in ids:
        run = runs.get(rid)
        if run is None or not run.epochs:
            continue
        out.append(run)
        if run.start is not None:
            task.epochs = run.start["config"].get("epochs")
            if run.start.get("data"):
                task.data = dict(run.start["data"])
    return out


def _in_suite_order(
    selections: dict[tuple[str, str], Record], suite: Record | None
) -> list[tuple[tuple[str, str], Record]]:
    """The selections in the suite's order of tasks and optimizers, whatever order they were written in (executors
    finish rounds in different orders); names the suite record does not list come after, by name."""
    tasks = [t.get("name") for t in (suite or {}).get("tasks", []) if isinstance(t, dict)]
    specs = list((suite or {}).get("optimizers", []))

    def rank(names: list, name: str) -> tuple[int, str]:
        return (names.index(name), "") if name in names else (len(names), name)

    return sorted(
        selections.items(),
        key=lambda item: (rank(tasks, item[0][0]), rank(specs, item[1].get("spec") or ""), item[0][1]),
    )


def collect(records: list[Record]) -> list[TaskResult]:
    """Group a results file's records into tasks and optimizers (the latest selection record wins), in the suite's
    order."""
    runs = {run.run_id: run for run in group_runs(records)}
    suite = latest_suite(records)
    targets = {t.get("name"): t.get("target_loss") for t in (suite or {}).get("tasks", []) if isinstance(t, dict)}
    tasks: dict[str, TaskResult] = {}
    for (task, opt), sel in _in_suite_order(latest_selections(records), suite):
        tr = tasks.setdefault(task, TaskResult(task, sel["tune_epochs"], None, [], targets.get(task)))
        res = OptimizerResult(opt, sel["lr"], dict(sel["losses"]), family=sel.get("family") or _family_of(sel["spec"]),
                              edge=_edge(sel), note=sel.get("note", ""), initial=list(sel.get("initial_grid") or []),
                              default_lr=sel.get("default_lr"))  # fmt: skip
        res.records = _runs(sel["run_ids"], runs, tr)
        res.default_records = _runs(sel.get("default_run_ids") or [], runs, tr)
        tr.optimizers.append(res)
    return list(tasks.values())


# ------------------------------------------------------------------------------------------------ comparisons


def best_baseline(
    task: TaskResult, key: str = "train_loss", eligible: Callable[[OptimizerResult], bool] | None = None
) -> OptimizerResult | None:
    """The non-INNA optimizer (or the ``eligible`` one) with the lowest mean final ``key`` (a diverged seed counts as
    +inf for the training loss); None without one."""
    base = [o for o in task.optimizers if (eligible(o) if eligible else not o.is_inna) and o.per_seed(key)]
    if not base:
        return None
    return min(base, key=lambda o: statistics.fmean(o.per_seed(key).values()))


def compare(
    a: dict[int, float], b: dict[int, float], *, higher_is_better: bool, margin: float | None
) -> PairedDifference | None:
    """A − B over the seeds both have (None: no common seed)."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    return paired_difference([a[s] for s in seeds], [b[s] for s in seeds], higher_is_better=higher_is_better,
                             margin=margin)  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """An optimizer against the task's best baseline, paired by seed, with the margins used."""

    optimizer: str
    baseline: str
    train_loss: PairedDifference | None  # optimizer − baseline (lower is better)
    test_acc: PairedDifference | None  # in accuracy points × 100 (higher is better)
    loss_margin: float | None = None
    acc_margin: float | None = None


def _points(values: dict[int, float]) -> dict[int, float]:
    return {s: 100 * v for s, v in values.items()}


def verdicts(task: TaskResult, margin: Margin | None = None) -> list[Verdict]:
    """Each INNA-family optimizer of ``task`` against its best baseline (empty without a baseline)."""
    margin = margin or Margin()
    base = best_baseline(task)
    if base is None:
        return []
    base_loss = base.per_seed("train_loss")
    loss_margin = margin.loss(statistics.fmean(base_loss.values()))
    out = []
    for o in task.optimizers:
        if not o.is_inna:
            continue
        loss = compare(o.per_seed("train_loss"), base_loss, higher_is_better=False, margin=loss_margin)
        acc = compare(_points(o.per_seed("test_acc")), _points(base.per_seed("test_acc")), higher_is_better=True,
                      margin=margin.acc_points)  # fmt: skip
        out.append(Verdict(o.optimizer, base.optimizer, loss, acc, loss_margin, margin.acc_points))
    return out


def verdict_cells(d: PairedDifference | None, digits: int) -> list[str]:
    """Two table cells: the mean difference with its interval, and the verdict (``undecided`` names the seeds)."""
    if d is None:
        return ["—", "—"]
    verdict = f"undecided (n = {d.n})" if d.verdict == "undecided" else d.verdict
    if d.n < 2 or not math.isfinite(d.low):
        return [f"{d.mean:+.{digits}f} (n={d.n})", verdict]
    return [f"{d.mean:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}]", verdict]
