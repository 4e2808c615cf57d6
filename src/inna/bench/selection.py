"""γ₀ selection by training loss, with the grid extended past an edge until the best value is interior.

A best γ₀ at an end of its grid says only that the optimum may lie beyond it. So, for every optimizer alike: while
the best probe (lowest final training loss; a diverged probe counts as +inf) sits at an end of the probed values,
probe one more log step beyond that end; stop when the best is interior, or when ``max_extensions`` steps were
added on that side (the selection then says it stopped at the bound). Every probe is a run of its own, so the
search resumes like any other part of a suite.

The log step follows the grid: a 1-3-10 grid (0.03, 0.1, 0.3, …) continues as 0.01, 0.003, … or 1, 3, 10, …; any
other grid continues geometrically with the ratio of its two outermost values on that side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["GridDecision", "decide", "next_value", "select_lr"]


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def select_lr(losses: Mapping[float, float | None]) -> float | None:
    """The γ₀ with the lowest final training loss (None / NaN / inf count as diverged); None if all diverged.

    Ties go to the smaller γ₀.
    """
    finite = {lr: v for lr, v in losses.items() if _finite(v)}
    if not finite:
        return None
    return min(sorted(finite), key=lambda lr: finite[lr])


def _mantissa(x: float) -> tuple[float, int]:
    exponent = math.floor(math.log10(x) + 1e-9)
    return round(x / 10**exponent, 6), exponent


def _is_one_three(values: Sequence[float]) -> bool:
    return len(values) >= 2 and all(_mantissa(v)[0] in (1.0, 3.0) for v in values)


def _clean(x: float) -> float:
    return float(f"{x:.3g}")


def next_value(values: Sequence[float], direction: int) -> float:
    """The next γ₀ one log step beyond the smallest (``direction=-1``) or largest (``+1``) of ``values``."""
    grid = sorted(values)
    if len(grid) < 2:
        raise ValueError("a grid needs at least two values to be extended")
    if _is_one_three(grid):
        m, e = _mantissa(grid[0] if direction < 0 else grid[-1])
        if direction < 0:
            return _clean(10**e) if m == 3.0 else _clean(3 * 10 ** (e - 1))
        return _clean(3 * 10**e) if m == 1.0 else _clean(10 ** (e + 1))
    if direction < 0:
        return _clean(grid[0] * grid[0] / grid[1])
    return _clean(grid[-1] * grid[-1] / grid[-2])


@dataclass(frozen=True)
class GridDecision:
    """What to do after the probes so far: ``probe`` the next value, or stop with ``chosen``.

    ``edge`` is ``"low"``/``"high"`` when the best probe still sits at that end of the grid (the search stopped at
    its bound), else ``None``.
    """

    chosen: float | None
    probe: float | None
    edge: str | None


def decide(initial: Sequence[float], losses: Mapping[float, float | None], *, max_extensions: int = 3) -> GridDecision:
    """Decide the next probe for an optimizer whose probes so far gave ``losses`` (γ₀ → final training loss).

    ``initial`` is the optimizer's own grid; extensions beyond it count against ``max_extensions`` per side.
    """
    probed = sorted(losses)
    chosen = select_lr(losses)
    if chosen is None or len(probed) < 2:
        return GridDecision(chosen, None, None)
    low_ext = sum(1 for v in probed if v < min(initial))
    high_ext = sum(1 for v in probed if v > max(initial))
    if chosen == probed[0]:
        if low_ext < max_extensions:
            return GridDecision(chosen, next_value(probed, -1), "low")
        return GridDecision(chosen, None, "low")
    if chosen == probed[-1]:
        if high_ext < max_extensions:
            return GridDecision(chosen, next_value(probed, +1), "high")
        return GridDecision(chosen, None, "high")
    return GridDecision(chosen, None, None)
