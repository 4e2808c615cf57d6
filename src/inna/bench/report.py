"""Reports from a results file: a markdown table per task and the paper's figures.

For each task: the selected γ₀ (and the training losses of the whole grid, the evidence of the selection), the
final training loss and test accuracy (mean ± std over seeds), the steps to reach a target training loss, and a
PNG with log₁₀ training loss and test accuracy against epochs: the mean curve and the min–max band over seeds, per
optimizer, as in the paper's figures; a second PNG with the training loss (log scale) against training wall-clock
time and against steps. Then the **verdicts**: for every INNA-family optimizer against the best baseline (the
non-INNA optimizer with the lowest mean final training loss), the seed-paired difference of the final training
loss and of the test accuracy with its 95 % Student-t interval and the word win / tie / loss
(:func:`inna.bench.stats.paired_difference`). A selection that stopped at the grid-extension bound is flagged.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .records import Record, RunRecords, final_epoch, group_runs, latest_selections, latest_suite, require_records
from .stats import PairedDifference, paired_difference

__all__ = ["OptimizerResult", "TaskResult", "Verdict", "collect", "curves_figure", "verdicts", "write_report"]

#: The optimizer families compared with the best baseline (``inna.bench.optimizers.INNA_FAMILIES``; restated
#: here so that reading results needs no torch; a test checks they agree).
INNA_FAMILIES = frozenset({"inna", "innaprop"})


@dataclass
class OptimizerResult:
    """The full runs of one optimizer on one task."""

    optimizer: str
    lr: float | None
    grid: dict[str, float | None]
    records: list[RunRecords] = field(default_factory=list)  # per seed, the runs that have records
    family: str | None = None
    edge: str | None = None  # "low" / "high": the selection stopped at the extension bound at that end
    note: str = ""

    @property
    def is_inna(self) -> bool:
        return self.family in INNA_FAMILIES

    def per_seed(self, key: str) -> dict[int, float]:
        """seed → the final ``key`` of that seed's run: the last epoch of a completed run; a diverged run's
        training loss is +inf (its other metrics: the last recorded value). Unfinished runs are left out."""
        out: dict[int, float] = {}
        for run in self.records:
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

    @property
    def runs(self) -> list[dict[int, Record]]:
        """Per seed: epoch → epoch record."""
        return [r.epochs for r in self.records]

    @property
    def statuses(self) -> list[str]:
        """Per seed: ``completed``, ``diverged`` or ``running``."""
        return [r.status for r in self.records]

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

    def steps_to(self, target: float) -> list[int | None]:
        """For each run, the steps at the first epoch end with training loss <= target (None: never)."""
        out: list[int | None] = []
        for run in self.runs:
            hit = [r["steps"] for e, r in sorted(run.items()) if r.get("train_loss") is not None
                   and r["train_loss"] <= target]  # fmt: skip
            out.append(hit[0] if hit else None)
        return out

    def wall_time(self) -> list[float]:
        return [float(run[max(run)].get("wall_time") or 0.0) for run in self.runs if run]


@dataclass
class TaskResult:
    task: str
    tune_epochs: int | None
    epochs: int | None
    optimizers: list[OptimizerResult]
    target_loss: float | None = None


def collect(records: list[Record]) -> list[TaskResult]:
    """Group a results file's records into tasks and optimizers (the latest selection record wins)."""
    runs = {run.run_id: run for run in group_runs(records)}
    suite = latest_suite(records)
    targets = {t.get("name"): t.get("target_loss") for t in (suite or {}).get("tasks", []) if isinstance(t, dict)}
    tasks: dict[str, TaskResult] = {}
    for (task, opt), sel in latest_selections(records).items():
        tr = tasks.setdefault(task, TaskResult(task, sel["tune_epochs"], None, [], targets.get(task)))
        family = sel.get("family") or _family_of(sel.get("spec", ""))
        edge = sel.get("edge")
        if "edge" not in sel:  # written before the grid extension: flag a γ₀ at an end of its grid
            grid = sorted(float(k) for k in sel["losses"])
            edge = "grid" if sel["lr"] is not None and len(grid) >= 2 and sel["lr"] in (grid[0], grid[-1]) else None
        res = OptimizerResult(opt, sel["lr"], dict(sel["losses"]), family=family, edge=edge,
                              note=sel.get("note", ""))  # fmt: skip
        for rid in sel["run_ids"]:
            run = runs.get(rid)
            if run is None or not run.epochs:
                continue
            res.records.append(run)
            if run.start is not None:
                tr.epochs = run.start["config"].get("epochs")
        tr.optimizers.append(res)
    return list(tasks.values())


