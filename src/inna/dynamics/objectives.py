r"""Objectives :math:`J:\mathbb R^n\to\mathbb R` for the dynamics tools, and a few smooth test functions.

An :class:`Objective` evaluates :math:`J` and a (generalised) gradient on float64 numpy vectors. It is
built either from a **torch function** (the gradient comes from autograd; for a nonsmooth :math:`J` this
is the autograd selection, e.g. ``relu'(0) = 0`` and ``abs'(0) = 0``, an element of a conservative field
in the sense of Bolte & Pauwels) or from a **numpy function and its gradient**.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

__all__ = ["Objective", "as_objective", "log_cosh", "quadratic", "rosenbrock"]

Array = NDArray[np.float64]


class Objective:
    r"""A function :math:`J` on :math:`\mathbb R^n` with a gradient, evaluated on float64 vectors.

    Args:
        fun: ``J``. Without ``grad`` it must be a torch function mapping a float64 tensor of shape ``(n,)``
            to a scalar tensor; the gradient is taken by autograd. With ``grad`` it is a numpy function
            returning a float.
        grad: optional numpy gradient ``grad(theta) -> ndarray of shape (n,)``.
        inf: :math:`\inf J` if known (used by the :math:`O(1/t)` rate bound), else ``None``.
        name: a label for plots.
    """

    def __init__(
        self,
        fun: Callable[[Any], Any],
        grad: Callable[[Array], ArrayLike] | None = None,
        *,
        inf: float | None = None,
        name: str = "J",
    ) -> None:
        if not callable(fun):
            raise ValueError(f"fun must be callable, got {type(fun).__name__}")
        if grad is not None and not callable(grad):
            raise ValueError(f"grad must be callable or None, got {type(grad).__name__}")
        self.fun = fun
        self.grad = grad
        self.inf = None if inf is None else float(inf)
        self.name = name

    @property
    def uses_autograd(self) -> bool:
        """True when the gradient comes from torch autograd."""
        return self.grad is None

    @staticmethod
    def _vector(theta: ArrayLike) -> Array:
        x = np.asarray(theta, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"theta must be a 1-D vector, got shape {x.shape}")
        return x

    def value(self, theta: ArrayLike) -> float:
        """:math:`J(\\theta)` as a float."""
        x = self._vector(theta)
        if self.grad is not None:
            return float(self.fun(x))
        with torch.no_grad():
            out = self.fun(torch.from_numpy(x.copy()))
        return float(self._scalar(out))

    def value_and_grad(self, theta: ArrayLike) -> tuple[float, Array]:
        """:math:`(J(\\theta), v)` with :math:`v` the gradient (or the autograd selection)."""
        x = self._vector(theta)
        if self.grad is not None:
            g = np.asarray(self.grad(x), dtype=np.float64)
            if g.shape != x.shape:
                raise ValueError(f"grad returned shape {g.shape}, expected {x.shape}")
            return float(self.fun(x)), g
        t = torch.from_numpy(x.copy()).requires_grad_(True)
        with torch.enable_grad():
            out = self._scalar(self.fun(t))
            (g,) = torch.autograd.grad(out, t, allow_unused=True)
        if g is None:
            g = torch.zeros_like(t)
        return float(out.detach()), g.detach().numpy().astype(np.float64)

    def gradient(self, theta: ArrayLike) -> Array:
        """The gradient :math:`\\nabla J(\\theta)` (autograd selection for nonsmooth torch functions)."""
        return self.value_and_grad(theta)[1]

    def values(self, thetas: ArrayLike) -> Array:
        """:math:`J` along the rows of a ``(T, n)`` array."""
        return np.array([self.value(x) for x in np.atleast_2d(np.asarray(thetas, dtype=np.float64))])

    def gradients(self, thetas: ArrayLike) -> Array:
        """Gradients along the rows of a ``(T, n)`` array, shape ``(T, n)``."""
        return np.array([self.gradient(x) for x in np.atleast_2d(np.asarray(thetas, dtype=np.float64))])

    @staticmethod
    def _scalar(out: Any) -> torch.Tensor:
        if not isinstance(out, torch.Tensor):
            raise ValueError(
                f"a torch objective must return a scalar tensor, got {type(out).__name__} "
                "(pass grad=... for a numpy objective)"
            )
        if out.numel() != 1:
            raise ValueError(f"the objective must return a scalar, got shape {tuple(out.shape)}")
        return out.reshape(())

    def __repr__(self) -> str:
        kind = "torch/autograd" if self.uses_autograd else "numpy"
        return f"Objective({self.name!r}, {kind}, inf={self.inf})"


def as_objective(fun: Objective | Callable[[Any], Any], grad: Callable[[Array], ArrayLike] | None = None) -> Objective:
    """Return ``fun`` if it is an :class:`Objective`, else wrap ``(fun, grad)`` in one."""
    if isinstance(fun, Objective):
        if grad is not None:
            raise ValueError("grad must be None when fun is already an Objective")
        return fun
    return Objective(fun, grad)


def quadratic(curvatures: Sequence[float] | ArrayLike) -> Objective:
    r""":math:`J(\theta) = \tfrac12\sum_i h_i\theta_i^2` (numpy, exact gradient), :math:`\inf J = 0`."""
    h = np.asarray(curvatures, dtype=np.float64).reshape(-1)
    if np.any(h < 0) or not np.all(np.isfinite(h)):
        raise ValueError(f"curvatures must be finite and >= 0, got {h}")
    return Objective(lambda x: 0.5 * float(np.dot(h * x, x)), lambda x: h * x, inf=0.0, name="quadratic")


def log_cosh(scales: Sequence[float] | ArrayLike, centre: Sequence[float] | ArrayLike | None = None) -> Objective:
    r""":math:`J(\theta) = \sum_i \log\cosh\big(s_i(\theta_i - c_i)\big)`, smooth and not quadratic.

    Its curvature :math:`s_i^2/\cosh^2` lies in :math:`(0, s_i^2]` and its gradient is bounded by
    :math:`|s_i|`; :math:`\inf J = 0` at :math:`\theta = c`. A torch function (gradient by autograd).
    """
    s = torch.as_tensor(np.asarray(scales, dtype=np.float64).reshape(-1))
    c = torch.zeros_like(s) if centre is None else torch.as_tensor(np.asarray(centre, dtype=np.float64).reshape(-1))
    if c.shape != s.shape:
        raise ValueError(f"centre must have the shape of scales {tuple(s.shape)}, got {tuple(c.shape)}")

    def fun(x: torch.Tensor) -> torch.Tensor:
        z = s * (x - c)
        # log cosh z = |z| + log1p(exp(-2|z|)) - log 2, stable for large |z|
        return (z.abs() + torch.log1p(torch.exp(-2 * z.abs())) - np.log(2.0)).sum()

    return Objective(fun, inf=0.0, name="log-cosh")


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Objective:
    r"""The 2-D Rosenbrock function :math:`(a - \theta_1)^2 + b(\theta_2 - \theta_1^2)^2` (numpy), :math:`\inf J=0`."""

    def fun(x: Array) -> float:
        return float((a - x[0]) ** 2 + b * (x[1] - x[0] ** 2) ** 2)

    def grad(x: Array) -> Array:
        r = x[1] - x[0] ** 2
        return np.array([-2 * (a - x[0]) - 4 * b * x[0] * r, 2 * b * r])

    return Objective(fun, grad, inf=0.0, name="Rosenbrock")
