"""INNAprop as a torch.optim citizen: everything inna.INNA promises, plus its own options and errors; and the
load_state_dict fixes both optimizers share (issue 13)."""

from __future__ import annotations

import copy
import io
import math
import pickle
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from test_contract import _schedulers, batch, flat, tiny_model, train
from torch import nn

from inna import INNA, INNAprop, INNAStabilityWarning

IMPLS = [dict(foreach=False), dict(foreach=True)]


# --------------------------------------------------------------------------------------------- behaviour


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("maximize", [False, True])
def test_forloop_goes_right_direction(impl, maximize):
    weight = torch.randn(10, 5, requires_grad=True)
    bias = torch.randn(10, requires_grad=True)
    x = torch.randn(5)
    opt = INNAprop([weight, bias], lr=0.05, maximize=maximize, **impl)

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


def test_defaults_are_the_official_ones():
    opt = INNAprop([torch.randn(2, requires_grad=True)])
    expected = dict(lr=1e-3, alpha=0.1, beta=0.9, sigma=0.999, eps=1e-8, weight_decay=0.01, maximize=False)
    assert {k: opt.defaults[k] for k in expected} == expected


@pytest.mark.parametrize("impl", IMPLS)
def test_param_groups_equal_separate_optimizers(impl):
    m1, m2 = tiny_model(), tiny_model()
    a1, b1 = list(m1[0].parameters()), list(m1[2].parameters())
    a2, b2 = list(m2[0].parameters()), list(m2[2].parameters())
    other = dict(lr=0.02, alpha=1.0, beta=1.0, sigma=0.99, eps=1e-6, weight_decay=0.1)
    grouped = INNAprop([{"params": a1}, {"params": b1, **other}], lr=0.01, **impl)
    sep1 = INNAprop(a2, lr=0.01, **impl)
    sep2 = INNAprop(b2, **other, **impl)
    for k in range(15):
        for model, opts in ((m1, [grouped]), (m2, [sep1, sep2])):
            x, y = batch(k)
            for o in opts:
                o.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            for o in opts:
                o.step()
    assert torch.equal(flat(m1), flat(m2))


def test_params_without_grad_are_skipped_and_initialised_when_they_get_one():
    model = tiny_model()
    late = model[2].weight
    opt = INNAprop(model.parameters(), lr=0.01)
    late.requires_grad_(False)
    before = late.detach().clone()
    train(model, opt, range(5))
    assert late not in opt.state and torch.equal(late.detach(), before)
    assert opt.state[model[0].weight]["step"].item() == 5
    late.requires_grad_(True)
    train(model, opt, range(5, 6))
    assert opt.state[late]["step"].item() == 1 and not torch.equal(late.detach(), before)


def test_add_param_group_later_is_initialised_lazily():
    model = tiny_model()
    opt = INNAprop(model[0].parameters(), lr=0.01)
    train(model, opt, range(3))
    opt.add_param_group({"params": model[2].parameters(), "sigma": 0.9})
    assert opt.param_groups[1]["sigma"] == 0.9 and opt.param_groups[1]["alpha"] == 0.1
    assert all(p not in opt.state for p in model[2].parameters())
    train(model, opt, range(3, 4))
    assert all(opt.state[p]["step"].item() == 1 for p in model[2].parameters())


def test_step_with_zero_lr_moves_nothing():
    model = tiny_model()
    opt = INNAprop(model.parameters(), lr=0.01, weight_decay=0.1)
    train(model, opt, range(5))
    opt.param_groups[0]["lr"] = 0.0
    params = flat(model).clone()
    phases = [opt.state[p]["phase"].clone() for p in model.parameters()]
    train(model, opt, range(5, 8))
    assert torch.equal(flat(model), params)
    assert all(torch.equal(opt.state[p]["phase"], ph) for p, ph in zip(model.parameters(), phases))


@pytest.mark.parametrize("impl", IMPLS)
def test_maximize_does_not_mutate_grad_and_equals_minimising_the_negation(impl):
    p = torch.randn(6, dtype=torch.float64, requires_grad=True)
    q = p.detach().clone().requires_grad_()
    up = INNAprop([p], lr=0.05, maximize=True, weight_decay=0.1, **impl)
    down = INNAprop([q], lr=0.05, weight_decay=0.1, **impl)
    for _ in range(10):
        g = torch.sin(p.detach())
        p.grad = g.clone()
        q.grad = -torch.sin(q.detach())
        up.step()
        down.step()
        assert torch.equal(p.grad, g)
    torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-14)


