"""The language-model part of a report: bits per character, curves against steps and wall time, and paired
verdicts of INNAprop (and the others) against the best AdamW.

Only for tasks that read text (``run_start`` records carrying a ``data`` field of kind ``text``); the general
report (:mod:`inna.bench.report`) calls :func:`lm_sections` and appends what it returns.

Losses are the mean next-character cross-entropy in nats (what the training loop records); here they are shown
in **bits per character**, nats / ln 2. "Val" is the held-out last 10 % of the text (the runs' ``test_*``
fields). The **best AdamW** is the AdamW variant with the lowest mean final *training* loss (the selection
criterion, so the validation split is never used to choose). Every other optimizer is compared with it seed by
seed (:func:`~inna.bench.stats.paired_difference`): the mean difference of final validation bits per character,
its 95 % t-interval and the verdict (win: the whole interval below 0), next to the seed-to-seed standard
deviation of the best AdamW, the scale to read a difference against.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .records import Record, RunRecords, final_epoch, group_runs, latest_selections
from .stats import paired_difference

__all__ = ["LMOptimizer", "LMTask", "collect_lm", "lm_sections", "plot_lm_task"]

_LN2 = math.log(2.0)


def _bpc(nats: float | None) -> float | None:
    return None if nats is None else nats / _LN2


@dataclass
class LMOptimizer:
    """One optimizer's full runs on one LM task, by seed."""

    label: str
    family: str
    lr: float | None
    runs: dict[int, RunRecords] = field(default_factory=dict)  # seed → runs

    def final(self, key: str) -> dict[int, float]:
        """seed → the final epoch's ``key`` in bits per character (completed runs only)."""
        out = {}
        for seed, run in self.runs.items():
            last = final_epoch(run)
            if last is not None and last.get(key) is not None:
                out[seed] = float(last[key]) / _LN2
        return out

    def curve(self, key: str, x: str) -> list[tuple[list[float], list[float]]]:
        """Per run: (x values, ``key`` in bits per character) over the recorded epochs."""
        out = []
        for run in self.runs.values():
            pts = [(float(r[x]), float(r[key]) / _LN2) for _, r in sorted(run.epochs.items())
                   if r.get(key) is not None and r.get(x) is not None]  # fmt: skip
            if pts:
                out.append(([p[0] for p in pts], [p[1] for p in pts]))
        return out


@dataclass
class LMTask:
    task: str
    data: dict[str, Any]
    optimizers: list[LMOptimizer]


def collect_lm(records: list[Record]) -> list[LMTask]:
    """The LM tasks of a results file (those whose runs read text), with each optimizer's full runs by seed."""
    runs = {run.run_id: run for run in group_runs(records)}
    tasks: dict[str, LMTask] = {}
    for (task, label), sel in latest_selections(records).items():
        opt: LMOptimizer | None = None
        for rid in sel["run_ids"]:
            run = runs.get(rid)
            if run is None or run.start is None or not run.epochs:
                continue
            data = run.start.get("data") or {}
            if data.get("kind") != "text":
                break
            cfg = run.start["config"]
            if opt is None:
                opt = LMOptimizer(label, str(cfg["optimizer"].get("family")), sel["lr"])
                tasks.setdefault(task, LMTask(task, data, [])).optimizers.append(opt)
            opt.runs[int(cfg["seed"])] = run
    return list(tasks.values())


def _mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}"


def _best_adamw(task: LMTask) -> LMOptimizer | None:
    adamws = [o for o in task.optimizers if o.family == "adamw" and o.final("train_loss")]
    return min(adamws, key=lambda o: statistics.fmean(o.final("train_loss").values()), default=None)


