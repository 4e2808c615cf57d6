r"""Discrete ↔ continuous: INNA iterates (the project's :class:`inna.INNA`) against the DIN solution.

INNA is the explicit Euler scheme of the lifted DIN system, so with a constant step :math:`\gamma` the
iterates :math:`(\theta_k, \psi_k)` stay within :math:`O(\gamma)` of the solution at times
:math:`t_k = k\gamma` on any fixed horizon :math:`[0, T]` (global error of a first-order one-step method for
a locally Lipschitz field; the constant grows like :math:`e^{LT}`). The starts match when INNA's
``initial_speed`` :math:`s` and DIN's :math:`\dot\theta_0 = -s\nabla J(\theta_0)` agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from ..formulas import initial_phase_scale, psi_from_phase
from ..torch import INNA
from .din import Trajectory, _vector, integrate_din
from .objectives import Objective, as_objective

__all__ = ["inna_trajectory", "tracking_errors"]

Array = NDArray[np.float64]


def inna_trajectory(
    objective: Objective | Callable[..., object],
    theta0: ArrayLike,
    lr: float,
    n_steps: int,
    *,
    alpha: float = 0.5,
    beta: float = 0.1,
    initial_speed: float | None = 0.0,
    grad: Callable[[Array], ArrayLike] | None = None,
) -> Trajectory:
    r"""Run :class:`inna.INNA` (float64, full gradient, constant ``lr``) and return the iterates as a
    :class:`~inna.dynamics.din.Trajectory` at times :math:`t_k = k\,\mathrm{lr}`.

    ``initial_speed`` is passed to :class:`inna.INNA` (default 0: start at rest, like
    :func:`~inna.dynamics.din.integrate_din` with ``velocity0=None``).
    """
    obj = as_objective(objective, grad)
    if not (isinstance(n_steps, int) and n_steps >= 1):
        raise ValueError(f"n_steps must be an int >= 1, got {n_steps}")
    th0 = _vector("theta0", theta0)
    p = torch.nn.Parameter(torch.from_numpy(th0.copy()))
    opt = INNA([p], lr=lr, alpha=alpha, beta=beta, initial_speed=initial_speed, foreach=False)
    thetas = [th0.copy()]
    g0 = obj.gradient(th0)
    # INNA's start: phi_0 = (s - beta) g_0, i.e. psi_0 = (1 - alpha beta) theta_0 + beta (s - beta) g_0
    psis = [psi_from_phase(th0, initial_phase_scale(beta, initial_speed) * g0, alpha, beta)]
    for _ in range(n_steps):
        x = p.detach().numpy().copy()
        p.grad = torch.from_numpy(obj.gradient(x))
        opt.step()
        thetas.append(p.detach().numpy().copy())
        psis.append(opt.psi(p).detach().numpy().copy())
    t = lr * np.arange(n_steps + 1, dtype=np.float64)
    return Trajectory(t, np.array(thetas), np.array(psis), alpha, beta, obj, method="inna")


def tracking_errors(
    objective: Objective | Callable[..., object],
    theta0: ArrayLike,
    horizon: float,
    lrs: Sequence[float],
    *,
    alpha: float = 0.5,
    beta: float = 0.1,
    initial_speed: float = 0.0,
    rtol: float = 1e-11,
    atol: float = 1e-12,
) -> Array:
    r""":math:`\max_{k\gamma \le T}\|\theta_k - \theta(k\gamma)\|` for each step :math:`\gamma` in ``lrs``.

    The reference :math:`\theta(t)` is DIN integrated by ``DOP853`` at tight tolerances from the matching
    initial velocity :math:`-s\nabla J(\theta_0)`. Each ``horizon/lr`` must be an integer (to 1e-9).
    """
    obj = as_objective(objective)
    th0 = _vector("theta0", theta0)
    if not (np.isfinite(horizon) and horizon > 0):
        raise ValueError(f"horizon must be finite and > 0, got {horizon}")
    v0 = -initial_speed * obj.gradient(th0)
    ref = integrate_din(obj, th0, horizon, alpha=alpha, beta=beta, velocity0=v0, method="DOP853", rtol=rtol, atol=atol)
    errors = []
    for lr in lrs:
        n = horizon / lr
        if not (lr > 0 and abs(n - round(n)) < 1e-9 * max(1.0, n)):
            raise ValueError(f"each lr must be > 0 and divide horizon={horizon}, got lr={lr}")
        traj = inna_trajectory(obj, th0, lr, round(n), alpha=alpha, beta=beta, initial_speed=initial_speed)
        exact = np.array([ref.at(min(t, horizon))[0] for t in traj.t])
        errors.append(np.max(np.linalg.norm(traj.theta - exact, axis=1)))
    return np.array(errors)
