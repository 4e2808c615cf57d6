"""The one float64 ground truth that every implementation (PyTorch, optax, Keras) is tested against.

Nothing here imports ``inna`` or any framework: the references are written from the published equations, in the
authors' own coordinates (θ, ψ), with plain arithmetic, so they run on NumPy arrays (the usual case) and on
torch tensors alike. Arrays are updated in place (``theta[...] = new``); complex parameters are passed as their
real views (as every implementation treats them).

INNA (Castera, Bolte, Févotte, Pauwels, JMLR 2021)::

    theta_{k+1} = theta_k + lr_k * [(1/beta - alpha) theta_k - psi_k / beta - beta g_k]
    psi_{k+1}   = psi_k   + lr_k * [(1/beta - alpha) theta_k - psi_k / beta]
    psi_0       = (1 - alpha beta) theta_0 + beta (s - beta) g_0,   s = initial_speed (None: s = beta)

with g_k the gradient of the minimised objective: -grad under maximize, + wd * theta for L2 weight decay. The
authors' decoupled weight decay is written in their own form: theta also loses lr * wd * theta_k, psi is untouched.

INNAprop (Bolte, Boustany, Pauwels, Purica, 2024), the official code's ψ-form, step t = 1, 2, ... per parameter::

    g     <- -g if maximize
    theta <- (1 - lr wd) theta
    v     <- sigma v + (1 - sigma) g^2
    D      = sqrt(v) / sqrt(1 - sigma^t) + eps
    psi   <- (1 - lr/beta) psi + lr (1/beta - alpha) theta                      (decayed theta)
    theta <- (1 + lr (1 - alpha beta)/(beta - lr)) theta - lr/(beta - lr) psi - lr beta g / D   (new psi)

with psi_0 = (1 - alpha beta) theta_0 and v_0 = 0 at a parameter's first step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ReferenceINNA:
    lr: float
    alpha: float
    beta: float
    initial_speed: float | None = None
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = False
    maximize: bool = False
    psi: dict[int, Any] = field(default_factory=dict)

    def step(self, thetas: list[Any], grads: list[Any | None], lr: float | None = None) -> None:
        """Update ``thetas`` (float64 arrays) in place; a ``None`` gradient skips that parameter."""
        lr = self.lr if lr is None else lr
        a, b = self.alpha, self.beta
        for i, (theta, grad) in enumerate(zip(thetas, grads)):
            if grad is None:
                continue
            g = -grad if self.maximize else grad
            if self.weight_decay and not self.decoupled_weight_decay:
                g = g + self.weight_decay * theta
            if i not in self.psi:
                s = b if self.initial_speed is None else self.initial_speed
                self.psi[i] = (1 - a * b) * theta + b * (s - b) * g
            psi = self.psi[i]
            common = (1 / b - a) * theta - psi / b
            new_theta = theta + lr * (common - b * g)
            if self.weight_decay and self.decoupled_weight_decay:
                new_theta = new_theta - lr * self.weight_decay * theta
            self.psi[i] = psi + lr * common
            theta[...] = new_theta


@dataclass
class ReferenceINNAprop:
    """The official INNAprop update, transcribed from its ψ-form (requires lr != beta, as the official code)."""

    lr: float = 1e-3
    alpha: float = 0.1
    beta: float = 0.9
    sigma: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.01
    maximize: bool = False
    psi: dict[int, Any] = field(default_factory=dict)
    v: dict[int, Any] = field(default_factory=dict)
    t: dict[int, int] = field(default_factory=dict)

    def step(self, thetas: list[Any], grads: list[Any | None], lr: float | None = None) -> None:
        """Update ``thetas`` (float64 arrays) in place; a ``None`` gradient skips that parameter."""
        lr = self.lr if lr is None else lr
        a, b, sigma = self.alpha, self.beta, self.sigma
        for i, (theta, grad) in enumerate(zip(thetas, grads)):
            if grad is None:
                continue
            if i not in self.psi:
                self.psi[i] = (1 - a * b) * theta
                self.v[i] = 0 * theta
                self.t[i] = 0
            self.t[i] += 1
            g = -grad if self.maximize else grad
            decayed = (1 - lr * self.weight_decay) * theta
            self.v[i] = sigma * self.v[i] + (1 - sigma) * g * g
            denom = self.v[i] ** 0.5 / (1 - sigma ** self.t[i]) ** 0.5 + self.eps
            self.psi[i] = (1 - lr / b) * self.psi[i] + lr * (1 / b - a) * decayed
            theta[...] = (1 + lr * (1 - a * b) / (b - lr)) * decayed - lr / (b - lr) * self.psi[i] - lr * b * g / denom
