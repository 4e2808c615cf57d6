"""An independent float64 reference of INNA, written from the paper's equations in (theta, psi).

Nothing here imports ``inna``: it is the ground truth the implementations are tested against.

    theta_{k+1} = theta_k + lr_k * [(1/beta - alpha) theta_k - psi_k / beta - beta g_k]
    psi_{k+1}   = psi_k   + lr_k * [(1/beta - alpha) theta_k - psi_k / beta]
    psi_0       = (1 - alpha beta) theta_0 + beta (s - beta) g_0,   s = initial_speed (None: s = beta)

with g_k the gradient of the minimised objective: -grad under maximize, + wd * theta for L2 weight
decay. The authors' decoupled weight decay is written in their own form: theta also loses
lr * wd * theta_k, and psi is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ReferenceINNA:
    lr: float
    alpha: float
    beta: float
    initial_speed: float | None = None
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = False
    maximize: bool = False
    psi: dict[int, torch.Tensor] = field(default_factory=dict)

    def step(self, thetas: list[torch.Tensor], grads: list[torch.Tensor | None], lr: float | None = None) -> None:
        """Update ``thetas`` (float64 tensors) in place; a ``None`` gradient skips that parameter."""
        lr = self.lr if lr is None else lr
        a, b = self.alpha, self.beta
        for i, (theta, grad) in enumerate(zip(thetas, grads)):
            if grad is None:
                continue
            g = -grad if self.maximize else grad.clone()
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
            theta.copy_(new_theta)
