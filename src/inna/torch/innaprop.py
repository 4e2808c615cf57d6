r"""INNAprop (Bolte, Boustany, Pauwels, Purica, 2024) for PyTorch: its update, in interchangeable implementations.

The optimizer, :class:`inna.INNAprop`, is :mod:`inna.torch.innaprop_optimizer` (importable from here too); the
official code's state dicts convert with :func:`from_official_state_dict` and :func:`to_official_state_dict`
(:mod:`inna.torch.innaprop_official`).

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
    that tensor's bias correction :math:`1/\sqrt{1 - \sigma^t}` (:func:`inna.formulas.rms_bias_correction`); what
    ``torch.compile`` traces and what ``differentiable=True`` runs.
``_innaprop_core``
    The per-element step above, the lines with :mod:`inna.formulas`, for tensors that share a step count: the lr
    and the bias correction are its scalars, step counters are not its business.
``_multi_tensor_innaprop``
    ``torch._foreach_*`` kernels over the tensors of one device and dtype.
``_c_loop_innaprop``
    The C loop of ``kernels/inna_kernels.c`` (:mod:`inna.torch._fused`): the step counters (CPU tensors) are read
    and advanced in one C call, and one loop call over the group takes every tensor's bias correction and every
    hyperparameter as arguments. Elsewhere (CUDA, or no C compiler) the fused path is the reference compiled by
    ``torch.compile`` over the group, step counters included, with the lr a 0-dim device tensor. Both take
    ``torch.amp.GradScaler``'s fused route (``grad_scale``, ``found_inf``).

:mod:`inna.torch._dispatch` picks the path (see its table) and groups the tensors by device and dtype. The C loop
performs the core's operations in their order and rounding, except that its square root is correctly rounded
where torch's vectorised CPU one sometimes is not, and its addcmul is an FMA where torch's portable CPU kernel
(``ATEN_CPU_CAPABILITY=default``) multiplies then adds, so it agrees with the reference to a few ulp
(``tests/pytorch/test_innaprop_cloop.py``); see ``docs/speed.md``.

The Keras torch backend's multi-tensor step runs the same core for tensors that share one step count
(:mod:`inna.keras._torch`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import formulas
from . import _dispatch, _fused
from ._cbuild import Library
from .innaprop_official import from_official_state_dict, to_official_state_dict

__all__ = [
    "UPDATE",
    "from_official_state_dict",
    "innaprop",
    "to_official_state_dict",
]


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
    if len({s.device for s in steps}) == 1:
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
    (the reference calls it per tensor, the C loop does the same operations in the same order). Step counters are
    not touched."""
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
    **hyper: Any,
) -> None:
    """The update with ``torch._foreach_*`` kernels on tensors of one device and dtype, step counters advanced."""
    torch._foreach_add_(steps, 1)
    inverse = [1 / formulas.rms_bias_correction(hyper["sigma"], t) for t in _step_values(steps)]
    _foreach_core(params, grads, exp_avg_sqs, phases, lr, inverse, **hyper)


def _foreach_core(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg_sqs: list[Tensor],
    phases: list[Tensor],
    lr: float,
    inverse_corrections: list[float],
    *,
    alpha: float,
    beta: float,
    sigma: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
) -> None:
    """``_innaprop_core`` with ``torch._foreach_*`` kernels, each tensor with the inverse of its bias correction."""
    sign = -1.0 if maximize else 1.0
    c = formulas.inna_coefficients(lr, alpha, beta)
    params, grads, exp_avg_sqs, phases = map(_dispatch.as_real, (params, grads, exp_avg_sqs, phases))
    if weight_decay != 0:
        torch._foreach_add_(phases, params, alpha=formulas.innaprop_decay_phase_shift(lr, weight_decay, alpha, beta))
        torch._foreach_mul_(params, 1 - lr * weight_decay)
    torch._foreach_mul_(exp_avg_sqs, sigma)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - sigma)
    # u = g / (sqrt(v) r + eps) = (g / r) / (sqrt(v) + eps / r), r the bias correction: the per-tensor 1/r goes into
    # the scalars of the two addcdiv below, and the sign of maximize with it (v sees g^2).
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_add_(denom, [eps * s for s in inverse_corrections])
    torch._foreach_add_(params, phases, alpha=-c.theta_phase)
    torch._foreach_addcdiv_(params, grads, denom, [-c.theta_grad * sign * s for s in inverse_corrections])
    torch._foreach_mul_(phases, c.phase_decay)
    torch._foreach_addcdiv_(phases, grads, denom, [c.phase_grad * sign * s for s in inverse_corrections])


