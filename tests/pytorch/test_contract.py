"""The torch.optim contract: groups, state dicts, schedulers, Tensor lr, closures, hooks, copies, errors."""

from __future__ import annotations

import copy
import io
import math
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from inna import INNA, PowerDecayLR

IMPLS = [dict(foreach=False), dict(foreach=True)]


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2)).double()


def batch(k: int):
    gen = torch.Generator().manual_seed(k)
    return torch.randn(8, 5, generator=gen, dtype=torch.float64), torch.randn(8, 2, generator=gen, dtype=torch.float64)


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: range, sched=None) -> None:
    for k in steps:
        x, y = batch(k)
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        if sched is not None:
            sched.step()


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


# --------------------------------------------------------------------------------------------- behaviour


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("maximize", [False, True])
def test_forloop_goes_right_direction(impl, maximize):
    """PyTorch's own sanity test: 20 steps on ||Wx + b||^2 lower the loss (raise it with maximize)."""
    weight = torch.randn(10, 5, requires_grad=True)
    bias = torch.randn(10, requires_grad=True)
    x = torch.randn(5)
    opt = INNA([weight, bias], lr=0.05, maximize=maximize, **impl)

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
def test_param_groups_equal_separate_optimizers(impl):
    m1, m2 = tiny_model(), tiny_model()
    a1, b1 = list(m1[0].parameters()), list(m1[2].parameters())
    a2, b2 = list(m2[0].parameters()), list(m2[2].parameters())
    grouped = INNA(
        [{"params": a1}, {"params": b1, "lr": 0.02, "alpha": 1.3, "beta": 0.5, "initial_speed": 1.0}], lr=0.1, **impl
    )
    sep1 = INNA(a2, lr=0.1, **impl)
    sep2 = INNA(b2, lr=0.02, alpha=1.3, beta=0.5, initial_speed=1.0, **impl)
    for k in range(15):
        for model, opts in ((m1, [grouped]), (m2, [sep1, sep2])):
            x, y = batch(k)
            for o in opts:
                o.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            for o in opts:
                o.step()
    assert torch.equal(flat(m1), flat(m2))


def test_group_with_zero_lr_does_not_move():
    model = tiny_model()
    frozen = list(model[2].parameters())
    opt = INNA([{"params": model[0].parameters()}, {"params": frozen, "lr": 0.0}], lr=0.1, initial_speed=1.0)
    before = [p.detach().clone() for p in frozen]
    train(model, opt, range(10))
    assert all(torch.equal(p.detach(), b) for p, b in zip(frozen, before))


def test_params_without_grad_are_skipped_and_initialised_when_they_get_one():
    model = tiny_model()
    late = model[2].weight
    opt = INNA(model.parameters(), lr=0.1)
    late.requires_grad_(False)
    before = late.detach().clone()
    train(model, opt, range(5))
    assert late not in opt.state and torch.equal(late.detach(), before)
    late.requires_grad_(True)
    train(model, opt, range(5, 6))
    assert late in opt.state and not torch.equal(late.detach(), before)


def test_add_param_group_later_is_initialised_lazily():
    model = tiny_model()
    opt = INNA(model[0].parameters(), lr=0.1)
    train(model, opt, range(3))
    opt.add_param_group({"params": model[2].parameters(), "beta": 0.3})
    assert opt.param_groups[1]["beta"] == 0.3 and opt.param_groups[1]["alpha"] == 0.5
    assert all(p not in opt.state for p in model[2].parameters())
    train(model, opt, range(3, 4))
    assert all(p in opt.state for p in model[2].parameters())


def test_step_with_zero_lr_changes_nothing():
    model = tiny_model()
    opt = INNA(model.parameters(), lr=0.1, initial_speed=1.0, weight_decay=0.1)
    train(model, opt, range(5))
    for g in opt.param_groups:
        g["lr"] = 0.0
    params = flat(model).clone()
    phases = [opt.state[p]["phase"].clone() for p in model.parameters()]
    train(model, opt, range(5, 8))
    assert torch.equal(flat(model), params)
    assert all(torch.equal(opt.state[p]["phase"], ph) for p, ph in zip(model.parameters(), phases))