def _family_of(spec: str) -> str:
    """The family of a results file written before selections recorded it, from the spec text's name."""
    name = spec.split(":")[0]
    return "innaprop" if name.startswith("innaprop") else "inna" if name.startswith("inna") else name


def _mean_std(values: list[float], fmt: str) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.fmean(values), fmt)} ± {format(statistics.stdev(values), fmt)}"


def default_target(task: TaskResult) -> float | None:
    """The task's target loss, else the median over optimizers of the mean final training loss."""
    if task.target_loss is not None:
        return task.target_loss
    means = [statistics.fmean(v) for o in task.optimizers if (v := o.final("train_loss"))]
    return statistics.median(means) if means else None


def _task_table(task: TaskResult, target: float | None) -> list[str]:
    head = "| optimizer | γ₀ | final train loss | final test acc (%) | steps to loss ≤ {t} | diverged | time/run (s) |"
    lines = [head.format(t="—" if target is None else f"{target:.3g}"), "|---|---|---|---|---|---|---|"]
    # an optimizer with a diverged run ranks after every optimizer without one
    ranked = sorted(
        task.optimizers,
        key=lambda o: (o.diverged > 0, statistics.fmean(o.final("train_loss") or [math.inf])),
    )
    for o in ranked:
        edge = _edge_flag(o)
        steps = "—"
        if target is not None and o.runs:
            hits = o.steps_to(target)
            reached = [h for h in hits if h is not None]
            all_hit = len(reached) == len(hits)
            steps = f"{statistics.fmean(reached):.0f}" if all_hit else f"{len(reached)}/{len(hits)} runs"
        acc = [100 * a for a in o.final("test_acc")]
        times = o.wall_time()
        lr = "—" if o.lr is None else f"{o.lr:g}"
        lines.append(
            f"| {o.optimizer} | {lr}{edge} | {_mean_std(o.final('train_loss'), '.4f')}"
            f" | {_mean_std(acc, '.2f')} | {steps} | {o.diverged}/{len(o.statuses)} |"
            f" {statistics.fmean(times) if times else 0:.1f} |"
        )
    return lines


def _edge_flag(o: OptimizerResult) -> str:
    if o.lr is None:
        return ""
    if o.edge == "grid":  # a results file from before the grid extension
        return " (grid edge)"
    if o.edge is not None:
        return f" (grid-extension bound, {o.edge} end)"
    return ""


@dataclass(frozen=True)
class Verdict:
    """An INNA-family optimizer against the task's best baseline, paired by seed."""

    optimizer: str
    baseline: str
    train_loss: PairedDifference | None  # optimizer − baseline (lower is better)
    test_acc: PairedDifference | None  # in accuracy points × 100 (higher is better)


def best_baseline(task: TaskResult) -> OptimizerResult | None:
    """The non-INNA optimizer with the lowest mean final training loss (a diverged seed counts as +inf)."""
    base = [o for o in task.optimizers if not o.is_inna and o.per_seed("train_loss")]
    if not base:
        return None
    return min(base, key=lambda o: statistics.fmean(o.per_seed("train_loss").values()))


def _paired(a: dict[int, float], b: dict[int, float], higher_is_better: bool) -> PairedDifference | None:
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    return paired_difference([a[s] for s in seeds], [b[s] for s in seeds], higher_is_better=higher_is_better)


def verdicts(task: TaskResult) -> list[Verdict]:
    """Each INNA-family optimizer of ``task`` against its best baseline (empty without a baseline)."""
    base = best_baseline(task)
    if base is None:
        return []
    out = []
    for o in task.optimizers:
        if not o.is_inna:
            continue
        acc = {s: 100 * v for s, v in o.per_seed("test_acc").items()}
        base_acc = {s: 100 * v for s, v in base.per_seed("test_acc").items()}
        out.append(Verdict(o.optimizer, base.optimizer, _paired(o.per_seed("train_loss"), base.per_seed("train_loss"),
                                                                False), _paired(acc, base_acc, True)))  # fmt: skip
    return out


