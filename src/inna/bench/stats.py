r"""Paired comparisons over seeds: is a difference between two optimizers larger than the seed-to-seed spread?

For a given seed every optimizer starts from the same initial weights and sees the same batch order, so the runs
of two optimizers pair up by seed. With :math:`d_s = m_A(s) - m_B(s)` over :math:`n` seeds, the report gives the
mean :math:`\bar d`, its standard error :math:`s_d/\sqrt n` and the two-sided Student-t confidence interval
:math:`\bar d \pm t_{1-a/2,\,n-1}\, s_d/\sqrt n`. The verdict for A against B is **win** when the whole interval
favours A (below 0 for a loss, above 0 for an accuracy), **loss** when it favours B, **tie** otherwise (including
when the seeds are too few to say: :math:`n < 2`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PairedDifference", "paired_difference", "t_quantile"]


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _incomplete_beta(a: float, b: float, x: float) -> float:
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def _t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (bisection on the exact CDF)."""
    if not (0 < p < 1):
        raise ValueError(f"Invalid p value: {p} (must be in (0, 1))")
    if df < 1:
        raise ValueError(f"Invalid df value: {df} (must be >= 1)")
    lo, hi = -1e6, 1e6
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class PairedDifference:
    """Mean paired difference A − B over ``n`` seeds with its confidence interval and verdict for A."""

    n: int
    mean: float
    sd: float
    low: float
    high: float
    confidence: float
    verdict: str  # "win", "tie" or "loss", for A

    def format(self, digits: int = 3) -> str:
        """``+0.012 [−0.004, +0.028] (tie)``."""
        if self.n < 2:
            return f"{self.mean:+.{digits}f} (n={self.n}: {self.verdict})"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}] ({self.verdict})"


def paired_difference(
    a: Sequence[float], b: Sequence[float], *, higher_is_better: bool, confidence: float = 0.95
) -> PairedDifference:
    """Compare A with B seed by seed (``a[i]`` and ``b[i]`` from the same seed).

    Args:
        a, b: the metric of each seed for A and B (same length).
        higher_is_better: ``True`` for accuracies, ``False`` for losses.
        confidence: of the two-sided interval (default 95 %).
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples must have the same length, got {len(a)} and {len(b)}")
    if not (0 < confidence < 1):
        raise ValueError(f"Invalid confidence value: {confidence} (must be in (0, 1))")
    d = [float(x) - float(y) for x, y in zip(a, b)]
    n = len(d)
    if n == 0:
        raise ValueError("paired_difference needs at least one pair")
    mean = sum(d) / n
    if any(not math.isfinite(x) for x in d):
        # a diverged run (inf loss) decides by itself: it is worse than any finite value
        verdict = "win" if (mean > 0) == higher_is_better else "loss"
        return PairedDifference(n, mean, math.nan, mean, mean, confidence, verdict if math.isinf(mean) else "tie")
    if n < 2:
        return PairedDifference(n, mean, math.nan, math.nan, math.nan, confidence, "tie")
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    if low > 0:
        verdict = "win" if higher_is_better else "loss"
    elif high < 0:
        verdict = "loss" if higher_is_better else "win"
    else:
        verdict = "tie"
    return PairedDifference(n, mean, sd, low, high, confidence, verdict)
