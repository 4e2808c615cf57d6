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
    ``torch._foreach_*`` kernels over all tensors of one device and dtype at once (four passes).
``_fused_inna``
    One pass that reads :math:`\theta, g, \phi` and writes :math:`\theta, \phi`, through
    :func:`inna.torch._fused.elementwise_update`: on CPU a C loop printed from the reference's ``make_fx``
    trace (bitwise the reference's result; the CPU default when a C compiler is found), elsewhere the reference
    compiled by ``torch.compile``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import torch
from torch import Tensor

from .. import formulas
from ..formulas import l2_coefficient
from . import _fused

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


def _as_real(tensors: list[Tensor]) -> list[Tensor]:
    return [torch.view_as_real(t) if torch.is_complex(t) else t for t in tensors]


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


def _group_by_device_and_dtype(*lists: list[Tensor]) -> list[tuple[list[Tensor], ...]]:
    """The lists split by the device and dtype of the first list's tensors (one group, copied, in the common
    case where they all share them)."""
    if lists and lists[0] and _fused.same_device_and_dtype(lists[0]):
        return [tuple(list(ts) for ts in lists)]
    groups: dict[tuple[torch.device, torch.dtype], tuple[list[Tensor], ...]] = defaultdict(
        lambda: tuple([] for _ in lists)
    )
    for items in zip(*lists):
        bucket = groups[(items[0].device, items[0].dtype)]
        for out, item in zip(bucket, items):
            out.append(item)
    return list(groups.values())


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
    sign = -1.0 if maximize else 1.0
    c = formulas.inna_coefficients(lr, alpha, beta)
    for dev_params, dev_grads, dev_phases in _group_by_device_and_dtype(params, grads, phases):
        dev_params, dev_grads, dev_phases = _as_real(dev_params), _as_real(dev_grads), _as_real(dev_phases)
        if l2 != 0:
            # sign * (g + sign * l2 * theta) = sign * g + l2 * theta; the sign is folded into alpha below.
            dev_grads = torch._foreach_add(dev_grads, dev_params, alpha=sign * l2)
        torch._foreach_add_(dev_params, dev_phases, alpha=-c.theta_phase)
        torch._foreach_add_(dev_params, dev_grads, alpha=-c.theta_grad * sign)
        torch._foreach_mul_(dev_phases, c.phase_decay)
        torch._foreach_add_(dev_phases, dev_grads, alpha=c.phase_grad * sign)


def _fused_inna(
    params: list[Tensor],
    grads: list[Tensor],
    phases: list[Tensor],
    lr: float | Tensor,
    *,
    alpha: float,
    beta: float,
    l2: float,
    maximize: bool,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
) -> None:
    # One call per (device, dtype) group: on CPU a C loop printed from the reference's trace (bitwise equal to
    # it), elsewhere the reference compiled by torch.compile; see inna.torch._fused.
    _fused.elementwise_update(
        _single_tensor_inna,
        (params, grads, phases),
        (lr,),
        static=dict(alpha=alpha, beta=beta, l2=l2, maximize=maximize),
        grad_index=1,
        grad_scale=grad_scale,
        found_inf=found_inf,
    )


def amp_default_route(grads: list[Tensor], grad_scale: Tensor | None, found_inf: Tensor | None) -> bool:
    """``torch.amp.GradScaler``'s default route on ``grads``: unscale them in place by the scaler's inverse scale;
    return True when ``found_inf`` says the step must be skipped (a host read of ``found_inf``)."""
    return _fused._unscale_and_check(grads, grad_scale, found_inf)


def amp_scalars(grad_scale: Tensor | None, found_inf: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """GradScaler's ``grad_scale`` and ``found_inf`` as 0-dim tensors (they may come as any 1-element shape)."""
    out = []
    for name, t in (("grad_scale", grad_scale), ("found_inf", found_inf)):
        if t is not None and t.dim() != 0:
            if t.numel() != 1:
                raise ValueError(f"{name} must be a 1-element tensor, got shape {tuple(t.shape)}")
            t = t.reshape(())
        out.append(t)
    return out[0], out[1]


def _amp_prologue(
    grads: list[Tensor],
    masters: list[Tensor | None] | None,
    fused: bool | None,
    grad_scale: Tensor | None,
    found_inf: Tensor | None,
) -> tuple[bool, Tensor | None, Tensor | None]:
    """What a functional update does with GradScaler's inputs before it runs: ``(skip, grad_scale, found_inf)``.

    The fused path takes them into its kernel; the others take the scaler's default route here (unscale in place,
    skip on an inf). Master copies are unscaled here too, before the upcast, in the gradients' own dtype, as the
    scaler's default route does. Both may have any 1-element shape, as for torch's fused optimizers."""
    grad_scale, found_inf = amp_scalars(grad_scale, found_inf)
    if not fused and (grad_scale is not None or found_inf is not None):
        if amp_default_route(grads, grad_scale, found_inf):
            return True, None, None
        return False, None, None
    if grad_scale is not None and masters is not None and any(m is not None for m in masters):
        torch._foreach_mul_(grads, grad_scale.double().reciprocal().float().to(grads[0].device))
        grad_scale = None
    return False, grad_scale, found_inf


def _lr_value(lr: float | Tensor, keep_tensor: bool) -> float | Tensor:
    if isinstance(lr, Tensor):
        if keep_tensor:
            return lr.reshape(())
        return lr.item()
    return lr


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
            (:mod:`inna.torch._fused`), else ``foreach`` unless ``differentiable`` or some tensor is not a plain
            dense tensor.
        differentiable: keep autograd recording through the update (reference path only).
        grad_scale, found_inf: ``torch.amp.GradScaler``'s fused route (device tensors, never read on the host by
            the fused path): the gradients are unscaled by the scaler's inverse scale (and left unscaled in
            ``grads``, as the scaler's default route leaves them) and nothing changes when ``found_inf`` is
            nonzero. The other paths do the same the scaler's default way (one host read of ``found_inf``).
    """
    if not (len(params) == len(grads) == len(phases)):
        raise ValueError(
            f"INNA: params, grads and phases must have the same length, got {len(params)}, {len(grads)}, {len(phases)}"
        )
    if foreach and fused:
        raise RuntimeError("INNA: `fused` and `foreach` cannot both be True")
    if differentiable and (foreach or fused):
        raise RuntimeError("INNA: `differentiable=True` is only supported by the single-tensor path")
    if not params:
        return
    skip, grad_scale, found_inf = _amp_prologue(grads, masters, fused, grad_scale, found_inf)
    if skip:
        return
    targets, target_grads = _master_targets(params, grads, masters)
    _dispatch(
        targets,
        target_grads,
        phases,
        lr=lr,
        alpha=alpha,
        beta=beta,
        l2=l2_coefficient(weight_decay, beta, decoupled_weight_decay),
        maximize=maximize,
        foreach=foreach,
        fused=fused,
        differentiable=differentiable,
        grad_scale=grad_scale,
        found_inf=found_inf,
    )
    _write_back(params, targets, masters)


def _master_targets(
    params: list[Tensor], grads: list[Tensor], masters: list[Tensor | None] | None
) -> tuple[list[Tensor], list[Tensor]]:
    """What the update runs on: each parameter, or its master copy (with the gradient upcast) where it has one."""
    if masters is None or masters.count(None) == len(masters):
        return params, grads
    for p, m in zip(params, masters):
        if m is not None:
            # Adopt, element by element, what was written into the parameter outside the optimizer since
            # the last step (model.load_state_dict, an EMA swap, ...): no host sync, one extra pass.
            m.copy_(torch.where(p == m.to(p.dtype), m, p.to(m.dtype)))
    targets = [p if m is None else m for p, m in zip(params, masters)]
    return targets, [g if m is None else g.to(m.dtype) for g, m in zip(grads, masters)]


def _write_back(params: list[Tensor], targets: list[Tensor], masters: list[Tensor | None] | None) -> None:
    """Round the updated master copies into their low-precision parameters."""
    if targets is not params:
        for p, m in zip(params, masters):
            if m is not None:
                p.copy_(m)


def _dispatch(
    params: list[Tensor],
    grads: list[Tensor],
    phases: list[Tensor],
    *,
    lr: float | Tensor,
    alpha: float,
    beta: float,
    l2: float,
    maximize: bool,
    foreach: bool | None,
    fused: bool | None,
    differentiable: bool,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
) -> None:
    compiling = torch.compiler.is_compiling()
    kwargs = dict(alpha=alpha, beta=beta, l2=l2, maximize=maximize)
    fused, foreach = _choose_path(params, foreach, fused, differentiable, _single_tensor_inna, (3, 1), kwargs)
    if fused:
        lr_ = _lr_value(lr, keep_tensor=True)
        _fused_inna(params, grads, phases, lr_, grad_scale=grad_scale, found_inf=found_inf, **kwargs)
    elif foreach and not compiling:
        _multi_tensor_inna(params, grads, phases, _lr_value(lr, keep_tensor=False), **kwargs)
    else:
        # Under torch.compile the reference is traced (inductor fuses it); a Tensor lr stays a Tensor
        # there and when it requires grad, so the step has no host sync and no recompilation.
        keep = compiling or (isinstance(lr, Tensor) and lr.requires_grad)
        _single_tensor_inna(params, grads, phases, _lr_value(lr, keep_tensor=keep), **kwargs)


def _choose_path(
    params: list[Tensor],
    foreach: bool | None,
    fused: bool | None,
    differentiable: bool,
    reference: Callable[..., None],
    arity: tuple[int, int],
    static: dict,
) -> tuple[bool, bool]:
    """``(fused, foreach)`` for a call given the user's ``foreach`` and ``fused``, for an update whose C loop is
    printed from ``reference`` (with ``arity`` = (lists, scalars) and ``static`` constants).

    The default (both None) on CPU is the C loop, when this machine can build it for every dtype at hand (the
    reference's arithmetic at the cost of one pass over memory); otherwise, on other devices, with
    ``differentiable`` and inside ``torch.compile``, it is foreach where foreach applies, else the reference.
    """
    if foreach is None and fused is None and not differentiable and not torch.compiler.is_compiling():
        fused = _cpu_kernel_applies(params, reference, arity, static)
    if foreach is None and not fused:
        foreach = not differentiable and all(type(t) in _foreach_types() for t in params)
    return bool(fused), bool(foreach)


def _cpu_kernel_applies(
    params: list[Tensor], reference: Callable[..., None], arity: tuple[int, int], static: dict
) -> bool:
    """Every tensor is a plain CPU tensor and the C loop of ``reference`` builds for each of their dtypes."""
    if not (set(map(type, params)) <= _fused._PLAIN_SET and all(map(_fused._IS_CPU, params))):
        return False
    dtypes = {d.to_real() for d in set(map(_fused._DTYPE, params))}  # complex tensors run as their real views
    return all(_fused.c_kernel_available(reference, arity, dtype, static) for dtype in dtypes)


def _foreach_types() -> tuple[type, ...]:
    # torch.distributed.tensor appends DTensor to this list when imported; read it at call time.
    from torch.optim.optimizer import _foreach_supported_types

    return tuple(_foreach_supported_types)
