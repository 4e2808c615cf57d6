"""PowerDecayLR: the paper's gamma_0 / sqrt(k + 1), for INNA and any torch optimizer."""

from __future__ import annotations

import pickle

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from inna import INNA, PowerDecayLR


def lrs_of(opt_cls, steps, **kwargs):
    p = torch.zeros(2, requires_grad=True)
    opt = opt_cls([p], lr=0.5)
    sched = PowerDecayLR(opt, **kwargs)
    out = [opt.param_groups[0]["lr"]]
    for _ in range(steps):
        p.grad = torch.zeros(2)
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


@pytest.mark.parametrize("opt_cls", [INNA, torch.optim.SGD, torch.optim.Adam])
def test_default_is_gamma0_over_sqrt_k_plus_1(opt_cls):
    lrs = lrs_of(opt_cls, 50)
    for k, lr in enumerate(lrs):
        assert lr == pytest.approx(0.5 / (k + 1) ** 0.5, rel=1e-12)


@given(power=st.floats(0.0, 2.0), scale=st.floats(0.0, 3.0))
def test_power_and_scale(power, scale):
    lrs = lrs_of(INNA, 20, power=power, scale=scale)
    for k, lr in enumerate(lrs):
        assert lr == pytest.approx(0.5 / (1 + scale * k) ** power, rel=1e-10)


def test_power_zero_is_constant():
    assert set(lrs_of(INNA, 10, power=0.0)) == {0.5}


def test_closed_form_when_an_epoch_is_given():
    p = torch.zeros(1, requires_grad=True)
    opt = INNA([p], lr=0.5)
    sched = PowerDecayLR(opt, power=0.25)
    with pytest.warns(UserWarning):
        sched.step(15)  # torch deprecates the epoch argument, but supports it
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 / 16**0.25)


def test_state_dict_resume_and_pickle():
    p = torch.zeros(1, requires_grad=True)
    opt = INNA([p], lr=0.5)
    sched = PowerDecayLR(opt, power=0.3, scale=2.0)
    for _ in range(7):
        p.grad = torch.zeros(1)
        opt.step()
        sched.step()
    sd = sched.state_dict()
    assert sd["power"] == 0.3 and sd["scale"] == 2.0 and sd["last_epoch"] == 7
    opt2 = INNA([p], lr=0.5)
    sched2 = PowerDecayLR(opt2)
    sched2.load_state_dict(sd)
    opt2.load_state_dict(opt.state_dict())
    for o, s in ((opt, sched), (opt2, sched2)):
        p.grad = torch.zeros(1)
        o.step()
        s.step()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == pytest.approx(0.5 / (1 + 2 * 8) ** 0.3)
    clone = pickle.loads(pickle.dumps(sched))
    assert clone.power == 0.3 and clone.last_epoch == 8


@pytest.mark.parametrize(
    "name,value", [("power", -0.5), ("scale", -1.0), ("power", float("nan")), ("scale", float("inf"))]
)
def test_bad_arguments(name, value):
    opt = INNA([torch.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match=rf"Invalid {name} value: .* \(PowerDecayLR requires 0 <= {name} < inf\)"):
        PowerDecayLR(opt, **{name: value})
