r"""The INNA optimizer for PyTorch: bookkeeping (shared with INNAprop in :mod:`._base`) around
:func:`inna.torch.functional.inna`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from ..formulas import INNAStabilityWarning
from ._base import InnaFamilyOptimizer, Range
from .functional import initial_phase, inna

__all__ = ["INNA", "INNAStabilityWarning"]


#: Per-group options and their defaults for keys a state dict saved by an older version may lack.
_BACKFILL: dict[str, Any] = {
    "initial_speed": None,
    "weight_decay": 0.0,
    "decoupled_weight_decay": False,
    "maximize": False,
    "foreach": None,
    "fused": None,
    "differentiable": False,
    "state_dtype": None,
}

#: The state kept per parameter (see the "State" section of :class:`INNA`); "master" only with state_dtype.
STATE_KEYS = frozenset({"phase", "master"})


class INNA(InnaFamilyOptimizer):
    r"""INNA, the Inertial Newton Algorithm of Castera, Bolte, Févotte and Pauwels (JMLR 2021).

    INNA is the explicit Euler discretisation of the first-order lifting of DIN,
    :math:`\ddot\theta + \alpha\dot\theta + \beta\nabla^2 J(\theta)\dot\theta + \nabla J(\theta) = 0`
    (inertia, friction :math:`\alpha`, Hessian-driven "Newtonian" damping :math:`\beta`, gravity),
    using only mini-batch gradients and one extra buffer per parameter:

    .. math::

        \begin{aligned}
        &\textbf{input: } \gamma_k \text{ (lr)},\ \alpha \ge 0,\ \beta > 0,\ s \text{ (initial\_speed)},
            \ \lambda \text{ (weight\_decay)} \\
        &\textbf{for } k = 0, 1, \dots \\
        &\quad g_k \leftarrow \pm\nabla J_{B_k}(\theta_k) + \lambda'\theta_k
            \quad (- \text{ if maximize};\ \lambda' = \lambda, \text{ or } \lambda/\beta \text{ if decoupled}) \\
        &\quad \textbf{if } k = 0:\ \psi_0 \leftarrow (1 - \alpha\beta)\theta_0 + \beta(s - \beta)\bar g_0
            \quad (\bar g_0 = g_0 \text{ without the decoupled term}) \\
        &\quad \theta_{k+1} \leftarrow \theta_k + \gamma_k\big[(\tfrac1\beta - \alpha)\theta_k
            - \tfrac1\beta\psi_k - \beta g_k\big] \\
        &\quad \psi_{k+1} \leftarrow \psi_k + \gamma_k\big[(\tfrac1\beta - \alpha)\theta_k
            - \tfrac1\beta\psi_k\big]
        \end{aligned}

    Both lines use the old :math:`(\theta_k, \psi_k)`. The paper decays the step as
    :math:`\gamma_k = \gamma_0/\sqrt{k+1}` per iteration: use :class:`inna.PowerDecayLR`.

    Args:
        params: an iterable of parameters, of dicts defining parameter groups, or of
            ``(name, parameter)`` pairs (``named_parameters()``).
        lr: the step :math:`\gamma` (default 0.1, the authors' PyTorch default). A float or a 1-element
            Tensor (a Tensor lr lets ``torch.compile`` follow a scheduler without recompiling).
        alpha: friction :math:`\alpha \ge 0` (default 0.5). Larger is slower but steadier.
        beta: Newtonian damping :math:`\beta > 0` (default 0.1). It damps oscillations across valleys;
            the authors suggest trying powers of ten (0.01, 1, 10) when 0.1 does not suit.
        initial_speed: :math:`s \ge 0` in :math:`\dot\theta_0 = -s\,g_0`. ``None`` (default) means
            :math:`s = \beta`, i.e. :math:`\psi_0 = (1 - \alpha\beta)\theta_0` (the authors' PyTorch code):
            DIN starts with zero phase, the energy starts at :math:`(1 + \alpha\beta)J(\theta_0)` and the first
            step is :math:`\theta_0 - \gamma_0\beta g_0`. ``1.0`` is the paper's experiments (the authors'
            Keras/TF code): the first step is the SGD step :math:`\theta_0 - \gamma_0 g_0`, but it adds kinetic
            energy :math:`\tfrac12(1-\beta)^2\|g_0\|^2` and can raise the loss on stiff problems. ``0.0``
            starts at rest.
        weight_decay: :math:`\lambda \ge 0` (default 0). By default an L2 term: INNA runs on
            :math:`J + \tfrac\lambda2\|\theta\|^2`, as in the paper's framework.
        decoupled_weight_decay: if True, shrink :math:`\theta` by :math:`(1 - \gamma_k\lambda)` each step and
            leave :math:`\psi` untouched (the authors' PyTorch code). Since the gradient enters only the
            :math:`\theta` line, scaled by :math:`\beta`, this equals the L2 form with :math:`\lambda/\beta`.
        maximize: maximize the objective instead of minimizing it (``p.grad`` is never modified).
        foreach: use the multi-tensor ``torch._foreach_*`` implementation (four passes over memory).
        fused: use the fused implementation, one pass that reads :math:`\theta, g, \phi` and writes
            :math:`\theta, \phi`: on CPU a hand-written C loop with runtime hyperparameters, compiled once per dtype
            with the system C compiler (about 0.3 s, cached on disk; bitwise the reference's result), elsewhere the
            reference compiled by ``torch.compile`` (the first step compiles). It takes ``torch.amp.GradScaler``'s
            fused route (no host sync). ``foreach=None, fused=None`` (default) picks the C loop on CPU when a C
            compiler is found, else foreach where it applies (plain dense tensors, not ``differentiable``).
            See docs/speed.md.
        differentiable: let autograd record through ``step()`` (for meta-learning); uses the reference path.
        state_dtype: ``None`` (default) keeps the state in each parameter's dtype. ``torch.float32`` (or
            ``float64``) keeps, for every parameter of lower precision (bf16, fp16), the phase *and a master
            copy of* :math:`\theta` in that dtype: the update runs on the master copy and the parameter receives
            its rounding. In bf16, updates smaller than the parameter's resolution otherwise vanish; a higher
            precision phase alone does not prevent that. Costs one more buffer per low-precision parameter.

    Stability:
        On a quadratic of curvature :math:`h`, a constant step with :math:`\gamma \le \beta` and
        :math:`\gamma\alpha < 2` behaves like gradient descent with step :math:`\gamma\beta`: it is stable
        whenever :math:`\gamma\beta h < 2 - \gamma\alpha`. With :math:`\gamma > \beta`, every direction of
        curvature above :math:`\alpha/(\gamma - \beta)` diverges however small :math:`\gamma\beta h` is; with
        :math:`\gamma\alpha \ge 2` the flat directions do. INNA warns once (:class:`INNAStabilityWarning`) at
        the first step where a group's lr breaks the rule :math:`\gamma \le \beta`, :math:`\gamma\alpha < 2`.
        With a decaying step it is often transient (a tuned :math:`\gamma_0` can exceed :math:`\beta` early on);
        filter the warning if that is intended.

    State:
        ``state[p] = {"phase": Tensor}``, created at the parameter's first step with a gradient, with
        :math:`\phi = (\alpha - 1/\beta)\theta + \psi/\beta` (the authors' ``phase``; in continuous time
        :math:`\phi = -(\dot\theta + \beta\nabla J)`). It is the paper's :math:`\psi` in another
        coordinate: :math:`\psi = (1 - \alpha\beta)\theta + \beta\phi` (:meth:`psi` returns it). Storing
        :math:`\phi` avoids computing it as the difference of two large terms (exact for small
        :math:`\beta` and in low precision) and keeps the step's memory traffic that of SGD with momentum.
        With ``state_dtype``, low-precision parameters also keep ``"master"``, their high-precision copy.
        This format is stable: later versions will load it.
    """

    NAME = "INNA"
    BACKFILL = _BACKFILL
    STATE_KEYS = STATE_KEYS

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, Tensor]],
        lr: float | Tensor = 0.1,
        alpha: float = 0.5,
        beta: float = 0.1,
        *,
        initial_speed: float | None = None,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
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
            initial_speed=initial_speed,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
            foreach=foreach,
            fused=fused,
            differentiable=differentiable,
            state_dtype=state_dtype,
        )
        super().__init__(params, defaults)

    @classmethod
    def _ranges(cls, group: dict[str, Any]) -> list[Range]:
        ranges: list[Range] = [
            ("lr", group["lr"], "0 <= lr < inf", lambda v: v >= 0),
            ("alpha", group["alpha"], "0 <= alpha < inf", lambda v: v >= 0),
            ("beta", group["beta"], "0 < beta < inf", lambda v: v > 0),
            ("weight_decay", group.get("weight_decay", 0.0), "0 <= weight_decay < inf", lambda v: v >= 0),
        ]
        if group.get("initial_speed") is not None:
            ranges.append(
                ("initial_speed", group["initial_speed"], "0 <= initial_speed < inf or None", lambda v: v >= 0)
            )
        return ranges

    def _init_group(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        phases: list[Tensor],
        masters: list[Tensor | None],
    ) -> None:
        """Collect the parameters of ``group`` that have a gradient, creating their state lazily."""
        with_grad = [p for p in group["params"] if p.grad is not None]
        self._reject_sparse(with_grad)
        state_dtype, all_state = group["state_dtype"], self.state
        for p in with_grad:
            params.append(p)
            grads.append(p.grad)
            state = all_state[p]
            if state_dtype is None and "master" not in state:
                master_dtype = None  # the common case, without a master copy
            else:
                master_dtype = self._master(p, state, state_dtype)
            if "phase" not in state:
                state["phase"] = initial_phase(
                    p if master_dtype is None else state["master"],
                    p.grad if master_dtype is None else p.grad.to(master_dtype),
                    beta=group["beta"],
                    initial_speed=group["initial_speed"],
                    # the initial velocity is -s * (gradient of the objective): the L2 term is part of that
                    # objective, the authors' decoupled decay is not
                    l2=0.0 if group["decoupled_weight_decay"] else group["weight_decay"],
                    maximize=group["maximize"],
                )
            else:
                phase = state["phase"]
                if phase.dtype != (master_dtype or p.dtype):  # state_dtype switched on or off
                    state["phase"] = phase.to(master_dtype or p.dtype)
            phases.append(state["phase"])
            masters.append(state["master"] if master_dtype is not None else None)

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Perform one INNA step on every parameter that has a gradient.

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
                phases: list[Tensor] = []
                masters: list[Tensor | None] = []
                self._init_group(group, params, grads, phases, masters)
                inna(
                    params,
                    grads,
                    phases,
                    masters=masters,
                    lr=group["lr"],
                    alpha=group["alpha"],
                    beta=group["beta"],
                    weight_decay=group["weight_decay"],
                    decoupled_weight_decay=group["decoupled_weight_decay"],
                    maximize=group["maximize"],
                    foreach=group["foreach"],
                    fused=group["fused"],
                    differentiable=group["differentiable"],
                    grad_scale=grad_scale,
                    found_inf=found_inf,
                )
        return loss
