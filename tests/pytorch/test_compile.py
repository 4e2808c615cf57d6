"""torch.compile(opt.step): one graph, no graph break, no recompilation when a scheduler changes the lr."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters

from inna import INNA, INNAprop, PowerDecayLR

pytestmark = pytest.mark.slow


def model_and_grads(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    grads = [[torch.randn_like(p) for p in model.parameters()] for _ in range(6)]
    return model, grads


#: Each optimizer with a setting that exercises all of its update (INNAprop: its step counter and weight decay).
OPTIMIZERS = {"INNA": (INNA, dict(lr=0.1, initial_speed=1.0)), "INNAprop": (INNAprop, dict(lr=0.01, weight_decay=0.1))}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("impl", [dict(), dict(foreach=False), dict(fused=True)], ids=["default", "single", "fused"])
def test_compiled_step_matches_eager_without_break_or_recompile(fresh_dynamo, impl, optimizer):
    m_eager, grads = model_and_grads(0)
    m_comp, _ = model_and_grads(0)
    cls, kwargs = OPTIMIZERS[optimizer]
    kwargs = dict(kwargs)
    lr = kwargs.pop("lr")
    o_eager = cls(m_eager.parameters(), lr=torch.tensor(lr), **kwargs, foreach=False)  # eager reference
    o_comp = cls(m_comp.parameters(), lr=torch.tensor(lr), **kwargs, **impl)

    explanation = torch._dynamo.explain(o_comp.step)()
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    torch._dynamo.reset()
    counters.clear()

    step = torch.compile(o_comp.step, fullgraph=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the scheduler cannot see calls through the compiled handle
        s_eager, s_comp = PowerDecayLR(o_eager), PowerDecayLR(o_comp)
    for k, gs in enumerate(grads):
        for p, q, g in zip(m_eager.parameters(), m_comp.parameters(), gs):
            p.grad, q.grad = g.clone(), g.clone()
        o_eager.step()
        if k == 0:
            step()
        else:
            with torch._dynamo.config.patch(error_on_recompile=True):
                step()
        s_eager.step()
        s_comp.step()
    assert counters["stats"]["unique_graphs"] == 1
    for p, q in zip(m_eager.parameters(), m_comp.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)
    assert o_comp.param_groups[0]["lr"].item() == pytest.approx(lr / 7**0.5)


def test_float_lr_recompiles_at_most_once(fresh_dynamo):
    model, grads = model_and_grads(1)
    opt = INNA(model.parameters(), lr=0.1)
    step = torch.compile(opt.step)
    counters.clear()
    for k, gs in enumerate(grads):
        opt.param_groups[0]["lr"] = 0.1 / (k + 1)
        for p, g in zip(model.parameters(), gs):
            p.grad = g
        step()
    # six different lrs, two graphs: the first change makes dynamo treat the float as dynamic
    assert counters["stats"]["unique_graphs"] == 2
