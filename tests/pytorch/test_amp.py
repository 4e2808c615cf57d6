"""Autocast and torch.amp.GradScaler: the eager paths of INNA and INNAprop take the scaler's default (unscale,
check, skip) route, ``fused=True`` its fused route (grad_scale and found_inf handed to step(), no host sync)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inna import INNA, INNAprop

IMPLS = [dict(), dict(foreach=False), pytest.param(dict(fused=True), marks=pytest.mark.slow)]


def model_pair():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    b = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    b.load_state_dict(a.state_dict())
    return a, b


#: Each optimizer with the options under test and the float32 tolerance against its eager reference (INNAprop's
#: compiled path computes the bias correction in float32, the eager ones in double).
OPTIMIZERS = {
    "INNA": (INNA, dict(lr=0.05, initial_speed=1.0), dict(rtol=1e-6, atol=1e-7)),
    "INNAprop": (INNAprop, dict(lr=0.01), dict(rtol=1e-5, atol=1e-6)),
}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("impl", IMPLS)
def test_grad_scaler_skips_inf_steps_and_unscales_the_others(impl, optimizer):
    model, ref = model_pair()
    cls, kwargs, tol = OPTIMIZERS[optimizer]
    opt = cls(model.parameters(), **kwargs, **impl)
    ref_opt = cls(ref.parameters(), **kwargs, foreach=False)
    # fused=True: the scaler hands grad_scale/found_inf to step(); otherwise the scaler unscales for us
    fused_route = bool(impl.get("fused"))
    assert getattr(opt, "_step_supports_amp_scaling", False) == fused_route
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    loss_fn = nn.CrossEntropyLoss()
    for k in range(6):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        if k == 3:  # an overflow: the step must be skipped, leaving parameters and INNA state untouched
            model[0].weight.grad[0, 0] = float("inf")
            params = [p.detach().clone() for p in model.parameters()]
            state = {p: {k_: v.clone() for k_, v in s.items()} for p, s in opt.state.items()}
            scale = scaler.get_scale()
            scaler.step(opt)
            scaler.update()
            assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params))
            assert all(torch.equal(opt.state[p][k_], v) for p, s in state.items() for k_, v in s.items())
            assert scaler.get_scale() == scale / 2
            continue
        scaler.step(opt)
        scaler.update()
        # the same step without scaling, from the same gradients
        ref_opt.zero_grad()
        for p, q in zip(model.parameters(), ref.parameters()):
            q.grad = p.grad.clone()  # already unscaled in place by the scaler
        ref_opt.step()
        for p, q in zip(model.parameters(), ref.parameters()):
            torch.testing.assert_close(p, q, **tol)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_autocast_bf16_training_lowers_the_loss():
    model, _ = model_pair()
    opt = INNA(model.parameters(), lr=0.1)
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    losses = []
    for _ in range(60):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]
