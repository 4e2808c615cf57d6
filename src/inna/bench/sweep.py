"""(α, β, q) sensitivity of INNA on one task, at the same tuning budget as the baselines.

Every (α, β, q) is an optimizer of its own (``inna:alpha=…:beta=…:power=…``) whose γ₀ is selected from the INNA
grid by the training loss, exactly like the baselines it is compared with; the result is the final training loss
of the selected γ₀ (mean over seeds). The sweep is a suite run (:func:`inna.bench.protocol.run_suite`), so it
writes the same ``results.jsonl``, resumes the same way, and ``inna report`` works on its directory too.
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .records import final_epoch, group_runs, latest_selections, require_records

if TYPE_CHECKING:
    from .suites import Task

__all__ = ["plot_sweep", "run_sweep", "sweep_table", "write_sweep_report"]


def run_sweep(
    task: Task,
    out_dir: str | os.PathLike[str],
    *,
    alphas: Sequence[float] = (0.1, 0.5, 1.0),
    betas: Sequence[float] = (0.01, 0.1, 0.5),
    powers: Sequence[float] = (0.5,),
    baselines: Sequence[str] = ("sgd", "adam"),
    grid: Sequence[float] | None = None,
    seeds: int = 1,
    grid_points: int | None = None,
    max_extensions: int | None = None,
    data_dir: str | None = None,
    device: str = "cpu",
    workers: int = 1,
    progress: bool = True,
    log: Any = print,
    repair: bool = False,
) -> list[dict[str, Any]]:
    """Run the sweep into ``out_dir``; returns one row per configuration (see :func:`sweep_table`).

    ``grid``: the γ₀ values tried for every INNA configuration (default: INNA's grid). Small β needs small γ₀
    (stiff directions relax at rate 1/β, so a constant step must stay below about 2β).
    """
    from .optimizers import inna_spec
    from .protocol import run_suite  # the training code, needed to run; reading results needs only records
    from .suites import Suite

    for name, values, ok in (("alphas", alphas, lambda v: v >= 0), ("betas", betas, lambda v: v > 0),
                             ("powers", powers, lambda v: v >= 0)):  # fmt: skip
        if not values or not all(math.isfinite(v) and ok(v) for v in values):
            raise ValueError(f"Invalid {name}: {list(values)} (alphas >= 0, betas > 0, powers >= 0, non-empty)")
    if grid is not None and (not grid or not all(math.isfinite(g) and g > 0 for g in grid)):
        raise ValueError(f"Invalid grid: {list(grid)} (positive numbers)")
    grid_values = tuple(float(g) for g in grid) if grid else None
    specs = [inna_spec(a, b, power=q, grid=grid_values) for q, a, b in itertools.product(powers, alphas, betas)]
    suite = Suite(
        "sweep",
        f"INNA (α, β, q) sweep on {task.name}: α ∈ {list(alphas)}, β ∈ {list(betas)}, q ∈ {list(powers)}, "
        f"each with γ₀ selected by training loss like the baselines {list(baselines)}.",
        (task,),
        tuple(specs) + tuple(baselines),
        seeds=seeds,
        grid_points=grid_points,
        **({} if max_extensions is None else {"max_extensions": max_extensions}),
    )
    run_suite(suite, out_dir, data_dir=data_dir, device=device, workers=workers, progress=progress, log=log,
              repair=repair)  # fmt: skip
    return sweep_table(out_dir)


def sweep_table(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows ``{optimizer, spec, alpha, beta, power, lr, loss, acc}`` from a sweep's results (loss, acc: mean over
    seeds of the final training loss and test accuracy; ``None`` when every γ₀ diverged)."""
    records = require_records(Path(out_dir) / "results.jsonl")
    runs = {run.run_id: run for run in group_runs(records)}
    rows = []
    for (_, spec), sel in latest_selections(records, key="spec").items():
        if "options" in sel:  # the spec as recorded (an INNA configuration has α and β)
            opts = {**sel["options"], "power": sel.get("power")} if sel.get("family") == "inna" else {}
        else:  # results written before the selection recorded its options: read them off the spec text
            opts = dict(kv.split("=", 1) for kv in spec.split(":")[1:] if "=" in kv and not kv.startswith("grid="))
        losses, accs = [], []
        for rid in sel["run_ids"]:
            last = final_epoch(runs[rid]) if rid in runs else None
            if last is not None and last["train_loss"] is not None:
                losses.append(last["train_loss"])
            if last is not None and last["test_acc"] is not None:
                accs.append(last["test_acc"])
        rows.append({
            "optimizer": sel["optimizer"],
            "spec": spec,
            "alpha": float(opts["alpha"]) if "alpha" in opts else None,
            "beta": float(opts["beta"]) if "beta" in opts else None,
            "power": float(opts["power"]) if "power" in opts else None,
            "lr": sel.get("lr"),
            "loss": statistics.fmean(losses) if losses else None,
            "acc": statistics.fmean(accs) if accs else None,
        })  # fmt: skip
    return rows


def plot_sweep(rows: list[dict[str, Any]], path: str | os.PathLike[str], title: str = "") -> None:
    """Heatmaps of log₁₀ final training loss over (α, β), one panel per decay power q; baselines in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    inna = [r for r in rows if r["alpha"] is not None]
    base = [r for r in rows if r["alpha"] is None]
    powers = sorted({r["power"] for r in inna})
    alphas = sorted({r["alpha"] for r in inna})
    betas = sorted({r["beta"] for r in inna})
    values = [r["loss"] for r in inna if r["loss"] is not None]
    vmin = math.log10(min(values)) if values else 0.0
    vmax = math.log10(max(values)) if values else 1.0
    fig, axes = plt.subplots(1, len(powers), figsize=(3.4 * len(powers) + 0.8, 3.2), dpi=80, squeeze=False)
    image = None
    for ax, q in zip(axes[0], powers):
        grid = np.full((len(alphas), len(betas)), np.nan)
        for r in inna:
            if r["power"] == q and r["loss"] is not None:
                grid[alphas.index(r["alpha"]), betas.index(r["beta"])] = math.log10(r["loss"])
        image = ax.imshow(grid, cmap="viridis_r", vmin=vmin, vmax=vmax, origin="lower", aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, "div." if np.isnan(v) else f"{10 ** v:.3g}", ha="center", va="center", fontsize=7,
                    color="white" if not np.isnan(v) and v > (vmin + vmax) / 2 else "black")  # fmt: skip
        ax.set_xticks(range(len(betas)), [f"{b:g}" for b in betas])
        ax.set_yticks(range(len(alphas)), [f"{a:g}" for a in alphas])
        ax.set(xlabel="β", ylabel="α", title=f"q = {q:g}" + (" (constant γ)" if q == 0 else ""))
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), label="log₁₀ final training loss", shrink=0.9)
    ref = ", ".join(f"{r['optimizer']} {r['loss']:.3g}" for r in base if r["loss"] is not None)
    fig.suptitle(f"{title}\nbaselines (same tuning): {ref}" if ref else title, fontsize=9, y=1.04)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def write_sweep_report(out_dir: str | os.PathLike[str], title: str, command: str | None = None) -> Path:
    """``sweep.md`` (a table sorted by final training loss) and ``sweep.png`` (the heatmaps) in ``out_dir``."""
    out = Path(out_dir)
    rows = sweep_table(out)
    plot_sweep(rows, out / "sweep.png", title)
    ranked = sorted(rows, key=lambda r: math.inf if r["loss"] is None else r["loss"])
    lines = [f"# {title}", ""]
    if command:
        lines += ["Command:", "", f"    {command}", ""]
    lines += ["Every row had its γ₀ selected from its grid by the final training loss (same budget for all).", "",
              "| rank | optimizer | α | β | q | γ₀ | final train loss | final test acc (%) |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for i, r in enumerate(ranked, 1):

        def f(v: Any, fmt: str = "g") -> str:
            return "—" if v is None else format(v, fmt)

        acc = None if r["acc"] is None else 100 * r["acc"]
        lines.append(f"| {i} | {r['optimizer']} | {f(r['alpha'])} | {f(r['beta'])} | {f(r['power'])} | {f(r['lr'])} |"
                     f" {f(r['loss'], '.4f')} | {f(acc, '.2f')} |")  # fmt: skip
    lines += ["", "![sweep](sweep.png)", ""]
    path = out / "sweep.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
