r"""INNA and INNAprop for JAX, as optax gradient transformations (no PyTorch needed).

- :func:`inna` / :func:`scale_by_inna`: INNA (Castera, Bolte, Févotte, Pauwels, JMLR 2021);
- :func:`innaprop` / :func:`scale_by_innaprop`: INNAprop (Bolte, Boustany, Pauwels, Purica, 2024);
- :func:`power_decay`: the paper's :math:`\gamma_0/(k+1)^q` schedule.

Every transformation holds its learning rate (it enters the state update) and returns the full step, so it is
used like ``optax.sgd``::

    import jax, optax, inna.optax

    opt = inna.optax.inna(inna.optax.power_decay(0.1))
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, updates)

The math is :mod:`inna.formulas`, shared with the PyTorch and Keras optimizers; the tests hold all of them to the
same float64 reference.
"""

from __future__ import annotations

from ._inna import ScaleByInnaState, inna, scale_by_inna
from ._innaprop import ScaleByInnapropState, innaprop, scale_by_innaprop
from ._schedules import power_decay

__all__ = [
    "ScaleByInnaState",
    "ScaleByInnapropState",
    "inna",
    "innaprop",
    "power_decay",
    "scale_by_inna",
    "scale_by_innaprop",
]
