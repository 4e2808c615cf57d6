"""What the PyTorch contract checks share: the optimizer of a table row, a tiny model, its batches, a training loop,
and every ``torch.optim.lr_scheduler`` to drive it."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

import inna

from .optim_db import OptimizerInfo

#: The two multi-tensor choices every path-sensitive check runs under.
IMPLS = [dict(foreach=False), dict(foreach=True)]


def optimizer_class(info: OptimizerInfo) -> type[torch.optim.Optimizer]:
    return getattr(inna, info.name)


def make(info: OptimizerInfo, params: Any, **hyper: Any) -> torch.optim.Optimizer:
    """The row's optimizer on ``params``, at the row's test learning rate unless ``hyper`` says otherwise."""
    return optimizer_class(info)(params, **{"lr": info.lr, **hyper})


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2)).double()


def batch(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(k)
    return torch.randn(8, 5, generator=gen, dtype=torch.float64), torch.randn(8, 2, generator=gen, dtype=torch.float64)


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: range, sched: Any = None) -> None:
    for k in steps:
        x, y = batch(k)
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        if sched is not None:
            sched.step()


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def schedulers() -> dict[str, Any]:
    """Every scheduler of ``torch.optim.lr_scheduler`` that steps without a metric, and :class:`inna.PowerDecayLR`."""
    S = torch.optim.lr_scheduler
    return {
        "PowerDecayLR": lambda o: inna.PowerDecayLR(o),
        "LambdaLR": lambda o: S.LambdaLR(o, lambda k: 1 / math.sqrt(k + 1)),
        "MultiplicativeLR": lambda o: S.MultiplicativeLR(o, lambda k: 0.95),
        "StepLR": lambda o: S.StepLR(o, step_size=3, gamma=0.5),
        "MultiStepLR": lambda o: S.MultiStepLR(o, milestones=[2, 5], gamma=0.5),
        "ConstantLR": lambda o: S.ConstantLR(o, factor=0.5, total_iters=4),
        "LinearLR": lambda o: S.LinearLR(o, start_factor=0.2, total_iters=4),
        "ExponentialLR": lambda o: S.ExponentialLR(o, gamma=0.9),
        "PolynomialLR": lambda o: S.PolynomialLR(o, total_iters=8, power=2.0),
        "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, T_max=5),
        "CosineAnnealingWarmRestarts": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3),
        "CyclicLR": lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=2, cycle_momentum=False),
        "OneCycleLR": lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=20, cycle_momentum=False),
        "SequentialLR": lambda o: S.SequentialLR(
            o, [S.LinearLR(o, start_factor=0.5, total_iters=2), S.ExponentialLR(o, gamma=0.9)], milestones=[2]
        ),
        "ChainedScheduler": lambda o: S.ChainedScheduler([inna.PowerDecayLR(o), S.ExponentialLR(o, gamma=0.95)]),
    }
