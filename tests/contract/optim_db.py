"""The optimizer table every contract check is parametrised over: one row per optimizer of the INNA family.

A row says, framework-free, what the contract tests need to know about an optimizer: its documented defaults in
each framework, the allowed range of each hyperparameter (the bad values and the text of the error), a learning rate
and a set of non-default options to exercise, a param group that changes every hyperparameter, a setting that breaks
the stability rule, the per-parameter state. The checks are written once, in ``test_torch_*.py`` here (PyTorch),
``tests/keras3/keras_backend_checks.py`` (Keras, every backend) and ``tests/jax_optax/test_optax_contract.py``
(optax), and run for every row. Adding an optimizer is adding a row.

Nothing here imports a framework: the torch-free JAX venv and each Keras backend subprocess import this table.
Hyperparameters are named as ``torch.optim`` names them; :meth:`OptimizerInfo.kwargs` renames them for a framework.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ARG_NAMES", "OPTIM_DB", "OptimizerInfo", "Range", "by_name"]

#: How each framework names a hyperparameter that ``torch.optim`` calls otherwise.
ARG_NAMES: dict[str, dict[str, str]] = {
    "torch": {},
    "keras": {"lr": "learning_rate", "eps": "epsilon"},
    "optax": {"lr": "learning_rate"},
}


@dataclass(frozen=True)
class Range:
    """An allowed range: the text every framework's error states (``{name}`` is the framework's argument name)
    and values outside it."""

    allowed: str
    bad: tuple[float, ...]


NONNEGATIVE = Range("0 <= {name} < inf", (-0.1, math.nan, math.inf))
POSITIVE = Range("0 < {name} < inf", (0.0, -0.1, math.inf))
UNIT = Range("0 <= {name} < 1", (1.0, -0.1, math.nan))


@dataclass(frozen=True)
class OptimizerInfo:
    """One optimizer, as the contract checks of every framework see it."""

    name: str  #: the class (torch, Keras) and the message prefix (all frameworks)
    defaults: Mapping[str, Mapping[str, Any]]  #: framework -> the documented defaults, in that framework's names
    ranges: Mapping[str, Range]  #: hyperparameter -> its allowed range
    lr: float  #: a learning rate for the test runs, inside the stability rule
    options: Mapping[str, Any]  #: non-default options every framework has, exercised by the runs
    group: Mapping[str, Any]  #: a param group that changes every hyperparameter (a different lr included)
    unstable: Mapping[str, Any]  #: hyperparameters that break the stability rule (lr > beta)
    state: Mapping[str, tuple[str, ...]]  #: framework -> the per-parameter state, by name
    optax: tuple[str, ...]  #: the public optax transformations of this optimizer (the full one first)
    torch_group_keys: frozenset[str] = field(default_factory=frozenset)  #: the saved param-group keys
    torch_newer_keys: frozenset[str] = field(default_factory=frozenset)  #: group keys older state dicts lack

    def __str__(self) -> str:  # the pytest id of a parametrisation
        return self.name

    def kwargs(self, framework: str, **hyper: Any) -> dict[str, Any]:
        """``hyper`` (torch names) under ``framework``'s argument names."""
        names = ARG_NAMES[framework]
        return {names.get(k, k): v for k, v in hyper.items()}

    def bad_hyperparameters(self, framework: str) -> list[tuple[str, float, str]]:
        """``(argument, bad value, message regex)`` for every hyperparameter and every bad value of its range: the
        error must name the argument, the value and the allowed range."""
        out = []
        for hyper, allowed in self.ranges.items():
            arg = ARG_NAMES[framework].get(hyper, hyper)
            text = re.escape(allowed.allowed.format(name=arg))
            for value in allowed.bad:
                out.append((arg, value, rf"Invalid {arg} value: {value!r} \({self.name} requires {text}"))
        return out


_SHARED_GROUP_KEYS = {"params", "lr", "alpha", "beta", "weight_decay", "maximize", "foreach", "fused"}

INNA = OptimizerInfo(
    name="INNA",
    defaults={
        "torch": dict(lr=0.1, alpha=0.5, beta=0.1, initial_speed=None, weight_decay=0.0, decoupled_weight_decay=False),
        "keras": dict(
            learning_rate=0.1,
            alpha=0.5,
            beta=0.1,
            initial_speed=None,
            weight_decay=None,
            decoupled_weight_decay=True,
            name="inna",
        ),
        "optax": dict(alpha=0.5, beta=0.1, initial_speed=None, weight_decay=0.0, decoupled_weight_decay=False),
    },
    ranges={
        "lr": NONNEGATIVE,
        "alpha": NONNEGATIVE,
        "beta": POSITIVE,
        "initial_speed": NONNEGATIVE,
        "weight_decay": NONNEGATIVE,
    },
    lr=0.05,
    options=dict(initial_speed=1.0, weight_decay=0.01),
    group=dict(lr=0.02, alpha=1.3, beta=0.5, initial_speed=1.0, weight_decay=0.05),
    unstable=dict(lr=0.5, alpha=0.5, beta=0.1),
    state={"torch": ("phase",), "keras": ("phase",), "optax": ("count", "phase")},
    optax=("inna", "scale_by_inna"),
    torch_group_keys=frozenset(
        _SHARED_GROUP_KEYS | {"initial_speed", "decoupled_weight_decay", "differentiable", "state_dtype"}
    ),
    torch_newer_keys=frozenset(
        {
            "initial_speed",
            "weight_decay",
            "decoupled_weight_decay",
            "maximize",
            "foreach",
            "fused",
            "differentiable",
            "state_dtype",
        }
    ),
)

INNAPROP = OptimizerInfo(
    name="INNAprop",
    defaults={
        "torch": dict(lr=1e-3, alpha=0.1, beta=0.9, sigma=0.999, eps=1e-8, weight_decay=0.01),
        "keras": dict(
            learning_rate=1e-3, alpha=0.1, beta=0.9, sigma=0.999, epsilon=1e-8, weight_decay=0.01, name="innaprop"
        ),
        "optax": dict(learning_rate=1e-3, alpha=0.1, beta=0.9, sigma=0.999, eps=1e-8, weight_decay=0.01),
    },
    ranges={
        "lr": NONNEGATIVE,
        "alpha": NONNEGATIVE,
        "beta": POSITIVE,
        "sigma": UNIT,
        "eps": NONNEGATIVE,
        "weight_decay": NONNEGATIVE,
    },
    lr=0.01,
    options=dict(alpha=1.0, beta=1.0, sigma=0.99, weight_decay=0.1),
    group=dict(lr=0.02, alpha=1.0, beta=1.0, sigma=0.99, eps=1e-6, weight_decay=0.1),
    unstable=dict(lr=1.0, alpha=0.1, beta=0.5),
    state={
        "torch": ("step", "exp_avg_sq", "phase"),
        "keras": ("phase", "second_moment"),
        "optax": ("count", "phase", "nu"),
    },
    optax=("innaprop", "scale_by_innaprop"),
    torch_group_keys=frozenset(_SHARED_GROUP_KEYS | {"sigma", "eps", "differentiable", "state_dtype"}),
    torch_newer_keys=frozenset({"maximize", "foreach", "fused", "differentiable", "state_dtype"}),
)

#: Every optimizer of the family: parametrise a contract check over this.
OPTIM_DB: tuple[OptimizerInfo, ...] = (INNA, INNAPROP)


def by_name(name: str) -> OptimizerInfo:
    return next(info for info in OPTIM_DB if info.name == name)
