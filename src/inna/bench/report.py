"""Reports from a results file: the tasks compared at once, then a markdown table per task and the paper's
figures.

First, across tasks (:mod:`inna.bench.profiles`): the time each optimizer needs to reach each task's target
training loss, and the performance profile of those times with one score per optimizer. Then for each task: the
selected γ₀ and how many values were tried (the training losses of the whole grid below, the evidence of the
selection), the final training loss and test accuracy (mean ± std over seeds), the final training loss at the
library-default lr, and a PNG with log₁₀ training loss and test accuracy against epochs: the mean curve and the
min–max band over seeds, per optimizer, as in the paper's figures; a second PNG with the training loss (log scale)
against training wall-clock time and against steps. Then the **verdicts**: for every INNA-family optimizer against
the best baseline (:func:`inna.bench.evidence.best_baseline`), the seed-paired difference of the final training
loss and of the test accuracy with its 95 % Student-t interval and one of win / loss / tie / undecided, a tie
needing the interval inside the margin (:class:`inna.bench.evidence.Margin`). A selection that stopped at the
grid-extension bound is flagged.
"""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path
from typing import Any

from .evidence import (
    INNA_FAMILIES,
    Margin,
    OptimizerResult,
    TaskResult,
    Verdict,
    best_baseline,
    collect,
    mean_std,
    pyplot,
    verdict_cells,
    verdicts,
)
from .profiles import cross_task_lines, plot_profile, profile_ratios, task_target
from .records import latest_suite, require_records

__all__ = [
    "INNA_FAMILIES",
    "OptimizerResult",
    "TaskResult",
    "Verdict",
    "best_baseline",
    "collect",
    "curves_figure",
    "verdicts",
    "write_report",
]


def _tried(task: TaskResult) -> dict[str, str]:
    """optimizer → its "γ₀ tried" cell: the count (grid + extensions), flagged † when above the task's fewest."""
    counts = {o.optimizer: o.tried for o in task.optimizers if o.tried}
    fewest = min(counts.values(), default=0)
    out = {}
    for o in task.optimizers:
        n = o.tried
        if not n:
            out[o.optimizer] = "fixed"
            continue
        ext = n - len(o.initial) if o.initial else 0
        text = f"{n}" + (f" ({len(o.initial)} + {ext})" if ext > 0 else "")
        out[o.optimizer] = text + (" †" if n > fewest else "")
    return out


def _default_cell(o: OptimizerResult) -> str:
    if o.default_lr is None or not o.default_records:
        return "—"
    losses = list(o.default_per_seed("train_loss").values())
    finite = [v for v in losses if math.isfinite(v)]
    diverged = len(losses) - len(finite)
    return f"{o.default_lr:g}: {mean_std(finite, '.4f')}" + (f" ({diverged} diverged)" if diverged else "")


