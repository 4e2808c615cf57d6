r"""INNAprop (Bolte, Boustany, Pauwels, Purica, 2024) for PyTorch: the optimizer and its functional update.

INNAprop is INNA's explicit Euler step driven by an RMSprop-scaled gradient, after an AdamW-style decoupled
decay. The authors' code writes it in :math:`(\theta, \psi)`, step :math:`t = 1, 2, \dots` per parameter,
:math:`\psi_0 = (1 - \alpha\beta)\theta_0`, :math:`v_0 = 0`:

.. math::

    \theta &\leftarrow (1 - \gamma\lambda)\,\theta, \qquad
    v \leftarrow \sigma v + (1 - \sigma)\,g^2, \qquad
    D = \sqrt{v}\,/\sqrt{1 - \sigma^t} + \varepsilon \\
    \psi &\leftarrow (1 - \tfrac\gamma\beta)\,\psi + \gamma(\tfrac1\beta - \alpha)\,\theta \\
    \theta &\leftarrow \big(1 + \tfrac{\gamma(1 - \alpha\beta)}{\beta - \gamma}\big)\theta
        - \tfrac{\gamma}{\beta - \gamma}\,\psi - \gamma\beta\, g / D

(the :math:`\psi` line uses the decayed :math:`\theta`, the last line the new :math:`\psi`). Here, as in
:class:`inna.INNA`, the state is the phase :math:`\phi = (\alpha - 1/\beta)\theta + \psi/\beta`, and with
:math:`u = g/D` the same iterates read

.. math::

    \tilde\phi &= \phi + \gamma\lambda(\tfrac1\beta - \alpha)\,\theta, \qquad
    \tilde\theta = (1 - \gamma\lambda)\,\theta \\
    \theta &\leftarrow \tilde\theta - \gamma\tilde\phi - \gamma\beta\, u, \qquad
    \phi \leftarrow (1 - \gamma\alpha)\,\tilde\phi + \gamma(1 - \alpha\beta)\, u

with :math:`\phi_0 = 0` (:func:`inna.formulas.innaprop_decay_phase_shift` is the decay's exact effect on the
phase). It is the same algorithm (the tests check it against the official form in float64), without the
official form's :math:`\gamma = \beta` singularity (any :math:`\gamma \ge 0` is a valid step) and without its
cancellation :math:`(1 + s_1)\theta - s_2\psi`, :math:`s_1 \approx s_2 \approx \gamma/\beta`, which loses the
update in bf16. A step reads :math:`\theta, g, v, \phi` and writes :math:`\theta, v, \phi`, AdamW's traffic.

Implementations
---------------
``_single_tensor_innaprop``
    The reference: one tensor at a time, it advances the step count :math:`t` and runs ``_innaprop_core`` with
    that tensor's bias correction :math:`1/\sqrt{1 - \sigma^t}`; what ``torch.compile`` traces and what
    ``differentiable=True`` runs.
``_innaprop_core``
    The per-element step above, the lines with :mod:`inna.formulas`, for tensors that share a step count: the lr
    and the bias correction are its scalars, step counters are not its business.
``_multi_tensor_innaprop``
    ``torch._foreach_*`` kernels over all tensors of one device and dtype at once.
``_fused_innaprop``
    On CPU, the C loop of :mod:`inna.torch._fused` printed from ``_innaprop_core``'s trace: the step counters
    (CPU tensors) are read once and advanced, and the loop runs once per distinct count (normally once; a
    parameter frozen for a while and trained again has its own count) with the lr and that count's bias
    correction as scalars. Elsewhere (CUDA, ...) and without a C compiler (or with ``INNA_CPU_KERNEL=0``), the
    reference compiled by ``torch.compile`` over the group, step counters included, with the lr a 0-dim device
    tensor. Both take ``torch.amp.GradScaler``'s fused route (``grad_scale``, ``found_inf``).

What runs where: ``fused=True`` is the fused path; the default (``foreach=None, fused=None``) is the C loop on CPU
where it builds, foreach otherwise (other devices, no C compiler, tensor subclasses); ``differentiable=True`` and
``foreach=False`` run the reference; inside ``torch.compile`` every path traces the reference. The C loop
performs the reference's operations in their order and rounding, except that its square root is correctly
rounded where torch's vectorised CPU one sometimes is not, so it agrees with the reference to an ulp or so
(``tests/pytorch/test_innaprop_cloop.py``); see ``docs/speed.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from .. import formulas
from ..formulas import INNAStabilityWarning
from . import _fused
from ._base import InnaFamilyOptimizer, Range
from .functional import (
    _amp_prologue,
    _as_real,
    _choose_path,
    _group_by_device_and_dtype,
    _lr_value,
    _master_targets,
    _write_back,
)

__all__ = ["INNAStabilityWarning", "INNAprop", "from_official_state_dict", "innaprop", "to_official_state_dict"]

#: The hyperparameters a group of the official code and of ours both hold.
_SHARED_GROUP_KEYS = ("lr", "alpha", "beta", "sigma", "eps", "weight_decay")
#: Our other per-group options, with the value a state dict that lacks them gets.
_BACKFILL: dict[str, Any] = dict(maximize=False, foreach=None, fused=None, differentiable=False, state_dtype=None)


# ------------------------------------------------------------------------------------------------ the update


def _step_value(step: Tensor, like: Tensor) -> float | Tensor:
    """The step count ``t``: a Python number in eager mode (exact, no device op); the tensor itself, in the
    parameter's precision, while compiling (so a changing step never recompiles)."""
    if torch.compiler.is_compiling():
        return step.to(torch.float64 if like.dtype == torch.float64 else torch.float32)
    return step.item()