def _c_loop_innaprop(
    lib: Library,
    lists: list[list[Tensor]],
    lr: float,
    hyper: dict[str, Any],
    grad_scale: Tensor | None,
    found_inf: Tensor | None,
) -> str | None:
    """The C loop on one group of plain CPU tensors, step counters included (see :class:`_dispatch.Update`).

    The counters are read and advanced first (not where ``found_inf`` says the step is skipped: the loop then
    writes nothing); each tensor's bias correction is computed once per distinct count."""
    steps = lists[4]
    counts = _fused.advance_counters(lib, steps, found_inf)  # one C call where it applies
    if counts is None:
        counts = _step_values(steps)
        # found_inf sums the infs found on every device (it can be 2 or more): advance by 1 or by 0
        by = 1 if found_inf is None else (found_inf == 0).to(device=steps[0].device, dtype=steps[0].dtype)
        torch._foreach_add_(steps, by)
    sigma = hyper["sigma"]
    corrections = {t: formulas.rms_bias_correction(sigma, t + 1) for t in set(counts)}
    return _c_loop_core(lib, lists[:4], lr, list(map(corrections.__getitem__, counts)), hyper, grad_scale, found_inf)


def _c_loop_core(
    lib: Library,
    lists: list[list[Tensor]],
    lr: float,
    corrections: list[float],
    hyper: dict[str, Any],
    grad_scale: Tensor | None,
    found_inf: Tensor | None,
) -> str | None:
    """``_innaprop_core`` in the C loop, each tensor with its bias correction."""
    alpha, beta, sigma, wd = hyper["alpha"], hyper["beta"], hyper["sigma"], hyper["weight_decay"]
    c = formulas.inna_coefficients(lr, alpha, beta)
    shift = formulas.innaprop_decay_phase_shift(lr, wd, alpha, beta)
    sign = -1.0 if hyper["maximize"] else 1.0
    scalars = (
        sign,
        shift,
        1 - lr * wd,
        sigma,
        1 - sigma,
        hyper["eps"],
        beta,
        c.theta_phase,
        c.phase_decay,
        c.phase_grad,
    )

    def reference(sub: list[list[Tensor]], sub_corrections: list[float]) -> None:
        for *tensors, correction in zip(*sub, sub_corrections):
            _innaprop_core(*([t] for t in tensors), lr, correction, **hyper)

    return _fused.elementwise_update(
        _fused.INNAPROP_KERNEL,
        lib,
        lists,
        scalars,
        per_tensor=corrections,
        decay_on=wd != 0,
        grad_scale=grad_scale,
        found_inf=found_inf,
        fallback=reference,
    )


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
    warn: bool = False,
    **hyper: Any,
) -> None:
    """The fused path: the C loop on CPU, the reference compiled by torch.compile elsewhere (step counters
    included)."""
    lists = (params, grads, exp_avg_sqs, phases, steps)
    _dispatch.run_fused(UPDATE, lists, lr, hyper, grad_scale, found_inf, warn)


#: INNAprop, as :mod:`inna.torch._dispatch` runs it: lists (params, grads, exp_avg_sqs, phases, steps).
UPDATE = _dispatch.Update(
    "INNAprop",
    ("params", "grads", "exp_avg_sqs", "phases", "steps"),
    __name__,
    "_single_tensor_innaprop",
    "_multi_tensor_innaprop",
    "_fused_innaprop",
    _c_loop_innaprop,
)

#: The C loop's arity for the core: (params, grads, exp_avg_sqs, phases) and (lr, bias_correction).
_CORE_ARITY = (4, 2)


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
        alpha, beta, sigma, eps, weight_decay, maximize: see :class:`inna.INNAprop`.
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
    _dispatch.run(
        UPDATE,
        (params, grads, exp_avg_sqs, phases, steps),
        lr=lr,
        hyper=dict(alpha=alpha, beta=beta, sigma=sigma, eps=eps, weight_decay=weight_decay, maximize=maximize),
        masters=masters,
        foreach=foreach,
        fused=fused,
        differentiable=differentiable,
        grad_scale=grad_scale,
        found_inf=found_inf,
    )


def __getattr__(name: str) -> Any:
    # the optimizer class lives in innaprop_optimizer, which imports this module: importable from here, lazily
    if name == "INNAprop":
        from .innaprop_optimizer import INNAprop

        return INNAprop
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
