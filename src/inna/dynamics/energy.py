r"""The Lyapunov energy of DIN and what it gives: dissipation identity and the :math:`O(1/t)` rate.

For the lifted system (see :mod:`inna.dynamics.din`) with phase
:math:`\phi = (\alpha - \tfrac1\beta)\theta + \tfrac1\beta\psi = -(\dot\theta + \beta\nabla J(\theta))`,

.. math::

    E(\theta, \psi) = (1 + \alpha\beta)\,J(\theta) + \tfrac12\big\|(\alpha - \tfrac1\beta)\theta
        + \tfrac1\beta\psi\big\|^2 = (1 + \alpha\beta)J(\theta) + \tfrac12\|\dot\theta + \beta\nabla J(\theta)\|^2 .

Along a solution, with :math:`\dot\phi = -\alpha\phi + (1 - \alpha\beta)\nabla J` and the chain rule,

.. math::

    \tfrac{d}{dt}E = (1+\alpha\beta)\langle\nabla J, \dot\theta\rangle + \langle\phi, \dot\phi\rangle
      = -\alpha\|\dot\theta\|^2 - \beta\|\nabla J(\theta)\|^2

(expand with :math:`\phi = -\dot\theta - \beta\nabla J`; the cross terms cancel). :math:`E` is therefore
non-increasing, and integrating on :math:`[0, t]` gives, since :math:`E \ge (1+\alpha\beta)\inf J`,

.. math::

    \min_{s \le t}\big(\alpha\|\dot\theta(s)\|^2 + \beta\|\nabla J(\theta(s))\|^2\big)
      \le \frac{E_0 - (1 + \alpha\beta)\inf J}{t}.

For nonsmooth tame :math:`J` the same holds with :math:`\nabla J` replaced by the selection :math:`v(t)`
driving the differential inclusion, for almost every :math:`t`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..formulas import phase_from_psi
from .objectives import Objective

__all__ = ["dissipation", "energy", "phase", "rate_bound"]

Array = NDArray[np.float64]


def _check_alpha_beta(alpha: float, beta: float) -> None:
    if not (np.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be finite and >= 0, got {alpha}")
    if not (np.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be finite and > 0, got {beta}")


def phase(theta: ArrayLike, psi: ArrayLike, alpha: float, beta: float) -> Array:
    r"""The phase :math:`\phi = (\alpha - 1/\beta)\theta + \psi/\beta` (rows of ``(T, n)`` arrays or vectors)."""
    _check_alpha_beta(alpha, beta)
    return phase_from_psi(np.asarray(theta, dtype=np.float64), np.asarray(psi, dtype=np.float64), alpha, beta)


def energy(objective: Objective, theta: ArrayLike, psi: ArrayLike, alpha: float, beta: float) -> Array:
    r""":math:`E(\theta,\psi) = (1+\alpha\beta)J(\theta) + \tfrac12\|(\alpha - 1/\beta)\theta + \psi/\beta\|^2`.

    ``theta`` and ``psi`` are vectors (returns a 0-d array) or ``(T, n)`` arrays (returns shape ``(T,)``).
    """
    th = np.asarray(theta, dtype=np.float64)
    ph = phase(th, psi, alpha, beta)
    j = objective.values(th) if th.ndim == 2 else np.asarray(objective.value(th))
    return (1 + alpha * beta) * j + 0.5 * np.sum(ph * ph, axis=-1)


def dissipation(objective: Objective, theta: ArrayLike, psi: ArrayLike, alpha: float, beta: float) -> Array:
    r"""The predicted :math:`dE/dt = -\alpha\|\dot\theta\|^2 - \beta\|\nabla J(\theta)\|^2` at :math:`(\theta, \psi)`.

    Uses :math:`\dot\theta = -\phi - \beta\nabla J(\theta)`.
    """
    th = np.asarray(theta, dtype=np.float64)
    g = objective.gradients(th) if th.ndim == 2 else objective.gradient(th)
    velocity = -phase(th, psi, alpha, beta) - beta * g
    return -alpha * np.sum(velocity**2, axis=-1) - beta * np.sum(g * g, axis=-1)


def rate_bound(
    t: ArrayLike, dissipated: ArrayLike, energy0: float, inf_value: float, alpha: float, beta: float
) -> tuple[Array, Array]:
    r"""Running minimum of :math:`\alpha\|\dot\theta\|^2 + \beta\|\nabla J\|^2` and the bound
    :math:`(E_0 - (1+\alpha\beta)\inf J)/t`.

    Args:
        t: increasing times, ``t[0] = 0``.
        dissipated: :math:`\alpha\|\dot\theta(t)\|^2 + \beta\|\nabla J(\theta(t))\|^2` at those times.
        energy0: :math:`E(\theta_0, \psi_0)`.
        inf_value: :math:`\inf J` (a lower bound is enough: the bound only gets looser).
    Returns:
        ``(running_min, bound)``, both of shape ``(T,)``; ``bound[0] = inf``.
    """
    _check_alpha_beta(alpha, beta)
    tt = np.asarray(t, dtype=np.float64)
    d = np.asarray(dissipated, dtype=np.float64)
    if tt.shape != d.shape:
        raise ValueError(f"t and dissipated must have the same shape, got {tt.shape} and {d.shape}")
    gap = energy0 - (1 + alpha * beta) * inf_value
    if gap < 0:
        raise ValueError(f"energy0 must be >= (1 + alpha*beta) * inf_value, got E0={energy0}, inf J={inf_value}")
    with np.errstate(divide="ignore"):
        bound = np.where(tt > 0, gap / np.where(tt > 0, tt, 1.0), np.inf)
    return np.minimum.accumulate(d), bound
