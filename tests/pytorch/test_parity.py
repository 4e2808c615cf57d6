"""Every implementation (single-tensor, foreach, fused) against the float64 reference of the paper."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ReferenceINNA

from inna import INNA

IMPLS = {"single": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}


def grad_fn(theta: torch.Tensor, k: int, i: int) -> torch.Tensor:
    """A smooth non-quadratic gradient field plus a step-dependent 'mini-batch' term."""
    gen = torch.Generator().manual_seed(1000 * k + i)
    noise = torch.randn(theta.shape, generator=gen, dtype=torch.float64)
    return torch.tanh(theta) + 0.3 * theta + 0.2 * noise


def make_params(shapes, noncontig_mask=None):
    params = []
    for j, shape in enumerate(shapes):
        if noncontig_mask and noncontig_mask[j] and len(shape) >= 2:
            base = torch.randn(tuple(reversed(shape)), dtype=torch.float64)
            t = base.transpose(0, len(shape) - 1)  # a non-contiguous leaf with the requested shape
            assert not t.is_contiguous() or min(shape) == 1
        else:
            t = torch.randn(shape, dtype=torch.float64)
        params.append(t.requires_grad_())
    return params


def run_pair(shapes, steps, hparams, impl, *, noncontig=None, grad_mask=None, lrs=None):
    """Run INNA and the reference side by side; return max abs differences in theta and psi."""
    params = make_params(shapes, noncontig)
    thetas = [p.detach().clone() for p in params]
    opt = INNA(params, **hparams, **IMPLS[impl])
    ref = ReferenceINNA(**hparams)
    for k in range(steps):
        if lrs is not None:
            for group in opt.param_groups:
                group["lr"] = lrs[k]
        grads_ref = []
        for i, (p, th) in enumerate(zip(params, thetas)):
            active = grad_mask is None or grad_mask(k, i)
            p.grad = grad_fn(p.detach(), k, i) if active else None
            grads_ref.append(grad_fn(th, k, i) if active else None)
        opt.step()
        ref.step(thetas, grads_ref, lr=None if lrs is None else lrs[k])
    dtheta = max((p.detach() - th).abs().max().item() for p, th in zip(params, thetas))
    dpsi = 0.0
    for i, p in enumerate(params):
        psi = opt.psi(p)
        if i in ref.psi:
            dpsi = max(dpsi, (psi - ref.psi[i]).abs().max().item())
        else:
            assert psi is None and p not in opt.state
    return dtheta, dpsi, params, opt


shape_st = st.lists(st.integers(1, 5), min_size=0, max_size=3).map(tuple)
hparam_st = st.fixed_dictionaries(
    {
        "lr": st.floats(0.0, 0.2),
        "alpha": st.floats(0.0, 2.0),
        "beta": st.floats(0.01, 2.0),
        "initial_speed": st.one_of(st.none(), st.just(0.0), st.just(1.0), st.floats(0.0, 3.0)),
        "weight_decay": st.one_of(st.just(0.0), st.floats(0.0, 0.1)),
        "decoupled_weight_decay": st.booleans(),
        "maximize": st.booleans(),
    }
)


@pytest.mark.parametrize("impl", ["single", "foreach"])
@given(shapes=st.lists(shape_st, min_size=1, max_size=4), hparams=hparam_st, steps=st.integers(1, 40))
def test_matches_reference_random_shapes(impl, shapes, hparams, steps):
    dtheta, dpsi, params, _ = run_pair(shapes, steps, hparams, impl)
    scale = 1 + max(p.detach().abs().max().item() for p in params)
    assert dtheta <= 1e-10 * scale
    assert dpsi <= 1e-10 * scale


@pytest.mark.parametrize("impl", ["single", "foreach"])
def test_zero_dim_noncontiguous_frozen_unfrozen_and_all_none_step(impl):
    shapes = [(), (4, 3), (2, 5, 3), (7,)]
    noncontig = [False, True, True, False]

    def grad_mask(k, i):
        if k == 6:
            return False  # a step where every gradient is None
        if i == 1 and 3 <= k < 9:
            return False  # layer frozen at step 3, unfrozen at step 9
        if i == 3 and k < 5:
            return False  # a parameter that receives its first gradient only at step 5
        return True

    hparams = dict(lr=0.05, alpha=0.5, beta=0.1, initial_speed=1.0)
    dtheta, dpsi, params, opt = run_pair(shapes, 30, hparams, impl, noncontig=noncontig, grad_mask=grad_mask)
    assert dtheta < 1e-12 and dpsi < 1e-12
    assert not params[1].is_contiguous()
    # state is created lazily and laid out like its parameter
    assert opt.state[params[1]]["phase"].stride() == params[1].stride()
    assert opt.state[params[0]]["phase"].dim() == 0


@pytest.mark.parametrize("impl", ["single", "foreach"])
def test_changing_lr_every_step_matches_reference(impl):
    lrs = [0.1 / (k + 1) ** 0.5 for k in range(25)]
    hparams = dict(lr=0.1, alpha=0.3, beta=0.5, initial_speed=0.0)
    dtheta, dpsi, *_ = run_pair([(3, 3), (5,)], 25, hparams, impl, lrs=lrs)
    assert dtheta < 1e-12 and dpsi < 1e-12


@pytest.mark.parametrize("impl", ["single", "foreach"])
def test_foreach_groups_mixed_devices_dtypes(impl):
    """Params of two dtypes in one group: each (device, dtype) bucket is updated in its own precision."""
    p64 = torch.randn(4, dtype=torch.float64, requires_grad=True)
    p32 = torch.randn(4, dtype=torch.float32, requires_grad=True)
    opt = INNA([p64, p32], lr=0.05, **IMPLS[impl])
    q64, q32 = p64.detach().clone(), p32.detach().clone().double()
    ref = ReferenceINNA(lr=0.05, alpha=0.5, beta=0.1)
    for k in range(10):
        p64.grad = grad_fn(p64.detach(), k, 0)
        p32.grad = grad_fn(p32.detach().double(), k, 1).float()
        opt.step()
        ref.step([q64, q32], [grad_fn(q64, k, 0), grad_fn(q32, k, 1)])
    assert opt.state[p32]["phase"].dtype == torch.float32
    assert (p64.detach() - q64).abs().max() < 1e-12
    assert (p32.detach().double() - q32).abs().max() < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize(
    "shapes,hparams",
    [
        ([(), (4, 3), (2, 5, 3), (7,)], dict(lr=0.05, alpha=0.5, beta=0.1, initial_speed=1.0)),
        ([(3, 3), (6,)], dict(lr=0.02, alpha=1.3, beta=0.01, weight_decay=0.01, maximize=True)),
        ([(5, 2)], dict(lr=0.1, alpha=0.0, beta=1.5, weight_decay=0.05, decoupled_weight_decay=True)),
    ],
)
@pytest.mark.parametrize("cpu_kernel", ["1", pytest.param("0", marks=pytest.mark.slow)], ids=["c-loop", "compiled"])
def test_fused_matches_reference(fresh_dynamo, monkeypatch, shapes, hparams, cpu_kernel):
    """Both fused routes: the C loop (CPU) and, with INNA_CPU_KERNEL=0, torch.compile (what a GPU runs)."""
    from inna.torch import _compiled, _fused

    monkeypatch.setenv("INNA_CPU_KERNEL", cpu_kernel)

    ran = []
    for module, name, label in ((_fused, "_call", "c"), (_compiled, "run", "compiled")):
        real = getattr(module, name)
        monkeypatch.setattr(
            module, name, lambda *a, _real=real, _label=label, **k: (ran.append(_label), _real(*a, **k))
        )

    def grad_mask(k, i):
        return not (i == 1 and 3 <= k < 6) and k != 8

    lrs = [hparams["lr"] / (k + 1) ** 0.5 for k in range(30)]
    noncontig = [False, True, True, False]
    dtheta, dpsi, *_ = run_pair(shapes, 30, hparams, "fused", noncontig=noncontig, grad_mask=grad_mask, lrs=lrs)
    assert dtheta < 1e-12 and dpsi < 1e-12
    # a fused kernel really ran (the C loop on CPU where it builds, else a compiled graph), not only the reference
    assert ran and len(set(ran)) == 1
    if cpu_kernel == "0":
        assert set(ran) == {"compiled"}


@pytest.mark.slow
@settings(max_examples=6)
@given(shapes=st.lists(shape_st, min_size=1, max_size=3), hparams=hparam_st, steps=st.integers(1, 12))
def test_fused_matches_reference_random_shapes(shapes, hparams, steps):
    """Fewer examples than the eager paths: every example compiles a kernel."""
    dtheta, dpsi, params, _ = run_pair(shapes, steps, hparams, "fused")
    scale = 1 + max(p.detach().abs().max().item() for p in params)
    assert dtheta <= 1e-10 * scale and dpsi <= 1e-10 * scale


@pytest.mark.slow
@pytest.mark.parametrize(
    "dtype,kwargs",
    [
        (torch.complex128, dict()),
        (torch.bfloat16, dict(state_dtype=torch.float32)),
        (torch.float32, dict(lr=torch.tensor(0.03))),
    ],
    ids=["complex", "bf16-master", "float32-tensor-lr"],
)
def test_fused_matches_foreach_on_other_dtypes(dtype, kwargs):
    torch.manual_seed(0)
    base = [torch.randn(5, 3, dtype=dtype), torch.randn(7, dtype=dtype)]
    runs = []
    for impl in (dict(foreach=True), dict(fused=True)):
        params = [t.clone().requires_grad_() for t in base]
        opt = INNA(params, **{"lr": 0.03, "initial_speed": 1.0, **kwargs, **impl})
        for k in range(15):
            for i, p in enumerate(params):
                gen = torch.Generator().manual_seed(100 * k + i)
                p.grad = torch.randn(p.shape, generator=gen, dtype=dtype) + 0.1 * p.detach()
            opt.step()
        # with state_dtype the values live in the float32 master copy (the bf16 parameter is its rounding)
        values = [opt.state[p].get("master", p.detach()).clone() for p in params]
        runs.append(values + [opt.state[p]["phase"].clone() for p in params])
    tol = {torch.complex128: 1e-12, torch.bfloat16: 1e-6, torch.float32: 1e-6}[dtype]
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=0, atol=tol)
