"""What PyTorch's own optimizer tests (``TestOptimRenewed``) ask of a ``torch.optim`` optimizer, on every path.

- A state dict whose ``step`` is a Python number or a 1-element tensor loads (as a 0-dim float32 tensor, as
  ``torch.optim.AdamW`` converts it) and the next step continues the count.
- ``torch.amp.GradScaler``'s ``grad_scale`` and ``found_inf`` may have any 1-element shape, as for torch's fused
  optimizers.
- INNAprop in plain float16 (``state_dtype=None``) warns once and points to ``state_dtype=torch.float32``.
- ``load_state_dict`` runs the user's pre- and post-hooks once each, and leaves them registered.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from inna import INNA, INNAprop

PATHS = [dict(), dict(foreach=True), dict(foreach=False), dict(fused=True)]
OPTIMIZERS = {"INNA": (INNA, dict(lr=0.05)), "INNAprop": (INNAprop, dict(lr=0.01))}


def stepped(cls, kwargs, impl, steps=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(4, 3, generator=gen).requires_grad_(), torch.randn((), generator=gen).requires_grad_()]
    opt = cls(params, **kwargs, **impl)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    return params, opt


@pytest.mark.parametrize("impl", PATHS, ids=str)
@pytest.mark.parametrize(
    "saved", [3, 3.0, torch.tensor([3.0]), torch.tensor(3), torch.tensor([[3.0]], dtype=torch.float64)]
)
def test_a_numeric_or_one_element_step_loads_as_a_0_dim_float32_tensor(saved, impl):
    params, opt = stepped(INNAprop, dict(lr=0.01), impl)
    sd = copy.deepcopy(opt.state_dict())
    for s in sd["state"].values():
        s["step"] = saved
    opt.load_state_dict(sd)
    for p in params:
        step = opt.state[p]["step"]
        assert step.shape == () and step.dtype == torch.float32 and step.item() == 3.0
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    assert [opt.state[p]["step"].item() for p in params] == [4.0, 4.0]
    if isinstance(saved, torch.Tensor):
        assert saved.flatten()[0].item() == 3  # the saved tensor is copied, never advanced in place


def test_a_loaded_numeric_step_gives_the_same_run_as_a_tensor_step():
    runs = []
    for as_number in (False, True):
        params, opt = stepped(INNAprop, dict(lr=0.01), {}, steps=3)
        sd = copy.deepcopy(opt.state_dict())
        if as_number:
            for s in sd["state"].values():
                s["step"] = int(s["step"].item())
        opt.load_state_dict(sd)
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
        runs.append([p.detach().clone() for p in params])
    assert all(torch.equal(a, b) for a, b in zip(*runs))  # the same path, the same bias correction


def test_a_step_of_more_than_one_element_is_refused_naming_it():
    _, opt = stepped(INNAprop, dict(lr=0.01), {})
    sd = copy.deepcopy(opt.state_dict())
    sd["state"][0]["step"] = torch.tensor([1.0, 2.0])
    with pytest.raises(ValueError, match="saved step of parameter #0 of group 0 must be a number or a 1-element"):
        opt.load_state_dict(sd)


@pytest.mark.parametrize("shape", [(), (1,), (1, 1)], ids=str)
@pytest.mark.parametrize("impl", PATHS, ids=str)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_grad_scale_and_found_inf_of_any_one_element_shape(name, impl, shape):
    """The fused route (fused=True) and the default route (the others, through the functional update) with a
    first step (where the fused route too takes the scaler's default route) and later ones."""
    cls, kwargs = OPTIMIZERS[name]
    results = []
    for s in ((), shape):
        params, opt = stepped(cls, kwargs, {})
        opt = cls(params, **kwargs, **impl)
        for k, found in enumerate((0.0, 0.0, 1.0, 0.0)):
            for p in params:
                p.grad = torch.full_like(p, 8.0 * (k + 1))
            opt.grad_scale, opt.found_inf = torch.full(s, 8.0), torch.full(s, found)
            if impl.get("fused"):
                opt.step()
            else:
                from inna.torch._amp import unscale_and_check as amp_default_route

                if not amp_default_route([p.grad for p in params], opt.grad_scale, opt.found_inf):
                    opt.grad_scale = opt.found_inf = None
                    opt.step()
        results.append([p.detach().clone() for p in params] + [p.grad.clone() for p in params])
    assert all(torch.equal(a, b) for a, b in zip(*results))


@pytest.mark.parametrize("shape", [(1,), (1, 1)], ids=str)
@pytest.mark.parametrize("impl", PATHS, ids=str)
def test_the_functional_updates_take_one_element_grad_scale_and_found_inf(impl, shape):
    from inna.torch import inna_update, innaprop_update

    for found in (0.0, 1.0):
        p, g, phase = torch.ones(3), torch.full((3,), 4.0), torch.zeros(3)
        inna_update([p], [g], [phase], lr=0.1, alpha=0.5, beta=0.1, grad_scale=torch.full(shape, 4.0),
                    found_inf=torch.full(shape, found), **impl)  # fmt: skip
        assert torch.equal(p, torch.ones(3) if found else torch.full((3,), 0.99))
        p, g, v, phase, step = torch.ones(3), torch.full((3,), 4.0), torch.zeros(3), torch.zeros(3), torch.zeros(())
        innaprop_update([p], [g], [v], [phase], [step], lr=0.1, alpha=0.5, beta=0.1, sigma=0.9, eps=0.0,
                        grad_scale=torch.full(shape, 4.0), found_inf=torch.full(shape, found), **impl)  # fmt: skip
        assert step.item() == (0.0 if found else 1.0)
        assert torch.equal(v, torch.zeros(3) if found else torch.full((3,), 0.1 * 1.0, dtype=torch.float32))


def test_grad_scale_of_more_than_one_element_is_refused():
    from inna.torch import inna_update

    with pytest.raises(ValueError, match=r"grad_scale must be a 1-element tensor, got shape \(2,\)"):
        inna_update([torch.ones(3)], [torch.ones(3)], [torch.zeros(3)], lr=0.1, alpha=0.5, beta=0.1,
                    grad_scale=torch.ones(2), fused=True)  # fmt: skip


@pytest.mark.parametrize("impl", PATHS, ids=str)
def test_innaprop_in_float16_warns_once_pointing_to_state_dtype(impl):
    p = torch.randn(8, dtype=torch.float16, requires_grad=True)
    opt = INNAprop([p], lr=1e-3, **impl)
    with pytest.warns(UserWarning, match=r"state_dtype=torch\.float32") as record:
        for _ in range(3):
            p.grad = torch.randn(8, dtype=torch.float16)
            opt.step()
    assert sum("float16" in str(w.message) for w in record) == 1
    assert record[0].filename == __file__  # pointed at the user's step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for dtype, state_dtype in ((torch.float16, torch.float32), (torch.bfloat16, None), (torch.float32, None)):
            q = torch.randn(8, dtype=dtype, requires_grad=True)
            other = INNAprop([q], lr=1e-3, state_dtype=state_dtype, **impl)
            q.grad = torch.randn(8, dtype=dtype)
            other.step()
            assert q.isfinite().all()


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_load_state_dict_runs_the_user_hooks_once_each_and_keeps_them(name):
    cls, kwargs = OPTIMIZERS[name]
    _, opt = stepped(cls, kwargs, {}, steps=2)
    sd = copy.deepcopy(opt.state_dict())
    calls = []

    def pre(optimizer, state_dict):
        calls.append("pre")
        state_dict = copy.deepcopy(state_dict)
        state_dict["param_groups"][0]["lr"] = 0.125  # a rewrite the check must see, and load
        return state_dict

    def post(optimizer):
        calls.append("post")

    opt.register_load_state_dict_pre_hook(pre)
    opt.register_load_state_dict_post_hook(post)
    for _ in range(2):
        opt.load_state_dict(sd)
    assert calls == ["pre", "post", "pre", "post"] and opt.param_groups[0]["lr"] == 0.125

    def bad(optimizer, state_dict):
        state_dict = copy.deepcopy(state_dict)
        state_dict["param_groups"][0]["beta"] = -1.0
        return state_dict

    opt.register_load_state_dict_pre_hook(bad)
    with pytest.raises(ValueError, match="Invalid beta value"):
        opt.load_state_dict(sd)  # the check runs after the user's hooks
    assert opt.param_groups[0]["beta"] == kwargs.get("beta", opt.defaults["beta"])


def test_high_precision_state_comes_back_exactly_with_a_user_post_hook():
    p = torch.randn(5, dtype=torch.bfloat16, requires_grad=True)
    opt = INNAprop([p], lr=0.01, state_dtype=torch.float32)
    p.grad = torch.randn(5, dtype=torch.bfloat16)
    opt.step()
    sd = copy.deepcopy(opt.state_dict())
    seen = []
    opt.register_load_state_dict_post_hook(lambda o: seen.append(o.state[p]["phase"].dtype))
    opt.load_state_dict(sd)
    assert seen == [torch.float32]  # restored before the user's post-hook runs
    for key in ("phase", "exp_avg_sq", "master"):
        assert torch.equal(opt.state[p][key], sd["state"][0][key])
