"""The optimizers the benchmark compares, each with its step-size schedule and its γ₀ grid.

A spec is named on the command line by a registry key (``inna``, ``sgd``, ``adam``, ...) optionally followed by
``:key=value`` overrides, e.g. ``inna:alpha=0.3:beta=0.2:power=0.25`` or ``adam:grid=1e-4,1e-3,1e-2``.

Schedules (per iteration, as in the paper): INNA and SGD use γ_k = γ₀/(k+1)^q with q = 1/2 (``power``);
Adagrad, Adam and AdamW keep γ₀ constant (their step is adaptive; the paper added no decay); SGD with momentum
0.9 is decayed like SGD so it is the direct heavy-ball counterpart of INNA.

Any spec can instead take a **warmup + cosine** schedule over the run's whole length (``schedule=warmup-cosine``,
``warmup=`` fraction of the steps, ``final_lr=`` fraction of γ₀ reached at the last step), as the INNAprop paper
trains its language models; the language-model suite applies it identically to every optimizer
(:class:`WarmupCosine`). It needs the run's total number of steps, which :func:`build_optimizer` takes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from inna.torch import INNA, INNAprop, PowerDecayLR

__all__ = [
    "DEFAULT_GRIDS",
    "DEFAULT_LRS",
    "INNA_FAMILIES",
    "OPTIMIZERS",
    "SCHEDULES",
    "OptimizerSpec",
    "WarmupCosine",
    "build_optimizer",
    "inna_spec",
    "log_grid",
    "parse_optimizer",
]


def log_grid(low: float, high: float, per_decade: int = 2) -> tuple[float, ...]:
    """γ₀ values from ``low`` to ``high`` (inclusive), ``per_decade`` points per factor 10, rounded to 3 digits."""
    if not (0 < low <= high) or per_decade < 1:
        raise ValueError(f"Invalid grid: low={low}, high={high}, per_decade={per_decade} (need 0 < low <= high)")
    n = round(math.log10(high / low) * per_decade)
    return tuple(float(f"{low * 10 ** (i / per_decade):.3g}") for i in range(n + 1))


#: The γ₀ grid of each optimizer family (1-3-10 steps over two decades), centred on each family's usual range
#: (INNA and SGD are decayed as 1/√(k+1), so their γ₀ sits higher than a constant step would).
DEFAULT_GRIDS: dict[str, tuple[float, ...]] = {
    "inna": (0.03, 0.1, 0.3, 1.0, 3.0),
    "sgd": (0.03, 0.1, 0.3, 1.0, 3.0),
    "sgd-momentum": (0.01, 0.03, 0.1, 0.3, 1.0),
    "adagrad": (0.003, 0.01, 0.03, 0.1, 0.3),
    "adam": (0.0003, 0.001, 0.003, 0.01, 0.03),
    "adamw": (0.0003, 0.001, 0.003, 0.01, 0.03),
    # INNAprop takes the lr one would give AdamW (its authors' advice), so it is tuned on AdamW's grid
    "innaprop": (0.0003, 0.001, 0.003, 0.01, 0.03),
    "rmsprop": (0.0003, 0.001, 0.003, 0.01, 0.03),
    # momentum 0.9 multiplies the steady step by 10: one log step lower
    "rmsprop-momentum": (0.0001, 0.0003, 0.001, 0.003, 0.01),
}

#: The lr each family's library class takes when none is given (``inna.INNA``, ``inna.INNAprop``, ``torch.optim``'s
#: SGD, Adagrad, Adam, AdamW, RMSprop): the γ₀ of the untuned "default lr" runs, what a user who does not tune gets.
DEFAULT_LRS: dict[str, float] = {
    "inna": 0.1,
    "innaprop": 1e-3,
    "sgd": 1e-3,
    "sgd-momentum": 1e-3,
    "adagrad": 1e-2,
    "adam": 1e-3,
    "adamw": 1e-3,
    "rmsprop": 1e-2,
    "rmsprop-momentum": 1e-2,
}


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer configuration of the comparison.

    Attributes:
        name: the label used in tables and figures (``"INNA(0.5,0.1)"``).
        family: ``inna``, ``innaprop``, ``sgd``, ``sgd-momentum``, ``adagrad``, ``adam`` or ``adamw``.
        options: keyword arguments of the torch optimizer (α, β, initial_speed, momentum, eps, ...).
        power: the decay exponent q of γ_k = γ₀/(k+1)^q per iteration (0: constant).
        grid: the γ₀ values tried by the selection.
        schedule: empty (the family's own: ``power``), or a step-size schedule over the whole run, e.g.
            ``{"name": "warmup-cosine", "warmup": 0.05, "final_lr": 0.1}`` (see :class:`WarmupCosine`).
        note: what the configuration is, for help texts and reports (``"the paper's default"``); not part of
            the run's identity.
    """

    name: str
    family: str
    options: dict[str, Any] = field(default_factory=dict)
    power: float = 0.0
    grid: tuple[float, ...] = ()
    note: str = ""
    schedule: dict[str, Any] = field(default_factory=dict)

    def key(self) -> dict[str, Any]:
        """What identifies the configuration (without the grid): used in run identifiers. (``schedule`` only
        when there is one, so the run ids of specs without it are what they were before it existed.)"""
        key = {"family": self.family, "options": dict(sorted(self.options.items())), "power": self.power}
        if self.schedule:
            key["schedule"] = dict(sorted(self.schedule.items()))
        return key

    def with_overrides(self, **kw: Any) -> OptimizerSpec:
        return replace(self, **kw)


