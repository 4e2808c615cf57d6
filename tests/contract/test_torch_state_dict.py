"""The torch.optim contract, state dicts: the documented format, bit-exact resume in a fresh process, weights-only
loading, older formats, dtype casts, refusals that change nothing, hooks. Every check runs for every row of the
optimizer table (``optim_db.OPTIM_DB``)."""

from __future__ import annotations

import copy
import io
import pathlib
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from .optim_db import OPTIM_DB
from .torch_training import IMPLS, flat, make, optimizer_class, schedulers, tiny_model, train

pytestmark = pytest.mark.needs_torch

TESTS_DIR = pathlib.Path(__file__).resolve().parents[1]


def _stepped(info, model, steps=2, **hyper):
    opt = make(info, model.parameters(), **hyper)
    train(model, opt, range(steps))
    return opt


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_state_dict_format_is_documented_and_stable(info):
    sd = _stepped(info, tiny_model()).state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert all(set(s) == set(info.state["torch"]) for s in sd["state"].values())
    assert set(sd["param_groups"][0]) == info.torch_group_keys
    if "step" in info.state["torch"]:
        step = sd["state"][0]["step"]
        assert step.shape == () and step.dtype == torch.float32 and step.device.type == "cpu" and step.item() == 2


#: The scheduler each optimizer resumes under (the one its docs pair it with).
RESUME_SCHEDULER = {"INNA": "PowerDecayLR", "INNAprop": "CosineAnnealingLR"}