@pytest.mark.parametrize("impl", IMPLS)
def test_tensor_lr_equals_float_lr_under_a_scheduler(impl):
    m1, m2 = tiny_model(), tiny_model()
    o1 = INNAprop(m1.parameters(), lr=0.05, **impl)
    o2 = INNAprop(m2.parameters(), lr=torch.tensor(0.05, dtype=torch.float64), **impl)
    s1, s2 = (torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10) for o in (o1, o2))
    train(m1, o1, range(10), s1)
    train(m2, o2, range(10), s2)
    assert isinstance(o2.param_groups[0]["lr"], torch.Tensor)
    assert torch.equal(flat(m1), flat(m2))


def test_closure_is_called_once_with_grad_enabled_and_its_loss_returned():
    p = torch.randn(3, requires_grad=True)
    opt = INNAprop([p])
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


def test_named_parameters_are_accepted_and_saved():
    model = tiny_model()
    opt = INNAprop(model.named_parameters())
    train(model, opt, range(2))
    assert opt.state_dict()["param_groups"][0]["param_names"] == [n for n, _ in model.named_parameters()]


def test_differentiable_step_passes_gradcheck():
    def one_step(theta, grad, v, phase, lr):
        p = theta.clone()  # non-leaf, so in-place updates are recorded
        p.grad = grad
        opt = INNAprop([p], lr=lr, alpha=0.4, beta=0.7, sigma=0.9, weight_decay=0.3, differentiable=True)
        opt.state[p].update(step=torch.tensor(3.0), exp_avg_sq=v.clone(), phase=phase.clone())
        opt.step()
        return p, opt.state[p]["exp_avg_sq"], opt.state[p]["phase"]

    gen = torch.Generator().manual_seed(0)
    theta, grad, phase = (torch.randn(5, dtype=torch.float64, generator=gen).requires_grad_() for _ in range(3))
    v = (torch.rand(5, dtype=torch.float64, generator=gen) + 0.5).requires_grad_()  # away from sqrt's kink at 0
    lr = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(one_step, (theta, grad, v, phase, lr))


def test_deepcopy_pickle_repr_and_identical_continuation():
    model = tiny_model()
    opt = INNAprop(model.parameters(), lr=0.01, alpha=0.3)
    train(model, opt, range(3))
    clone = copy.deepcopy(opt)
    public = {k for k in opt.__dict__ if not k.startswith("_")}
    assert clone.defaults == opt.defaults and public <= clone.__dict__.keys()
    text = repr(opt)
    assert text.startswith("INNAprop (") and "alpha: 0.3" in text and "sigma: 0.999" in text
    twins = [copy.deepcopy((model, opt)), pickle.loads(pickle.dumps((model, opt)))]
    train(model, opt, range(3, 6))
    for twin_model, twin_opt in twins:
        train(twin_model, twin_opt, range(3, 6))
        assert torch.equal(flat(twin_model), flat(model))


@pytest.mark.parametrize("impl", [dict(), dict(fused=False), dict(foreach=None, fused=None)])
def test_without_the_cpu_kernel_default_and_fused_false_take_the_foreach_path(monkeypatch, impl):
    import inna.torch.innaprop as F

    monkeypatch.setenv("INNA_CPU_KERNEL", "0")  # as on a machine without a C compiler
    calls = []
    monkeypatch.setattr(F, "_multi_tensor_innaprop", lambda *a, **k: calls.append("foreach"))
    monkeypatch.setattr(F, "_single_tensor_innaprop", lambda *a, **k: calls.append("single"))
    p = torch.randn(3, requires_grad=True)
    p.grad = torch.ones(3)
    INNAprop([p], **impl).step()
    INNAprop([p], foreach=False).step()
    INNAprop([p], differentiable=True).step()
    assert calls == ["foreach", "single", "single"]


def test_default_on_cpu_takes_the_c_loop_where_it_builds(monkeypatch):
    import inna.torch.innaprop as F
    from inna.torch import _fused

    calls = []
    monkeypatch.setattr(F, "_multi_tensor_innaprop", lambda *a, **k: calls.append("foreach"))
    monkeypatch.setattr(F, "_fused_innaprop", lambda *a, **k: calls.append("fused"))
    p = torch.randn(3, requires_grad=True)
    p.grad = torch.ones(3)
    for impl in (dict(), dict(fused=False), dict(foreach=True), dict(fused=True)):
        INNAprop([p], **impl).step()
    static = dict(alpha=0.1, beta=0.9, sigma=0.999, eps=1e-8, weight_decay=0.01, maximize=False)
    builds = _fused.c_kernel_available(F._innaprop_core, F._CORE_ARITY, torch.float32, static)
    assert calls == ["fused" if builds else "foreach", "foreach", "foreach", "fused"]


