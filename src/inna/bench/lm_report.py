"""The language-model part of a report: bits per character, curves against steps and wall time, and paired
verdicts of every optimizer against the best baseline.

Only for tasks that read text (``run_start`` records carrying a ``data`` field of kind ``text``); the general
report (:mod:`inna.bench.report`) calls :func:`lm_sections` with the tasks it collected
(:func:`inna.bench.evidence.collect`, the one reading of a results file) and appends what it returns.

Losses are the mean next-character cross-entropy in nats (what the training loop records); here they are shown
in **bits per character**, nats / ln 2. "Val" is the held-out last 10 % of the text (the runs' ``test_*``
fields). The **best baseline** is the optimizer outside the INNA family with the lowest mean final *training* loss
(:func:`inna.bench.evidence.best_baseline`; the selection criterion, so the validation split is never used to
choose). Every other optimizer is compared with it seed by seed (:func:`inna.bench.evidence.compare`): the mean
difference of final validation and training bits per character, its 95 % t-interval and the verdict, with a margin
of 10 % (``--margin``) of the best baseline's mean final value of that loss; next to it the seed-to-seed standard
deviation of the best baseline, the scale to read a difference against.
"""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path

from .evidence import (
    Margin,
    OptimizerResult,
    TaskResult,
    best_baseline,
    compare,
    mean_std,
    pyplot,
    verdict_cells,
)

__all__ = ["bits", "lm_sections", "plot_lm_task"]

_LN2 = math.log(2.0)


def bits(o: OptimizerResult, key: str, default_lr: bool = False) -> dict[int, float]:
    """seed → the final ``key`` in bits per character (a diverged run's training loss: +inf)."""
    values = o.default_per_seed(key) if default_lr else o.per_seed(key)
    return {s: v / _LN2 for s, v in values.items()}


def _curves(o: OptimizerResult, key: str, x: str) -> list[tuple[list[float], list[float]]]:
    """Per run: (x values, ``key`` in bits per character) over the recorded epochs."""
    out = []
    for run in o.finished:
        pts = [(float(r[x]), float(r[key]) / _LN2) for _, r in sorted(run.epochs.items())
               if r.get(key) is not None and r.get(x) is not None]  # fmt: skip
        if pts:
            out.append(([p[0] for p in pts], [p[1] for p in pts]))
    return out


def _finite(values: dict[int, float]) -> list[float]:
    return [v for v in values.values() if math.isfinite(v)]


