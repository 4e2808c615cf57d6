r"""Paired comparisons over seeds: is a difference between two optimizers larger than the seed-to-seed spread?

For a given seed every optimizer starts from the same initial weights and sees the same batch order, so the runs
of two optimizers pair up by seed. With :math:`d_s = m_A(s) - m_B(s)` over :math:`n` seeds, the report gives the
mean :math:`\bar d`, its standard error :math:`s_d/\sqrt n` and the two-sided Student-t confidence interval
:math:`[L, H] = \bar d \pm t_{1-a/2,\,n-1}\, s_d/\sqrt n`. With an equivalence margin :math:`m > 0` (the size of a
difference that matters), the verdict for A against B is one of four:

* **tie** when equivalence is shown: :math:`-m < L` and :math:`H < m` (the whole interval inside :math:`\pm m`, so
  any difference is smaller than the margin, even one whose interval excludes 0);
* **win** when the interval excludes 0 on A's side (below 0 for a loss, above 0 for an accuracy) and is not
  inside the margin; **loss** when it excludes 0 on B's side;
* **undecided** otherwise: the interval holds 0 and reaches past :math:`\pm m`, so the seeds cannot tell a real
  difference from none (also with fewer than 2 seeds, or without a margin where the interval holds 0).

A diverged run (an infinite loss) decides by itself: it is worse than any finite value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["VERDICTS", "PairedDifference", "paired_difference", "t_quantile"]

#: The four verdicts, for A against B.
VERDICTS = ("win", "loss", "tie", "undecided")


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
    """Mean paired difference A − B over ``n`` seeds, its confidence interval, the margin and the verdict for A."""

    n: int
    mean: float
    sd: float
    low: float
    high: float
    confidence: float
    verdict: str  # one of VERDICTS, for A
    margin: float | None = None

    def format(self, digits: int = 3) -> str:
        """``+0.012 [−0.004, +0.028] (tie)``, or ``+0.012 (n=1: undecided)``."""
        if self.n < 2 or not math.isfinite(self.low):
            return f"{self.mean:+.{digits}f} (n={self.n}: {self.verdict})"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}] ({self.verdict})"


def _verdict(low: float, high: float, margin: float | None, higher_is_better: bool) -> str:
    if margin is not None and -margin < low and high < margin:
        return "tie"
    if low > 0:
        return "win" if higher_is_better else "loss"
    if high < 0:
        return "loss" if higher_is_better else "win"
    return "undecided"


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    higher_is_better: bool,
    margin: float | None = None,
    confidence: float = 0.95,
) -> PairedDifference:
    """Compare A with B seed by seed (``a[i]`` and ``b[i]`` from the same seed).

    Args:
        a, b: the metric of each seed for A and B (same length).
        higher_is_better: ``True`` for accuracies, ``False`` for losses.
        margin: the equivalence margin :math:`m > 0`, in the metric's unit (``None``: no tie can be shown).
        confidence: of the two-sided interval (default 95 %).
    """
    if len(a) != len(b):
        raise ValueError(f"paired samples must have the same length, got {len(a)} and {len(b)}")
    if not (0 < confidence < 1):
        raise ValueError(f"Invalid confidence value: {confidence} (must be in (0, 1))")
    if margin is not None and not (math.isfinite(margin) and margin > 0):
        raise ValueError(f"Invalid margin value: {margin} (must be a finite number > 0, or None)")
    d = [float(x) - float(y) for x, y in zip(a, b)]
    n = len(d)
    if n == 0:
        raise ValueError("paired_difference needs at least one pair")
    mean = sum(d) / n
    if any(not math.isfinite(x) for x in d):
        # a diverged run (inf loss) decides by itself: it is worse than any finite value
        verdict = ("win" if (mean > 0) == higher_is_better else "loss") if math.isinf(mean) else "undecided"
        return PairedDifference(n, mean, math.nan, mean, mean, confidence, verdict, margin)
    if n < 2:
        return PairedDifference(n, mean, math.nan, math.nan, math.nan, confidence, "undecided", margin)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    return PairedDifference(n, mean, sd, low, high, confidence, _verdict(low, high, margin, higher_is_better), margin)