def _verdict_table(task: TaskResult) -> list[str]:
    rows = verdicts(task)
    if not rows:
        return []
    lines = [f"Paired by seed against the best baseline, **{rows[0].baseline}** (mean difference [95 % interval] "
             "(verdict for the INNA-family optimizer)):", "",
             "| optimizer | Δ final train loss | verdict | Δ test acc (points) | verdict |",
             "|---|---|---|---|---|"]  # fmt: skip
    for v in rows:
        cells = []
        for d, digits in ((v.train_loss, 4), (v.test_acc, 2)):
            if d is None:
                cells += ["—", "—"]
            elif d.n < 2 or not math.isfinite(d.low):
                cells += [f"{d.mean:+.{digits}f} (n={d.n})", d.verdict]
            else:
                cells += [f"{d.mean:+.{digits}f} [{d.low:+.{digits}f}, {d.high:+.{digits}f}]", d.verdict]
        lines.append(f"| {v.optimizer} | " + " | ".join(cells) + " |")
    return lines


def _grid_table(task: TaskResult) -> list[str]:
    lrs = sorted({float(k) for o in task.optimizers for k in o.grid})
    if not lrs:
        return []
    lines = ["| optimizer | " + " | ".join(f"{lr:g}" for lr in lrs) + " |", "|---|" + "---|" * len(lrs)]
    for o in task.optimizers:
        cells = []
        by = {float(k): v for k, v in o.grid.items()}
        for lr in lrs:
            if lr not in by:
                cells.append("")
            elif by[lr] is None:
                cells.append("diverged")
            else:
                cell = f"{by[lr]:.4f}"
                cells.append(f"**{cell}**" if o.lr == lr else cell)
        lines.append(f"| {o.optimizer} | " + " | ".join(cells) + " |")
    return lines


def plot_task(task: TaskResult, path: str | os.PathLike[str]) -> None:
    """The paper-style figure: log₁₀ training loss and test accuracy vs epochs, mean and min–max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
    cmap = plt.get_cmap("tab10")
    for i, o in enumerate(task.optimizers):
        if not o.runs:
            continue
        color = cmap(i % 10)
        for ax, key, transform in ((ax_loss, "train_loss", np.log10), (ax_acc, "test_acc", lambda v: v)):
            # every epoch that some run reached, over the runs that reached it (a diverged seed stops its own
            # curve, not the others')
            epochs = sorted(set.union(*(set(r) for r in o.runs)))
            curves = np.array([[r[e].get(key) if e in r and r[e].get(key) is not None else np.nan for e in epochs]
                               for r in o.runs], dtype=float)  # fmt: skip
            with np.errstate(all="ignore"):
                curves = transform(curves)
            if not epochs or np.all(np.isnan(curves)):
                continue
            x = np.asarray(epochs)
            ax.plot(x, np.nanmean(curves, axis=0), color=color, lw=1.5, label=o.optimizer)
            ax.fill_between(x, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0), color=color, alpha=0.2, lw=0)
    ax_loss.set(xlabel="epoch", ylabel="log₁₀ training loss", title=f"{task.task}: training loss")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", title=f"{task.task}: test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _curve(o: OptimizerResult, x_key: str) -> tuple[list[float], list[float], list[float], list[float]] | None:
    """(x, mean, min, max) of the training loss over the seeds, at every epoch that every run reached (x: the
    mean over seeds of ``x_key`` there: ``steps`` is the same for every seed, ``wall_time`` nearly)."""
    runs = [r for r in o.runs if r]
    if not runs:
        return None
    epochs = sorted(set.intersection(*(set(r) for r in runs)))
    xs, mean, low, high = [], [], [], []
    for e in epochs:
        losses = [r[e].get("train_loss") for r in runs]
        if any(v is None or not math.isfinite(v) or v <= 0 for v in losses):
            break
        xs.append(statistics.fmean(float(r[e].get(x_key) or 0.0) for r in runs))
        mean.append(statistics.fmean(losses))
        low.append(min(losses))
        high.append(max(losses))
    return (xs, mean, low, high) if xs else None


def curves_figure(task: TaskResult) -> Any:
    """A matplotlib figure: training loss (log scale) against training wall-clock time and against steps, the
    mean over seeds with the min–max band, one colour per optimizer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_steps) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
    cmap = plt.get_cmap("tab10")
    for i, o in enumerate(task.optimizers):
        for ax, key in ((ax_time, "wall_time"), (ax_steps, "steps")):
            c = _curve(o, key)
            if c is None:
                continue
            x, mean, low, high = c
            ax.plot(x, mean, color=cmap(i % 10), lw=1.5, label=o.optimizer)
            ax.fill_between(x, low, high, color=cmap(i % 10), alpha=0.2, lw=0)
    ax_time.set(xlabel="training wall-clock time (s, evaluation excluded)", ylabel="training loss",
                title=f"{task.task}: loss vs time")  # fmt: skip
    ax_steps.set(xlabel="steps (mini-batches)", ylabel="training loss", title=f"{task.task}: loss vs steps")
    for ax in (ax_time, ax_steps):
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    if ax_steps.get_legend_handles_labels()[0]:
        ax_steps.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def plot_curves(task: TaskResult, path: str | os.PathLike[str]) -> None:
    """Save :func:`curves_figure` as a PNG."""
    import matplotlib.pyplot as plt

    fig = curves_figure(task)
    fig.savefig(path)
    plt.close(fig)