def _label(base: OptimizerSpec, options: dict[str, Any], power: float) -> str:
    """The display label of ``base`` with ``options`` and ``power`` (the one place labels are made).

    INNA: ``INNA(α,β[,ψ₀ lib | ,s=…][,q=…])`` (s = 1 and q = 1/2 are the paper's, left out); other families: the
    registry label, followed by the options that differ from the registry's, e.g. ``Adam(eps=1e-08)``.
    """
    if base.family == "inna":
        s = options.get("initial_speed")
        suffix = "" if s == 1.0 else ",ψ₀ lib" if s is None else f",s={s:g}"
        suffix += "" if power == 0.5 else f",q={power:g}"
        extra = [f"{k}={v:g}" for k, v in options.items() if k not in ("alpha", "beta", "initial_speed") and v]
        return f"INNA({options['alpha']:g},{options['beta']:g}{suffix}" + "".join(f",{e}" for e in extra) + ")"
    if base.family == "innaprop" and (options.get("alpha"), options.get("beta")) != (
        base.options.get("alpha"),
        base.options.get("beta"),
    ):
        base = replace(
            base,
            name=f"INNAprop({options['alpha']:g},{options['beta']:g})",
            options={**base.options, "alpha": options["alpha"], "beta": options["beta"]},
        )
    extra = [f"{k}={v:g}" for k, v in options.items() if base.options.get(k) != v]
    if power != base.power:
        extra.append(f"q={power:g}")
    return f"{base.name}({','.join(extra)})" if extra else base.name


_INNA_BASE = OptimizerSpec("INNA", "inna", {}, 0.5, DEFAULT_GRIDS["inna"])


def inna_spec(
    alpha: float,
    beta: float,
    *,
    initial_speed: float | None = 1.0,
    power: float = 0.5,
    grid: tuple[float, ...] | None = None,
    note: str = "",
) -> OptimizerSpec:
    """An INNA configuration (γ_k = γ₀/(k+1)^power; the paper's s = 1 first step by default), validated."""
    options = {"alpha": alpha, "beta": beta, "initial_speed": initial_speed}
    spec = OptimizerSpec(
        _label(_INNA_BASE, options, power), "inna", options, power, tuple(grid) if grid else DEFAULT_GRIDS["inna"], note
    )
    _validate(spec, spec.name)
    return spec


def _inna(
    alpha: float, beta: float, initial_speed: float | None = 1.0, power: float = 0.5, note: str = ""
) -> OptimizerSpec:
    options = {"alpha": alpha, "beta": beta, "initial_speed": initial_speed}
    return OptimizerSpec(_label(_INNA_BASE, options, power), "inna", options, power, DEFAULT_GRIDS["inna"], note)


def _innaprop(alpha: float, beta: float, note: str) -> OptimizerSpec:
    return OptimizerSpec(
        f"INNAprop({alpha:g},{beta:g})",
        "innaprop",
        {"alpha": alpha, "beta": beta, "weight_decay": 0.01},
        0.0,
        DEFAULT_GRIDS["innaprop"],
        note,
    )


