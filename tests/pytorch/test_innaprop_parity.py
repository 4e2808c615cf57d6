"""INNAprop's three paths (reference, foreach, fused) against the official ψ-form in float64; the converters."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ReferenceINNAprop

from inna import INNAprop
from inna.torch.innaprop import from_official_state_dict, to_official_state_dict

IMPLS = {"single": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}


def grad_fn(theta: torch.Tensor, k: int, i: int) -> torch.Tensor:
    """A smooth non-quadratic gradient field plus a step-dependent 'mini-batch' term of varying scale."""
    gen = torch.Generator().manual_seed(1000 * k + i)
    noise = torch.randn(theta.shape, generator=gen, dtype=theta.dtype)
    return torch.tanh(theta) + 0.3 * theta + (0.2 + 0.1 * (i % 3)) * noise


def make_params(shapes, noncontig=None, dtype=torch.float64):
    params = []
    for j, shape in enumerate(shapes):
        if noncontig and noncontig[j] and len(shape) >= 2:
            t = torch.randn(tuple(reversed(shape)), dtype=dtype).transpose(0, len(shape) - 1)
        else:
            t = torch.randn(shape, dtype=dtype)
        params.append(t.requires_grad_())
    return params


def cosine_with_warmup(lr: float, steps: int, warmup: int) -> list[float]:
    return [
        lr * (k + 1) / warmup if k < warmup else lr * 0.5 * (1 + math.cos(math.pi * (k - warmup) / (steps - warmup)))
        for k in range(steps)
    ]


def run_pair(shapes, steps, hparams, impl, *, noncontig=None, grad_mask=None, lrs=None):
    """INNAprop and the official ψ-form side by side; the largest differences in θ, ψ and v."""
    params = make_params(shapes, noncontig)
    thetas = [p.detach().clone() for p in params]
    opt = INNAprop(params, **hparams, **IMPLS[impl])
    ref = ReferenceINNAprop(**hparams)
    for k in range(steps):
        if lrs is not None:
            opt.param_groups[0]["lr"] = lrs[k]
        grads_ref = []
        for i, (p, th) in enumerate(zip(params, thetas)):
            active = grad_mask is None or grad_mask(k, i)
            p.grad = grad_fn(p.detach(), k, i) if active else None
            grads_ref.append(grad_fn(th, k, i) if active else None)
        opt.step()
        ref.step(thetas, grads_ref, lr=None if lrs is None else lrs[k])
    dtheta = max((p.detach() - th).abs().max().item() for p, th in zip(params, thetas))
    dpsi = dv = 0.0
    for i, p in enumerate(params):
        if i in ref.psi:
            dpsi = max(dpsi, (opt.psi(p) - ref.psi[i]).abs().max().item())
            dv = max(dv, (opt.state[p]["exp_avg_sq"] - ref.v[i]).abs().max().item())
            assert opt.state[p]["step"].item() == ref.t[i]
        else:
            assert opt.psi(p) is None and p not in opt.state
    return dtheta, dpsi, dv, params, opt


shape_st = st.lists(st.integers(1, 5), min_size=0, max_size=3).map(tuple)
hparam_st = st.fixed_dictionaries(
    {
        "lr": st.floats(0.0, 0.1),
        "alpha": st.floats(0.0, 3.0),
        "beta": st.floats(0.2, 3.0),
        "sigma": st.one_of(st.just(0.0), st.floats(0.5, 0.9999)),
        "eps": st.one_of(st.just(0.0), st.just(1e-8), st.floats(1e-8, 1e-2)),
        "weight_decay": st.one_of(st.just(0.0), st.floats(0.0, 0.5)),
        "maximize": st.booleans(),
    }
)


def assert_close_to_reference(dtheta, dpsi, dv, params, tol=1e-10):
    scale = 1 + max(p.detach().abs().max().item() for p in params)
    assert dtheta <= tol * scale and dpsi <= tol * scale and dv <= tol * scale


@pytest.mark.parametrize("impl", ["single", "foreach"])
@given(
    shapes=st.lists(shape_st, min_size=1, max_size=4),
    hparams=hparam_st,
    steps=st.integers(1, 40),
    schedule=st.booleans(),
)
def test_matches_official_form_random_shapes(impl, shapes, hparams, steps, schedule):
    lrs = cosine_with_warmup(hparams["lr"], steps, max(1, steps // 4)) if schedule and steps > 1 else None
    assert_close_to_reference(*run_pair(shapes, steps, hparams, impl, lrs=lrs)[:4])


@pytest.mark.parametrize("impl", ["single", "foreach"])
def test_zero_dim_noncontiguous_frozen_unfrozen_and_all_none_step(impl):
    shapes = [(), (4, 3), (2, 5, 3), (7,)]

    def grad_mask(k, i):
        if k == 6:
            return False  # every gradient None
        if i == 1 and 3 <= k < 9:
            return False  # frozen at step 3, unfrozen at step 9: its own step count lags
        return not (i == 3 and k < 5)  # a first gradient only at step 5

    hparams = dict(lr=2e-3, alpha=0.1, beta=0.9, weight_decay=0.01)
    dtheta, dpsi, dv, params, opt = run_pair(
        shapes, 30, hparams, impl, noncontig=[False, True, True, False], grad_mask=grad_mask
    )
    assert dtheta < 1e-13 and dpsi < 1e-13 and dv < 1e-13
    assert not params[1].is_contiguous()
    assert opt.state[params[1]]["phase"].stride() == params[1].stride()
    assert opt.state[params[1]]["exp_avg_sq"].stride() == params[1].stride()
    assert opt.state[params[1]]["step"].item() == 24 and opt.state[params[3]]["step"].item() == 24
    assert opt.state[params[0]]["phase"].dim() == 0


@pytest.mark.parametrize("impl", ["single", "foreach"])
@pytest.mark.parametrize("preset", [(0.1, 0.9), (1.0, 1.0), (2.0, 2.0)])
def test_many_steps_with_cosine_warmup_and_the_authors_presets(impl, preset):
    """1000 steps of warmup + cosine with weight decay: the phase form stays on the official trajectory."""
    alpha, beta = preset
    hparams = dict(lr=1e-2, alpha=alpha, beta=beta, sigma=0.99, weight_decay=0.1)
    lrs = cosine_with_warmup(1e-2, 1000, 100)
    dtheta, dpsi, dv, params, _ = run_pair([(6, 5), (5,)], 1000, hparams, impl, lrs=lrs)
    assert_close_to_reference(dtheta, dpsi, dv, params, tol=1e-11)


@pytest.mark.parametrize("impl", ["single", "foreach"])
def test_lr_above_beta_is_legal_and_still_the_official_update(impl):
    """The official form divides by beta - lr; ours has no singularity, and agrees with it on both sides."""
    hparams = dict(lr=1.5, alpha=0.1, beta=0.5, weight_decay=0.0)
    dtheta, dpsi, dv, params, _ = run_pair([(3, 2)], 8, hparams, impl)
    assert_close_to_reference(dtheta, dpsi, dv, params)
    # lr == beta exactly (the official form divides by zero): finite, the official form's limit from both sides
    torch.manual_seed(1)
    (at,) = make_params([(3, 2)])
    start = at.detach().clone()
    opt = INNAprop([at], **dict(hparams, lr=0.5), **IMPLS[impl])
    for k in range(8):
        at.grad = grad_fn(at.detach(), k, 0)
        opt.step()
    assert torch.isfinite(at).all()
    for side in (0.5 * (1 - 1e-7), 0.5 * (1 + 1e-7)):
        theta = [start.clone()]
        ref = ReferenceINNAprop(**dict(hparams, lr=side))
        for k in range(8):
            ref.step(theta, [grad_fn(theta[0], k, 0)])
        torch.testing.assert_close(at.detach(), theta[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("impl", ["single", "foreach"])
def test_complex_params_equal_their_real_view(impl):
    z = torch.randn(3, 4, dtype=torch.complex128, requires_grad=True)
    r = torch.view_as_real(z.detach()).clone().requires_grad_()
    oz = INNAprop([z], lr=0.01, weight_decay=0.1, **IMPLS[impl])
    orr = INNAprop([r], lr=0.01, weight_decay=0.1, **IMPLS[impl])
    for k in range(10):
        gr = torch.randn(3, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
        z.grad = torch.view_as_complex(gr.clone())
        r.grad = gr
        oz.step()
        orr.step()
    assert oz.state[z]["phase"].is_complex() and oz.state[z]["exp_avg_sq"].is_complex()
    torch.testing.assert_close(torch.view_as_real(z.detach()), r.detach(), rtol=0, atol=1e-15)
    torch.testing.assert_close(torch.view_as_real(oz.psi(z)), orr.psi(r), rtol=0, atol=1e-15)


@pytest.mark.parametrize("impl", ["single", "foreach"])
def test_mixed_dtypes_in_one_group(impl):
    p64 = torch.randn(4, dtype=torch.float64, requires_grad=True)
    p32 = torch.randn(4, dtype=torch.float32, requires_grad=True)
    opt = INNAprop([p64, p32], lr=0.01, **IMPLS[impl])
    q64, q32 = p64.detach().clone(), p32.detach().clone().double()
    ref = ReferenceINNAprop(lr=0.01)
    for k in range(10):
        p64.grad = grad_fn(p64.detach(), k, 0)
        p32.grad = grad_fn(p32.detach().double(), k, 1).float()
        opt.step()
        ref.step([q64, q32], [grad_fn(q64, k, 0), grad_fn(q32, k, 1).float().double()])
    assert opt.state[p32]["phase"].dtype == torch.float32 and opt.state[p32]["step"].dtype == torch.float32
    assert (p64.detach() - q64).abs().max() < 1e-13
    assert (p32.detach().double() - q32).abs().max() < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize(
    "shapes,hparams",
    [
        ([(), (4, 3), (2, 5, 3), (7,)], dict(lr=2e-3, alpha=0.1, beta=0.9, weight_decay=0.01)),
        ([(3, 3), (6,)], dict(lr=0.02, alpha=2.0, beta=2.0, sigma=0.99, weight_decay=0.1, maximize=True)),
        ([(5, 2)], dict(lr=0.05, alpha=0.0, beta=0.3, eps=0.0, weight_decay=0.0)),
    ],
)
@pytest.mark.parametrize("cpu_kernel", ["1", pytest.param("0", marks=pytest.mark.slow)], ids=["c-loop", "compiled"])
def test_fused_matches_official_form(fresh_dynamo, monkeypatch, shapes, hparams, cpu_kernel):
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

    lrs = cosine_with_warmup(hparams["lr"], 30, 5)
    dtheta, dpsi, dv, params, _ = run_pair(
        shapes, 30, hparams, "fused", noncontig=[False, True, True, False], grad_mask=grad_mask, lrs=lrs
    )
    assert_close_to_reference(dtheta, dpsi, dv, params, tol=1e-13)
    # a fused kernel really ran (the C loop on CPU where it builds, else a compiled graph), not only the reference
    assert ran and len(set(ran)) == 1
    if cpu_kernel == "0":
        assert set(ran) == {"compiled"}


@pytest.mark.slow
@settings(max_examples=5)
@given(shapes=st.lists(shape_st, min_size=1, max_size=3), hparams=hparam_st, steps=st.integers(1, 12))
def test_fused_matches_official_form_random_shapes(shapes, hparams, steps):
    """Fewer examples than the eager paths: without a C compiler, every example compiles a kernel."""
    assert_close_to_reference(*run_pair(shapes, steps, hparams, "fused")[:4])


@pytest.mark.slow
@pytest.mark.parametrize(
    "dtype,kwargs",
    [
        (torch.complex128, dict()),
        (torch.bfloat16, dict(state_dtype=torch.float32)),
        (torch.float32, dict(lr=torch.tensor(0.01))),
    ],
    ids=["complex", "bf16-master", "float32-tensor-lr"],
)
def test_fused_matches_foreach_on_other_dtypes(dtype, kwargs):
    torch.manual_seed(0)
    base = [torch.randn(5, 3, dtype=dtype), torch.randn(7, dtype=dtype)]
    runs = []
    for impl in (dict(foreach=True), dict(fused=True)):
        params = [t.clone().requires_grad_() for t in base]
        opt = INNAprop(params, **{"lr": 0.01, "weight_decay": 0.1, **kwargs, **impl})
        for k in range(15):
            for i, p in enumerate(params):
                gen = torch.Generator().manual_seed(100 * k + i)
                p.grad = torch.randn(p.shape, generator=gen, dtype=dtype) + 0.1 * p.detach()
            opt.step()
        values = [opt.state[p].get("master", p.detach()).clone() for p in params]
        runs.append(values + [opt.state[p][k].clone() for p in params for k in ("phase", "exp_avg_sq")])
    tol = {torch.complex128: 1e-12, torch.bfloat16: 1e-6, torch.float32: 1e-6}[dtype]
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=0, atol=tol)


# ------------------------------------------------------------------------------ the official code's state


def official_state_dict(ref: ReferenceINNAprop, n_params: int, capturable: bool) -> dict:
    """What the official INNAprop's state_dict() holds after the steps ``ref`` ran (its group keys, its shapes)."""
    state = {
        i: {
            "step": torch.tensor([float(ref.t[i])] if capturable else float(ref.t[i])),
            "exp_avg_sq": ref.v[i].clone(),
            "psi": ref.psi[i].clone(),
        }
        for i in ref.psi
    }
    group = dict(
        lr=ref.lr,
        alpha=ref.alpha,
        beta=ref.beta,
        sigma=ref.sigma,
        eps=ref.eps,
        weight_decay=ref.weight_decay,
        maximize=ref.maximize,
        capturable=capturable,
        params=list(range(n_params)),
    )
    return {"state": state, "param_groups": [group]}