def write_report(
    run_dir: str | os.PathLike[str],
    *,
    target_loss: float | None = None,
    figures: bool = True,
    title: str | None = None,
    command: str | None = None,
) -> tuple[Path, str]:
    """Write ``report.md`` (and ``figures/<task>.png``) in ``run_dir`` from its ``results.jsonl``.

    Returns the report's path and the summary tables (markdown) printed by ``inna bench``.
    """
    run_dir = Path(run_dir)
    records = require_records(run_dir / "results.jsonl")  # missing, empty or damaged: an error naming the line
    tasks = collect(records)
    suite = latest_suite(records) or {}
    lines = [f"# {title or 'INNA benchmark report'}", ""]
    if suite:
        lines += [f"Suite `{suite.get('name')}`: {suite.get('description', '')}", ""]
    if command:
        lines += ["Command:", "", f"    {command}", ""]
    lines += [
        "γ₀ was selected for each optimizer by the lowest **training** loss after the tuning budget (first seed);",
        "the test set was never used for any choice. Final numbers are at the last epoch, mean ± std over seeds.",
        "A best γ₀ at an end of its grid was probed one log step further, until it was interior or the bound",
        'was reached ("grid-extension bound": the optimum may lie beyond it). Verdicts pair the runs by seed',
        "(same initial weights and batch order): win / loss when the 95 % interval of the difference excludes 0.",
        "",
    ]
    summary: list[str] = []
    fig_dir = run_dir / "figures"
    for task in tasks:
        target = target_loss if target_loss is not None else default_target(task)
        table = _task_table(task, target)
        seeds = max((len(o.runs) for o in task.optimizers), default=0)
        header = f"## {task.task} ({task.epochs} epochs, {seeds} seeds; γ₀ tuned over {task.tune_epochs} epochs)"
        summary += [header, "", *table, ""]
        lines += [header, "", *table, ""]
        if figures:
            fig_dir.mkdir(exist_ok=True)
            png = fig_dir / f"{task.task}.png"
            plot_task(task, png)
            curves = fig_dir / f"{task.task}-time-steps.png"
            plot_curves(task, curves)
            lines += [f"![{task.task}](figures/{png.name})", "", f"![{task.task}: loss vs time and steps]"
                      f"(figures/{curves.name})", ""]  # fmt: skip
        verdict = _verdict_table(task)
        if verdict:
            summary += [*verdict, ""]
            lines += [*verdict, ""]
        notes = [o for o in task.optimizers if o.note]
        if notes:
            lines += ["Optimizers: " + "; ".join(f"{o.optimizer}: {o.note}" for o in notes) + ".", ""]
        grid = _grid_table(task)
        if grid:
            lines += [f"Training loss after {task.tune_epochs} epochs for each γ₀ (selected in bold):", "", *grid, ""]
    from .lm_report import lm_sections  # LM tasks: bits per character, curves vs steps and time, paired verdicts

    lm = lm_sections(records, run_dir, figures)
    lines += lm
    summary += lm
    path = run_dir / "report.md"
    tmp = path.with_name(".report.md.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    os.replace(tmp, path)
    return path, "\n".join(summary)
