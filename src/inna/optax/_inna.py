r"""INNA as an optax gradient transformation: :func:`scale_by_inna` (the step) and :func:`inna` (with weight decay).

INNA (Castera, Bolte, Févotte, Pauwels, JMLR 2021) is the explicit Euler scheme of the first-order lifting of DIN.
In the phase form of :mod:`inna.formulas` (the same iterates as the paper's :math:`(\theta, \psi)` form) one step
with gradient :math:`g_k` is

.. math::

    \theta_{k+1} = \theta_k - \gamma_k\phi_k - \gamma_k\beta\, g_k, \qquad
    \phi_{k+1} = (1 - \gamma_k\alpha)\,\phi_k + \gamma_k(1 - \alpha\beta)\, g_k .

The step size :math:`\gamma_k` enters the state update, so it lives inside the transformation (as in
:func:`optax.contrib.scale_by_madgrad`); the returned updates are :math:`\theta_{k+1} - \theta_k`, ready for
:func:`optax.apply_updates`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from .. import formulas
from ._common import (
    NO_PARAMS_MSG,
    check_hyperparameters,
    compute_dtype,
    decay_rates,
    is_static_zero,
    real_dtype,
    unzip,
    warn_if_unstable,
)

__all__ = ["ScaleByInnaState", "inna", "scale_by_inna"]

_NAME = "INNA"


class ScaleByInnaState(NamedTuple):
    r"""The state of :func:`scale_by_inna` and :func:`inna`.

    ``phase`` is :math:`\phi = (\alpha - 1/\beta)\theta + \psi/\beta`, shaped and typed like the params (the
    paper's :math:`\psi = (1 - \alpha\beta)\theta + \beta\phi`, see :func:`inna.formulas.psi_from_phase`).
    """

    count: jax.Array  #: int32 scalar, the number of steps taken (the schedule's argument)
    phase: optax.Updates  #: :math:`\phi_k`, a pytree like the params


def _inna_ranges(initial_speed: Any) -> dict[str, tuple]:
    ranges: dict[str, tuple] = {
        "learning_rate": (lambda v: v >= 0, "0 <= learning_rate < inf or a schedule"),
        "alpha": (lambda v: v >= 0, "0 <= alpha < inf"),
        "beta": (lambda v: v > 0, "0 < beta < inf"),
        "weight_decay": (lambda v: v >= 0, "0 <= weight_decay < inf"),
    }
    if initial_speed is not None:
        ranges["initial_speed"] = (lambda v: v >= 0, "0 <= initial_speed < inf or None")
    return ranges


def _initial_phase_scale(beta: Any, initial_speed: Any) -> Any:
    """:func:`inna.formulas.initial_phase_scale`, or ``None`` when :math:`\\phi_0 = 0` is known statically."""
    if initial_speed is None:
        return None
    if isinstance(initial_speed, (int, float)):
        scale = formulas.initial_phase_scale(beta, initial_speed)
    else:  # a jax.Array (inject_hyperparams): the same s - beta, without float()
        scale = initial_speed - beta
    return None if is_static_zero(scale) else scale


def _l2_coefficient(weight_decay: Any, beta: Any, decoupled_weight_decay: bool) -> Any:
    """:func:`inna.formulas.l2_coefficient`, also for an array ``weight_decay`` (it is linear in it)."""
    if isinstance(weight_decay, (int, float)):
        return formulas.l2_coefficient(weight_decay, beta, decoupled_weight_decay)
    return weight_decay * formulas.l2_coefficient(1.0, beta, decoupled_weight_decay)


def _transformation(
    learning_rate: optax.ScalarOrSchedule,
    alpha: Any,
    beta: Any,
    initial_speed: Any,
    weight_decay: Any,
    decoupled_weight_decay: bool,
    mask: Any,
) -> optax.GradientTransformationExtraArgs:
    decays = not is_static_zero(weight_decay)

    def init_fn(params: optax.Params) -> ScaleByInnaState:
        return ScaleByInnaState(count=jnp.zeros([], jnp.int32), phase=optax.tree.zeros_like(params))

    def update_fn(
        updates: optax.Updates, state: ScaleByInnaState, params: optax.Params | None = None, **extra_args: Any
    ) -> tuple[optax.Updates, ScaleByInnaState]:
        del extra_args  # optax's calling convention (e.g. value=loss): accepted, not needed by the step
        if decays and params is None:
            raise ValueError(NO_PARAMS_MSG)
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        init_scale = _initial_phase_scale(beta, initial_speed)
        first = state.count == 0
        if decays:
            rates = decay_rates(_l2_coefficient(weight_decay, beta, decoupled_weight_decay), mask, params)
        else:
            params, rates = updates, jax.tree.map(lambda _: 0.0, updates)

        def leaf(g: jax.Array, phase: jax.Array, theta: jax.Array, l2: Any) -> tuple[jax.Array, jax.Array]:
            dtype = compute_dtype(g.dtype)
            # the coefficients in the leaf's precision, from the lr cast first (an optax schedule gives float32)
            c = formulas.inna_coefficients(jnp.asarray(lr, real_dtype(dtype)), alpha, beta)
            g_hat = g.astype(dtype)
            phi = phase.astype(dtype)
            if not is_static_zero(l2):
                l2_term = jnp.asarray(l2, real_dtype(dtype)) * theta.astype(dtype)
            if init_scale is not None:
                # phi_0 = (s - beta) g_0 with g_0 the objective's gradient: it includes the L2 term, not the
                # authors' decoupled decay (as inna.INNA does)
                g0 = g_hat if decoupled_weight_decay or is_static_zero(l2) else g_hat + l2_term
                phi = jnp.where(first, jnp.asarray(init_scale, real_dtype(dtype)) * g0, phi)
            if not is_static_zero(l2):
                g_hat = g_hat + l2_term
            update = -(c.theta_phase * phi + c.theta_grad * g_hat)  # theta_{k+1} - theta_k = -lr phi_k - lr beta g_k
            new_phase = c.phase_decay * phi + c.phase_grad * g_hat  # (1 - lr alpha) phi_k + lr (1 - alpha beta) g_k
            return update.astype(g.dtype), new_phase.astype(phase.dtype)

        pairs = jax.tree.map(leaf, updates, state.phase, params, rates)
        new_updates, phase = unzip(pairs, updates, 2)
        return new_updates, ScaleByInnaState(count=optax.safe_increment(state.count), phase=phase)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_inna(
    learning_rate: optax.ScalarOrSchedule,
    alpha: float = 0.5,
    beta: float = 0.1,
    *,
    initial_speed: float | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""The INNA step on the incoming updates, learning rate included (a building block; see :func:`inna`).

    It never needs ``params``, so it composes after any transformation of the gradient, e.g.
    ``optax.chain(optax.clip_by_global_norm(1.0), scale_by_inna(0.1))``. Its updates are the full step
    :math:`\theta_{k+1} - \theta_k`: do not follow it by :func:`optax.scale_by_learning_rate`.

    Args:
        learning_rate: the step :math:`\gamma_k`, a float or a schedule ``count -> value`` (e.g.
            :func:`inna.optax.power_decay`).
        alpha, beta, initial_speed: as in :func:`inna`.

    Returns:
        An :class:`optax.GradientTransformationExtraArgs` with state :class:`ScaleByInnaState`.
    """
    check_hyperparameters(
        _NAME,
        dict(learning_rate=learning_rate, alpha=alpha, beta=beta, initial_speed=initial_speed, weight_decay=0.0),
        _inna_ranges(initial_speed),
    )
    warn_if_unstable(_NAME, learning_rate, alpha, beta, stacklevel=2)
    return _transformation(learning_rate, alpha, beta, initial_speed, 0.0, False, None)


def inna(
    learning_rate: optax.ScalarOrSchedule,
    alpha: float = 0.5,
    beta: float = 0.1,
    *,
    initial_speed: float | None = None,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""INNA, the Inertial Newton Algorithm of Castera, Bolte, Févotte and Pauwels (JMLR 2021), for optax.

    The same algorithm, defaults and options as the PyTorch :class:`inna.INNA`, to float64 round-off:

    .. math::

        \begin{aligned}
        &\hat g_k = g_k + \lambda'\theta_k \quad (\lambda' = \lambda, \text{ or } \lambda/\beta
            \text{ if decoupled}) \\
        &\phi_0 = (s - \beta)\,\bar g_0 \quad (\bar g_0 = g_0 + \lambda\theta_0, \text{ or } g_0
            \text{ if decoupled};\ \phi_0 = 0 \text{ if } s \text{ is None}) \\
        &\theta_{k+1} = \theta_k - \gamma_k\phi_k - \gamma_k\beta\,\hat g_k \\
        &\phi_{k+1} = (1 - \gamma_k\alpha)\,\phi_k + \gamma_k(1 - \alpha\beta)\,\hat g_k
        \end{aligned}

    i.e. the paper's :math:`\theta_{k+1} = \theta_k + \gamma_k[(\frac1\beta - \alpha)\theta_k - \frac1\beta\psi_k
    - \beta g_k]`, :math:`\psi_{k+1} = \psi_k + \gamma_k[(\frac1\beta - \alpha)\theta_k - \frac1\beta\psi_k]` in
    the phase :math:`\phi = (\alpha - 1/\beta)\theta + \psi/\beta`. :math:`\phi_0` is set inside the first
    ``update`` (``init`` has no gradient), with a ``jnp.where`` on the step count, so a jitted step traces once.

    Args:
        learning_rate: the step :math:`\gamma_k`, a float or a schedule ``count -> value``. The paper decays it
            as :math:`\gamma_0/\sqrt{k+1}`: :func:`inna.optax.power_decay`.
        alpha: friction :math:`\alpha \ge 0` (default 0.5).
        beta: Newtonian damping :math:`\beta > 0` (default 0.1).
        initial_speed: :math:`s \ge 0` in :math:`\dot\theta_0 = -s\,\bar g_0`. ``None`` (default) means
            :math:`s = \beta`, :math:`\psi_0 = (1 - \alpha\beta)\theta_0` (the authors' PyTorch code); ``1.0`` makes
            the first step the SGD step (the paper's Keras/TF code); ``0.0`` starts at rest. Needs no params.
        weight_decay: :math:`\lambda \ge 0` (default 0): INNA on :math:`J + \frac\lambda2\|\theta\|^2`.
        decoupled_weight_decay: shrink :math:`\theta` by :math:`\gamma_k\lambda\theta_k` each step and leave
            :math:`\psi` untouched (the authors' PyTorch code), exactly the L2 form with :math:`\lambda/\beta`.
        mask: which leaves are decayed: a pytree of booleans like the params (or a prefix of it), or a callable
            returning one from the params, as in :func:`optax.add_decayed_weights`. Under
            :func:`optax.inject_hyperparams` pass a callable mask in ``static_args``.

    Returns:
        An :class:`optax.GradientTransformationExtraArgs` with state :class:`ScaleByInnaState`. ``update`` needs
        ``params`` when ``weight_decay`` is not a static 0 (an array weight decay, as
        :func:`optax.inject_hyperparams` makes, counts as nonzero).

    To maximize, negate the gradient first: ``optax.chain(optax.scale(-1.0), inna(...))`` (the PyTorch
    ``maximize=True``). Complex params are updated as pairs of reals (as :class:`inna.INNA` does).
    The state has the params' dtype (bf16 params keep a bf16 phase); half-precision leaves are computed in
    float32 and rounded once.
    """
    check_hyperparameters(
        _NAME,
        dict(
            learning_rate=learning_rate,
            alpha=alpha,
            beta=beta,
            initial_speed=initial_speed,
            weight_decay=weight_decay,
        ),
        _inna_ranges(initial_speed),
    )
    warn_if_unstable(_NAME, learning_rate, alpha, beta, stacklevel=2)
    return _transformation(learning_rate, alpha, beta, initial_speed, weight_decay, decoupled_weight_decay, mask)
