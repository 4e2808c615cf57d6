r"""What the INNA and INNAprop transformations share: hyperparameter checks, the weight-decay mask, dtypes.

Hyperparameters arrive in three forms. Python (or NumPy) numbers are checked when the transformation is built
and enable static shortcuts (``weight_decay=0.0`` needs no params, ``initial_speed=None`` needs no first-step
branch). ``jax.Array`` values (what :func:`optax.inject_hyperparams` passes) are checked when concrete and are
always treated as dynamic, so an update behaves the same under ``jax.jit`` and outside it. Traced values cannot
be checked; schedules (callables) neither.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from optax._src.base import NO_PARAMS_MSG  # optax's own "needs params" message (not re-exported at top level)

from .. import formulas

__all__ = [
    "NO_PARAMS_MSG",
    "check_hyperparameters",
    "compute_dtype",
    "decay_rates",
    "is_static_zero",
    "is_traced",
    "real_dtype",
    "unzip",
    "warn_if_unstable",
]

#: A predicate on a float and the text of the allowed range, e.g. ``(lambda v: v >= 0, "0 <= alpha < inf")``.
Range = tuple[Callable[[float], bool], str]


def is_traced(value: Any) -> bool:
    """A value known only inside a trace (``jax.jit``, ``inject_hyperparams`` under jit)."""
    return isinstance(value, jax.core.Tracer)


def is_static_zero(value: Any) -> bool:
    """A Python or NumPy number equal to 0: the term it scales can be left out of the traced computation."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0


def _concrete_float(optimizer: str, name: str, value: Any) -> float | None:
    """``value`` as a float, or ``None`` when it cannot be known now (a schedule, a traced value)."""
    if callable(value) or is_traced(value):
        return None
    if isinstance(value, bool):
        raise TypeError(f"{optimizer}: {name} must be a real number, got bool")
    if isinstance(value, numbers.Real):
        return float(value)
    shape = getattr(value, "shape", None)
    if shape is None or getattr(value, "dtype", None) is None:
        raise TypeError(f"{optimizer}: {name} must be a real number, got {type(value).__name__}")
    if math.prod(shape) != 1:
        raise ValueError(f"{optimizer}: {name} must be a scalar, got shape {tuple(shape)}")
    if jnp.iscomplexobj(value):
        raise TypeError(f"{optimizer}: {name} must be a real number, got dtype {value.dtype}")
    return float(jnp.reshape(value, ()))


def check_hyperparameters(optimizer: str, values: dict[str, Any], ranges: dict[str, Range]) -> None:
    """Raise ``ValueError`` naming the first hyperparameter outside its range (NaN and inf are never allowed)."""
    for name, (ok, allowed) in ranges.items():
        value = _concrete_float(optimizer, name, values[name])
        if value is not None and not (math.isfinite(value) and ok(value)):
            raise ValueError(f"Invalid {name} value: {value} ({optimizer} requires {allowed})")


def warn_if_unstable(optimizer: str, learning_rate: Any, alpha: Any, beta: Any, stacklevel: int) -> None:
    """Warn (:class:`inna.INNAStabilityWarning`) when a constant learning rate breaks INNA's stability rule beyond
    the rounding of the dtype the hyperparameters are stored in (a float32 ``jnp.asarray(0.1)`` is 0.10000000149:
    equal to ``beta = 0.1`` within it).

    Schedules and traced values cannot be judged when the transformation is built; they are not warned about.
    """
    named = (("lr", learning_rate), ("alpha", alpha), ("beta", beta))
    values = [_concrete_float(optimizer, n, v) for n, v in named]
    if any(v is None for v in values):
        return
    lr, a, b = values
    rtol = max(_rounding(v) for _, v in named)
    if formulas.stability_rule_broken(lr, a, b, rtol=rtol):
        message = formulas.stability_warning_message(optimizer, "the constant learning_rate", lr, a, b)
        warnings.warn(message, formulas.INNAStabilityWarning, stacklevel=stacklevel + 1)


def _rounding(value: Any) -> float:
    """The relative rounding of a stored hyperparameter: its floating dtype's epsilon, 0 for a Python number."""
    dtype = getattr(value, "dtype", None)
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        return 0.0
    return float(jnp.finfo(dtype).eps)


def decay_rates(weight_decay: Any, mask: Any, tree: Any) -> Any:
    """A pytree like ``tree`` holding, per leaf, ``weight_decay`` where ``mask`` selects the leaf and ``0.0``
    elsewhere (a static zero: that leaf's update has no decay term at all).

    ``mask`` is ``None`` (every leaf), a pytree of booleans with the structure of ``tree`` or a prefix of it, or a
    callable returning one from ``tree`` (as in :func:`optax.add_decayed_weights`).
    """
    if mask is None:
        return jax.tree.map(lambda _: weight_decay, tree)
    flags = mask(tree) if callable(mask) else mask
    return jax.tree.map(lambda flag, sub: jax.tree.map(lambda _: weight_decay if flag else 0.0, sub), flags, tree)


def unzip(pairs: Any, like: Any, n: int) -> tuple[Any, ...]:
    """Split a pytree whose leaves are ``n``-tuples (one per leaf of ``like``) into ``n`` pytrees like ``like``."""
    return tuple(jax.tree.map(lambda _, p, i=i: p[i], like, pairs) for i in range(n))


def compute_dtype(dtype: Any) -> Any:
    """The dtype an update is computed in: float32 for 16-bit floats (the result is rounded back once, so
    coefficients like ``1 - lr * alpha`` are never rounded to 8 bits), the leaf's own dtype otherwise."""
    if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
        return jnp.float32
    return dtype


def real_dtype(dtype: Any) -> Any:
    """The real dtype of a (possibly complex) floating dtype: the dtype of the step's scalar coefficients."""
    return jnp.finfo(dtype).dtype