def test_fresh_optimizer_zero_grad_step_is_noop():
    model = tiny_model()
    opt = INNA(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    before = flat(model).clone()
    opt.step()
    assert torch.equal(flat(model), before)


@pytest.mark.parametrize("impl", IMPLS)
def test_maximize_does_not_mutate_grad_and_equals_minimising_the_negation(impl):
    p = torch.randn(6, dtype=torch.float64, requires_grad=True)
    q = p.detach().clone().requires_grad_()
    up = INNA([p], lr=0.05, maximize=True, weight_decay=0.1, initial_speed=1.0, **impl)
    down = INNA([q], lr=0.05, weight_decay=0.1, initial_speed=1.0, **impl)
    for _ in range(10):
        g = torch.sin(p.detach())
        p.grad = g.clone()
        q.grad = -torch.sin(q.detach())
        up.step()
        down.step()
        assert torch.equal(p.grad, g)
    torch.testing.assert_close(p.detach(), q.detach(), rtol=0, atol=1e-14)


@pytest.mark.parametrize("impl", IMPLS)
def test_complex_params_equal_their_real_view(impl):
    z = torch.randn(3, 4, dtype=torch.complex128, requires_grad=True)
    r = torch.view_as_real(z.detach()).clone().requires_grad_()
    oz = INNA([z], lr=0.05, initial_speed=1.0, weight_decay=0.1, **impl)
    orr = INNA([r], lr=0.05, initial_speed=1.0, weight_decay=0.1, **impl)
    for k in range(10):
        gr = torch.randn(3, 4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(k))
        z.grad = torch.view_as_complex(gr.clone())
        r.grad = gr
        oz.step()
        orr.step()
    assert oz.state[z]["phase"].is_complex()
    torch.testing.assert_close(torch.view_as_real(z.detach()), r.detach(), rtol=0, atol=1e-15)


@pytest.mark.parametrize("impl", IMPLS)
def test_tensor_lr_equals_float_lr(impl):
    m1, m2 = tiny_model(), tiny_model()
    o1 = INNA(m1.parameters(), lr=0.05, **impl)
    # a float64 Tensor holds exactly the float's value (a float32 one would round 0.05)
    o2 = INNA(m2.parameters(), lr=torch.tensor(0.05, dtype=torch.float64), **impl)
    s1, s2 = PowerDecayLR(o1), PowerDecayLR(o2)
    train(m1, o1, range(10), s1)
    train(m2, o2, range(10), s2)
    assert isinstance(o2.param_groups[0]["lr"], torch.Tensor)
    assert torch.equal(flat(m1), flat(m2))


def test_closure_is_called_once_with_grad_enabled_and_its_loss_returned():
    p = torch.randn(3, requires_grad=True)
    opt = INNA([p])
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


def test_step_hooks_run_in_order():
    p = torch.randn(3, requires_grad=True)
    opt = INNA([p])
    seen = []
    opt.register_step_pre_hook(lambda o, a, k: seen.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: seen.append("post"))
    p.grad = torch.ones(3)
    opt.step()
    assert seen == ["pre", "post"]


def test_named_parameters_are_accepted_and_saved():
    model = tiny_model()
    opt = INNA(model.named_parameters(), lr=0.1)
    train(model, opt, range(2))
    assert opt.state_dict()["param_groups"][0]["param_names"] == [n for n, _ in model.named_parameters()]


def test_differentiable_step_passes_gradcheck():
    def one_step(theta, grad, phase, lr):
        p = theta.clone()  # non-leaf, so in-place updates are recorded
        p.grad = grad
        opt = INNA([p], lr=lr, alpha=0.4, beta=0.3, differentiable=True)
        opt.state[p]["phase"] = phase.clone()
        opt.step()
        return p, opt.state[p]["phase"]

    args = tuple(torch.randn(5, dtype=torch.float64, requires_grad=True) for _ in range(3))
    lr = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(one_step, (*args, lr))
    # the hypergradient is the paper's: d theta_1 / d lr = -(phase + beta g)
    theta, grad, phase = args
    new_theta, _ = one_step(theta, grad, phase, lr)
    (dlr,) = torch.autograd.grad(new_theta.sum(), lr)
    torch.testing.assert_close(dlr, -(phase + 0.3 * grad).sum())


def test_deepcopy_pickle_and_repr():
    model = tiny_model()
    opt = INNA(model.parameters(), lr=0.1, alpha=0.3, initial_speed=1.0)
    train(model, opt, range(3))
    clone = copy.deepcopy(opt)
    public = {k for k in opt.__dict__ if not k.startswith("_")}
    assert clone.defaults == opt.defaults and public <= clone.__dict__.keys()
    assert [sorted(g) for g in clone.param_groups] == [sorted(g) for g in opt.param_groups]
    restored = pickle.loads(pickle.dumps(opt))
    assert restored.defaults == opt.defaults
    text = repr(opt)
    assert text.startswith("INNA (") and "alpha: 0.3" in text and "initial_speed: 1.0" in text


# ------------------------------------------------------------------------------------------ state dicts


def test_state_dict_format_is_documented_and_stable():
    model = tiny_model()
    opt = INNA(model.parameters(), lr=0.1)
    train(model, opt, range(2))
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert all(set(s) == {"phase"} for s in sd["state"].values())
    assert set(sd["param_groups"][0]) == {
        "params",
        "lr",
        "alpha",
        "beta",
        "initial_speed",
        "weight_decay",
        "decoupled_weight_decay",
        "maximize",
        "foreach",
        "fused",
        "differentiable",
        "state_dtype",
    }


@pytest.mark.parametrize("impl", IMPLS)
def test_resume_in_a_fresh_process_is_bit_exact(tmp_path, impl):
    """2n steps in one go == n steps, save, load into a fresh optimizer in a fresh process, n steps."""
    n = 6
    m = tiny_model()
    opt = INNA(m.parameters(), lr=0.1, initial_speed=1.0, **impl)
    sched = PowerDecayLR(opt)
    train(m, opt, range(n), sched)
    torch.save({"model": m.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "ckpt.pt")
    train(m, opt, range(n, 2 * n), sched)
    torch.save(flat(m), tmp_path / "expected.pt")

    script = textwrap.dedent(
        f"""
        import sys, torch
        sys.path.insert(0, {str(tmp_path.parent)!r})
        sys.path.insert(0, {str(__file__.rsplit("/", 1)[0])!r})
        from test_contract import tiny_model, train, flat
        from inna import INNA, PowerDecayLR
        ckpt = torch.load({str(tmp_path / "ckpt.pt")!r}, weights_only=True)
        m = tiny_model(seed=123)  # different initial weights: everything must come from the checkpoint
        m.load_state_dict(ckpt["model"])
        opt = INNA(m.parameters(), lr=0.1, initial_speed=1.0, **{impl!r})
        sched = PowerDecayLR(opt)
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


def test_save_load_with_weights_only_round_trips():
    model = tiny_model()
    opt = INNA(model.parameters(), lr=torch.tensor(0.05), weight_decay=0.01)
    train(model, opt, range(3))
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    clone = INNA(model.parameters(), lr=torch.tensor(0.05), weight_decay=0.01)
    clone.load_state_dict(loaded)
    for p in model.parameters():
        assert torch.equal(clone.state[p]["phase"], opt.state[p]["phase"])
    m2 = copy.deepcopy(model)
    o2 = INNA(m2.parameters(), lr=torch.tensor(0.05), weight_decay=0.01)
    o2.load_state_dict(loaded)
    train(model, opt, range(3, 6))
    train(m2, o2, range(3, 6))
    assert torch.equal(flat(model), flat(m2))


def test_older_state_dict_without_newer_flags_loads():
    model = tiny_model()
    opt = INNA(model.parameters(), lr=0.1)
    train(model, opt, range(2))
    sd = opt.state_dict()
    for group in sd["param_groups"]:
        for key in list(group):
            if key not in ("params", "lr", "alpha", "beta"):
                del group[key]
    fresh = INNA(model.parameters(), lr=0.1)
    fresh.load_state_dict(sd)
    assert fresh.param_groups[0]["initial_speed"] is None and fresh.param_groups[0]["maximize"] is False
    train(model, fresh, range(2, 3))


def test_load_state_dict_casts_state_to_param_dtype_and_device():
    m = tiny_model()
    opt = INNA(m.parameters())
    train(m, opt, range(2))
    sd = opt.state_dict()
    m32 = tiny_model().float()
    o32 = INNA(m32.parameters())
    o32.load_state_dict(sd)
    assert all(o32.state[p]["phase"].dtype == torch.float32 for p in m32.parameters())


def _assert_unchanged(opt, snapshot):
    assert opt.param_groups[0]["lr"] == snapshot["param_groups"][0]["lr"]
    now = opt.state_dict()
    assert now["param_groups"] == snapshot["param_groups"]
    assert now["state"].keys() == snapshot["state"].keys()
    for k in now["state"]:
        assert torch.equal(now["state"][k]["phase"], snapshot["state"][k]["phase"])


def test_load_state_dict_from_another_optimizer_is_refused_and_changes_nothing():
    model = tiny_model()
    opt = INNA(model.parameters(), lr=0.1)
    train(model, opt, range(2))
    snapshot = copy.deepcopy(opt.state_dict())
    sgd = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    train(model, sgd, range(2))
    with pytest.raises(ValueError, match="was not saved by INNA"):
        opt.load_state_dict(sgd.state_dict())
    _assert_unchanged(opt, snapshot)


def test_load_state_dict_from_another_model_is_refused_and_changes_nothing():
    model = tiny_model()
    opt = INNA(model.parameters(), lr=0.1)
    train(model, opt, range(2))
    snapshot = copy.deepcopy(opt.state_dict())
    other = nn.Sequential(nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 2)).double()  # same sizes, other shapes
    o2 = INNA(other.parameters(), lr=0.5)
    for p in other.parameters():
        p.grad = torch.ones_like(p)
    o2.step()
    with pytest.raises(ValueError, match=r"has shape \(3, 5\) but the parameter has shape \(4, 5\)"):
        opt.load_state_dict(o2.state_dict())
    _assert_unchanged(opt, snapshot)
    bigger = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 4), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="6 parameters in the state dict and 4 in this optimizer"):
        opt.load_state_dict(INNA(bigger.parameters()).state_dict())
    with pytest.raises(ValueError, match="2 parameter groups"):
        opt.load_state_dict(INNA([{"params": [p]} for p in list(bigger.parameters())[:2]]).state_dict())
    _assert_unchanged(opt, snapshot)


def test_load_state_dict_with_invalid_hyperparameters_is_refused():
    model = tiny_model()
    opt = INNA(model.parameters(), lr=0.1)
    sd = opt.state_dict()
    sd["param_groups"][0]["beta"] = 0.0
    with pytest.raises(ValueError, match=r"group 0.*Invalid beta value: 0\.0"):
        opt.load_state_dict(sd)
    assert opt.param_groups[0]["beta"] == 0.1


# ------------------------------------------------------------------------------------------- schedulers


def _schedulers():
    S = torch.optim.lr_scheduler
    return {
        "PowerDecayLR": lambda o: PowerDecayLR(o),
        "LambdaLR": lambda o: S.LambdaLR(o, lambda k: 1 / math.sqrt(k + 1)),
        "MultiplicativeLR": lambda o: S.MultiplicativeLR(o, lambda k: 0.95),
        "StepLR": lambda o: S.StepLR(o, step_size=3, gamma=0.5),
        "MultiStepLR": lambda o: S.MultiStepLR(o, milestones=[2, 5], gamma=0.5),
        "ConstantLR": lambda o: S.ConstantLR(o, factor=0.5, total_iters=4),
        "LinearLR": lambda o: S.LinearLR(o, start_factor=0.2, total_iters=4),
        "ExponentialLR": lambda o: S.ExponentialLR(o, gamma=0.9),
        "PolynomialLR": lambda o: S.PolynomialLR(o, total_iters=8, power=2.0),
        "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, T_max=5),
        "CosineAnnealingWarmRestarts": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3),
        "CyclicLR": lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=2, cycle_momentum=False),
        "OneCycleLR": lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=20, cycle_momentum=False),
        "SequentialLR": lambda o: S.SequentialLR(
            o, [S.LinearLR(o, start_factor=0.5, total_iters=2), S.ExponentialLR(o, gamma=0.9)], milestones=[2]
        ),
        "ChainedScheduler": lambda o: S.ChainedScheduler([PowerDecayLR(o), S.ExponentialLR(o, gamma=0.95)]),
    }


@pytest.mark.parametrize("name", list(_schedulers()))
@pytest.mark.parametrize("tensor_lr", [False, True])
def test_every_lr_scheduler_drives_inna(name, tensor_lr):
    model = tiny_model()
    lr = torch.tensor(0.1) if tensor_lr else 0.1
    opt = INNA(model.parameters(), lr=lr)
    sched = _schedulers()[name](opt)
    lr_obj = opt.param_groups[0]["lr"]
    lrs = []
    for k in range(8):
        train(model, opt, range(k, k + 1), sched)
        lrs.append(float(opt.param_groups[0]["lr"]))
    assert len(set(lrs)) > 1 and all(math.isfinite(v) and v >= 0 for v in lrs)
    if tensor_lr:
        assert opt.param_groups[0]["lr"] is lr_obj  # updated in place: no recompilation under torch.compile


def test_reduce_lr_on_plateau_drives_inna():
    model = tiny_model()
    opt = INNA(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    for _ in range(3):
        sched.step(1.0)
    assert opt.param_groups[0]["lr"] < 0.1


@pytest.mark.parametrize("cls", ["OneCycleLR", "CyclicLR"])
def test_cycle_momentum_must_be_disabled_as_documented(cls):
    opt = INNA(tiny_model().parameters(), lr=0.1)
    S = torch.optim.lr_scheduler
    with pytest.raises(ValueError, match="momentum"):
        if cls == "OneCycleLR":
            S.OneCycleLR(opt, max_lr=0.1, total_steps=10)
        else:
            S.CyclicLR(opt, base_lr=0.01, max_lr=0.1)


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(lr=-0.1), r"Invalid lr value: -0.1 \(INNA requires 0 <= lr < inf\)"),
        (dict(lr=float("nan")), r"Invalid lr value: nan"),
        (dict(lr=float("inf")), r"Invalid lr value: inf"),
        (dict(alpha=-1.0), r"Invalid alpha value: -1.0 \(INNA requires 0 <= alpha < inf\)"),
        (dict(alpha=float("nan")), r"Invalid alpha value: nan"),
        (dict(beta=0.0), r"Invalid beta value: 0.0 \(INNA requires 0 < beta < inf\)"),
        (dict(beta=-0.1), r"Invalid beta value: -0.1"),
        (dict(beta=float("inf")), r"Invalid beta value: inf"),
        (dict(initial_speed=-1.0), r"Invalid initial_speed value: -1.0 \(INNA requires 0 <= initial_speed"),
        (dict(initial_speed=float("nan")), r"Invalid initial_speed value: nan"),
        (dict(weight_decay=-1e-4), r"Invalid weight_decay value: -0.0001 \(INNA requires 0 <= weight_decay"),
        (dict(weight_decay=float("inf")), r"Invalid weight_decay value: inf"),
        (dict(lr=torch.tensor([0.1, 0.2])), r"Tensor lr must be 1-element"),
        (dict(lr=torch.tensor(-1.0)), r"Invalid lr value: -1.0"),
        (dict(fused=True, foreach=True), r"`fused` and `foreach` cannot both be True"),
        (dict(differentiable=True, foreach=True), r"differentiable=True"),
    ],
)
def test_constructor_rejects_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        INNA([torch.randn(2, requires_grad=True)], **kwargs)


def test_bad_hyperparameter_in_a_group_is_rejected_and_changes_nothing():
    a, b = torch.randn(2, requires_grad=True), torch.randn(2, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid beta value"):
        INNA([{"params": [a]}, {"params": [b], "beta": 0.0}])
    opt = INNA([a])
    with pytest.raises(ValueError, match="Invalid alpha value"):
        opt.add_param_group({"params": [b], "alpha": -1})
    assert len(opt.param_groups) == 1


def test_empty_and_duplicated_parameter_lists_are_rejected():
    with pytest.raises(ValueError, match="empty parameter list"):
        INNA([])
    p = torch.randn(2, requires_grad=True)
    with pytest.raises(ValueError, match="more than one parameter group"):
        INNA([{"params": [p]}, {"params": [p]}])


@pytest.mark.parametrize("impl", IMPLS)
def test_sparse_gradient_error_names_inna(impl):
    emb = nn.Embedding(10, 3, sparse=True)
    opt = INNA(emb.parameters(), **impl)
    emb(torch.tensor([1, 2])).sum().backward()
    before = emb.weight.detach().clone()
    with pytest.raises(RuntimeError, match="INNA does not support sparse gradients"):
        opt.step()
    assert torch.equal(emb.weight.detach(), before)


# ------------------------------------------------------------------------------- review regressions


def test_failed_sparse_step_creates_no_state():
    dense = nn.Linear(3, 3)
    emb = nn.Embedding(10, 3, sparse=True)
    opt = INNA([*dense.parameters(), *emb.parameters()], initial_speed=1.0)
    (dense(torch.randn(2, 3)).sum() + emb(torch.tensor([1])).sum()).backward()
    with pytest.raises(RuntimeError, match="INNA does not support sparse gradients"):
        opt.step()
    assert len(opt.state) == 0


def test_state_with_real_phase_for_a_complex_param_is_refused():
    z = torch.randn(4, dtype=torch.complex64, requires_grad=True)
    opt = INNA([z])
    sd = {"state": {0: {"phase": torch.zeros(4)}}, "param_groups": [{**opt.state_dict()["param_groups"][0]}]}
    with pytest.raises(ValueError, match=r"has dtype torch\.float32 but the parameter has dtype torch\.complex64"):
        opt.load_state_dict(sd)
    assert len(opt.state) == 0


@pytest.mark.parametrize("impl", [dict(), dict(fused=False), dict(foreach=None, fused=None)])
def test_without_the_cpu_kernel_default_and_fused_false_take_the_foreach_path(monkeypatch, impl):
    import inna.torch.functional as F

    monkeypatch.setenv("INNA_CPU_KERNEL", "0")  # as on a machine without a C compiler
    calls = []
    monkeypatch.setattr(F, "_multi_tensor_inna", lambda *a, **k: calls.append("foreach"))
    monkeypatch.setattr(F, "_single_tensor_inna", lambda *a, **k: calls.append("single"))
    p = torch.randn(3, requires_grad=True)
    p.grad = torch.ones(3)
    INNA([p], **impl).step()
    INNA([p], foreach=False).step()
    INNA([p], differentiable=True).step()
    assert calls == ["foreach", "single", "single"]


def test_default_on_cpu_takes_the_c_loop_where_it_builds(monkeypatch):
    import inna.torch.functional as F
    from inna.torch import _fused

    calls = []
    monkeypatch.setattr(F, "_multi_tensor_inna", lambda *a, **k: calls.append("foreach"))
    monkeypatch.setattr(F, "_fused_inna", lambda *a, **k: calls.append("fused"))
    p = torch.randn(3, requires_grad=True)
    p.grad = torch.ones(3)
    for impl in (dict(), dict(fused=False), dict(foreach=True), dict(fused=True)):
        INNA([p], **impl).step()
    static = dict(alpha=0.5, beta=0.1, l2=0.0, maximize=False)
    builds = _fused.c_kernel_available(F._single_tensor_inna, (3, 1), torch.float32, static)
    assert calls == ["fused" if builds else "foreach", "foreach", "foreach", "fused"]


def test_deepcopy_and_unpickled_optimizers_continue_identically():
    model = tiny_model()
    opt = INNA(model.parameters(), lr=0.1, initial_speed=1.0)
    train(model, opt, range(3))
    twins = [copy.deepcopy((model, opt)), pickle.loads(pickle.dumps((model, opt)))]  # params shared with their model
    train(model, opt, range(3, 6))
    for twin_model, twin_opt in twins:
        assert all(twin_opt.state[p]["phase"].shape == p.shape for p in twin_model.parameters())
        train(twin_model, twin_opt, range(3, 6))
        assert torch.equal(flat(twin_model), flat(model))


def test_user_load_state_dict_hooks_run_once_each():
    model = tiny_model()
    opt = INNA(model.parameters(), lr=0.1)
    train(model, opt, range(2))
    sd = opt.state_dict()
    seen = []

    def pre(optimizer, state_dict):
        seen.append("pre")
        state_dict = copy.deepcopy(state_dict)
        state_dict["param_groups"][0]["lr"] = 0.03
        return state_dict

    opt.register_load_state_dict_pre_hook(pre)
    opt.register_load_state_dict_post_hook(lambda o: seen.append("post"))
    opt.load_state_dict(sd)
    assert seen == ["pre", "post"] and opt.param_groups[0]["lr"] == 0.03
