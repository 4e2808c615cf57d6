r"""Step-size schedules for INNA in optax form (``count -> value``)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import optax

from ..formulas import check_power_decay_args, power_decay_factor

__all__ = ["power_decay"]


def power_decay(init_value: float, power: float = 0.5, *, scale: float = 1.0) -> optax.Schedule:
    r"""The power decay :math:`\gamma_k = \gamma_0 / (1 + c\,k)^q` as an optax schedule (:math:`k` = ``count``).

    With the defaults (:math:`q = 1/2`, :math:`c = 1`) it is the paper's :math:`\gamma_0/\sqrt{k+1}` per iteration,
    the JAX twin of :class:`inna.PowerDecayLR` (same values at the same step). INNA's convergence theory needs only
    :math:`\sum_k\gamma_k = \infty` and :math:`\gamma_k = o(1/\log k)`, true for every :math:`q \in (0, 1]`;
    ``power=0`` is a constant. ``scale`` stretches the clock (``1/steps_per_epoch`` decays per epoch, smoothly).
    The factor is :func:`inna.formulas.power_decay_factor`. Not :func:`optax.polynomial_schedule`, which is
    :math:`(\gamma_0 - \gamma_T)(1 - k/T)^p + \gamma_T`.

    Args:
        init_value: :math:`\gamma_0 \ge 0`.
        power: :math:`q \ge 0` (default 0.5).
        scale: :math:`c \ge 0` (default 1.0).
    """
    check_power_decay_args("power_decay", init_value=init_value, power=power, scale=scale)

    def schedule(count: Any) -> Any:
        k = jnp.asarray(count, dtype=jnp.result_type(float))  # float64 under jax_enable_x64, float32 otherwise
        return init_value * power_decay_factor(k, power, scale)

    return schedule
