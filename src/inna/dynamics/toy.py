r"""The paper's 2-D picture: INNA on a nonsmooth Rosenbrock-like function, beside GD and heavy ball.

.. math::

    J(\theta_1, \theta_2) = 100\,(\theta_2 - |\theta_1|)^2 + |1 - \theta_1|, \qquad \theta_0 = (-1, 1.5),

minimum :math:`J(1, 1) = 0`, a V-shaped valley :math:`\theta_2 = |\theta_1|` with curvature 400 across it and
a kink at :math:`(0, 0)`. The settings are the poster's :math:`(\alpha, \beta) \in \{(0.5, 0.01), (0.5, 0.1),
(1.3, 0.1)\}`.

**Our choices (the poster does not give them).** Every run uses :class:`inna.INNA` with the constant step
:math:`\gamma = 10^{-3}` (so iteration :math:`k` is time :math:`t = k\gamma` of DIN, and the picture is the
continuous dynamics up to :math:`O(\gamma)`), full gradients by autograd (:math:`|\cdot|'(0) = 0`), for
:math:`T = 20` time units (20 000 steps), starting **at rest** (``initial_speed=0``,
:math:`\dot\theta_0 = 0`). With the paper's training default ``initial_speed=1`` (velocity
:math:`-\nabla J(\theta_0) = -(99, 100)`) the runs leave the picture: :math:`\beta = 0.01` flies to
:math:`\approx(100, 100)`, :math:`\beta = 0.1` out to :math:`\theta_1 \approx 2.9`.
Gradient descent is the Euler scheme of the gradient flow at the same :math:`\gamma`; heavy ball is the
same discretisation of DIN with :math:`\beta = 0` (heavy ball with friction,
:math:`\ddot\theta + \alpha\dot\theta + \nabla J = 0`): momentum :math:`1 - \gamma\alpha`, step :math:`\gamma^2`,
:math:`\alpha = 0.5`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from inna.torch import INNA

from .objectives import Objective

__all__ = [
    "TOY_LR",
    "TOY_MINIMUM",
    "TOY_SETTINGS",
    "TOY_START",
    "TOY_TIME",
    "WHOLE_RUN_TOL",
    "crossing_counts",
    "crossings_label",
    "left_branch",
    "progress",
    "run_toy",
    "toy_function",
    "toy_objective",
    "valley_crossings",
]

Array = NDArray[np.float64]

TOY_START: tuple[float, float] = (-1.0, 1.5)
TOY_MINIMUM: tuple[float, float] = (1.0, 1.0)
TOY_SETTINGS: tuple[tuple[float, float], ...] = ((0.5, 0.01), (0.5, 0.1), (1.3, 0.1))
TOY_LR: float = 1e-3
TOY_TIME: float = 20.0


def toy_function(x: torch.Tensor) -> torch.Tensor:
    r""":math:`100(\theta_2 - |\theta_1|)^2 + |1 - \theta_1|` on a tensor whose last axis has size 2."""
    return 100 * (x[..., 1] - x[..., 0].abs()) ** 2 + (1 - x[..., 0]).abs()


def toy_objective() -> Objective:
    """The toy function as an :class:`~inna.dynamics.objectives.Objective` (torch, autograd selection)."""
    return Objective(toy_function, inf=0.0, name="nonsmooth Rosenbrock")


def run_toy(
    method: str = "inna",
    *,
    alpha: float = 0.5,
    beta: float = 0.1,
    lr: float = TOY_LR,
    time: float = TOY_TIME,
    start: Sequence[float] = TOY_START,
    initial_speed: float = 0.0,
) -> Array:
    r"""Iterates on the toy function, shape ``(n_steps + 1, 2)`` with ``n_steps = round(time / lr)``.

    Args:
        method: ``"inna"`` (:class:`inna.INNA`), ``"gd"`` (gradient descent with step ``lr``) or
            ``"heavy_ball"`` (:class:`torch.optim.SGD` with momentum :math:`1 - \mathrm{lr}\,\alpha`, step
            :math:`\mathrm{lr}^2`: the Euler scheme of heavy ball with friction :math:`\alpha`).
        alpha, beta: INNA's coefficients (``alpha`` is also heavy ball's friction).
        lr, time: constant step and horizon in DIN time units.
        initial_speed: INNA's ``initial_speed`` (default 0: start at rest).
    """
    if method not in ("inna", "gd", "heavy_ball"):
        raise ValueError(f"method must be 'inna', 'gd' or 'heavy_ball', got {method!r}")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be finite and > 0, got {lr}")
    if not (np.isfinite(time) and time >= lr):
        raise ValueError(f"time must be finite and >= lr, got {time}")
    p = torch.nn.Parameter(torch.tensor(list(start), dtype=torch.float64))
    if p.shape != (2,):
        raise ValueError(f"start must have 2 coordinates, got {list(start)}")
    if method == "inna":
        opt: torch.optim.Optimizer = INNA(
            [p], lr=lr, alpha=alpha, beta=beta, initial_speed=initial_speed, foreach=False
        )
    elif method == "gd":
        opt = torch.optim.SGD([p], lr=lr, foreach=False)
    else:
        opt = torch.optim.SGD([p], lr=lr**2, momentum=1 - lr * alpha, foreach=False)
    n_steps = round(time / lr)
    path = np.empty((n_steps + 1, 2))
    path[0] = p.detach().numpy()
    for k in range(1, n_steps + 1):
        opt.zero_grad()
        toy_function(p).backward()
        opt.step()
        path[k] = p.detach().numpy()
    return path


def valley_crossings(path: ArrayLike, tol: float = 1e-3) -> int:
    r"""Number of crossings of the valley :math:`\theta_2 = |\theta_1|`: sign changes of
    :math:`\theta_2 - |\theta_1|`, ignoring points within ``tol`` of the valley (so chatter of size
    :math:`O(\gamma)` on the valley floor is not counted)."""
    x = np.asarray(path, dtype=np.float64)
    d = x[:, 1] - np.abs(x[:, 0])
    s = np.sign(d[np.abs(d) > tol])
    return int(np.count_nonzero(s[1:] != s[:-1]))


#: The tolerance of the whole-run crossing count: departures from the valley below it are O(γ) chatter on its
#: floor (β = 0.1 never leaves it by more than 0.03), above it real swings.
WHOLE_RUN_TOL: float = 0.03


def left_branch(path: ArrayLike) -> Array:
    r"""The part of a run before it first reaches :math:`\theta_1 = -0.1`: the descent along the left branch of
    the valley, before the kink at :math:`(0, 0)`."""
    x = np.asarray(path, dtype=np.float64)
    reached = x[:, 0] >= -0.1
    return x[: int(np.argmax(reached))] if reached.any() else x


def crossing_counts(path: ArrayLike) -> tuple[int, int]:
    """(valley crossings on the left branch at tolerance 1e-3, crossings over the whole run at
    :data:`WHOLE_RUN_TOL`): the two counts docs/dynamics.md tabulates and the figure's titles show."""
    return valley_crossings(left_branch(path)), valley_crossings(path, WHOLE_RUN_TOL)


def crossings_label(path: ArrayLike) -> str:
    """The figure's caption of :func:`crossing_counts`."""
    left, whole = crossing_counts(path)
    return f"valley crossings: {left} on the left branch, {whole} in all (|gap| > {WHOLE_RUN_TOL:g})"


def progress(path: ArrayLike, lr: float = TOY_LR, times: Sequence[float] = (2.0, 4.0, 6.0)) -> Array:
    """Distance to the minimum (1, 1) at the given DIN times (iteration ``round(t / lr)``)."""
    x = np.asarray(path, dtype=np.float64)
    idx = [min(round(t / lr), len(x) - 1) for t in times]
    return np.linalg.norm(x[idx] - np.array(TOY_MINIMUM), axis=1)
