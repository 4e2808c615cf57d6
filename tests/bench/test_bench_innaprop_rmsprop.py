"""The premise of docs/results/innaprop-rmsprop.md: INNAprop's phase φ starts at 0 and grows only through
γ(1 − αβ)u, so INNAprop(α, 1/α) *is* RMSprop (with INNAprop's bias-corrected scaling) at lr γβ, under any lr
schedule; any other (α, β) departs from it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import inna


def _train(make: object, steps: int = 150, schedule: bool = False) -> torch.Tensor:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Linear(12, 1)).double()
    opt = make(model.parameters())  # type: ignore[operator]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: (k + 1) / 10 if k < 10 else 0.5) if schedule else None
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 6, generator=g, dtype=torch.float64)
        loss = (model(x) - x[:, :1] * x[:, 1:2]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _rmsprop(lr: float, sigma: float = 0.99) -> object:
    return lambda ps: torch.optim.Adam(ps, lr=lr, betas=(0.0, sigma), eps=1e-8)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("schedule", [False, True])
def test_innaprop_with_alpha_beta_one_is_rmsprop_at_lr_beta(alpha: float, schedule: bool) -> None:
    beta, lr = 1 / alpha, 3e-3
    a = _train(
        lambda ps: inna.INNAprop(ps, lr=lr, alpha=alpha, beta=beta, sigma=0.99, weight_decay=0.0), schedule=schedule
    )
    b = _train(_rmsprop(lr * beta), schedule=schedule)
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("alpha", [0.1, 2.0])
def test_other_alphas_depart_from_rmsprop(alpha: float) -> None:
    a = _train(lambda ps: inna.INNAprop(ps, lr=3e-3, alpha=alpha, beta=0.9, sigma=0.99, weight_decay=0.0))
    b = _train(_rmsprop(3e-3 * 0.9))
    assert float((a - b).norm() / b.norm()) > 1e-4


def test_predicted_extra_step() -> None:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "innaprop_rmsprop.py"
    spec = importlib.util.spec_from_file_location("innaprop_rmsprop", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    assert module.predicted(1.0, 1.0, 3e-3, 10_000) == 0.0  # αβ = 1: no extra step at all
    # (1 − αβ)/(αβ) · (1 − (1 − γα)^T) by hand: α = 0.1, β = 0.9, γ = 3e-3, T = 768
    assert module.predicted(0.1, 0.9, 3e-3, 768) == pytest.approx(0.91 / 0.09 * (1 - (1 - 3e-4) ** 768))
    assert module.predicted(2.0, 0.9, 3e-3, 10**6) == pytest.approx(-0.8 / 1.8)  # saturates at (1 − αβ)/(αβ)