@pytest.mark.parametrize("impl", ["single", "foreach"])
@pytest.mark.parametrize("capturable", [False, True])
def test_official_state_dict_loads_and_continues_the_official_trajectory(impl, capturable):
    hparams = dict(lr=0.01, alpha=0.5, beta=0.8, sigma=0.99, weight_decay=0.05)
    thetas = make_params([(4, 3), (5,), (2,)])
    thetas = [t.detach() for t in thetas]
    ref = ReferenceINNAprop(**hparams)
    for k in range(7):  # the third parameter never had a gradient: the official state has no entry for it
        ref.step(thetas, [grad_fn(t, k, i) if i < 2 else None for i, t in enumerate(thetas)])
    official = official_state_dict(ref, len(thetas), capturable)
    # the model's weights come from the same checkpoint, then the optimizer's state
    params = [t.clone().requires_grad_() for t in thetas]
    opt = INNAprop(params, lr=0.5, alpha=0.0, **IMPLS[impl])  # hyperparameters come from the checkpoint
    with pytest.raises(ValueError, match=r"official INNAprop code: load it with .*from_official_state_dict"):
        opt.load_state_dict(official)
    opt.load_state_dict(from_official_state_dict(official, opt))
    assert opt.param_groups[0]["alpha"] == 0.5 and "capturable" not in opt.param_groups[0]
    assert opt.state[params[0]]["step"].shape == () and params[2] not in opt.state
    for i in range(2):
        torch.testing.assert_close(opt.psi(params[i]), ref.psi[i], rtol=0, atol=1e-15)
    for k in range(7, 20):
        grads = [grad_fn(t, k, i) for i, t in enumerate(thetas)]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        ref.step(thetas, grads)
    for i, (p, t) in enumerate(zip(params, thetas)):
        torch.testing.assert_close(p.detach(), t, rtol=0, atol=1e-13)
        torch.testing.assert_close(opt.psi(p), ref.psi[i], rtol=0, atol=1e-13)
    # and back: our state in the official format is the official run's state
    back = to_official_state_dict(opt)
    assert set(back["param_groups"][0]) == {
        "params",
        "lr",
        "alpha",
        "beta",
        "sigma",
        "eps",
        "weight_decay",
        "maximize",
        "capturable",
    }
    for i in range(3):
        s = back["state"][i]
        assert set(s) == {"step", "exp_avg_sq", "psi"} and s["step"].item() == ref.t[i]
        torch.testing.assert_close(s["psi"], ref.psi[i], rtol=0, atol=1e-13)
        torch.testing.assert_close(s["exp_avg_sq"], ref.v[i], rtol=0, atol=1e-15)


def test_from_official_state_dict_refuses_another_model():
    ref = ReferenceINNAprop()
    thetas = [torch.randn(3, 2, dtype=torch.float64)]
    ref.step(thetas, [torch.ones(3, 2, dtype=torch.float64)])
    official = official_state_dict(ref, 1, capturable=False)
    opt = INNAprop([torch.randn(2, 3, requires_grad=True)])
    with pytest.raises(ValueError, match=r"psi of parameter 0 has shape \(3, 2\) but the parameter has shape \(2, 3\)"):
        from_official_state_dict(official, opt)
    with pytest.raises(ValueError, match="1 parameters in the state dict and 2 in the optimizer"):
        from_official_state_dict(official, INNAprop([torch.randn(3, 2), torch.randn(1)]))
    del official["param_groups"][0]["sigma"]
    with pytest.raises(ValueError, match=r"lacks \['sigma'\]"):
        from_official_state_dict(official, INNAprop([torch.randn(3, 2)]))
