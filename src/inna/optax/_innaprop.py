r"""INNAprop as an optax gradient transformation: :func:`scale_by_innaprop` (the step) and :func:`innaprop`.

INNAprop (Bolte, Boustany, Pauwels, Purica, 2024) is INNA's step on the RMSprop-scaled gradient, after an
AdamW-style decoupled decay. At step :math:`t = k + 1`:

.. math::

    \begin{aligned}
    &v_t = \sigma v_{t-1} + (1 - \sigma)\,g_t^2, \qquad D_t = \sqrt{v_t}\,/\sqrt{1 - \sigma^t} + \varepsilon,
        \qquad u_t = g_t / D_t \\
    &\tilde\phi = \phi + \gamma\lambda(\tfrac1\beta - \alpha)\,\theta, \qquad
        \tilde\theta = (1 - \gamma\lambda)\,\theta \\
    &\theta \leftarrow \tilde\theta - \gamma\tilde\phi - \gamma\beta\,u_t, \qquad
        \phi \leftarrow (1 - \gamma\alpha)\,\tilde\phi + \gamma(1 - \alpha\beta)\,u_t
    \end{aligned}

with :math:`\phi_0 = 0`. :math:`\tilde\phi` is the exact phase of the decayed point
(:func:`inna.formulas.innaprop_decay_phase_shift`), so these are the official code's iterates (its ψ-form, with
:math:`\psi_0 = (1 - \alpha\beta)\theta_0`), without its :math:`\gamma = \beta` division.
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

__all__ = ["ScaleByInnapropState", "innaprop", "scale_by_innaprop"]

_NAME = "INNAprop"

_RANGES: dict[str, tuple] = {
    "learning_rate": (lambda v: v >= 0, "0 <= learning_rate < inf or a schedule"),
    "alpha": (lambda v: v >= 0, "0 <= alpha < inf"),
    "beta": (lambda v: v > 0, "0 < beta < inf"),
    "sigma": (lambda v: 0 <= v < 1, "0 <= sigma < 1"),
    "eps": (lambda v: v >= 0, "0 <= eps < inf"),
    "weight_decay": (lambda v: v >= 0, "0 <= weight_decay < inf"),
}


class ScaleByInnapropState(NamedTuple):
    r"""The state of :func:`scale_by_innaprop` and :func:`innaprop` (pytrees shaped and typed like the params)."""

    count: jax.Array  #: int32 scalar, the number of steps taken (the schedule's argument; :math:`t - 1`)
    phase: optax.Updates  #: :math:`\phi`, INNA's phase on the scaled gradient (the official :math:`\psi` is
    #: :math:`(1 - \alpha\beta)\theta + \beta\phi`)
    nu: optax.Updates  #: :math:`v`, the second moment (the official ``exp_avg_sq``)


def _scaled_gradient(g: jax.Array, nu: jax.Array, sigma: Any, correction: Any, eps: Any) -> tuple[jax.Array, ...]:
    """``(u, v_new)``: the RMSprop scaling of ``g``, per real component (a complex leaf is a pair of reals, as
    every inna implementation treats it)."""
    if jnp.iscomplexobj(g):
        re_u, re_nu = _scaled_gradient(g.real, nu.real, sigma, correction, eps)
        im_u, im_nu = _scaled_gradient(g.imag, nu.imag, sigma, correction, eps)
        return jax.lax.complex(re_u, im_u), jax.lax.complex(re_nu, im_nu)
    nu = sigma * nu + (1 - sigma) * (g * g)
    return g / (jnp.sqrt(nu) * correction + eps), nu


def _transformation(
    learning_rate: optax.ScalarOrSchedule,
    alpha: Any,
    beta: Any,
    sigma: Any,
    eps: Any,
    weight_decay: Any,
    mask: Any,
) -> optax.GradientTransformationExtraArgs:
    decays = not is_static_zero(weight_decay)

    def init_fn(params: optax.Params) -> ScaleByInnapropState:
        return ScaleByInnapropState(
            count=jnp.zeros([], jnp.int32), phase=optax.tree.zeros_like(params), nu=optax.tree.zeros_like(params)
        )

    def update_fn(
        updates: optax.Updates, state: ScaleByInnapropState, params: optax.Params | None = None, **extra_args: Any
    ) -> tuple[optax.Updates, ScaleByInnapropState]:
        del extra_args  # optax's calling convention (e.g. value=loss): accepted, not needed by the step
        if decays and params is None:
            raise ValueError(NO_PARAMS_MSG)
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        if decays:
            rates = decay_rates(weight_decay, mask, params)
        else:
            params, rates = updates, jax.tree.map(lambda _: 0.0, updates)

        def leaf(g: jax.Array, phase: jax.Array, nu: jax.Array, theta: jax.Array, wd: Any) -> tuple[jax.Array, ...]:
            dtype = compute_dtype(g.dtype)
            real = real_dtype(dtype)
            step_size = jnp.asarray(lr, real)  # an optax schedule gives float32: cast before any product
            c = formulas.inna_coefficients(step_size, alpha, beta)
            step = (state.count + 1).astype(real)  # t = 1, 2, ...
            u, new_nu = _scaled_gradient(
                g.astype(dtype),
                nu.astype(dtype),
                jnp.asarray(sigma, real),
                formulas.rms_bias_correction(jnp.asarray(sigma, real), step, expm1=jnp.expm1, log=jnp.log),
                jnp.asarray(eps, real),
            )
            phi = phase.astype(dtype)
            update = -c.theta_grad * u
            if not is_static_zero(wd):
                theta = theta.astype(dtype)
                # the decay theta <- (1 - lr wd) theta, and its exact effect on the phase (theta read before it)
                phi = phi + formulas.innaprop_decay_phase_shift(step_size, wd, alpha, beta) * theta
                update = update - step_size * wd * theta
            update = update - c.theta_phase * phi  # - lr phi~ - lr beta u (- lr wd theta)
            new_phase = c.phase_decay * phi + c.phase_grad * u  # (1 - lr alpha) phi~ + lr (1 - alpha beta) u
            return update.astype(g.dtype), new_phase.astype(phase.dtype), new_nu.astype(nu.dtype)

        triples = jax.tree.map(leaf, updates, state.phase, state.nu, params, rates)
        new_updates, phase, nu = unzip(triples, updates, 3)
        return new_updates, ScaleByInnapropState(count=optax.safe_increment(state.count), phase=phase, nu=nu)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_innaprop(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    alpha: float = 0.1,
    beta: float = 0.9,
    *,
    sigma: float = 0.999,
    eps: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
    r"""The INNAprop step without weight decay, learning rate included (a building block; see :func:`innaprop`).

    It never needs ``params``. Its updates are the full step :math:`\theta_{k+1} - \theta_k`: do not follow it by
    :func:`optax.scale_by_learning_rate`.

    Returns:
        An :class:`optax.GradientTransformationExtraArgs` with state :class:`ScaleByInnapropState`.
    """
    values = dict(learning_rate=learning_rate, alpha=alpha, beta=beta, sigma=sigma, eps=eps, weight_decay=0.0)
    check_hyperparameters(_NAME, values, _RANGES)
    warn_if_unstable(_NAME, learning_rate, alpha, beta, stacklevel=2)
    return _transformation(learning_rate, alpha, beta, sigma, eps, 0.0, None)


def innaprop(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    alpha: float = 0.1,
    beta: float = 0.9,
    *,
    sigma: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.01,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""INNAprop (Bolte, Boustany, Pauwels, Purica, 2024) for optax: INNA on the RMSprop-scaled gradient, with
    AdamW-style decoupled weight decay. The official defaults and semantics (see the module docstring).

    Args:
        learning_rate: the step :math:`\gamma`, a float or a schedule ``count -> value`` (the authors use the
            AdamW learning rate and schedule, e.g. :func:`optax.warmup_cosine_decay_schedule`).
        alpha: friction :math:`\alpha \ge 0` (default 0.1). The authors' pairs :math:`(\alpha, \beta)`:
            (0.1, 0.9) (default), (1, 1), (2, 2).
        beta: Newtonian damping :math:`\beta > 0` (default 0.9). :math:`\gamma \ge \beta` is legal here (the
            phase form has no :math:`\gamma = \beta` singularity) but breaks the stability rule: a constant such
            learning rate warns (:class:`inna.INNAStabilityWarning`).
        sigma: the second-moment decay :math:`\sigma \in [0, 1)` (default 0.999; the authors use 0.99 for
            language-model pre-training).
        eps: :math:`\varepsilon \ge 0`, added outside the square root (default 1e-8).
        weight_decay: :math:`\lambda \ge 0` (default 0.01, the official INNAprop default), applied as
            :math:`\theta \leftarrow (1 - \gamma\lambda)\theta` before the step (its effect on the phase is
            exact). It is 100 times :func:`optax.adamw`'s default (1e-4): the decay moves the end point away from
            the objective's minimum (see docs/optax.md); pass ``weight_decay=1e-4`` to compare with a default
            ``adamw``, or 0 to turn it off.
        mask: which leaves are decayed, as in :func:`optax.add_decayed_weights` (a pytree of booleans or a
            callable returning one from the params; a callable mask goes in ``static_args`` of
            :func:`optax.inject_hyperparams`).

    Returns:
        An :class:`optax.GradientTransformationExtraArgs` with state :class:`ScaleByInnapropState`. ``update`` needs
        ``params`` unless ``weight_decay`` is a static 0.

    To maximize, ``optax.chain(optax.scale(-1.0), innaprop(...))``. Complex params are scaled per real component
    (as a pair of reals). The state (phase and ``nu``) has the params' dtype; half-precision leaves are computed
    in float32 and rounded once.
    """
    values = dict(learning_rate=learning_rate, alpha=alpha, beta=beta, sigma=sigma, eps=eps, weight_decay=weight_decay)
    check_hyperparameters(_NAME, values, _RANGES)
    warn_if_unstable(_NAME, learning_rate, alpha, beta, stacklevel=2)
    return _transformation(learning_rate, alpha, beta, sigma, eps, weight_decay, mask)