def _bias_correction(sigma: float, step: float | Tensor) -> float | Tensor:
    """:func:`inna.formulas.rms_bias_correction` with torch's ``expm1`` for a traced step tensor."""
    if isinstance(step, Tensor):
        return formulas.rms_bias_correction(sigma, step, expm1=torch.expm1)
    return formulas.rms_bias_correction(sigma, step)


def _step_values(steps: list[Tensor]) -> list[float]:
    """The step counts as Python numbers, with one device read when they share a device."""
    if len(set(map(_fused._DEVICE, steps))) == 1:
        return torch.stack(steps).tolist()
    return [s.item() for s in steps]


def _innaprop_core(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg_sqs: list[Tensor],
    phases: list[Tensor],
    lr: float | Tensor,
    bias_correction: float | Tensor,
    *,
    alpha: float,
    beta: float,
    sigma: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """One INNAprop step, element by element, on tensors that share the step count whose
    :func:`~inna.formulas.rms_bias_correction` is ``bias_correction``: the arithmetic every path but foreach runs
    (the reference calls it per tensor, the C loop is printed from its trace). Step counters are not touched."""
    c = formulas.inna_coefficients(lr, alpha, beta)
    shift = formulas.innaprop_decay_phase_shift(lr, weight_decay, alpha, beta)
    for param, grad, v, phase in zip(params, grads, exp_avg_sqs, phases):
        if torch.is_complex(param):
            param, grad, v, phase = (torch.view_as_real(t) for t in (param, grad, v, phase))
        g = -grad if maximize else grad
        if weight_decay != 0:
            # theta <- (1 - lr wd) theta first; the phase of the decayed point is phase + shift * theta (theta
            # read before the decay; with autograd on, a copy, since the decay then changes theta in place)
            phase.add_(shift * (param.clone() if torch.is_grad_enabled() else param))
            param.mul_(1 - lr * weight_decay)
        # v <- sigma v + (1 - sigma) g^2;  u = g / D,  D = sqrt(v) / sqrt(1 - sigma^t) + eps
        v.mul_(sigma).addcmul_(g, g, value=1 - sigma)
        u = g / (v.sqrt() * bias_correction + eps)
        # theta <- theta - lr phase - lr beta u  (the old phase);  phase <- (1 - lr alpha) phase + lr (1 - alpha beta) u
        param.sub_(c.theta_phase * (phase + beta * u))
        phase.mul_(c.phase_decay).add_(c.phase_grad * u)


def _single_tensor_innaprop(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg_sqs: list[Tensor],
    phases: list[Tensor],
    steps: list[Tensor],
    lr: float | Tensor,
    *,
    alpha: float,
    beta: float,
    sigma: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    hyper = dict(alpha=alpha, beta=beta, sigma=sigma, eps=eps, weight_decay=weight_decay, maximize=maximize)
    for param, grad, v, phase, step in zip(params, grads, exp_avg_sqs, phases, steps):
        step += 1
        bias_correction = _bias_correction(sigma, _step_value(step, param))
        _innaprop_core([param], [grad], [v], [phase], lr, bias_correction, **hyper)


def _multi_tensor_innaprop(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg_sqs: list[Tensor],
    phases: list[Tensor],
    steps: list[Tensor],
    lr: float,
    *,
    alpha: float,
    beta: float,
    sigma: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    sign = -1.0 if maximize else 1.0
    c = formulas.inna_coefficients(lr, alpha, beta)
    shift = formulas.innaprop_decay_phase_shift(lr, weight_decay, alpha, beta)
    for dev_params, dev_grads, dev_vs, dev_phases, dev_steps in _group_by_device_and_dtype(
        params, grads, exp_avg_sqs, phases, steps
    ):
        dev_params, dev_grads, dev_vs, dev_phases = map(_as_real, (dev_params, dev_grads, dev_vs, dev_phases))
        torch._foreach_add_(dev_steps, 1)
        # u = g / (sqrt(v) r + eps) = (g / r) / (sqrt(v) + eps / r), r = rms_bias_correction: the per-tensor 1/r
        # goes into the scalars of the two addcdiv below, and the sign of maximize with it (v sees g^2).
        inv_r = [1 / formulas.rms_bias_correction(sigma, t) for t in _step_values(dev_steps)]
        if weight_decay != 0:
            torch._foreach_add_(dev_phases, dev_params, alpha=shift)
            torch._foreach_mul_(dev_params, 1 - lr * weight_decay)
        torch._foreach_mul_(dev_vs, sigma)
        torch._foreach_addcmul_(dev_vs, dev_grads, dev_grads, value=1 - sigma)
        denom = torch._foreach_sqrt(dev_vs)
        torch._foreach_add_(denom, [eps * s for s in inv_r])
        torch._foreach_add_(dev_params, dev_phases, alpha=-c.theta_phase)
        torch._foreach_addcdiv_(dev_params, dev_grads, denom, [-c.theta_grad * sign * s for s in inv_r])
        torch._foreach_mul_(dev_phases, c.phase_decay)
        torch._foreach_addcdiv_(dev_phases, dev_grads, denom, [c.phase_grad * sign * s for s in inv_r])


def _fused_innaprop(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg_sqs: list[Tensor],
    phases: list[Tensor],
    steps: list[Tensor],
    lr: float | Tensor,
    *,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
    c_loop: bool = False,
    **hyper: Any,
) -> None:
    """The fused path, per (device, dtype) group: the C loop on CPU where it builds (:func:`_c_loop_innaprop`),
    else the reference compiled by ``torch.compile``; both take GradScaler's ``grad_scale`` and ``found_inf``.
    ``c_loop``: the caller already knows the C loop serves every tensor (the default path checked it)."""
    lists = (params, grads, exp_avg_sqs, phases, steps)
    if torch.compiler.is_compiling():
        # Already inside a graph being compiled: inductor fuses the reference as it is.
        _fused._guarded(_single_tensor_innaprop, lists, (lr,), grad_scale, found_inf, 1, hyper)
        return
    for group in _group_by_device_and_dtype(*lists):
        # a (device, dtype) group: its first tensor says where it lives (the loop itself checks every tensor)
        p0 = group[0][0]
        if c_loop or (p0.is_cpu and _fused.c_kernel_available(_innaprop_core, _CORE_ARITY, p0.dtype.to_real(), hyper)):
            _c_loop_innaprop(*group, lr, grad_scale, found_inf, hyper)
        else:
            # elsewhere (CUDA, ...; or no C compiler): the reference compiled by torch.compile over the group, the
            # step counters included (on the parameters' device: no host read), the lr a 0-dim device tensor
            _fused._run_compiled(_single_tensor_innaprop, group, (lr,), hyper, 1, grad_scale, found_inf)


#: The C loop's arity: (params, grads, exp_avg_sqs, phases) and (lr, bias_correction).
_CORE_ARITY = (4, 2)


def _c_loop_innaprop(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg_sqs: list[Tensor],
    phases: list[Tensor],
    steps: list[Tensor],
    lr: float | Tensor,
    grad_scale: Tensor | None,
    found_inf: Tensor | None,
    hyper: dict[str, Any],
) -> None:
    """The C loop printed from :func:`_innaprop_core`, once per step count (CPU tensors of one dtype).

    The step counters are CPU tensors: read once, then advanced (not where ``found_inf`` says the step is
    skipped: the kernel then writes nothing). Tensors that share a count share the bias correction, a scalar of
    the kernel: normally one call; parameters frozen for a while and then trained again make one per count."""
    counts = _fused.advance_counters(steps, found_inf)  # one C call where it applies
    if counts is None:
        counts = _step_values(steps)
        if found_inf is None:
            torch._foreach_add_(steps, 1)
        else:
            # found_inf sums the infs found on every device (it can be 2 or more): advance by 1 or by 0
            torch._foreach_add_(steps, (found_inf == 0).to(device=steps[0].device, dtype=steps[0].dtype).reshape(()))
    by_count: dict[float, list[int]] = {}
    if counts.count(counts[0]) == len(counts):
        by_count[counts[0] + 1] = []  # the common case: one count
    else:
        for i, t in enumerate(counts):
            by_count.setdefault(t + 1, []).append(i)
    lists = (params, grads, exp_avg_sqs, phases)
    for t, idx in by_count.items():
        chosen = lists if len(by_count) == 1 else tuple([ts[i] for i in idx] for ts in lists)
        _fused.elementwise_update(
            _innaprop_core,
            chosen,
            (lr, formulas.rms_bias_correction(hyper["sigma"], t)),
            static=hyper,
            grad_index=1,
            grad_scale=grad_scale,
            found_inf=found_inf,
        )


def innaprop(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg_sqs: list[Tensor],
    phases: list[Tensor],
    steps: list[Tensor],
    *,
    lr: float | Tensor,
    alpha: float,
    beta: float,
    sigma: float,
    eps: float,
    weight_decay: float = 0.0,
    masters: list[Tensor | None] | None = None,
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    differentiable: bool = False,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
) -> None:
    r"""Apply one INNAprop step in place to ``params`` and their state (see the module docstring).

    Args:
        params: parameters :math:`\theta`, updated in place.
        grads: their gradients :math:`g` (read only).
        exp_avg_sqs: the second moments :math:`v`, one per parameter, shaped like it, updated in place.
        phases: the phases :math:`\phi`, one per parameter, shaped like it, updated in place.
        steps: each parameter's step count :math:`t` so far (a 1-element float tensor), incremented in place.
        lr: the step :math:`\gamma` (a float or a 1-element Tensor).
        alpha, beta, sigma, eps, weight_decay, maximize: see :class:`INNAprop`.
        masters: optional high-precision copies of low-precision ``params`` (``None`` entries for the others):
            the update runs on the master copy (with the gradient upcast), then the parameter gets its rounding.
        foreach, fused: which implementation to use; both ``None`` picks, on CPU, the C loop where it builds,
            else ``foreach`` unless ``differentiable`` or some tensor is not a plain dense tensor.
        differentiable: keep autograd recording through the update (reference path only).
        grad_scale, found_inf: ``torch.amp.GradScaler``'s fused route, as for :func:`inna.torch.functional.inna`:
            the fused path unscales the gradients in its kernel (leaving them unscaled in ``grads``) and changes
            nothing, step counters included, when ``found_inf`` is nonzero; the other paths take the scaler's
            default route (one host read of ``found_inf``).
    """
    if not (len(params) == len(grads) == len(exp_avg_sqs) == len(phases) == len(steps)):
        raise ValueError(
            "INNAprop: params, grads, exp_avg_sqs, phases and steps must have the same length, got "
            f"{len(params)}, {len(grads)}, {len(exp_avg_sqs)}, {len(phases)}, {len(steps)}"
        )
    if foreach and fused:
        raise RuntimeError("INNAprop: `fused` and `foreach` cannot both be True")
    if differentiable and (foreach or fused):
        raise RuntimeError("INNAprop: `differentiable=True` is only supported by the single-tensor path")
    if not params:
        return
    skip, grad_scale, found_inf = _amp_prologue(grads, masters, fused, grad_scale, found_inf)
    if skip:
        return
    targets, target_grads = _master_targets(params, grads, masters)
    hyper = dict(alpha=alpha, beta=beta, sigma=sigma, eps=eps, weight_decay=weight_decay, maximize=maximize)
    state = (targets, target_grads, exp_avg_sqs, phases, steps)
    chose_c_loop = foreach is None and fused is None  # then _choose_path picks fused only where the C loop serves
    fused, foreach = _choose_path(targets, foreach, fused, differentiable, _innaprop_core, _CORE_ARITY, hyper)
    compiling = torch.compiler.is_compiling()
    if fused:
        _lr = _lr_value(lr, keep_tensor=True)
        _fused_innaprop(*state, _lr, grad_scale=grad_scale, found_inf=found_inf, c_loop=chose_c_loop, **hyper)
    elif foreach and not compiling:
        _multi_tensor_innaprop(*state, _lr_value(lr, keep_tensor=False), **hyper)
    else:
        # Under torch.compile the reference is traced (inductor fuses it); a Tensor lr stays a Tensor there and
        # when it requires grad, so the step has no host sync and no recompilation.
        keep = compiling or (isinstance(lr, Tensor) and lr.requires_grad)
        _single_tensor_innaprop(*state, _lr_value(lr, keep_tensor=keep), **hyper)
    _write_back(params, targets, masters)


# ------------------------------------------------------------------------------------------- the optimizer


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
            CPU a C loop printed from the reference (built in well under a second at first use, then cached on
            disk), elsewhere the reference compiled by ``torch.compile`` (the first step compiles). With it,
            ``torch.amp.GradScaler`` takes its fused route (unscaling and skipping in the kernel).
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
    REQUIRED_GROUP_KEYS = _SHARED_GROUP_KEYS
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


# ----------------------------------------------------------------------------- the official code's state dicts


def from_official_state_dict(official: dict[str, Any], optimizer: INNAprop) -> dict[str, Any]:
    r"""A state dict of the official INNAprop code, converted for ``optimizer.load_state_dict``.

    The official code keeps, per parameter, ``step``, ``exp_avg_sq`` (:math:`v`) and ``psi`` (:math:`\psi`), and
    per group ``lr, alpha, beta, sigma, eps, weight_decay, maximize, capturable``. The phase
    :math:`\phi = (\alpha - 1/\beta)\theta + \psi/\beta` needs :math:`\theta`: **load the model's weights from the
    same checkpoint first**, then::

        model.load_state_dict(ckpt["model"])
        opt = inna.INNAprop(model.parameters())
        opt.load_state_dict(inna.torch.innaprop.from_official_state_dict(ckpt["optimizer"], opt))

    and ``opt`` continues the official run's trajectory (to round-off: computing :math:`\phi` from
    :math:`\psi` once costs a few ulps of :math:`\|\theta\|/\beta`). ``foreach``, ``fused``, ``differentiable``
    and ``state_dtype`` are kept from ``optimizer``; ``capturable`` is dropped. Parameters are matched by order, as
    ``torch.optim`` does; a mismatch raises ``ValueError``.
    """
    where = "from_official_state_dict"
    if not isinstance(official, dict) or "state" not in official or "param_groups" not in official:
        raise ValueError(f"{where}: expected a dict with 'state' and 'param_groups' (the official state_dict())")
    if len(official["param_groups"]) != len(optimizer.param_groups):
        raise ValueError(
            f"{where}: the state dict has {len(official['param_groups'])} parameter groups, "
            f"the optimizer has {len(optimizer.param_groups)}"
        )
    groups, state = [], {}
    for g, (saved, group) in enumerate(zip(official["param_groups"], optimizer.param_groups)):
        missing = [k for k in _SHARED_GROUP_KEYS if k not in saved]
        if missing:
            raise ValueError(f"{where}: parameter group {g} lacks {missing}: not a state dict of INNAprop")
        if len(saved["params"]) != len(group["params"]):
            raise ValueError(
                f"{where}: parameter group {g} has {len(saved['params'])} parameters in the state dict and "
                f"{len(group['params'])} in the optimizer: the state dict comes from another model"
            )
        ours = {k: saved[k] for k in _SHARED_GROUP_KEYS}
        ours["maximize"] = bool(saved.get("maximize", False))
        ours.update({k: group[k] for k in ("foreach", "fused", "differentiable", "state_dtype")})
        ours.update({k: saved[k] for k in ("initial_lr", "param_names") if k in saved})
        groups.append({**ours, "params": list(saved["params"])})
        for key, param in zip(saved["params"], group["params"]):
            if key not in official["state"]:
                continue
            s = official["state"][key]
            if not isinstance(s, dict) or not {"step", "exp_avg_sq", "psi"} <= set(s):
                keys = sorted(s) if isinstance(s, dict) else type(s).__name__
                raise ValueError(
                    f"{where}: the state of parameter {key} has keys {keys}, expected step, exp_avg_sq and psi"
                )
            psi = s["psi"]
            if psi.shape != param.shape:
                raise ValueError(
                    f"{where}: the saved psi of parameter {key} has shape {tuple(psi.shape)} but the parameter has "
                    f"shape {tuple(param.shape)}: the state dict comes from another model"
                )
            theta = param.detach().to(device=psi.device, dtype=psi.dtype)
            state[key] = {
                "step": torch.as_tensor(s["step"], dtype=torch.float32).detach().reshape(()).cpu().clone(),
                "exp_avg_sq": s["exp_avg_sq"].detach().clone(),
                "phase": formulas.phase_from_psi(theta, psi.detach(), saved["alpha"], saved["beta"]),
            }
    return {"state": state, "param_groups": groups}


def to_official_state_dict(optimizer: INNAprop) -> dict[str, Any]:
    r"""``optimizer``'s state in the official INNAprop code's format (``psi`` from :meth:`INNAprop.psi`, the step as
    a 0-dim float32 tensor, ``capturable=False``), for ``load_state_dict`` of the official optimizer."""
    ours = optimizer.state_dict()
    groups = []
    for saved in ours["param_groups"]:
        official = {k: saved[k] for k in _SHARED_GROUP_KEYS}
        official.update(maximize=saved["maximize"], capturable=False, params=list(saved["params"]))
        groups.append(official)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state = {}
    for key, value in ours["state"].items():
        param = params[key]
        state[key] = {
            "step": value["step"].detach().to(device="cpu", dtype=torch.float32).reshape(()).clone(),
            "exp_avg_sq": value["exp_avg_sq"].detach().clone(),
            "psi": optimizer.psi(param).clone(),
        }
    return {"state": state, "param_groups": groups}