def _scheduler(info, opt, n):
    if RESUME_SCHEDULER[info.name] == "CosineAnnealingLR":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2 * n)
    return schedulers()[RESUME_SCHEDULER[info.name]](opt)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_resume_in_a_fresh_process_is_bit_exact(info, impl, tmp_path):
    """2n steps in one go == n steps, save, load into a fresh optimizer in a fresh process, n steps."""
    n = 6
    m = tiny_model()
    opt = make(info, m.parameters(), **info.options, **impl)
    sched = _scheduler(info, opt, n)
    train(m, opt, range(n), sched)
    torch.save({"model": m.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "ckpt.pt")
    train(m, opt, range(n, 2 * n), sched)
    torch.save(flat(m), tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys, torch
        sys.path.insert(0, {str(TESTS_DIR)!r})
        from contract.optim_db import by_name
        from contract.test_torch_state_dict import _scheduler
        from contract.torch_training import flat, make, tiny_model, train
        info = by_name({info.name!r})
        ckpt = torch.load({str(tmp_path / "ckpt.pt")!r}, weights_only=True)
        m = tiny_model(seed=123)  # different initial weights: everything must come from the checkpoint
        m.load_state_dict(ckpt["model"])
        opt = make(info, m.parameters(), **info.options, **{impl!r})
        sched = _scheduler(info, opt, {n})
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


def _round_trip(state_dict):
    buf = io.BytesIO()
    torch.save(state_dict, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_save_load_with_weights_only_round_trips(info):
    model = tiny_model()
    hyper = dict(lr=torch.tensor(0.05), **info.options)
    opt = _stepped(info, model, steps=3, **hyper)
    loaded = _round_trip(opt.state_dict())
    clone = make(info, model.parameters(), **hyper)
    clone.load_state_dict(loaded)
    for p in model.parameters():
        assert all(torch.equal(clone.state[p][k], opt.state[p][k]) for k in info.state["torch"])
    m2 = copy.deepcopy(model)
    o2 = make(info, m2.parameters(), **hyper)
    o2.load_state_dict(loaded)
    train(model, opt, range(3, 6))
    train(m2, o2, range(3, 6))
    assert torch.equal(flat(model), flat(m2))


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_save_load_with_weights_only_keeps_the_fp32_state_of_bf16_params(info):
    model = tiny_model().bfloat16()
    opt = make(info, model.parameters(), lr=torch.tensor(0.01), state_dtype=torch.float32)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    clone = make(info, model.parameters(), lr=torch.tensor(0.01), state_dtype=torch.float32)
    clone.load_state_dict(_round_trip(opt.state_dict()))
    for p in model.parameters():
        assert set(clone.state[p]) == {*info.state["torch"], "master"}
        for key in clone.state[p]:
            assert torch.equal(clone.state[p][key], opt.state[p][key]) and clone.state[p][key].dtype == torch.float32


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_older_state_dict_without_newer_flags_loads(info):
    model = tiny_model()
    sd = _stepped(info, model).state_dict()
    for key in info.torch_newer_keys:
        del sd["param_groups"][0][key]
    fresh = make(info, model.parameters())
    fresh.load_state_dict(sd)
    group = fresh.param_groups[0]
    assert group["maximize"] is False and group["state_dtype"] is None
    assert all(group[k] == v for k, v in info.defaults["torch"].items() if k in info.torch_newer_keys)
    train(model, fresh, range(2, 3))


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_load_state_dict_casts_state_to_param_dtype(info):
    sd = _stepped(info, tiny_model()).state_dict()
    m32 = tiny_model().float()
    o32 = make(info, m32.parameters())
    o32.load_state_dict(sd)
    for p in m32.parameters():
        assert all(o32.state[p][k].dtype == torch.float32 for k in info.state["torch"])


def _assert_unchanged(opt, snapshot):
    now = opt.state_dict()
    assert now["param_groups"] == snapshot["param_groups"]
    assert now["state"].keys() == snapshot["state"].keys()
    for k in now["state"]:
        assert all(torch.equal(now["state"][k][key], snapshot["state"][k][key]) for key in snapshot["state"][k])


#: The message when a never-stepped state dict of one family member is loaded into the other: only the groups tell.
CROSS_MESSAGES = {
    ("INNA", "INNAprop"): r"has \['eps', 'sigma'\], which INNA does not have",
    ("INNAprop", "INNA"): r"lacks \['sigma', 'eps'\]: this state dict was not saved by INNAprop",
}


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_load_state_dict_from_another_optimizer_is_refused_and_changes_nothing(info):
    model = tiny_model()
    opt = _stepped(info, model)
    snapshot = copy.deepcopy(opt.state_dict())
    family = [optimizer_class(other) for other in OPTIM_DB if other is not info]
    for other in (torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9), torch.optim.Adam(model.parameters()),
                  *(cls(model.parameters()) for cls in family)):  # fmt: skip
        train(model, other, range(2))
        with pytest.raises(ValueError, match=f"was not saved by {info.name}"):
            opt.load_state_dict(other.state_dict())
    for other in OPTIM_DB:
        if other is not info:
            with pytest.raises(ValueError, match=CROSS_MESSAGES[(info.name, other.name)]):
                opt.load_state_dict(optimizer_class(other)(model.parameters()).state_dict())
    _assert_unchanged(opt, snapshot)


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_load_state_dict_from_another_model_is_refused_and_changes_nothing(info):
    opt = _stepped(info, tiny_model())
    snapshot = copy.deepcopy(opt.state_dict())
    other = nn.Sequential(nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 2)).double()  # same sizes, other shapes
    o2 = make(info, other.parameters(), lr=0.5 * info.lr)
    for p in other.parameters():
        p.grad = torch.ones_like(p)
    o2.step()
    with pytest.raises(ValueError, match=r"saved \w+ of parameter #0 of group 0 has shape \(3, 5\) but the parameter "
                                         r"has shape \(4, 5\): the state dict comes from another model"):  # fmt: skip
        opt.load_state_dict(o2.state_dict())
    _assert_unchanged(opt, snapshot)
    bigger = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 4), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="6 parameters in the state dict and 4 in this optimizer"):
        opt.load_state_dict(make(info, bigger.parameters()).state_dict())
    with pytest.raises(ValueError, match="2 parameter groups"):
        opt.load_state_dict(make(info, [{"params": [p]} for p in list(bigger.parameters())[:2]]).state_dict())
    if "step" in info.state["torch"]:
        sd = copy.deepcopy(opt.state_dict())  # its per-parameter dicts are the optimizer's own
        sd["state"][0]["step"] = torch.zeros(2)
        with pytest.raises(ValueError, match="saved step of parameter #0 of group 0 must be a number or a 1-element"):
            opt.load_state_dict(sd)
    _assert_unchanged(opt, snapshot)


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_load_state_dict_with_invalid_hyperparameters_is_refused(info):
    opt = make(info, tiny_model().parameters())
    sd = opt.state_dict()
    sd["param_groups"][0]["beta"] = 0.0
    with pytest.raises(ValueError, match=r"group 0.*Invalid beta value: 0\.0"):
        opt.load_state_dict(sd)
    assert opt.param_groups[0]["beta"] == info.defaults["torch"]["beta"]


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_load_state_dict_of_none_or_junk_raises_value_error(info):
    opt = make(info, tiny_model().parameters())
    for junk in (None, [1, 2], {"state": {}}, {"state": None, "param_groups": []}):
        with pytest.raises(ValueError, match=rf"{info.name}.load_state_dict: expected a dict with 'state'"):
            opt.load_state_dict(junk)


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_never_stepped_state_dict_replaces_hyperparameters_as_torch_does_after_validating_them(info):
    """torch.optim's documented behaviour: the saved groups' options replace the optimizer's, state or not."""
    model = tiny_model()
    cls = optimizer_class(info)
    saved = cls(model.parameters(), lr=0.03, alpha=0.7).state_dict()
    assert saved["state"] == {}
    opt = cls(model.parameters(), lr=0.5)
    opt.load_state_dict(saved)
    assert opt.param_groups[0]["lr"] == 0.03 and opt.param_groups[0]["alpha"] == 0.7
    sgd = torch.optim.SGD(model.parameters(), lr=0.3).state_dict()  # never stepped either
    with pytest.raises(ValueError, match=rf"lacks \['alpha', 'beta'.*not saved by {info.name}"):
        opt.load_state_dict(sgd)
    saved["param_groups"][0]["beta"] = -1.0
    with pytest.raises(ValueError, match=r"group 0: Invalid beta value: -1.0"):
        opt.load_state_dict(saved)
    assert opt.param_groups[0]["lr"] == 0.03 and opt.param_groups[0]["beta"] == info.defaults["torch"]["beta"]


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_state_with_real_state_for_a_complex_param_is_refused(info):
    z = torch.randn(4, dtype=torch.complex64, requires_grad=True)
    opt = make(info, [z])
    state = {k: torch.tensor(1.0) if k == "step" else torch.zeros(4) for k in info.state["torch"]}
    sd = {"state": {0: state}, "param_groups": [{**opt.state_dict()["param_groups"][0]}]}
    with pytest.raises(ValueError, match=r"has dtype torch\.float32 but the parameter has dtype torch\.complex64"):
        opt.load_state_dict(sd)
    assert len(opt.state) == 0


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_user_load_state_dict_hooks_run_once_each(info):
    opt = _stepped(info, tiny_model())
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
