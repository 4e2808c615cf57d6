"""Guards on the private PyTorch APIs and behaviours inna.torch relies on (CONTRIBUTING.md lists them).

Each test names the API in its failure message, so that a torch upgrade that changes one fails here, loudly, rather
than somewhere downstream. The versions CI tests are pyproject's ``torch`` range.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from inna import INNA, INNAprop
from inna.torch import _dispatch


def test_foreach_supported_types_is_a_list_of_tensor_types():
    """inna.torch._dispatch reads torch.optim.optimizer._foreach_supported_types, the tensor types torch's own
    foreach paths accept (DTensor appends itself there), to pick foreach by default as torch.optim does."""
    module = importlib.import_module("torch.optim.optimizer")
    supported = getattr(module, "_foreach_supported_types", None)
    assert isinstance(supported, list) and torch.Tensor in supported, (
        "torch.optim.optimizer._foreach_supported_types is gone or changed: inna.torch._dispatch._foreach_types "
        "must find the tensor types torch's foreach paths accept another way"
    )
    assert _dispatch._foreach_types() == tuple(supported)


def test_grad_scaler_hands_a_fused_optimizer_grad_scale_and_found_inf():
    """GradScaler's fused route: an optimizer whose _step_supports_amp_scaling is true gets the attributes
    grad_scale and found_inf set around step() (and deleted after), and unscales itself."""
    seen = []

    class Recording(INNA):
        def step(self, closure=None):
            seen.append((getattr(self, "grad_scale", "missing"), getattr(self, "found_inf", "missing")))
            return super().step(closure)

    p = torch.nn.Parameter(torch.ones(3))
    for fused in (True, False):
        opt = Recording([p], lr=0.1, fused=fused)
        scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
        seen.clear()
        for _ in range(2):
            opt.zero_grad()
            scaler.scale((p * p).sum()).backward()
            before = p.detach().clone()
            scaler.step(opt)
            scaler.update()
        protocol = "torch.amp.GradScaler's _step_supports_amp_scaling / grad_scale / found_inf protocol changed"
        if fused:
            assert all(isinstance(gs, torch.Tensor) and isinstance(fi, torch.Tensor) for gs, fi in seen), protocol
            assert not hasattr(opt, "grad_scale") and not hasattr(opt, "found_inf"), protocol
        else:
            assert seen == [("missing", "missing")] * 2, protocol
        assert torch.allclose(p.grad, 2 * before), protocol  # unscaled by either route


@pytest.mark.slow
def test_compiled_route_keeps_a_cache_per_group_past_dynamos_recompile_limit(monkeypatch, fresh_dynamo):
    """The compiled route (CUDA's fused path; here forced on CPU) compiles a copy of its driver's code object per
    group, relying on dynamo keeping one cache per code object: many optimizers in one process then never pile up
    graphs on one code object past torch._dynamo.config.recompile_limit (where dynamo would fall back to eager)."""
    monkeypatch.setenv("INNA_CPU_KERNEL", "0")
    limit = torch._dynamo.config.recompile_limit
    counts = []
    for k in range(limit + 2):
        p = torch.nn.Parameter(torch.randn(k + 2))
        opt = INNAprop([p], lr=0.01, fused=True)
        p.grad = torch.ones_like(p)
        opt.step()
        counts.append(opt.state[p]["step"].item())
    assert counts == [1.0] * (limit + 2)
    from torch._dynamo.utils import counters

    assert not counters["stats"].get("unique_graphs", 0) < limit + 2, (
        "dynamo no longer keeps one cache per code object (or renamed torch._dynamo.utils.counters): "
        "inna.torch._compiled's per-group clones of its driver share one cache"
    )
