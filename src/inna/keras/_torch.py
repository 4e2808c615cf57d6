r"""The PyTorch backend's multi-tensor updates for :mod:`inna.keras` (imported only on that backend).

Keras steps a custom optimizer one variable at a time in Python (``update_step``), which on the PyTorch backend
costs several kernel launches and Python dispatches per variable. Keras's built-in optimizers replace that loop with
``torch._foreach_*`` kernels over all variables; these functions do better for INNA and INNAprop, computing the
same update as ``update_step`` (the tests prove the two equal in float64 and time both in
``benchmarks/keras_step_time.py``) through :mod:`inna.torch`'s dispatch: on CPU the C loop that :class:`inna.INNA`
and :class:`inna.INNAprop` run by default (one pass over memory), elsewhere ``torch._foreach_*`` kernels, the
tensors grouped by device and dtype there.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from keras import ops
from torch import Tensor

from ..formulas import rms_bias_correction
from ..torch import _dispatch
from ..torch._cbuild import Library
from ..torch.functional import inna as inna_update
from ..torch.innaprop import _c_loop_core, _foreach_core, _innaprop_core

__all__ = ["SHARED_COUNT_UPDATE", "STEPS", "inna_step", "innaprop_step"]


def _scalar(value: Any) -> float:
    # float() of the backend's tensor: NumPy 2's __array__ protocol would warn on every step
    return float(ops.convert_to_tensor(value))


def _as_dtype(grad: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return grad if grad.dtype == dtype else grad.to(dtype)


@torch.no_grad()
def inna_step(opt: Any, grads: list[Any], variables: list[Any], learning_rate: Any) -> None:
    """INNA's update (``INNA.update_step``) on all ``variables`` at once, one call per weight-decay value."""
    lr = _scalar(learning_rate)
    first = opt._initial_scale != 0.0 and int(_scalar(opt._step_count())) == 0
    buckets: dict[float, tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]] = defaultdict(
        lambda: ([], [], [])
    )
    for grad, variable in zip(grads, variables):
        theta = variable.value
        g = _as_dtype(grad, theta.dtype)
        phase = opt._phases[opt._get_variable_index(variable)].value
        wd = opt._decay_of(variable)
        if first:  # phi_0 = (s - beta) g_0, g_0 without the decoupled decay
            g0 = g if (wd == 0 or opt.decoupled_weight_decay) else g + wd * theta
            phase.copy_(g0 * opt._initial_scale)
        thetas, gs, phases = buckets[wd]
        thetas.append(theta)
        gs.append(g)
        phases.append(phase)
    for wd, (thetas, gs, phases) in buckets.items():
        inna_update(
            thetas,
            gs,
            phases,
            lr=lr,
            alpha=opt.alpha,
            beta=opt.beta,
            weight_decay=wd,
            decoupled_weight_decay=opt.decoupled_weight_decay,
        )  # foreach=None, fused=None: the C loop on CPU, foreach elsewhere


@torch.no_grad()
def innaprop_step(opt: Any, grads: list[Any], variables: list[Any], learning_rate: Any) -> None:
    """INNAprop's update (``INNAprop.update_step``) on all ``variables`` at once, one call per weight-decay value
    (Keras counts steps per optimizer, so every variable shares the bias correction)."""
    lr = _scalar(learning_rate)
    bias_correction = rms_bias_correction(opt.sigma, int(_scalar(opt._step_count())) + 1)
    hyper = dict(alpha=opt.alpha, beta=opt.beta, sigma=opt.sigma, eps=opt.epsilon, maximize=False)
    for wd, lists in _by_decay(opt, grads, variables).items():
        # foreach=None, fused=None: the C loop on CPU, foreach elsewhere
        _dispatch.run(
            SHARED_COUNT_UPDATE, lists, lr=lr, hyper={**hyper, "weight_decay": wd, "bias_correction": bias_correction}
        )


# ------------------------------------------------------------------ INNAprop with one step count for all tensors


def _shared_count_reference(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg_sqs: list[Tensor],
    phases: list[Tensor],
    lr: float | Tensor,
    *,
    bias_correction: float,
    **hyper: Any,
) -> None:
    _innaprop_core(params, grads, exp_avg_sqs, phases, lr, bias_correction, **hyper)


def _shared_count_foreach(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg_sqs: list[Tensor],
    phases: list[Tensor],
    lr: float,
    *,
    bias_correction: float,
    **hyper: Any,
) -> None:
    _foreach_core(params, grads, exp_avg_sqs, phases, lr, [1 / bias_correction] * len(params), **hyper)


def _shared_count_c_loop(
    lib: Library,
    lists: list[list[Tensor]],
    lr: float,
    hyper: dict[str, Any],
    grad_scale: Tensor | None,
    found_inf: Tensor | None,
) -> str | None:
    hyper = dict(hyper)
    correction = hyper.pop("bias_correction")
    return _c_loop_core(lib, lists, lr, [correction] * len(lists[0]), hyper, grad_scale, found_inf)


def _shared_count_fused(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg_sqs: list[Tensor],
    phases: list[Tensor],
    lr: float | Tensor,
    *,
    grad_scale: Tensor | None = None,
    found_inf: Tensor | None = None,
    warn: bool = False,
    **hyper: Any,
) -> None:
    lists = (params, grads, exp_avg_sqs, phases)
    _dispatch.run_fused(SHARED_COUNT_UPDATE, lists, lr, hyper, grad_scale, found_inf, warn)


#: INNAprop's update (:mod:`inna.torch.innaprop`'s core) for tensors that share one step count, given as the
#: hyperparameter ``bias_correction`` (:func:`inna.formulas.rms_bias_correction` of the count): Keras counts steps
#: per optimizer. Lists (params, grads, exp_avg_sqs, phases).
SHARED_COUNT_UPDATE = _dispatch.Update(
    "INNAprop",
    ("params", "grads", "exp_avg_sqs", "phases"),
    __name__,
    "_shared_count_reference",
    "_shared_count_foreach",
    "_shared_count_fused",
    _shared_count_c_loop,
)


def _by_decay(opt: Any, grads: list[Any], variables: list[Any]) -> dict[float, tuple[list[torch.Tensor], ...]]:
    """(θ, g, v, φ) lists of the variables, by their weight decay."""
    out: dict[float, tuple[list[torch.Tensor], ...]] = defaultdict(lambda: ([], [], [], []))
    for grad, variable in zip(grads, variables):
        theta = variable.value
        index = opt._get_variable_index(variable)
        lists = out[opt._decay_of(variable)]
        for lst, t in zip(lists, (theta, _as_dtype(grad, theta.dtype), opt._second_moments[index].value,
                                  opt._phases[index].value)):  # fmt: skip
            lst.append(t)
    return out


#: The multi-tensor step of each optimizer class, by class name.
STEPS = {"INNA": inna_step, "INNAprop": innaprop_step}