#: The registry: the paper's three INNA settings (with the paper's initial velocity s = 1, i.e. a first SGD step),
#: the library-default ψ₀ variant, the setting docs/results/guidance.md recommends for short budgets
#: (α = 0.5, β = 0.5, q = 1/4), INNAprop with its authors' three (α, β) presets, the paper's baselines, two modern
#: references, and RMSprop with and without momentum (INNAprop's step is RMSprop's plus an inertial term:
#: docs/results/innaprop-rmsprop.md).
OPTIMIZERS: dict[str, OptimizerSpec] = {
    "inna": _inna(0.5, 0.1, note="INNA, the paper's default (α = 0.5, β = 0.1, initial_speed = 1)"),
    "inna-0.1-0.1": _inna(0.1, 0.1, note="INNA, the paper's α = 0.1, β = 0.1"),
    "inna-0.5-0.5": _inna(0.5, 0.5, note="INNA, the paper's α = 0.5, β = 0.5"),
    "inna-libinit": _inna(0.5, 0.1, None, note="INNA(0.5, 0.1) with the library's ψ₀ = (1 − αβ)θ₀"),
    "inna-guidance": _inna(
        0.5, 0.5, power=0.25, note="INNA, the setting docs/results/guidance.md recommends (α = 0.5, β = 0.5, q = 1/4)"
    ),
    "innaprop": _innaprop(0.1, 0.9, "INNAprop, its authors' default (α = 0.1, β = 0.9, weight decay 0.01)"),
    "innaprop-1-1": _innaprop(1.0, 1.0, "INNAprop, its authors' α = β = 1 preset"),
    "innaprop-2-2": _innaprop(2.0, 2.0, "INNAprop, its authors' α = β = 2 preset"),
    "sgd": OptimizerSpec("SGD", "sgd", {}, 0.5, DEFAULT_GRIDS["sgd"], "SGD, γ₀/√(k+1) like INNA (the paper's)"),
    "adagrad": OptimizerSpec(
        "Adagrad", "adagrad", {"eps": 1e-7}, 0.0, DEFAULT_GRIDS["adagrad"], "Adagrad, constant γ₀, ε = 1e-7 (Keras')"
    ),
    "adam": OptimizerSpec(
        "Adam", "adam", {"eps": 1e-7}, 0.0, DEFAULT_GRIDS["adam"], "Adam, constant γ₀, ε = 1e-7 (Keras')"
    ),
    "sgd-momentum": OptimizerSpec(
        "SGD-m0.9",
        "sgd-momentum",
        {"momentum": 0.9},
        0.5,
        DEFAULT_GRIDS["sgd-momentum"],
        "heavy ball, momentum 0.9, γ₀/√(k+1)",
    ),
    "adamw": OptimizerSpec(
        "AdamW", "adamw", {"weight_decay": 0.01}, 0.0, DEFAULT_GRIDS["adamw"], "AdamW, constant γ₀, weight decay 0.01"
    ),
    "rmsprop": OptimizerSpec(
        "RMSprop",
        "rmsprop",
        {},
        0.0,
        DEFAULT_GRIDS["rmsprop"],
        "RMSprop (torch's: ρ = 0.99, ε = 1e-8, no bias correction), constant γ₀",
    ),
    "rmsprop-momentum": OptimizerSpec(
        "RMSprop-m0.9",
        "rmsprop-momentum",
        {"momentum": 0.9},
        0.0,
        DEFAULT_GRIDS["rmsprop-momentum"],
        "RMSprop with momentum 0.9 (torch's), constant γ₀",
    ),
}

#: The families compared as "INNA-family" against the best baseline in the reports.
INNA_FAMILIES = frozenset({"inna", "innaprop"})

_FAMILY_OPTIONS = {
    "inna": {"alpha", "beta", "initial_speed", "weight_decay", "decoupled_weight_decay"},
    "innaprop": {"alpha", "beta", "sigma", "eps", "weight_decay"},
    "sgd": {"weight_decay", "nesterov"},
    "sgd-momentum": {"momentum", "weight_decay", "nesterov"},
    "adagrad": {"eps", "weight_decay", "lr_decay"},
    "adam": {"eps", "weight_decay", "beta1", "beta2"},
    "adamw": {"eps", "weight_decay", "beta1", "beta2"},
    "rmsprop": {"rho", "eps", "weight_decay", "momentum"},
    "rmsprop-momentum": {"rho", "eps", "weight_decay", "momentum"},
}


def _number(key: str, text: str) -> float | bool | None:
    if key == "decoupled_weight_decay":  # a switch: INNA's decay as AdamW's θ ← (1 − γλ)θ instead of an L2 term
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"Invalid value for {key!r}: {text!r} (expected true or false)")
        return text.lower() in ("true", "1")
    if key == "initial_speed" and text.lower() in ("none", "lib", "default"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"Invalid value for {key!r}: {text!r} (expected a number)") from None
    if not math.isfinite(value):
        raise ValueError(f"Invalid value for {key!r}: {text!r} (must be finite)")
    return value


