"""Reports from a results file: a markdown table per task and the paper's figures.

For each task: the selected γ₀ (and the training losses of the whole grid, the evidence of the selection), the
final training loss and test accuracy (mean ± std over seeds), the steps to reach a target training loss, and a
PNG with log₁₀ training loss and test accuracy against epochs: the mean curve and the min–max band over seeds, per
optimizer, as in the paper's figures.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .records import Record, RunRecords, final_epoch, group_runs, latest_selections, latest_suite, require_records

__all__ = ["OptimizerResult", "TaskResult", "collect", "write_report"]


@dataclass
class OptimizerResult:
    """The full runs of one optimizer on one task."""

    optimizer: str
    lr: float | None
    grid: dict[str, float | None]
    records: list[RunRecords] = field(default_factory=list)  # per seed, the runs that have records

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
        res = OptimizerResult(opt, sel["lr"], dict(sel["losses"]))
        for rid in sel["run_ids"]:
            run = runs.get(rid)
            if run is None or not run.epochs:
                continue
            res.records.append(run)
            if run.start is not None:
                tr.epochs = run.start["config"].get("epochs")
        tr.optimizers.append(res)
    return list(tasks.values())


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
        grid = sorted(float(k) for k in o.grid)
        edge = " (grid edge)" if o.lr is not None and grid and o.lr in (grid[0], grid[-1]) else ""
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
        '"grid edge" marks a γ₀ at the end of its grid (widen the grid to be sure).',
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
            lines += [f"![{task.task}](figures/{png.name})", ""]
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