def _tables(task: LMTask) -> list[str]:
    lines = ["| optimizer | γ₀ | train loss (bits/char) | val loss (bits/char) | steps | time/run (s) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    ranked = sorted(task.optimizers, key=lambda o: statistics.fmean(o.final("test_loss").values() or [math.inf]))
    for o in ranked:
        ends = [r.end for r in o.runs.values() if r.end is not None]
        steps = max((int(e["steps"]) for e in ends), default=0)
        times = [float(e["wall_time"]) for e in ends]
        lr = "—" if o.lr is None else f"{o.lr:g}"
        diverged = sum(r.status == "diverged" for r in o.runs.values())
        note = f" ({diverged} diverged)" if diverged else ""
        lines.append(f"| {o.label}{note} | {lr} | {_mean_std(list(o.final('train_loss').values()))} | "
                     f"{_mean_std(list(o.final('test_loss').values()))} | {steps} | "
                     f"{statistics.fmean(times) if times else 0:.1f} |")  # fmt: skip
    best = _best_adamw(task)
    if best is None:
        return lines
    base_val, base_train = best.final("test_loss"), best.final("train_loss")
    spread = statistics.stdev(base_val.values()) if len(base_val) > 1 else math.nan
    lines += ["", f"Against the best AdamW, **{best.label}** (lowest mean final training loss), paired by seed: "
              "mean difference (other − AdamW) in bits per character, 95 % t-interval, verdict for the other "
              f"optimizer (win = lower loss for sure). Seed-to-seed std of {best.label}'s val loss: "
              f"{spread:.4f} bits/char.", "",
              "| optimizer | Δ val (bits/char) | Δ val / AdamW seed std | Δ train (bits/char) |",
              "|---|---|---|---|"]  # fmt: skip
    for o in ranked:
        if o is best:
            continue
        rows = []
        for mine, theirs in ((o.final("test_loss"), base_val), (o.final("train_loss"), base_train)):
            seeds = sorted(set(mine) & set(theirs))
            rows.append(paired_difference([mine[s] for s in seeds], [theirs[s] for s in seeds],
                                          higher_is_better=False) if seeds else None)  # fmt: skip
        val, train = rows
        ratio = "—" if val is None or not spread > 0 else f"{val.mean / spread:+.1f}"
        lines.append(f"| {o.label} | {val.format(4) if val else '—'} | {ratio} | "
                     f"{train.format(4) if train else '—'} |")  # fmt: skip
    return lines


def plot_lm_task(task: LMTask, path: str | os.PathLike[str]) -> None:
    """Training and validation bits per character against steps, and validation against training wall time:
    the mean over seeds (runs aligned by epoch) and the min–max band. The y range starts at the worst loss
    after the first epoch (the start, at the uniform guess, is above it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), dpi=80)
    panels = (("train_loss", "steps", "training loss (bits/char)", "steps"),
              ("test_loss", "steps", "validation loss (bits/char)", "steps"),
              ("test_loss", "wall_time", "validation loss (bits/char)", "training wall time (s)"))  # fmt: skip
    for ax, (key, x, ylabel, xlabel) in zip(axes, panels):
        for i, o in enumerate(task.optimizers):
            curves = o.curve(key, x)
            if not curves:
                continue
            n = min(len(c[1]) for c in curves)
            xs = [statistics.fmean(c[0][j] for c in curves) for j in range(n)]
            ys = [[c[1][j] for c in curves] for j in range(n)]
            colour = f"C{i}"
            ax.plot(xs, [statistics.fmean(v) for v in ys], color=colour, label=o.label, lw=1.4,
                    ls="-" if o.family in ("adamw", "innaprop") else "--")  # fmt: skip
            ax.fill_between(xs, [min(v) for v in ys], [max(v) for v in ys], color=colour, alpha=0.15, lw=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    lows = [v for o in task.optimizers for v in o.final("test_loss").values()]
    firsts = [c[1][1] for o in task.optimizers for c in o.curve("train_loss", "steps") if len(c[1]) > 1]
    if lows and firsts:  # the interesting range: from just below the best to the worst loss after one epoch
        top = min(max(firsts), math.log2(max(2, int(task.data.get("vocab_size") or 2)))) + 0.2
        for ax in axes:
            ax.set_ylim(min(lows) - 0.1, top)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{task.task}: character-level transformer", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def lm_sections(records: list[Record], run_dir: str | os.PathLike[str], figures: bool = True) -> list[str]:
    """Markdown lines for every LM task of ``records`` (none: an empty list); figures go to
    ``run_dir/figures/<task>-lm.png``."""
    lines: list[str] = []
    for task in collect_lm(records):
        d = task.data
        files = d.get("files") or []
        lines += [f"## {task.task}: language model (bits per character)", "",
                  f"Text: {d.get('corpus')} from `{d.get('source')}` ({len(files)} file(s)), SHA-256 "
                  f"`{d.get('sha256')}`; vocabulary {d.get('vocab_size')} characters; windows of "
                  f"{d.get('block')} characters, last {d.get('val_fraction')} of the text held out "
                  f"({d.get('train_windows')} training / {d.get('val_windows')} validation windows before "
                  "subsetting). Loss = nats / ln 2; uniform guess = "
                  f"{math.log2(max(1, int(d.get('vocab_size') or 1))):.2f} bits/char.", "",
                  *_tables(task), ""]  # fmt: skip
        if figures:
            fig_dir = Path(run_dir) / "figures"
            fig_dir.mkdir(exist_ok=True)
            png = fig_dir / f"{task.task}-lm.png"
            plot_lm_task(task, png)
            lines += [f"![{task.task} language model](figures/{png.name})", ""]
    return lines