def _power(value: str, text: str) -> float:
    p = _number("power", value)
    if p is None or p < 0:
        raise ValueError(f"Invalid power {value!r} in {text!r} (must be >= 0)")
    return float(p)


def _grid(value: str, text: str) -> tuple[float, ...]:
    values = [_number("grid", v) for v in value.split(",") if v]
    if not values or any(v is None or v <= 0 for v in values):
        raise ValueError(f"Invalid grid {value!r} in {text!r} (positive numbers, comma-separated)")
    return tuple(float(v) for v in values if v is not None)


def _schedule(value: str, text: str, schedule: dict[str, Any]) -> dict[str, Any]:
    if value not in SCHEDULES:
        raise ValueError(f"Unknown schedule {value!r} in {text!r}; allowed values: {', '.join(SCHEDULES)}")
    return {**SCHEDULES[value], **{k: v for k, v in schedule.items() if k != "name"}, "name": value}


def _apply(fields: dict[str, Any], family: str, key: str, value: str, text: str) -> None:
    """Apply one ``key=value`` of the spec ``text`` to ``fields`` (options, power, grid, label, schedule)."""
    if key == "power":
        fields["power"] = _power(value, text)
    elif key == "grid":
        fields["grid"] = _grid(value, text)
    elif key == "label":
        fields["label"] = value
    elif key == "schedule":
        fields["schedule"] = _schedule(value, text, fields["schedule"])
    elif key in _SCHEDULE_OPTIONS:
        fields["schedule"][key] = _number(key, value)
    elif key in _FAMILY_OPTIONS[family]:
        fields["options"][key] = _number(key, value)
    else:
        allowed = sorted(_FAMILY_OPTIONS[family] | {"power", "grid", "label", "schedule"} | _SCHEDULE_OPTIONS)
        raise ValueError(f"Unknown option {key!r} for {text.split(':')[0]!r}; allowed: {', '.join(allowed)}")


def parse_optimizer(text: str) -> OptimizerSpec:
    """Parse ``NAME[:key=value]...`` into a spec.

    ``NAME`` is a key of :data:`OPTIMIZERS`. Keys: ``power`` (decay exponent q, 0 = constant), ``grid`` (γ₀ values,
    comma-separated), ``label`` (the display name), and the optimizer's own options: ``alpha``, ``beta``,
    ``initial_speed`` (a number or ``none``) for INNA; ``momentum``, ``eps``, ``weight_decay``, ``beta1``,
    ``beta2``, ``nesterov``, ``lr_decay``, ``rho`` (RMSprop's average), ``centered`` where they apply.
    """
    name, *pairs = text.strip().split(":")
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; allowed values: {', '.join(OPTIMIZERS)} (with :key=value)")
    spec = OPTIMIZERS[name]
    fields: dict[str, Any] = {"options": dict(spec.options), "power": spec.power, "grid": spec.grid, "label": None,
                              "schedule": dict(spec.schedule)}  # fmt: skip
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"Invalid optimizer option {pair!r} in {text!r} (expected key=value)")
        _apply(fields, spec.family, key, value, text)
    options, power, schedule, label = fields["options"], fields["power"], fields["schedule"], fields["label"]
    if label is None:
        label = spec.name if (options, power) == (spec.options, spec.power) else _label(spec, options, power)
        if schedule != spec.schedule and schedule:
            label += f"+{schedule.get('name', 'schedule')}"
    if schedule and "name" not in schedule:
        raise ValueError(f"Invalid optimizer {text!r}: {', '.join(sorted(schedule))} given without schedule=NAME "
                         f"(allowed: {', '.join(SCHEDULES)})")  # fmt: skip
    same = label == spec.name and (options, power, schedule) == (spec.options, spec.power, spec.schedule)
    parsed = OptimizerSpec(label, spec.family, options, power, fields["grid"], note=spec.note if same else "",
                           schedule=schedule)  # fmt: skip
    _validate(parsed, text)
    return parsed


