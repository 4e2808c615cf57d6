"""The torch.optim contract, schedulers and errors: every ``lr_scheduler`` drives the optimizer (float and Tensor
lr), bad hyperparameters and parameter lists are refused with a message naming them, sparse gradients are refused
before anything changes. Every check runs for every row of the optimizer table (``optim_db.OPTIM_DB``)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from .optim_db import OPTIM_DB
from .torch_training import IMPLS, flat, make, optimizer_class, schedulers, tiny_model, train

pytestmark = pytest.mark.needs_torch


@pytest.mark.parametrize("tensor_lr", [False, True])
@pytest.mark.parametrize("name", list(schedulers()))
@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_every_lr_scheduler_drives_the_optimizer(info, name, tensor_lr):
    model = tiny_model()
    lr = torch.tensor(info.lr) if tensor_lr else info.lr
    opt = make(info, model.parameters(), lr=lr)
    sched = schedulers()[name](opt)
    lr_obj = opt.param_groups[0]["lr"]
    lrs = []
    for k in range(8):
        train(model, opt, range(k, k + 1), sched)
        lrs.append(float(opt.param_groups[0]["lr"]))
    assert len(set(lrs)) > 1 and all(math.isfinite(v) and v >= 0 for v in lrs)
    assert torch.isfinite(flat(model)).all()
    if tensor_lr:
        assert opt.param_groups[0]["lr"] is lr_obj  # updated in place: no recompilation under torch.compile


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_reduce_lr_on_plateau_drives_the_optimizer(info):
    opt = make(info, tiny_model().parameters())
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    for _ in range(3):
        sched.step(1.0)
    assert opt.param_groups[0]["lr"] < info.lr


@pytest.mark.parametrize("scheduler", ["OneCycleLR", "CyclicLR"])
@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_cycle_momentum_must_be_disabled_as_documented(info, scheduler):
    opt = make(info, tiny_model().parameters())
    S = torch.optim.lr_scheduler
    with pytest.raises(ValueError, match="momentum"):
        if scheduler == "OneCycleLR":
            S.OneCycleLR(opt, max_lr=0.1, total_steps=10)
        else:
            S.CyclicLR(opt, base_lr=0.01, max_lr=0.1)


# ------------------------------------------------------------------------------------------------ errors


def _bad_constructor_arguments():
    """Every bad value of every hyperparameter of every row (from its range), and torch's own argument errors."""
    cases = []
    for info in OPTIM_DB:
        for arg, value, message in info.bad_hyperparameters("torch"):
            cases.append(pytest.param(info, {arg: value}, message, id=f"{info}-{arg}={value}"))
        for kwargs, message in (
            (dict(lr=torch.tensor([0.1, 0.2])), r"Tensor lr must be 1-element"),
            (dict(lr=torch.tensor(-1.0)), rf"Invalid lr value: -1.0 \({info.name} requires 0 <= lr < inf\)"),
            (dict(fused=True, foreach=True), rf"{info.name}: `fused` and `foreach` cannot both be True"),
            (dict(differentiable=True, foreach=True), rf"{info.name}: `differentiable=True` is only supported"),
            (dict(state_dtype=torch.float16), rf"Invalid state_dtype value: torch.float16 \({info.name} requires None"),
        ):
            cases.append(pytest.param(info, kwargs, message, id=f"{info}-{'-'.join(kwargs)}-{len(cases)}"))
    return cases


@pytest.mark.parametrize("info, kwargs, message", _bad_constructor_arguments())
def test_constructor_rejects_bad_hyperparameters(info, kwargs, message):
    with pytest.raises(ValueError, match=message):
        optimizer_class(info)([torch.randn(2, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_non_number_hyperparameters_are_type_errors(info):
    cls, params = optimizer_class(info), [torch.randn(2, requires_grad=True)]
    for arg in info.ranges:
        if arg != "lr":
            with pytest.raises(TypeError, match=rf"{info.name}: {arg} must be a real number, got str"):
                cls(params, **{arg: "0.5"})
            with pytest.raises(TypeError, match=rf"{info.name}: {arg} must be a float, not a Tensor"):
                cls(params, **{arg: torch.tensor(0.5)})
    with pytest.raises(TypeError, match=rf"{info.name}: lr must be a real number, got str"):
        cls(params, lr="0.1")


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_bad_hyperparameter_in_a_group_is_rejected_and_changes_nothing(info):
    cls = optimizer_class(info)
    a, b = torch.randn(2, requires_grad=True), torch.randn(2, requires_grad=True)
    opt = cls([a])
    for arg, allowed in info.ranges.items():
        bad = allowed.bad[0]
        with pytest.raises(ValueError, match=f"Invalid {arg} value"):
            cls([{"params": [a]}, {"params": [b], arg: bad}])
        with pytest.raises(ValueError, match=f"Invalid {arg} value"):
            opt.add_param_group({"params": [b], arg: bad})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_empty_and_duplicated_parameter_lists_are_rejected(info):
    cls = optimizer_class(info)
    with pytest.raises(ValueError, match="empty parameter list"):
        cls([])
    p = torch.randn(2, requires_grad=True)
    with pytest.raises(ValueError, match="more than one parameter group"):
        cls([{"params": [p]}, {"params": [p]}])


@pytest.mark.parametrize("impl", [*IMPLS, dict(fused=True)])
@pytest.mark.parametrize("info", OPTIM_DB, ids=str)
def test_sparse_gradient_error_names_the_optimizer_and_creates_no_state(info, impl):
    dense = nn.Linear(3, 3)
    emb = nn.Embedding(10, 3, sparse=True)
    opt = make(info, [*dense.parameters(), *emb.parameters()], **info.options, **impl)
    (dense(torch.randn(2, 3)).sum() + emb(torch.tensor([1])).sum()).backward()
    before = [p.detach().clone() for p in (*dense.parameters(), emb.weight)]
    with pytest.raises(RuntimeError, match=f"{info.name} does not support sparse gradients"):
        opt.step()
    assert len(opt.state) == 0
    assert all(torch.equal(p.detach(), b) for p, b in zip((*dense.parameters(), emb.weight), before))