@pytest.mark.parametrize("impl", IMPLS)
def test_bf16_master_copy_follows_the_fp32_run(impl):
    torch.manual_seed(0)
    p32 = torch.randn(64, requires_grad=True)
    plo = p32.detach().bfloat16().requires_grad_()
    ref = plo.detach().float().requires_grad_()
    o_lo = INNAprop([plo], lr=1e-3, state_dtype=torch.float32, **impl)
    o_ref = INNAprop([ref], lr=1e-3, **impl)
    for _ in range(100):
        g = ref.detach() * torch.linspace(0.1, 2.0, 64) - 1.0
        ref.grad, plo.grad = g, g.bfloat16()
        o_ref.step()
        o_lo.step()
    state = o_lo.state[plo]
    assert {state[k].dtype for k in ("phase", "exp_avg_sq", "master")} == {torch.float32}
    assert torch.equal(plo.detach(), state["master"].bfloat16())
    assert (state["master"] - ref.detach()).abs().max() < 0.01
    # a master-less bf16 run loses these 1e-3 steps to rounding; the master copy keeps them
    assert (state["master"] - p32.detach().bfloat16().float()).abs().max() > 0.05


# ---------------------------------------------------------------------------------- stability warning


def test_stability_warning_only_where_the_rule_breaks_once_and_at_the_caller():
    p = torch.randn(3, requires_grad=True)
    p.grad = torch.ones(3)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        INNAprop([p], lr=0.9, beta=0.9).step()  # lr == beta: inside the rule
        INNAprop([p], lr=1e-3, alpha=0.1).step()
    assert not [w for w in seen if issubclass(w.category, INNAStabilityWarning)]
    opt = INNAprop([p], lr=1.0, beta=0.5)
    with pytest.warns(INNAStabilityWarning, match=r"INNAprop: param group 0 has lr=1 .* beta=0.5") as record:
        opt.step()
    assert record[0].filename == __file__
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        opt.step()
    assert not [w for w in seen if issubclass(w.category, INNAStabilityWarning)]


# ------------------------------------------------------------------------------------------ state dicts


def test_state_dict_format_is_documented_and_stable():
    model = tiny_model()
    opt = INNAprop(model.parameters())
    train(model, opt, range(2))
    sd = opt.state_dict()
    assert all(set(s) == {"step", "exp_avg_sq", "phase"} for s in sd["state"].values())
    step = sd["state"][0]["step"]
    assert step.shape == () and step.dtype == torch.float32 and step.device.type == "cpu" and step.item() == 2
    assert set(sd["param_groups"][0]) == {
        "params",
        "lr",
        "alpha",
        "beta",
        "sigma",
        "eps",
        "weight_decay",
        "maximize",
        "foreach",
        "fused",
        "differentiable",
        "state_dtype",
    }


@pytest.mark.parametrize("impl", IMPLS)
def test_resume_in_a_fresh_process_is_bit_exact(tmp_path, impl):
    n = 6
    m = tiny_model()
    opt = INNAprop(m.parameters(), lr=0.01, **impl)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2 * n)
    train(m, opt, range(n), sched)
    torch.save({"model": m.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "ckpt.pt")
    train(m, opt, range(n, 2 * n), sched)
    torch.save(flat(m), tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys, torch
        sys.path.insert(0, {str(__file__.rsplit("/", 1)[0])!r})
        from test_contract import tiny_model, train, flat
        from inna import INNAprop
        ckpt = torch.load({str(tmp_path / "ckpt.pt")!r}, weights_only=True)
        m = tiny_model(seed=123)
        m.load_state_dict(ckpt["model"])
        opt = INNAprop(m.parameters(), lr=0.01, **{impl!r})
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max={2 * n})
        sched.load_state_dict(ckpt["sched"])
        opt.load_state_dict(ckpt["opt"])
        train(m, opt, range({n}, {2 * n}), sched)
        expected = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=True)
        print("EQUAL" if torch.equal(flat(m), expected) else "DIFFERENT")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("EQUAL")


def test_save_load_with_weights_only_round_trips_and_keeps_fp32_state():
    model = tiny_model().bfloat16()
    opt = INNAprop(model.parameters(), lr=torch.tensor(0.01), state_dtype=torch.float32)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    clone = INNAprop(model.parameters(), lr=torch.tensor(0.01), state_dtype=torch.float32)
    clone.load_state_dict(loaded)
    for p in model.parameters():
        for key in ("step", "exp_avg_sq", "phase", "master"):
            assert torch.equal(clone.state[p][key], opt.state[p][key]) and clone.state[p][key].dtype == torch.float32


