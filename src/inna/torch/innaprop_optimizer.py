r"""INNAprop (Bolte, Boustany, Pauwels, Purica, 2024) for PyTorch: the ``torch.optim`` optimizer.

Its update, in interchangeable implementations, is :mod:`inna.torch.innaprop` (the math is in that module's
docstring); the official code's state dicts convert with :mod:`inna.torch.innaprop_official`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from ..formulas import INNAStabilityWarning
from ._base import InnaFamilyOptimizer, Range
from .innaprop import innaprop
from .innaprop_official import OFFICIAL_GROUP_KEYS

__all__ = ["INNAStabilityWarning", "INNAprop"]

#: Our per-group options beyond the official ones, with the value a state dict that lacks them gets.
_BACKFILL: dict[str, Any] = dict(maximize=False, foreach=None, fused=None, differentiable=False, state_dtype=None)


#: Said once per optimizer when a float16 parameter gets float16 state.
_FLOAT16_WARNING = (
    "INNAprop: a float16 parameter keeps its second moment v and its phase in float16 (state_dtype=None): "
    "(1 - sigma) g^2 underflows to 0 for most gradients and eps = 1e-8 rounds to 0, so a step can divide by zero "
    "and give inf/NaN. Pass state_dtype=torch.float32 to keep the state (and a master copy of the parameter) in "
    "float32."
)


class INNAprop(InnaFamilyOptimizer):
    r"""INNAprop (Bolte, Boustany, Pauwels, Purica, 2024): INNA on an RMSprop-scaled gradient, with AdamW's
    decoupled weight decay. The INNA family's AdamW-class member: same state size, same lr and weight decay.

    .. math::

        \begin{aligned}
        &\textbf{input: } \gamma \text{ (lr)},\ \alpha \ge 0,\ \beta > 0,\ \sigma \in [0, 1),
            \ \varepsilon \ge 0,\ \lambda \text{ (weight\_decay)} \\
        &\textbf{at a parameter's first step: } \psi \leftarrow (1 - \alpha\beta)\theta,\ v \leftarrow 0,
            \ t \leftarrow 0 \\
        &\textbf{each step: } t \leftarrow t + 1,\quad g \leftarrow \pm\nabla J_{B}(\theta)
            \quad (- \text{ if maximize}) \\
        &\quad \theta \leftarrow (1 - \gamma\lambda)\,\theta \\
        &\quad v \leftarrow \sigma v + (1 - \sigma)\,g^2, \qquad D = \sqrt{v}/\sqrt{1 - \sigma^t} + \varepsilon \\
        &\quad \psi \leftarrow \psi + \gamma\big[(\tfrac1\beta - \alpha)\theta - \tfrac1\beta\psi\big] \\
        &\quad \theta \leftarrow \theta + \gamma\big[(\tfrac1\beta - \alpha)\theta - \tfrac1\beta\psi_{\rm old}
            - \beta\, g/D\big]
        \end{aligned}

    (the two bracketed lines use :math:`\theta` after the decay and the old :math:`\psi`; this is the official
    code's update, which writes the last line with the new :math:`\psi` divided by :math:`\beta - \gamma`.)
    For constant :math:`\gamma` and :math:`\lambda = 0`,
    :math:`\theta_{k+1} = \theta_k - \gamma\beta u_k - \gamma^2\sum_{j<k} u_j - \gamma\alpha(\theta_k - \theta_0)`
    with :math:`u = g/D`: an RMSprop step of size :math:`\gamma\beta`, the sum of all past scaled gradients with
    weight :math:`\gamma^2`, and a pull of stiffness :math:`\gamma\alpha` toward the initial point.

    Args:
        params: an iterable of parameters, of dicts defining parameter groups, or of ``(name, parameter)`` pairs.
        lr: the step :math:`\gamma` (default 1e-3): the lr one would give AdamW. A float or a 1-element Tensor.
            Any :math:`\gamma \ge 0` is valid here, :math:`\gamma \ge \beta` included (the official form divides by
            :math:`\beta - \gamma`); a once-only :class:`inna.INNAStabilityWarning` says when :math:`\gamma`
            breaks INNA's stability rule :math:`\gamma \le \beta`, :math:`\gamma\alpha < 2`
            (:func:`inna.formulas.stability_rule_broken`), which holds for INNAprop in the scaled coordinates.
        alpha: friction :math:`\alpha \ge 0` (default 0.1): also the stiffness of the pull toward
            :math:`\theta_0`, so the memory is about :math:`1/(\gamma\alpha)` steps.
        beta: Newtonian damping :math:`\beta > 0` (default 0.9). The authors' pairs: (0.1, 0.9) (default: short
            runs, ImageNet ResNet-18, GPT-2), (1, 1) (ResNet-50), (2, 2) (long CIFAR runs, fine-tuning).
        sigma: the second-moment decay :math:`\sigma \in [0, 1)` (default 0.999; 0.99 for language-model
            pre-training, where AdamW would use :math:`\beta_2 = 0.95`).
        eps: :math:`\varepsilon \ge 0`, added after the square root (default 1e-8).
        weight_decay: decoupled decay :math:`\lambda \ge 0`, :math:`\theta \leftarrow (1 - \gamma\lambda)\theta`
            before the step (default 0.01, as AdamW's).
        maximize: maximize the objective instead (``p.grad`` is never modified).
        foreach: the multi-tensor ``torch._foreach_*`` path. ``None`` (default, with ``fused=None``) picks, on CPU,
            the fused C loop where this machine can build it, else foreach whenever it applies.
        fused: one pass over memory per step (reads :math:`\theta, g, v, \phi`, writes :math:`\theta, v, \phi`): on
            CPU a hand-written C loop with runtime hyperparameters (built once per dtype in well under a second at
            first use, then cached on disk), elsewhere the reference compiled by ``torch.compile`` (the first step
            compiles). With it, ``torch.amp.GradScaler`` takes its fused route (unscaling and skipping in the kernel).
        differentiable: let autograd record through ``step()``; uses the reference path.
        state_dtype: ``None`` (default) keeps the state in each parameter's dtype; ``torch.float32`` keeps, for
            bf16/fp16 parameters, :math:`v`, the phase and a float32 master copy of :math:`\theta`.

    State:
        ``state[p] = {"step": Tensor, "exp_avg_sq": Tensor, "phase": Tensor}``, created at the parameter's first
        step with a gradient: ``step`` is the count :math:`t` (a 0-dim float32 tensor, on the CPU, or on the
        parameter's device with ``fused=True``, as torch's Adam), ``exp_avg_sq`` is :math:`v`, ``phase`` is
        :math:`\phi = (\alpha - 1/\beta)\theta + \psi/\beta` (:meth:`psi` returns the official :math:`\psi`).
        With ``state_dtype``, low-precision parameters also keep ``"master"``. State dicts of the official code
        load with :func:`from_official_state_dict`; :func:`to_official_state_dict` writes one.
    """

    NAME = "INNAprop"
    REQUIRED_GROUP_KEYS = OFFICIAL_GROUP_KEYS
    BACKFILL = _BACKFILL
    STATE_KEYS = frozenset({"step", "exp_avg_sq", "phase", "master"})
    REQUIRED_STATE_KEYS = frozenset({"step", "exp_avg_sq", "phase"})
    SCALAR_STATE_KEYS = frozenset({"step"})
    #: The official code's group option we do not have: a never-stepped official state dict is refused by it.
    FOREIGN_GROUP_KEYS = frozenset({"capturable"})

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, Tensor]],
        lr: float | Tensor = 1e-3,
        alpha: float = 0.1,
        beta: float = 0.9,
        *,
        sigma: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        state_dtype: torch.dtype | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            alpha=alpha,
            beta=beta,
            sigma=sigma,
            eps=eps,
            weight_decay=weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            differentiable=differentiable,
            state_dtype=state_dtype,
        )
        super().__init__(params, defaults)

    @classmethod
    def _ranges(cls, group: dict[str, Any]) -> list[Range]:
        return [
            ("lr", group["lr"], "0 <= lr < inf", lambda v: v >= 0),
            ("alpha", group["alpha"], "0 <= alpha < inf", lambda v: v >= 0),
            ("beta", group["beta"], "0 < beta < inf", lambda v: v > 0),
            ("sigma", group["sigma"], "0 <= sigma < 1", lambda v: 0 <= v < 1),
            ("eps", group["eps"], "0 <= eps < inf", lambda v: v >= 0),
            ("weight_decay", group["weight_decay"], "0 <= weight_decay < inf", lambda v: v >= 0),
        ]

    def _not_saved_by_us(self, state_dict: dict[str, Any]) -> str:
        official = any("capturable" in g for g in state_dict["param_groups"] if isinstance(g, dict)) or any(
            isinstance(s, dict) and "psi" in s for s in state_dict["state"].values()
        )
        hint = (
            "; it looks like a state dict of the official INNAprop code: load it with "
            "inna.torch.innaprop.from_official_state_dict(state_dict, optimizer)"
        )
        return super()._not_saved_by_us(state_dict) + (hint if official else "")

    def _init_group(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        exp_avg_sqs: list[Tensor],
        phases: list[Tensor],
        steps: list[Tensor],
        masters: list[Tensor | None],
    ) -> None:
        """Collect the parameters of ``group`` that have a gradient, creating their state lazily."""
        with_grad = [p for p in group["params"] if p.grad is not None]
        self._reject_sparse(with_grad)
        fused, state_dtype, all_state = group["fused"], group["state_dtype"], self.state
        for p in with_grad:
            params.append(p)
            grads.append(p.grad)
            state = all_state[p]
            if state_dtype is None and "master" not in state:
                dtype = p.dtype  # the common case, without a master copy
            else:
                dtype = self._master(p, state, state_dtype) or p.dtype
            if "phase" not in state:
                if dtype == torch.float16:
                    self._warn_once("float16", _FLOAT16_WARNING)
                # phi_0 = 0 is the official psi_0 = (1 - alpha beta) theta_0
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device if fused else "cpu")
                state["exp_avg_sq"] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
                state["phase"] = torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
            else:
                v, phase = state["exp_avg_sq"], state["phase"]
                if v.dtype != dtype or phase.dtype != dtype:  # state_dtype switched on or off
                    state["exp_avg_sq"], state["phase"] = v.to(dtype), phase.to(dtype)
                if fused and state["step"].device != p.device:
                    state["step"] = state["step"].to(p.device)
            exp_avg_sqs.append(state["exp_avg_sq"])
            phases.append(state["phase"])
            steps.append(state["step"])
            masters.append(state.get("master"))

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Perform one INNAprop step on every parameter that has a gradient.

        Args:
            closure: optional; re-evaluates the model and returns the loss (run with grad enabled).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._maybe_warn_unstable()
        amp = self._amp_inputs()
        if amp is None:
            return loss  # GradScaler found an inf at a first step: skipped
        grad_scale, found_inf = amp
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            for group in self.param_groups:
                params: list[Tensor] = []
                grads: list[Tensor] = []
                exp_avg_sqs: list[Tensor] = []
                phases: list[Tensor] = []
                steps: list[Tensor] = []
                masters: list[Tensor | None] = []
                self._init_group(group, params, grads, exp_avg_sqs, phases, steps, masters)
                innaprop(
                    params,
                    grads,
                    exp_avg_sqs,
                    phases,
                    steps,
                    masters=masters,
                    lr=group["lr"],
                    alpha=group["alpha"],
                    beta=group["beta"],
                    sigma=group["sigma"],
                    eps=group["eps"],
                    weight_decay=group["weight_decay"],
                    maximize=group["maximize"],
                    foreach=group["foreach"],
                    fused=group["fused"],
                    differentiable=group["differentiable"],
                    grad_scale=grad_scale,
                    found_inf=found_inf,
                )
        return loss