def _task_table(task: TaskResult) -> list[str]:
    lines = ["| optimizer | γ₀ | γ₀ tried | final train loss | final test acc (%) | default lr: train loss | diverged"
             " | time/run (s) |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    # an optimizer with a diverged run ranks after every optimizer without one
    ranked = sorted(
        task.optimizers,
        key=lambda o: (o.diverged > 0, statistics.fmean(o.final("train_loss") or [math.inf])),
    )
    tried = _tried(task)
    for o in ranked:
        acc = [100 * a for a in o.final("test_acc")]
        times = o.wall_time()
        lr = "—" if o.lr is None else f"{o.lr:g}"
        lines.append(
            f"| {o.optimizer} | {lr}{_edge_flag(o)} | {tried[o.optimizer]} | {mean_std(o.final('train_loss'), '.4f')}"
            f" | {mean_std(acc, '.2f')} | {_default_cell(o)} | {o.diverged}/{len(o.statuses)} |"
            f" {statistics.fmean(times) if times else 0:.1f} |"
        )
    if any("†" in v for v in tried.values()):
        fewest = min(o.tried for o in task.optimizers if o.tried)
        lines += ["", f"† tried more γ₀ values than the optimizer with the fewest ({fewest}): its grid was extended "
                  "past an edge, a larger tuning budget."]  # fmt: skip
    return lines


def _edge_flag(o: OptimizerResult) -> str:
    if o.lr is None:
        return ""
    if o.edge == "grid":  # a results file from before the grid extension
        return " (grid edge)"
    if o.edge is not None:
        return f" (grid-extension bound, {o.edge} end)"
    return ""


def _verdict_table(task: TaskResult, margin: Margin) -> list[str]:
    rows = verdicts(task, margin)
    if not rows:
        return []
    loss_m = "—" if rows[0].loss_margin is None else f"±{rows[0].loss_margin:.4g}"
    lines = [f"Paired by seed against the best baseline, **{rows[0].baseline}** (mean difference [95 % interval], "
             f"verdict for the INNA-family optimizer). Margins: {loss_m} training loss ({100 * margin.loss_fraction:g} "
             f"% of {rows[0].baseline}'s mean final training loss) and ±{margin.acc_points:g} point(s) of test "
             "accuracy; tie = the whole interval inside the margin, "
             f"undecided = it holds 0 and reaches past the margin ({task.seeds} seed(s)).", "",
             "| optimizer | Δ final train loss | verdict | Δ test acc (points) | verdict |",
             "|---|---|---|---|---|"]  # fmt: skip
    for v in rows:
        cells = verdict_cells(v.train_loss, 4) + verdict_cells(v.test_acc, 2)
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
    import numpy as np

    plt = pyplot()

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
    plt = pyplot()
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
    plt = pyplot()
    fig = curves_figure(task)
    fig.savefig(path)
    plt.close(fig)


def _intro(suite: dict, command: str | None, margin: Margin) -> list[str]:
    lines = []
    if suite:
        lines += [f"Suite `{suite.get('name')}`: {suite.get('description', '')}", ""]
    if command:
        lines += ["Command:", "", f"    {command}", ""]
    lines += [
        "γ₀ was selected for each optimizer by the lowest **training** loss after the tuning budget (first seed);",
        "the test set was never used for any choice. Final numbers are at the last epoch, mean ± std over seeds.",
        "A best γ₀ at an end of its grid was probed one log step further, until it was interior or the bound",
        'was reached ("grid-extension bound": the optimum may lie beyond it); "γ₀ tried" counts every value',
        'trained. "default lr": the same optimizer at its library-default lr, without tuning. Verdicts pair the',
        "runs by seed (same initial weights and batch order): **win** / **loss** when the 95 % interval of the",
        "difference excludes 0, **tie** only when the whole interval lies inside the margin",
        f"({margin.describe()}), **undecided** otherwise.",
        "",
    ]
    return lines


def _task_section(task: TaskResult, margin: Margin, fig_dir: Path | None) -> tuple[list[str], list[str]]:
    """(the report's lines for ``task``, the summary's)."""
    header = f"## {task.task} ({task.epochs} epochs, {task.seeds} seed(s); γ₀ tuned over {task.tune_epochs} epochs)"
    table = _task_table(task)
    summary = [header, "", *table, ""]
    lines = list(summary)
    if fig_dir is not None:
        fig_dir.mkdir(exist_ok=True)
        png = fig_dir / f"{task.task}.png"
        plot_task(task, png)
        curves = fig_dir / f"{task.task}-time-steps.png"
        plot_curves(task, curves)
        lines += [f"![{task.task}](figures/{png.name})", "", f"![{task.task}: loss vs time and steps]"
                  f"(figures/{curves.name})", ""]  # fmt: skip
    verdict = _verdict_table(task, margin)
    if verdict:
        summary += [*verdict, ""]
        lines += [*verdict, ""]
    notes = [o for o in task.optimizers if o.note]
    if notes:
        lines += ["Optimizers: " + "; ".join(f"{o.optimizer}: {o.note}" for o in notes) + ".", ""]
    grid = _grid_table(task)
    if grid:
        lines += [f"Training loss after {task.tune_epochs} epochs for each γ₀ (selected in bold):", "", *grid, ""]
    return lines, summary


def write_report(
    run_dir: str | os.PathLike[str],
    *,
    target_loss: float | None = None,
    figures: bool = True,
    title: str | None = None,
    command: str | None = None,
    margin: Margin | None = None,
) -> tuple[Path, str]:
    """Write ``report.md`` (and ``figures/*.png``) in ``run_dir`` from its ``results.jsonl``.

    The report opens with the tasks compared at once (time to target, ``figures/profile.png``), then a section
    per task. ``target_loss`` replaces every task's target; ``margin`` the verdicts' (default :class:`Margin`).
    Returns the report's path and the summary tables (markdown) printed by ``inna bench``.
    """
    run_dir = Path(run_dir)
    margin = margin or Margin()
    records = require_records(run_dir / "results.jsonl")  # missing, empty or damaged: an error naming the line
    tasks = collect(records)
    lines = [f"# {title or 'INNA benchmark report'}", "", *_intro(latest_suite(records) or {}, command, margin)]
    fig_dir = run_dir / "figures" if figures else None
    targets = {t.task: task_target(t, target_loss) for t in tasks}
    figure = None
    if fig_dir is not None and (ratios := profile_ratios(tasks, targets)):
        fig_dir.mkdir(exist_ok=True)
        plot_profile(ratios, fig_dir / "profile.png", f"performance profile over {len(tasks)} task(s)")
        figure = "figures/profile.png"
    summary = cross_task_lines(tasks, targets, figure)
    lines += summary
    for task in tasks:
        task_lines, task_summary = _task_section(task, margin, fig_dir)
        lines += task_lines
        summary += task_summary
    from .lm_report import lm_sections  # LM tasks: bits per character, curves vs steps and time, paired verdicts

    lm = lm_sections(tasks, run_dir, figures, margin)
    lines += lm
    summary += lm
    path = run_dir / "report.md"
    tmp = path.with_name(".report.md.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    os.replace(tmp, path)
    return path, "\n".join(summary)
