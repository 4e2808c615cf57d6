r"""Functional form of the INNA update, in three interchangeable implementations.

The paper (Castera, Bolte, Févotte, Pauwels, JMLR 2021) writes INNA as the explicit Euler scheme of
the first-order lifting of DIN, with step :math:`\gamma_k`, friction :math:`\alpha \ge 0`, Newtonian
damping :math:`\beta > 0` and a mini-batch gradient :math:`g_k` taken at :math:`\theta_k`:

.. math::

    \theta_{k+1} &= \theta_k + \gamma_k\Big[\big(\tfrac1\beta - \alpha\big)\theta_k
                    - \tfrac1\beta\psi_k - \beta g_k\Big] \\
    \psi_{k+1}   &= \psi_k + \gamma_k\Big[\big(\tfrac1\beta - \alpha\big)\theta_k
                    - \tfrac1\beta\psi_k\Big]

This module stores, instead of :math:`\psi`, the *phase*
:math:`\phi = (\alpha - \tfrac1\beta)\theta + \tfrac1\beta\psi` (the quantity the authors' code
calls ``phase``; in continuous time :math:`\phi = -(\dot\theta + \beta\nabla J)`). Substituting
:math:`\psi = (1 - \alpha\beta)\theta + \beta\phi` into the two lines above gives the same iterates
written as

.. math::

    \theta_{k+1} &= \theta_k - \gamma_k(\phi_k + \beta g_k) \\
    \phi_{k+1}   &= (1 - \gamma_k\alpha)\,\phi_k + \gamma_k(1 - \alpha\beta)\,g_k

which is what every implementation below computes. It is the same algorithm (the tests check it
against the :math:`(\theta, \psi)` form in float64 over many steps), with two practical gains: the
phase is computed directly instead of as the difference of two large terms (no cancellation when
:math:`\beta` is small or in low precision), and the update reads :math:`\theta, g, \phi` and writes
:math:`\theta, \phi`, exactly the memory traffic of SGD with momentum.

The gradient used above is the *effective* gradient
:math:`\hat g = \sigma g + \lambda' \theta` with :math:`\sigma = -1` under ``maximize`` and
:math:`\lambda'` the L2 coefficient (``weight_decay``, or ``weight_decay / beta`` for the authors'
decoupled form, see :class:`inna.INNA`). ``p.grad`` itself is never modified.

Implementations
---------------
``_single_tensor_inna``
    The reference: one tensor at a time, plain tensor arithmetic that mirrors the two lines above.
    It accepts a Tensor ``lr`` (also one that requires grad, for ``differentiable=True``) and is
    what ``torch.compile`` traces.
``_multi_tensor_inna``
    ``torch._foreach_*`` kernels over the tensors of one device and dtype (four passes).
``_c_loop_inna``
    One pass that reads :math:`\theta, g, \phi` and writes :math:`\theta, \phi`: the C loop of
    ``kernels/inna_kernels.c`` (:mod:`inna.torch._fused`), the reference's operations in their order and rounding,
    so bitwise its result; every hyperparameter is an argument of the loop. Elsewhere (CUDA, or no C compiler) the
    fused path is the reference compiled by ``torch.compile``.

:mod:`inna.torch._dispatch` picks the path and groups the tensors by device and dtype.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import formulas
from ..formulas import l2_coefficient
from . import _dispatch, _fused
from ._cbuild import Library

__all__ = ["initial_phase", "inna", "l2_coefficient", "phase_from_psi", "psi_from_phase"]


def initial_phase(
    param: Tensor,
    grad: Tensor,
    *,
    beta: float,
    initial_speed: float | None,
    l2: float = 0.0,
    maximize: bool = False,
) -> Tensor:
    r"""The phase :math:`\phi_0` that starts INNA with initial velocity :math:`-s\,\hat g_0`.

    From :math:`\psi_0 = (1 - \alpha\beta)\theta_0 + \beta(s - \beta)\hat g_0`, the phase is
    :math:`\phi_0 = (s - \beta)\,\hat g_0` (the :math:`\alpha` terms cancel exactly). ``initial_speed``
    ``None`` means :math:`s = \beta`, hence :math:`\phi_0 = 0` (the authors' PyTorch code); :math:`s = 1`
    makes the first step the SGD step :math:`\theta_1 = \theta_0 - \gamma_0\hat g_0` (the paper's
    Keras/TF code); :math:`s = 0` starts at rest. The result is detached and shaped like ``param``.
    """
    scale = formulas.initial_phase_scale(beta, initial_speed)
    if scale == 0:
        return torch.zeros_like(param, memory_format=torch.preserve_format)
    with torch.no_grad():
        g = grad.detach()
        if maximize:
            g = -g
        if l2 != 0:
            g = g.add(param.detach(), alpha=l2)
        return g.mul(scale).clone(memory_format=torch.preserve_format)


def psi_from_phase(param: Tensor, phase: Tensor, *, alpha: float, beta: float) -> Tensor:
    r"""The paper's auxiliary variable :math:`\psi = (1 - \alpha\beta)\theta + \beta\phi` (detached)."""
    return formulas.psi_from_phase(param.detach(), phase, alpha, beta)


def phase_from_psi(param: Tensor, psi: Tensor, *, alpha: float, beta: float) -> Tensor:
    r"""The phase :math:`\phi = (\alpha - 1/\beta)\theta + \psi/\beta` from the paper's :math:`\psi` (detached)."""
    return formulas.phase_from_psi(param.detach(), psi, alpha, beta)


def _single_tensor_inna(
    params: list[Tensor],
    grads: list[Tensor],
    phases: list[Tensor],
    lr: float | Tensor,
    *,
    alpha: float,
    beta: float,
    l2: float,
    maximize: bool,
) -> None:
    c = formulas.inna_coefficients(lr, alpha, beta)
    for param, grad, phase in zip(params, grads, phases):
        if torch.is_complex(param):
            param, grad, phase = torch.view_as_real(param), torch.view_as_real(grad), torch.view_as_real(phase)
        g = -grad if maximize else grad
        if l2 != 0:
            g = g + l2 * param
        # theta_{k+1} = theta_k - lr * (phase_k + beta * g_k), with the old phase (= theta_phase * phase_k +
        # theta_grad * g_k, written so that a differentiable lr never saves the phase it then updates in place)
        param.sub_(c.theta_phase * (phase + beta * g))
        # phase_{k+1} = (1 - lr * alpha) * phase_k + lr * (1 - alpha * beta) * g_k
        phase.mul_(c.phase_decay).add_(c.phase_grad * g)


def _multi_tensor_inna(
    params: list[Tensor],
    grads: list[Tensor],
    phases: list[Tensor],
    lr: float,
    *,
    alpha: float,
    beta: float,
    l2: float,
    maximize: bool,
) -> None:
    """The update with ``torch._foreach_*`` kernels, on tensors of one device and dtype."""
    sign = -1.0 if maximize else 1.0
    c = formulas.inna_coefficients(lr, alpha, beta)
    params, grads, phases = map(_dispatch.as_real, (params, grads, phases))
    if l2 != 0:
        # sign * (g + sign * l2 * theta) = sign * g + l2 * theta; the sign is folded into alpha below.
        grads = torch._foreach_add(grads, params, alpha=sign * l2)
    torch._foreach_add_(params, phases, alpha=-c.theta_phase)
    torch._foreach_add_(params, grads, alpha=-c.theta_grad * sign)
    torch._foreach_mul_(phases, c.phase_decay)
    torch._foreach_add_(phases, grads, alpha=c.phase_grad * sign)


def _c_loop_inna(
    lib: Library,
    lists: list[list[Tensor]],
    lr: float,
    hyper: dict[str, Any],
    grad_scale: Tensor | None,
    found_inf: Tensor | None,
) -> str | None:
    """The C loop on one group of plain CPU tensors (complex ones as real views); see :class:`_dispatch.Update`."""
    alpha, beta, l2 = hyper["alpha"], hyper["beta"], hyper["l2"]
    c = formulas.inna_coefficients(lr, alpha, beta)
    scalars = (-1.0 if hyper["maximize"] else 1.0, l2, beta, c.theta_phase, c.phase_decay, c.phase_grad)

    def reference(sub: list[list[Tensor]], _: list[float]) -> None:
        _single_tensor_inna(*sub, lr, **hyper)

    return _fused.elementwise_update(
        _fused.INNA_KERNEL,
        lib,
        lists,
        scalars,
        decay_on=l2 != 0,
        grad_scale=grad_scale,
        found_inf=found_inf,
        fallback=reference,
    )


def _fused_inna(
    params: list[Tensor],
    grads: list[Tensor],
    phases: list[Tensor],
    lr: float | Tensor,
    *,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
    warn: bool = False,
    **hyper: Any,
) -> None:
    """The fused path: the C loop on CPU, the reference compiled by torch.compile elsewhere."""
    _dispatch.run_fused(UPDATE, (params, grads, phases), lr, hyper, grad_scale, found_inf, warn)


#: INNA, as :mod:`inna.torch._dispatch` runs it.
UPDATE = _dispatch.Update(
    "INNA",
    ("params", "grads", "phases"),
    __name__,
    "_single_tensor_inna",
    "_multi_tensor_inna",
    "_fused_inna",
    _c_loop_inna,
)


def inna(
    params: list[Tensor],
    grads: list[Tensor],
    phases: list[Tensor],
    *,
    lr: float | Tensor,
    alpha: float,
    beta: float,
    masters: list[Tensor | None] | None = None,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    maximize: bool = False,
    foreach: bool | None = None,
    fused: bool | None = None,
    differentiable: bool = False,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
) -> None:
    r"""Apply one INNA step in place to ``params`` and their ``phases`` (see the module docstring).

    Args:
        params: parameters :math:`\theta_k`, updated in place.
        grads: their gradients :math:`g_k` (read only).
        phases: the INNA state :math:`\phi_k`, one per parameter, same shape and dtype, updated in place.
        lr: the step :math:`\gamma_k` (a float or a 1-element Tensor).
        alpha, beta: friction :math:`\alpha \ge 0` and Newtonian damping :math:`\beta > 0`.
        masters: optional high-precision copies of low-precision ``params`` (``None`` entries for the others):
            the update runs on the master copy (with the gradient upcast), then the parameter gets its rounding.
        weight_decay, decoupled_weight_decay: see :class:`inna.INNA`.
        maximize: ascend instead of descend (the gradient is negated out of place).
        foreach, fused: which implementation to use; both ``None`` picks, on CPU, the C loop where it builds
            (:mod:`inna.torch._dispatch`), else ``foreach`` unless ``differentiable`` or some tensor is not a plain
            dense tensor.
        differentiable: keep autograd recording through the update (reference path only).
        grad_scale, found_inf: ``torch.amp.GradScaler``'s fused route (1-element device tensors, never read on the
            host by the fused path): the gradients are unscaled by the scaler's inverse scale (and left unscaled
            in ``grads``, as the scaler's default route leaves them) and nothing changes when ``found_inf`` is
            nonzero. The other paths do the same the scaler's default way (one host read of ``found_inf``).
    """
    _dispatch.run(
        UPDATE,
        (params, grads, phases),
        lr=lr,
        hyper=dict(
            alpha=alpha, beta=beta, l2=l2_coefficient(weight_decay, beta, decoupled_weight_decay), maximize=maximize
        ),
        masters=masters,
        foreach=foreach,
        fused=fused,
        differentiable=differentiable,
        grad_scale=grad_scale,
        found_inf=found_inf,
    )
