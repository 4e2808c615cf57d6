r"""Across tasks: time to a target training loss, and performance profiles (Dolan & Moré, 2002) scored as in
AlgoPerf.

**Target.** Each task's target training loss is the one its suite states (``Task.target_loss``) or, by default,
:math:`1.1\times` the best baseline's mean final training loss (:func:`task_target`): a loss the best tuned
non-INNA optimizer reaches, with 10 % to spare.

**Time to target.** For a run: the steps and the training wall time (evaluation excluded) at the first epoch end
whose training loss is at or below the target (the records are per epoch, so this is the resolution). For an
optimizer: the median over seeds, a seed that never reached counting as :math:`+\infty`, so the median is "—"
unless at least half of the seeds reached it.

**Profile.** With :math:`s_{t,o}` the median steps of optimizer :math:`o` on task :math:`t`, the ratio
:math:`r_{t,o} = s_{t,o} / \min_{o'} s_{t,o'}` (:math:`+\infty` when never reached) and the profile
:math:`\rho_o(\tau) = |\{t : r_{t,o} \le \tau\}| / |T|`, the fraction of tasks on which :math:`o` is within a
factor :math:`\tau` of the fastest. Its **score** is the area under :math:`\rho_o` from :math:`\tau = 1` to
:math:`\tau_{\max} = 4`, divided by :math:`\tau_{\max} - 1`:

.. math:: \mathrm{score}_o = \frac{1}{|T|}\sum_{t} \frac{\max(0,\ \tau_{\max} - r_{t,o})}{\tau_{\max} - 1},

1 when :math:`o` is the fastest on every task, 0 when it is never within :math:`4\times` of the fastest. Steps, not
seconds, make the profile: the optimizers' step costs are close, and wall time on a shared machine is noisy.
Tasks on which no optimizer reached the target carry no information and are left out.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from .evidence import OptimizerResult, TaskResult, best_baseline, pyplot
from .records import RunRecords

__all__ = [
    "TARGET_FACTOR",
    "TAU_MAX",
    "TimeToTarget",
    "cross_task_lines",
    "plot_profile",
    "profile",
    "profile_score",
    "reach",
    "task_target",
    "time_to_target",
]

#: The default target: this factor times the best baseline's mean final training loss.
TARGET_FACTOR = 1.1
#: The profile's score integrates ρ(τ) over τ ∈ [1, TAU_MAX] (AlgoPerf's choice).
TAU_MAX = 4.0


def task_target(task: TaskResult, override: float | None = None) -> tuple[float | None, str]:
    """(the task's target training loss, how it was chosen): ``override`` (``--target-loss``), else the suite's
    own, else :data:`TARGET_FACTOR` × the best baseline's mean final training loss."""
    if override is not None:
        return override, "given"
    if task.target_loss is not None:
        return task.target_loss, "the suite's"
    base = best_baseline(task)
    if base is None:
        return None, "no baseline"
    mean = statistics.fmean(base.per_seed("train_loss").values())
    if not math.isfinite(mean):
        return None, "the best baseline diverged"
    return TARGET_FACTOR * mean, f"{TARGET_FACTOR:g} × {base.optimizer}'s mean final training loss"


def reach(run: RunRecords, target: float) -> tuple[int, float] | None:
    """(steps, training seconds) at the first epoch end with training loss <= ``target``; None: never."""
    for _, r in sorted(run.epochs.items()):
        loss = r.get("train_loss")
        if loss is not None and math.isfinite(loss) and loss <= target:
            return int(r["steps"]), float(r.get("wall_time") or 0.0)
    return None


@dataclass(frozen=True)
class TimeToTarget:
    """Median steps and seconds over seeds (None: fewer than half of the seeds reached the target)."""

    steps: float | None
    seconds: float | None
    reached: int
    runs: int

    def cell(self) -> str:
        if self.steps is None or self.seconds is None:
            return "—" if not self.runs else f"— ({self.reached}/{self.runs} seeds)"
        seeds = "" if self.reached == self.runs else f" ({self.reached}/{self.runs} seeds)"
        return f"{self.steps:,.0f} steps, {self.seconds:.1f} s{seeds}"


def time_to_target(runs: Sequence[RunRecords], target: float) -> TimeToTarget:
    """Median over ``runs`` (one per seed) of the steps and seconds to reach ``target``."""
    hits = [reach(r, target) for r in runs]
    if not hits:
        return TimeToTarget(None, None, 0, 0)
    steps = statistics.median([math.inf if h is None else h[0] for h in hits])
    seconds = statistics.median([math.inf if h is None else h[1] for h in hits])
    reached = sum(h is not None for h in hits)
    if not math.isfinite(steps):
        return TimeToTarget(None, None, reached, len(hits))
    return TimeToTarget(steps, seconds, reached, len(hits))


def profile(costs: dict[str, dict[str, float | None]]) -> dict[str, list[float]]:
    """optimizer → its ratio to the fastest on each informative task (+inf: never reached, or not run there).

    ``costs``: task → optimizer → its time to target (None: never). A task no optimizer solved is left out.
    """
    informative = [per for per in costs.values() if any(c is not None for c in per.values())]
    names = sorted({o for per in informative for o in per})
    out: dict[str, list[float]] = {o: [] for o in names}
    for per in informative:
        best = min(c for c in per.values() if c is not None)
        for o in names:
            c = per.get(o)
            out[o].append(math.inf if c is None else (c / best if best > 0 else (1.0 if c == 0 else math.inf)))
    return out


def profile_score(ratios: Sequence[float], tau_max: float = TAU_MAX) -> float:
    """The area under ρ(τ) over [1, ``tau_max``] divided by ``tau_max`` − 1 (see the module docstring)."""
    if not ratios:
        return math.nan
    return sum(max(0.0, tau_max - r) for r in ratios) / ((tau_max - 1) * len(ratios))


def plot_profile(ratios: dict[str, list[float]], path: str | os.PathLike[str], title: str = "") -> None:
    """ρ(τ) for τ from 1 to 8 (log scale), a step line per optimizer, the score's range τ <= 4 shaded."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=90)
    taus = [1.0]
    for r in sorted({r for rs in ratios.values() for r in rs if math.isfinite(r) and r <= 8}):
        taus.append(max(1.0, r))
    taus.append(8.0)
    ranked = sorted(ratios, key=lambda o: -profile_score(ratios[o]))
    for i, o in enumerate(ranked):
        rs = ratios[o]
        ys = [sum(r <= t for r in rs) / len(rs) for t in taus]
        style = "-" if i < 10 else "--"
        ax.step(taus, ys, where="post", lw=1.6, ls=style, color=f"C{i % 10}",
                label=f"{o} ({profile_score(rs):.2f})")  # fmt: skip
    ax.axvspan(1.0, TAU_MAX, color="0.92", zorder=0)
    ax.set_xscale("log", base=2)
    ax.set_xlim(1.0, 8.0)
    ax.set_ylim(-0.03, 1.03)
    ax.set(xlabel="τ: steps to target / the fastest optimizer's", ylabel="fraction of tasks within τ",
           title=title or "performance profile")  # fmt: skip
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right", title="optimizer (score)", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


PROFILE_READING = (
    "How to read it: a curve's height at τ is the fraction of tasks on which that optimizer reached the target "
    "within τ times the steps of the fastest optimizer there; higher and further left is better, and the score "
    "in the legend is the area under the curve from τ = 1 to 4 divided by 3 (1: fastest on every task; 0: never "
    "within 4×)."
)


def _costs(tasks: Sequence[TaskResult], targets: dict[str, float | None]) -> dict[str, dict[str, TimeToTarget]]:
    out: dict[str, dict[str, TimeToTarget]] = {}
    for t in tasks:
        target = targets.get(t.task)
        if target is None:
            continue
        out[t.task] = {o.optimizer: time_to_target(o.finished, target) for o in t.optimizers if o.finished}
    return out


def _default_row(o: OptimizerResult, target: float) -> TimeToTarget | None:
    finished = [r for r in o.default_records if r.status != "running"]
    return time_to_target(finished, target) if finished else None


def cross_task_lines(
    tasks: Sequence[TaskResult], targets: dict[str, tuple[float | None, str]], figure: str | None = None
) -> list[str]:
    """The markdown of the report's first section: the time-to-target table (tuned γ₀; default-lr runs below
    when there are some) and the profile scores; ``figure``: the profile PNG's path relative to the report."""
    values = {k: v[0] for k, v in targets.items()}
    ttt = _costs(tasks, values)
    if not ttt:
        return []
    ratios = profile({t: {o: c.steps for o, c in per.items()} for t, per in ttt.items()})
    names = sorted({o for per in ttt.values() for o in per},
                   key=lambda o: (-profile_score(ratios.get(o, [])) if ratios.get(o) else 1.0, o))  # fmt: skip
    cols = list(ttt)
    lines = ["## Across tasks: time to target and performance profile", "",
             "Steps and training seconds (evaluation excluded) until the training loss first reaches the task's "
             "target at an epoch end, median over seeds (a seed that never reached counts as never; — : fewer than "
             "half of the seeds reached it). Targets: "
             + "; ".join(f"{t} ≤ {values[t]:.4g} ({targets[t][1]})" for t in cols) + ".", "",
             "| optimizer | " + " | ".join(cols) + " | profile score (τ ≤ 4) |",
             "|---|" + "---|" * (len(cols) + 1)]  # fmt: skip
    for o in names:
        cells = [ttt[t][o].cell() if o in ttt[t] else "not run" for t in cols]
        score = f"{profile_score(ratios[o]):.2f}" if ratios.get(o) else "—"
        lines.append(f"| {o} | " + " | ".join(cells) + f" | {score} |")
    defaults = [(t, o) for t in tasks if t.task in ttt for o in t.optimizers if o.default_records]
    if defaults:
        lines += ["", "At the library-default lr (no tuning; same targets):", "",
                  "| optimizer (default lr) | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]  # fmt: skip
        by_name: dict[str, dict[str, str]] = {}
        for t, o in defaults:
            d = _default_row(o, values[t.task])  # type: ignore[arg-type]
            by_name.setdefault(f"{o.optimizer} ({o.default_lr:g})", {})[t.task] = d.cell() if d else "—"
        for name, per in by_name.items():
            lines.append(f"| {name} | " + " | ".join(per.get(t, "not run") for t in cols) + " |")
    if figure and ratios:
        n = len(next(iter(ratios.values())))
        lines += ["", f"![performance profile over {n} task(s)]({figure})", "", PROFILE_READING]
    return [*lines, ""]


def profile_ratios(tasks: Sequence[TaskResult], targets: dict[str, tuple[float | None, str]]) -> dict[str, list[float]]:
    """optimizer → its step ratio to the fastest on each task that some optimizer solved (for the figure)."""
    ttt = _costs(tasks, {k: v[0] for k, v in targets.items()})
    return profile({t: {o: c.steps for o, c in per.items()} for t, per in ttt.items()})