def _results_table(task: TaskResult) -> tuple[list[str], list[OptimizerResult]]:
    lines = ["| optimizer | γ₀ | train loss (bits/char) | val loss (bits/char) | default lr: val loss | steps "
             "| time/run (s) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    ranked = sorted(task.optimizers, key=lambda o: statistics.fmean(_finite(bits(o, "test_loss")) or [math.inf]))
    for o in ranked:
        ends = [r.end for r in o.finished if r.end is not None]
        steps = max((int(e["steps"]) for e in ends), default=0)
        times = [float(e["wall_time"]) for e in ends]
        lr = "—" if o.lr is None else f"{o.lr:g}"
        note = f" ({o.diverged} diverged)" if o.diverged else ""
        default = "—"
        if o.default_lr is not None and o.default_records:
            default = f"{o.default_lr:g}: {mean_std(_finite(bits(o, 'test_loss', True)), '.4f')}"
        lines.append(f"| {o.optimizer}{note} | {lr} | {mean_std(_finite(bits(o, 'train_loss')), '.4f')} | "
                     f"{mean_std(_finite(bits(o, 'test_loss')), '.4f')} | {default} | {steps} | "
                     f"{statistics.fmean(times) if times else 0:.1f} |")  # fmt: skip
    return lines, ranked


def _verdict_lines(task: TaskResult, ranked: list[OptimizerResult], margin: Margin) -> list[str]:
    best = best_baseline(task)
    if best is None:
        return []
    base_val, base_train = bits(best, "test_loss"), bits(best, "train_loss")
    val_margin = margin.loss(statistics.fmean(base_val.values())) if base_val else None
    train_margin = margin.loss(statistics.fmean(base_train.values()))
    finite = _finite(base_val)
    spread = statistics.stdev(finite) if len(finite) > 1 else math.nan
    fmt = "—" if val_margin is None else f"±{val_margin:.3f}"
    lines = ["", f"Against the best baseline, **{best.optimizer}** (lowest mean final training loss outside the INNA "
             "family), paired by seed: mean difference (other − baseline) in bits per character, 95 % t-interval, "
             f"verdict for the other optimizer. Margins ({100 * margin.loss_fraction:g} % of {best.optimizer}'s "
             f"mean): {fmt} bits/char on val, ±{train_margin or math.nan:.3f} on train; {task.seeds} seeds. "
             f"Seed-to-seed std of {best.optimizer}'s val loss: {spread:.4f} bits/char.", "",
             "| optimizer | Δ val (bits/char) | verdict | Δ val / baseline seed std | Δ train (bits/char) | verdict |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for o in ranked:
        if o is best:
            continue
        val = compare(bits(o, "test_loss"), base_val, higher_is_better=False, margin=val_margin)
        train = compare(bits(o, "train_loss"), base_train, higher_is_better=False, margin=train_margin)
        ratio = "—" if val is None or not spread > 0 else f"{val.mean / spread:+.1f}"
        v_cells, t_cells = verdict_cells(val, 4), verdict_cells(train, 4)
        lines.append(f"| {o.optimizer} | {v_cells[0]} | {v_cells[1]} | {ratio} | {t_cells[0]} | {t_cells[1]} |")
    return lines


def plot_lm_task(task: TaskResult, path: str | os.PathLike[str]) -> None:
    """Training and validation bits per character against steps, and validation against training wall time:
    the mean over seeds (runs aligned by epoch) and the min–max band. The y range starts at the worst loss
    after the first epoch (the start, at the uniform guess, is above it)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), dpi=80)
    panels = (("train_loss", "steps", "training loss (bits/char)", "steps"),
              ("test_loss", "steps", "validation loss (bits/char)", "steps"),
              ("test_loss", "wall_time", "validation loss (bits/char)", "training wall time (s)"))  # fmt: skip
    for ax, (key, x, ylabel, xlabel) in zip(axes, panels):
        for i, o in enumerate(task.optimizers):
            curves = _curves(o, key, x)
            if not curves:
                continue
            n = min(len(c[1]) for c in curves)
            xs = [statistics.fmean(c[0][j] for c in curves) for j in range(n)]
            ys = [[c[1][j] for c in curves] for j in range(n)]
            colour = f"C{i}"
            ax.plot(xs, [statistics.fmean(v) for v in ys], color=colour, label=o.optimizer, lw=1.4,
                    ls="-" if o.family in ("adamw", "innaprop") else "--")  # fmt: skip
            ax.fill_between(xs, [min(v) for v in ys], [max(v) for v in ys], color=colour, alpha=0.15, lw=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    lows = [v for o in task.optimizers for k in ("train_loss", "test_loss") for v in _finite(bits(o, k))]
    firsts = [c[1][1] for o in task.optimizers for c in _curves(o, "train_loss", "steps") if len(c[1]) > 1]
    if lows and firsts:  # the interesting range: from just below the best to the worst loss after one epoch
        top = min(max(firsts), math.log2(max(2, int(task.data.get("vocab_size") or 2)))) + 0.2
        for ax in axes:
            ax.set_ylim(min(lows) - 0.1, top)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{task.task}: character-level transformer", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def lm_sections(
    tasks: list[TaskResult], run_dir: str | os.PathLike[str], figures: bool = True, margin: Margin | None = None
) -> list[str]:
    """Markdown lines for every text task of ``tasks`` (none: an empty list); figures go to
    ``run_dir/figures/<task>-lm.png``."""
    margin = margin or Margin()
    lines: list[str] = []
    for task in (t for t in tasks if t.is_text):
        d = task.data
        files = d.get("files") or []
        table, ranked = _results_table(task)
        lines += [f"## {task.task}: language model (bits per character)", "",
                  f"Text: {d.get('corpus')} from `{d.get('source')}` ({len(files)} file(s)), SHA-256 "
                  f"`{d.get('sha256')}`; vocabulary {d.get('vocab_size')} characters; windows of "
                  f"{d.get('block')} characters, last {d.get('val_fraction')} of the text held out "
                  f"({d.get('train_windows')} training / {d.get('val_windows')} validation windows before "
                  "subsetting). Loss = nats / ln 2; uniform guess = "
                  f"{math.log2(max(1, int(d.get('vocab_size') or 1))):.2f} bits/char.", "",
                  *table, *_verdict_lines(task, ranked, margin), ""]  # fmt: skip
        if figures:
            fig_dir = Path(run_dir) / "figures"
            fig_dir.mkdir(exist_ok=True)
            png = fig_dir / f"{task.task}-lm.png"
            plot_lm_task(task, png)
            lines += [f"![{task.task} language model](figures/{png.name})", ""]
    return lines