def test_older_state_dict_without_newer_flags_loads():
    model = tiny_model()
    opt = INNAprop(model.parameters())
    train(model, opt, range(2))
    sd = opt.state_dict()
    for key in ("maximize", "foreach", "fused", "differentiable", "state_dtype"):
        del sd["param_groups"][0][key]
    fresh = INNAprop(model.parameters())
    fresh.load_state_dict(sd)
    assert fresh.param_groups[0]["maximize"] is False and fresh.param_groups[0]["state_dtype"] is None
    train(model, fresh, range(2, 3))


def _stepped(cls, model, **kwargs):
    opt = cls(model.parameters(), **kwargs)
    train(model, opt, range(2))
    return opt


def test_load_state_dict_from_another_optimizer_is_refused_and_changes_nothing():
    model = tiny_model()
    opt = _stepped(INNAprop, model)
    snapshot = copy.deepcopy(opt.state_dict())
    for other in (torch.optim.Adam(model.parameters()), INNA(model.parameters())):
        train(model, other, range(1))
        with pytest.raises(ValueError, match="was not saved by INNAprop"):
            opt.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match=r"lacks \['sigma', 'eps'\]: this state dict was not saved by INNAprop"):
        opt.load_state_dict(INNA(model.parameters()).state_dict())  # never stepped: only its groups tell
    with pytest.raises(ValueError, match=r"has \['eps', 'sigma'\], which INNA does not have"):
        INNA(model.parameters()).load_state_dict(INNAprop(model.parameters()).state_dict())
    now = opt.state_dict()
    assert now["param_groups"] == snapshot["param_groups"]
    assert all(torch.equal(now["state"][k]["phase"], snapshot["state"][k]["phase"]) for k in now["state"])


