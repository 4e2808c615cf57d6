r"""Continuous-time INNA: integrate DIN, lifted to first order in :math:`(\theta, \psi)`.

DIN (Alvarez, Attouch, Bolte & Redont 2002; the ODE behind INNA) is

.. math::

    \ddot\theta + \alpha\dot\theta + \beta\nabla^2 J(\theta)\dot\theta + \nabla J(\theta) = 0,

and its Hessian-free lifting, which also makes sense for nonsmooth :math:`J` (as a differential inclusion), is

.. math::

    \dot\theta = -(\alpha - \tfrac1\beta)\theta - \tfrac1\beta\psi - \beta\nabla J(\theta), \qquad
    \dot\psi   = -(\alpha - \tfrac1\beta)\theta - \tfrac1\beta\psi .

An initial velocity :math:`\dot\theta(0) = v_0` means
:math:`\psi_0 = (1 - \alpha\beta)\theta_0 - \beta v_0 - \beta^2\nabla J(\theta_0)`; INNA's ``initial_speed``
:math:`s` is :math:`v_0 = -s\nabla J(\theta_0)`.

**Numerics.** The solver works in the phase coordinates
:math:`\phi = (\alpha - \tfrac1\beta)\theta + \tfrac1\beta\psi = -(\dot\theta + \beta\nabla J)`, an invertible
linear change of variables in which the same system reads

.. math::

    \dot\theta = -\phi - \beta\nabla J(\theta), \qquad \dot\phi = -\alpha\phi + (1 - \alpha\beta)\nabla J(\theta).

The solution is the same; the :math:`1/\beta` coefficients (which make :math:`\theta` and :math:`\psi` large
and nearly cancelling when :math:`\beta` is small) disappear, so tolerances mean what they say. The returned
:class:`Trajectory` holds :math:`\psi = (1-\alpha\beta)\theta + \beta\phi`.

* ``method="RK45"`` (or any :func:`scipy.integrate.solve_ivp` method) for smooth :math:`J`: adaptive,
  with dense output and ``rtol``/``atol``.
* ``method="euler"`` for nonsmooth :math:`J`: the fixed-step explicit Euler scheme with step ``dt`` and the
  (autograd) selection :math:`v_k` of the generalised gradient at :math:`\theta_k`. It is first order; as
  ``dt -> 0`` its interpolants converge (up to subsequences) to solutions of the differential inclusion with
  the convexified field, the classical result for Euler schemes of upper semicontinuous inclusions. It is
  exactly INNA with constant step ``dt`` and full gradients, which makes it also the reference for the
  discrete side. Adaptive solvers are wrong tools at kinks (they shrink the step to nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..formulas import phase_from_psi, psi_from_phase
from .energy import _check_alpha_beta, energy, rate_bound
from .objectives import Objective, as_objective

__all__ = ["Trajectory", "initial_psi", "integrate_din", "lifted_field"]

Array = NDArray[np.float64]


def _vector(name: str, x: ArrayLike) -> Array:
    v = np.array(x, dtype=np.float64).reshape(-1) if np.ndim(x) == 0 else np.array(x, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D vector, got shape {np.shape(x)}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite, got {v}")
    return v


def initial_psi(
    objective: Objective, theta0: ArrayLike, velocity0: ArrayLike | None, alpha: float, beta: float
) -> Array:
    r""":math:`\psi_0 = (1 - \alpha\beta)\theta_0 - \beta\dot\theta_0 - \beta^2\nabla J(\theta_0)`.

    ``velocity0=None`` means start at rest (:math:`\dot\theta_0 = 0`).
    """
    _check_alpha_beta(alpha, beta)
    th = _vector("theta0", theta0)
    v0 = np.zeros_like(th) if velocity0 is None else _vector("velocity0", velocity0)
    if v0.shape != th.shape:
        raise ValueError(f"velocity0 must have the shape of theta0 {th.shape}, got {v0.shape}")
    return (1 - alpha * beta) * th - beta * v0 - beta**2 * objective.gradient(th)


def lifted_field(objective: Objective, alpha: float, beta: float) -> Callable[[float, Array], Array]:
    r"""The right-hand side :math:`(\theta,\psi) \mapsto (\dot\theta, \dot\psi)` of the lifted system, on the
    stacked state ``y = [theta, psi]`` (the paper's coordinates; used by tests and by anyone who wants them)."""
    _check_alpha_beta(alpha, beta)

    def f(t: float, y: Array) -> Array:
        n = y.size // 2
        theta, psi = y[:n], y[n:]
        common = -(alpha - 1 / beta) * theta - psi / beta
        return np.concatenate([common - beta * objective.gradient(theta), common])

    return f


@dataclass
class Trajectory:
    r"""A sampled solution of the lifted DIN system (or INNA iterates placed at times :math:`t_k = k\gamma`).

    Attributes:
        t: times, shape ``(T,)``.
        theta, psi: states, shape ``(T, n)``.
        alpha, beta: the coefficients.
        objective: the objective :math:`J`.
        method: ``"RK45"``-like solver names, ``"euler"`` or ``"inna"``.
        dense: optional callable ``t -> (theta, psi)`` (the solver's dense output).
    Derived (cached) quantities: :attr:`phase`, :attr:`values` (:math:`J`), :attr:`gradients`,
    :attr:`velocity` (:math:`\dot\theta = -\phi - \beta\nabla J`), :attr:`energy`, :attr:`velocity_norm`,
    :attr:`grad_norm`, :attr:`dissipation` (:math:`\alpha\|\dot\theta\|^2 + \beta\|\nabla J\|^2`).
    """

    t: Array
    theta: Array
    psi: Array
    alpha: float
    beta: float
    objective: Objective
    method: str = "RK45"
    dense: Callable[[float], tuple[Array, Array]] | None = field(default=None, repr=False)

    @cached_property
    def phase(self) -> Array:
        return phase_from_psi(self.theta, self.psi, self.alpha, self.beta)

    @cached_property
    def values(self) -> Array:
        return self.objective.values(self.theta)

    @cached_property
    def gradients(self) -> Array:
        return self.objective.gradients(self.theta)

    @cached_property
    def velocity(self) -> Array:
        return -self.phase - self.beta * self.gradients

    @cached_property
    def energy(self) -> Array:
        return energy(self.objective, self.theta, self.psi, self.alpha, self.beta)

    @property
    def velocity_norm(self) -> Array:
        return np.linalg.norm(self.velocity, axis=1)

    @property
    def grad_norm(self) -> Array:
        return np.linalg.norm(self.gradients, axis=1)

    @property
    def dissipation(self) -> Array:
        r""":math:`\alpha\|\dot\theta\|^2 + \beta\|\nabla J\|^2 = -dE/dt` along the trajectory."""
        return self.alpha * self.velocity_norm**2 + self.beta * self.grad_norm**2

    def rate_bound(self, inf_value: float | None = None) -> tuple[Array, Array]:
        r"""``(running min of dissipation, (E_0 - (1+alpha beta) inf J)/t)``; ``inf_value`` defaults to
        ``objective.inf``."""
        inf_value = self.objective.inf if inf_value is None else inf_value
        if inf_value is None:
            raise ValueError("inf_value is required: the objective does not know inf J")
        return rate_bound(self.t, self.dissipation, float(self.energy[0]), inf_value, self.alpha, self.beta)

    def at(self, t: float) -> tuple[Array, Array]:
        r""":math:`(\theta(t), \psi(t))`: dense output if available, else linear interpolation."""
        if not (self.t[0] <= t <= self.t[-1]):
            raise ValueError(f"t must be in [{self.t[0]}, {self.t[-1]}], got {t}")
        if self.dense is not None:
            return self.dense(t)
        th = np.array([np.interp(t, self.t, c) for c in self.theta.T])
        ps = np.array([np.interp(t, self.t, c) for c in self.psi.T])
        return th, ps


def integrate_din(
    objective: Objective | Callable[..., object],
    theta0: ArrayLike,
    t_end: float,
    *,
    alpha: float = 0.5,
    beta: float = 0.1,
    velocity0: ArrayLike | None = None,
    method: str = "RK45",
    rtol: float = 1e-8,
    atol: float = 1e-10,
    dt: float = 1e-3,
    n_points: int = 501,
    grad: Callable[[Array], ArrayLike] | None = None,
) -> Trajectory:
    r"""Integrate the lifted DIN system on :math:`[0, t_{end}]` from :math:`(\theta_0, \dot\theta_0)`.

    Args:
        objective: an :class:`~inna.dynamics.objectives.Objective`, a torch function (gradient by autograd),
            or a numpy function together with ``grad``.
        theta0: initial point, shape ``(n,)``.
        t_end: horizon, ``> 0``.
        alpha, beta: friction :math:`\alpha \ge 0` and Newtonian damping :math:`\beta > 0`.
        velocity0: :math:`\dot\theta(0)`; ``None`` starts at rest.
        method: a :func:`scipy.integrate.solve_ivp` method (smooth :math:`J`) or ``"euler"`` (fixed step
            ``dt``, for nonsmooth :math:`J`).
        rtol, atol: solver tolerances (adaptive methods).
        dt: the Euler step.
        n_points: number of (roughly) evenly spaced samples returned.
        grad: numpy gradient when ``objective`` is a numpy function.

    Example:
        >>> import torch
        >>> from inna.dynamics import integrate_din
        >>> traj = integrate_din(lambda x: (x**2).sum() + torch.cos(x).sum(), [1.0, -2.0], 10.0)
        >>> bool(all(traj.energy[1:] <= traj.energy[:-1] + 1e-9))
        True
    """
    obj = as_objective(objective, grad)
    _check_alpha_beta(alpha, beta)
    th0 = _vector("theta0", theta0)
    if not (np.isfinite(t_end) and t_end > 0):
        raise ValueError(f"t_end must be finite and > 0, got {t_end}")
    if not (isinstance(n_points, int) and n_points >= 2):
        raise ValueError(f"n_points must be an int >= 2, got {n_points}")
    psi0 = initial_psi(obj, th0, velocity0, alpha, beta)
    phi0 = phase_from_psi(th0, psi0, alpha, beta)
    n = th0.size

    def to_psi(theta: Array, phi: Array) -> Array:
        return psi_from_phase(theta, phi, alpha, beta)

    if method.lower() == "euler":
        if not (np.isfinite(dt) and 0 < dt <= t_end):
            raise ValueError(f"dt must be in (0, t_end={t_end}], got {dt}")
        n_steps = int(np.ceil(t_end / dt - 1e-9))
        record = np.unique(np.linspace(0, n_steps, min(n_points, n_steps + 1)).round().astype(int))
        thetas, phis = [th0.copy()], [phi0.copy()]
        theta, phi = th0.copy(), phi0.copy()
        a, c = 1 - dt * alpha, dt * (1 - alpha * beta)
        nxt = 1
        for k in range(1, n_steps + 1):
            g = obj.gradient(theta)
            theta = theta - dt * (phi + beta * g)
            phi = a * phi + c * g
            if nxt < record.size and k == record[nxt]:
                thetas.append(theta)
                phis.append(phi)
                nxt += 1
        th, ph = np.array(thetas), np.array(phis)
        return Trajectory(record * dt, th, to_psi(th, ph), alpha, beta, obj, method="euler")

    from scipy.integrate import solve_ivp

    if not (rtol > 0 and atol > 0):
        raise ValueError(f"rtol and atol must be > 0, got rtol={rtol}, atol={atol}")

    def rhs(t: float, y: Array) -> Array:
        theta, phi = y[:n], y[n:]
        g = obj.gradient(theta)
        return np.concatenate([-phi - beta * g, -alpha * phi + (1 - alpha * beta) * g])

    t_eval = np.linspace(0.0, t_end, n_points)
    try:
        sol = solve_ivp(
            rhs,
            (0.0, t_end),
            np.concatenate([th0, phi0]),
            method=method,
            t_eval=t_eval,
            dense_output=True,
            rtol=rtol,
            atol=atol,
        )
    except ValueError as err:
        raise ValueError(f"method must be 'euler' or a solve_ivp method: {err}") from err
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    th, ph = sol.y[:n].T.copy(), sol.y[n:].T.copy()
    dense_sol = sol.sol

    def dense(t: float) -> tuple[Array, Array]:
        y = dense_sol(t)
        return y[:n], to_psi(y[:n], y[n:])

    return Trajectory(sol.t, th, to_psi(th, ph), alpha, beta, obj, method=method, dense=dense)
