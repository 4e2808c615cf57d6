r"""Linear stability of INNA with a constant step, and the practical step-size rule it gives.

**Iteration matrix.** On :math:`J(\theta) = \tfrac h2\theta^2` (one eigen-direction of a quadratic with
curvature :math:`h \ge 0`), one INNA step with step :math:`\gamma` is linear in :math:`(\theta, \psi)`:

.. math::

    \begin{pmatrix}\theta_{k+1}\\ \psi_{k+1}\end{pmatrix} = M \begin{pmatrix}\theta_k\\ \psi_k\end{pmatrix},
    \qquad
    M = \begin{pmatrix} 1 + \gamma(\tfrac1\beta - \alpha - \beta h) & -\tfrac\gamma\beta \\
                        \gamma(\tfrac1\beta - \alpha) & 1 - \tfrac\gamma\beta \end{pmatrix},

with :math:`\operatorname{tr} M = 2 - \gamma(\alpha + \beta h)` and
:math:`\det M = 1 - \gamma(\alpha + \beta h) + \gamma^2 h`. (:math:`M = I + \gamma A` with :math:`A` the DIN
matrix, whose eigenvalues solve :math:`\mu^2 + (\alpha + \beta h)\mu + h = 0`.) At :math:`h = 0` the
eigenvalues are :math:`1` (a flat direction does not move back) and :math:`1 - \gamma\alpha`.

**Two-step form.** Eliminating :math:`\psi`,
:math:`\theta_{k+2} = \theta_{k+1} + (1 - \gamma\alpha)(\theta_{k+1} - \theta_k) - \gamma\beta\, g_{k+1}
- \gamma(\gamma - \beta)\, g_k`. So INNA is heavy ball with momentum :math:`1 - \gamma\alpha` and step
:math:`\gamma\beta` on the current gradient, plus a term on the *previous* gradient with weight
:math:`\gamma(\gamma - \beta)`. At :math:`\gamma = \beta` it is exactly heavy ball; for :math:`\gamma < \beta` the
extra term is a gradient difference (the Hessian-free "Newtonian" damping); for :math:`\gamma > \beta` it is a
delayed gradient, which destabilises stiff directions.

**Stability region (Jury/Schur–Cohn).** For :math:`h > 0`, both eigenvalues have modulus :math:`< 1` iff

.. math::

    \text{(a)}\ \ \gamma h(\gamma - \beta) < \gamma\alpha \quad(\Leftrightarrow\ \gamma < \beta + \alpha/h),
    \qquad
    \text{(b)}\ \ \gamma h(2\beta - \gamma) < 4 - 2\gamma\alpha

(the third condition, :math:`1 - \operatorname{tr} M + \det M = \gamma^2 h > 0`, always holds, and
:math:`\det M > -1` follows from (b)).

**Practical rule.** Keep :math:`\gamma \le \beta` (and :math:`\gamma\alpha < 2`, which is automatic for the
usual :math:`\alpha \le 1`). Then (a) holds at every curvature and the only limit is the familiar
"step × curvature" one, (b), which is implied by :math:`\gamma\beta h < 2 - \gamma\alpha`: INNA behaves like
gradient descent with step :math:`\gamma\beta`. With :math:`\gamma > \beta`, every direction of curvature
:math:`h \ge \alpha/(\gamma - \beta)` diverges (every :math:`h > 0` when :math:`\alpha = 0`), however small the
step :math:`\gamma\beta` is compared with :math:`1/h`. For the defaults :math:`\alpha = 0.5, \beta = 0.1`:
at :math:`\gamma = 0.1` all :math:`h < 390` are stable, at :math:`\gamma = 0.15` only :math:`h < 10`, at
:math:`\gamma = 0.5` only :math:`h < 1.25`. (The paper notes' hint ":math:`\gamma < 2\beta`" is the limit of
the slow mode :math:`1 - \gamma/\beta` only; it is not sufficient.)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..formulas import stability_rule_broken

__all__ = [
    "heavy_ball_matrix",
    "heavy_ball_spectral_radius",
    "is_stable",
    "iteration_matrix",
    "lr_breaks_rule",
    "spectral_radius",
    "stable_curvature_interval",
]

Array = NDArray[np.float64]


def _check(lr: ArrayLike, alpha: ArrayLike, beta: ArrayLike, h: ArrayLike) -> None:
    for name, value, ok, allowed in (
        ("lr", lr, lambda v: v >= 0, ">= 0"),
        ("alpha", alpha, lambda v: v >= 0, ">= 0"),
        ("beta", beta, lambda v: v > 0, "> 0"),
        ("h", h, lambda v: v >= 0, ">= 0 (curvature)"),
    ):
        v = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(v)) or not np.all(ok(v)):
            raise ValueError(f"{name} must be finite and {allowed}, got {value}")


def iteration_matrix(lr: float, alpha: float, beta: float, h: float) -> Array:
    r"""The 2×2 matrix :math:`M` of one INNA step in :math:`(\theta, \psi)` on :math:`J = \tfrac h2\theta^2`."""
    _check(lr, alpha, beta, h)
    g, a, b = lr, alpha, beta
    return np.array([[1 + g * (1 / b - a - b * h), -g / b], [g * (1 / b - a), 1 - g / b]])


def _radius(trace: Array, det: Array) -> Array:
    # roots of lambda^2 - trace*lambda + det
    disc = trace**2 - 4 * det
    sq = np.sqrt(np.abs(disc))
    real = np.maximum(np.abs(trace + sq), np.abs(trace - sq)) / 2
    return np.where(disc >= 0, real, np.sqrt(np.abs(det)))


def spectral_radius(lr: ArrayLike, alpha: ArrayLike, beta: ArrayLike, h: ArrayLike) -> Array:
    r"""Spectral radius of :math:`M` (closed form, broadcasts over arrays).

    :math:`\rho` is the largest root modulus of :math:`\lambda^2 - (2 - \gamma(\alpha+\beta h))\lambda
    + 1 - \gamma(\alpha+\beta h) + \gamma^2 h`. INNA with constant step converges linearly along that
    direction iff :math:`\rho < 1`, at rate :math:`\rho^k`.
    """
    _check(lr, alpha, beta, h)
    g, a, b, hh = (np.asarray(x, dtype=np.float64) for x in (lr, alpha, beta, h))
    return _radius(2 - g * (a + b * hh), 1 - g * (a + b * hh) + g**2 * hh)


def is_stable(lr: ArrayLike, alpha: ArrayLike, beta: ArrayLike, h: ArrayLike) -> NDArray[np.bool_]:
    r""":math:`\rho(M) < 1` by the conditions (a), (b) of the module docstring (no eigenvalues computed)."""
    _check(lr, alpha, beta, h)
    g, a, b, hh = (np.asarray(x, dtype=np.float64) for x in (lr, alpha, beta, h))
    return (hh > 0) & (g * hh * (g - b) < g * a) & (g * hh * (2 * b - g) < 4 - 2 * g * a)


def stable_curvature_interval(lr: float, alpha: float, beta: float) -> tuple[float, float]:
    r"""The open interval :math:`(h_{lo}, h_{hi})` of curvatures on which INNA with step ``lr`` is stable.

    From (a) and (b): each is a half-line in :math:`h`, so the stable set is an interval (possibly empty,
    returned as ``(nan, nan)``). Usually :math:`h_{lo} = 0` and
    :math:`h_{hi} = \min\big(\alpha/(\gamma - \beta)\ [\gamma > \beta],\ (4 - 2\gamma\alpha)/(\gamma(2\beta - \gamma))
    \ [\gamma < 2\beta]\big)`.
    """
    _check(lr, alpha, beta, 0.0)
    g, a, b = float(lr), float(alpha), float(beta)
    lo, hi = 0.0, np.inf
    if g == 0:
        return (np.nan, np.nan)
    # (a): h (g - b) < a
    if g > b:
        hi = min(hi, a / (g - b))
    elif g == b and a == 0:
        return (np.nan, np.nan)
    # (b): h g (2b - g) < 4 - 2 g a
    c, rhs = g * (2 * b - g), 4 - 2 * g * a
    if c > 0:
        hi = min(hi, rhs / c)
    elif c < 0:
        lo = max(lo, rhs / c)
    elif rhs <= 0:
        return (np.nan, np.nan)
    return (lo, hi) if lo < hi else (np.nan, np.nan)


def lr_breaks_rule(lr: float, alpha: float, beta: float) -> bool:
    r"""True when ``lr`` breaks the practical rule :math:`\gamma \le \beta` and :math:`\gamma\alpha < 2`.

    Breaking it means: some curvature diverges for sure: every :math:`h \ge \alpha/(\gamma - \beta)` if
    :math:`\gamma > \beta`, or the flat directions (eigenvalue :math:`1 - \gamma\alpha \le -1`) if
    :math:`\gamma\alpha \ge 2`.
    """
    _check(lr, alpha, beta, 0.0)
    return stability_rule_broken(lr, alpha, beta)


def heavy_ball_matrix(lr: float, momentum: float, h: float) -> Array:
    r"""Polyak heavy ball :math:`\theta_{k+1} = \theta_k - \eta h\theta_k + \mu(\theta_k - \theta_{k-1})` in
    :math:`(\theta_k, \theta_{k-1})`."""
    _check(lr, 0.0, 1.0, h)
    return np.array([[1 + momentum - lr * h, -momentum], [1.0, 0.0]])


def heavy_ball_spectral_radius(lr: ArrayLike, momentum: ArrayLike, h: ArrayLike) -> Array:
    r"""Spectral radius of heavy ball: roots of :math:`\lambda^2 - (1 + \mu - \eta h)\lambda + \mu`.

    Stable iff :math:`|\mu| < 1` and :math:`0 < \eta h < 2(1 + \mu)`. INNA with :math:`\gamma = \beta` is heavy
    ball with :math:`\mu = 1 - \alpha\beta`, :math:`\eta = \beta^2`.
    """
    _check(lr, 0.0, 1.0, h)
    eta, mu, hh = (np.asarray(x, dtype=np.float64) for x in (lr, momentum, h))
    return _radius(1 + mu - eta * hh, mu)