def _validate(spec: OptimizerSpec, text: str) -> None:
    """Build the optimizer once on a dummy parameter, so a bad value (``inna:beta=0``, ``adam:eps=-1``) is an
    error naming the spec now, before any data is loaded or anything is written."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # INNA's stability warning for grid values beyond the rule
        try:
            build_optimizer(spec, [torch.nn.Parameter(torch.zeros(1))], min(spec.grid, default=0.1), total_steps=100)
        except (ValueError, TypeError) as err:
            raise ValueError(f"Invalid optimizer {text!r}: {err}") from None


def build_optimizer(
    spec: OptimizerSpec, params: Iterable[torch.nn.Parameter], lr: float, *, total_steps: int | None = None
) -> tuple[Optimizer, LRScheduler | None]:
    """The torch optimizer for ``spec`` with γ₀ = ``lr``, and its per-iteration scheduler (``None`` if constant).

    Call ``scheduler.step()`` once per iteration (mini-batch). ``total_steps`` (the run's number of iterations)
    is required by a spec with a ``schedule`` and ignored otherwise.
    """
    o = dict(spec.options)
    params = list(params)
    opt: Optimizer
    if spec.family == "inna":
        opt = INNA(params, lr=lr, **o)
    elif spec.family == "innaprop":
        opt = INNAprop(params, lr=lr, **o)
    elif spec.family in ("sgd", "sgd-momentum"):
        opt = torch.optim.SGD(params, lr=lr, **o)
    elif spec.family == "adagrad":
        opt = torch.optim.Adagrad(params, lr=lr, **o)
    elif spec.family in ("adam", "adamw"):
        betas = (o.pop("beta1", 0.9), o.pop("beta2", 0.999))
        cls = torch.optim.Adam if spec.family == "adam" else torch.optim.AdamW
        opt = cls(params, lr=lr, betas=betas, **o)
    elif spec.family in ("rmsprop", "rmsprop-momentum"):
        opt = torch.optim.RMSprop(params, lr=lr, alpha=o.pop("rho", 0.99), **o)  # torch calls ρ "alpha"
    else:
        raise ValueError(f"Unknown optimizer family {spec.family!r}; allowed values: {', '.join(_FAMILY_OPTIONS)}")
    if spec.schedule:
        return opt, _scheduled(opt, spec, total_steps)
    scheduler = PowerDecayLR(opt, power=spec.power) if spec.power > 0 else None
    return opt, scheduler


# ------------------------------------------------------------------ warmup + cosine (the LM suite's schedule)


class WarmupCosine:
    r"""The multiplier of γ₀ at iteration k (0-based) of a run of T iterations: a linear warmup over
    :math:`W = \max(1, \mathrm{round}(\text{warmup}\cdot T))` iterations, then a cosine from 1 to ``final_lr``:

    .. math:: m_k = \frac{k+1}{W}\ (k < W), \qquad
              m_k = f + (1 - f)\,\tfrac12\left(1 + \cos\frac{\pi (k - W)}{\max(1, T - 1 - W)}\right)\ (k \ge W).

    So the first step uses γ₀/W, the step after the warmup γ₀, the last one f·γ₀. A plain object (not a lambda),
    so a scheduler using it pickles and its state dict restores.
    """

    def __init__(self, total_steps: int, warmup: float = 0.05, final_lr: float = 0.1) -> None:
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"Invalid total_steps value: {total_steps} (the warmup-cosine schedule needs the run's "
                             "number of iterations, an integer >= 1)")  # fmt: skip
        if not (0 <= warmup < 1):
            raise ValueError(f"Invalid warmup value: {warmup} (a fraction of the run's steps, in [0, 1))")
        if not (0 <= final_lr <= 1):
            raise ValueError(f"Invalid final_lr value: {final_lr} (a fraction of γ₀, in [0, 1])")
        self.total_steps = total_steps
        self.warmup_steps = max(1, round(warmup * total_steps))
        self.final_lr = float(final_lr)

    def __call__(self, k: int) -> float:
        w = self.warmup_steps
        if k < w:
            return (k + 1) / w
        progress = min(1.0, (k - w) / max(1, self.total_steps - 1 - w))
        return self.final_lr + (1.0 - self.final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


#: schedule name → its default options (``warmup``: fraction of the steps; ``final_lr``: fraction of γ₀ at the end).
SCHEDULES: dict[str, dict[str, Any]] = {"warmup-cosine": {"name": "warmup-cosine", "warmup": 0.05, "final_lr": 0.1}}
_SCHEDULE_OPTIONS = {"warmup", "final_lr"}


def _scheduled(opt: Optimizer, spec: OptimizerSpec, total_steps: int | None) -> LRScheduler:
    if spec.power > 0:
        raise ValueError(f"{spec.name}: a schedule ({spec.schedule.get('name')}) replaces the power decay; give "
                         "power=0 with it")  # fmt: skip
    if total_steps is None:
        raise ValueError(f"{spec.name}: the {spec.schedule.get('name')} schedule needs the run's total_steps")
    options = {k: v for k, v in spec.schedule.items() if k != "name"}
    return LambdaLR(opt, WarmupCosine(total_steps, **options))