def test_load_state_dict_from_another_model_is_refused():
    opt = _stepped(INNAprop, tiny_model())
    other = nn.Sequential(nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    o2 = INNAprop(other.parameters())
    for p in other.parameters():
        p.grad = torch.ones_like(p)
    o2.step()
    with pytest.raises(ValueError, match=r"saved exp_avg_sq of parameter #0 of group 0 has shape \(3, 5\)"):
        opt.load_state_dict(o2.state_dict())
    sd = opt.state_dict()
    sd["state"][0]["step"] = torch.zeros(2)
    with pytest.raises(ValueError, match="saved step of parameter #0 of group 0 must be a number or a 1-element"):
        opt.load_state_dict(sd)


@pytest.mark.parametrize("cls", [INNA, INNAprop])
def test_load_state_dict_of_none_or_junk_raises_value_error(cls):
    opt = cls(tiny_model().parameters())
    for junk in (None, [1, 2], {"state": {}}, {"state": None, "param_groups": []}):
        with pytest.raises(ValueError, match=rf"{cls.__name__}.load_state_dict: expected a dict with 'state'"):
            opt.load_state_dict(junk)


@pytest.mark.parametrize("cls", [INNA, INNAprop])
def test_never_stepped_state_dict_replaces_hyperparameters_as_torch_does_after_validating_them(cls):
    """torch.optim's documented behaviour: the saved groups' options replace the optimizer's, state or not."""
    model = tiny_model()
    saved = cls(model.parameters(), lr=0.03, alpha=0.7).state_dict()
    assert saved["state"] == {}
    opt = cls(model.parameters(), lr=0.5)
    opt.load_state_dict(saved)
    assert opt.param_groups[0]["lr"] == 0.03 and opt.param_groups[0]["alpha"] == 0.7
    sgd = torch.optim.SGD(model.parameters(), lr=0.3).state_dict()  # never stepped either
    with pytest.raises(ValueError, match=rf"lacks \['alpha', 'beta'.*not saved by {cls.__name__}"):
        opt.load_state_dict(sgd)
    saved["param_groups"][0]["beta"] = -1.0
    with pytest.raises(ValueError, match=r"group 0: Invalid beta value: -1.0"):
        opt.load_state_dict(saved)
    assert opt.param_groups[0]["lr"] == 0.03 and opt.param_groups[0]["beta"] == cls(model.parameters()).defaults["beta"]


# ------------------------------------------------------------------------------------------- schedulers


@pytest.mark.parametrize("name", list(_schedulers()))
@pytest.mark.parametrize("tensor_lr", [False, True])
def test_every_lr_scheduler_drives_innaprop(name, tensor_lr):
    model = tiny_model()
    lr = torch.tensor(0.01) if tensor_lr else 0.01
    opt = INNAprop(model.parameters(), lr=lr)
    sched = _schedulers()[name](opt)
    lr_obj = opt.param_groups[0]["lr"]
    lrs = []
    for k in range(8):
        train(model, opt, range(k, k + 1), sched)
        lrs.append(float(opt.param_groups[0]["lr"]))
    assert len(set(lrs)) > 1 and all(math.isfinite(v) and v >= 0 for v in lrs)
    assert torch.isfinite(flat(model)).all()
    if tensor_lr:
        assert opt.param_groups[0]["lr"] is lr_obj


def test_reduce_lr_on_plateau_drives_innaprop():
    opt = INNAprop(tiny_model().parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    for _ in range(3):
        sched.step(1.0)
    assert opt.param_groups[0]["lr"] < 0.01


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(lr=-0.1), r"Invalid lr value: -0.1 \(INNAprop requires 0 <= lr < inf\)"),
        (dict(lr=float("nan")), r"Invalid lr value: nan \(INNAprop requires"),
        (dict(lr=float("inf")), r"Invalid lr value: inf"),
        (dict(lr=torch.tensor(-1.0)), r"Invalid lr value: -1.0"),
        (dict(lr=torch.tensor([0.1, 0.2])), r"Tensor lr must be 1-element"),
        (dict(alpha=-1.0), r"Invalid alpha value: -1.0 \(INNAprop requires 0 <= alpha < inf\)"),
        (dict(alpha=float("nan")), r"Invalid alpha value: nan"),
        (dict(beta=0.0), r"Invalid beta value: 0.0 \(INNAprop requires 0 < beta < inf\)"),
        (dict(beta=float("inf")), r"Invalid beta value: inf"),
        (dict(sigma=1.0), r"Invalid sigma value: 1.0 \(INNAprop requires 0 <= sigma < 1\)"),
        (dict(sigma=-0.1), r"Invalid sigma value: -0.1 \(INNAprop requires 0 <= sigma < 1\)"),
        (dict(sigma=float("nan")), r"Invalid sigma value: nan"),
        (dict(eps=-1e-8), r"Invalid eps value: -1e-08 \(INNAprop requires 0 <= eps < inf\)"),
        (dict(eps=float("inf")), r"Invalid eps value: inf"),
        (dict(weight_decay=-0.01), r"Invalid weight_decay value: -0.01 \(INNAprop requires 0 <= weight_decay < inf"),
        (dict(weight_decay=float("nan")), r"Invalid weight_decay value: nan"),
        (dict(state_dtype=torch.float16), r"Invalid state_dtype value: torch.float16 \(INNAprop requires None"),
        (dict(fused=True, foreach=True), r"INNAprop: `fused` and `foreach` cannot both be True"),
        (dict(differentiable=True, foreach=True), r"INNAprop: `differentiable=True` is only supported"),
    ],
)
def test_constructor_rejects_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        INNAprop([torch.randn(2, requires_grad=True)], **kwargs)


def test_non_number_hyperparameters_are_type_errors():
    with pytest.raises(TypeError, match="INNAprop: sigma must be a real number, got str"):
        INNAprop([torch.randn(2, requires_grad=True)], sigma="0.9")
    with pytest.raises(TypeError, match="INNAprop: eps must be a float, not a Tensor"):
        INNAprop([torch.randn(2, requires_grad=True)], eps=torch.tensor(1e-8))


def test_bad_hyperparameter_in_a_group_is_rejected_and_changes_nothing():
    a, b = torch.randn(2, requires_grad=True), torch.randn(2, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid sigma value"):
        INNAprop([{"params": [a]}, {"params": [b], "sigma": 1.5}])
    opt = INNAprop([a])
    with pytest.raises(ValueError, match="Invalid eps value"):
        opt.add_param_group({"params": [b], "eps": -1.0})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("impl", [*IMPLS, dict(fused=True)])
def test_sparse_gradient_error_names_innaprop_and_creates_no_state(impl):
    dense = nn.Linear(3, 3)
    emb = nn.Embedding(10, 3, sparse=True)
    opt = INNAprop([*dense.parameters(), *emb.parameters()], **impl)
    (dense(torch.randn(2, 3)).sum() + emb(torch.tensor([1])).sum()).backward()
    before = emb.weight.detach().clone()
    with pytest.raises(RuntimeError, match="INNAprop does not support sparse gradients"):
        opt.step()
    assert len(opt.state) == 0 and torch.equal(emb.weight.detach(), before)
