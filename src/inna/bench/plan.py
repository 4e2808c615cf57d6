"""``inna bench --plan``: what a suite would run, and roughly what it would cost, before anything runs.

The protocol's rounds for a suite (after the command line's overrides): the γ₀ selection's initial grids (one run
per (task, optimizer, γ₀), first seed, ``tune_epochs`` each), the grid extensions (at most ``max_extensions`` more
runs per (task, optimizer): one log step at a time, only while the best γ₀ sits at an end, so the number is
known only once it has run), and the full runs (``seeds`` per (task, optimizer), ``epochs`` each; when a task's
``tune_epochs`` equals its ``epochs``, the first seed's full run is the selection run of the chosen γ₀, not run
again). Steps per
epoch come from the training-set sizes of the data registry (or the task's ``train_subset``).

Device-hours are estimated where a cost per training step is known: ``--step-cost SECONDS`` (measure one with
``benchmarks/bench_epoch_cost.py``), or else the runs already in the output directory (their recorded training
time over their steps). They count training steps only: the per-epoch evaluation of the whole training and test
sets comes on top (about as much again on a CPU; see docs/bench.md, "Harness speed").
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from .data import is_text_dataset
from .data.registry import TRAIN_SIZES
from .records import group_runs, read_records
from .suites import Suite, Task, optimizer_key, resolve_optimizer

__all__ = ["Round", "measured_step_costs", "plan_rounds", "plan_text"]


@dataclass(frozen=True)
class Round:
    """One line of the plan: ``runs`` runs (``at_most``: an upper bound) of ``epochs`` epochs on ``task``."""

    name: str
    task: Task
    runs: int
    epochs: int
    at_most: bool = False


def steps_per_epoch(task: Task) -> int | None:
    """Mini-batch steps per epoch of ``task`` (None when the training-set size is not known in advance)."""
    size = TRAIN_SIZES.get(task.dataset)
    if size is None and is_text_dataset(task.dataset):
        size = task.train_subset  # text windows: as many as the subset keeps, when the corpus has that many
    elif size is not None and task.train_subset is not None:
        size = min(size, task.train_subset)
    return None if size is None else math.ceil(size / task.batch_size)


def plan_rounds(suite: Suite, fixed_lrs: dict[str, float] | None = None) -> list[Round]:
    """The rounds of ``suite``, per task (see the module docstring)."""
    fixed = set(fixed_lrs or {})
    out = []
    for t in suite.tasks:
        keys = [optimizer_key(o) for o in suite.optimizers]
        tuned = [resolve_optimizer(o) for o, k in zip(suite.optimizers, keys) if k not in fixed]
        grid = sum(len(s.grid) if suite.grid_points is None else min(len(s.grid), suite.grid_points) for s in tuned)
        if grid:
            out.append(Round("γ₀ selection, initial grids", t, grid, t.tune_epochs))
        if tuned and suite.max_extensions:
            out.append(Round("γ₀ selection, grid extensions", t, len(tuned) * suite.max_extensions, t.tune_epochs,
                             at_most=True))  # fmt: skip
        shared = len(tuned) if t.tune_epochs == t.epochs else 0  # seed 0's full run is the chosen γ₀'s probe
        out.append(Round("full runs" + (" (seed 0's is a selection run)" if shared else ""), t,
                         len(keys) * suite.seeds - shared, t.epochs))  # fmt: skip
    return out


def measured_step_costs(out_dir: str | Path) -> dict[str, float]:
    """task → median seconds per training step of the finished runs in ``out_dir``'s results (none: ``{}``)."""
    path = Path(out_dir) / "results.jsonl"
    if not path.is_file():
        return {}
    per_task: dict[str, list[float]] = {}
    for run in group_runs(read_records(path)):
        end = run.end
        if run.finished and end is not None and end.get("steps"):
            per_task.setdefault(str(end["task"]), []).append(float(end["wall_time"]) / int(end["steps"]))
    return {task: statistics.median(v) for task, v in per_task.items() if v}


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _hours(x: float) -> str:
    return f"{x:,.1f}" if x >= 1 else f"{x:.2g}"


def plan_text(
    suite: Suite, rounds: list[Round], costs: dict[str, float], cost_source: str, executor_lines: list[str],
) -> str:  # fmt: skip
    """The plan as text: a table of rounds, the totals, the device-hours where a cost is known, the executor."""
    head = ("| round | task | runs | epochs per run | epochs | steps per epoch | steps | device-hours |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    lines = [f"suite {suite.name}: {len(suite.tasks)} task(s) × {len(suite.optimizers)} optimizer(s), {suite.seeds} "
             f"seed(s); nothing is run.", "", head]  # fmt: skip
    total_runs = total_epochs = total_steps = 0.0
    hours: float | None = 0.0
    bound = False
    for r in rounds:
        spe = steps_per_epoch(r.task)
        epochs = r.runs * r.epochs
        steps = None if spe is None else epochs * spe
        cost = costs.get(r.task.name, costs.get("*"))
        h = None if steps is None or cost is None else steps * cost / 3600
        le = "≤ " if r.at_most else ""
        lines.append(f"| {r.name} | {r.task.name} | {le}{r.runs} | {r.epochs} | {le}{_n(epochs)} | "
                     f"{'?' if spe is None else _n(spe)} | {'?' if steps is None else le + _n(steps)} | "
                     f"{'?' if h is None else le + _hours(h)} |")  # fmt: skip
        bound |= r.at_most
        total_runs += r.runs
        total_epochs += epochs
        total_steps += steps or 0
        hours = None if hours is None or h is None else hours + h
    le = "≤ " if bound else ""
    lines.append(f"| **total** | | {le}{_n(total_runs)} | | {le}{_n(total_epochs)} | | {le}{_n(total_steps)} | "
                 f"{'?' if hours is None else le + _hours(hours)} |")  # fmt: skip
    lines.append("")
    if costs:
        shown = ", ".join(f"{k if k != '*' else 'every task'}: {v * 1000:.3g} ms" for k, v in costs.items())
        lines.append(f"cost per training step ({cost_source}): {shown}; device-hours count training steps only (the "
                     "per-epoch evaluation of the whole training and test sets comes on top)")  # fmt: skip
    else:
        lines.append("device-hours: no cost per step known (give --step-cost SECONDS, measured with "
                     "benchmarks/bench_epoch_cost.py, or rerun --plan once a few runs are in --out)")  # fmt: skip
    lines += ["", *executor_lines]
    return "\n".join(lines)
