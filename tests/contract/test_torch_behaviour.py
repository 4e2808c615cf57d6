"""The torch.optim contract, behaviour: param groups, zero lr, params without grad, maximize, complex params, Tensor
lr, closures, hooks, differentiable steps, copies, the path each setting takes, low-precision state and the
stability warning. Every check runs for every row of the optimizer table (``optim_db.OPTIM_DB``)."""

from __future__ import annotations

import copy
import importlib
import pickle
import warnings

import pytest
import torch

from .optim_db import OPTIM_DB, by_name
from .torch_training import IMPLS, batch, flat, make, optimizer_class, tiny_model, train

pytestmark = pytest.mark.needs_torch


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_defaults_are_the_documented_ones(info):
    opt = optimizer_class(info)([torch.randn(2, requires_grad=True)])
    documented = info.defaults["torch"]
    assert {k: opt.defaults[k] for k in documented} == documented
    assert opt.defaults["maximize"] is False and opt.defaults["state_dtype"] is None


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_forloop_goes_right_direction(info, impl, maximize):
    """PyTorch's own sanity test: 20 steps on ||Wx + b||^2 lower the loss (raise it with maximize)."""
    weight = torch.randn(10, 5, requires_grad=True)
    bias = torch.randn(10, requires_grad=True)
    x = torch.randn(5)
    opt = make(info, [weight, bias], lr=0.05, maximize=maximize, **impl)

    def closure():
        opt.zero_grad()
        loss = (weight.mv(x) + bias).pow(2).sum()
        loss.backward()
        return loss

    initial = closure().item()
    for _ in range(20):
        opt.step(closure)
    final = closure().item()
    assert final > initial if maximize else final < initial


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_param_groups_equal_separate_optimizers(info, impl):
    m1, m2 = tiny_model(), tiny_model()
    a1, b1 = list(m1[0].parameters()), list(m1[2].parameters())
    a2, b2 = list(m2[0].parameters()), list(m2[2].parameters())
    grouped = make(info, [{"params": a1}, {"params": b1, **info.group}], **impl)
    sep1 = make(info, a2, **impl)
    sep2 = make(info, b2, **info.group, **impl)
    for k in range(15):
        for model, opts in ((m1, [grouped]), (m2, [sep1, sep2])):
            x, y = batch(k)
            for o in opts:
                o.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            for o in opts:
                o.step()
    assert torch.equal(flat(m1), flat(m2))


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_group_with_zero_lr_does_not_move(info):
    model = tiny_model()
    frozen = list(model[2].parameters())
    opt = make(info, [{"params": model[0].parameters()}, {"params": frozen, "lr": 0.0}], **info.options)
    before = [p.detach().clone() for p in frozen]
    train(model, opt, range(10))
    assert all(torch.equal(p.detach(), b) for p, b in zip(frozen, before))


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_params_without_grad_are_skipped_and_initialised_when_they_get_one(info):
    model = tiny_model()
    late = model[2].weight
    opt = make(info, model.parameters())
    late.requires_grad_(False)
    before = late.detach().clone()
    train(model, opt, range(5))
    assert late not in opt.state and torch.equal(late.detach(), before)
    if "step" in info.state["torch"]:  # a per-parameter step count
        assert opt.state[model[0].weight]["step"].item() == 5
    late.requires_grad_(True)
    train(model, opt, range(5, 6))
    assert late in opt.state and not torch.equal(late.detach(), before)
    if "step" in info.state["torch"]:
        assert opt.state[late]["step"].item() == 1


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_add_param_group_later_is_initialised_lazily(info):
    model = tiny_model()
    opt = make(info, model[0].parameters())
    train(model, opt, range(3))
    opt.add_param_group({"params": model[2].parameters(), "beta": 0.3})
    assert opt.param_groups[1]["beta"] == 0.3 and opt.param_groups[1]["alpha"] == info.defaults["torch"]["alpha"]
    assert all(p not in opt.state for p in model[2].parameters())
    train(model, opt, range(3, 4))
    assert all(set(opt.state[p]) >= set(info.state["torch"]) for p in model[2].parameters())
    if "step" in info.state["torch"]:
        assert all(opt.state[p]["step"].item() == 1 for p in model[2].parameters())


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_step_with_zero_lr_changes_nothing(info):
    model = tiny_model()
    opt = make(info, model.parameters(), **info.options)
    train(model, opt, range(5))
    for g in opt.param_groups:
        g["lr"] = 0.0
    params = flat(model).clone()
    phases = [opt.state[p]["phase"].clone() for p in model.parameters()]
    train(model, opt, range(5, 8))
    assert torch.equal(flat(model), params)
    assert all(torch.equal(opt.state[p]["phase"], ph) for p, ph in zip(model.parameters(), phases))


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_fresh_optimizer_zero_grad_step_is_noop(info):
    model = tiny_model()
    opt = make(info, model.parameters(), weight_decay=0.0)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    before = flat(model).clone()
    opt.step()
    assert torch.equal(flat(model), before)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_maximize_does_not_mutate_grad_and_equals_minimising_the_negation(info, impl):
    p = torch.randn(6, dtype=torch.float64, requires_grad=True)
    q = p.detach().clone().requires_grad_()
    up = make(info, [p], lr=0.05, maximize=True, **info.options, **impl)
    down = make(info, [q], lr=0.05, **info.options, **impl)
    for _ in range(10):
        g = torch.sin(p.detach())
        p.grad = g.clone()
        q.grad = -torch.sin(q.detach())
        up.step()
        down.step()
        assert torch.equal(p.grad, g)
    torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-14)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_complex_params_equal_their_real_view(info, impl):
    z = torch.randn(3, 4, dtype=torch.complex128, requires_grad=True)
    r = torch.view_as_real(z.detach()).clone().requires_grad_()
    oz = make(info, [z], **info.options, **impl)
    orr = make(info, [r], **info.options, **impl)
    for k in range(10):
        gr = torch.randn(3, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
        z.grad = torch.view_as_complex(gr.clone())
        r.grad = gr
        oz.step()
        orr.step()
    assert oz.state[z]["phase"].is_complex()
    torch.testing.assert_close(torch.view_as_real(z.detach()), r.detach(), rtol=0, atol=1e-15)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("scheduler", ["PowerDecayLR", "CosineAnnealingLR"])
@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_tensor_lr_equals_float_lr_under_a_scheduler(info, scheduler, impl):
    from inna import PowerDecayLR

    schedule = {"PowerDecayLR": PowerDecayLR, "CosineAnnealingLR": torch.optim.lr_scheduler.CosineAnnealingLR}
    m1, m2 = tiny_model(), tiny_model()
    o1 = make(info, m1.parameters(), lr=0.05, **impl)
    # a float64 Tensor holds exactly the float's value (a float32 one would round 0.05)
    o2 = make(info, m2.parameters(), lr=torch.tensor(0.05, dtype=torch.float64), **impl)
    extra = {"T_max": 10} if scheduler == "CosineAnnealingLR" else {}
    s1, s2 = (schedule[scheduler](o, **extra) for o in (o1, o2))
    train(m1, o1, range(10), s1)
    train(m2, o2, range(10), s2)
    assert isinstance(o2.param_groups[0]["lr"], torch.Tensor)
    assert torch.equal(flat(m1), flat(m2))


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_closure_is_called_once_with_grad_enabled_and_its_loss_returned(info):
    p = torch.randn(3, requires_grad=True)
    opt = make(info, [p])
    calls = []

    def closure():
        calls.append(torch.is_grad_enabled())
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    with torch.no_grad():
        loss = opt.step(closure)
    assert calls == [True] and isinstance(loss, torch.Tensor)


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_step_hooks_run_in_order(info):
    p = torch.randn(3, requires_grad=True)
    opt = make(info, [p])
    seen = []
    opt.register_step_pre_hook(lambda o, a, k: seen.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: seen.append("post"))
    p.grad = torch.ones(3)
    opt.step()
    assert seen == ["pre", "post"]


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_named_parameters_are_accepted_and_saved(info):
    model = tiny_model()
    opt = make(info, model.named_parameters())
    train(model, opt, range(2))
    assert opt.state_dict()["param_groups"][0]["param_names"] == [n for n, _ in model.named_parameters()]


def _gradcheck_state(info, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """A mid-run state for the differentiable step: a step count of 3, a second moment away from sqrt's kink at 0,
    any other state (the phase) random; all but the count require grad."""
    state = {}
    for key in info.state["torch"]:
        if key == "step":
            state[key] = torch.tensor(3.0)
        elif key == "exp_avg_sq":
            state[key] = (torch.rand(5, dtype=torch.float64, generator=gen) + 0.5).requires_grad_()
        else:
            state[key] = torch.randn(5, dtype=torch.float64, generator=gen).requires_grad_()
    return state


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_differentiable_step_passes_gradcheck(info):
    hyper = dict(alpha=0.4, beta=0.7, weight_decay=0.3, **({"sigma": 0.9} if "sigma" in info.ranges else {}))
    gen = torch.Generator().manual_seed(0)
    state = _gradcheck_state(info, gen)
    names = [k for k, v in state.items() if v.requires_grad]

    def one_step(theta, grad, *values):
        *tensors, lr = values
        p = theta.clone()  # non-leaf, so in-place updates are recorded
        p.grad = grad
        opt = make(info, [p], lr=lr, differentiable=True, **hyper)
        opt.state[p].update({k: state[k].clone() for k in state if k not in names})  # the step count advances
        opt.state[p].update({k: t.clone() for k, t in zip(names, tensors)})
        opt.step()
        return (p, *(opt.state[p][k] for k in names))

    theta, grad = (torch.randn(5, dtype=torch.float64, generator=gen).requires_grad_() for _ in range(2))
    lr = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(one_step, (theta, grad, *(state[k] for k in names), lr))


def test_inna_hypergradient_is_the_papers():
    """d theta_1 / d lr = -(phase + beta g), through the differentiable step."""
    theta, grad, phase = (torch.randn(5, dtype=torch.float64, requires_grad=True) for _ in range(3))
    lr = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    p = theta.clone()
    p.grad = grad
    opt = make(by_name("INNA"), [p], lr=lr, alpha=0.4, beta=0.3, differentiable=True)
    opt.state[p]["phase"] = phase.clone()
    opt.step()
    (dlr,) = torch.autograd.grad(p.sum(), lr)
    torch.testing.assert_close(dlr, -(phase + 0.3 * grad).sum())


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_deepcopy_pickle_repr_and_identical_continuation(info):
    model = tiny_model()
    opt = make(info, model.parameters(), alpha=0.3, **{k: v for k, v in info.options.items() if k != "alpha"})
    train(model, opt, range(3))
    clone = copy.deepcopy(opt)
    public = {k for k in opt.__dict__ if not k.startswith("_")}
    assert clone.defaults == opt.defaults and public <= clone.__dict__.keys()
    assert [sorted(g) for g in clone.param_groups] == [sorted(g) for g in opt.param_groups]
    assert pickle.loads(pickle.dumps(opt)).defaults == opt.defaults
    text = repr(opt)
    assert text.startswith(f"{info.name} (") and "alpha: 0.3" in text
    assert all(f"{k}: " in text for k in info.defaults["torch"])
    twins = [copy.deepcopy((model, opt)), pickle.loads(pickle.dumps((model, opt)))]  # params shared with their model
    train(model, opt, range(3, 6))
    for twin_model, twin_opt in twins:
        assert all(twin_opt.state[p]["phase"].shape == p.shape for p in twin_model.parameters())
        train(twin_model, twin_opt, range(3, 6))
        assert torch.equal(flat(twin_model), flat(model))


# ---------------------------------------------------------------------------- the path each setting takes

#: The module and private functions of each optimizer's paths (reference loop, foreach, C loop), and the C kernel
#: its default float32 step would build.
PATHS = {
    "INNA": ("inna.torch.functional", "_single_tensor_inna", "_multi_tensor_inna", "_fused_inna"),
    "INNAprop": ("inna.torch.innaprop", "_single_tensor_innaprop", "_multi_tensor_innaprop", "_fused_innaprop"),
}


def _default_kernel_builds(info) -> bool:
    """Whether this machine builds the C kernel of the row's documented defaults in float32."""
    from inna.torch import _fused

    module = importlib.import_module(PATHS[info.name][0])
    d = info.defaults["torch"]
    if info.name == "INNA":
        static = dict(alpha=d["alpha"], beta=d["beta"], l2=0.0, maximize=False)
        return _fused.c_kernel_available(module._single_tensor_inna, (3, 1), torch.float32, static)
    static = dict(alpha=d["alpha"], beta=d["beta"], sigma=d["sigma"], eps=d["eps"], weight_decay=d["weight_decay"],
                  maximize=False)  # fmt: skip
    return _fused.c_kernel_available(module._innaprop_core, module._CORE_ARITY, torch.float32, static)


@pytest.mark.parametrize("impl", [dict(), dict(fused=False), dict(foreach=None, fused=None)])
@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_without_the_cpu_kernel_default_and_fused_false_take_the_foreach_path(info, impl, monkeypatch):
    module_name, single, multi, _ = PATHS[info.name]
    module = importlib.import_module(module_name)
    monkeypatch.setenv("INNA_CPU_KERNEL", "0")  # as on a machine without a C compiler
    calls = []
    monkeypatch.setattr(module, multi, lambda *a, **k: calls.append("foreach"))
    monkeypatch.setattr(module, single, lambda *a, **k: calls.append("single"))
    p = torch.randn(3, requires_grad=True)
    p.grad = torch.ones(3)
    make(info, [p], **impl).step()
    make(info, [p], foreach=False).step()
    make(info, [p], differentiable=True).step()
    assert calls == ["foreach", "single", "single"]


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_default_on_cpu_takes_the_c_loop_where_it_builds(info, monkeypatch):
    module_name, _, multi, fused = PATHS[info.name]
    module = importlib.import_module(module_name)
    calls = []
    monkeypatch.setattr(module, multi, lambda *a, **k: calls.append("foreach"))
    monkeypatch.setattr(module, fused, lambda *a, **k: calls.append("fused"))
    p = torch.randn(3, requires_grad=True)
    p.grad = torch.ones(3)
    cls = optimizer_class(info)
    for impl in (dict(), dict(fused=False), dict(foreach=True), dict(fused=True)):
        cls([p], **impl).step()  # the documented defaults
    builds = _default_kernel_builds(info)
    assert calls == ["fused" if builds else "foreach", "foreach", "foreach", "fused"]


# ------------------------------------------------------------------------------------- low-precision params

#: A learning rate whose first steps fall below bf16's resolution for each optimizer.
SMALL_LR = {"INNA": 1e-2, "INNAprop": 1e-3}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_bf16_master_copy_follows_the_fp32_run(info, impl):
    torch.manual_seed(0)
    p32 = torch.randn(64, requires_grad=True)
    plo = p32.detach().bfloat16().requires_grad_()
    ref = plo.detach().float().requires_grad_()
    o_lo = make(info, [plo], lr=SMALL_LR[info.name], state_dtype=torch.float32, **impl)
    o_ref = make(info, [ref], lr=SMALL_LR[info.name], **impl)
    for _ in range(100):
        g = ref.detach() * torch.linspace(0.1, 2.0, 64) - 1.0
        ref.grad, plo.grad = g, g.bfloat16()
        o_ref.step()
        o_lo.step()
    state = o_lo.state[plo]
    assert {state[k].dtype for k in state if k != "step"} == {torch.float32} and "master" in state
    assert torch.equal(plo.detach(), state["master"].bfloat16())
    assert (state["master"] - ref.detach()).abs().max() < 0.01
    # a master-less bf16 run loses these small steps to rounding; the master copy keeps them
    assert (state["master"] - p32.detach().bfloat16().float()).abs().max() > 0.05


# ---------------------------------------------------------------------------------------- stability warning


def _stability_warnings(record) -> list:
    from inna import INNAStabilityWarning

    return [w for w in record if issubclass(w.category, INNAStabilityWarning)]


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_stability_warning_only_where_the_rule_breaks_once_and_at_the_caller(info):
    from inna import INNAStabilityWarning

    cls = optimizer_class(info)
    p = torch.randn(3, requires_grad=True)
    p.grad = torch.ones(3)
    beta = info.defaults["torch"]["beta"]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cls([p], lr=beta).step()  # lr == beta: inside the rule
        cls([p]).step()  # the documented defaults
        make(info, [p]).step()
    assert not _stability_warnings(seen)
    opt = cls([p], **info.unstable)
    lr, b = info.unstable["lr"], info.unstable["beta"]
    with pytest.warns(
        INNAStabilityWarning, match=rf"{info.name}: param group 0 has lr={lr:.4g} .* beta={b:.4g}"
    ) as rec:
        opt.step()
    assert rec[0].filename == __file__
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        opt.step()
    assert not _stability_warnings(seen)


def _lr_dtypes():
    for info in OPTIM_DB:
        for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            yield pytest.param(info, dtype, id=f"{info}-{dtype}".replace("torch.", ""))


@pytest.mark.parametrize("info, dtype", list(_lr_dtypes()))
def test_documented_defaults_never_warn_whatever_the_dtype_of_a_tensor_lr(info, dtype):
    """The documented hyperparameters with the lr held as a Tensor of any float dtype keep the stability rule, and a
    real violation in that dtype still warns."""
    cls = optimizer_class(info)
    for param_dtype in (torch.float32, dtype):
        p = torch.randn(3, dtype=param_dtype, requires_grad=True)
        p.grad = torch.ones_like(p)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            cls([p], lr=torch.tensor(info.defaults["torch"]["lr"], dtype=dtype)).step()
        assert not _stability_warnings(seen), [str(w.message) for w in seen]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cls([p], **{**info.unstable, "lr": torch.tensor(info.unstable["lr"], dtype=dtype)}).step()
    assert len(_stability_warnings(seen)) == 1
