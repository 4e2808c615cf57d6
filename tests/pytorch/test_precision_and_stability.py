"""Low-precision parameters (state_dtype) and the stability warning."""

from __future__ import annotations

import copy
import io
import warnings

import pytest
import torch
from torch import nn

from inna import INNA, INNAStabilityWarning

IMPLS = [dict(foreach=False), dict(foreach=True)]


def quadratic_grad(theta):
    return theta.float() * torch.linspace(0.1, 2.0, theta.numel()).reshape(theta.shape) - 1.0


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_master_copy_follows_the_fp32_run(impl, dtype):
    """With state_dtype=float32 a bf16/fp16 parameter is the rounding of an fp32 INNA run, step after step."""
    torch.manual_seed(0)
    p32 = torch.randn(64, requires_grad=True)
    plo = p32.detach().to(dtype).requires_grad_()
    ref = p32.detach().to(dtype).float().requires_grad_()  # fp32 run from the same (rounded) start
    o_lo = INNA([plo], lr=0.05, state_dtype=torch.float32, **impl)
    o_ref = INNA([ref], lr=0.05, **impl)
    for _ in range(200):
        g = quadratic_grad(ref.detach())
        ref.grad = g
        plo.grad = g.to(dtype)
        o_ref.step()
        o_lo.step()
    state = o_lo.state[plo]
    assert state["phase"].dtype == torch.float32 and state["master"].dtype == torch.float32
    assert torch.equal(plo.detach(), state["master"].to(dtype))
    # the only difference from fp32 is the rounding of the gradients fed in
    assert (state["master"] - ref.detach()).abs().max() < 0.02


def test_small_updates_do_not_vanish_in_bf16():
    """An update below bf16 resolution is lost without the master copy and kept with it."""
    p = torch.full((4,), 1.0, dtype=torch.bfloat16, requires_grad=True)
    q = p.detach().clone().requires_grad_()
    plain = INNA([p], lr=1e-3, alpha=0.5, beta=0.1, initial_speed=1.0)
    mastered = INNA([q], lr=1e-3, alpha=0.5, beta=0.1, initial_speed=1.0, state_dtype=torch.float32)
    for _ in range(100):
        p.grad = torch.full_like(p, 1.0)
        q.grad = torch.full_like(q, 1.0)
        plain.step()
        mastered.step()
    assert torch.equal(p.detach(), torch.ones(4, dtype=torch.bfloat16))  # every step rounded away
    assert (q.detach().float() < 0.999).all()
    assert mastered.state[q]["master"].max() < 0.999


def test_master_copy_adopts_edits_made_to_the_parameter_outside_the_optimizer():
    p = torch.full((6,), 1.0, dtype=torch.bfloat16, requires_grad=True)
    q = p.detach().clone().requires_grad_()
    opts = [INNA([t], lr=1e-3, state_dtype=torch.float32, initial_speed=1.0) for t in (p, q)]
    for _ in range(3):
        for t, opt in zip((p, q), opts):
            t.grad = torch.ones_like(t)
            opt.step()
    with torch.no_grad():
        p[:3] = 5.0  # e.g. model.load_state_dict(...) between steps
    for t, opt in zip((p, q), opts):
        t.grad = torch.zeros_like(t)
        opt.step()
    mp, mq = opts[0].state[p]["master"], opts[1].state[q]["master"]
    assert (mp[:3] - 5.0).abs().max() < 0.01 and torch.equal(p[:3], mp[:3].to(torch.bfloat16))  # adopted
    assert torch.equal(mp[3:], mq[3:])  # untouched entries kept their float32 values


def test_state_dtype_survives_a_state_dict_round_trip():
    model = nn.Linear(8, 3).to(torch.bfloat16)
    opt = INNA(model.parameters(), lr=0.01, state_dtype=torch.float32)
    for _ in range(5):
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        opt.step()
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    clone_model = copy.deepcopy(model)
    clone = INNA(clone_model.parameters(), lr=0.01, state_dtype=torch.float32)
    clone.load_state_dict(loaded)
    for p, q in zip(model.parameters(), clone_model.parameters()):
        for key in ("phase", "master"):
            assert clone.state[q][key].dtype == torch.float32
            assert torch.equal(clone.state[q][key], opt.state[p][key])
    for _ in range(3):
        for p, q in zip(model.parameters(), clone_model.parameters()):
            p.grad = torch.ones_like(p)
            q.grad = torch.ones_like(q)
        opt.step()
        clone.step()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), clone_model.parameters()))


def test_state_dtype_is_ignored_for_full_precision_params_and_validated():
    p = torch.randn(3, requires_grad=True)
    opt = INNA([p], state_dtype=torch.float32)
    p.grad = torch.ones(3)
    opt.step()
    assert set(opt.state[p]) == {"phase"}
    with pytest.raises(ValueError, match=r"Invalid state_dtype value: torch.float16 \(INNA requires None"):
        INNA([p], state_dtype=torch.float16)


def test_stability_warning_fires_once_and_names_the_rule():
    p = torch.randn(3, requires_grad=True)
    opt = INNA([{"params": [p], "lr": 0.5}], alpha=0.5, beta=0.1)
    p.grad = torch.ones(3)
    with pytest.warns(INNAStabilityWarning, match=r"group 0 has lr=0.5 .*curvature above alpha/\(lr - beta\) = 1.25"):
        opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()  # once only
    flat = INNA([p], lr=5.0, alpha=0.5, beta=10.0)
    with pytest.warns(INNAStabilityWarning, match="flat ones"):
        flat.step()


def test_no_stability_warning_within_the_rule():
    p = torch.randn(3, requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for lr, beta in [(0.1, 0.1), (0.05, 0.1), (1.0, 1.0)]:
            opt = INNA([p], lr=lr, beta=beta)
            p.grad = torch.ones(3)
            opt.step()
    assert not [w for w in caught if issubclass(w.category, INNAStabilityWarning)]


@pytest.mark.parametrize("saved_with,loaded_into", [(torch.float32, None), (None, torch.float32)])
def test_loading_follows_the_saved_state_dtype(saved_with, loaded_into):
    """load_state_dict takes the saved group options, state_dtype included, and the state follows it."""
    model = nn.Linear(6, 2).to(torch.bfloat16)
    opt = INNA(model.parameters(), lr=0.01, state_dtype=saved_with)
    for _ in range(3):
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        opt.step()
    other = INNA(model.parameters(), lr=0.01, state_dtype=loaded_into)
    other.load_state_dict(opt.state_dict())
    assert other.param_groups[0]["state_dtype"] == saved_with
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    other.step()
    for p in model.parameters():
        state = other.state[p]
        if saved_with is None:
            assert set(state) == {"phase"} and state["phase"].dtype == torch.bfloat16
        else:
            assert state["master"].dtype == state["phase"].dtype == torch.float32
            assert torch.equal(p.detach(), state["master"].to(torch.bfloat16))


def test_psi_uses_the_master_copy():
    p = torch.full((3,), 1.0, dtype=torch.bfloat16, requires_grad=True)
    opt = INNA([p], lr=1e-3, alpha=0.5, beta=0.1, state_dtype=torch.float32, initial_speed=1.0)
    for _ in range(5):
        p.grad = torch.ones_like(p)
        opt.step()
    state = opt.state[p]
    expected = (1 - 0.5 * 0.1) * state["master"] + 0.1 * state["phase"]
    torch.testing.assert_close(opt.psi(p), expected, rtol=0, atol=0)
