"""A GradScaler training loop shared by the torch tests of the fused mixed-precision route (not a test module)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def scaler_loop(make_opt: Callable[..., Any], steps: int = 8, unscale_first: bool = False):
    """Train a small MLP with ``make_opt(params)`` under ``torch.amp.GradScaler``, injecting an inf gradient at the
    first step and at step 4; return (model, optimizer, scaler)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    opt = make_opt(model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12, growth_interval=3)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    for k in range(steps):
        opt.zero_grad()
        scaler.scale(torch.nn.functional.cross_entropy(model(x), y)).backward()
        if k in (0, 4):  # an overflow, also at the very first step
            model[0].weight.grad[0, 0] = float("inf")
        if unscale_first:
            scaler.unscale_(opt)  # e.g. for gradient clipping: then step() gets found_inf only
        scaler.step(opt)
        scaler.update()
    return model, opt, scaler
