r"""The INNA family's formulas, written once for every framework.

Nothing here imports a framework: each function is plain arithmetic on Python numbers or on whatever array
type the caller passes (a torch Tensor, a ``jax.Array``, a Keras tensor, a NumPy array). The PyTorch
optimizers (:mod:`inna.torch`), the optax transformations (:mod:`inna.optax`), the Keras optimizers
(:mod:`inna.keras`) and :mod:`inna.dynamics` all import these, so the algorithm has one definition.

**INNA** (Castera, Bolte, Févotte, Pauwels, JMLR 2021) is the explicit Euler scheme of the first-order lifting of
DIN, :math:`\ddot\theta + \alpha\dot\theta + \beta\nabla^2 J(\theta)\dot\theta + \nabla J(\theta) = 0`:

.. math::

    \theta_{k+1} &= \theta_k + \gamma_k\big[(\tfrac1\beta - \alpha)\theta_k - \tfrac1\beta\psi_k - \beta g_k\big] \\
    \psi_{k+1}   &= \psi_k + \gamma_k\big[(\tfrac1\beta - \alpha)\theta_k - \tfrac1\beta\psi_k\big]

Every implementation stores the *phase* :math:`\phi = (\alpha - \tfrac1\beta)\theta + \tfrac1\beta\psi` instead of
:math:`\psi` (:func:`phase_from_psi`, :func:`psi_from_phase`). The same iterates then read

.. math::

    \theta_{k+1} = \theta_k - \gamma_k\phi_k - \gamma_k\beta\, g_k, \qquad
    \phi_{k+1} = (1 - \gamma_k\alpha)\,\phi_k + \gamma_k(1 - \alpha\beta)\, g_k

(:func:`inna_coefficients`): no difference of two large terms, and a step reads :math:`\theta, g, \phi` and
writes :math:`\theta, \phi`, the memory traffic of SGD with momentum.

**INNAprop** (Bolte, Boustany, Pauwels, Purica, 2024) is the same step on the RMSprop-scaled gradient
:math:`u_k = g_k / D_k`, :math:`v_k = \sigma v_{k-1} + (1 - \sigma) g_k^2`,
:math:`D_k = \sqrt{v_k}/\sqrt{1 - \sigma^k} + \varepsilon` (:func:`rms_bias_correction`), after the decoupled
decay :math:`\theta \leftarrow (1 - \gamma\lambda)\theta` whose effect on the phase is exact
(:func:`innaprop_decay_phase_shift`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = [
    "INNAStabilityWarning",
    "InnaCoefficients",
    "check_power_decay_args",
    "initial_phase_scale",
    "inna_coefficients",
    "innaprop_decay_phase_shift",
    "l2_coefficient",
    "machine_epsilon",
    "phase_from_psi",
    "power_decay_factor",
    "psi_from_phase",
    "rms_bias_correction",
    "stability_rule_broken",
    "stability_warning_message",
    "unstable_curvature",
]


class INNAStabilityWarning(UserWarning):
    """A step size breaks INNA's linear-stability rule ``lr <= beta and lr * alpha < 2``."""


class InnaCoefficients(NamedTuple):
    r"""The four scalars of one INNA step in phase form (see :func:`inna_coefficients`)."""

    theta_phase: Any  #: :math:`\gamma`, the weight of :math:`\phi` in the :math:`\theta` update
    theta_grad: Any  #: :math:`\gamma\beta`, the weight of :math:`g` in the :math:`\theta` update
    phase_decay: Any  #: :math:`1 - \gamma\alpha`, the factor of :math:`\phi` in its own update
    phase_grad: Any  #: :math:`\gamma(1 - \alpha\beta)`, the weight of :math:`g` in the :math:`\phi` update


def inna_coefficients(lr: Any, alpha: float, beta: float) -> InnaCoefficients:
    r"""The scalars of one INNA step in phase form:

    .. math::

        \theta_{k+1} = \theta_k - \gamma\,\phi_k - \gamma\beta\, g_k, \qquad
        \phi_{k+1} = (1 - \gamma\alpha)\,\phi_k + \gamma(1 - \alpha\beta)\, g_k .

    Substituting :math:`\psi = (1 - \alpha\beta)\theta + \beta\phi` in the paper's two lines gives exactly these.
    ``lr`` may be a number or a scalar array (a torch Tensor lr, a traced JAX value).
    """
    return InnaCoefficients(lr, lr * beta, 1 - lr * alpha, lr * (1 - alpha * beta))


def phase_from_psi(theta: Any, psi: Any, alpha: float, beta: float) -> Any:
    r"""The phase :math:`\phi = (\alpha - 1/\beta)\theta + \psi/\beta` (in continuous time
    :math:`\phi = -(\dot\theta + \beta\nabla J)`)."""
    return theta * (alpha - 1 / beta) + psi / beta


def psi_from_phase(theta: Any, phase: Any, alpha: float, beta: float) -> Any:
    r"""The paper's auxiliary variable :math:`\psi = (1 - \alpha\beta)\theta + \beta\phi`."""
    return theta * (1 - alpha * beta) + beta * phase


def initial_phase_scale(beta: float, initial_speed: float | None) -> float:
    r"""The factor :math:`s - \beta` of :math:`\phi_0 = (s - \beta)\,g_0` for the initial velocity
    :math:`\dot\theta_0 = -s\,g_0`.

    :math:`\psi_0 = (1 - \alpha\beta)\theta_0 + \beta(s - \beta)g_0` gives :math:`\phi_0 = (s - \beta)g_0` (the
    :math:`\alpha` terms cancel). ``None`` means :math:`s = \beta`, so :math:`\phi_0 = 0` and
    :math:`\psi_0 = (1 - \alpha\beta)\theta_0` (the authors' PyTorch code, and INNAprop's only start); ``1.0`` makes the
    first step the SGD step :math:`\theta_0 - \gamma_0 g_0` (the paper's Keras/TF code); ``0.0`` starts at rest.
    """
    if initial_speed is None:
        return 0.0
    return float(initial_speed) - beta


def l2_coefficient(weight_decay: float, beta: float, decoupled_weight_decay: bool) -> float:
    r"""The coefficient :math:`\lambda'` of :math:`\theta` that INNA adds to the gradient.

    Coupled (default): INNA on :math:`J + \tfrac\lambda2\|\theta\|^2`, :math:`\lambda' = \lambda`. Decoupled (the
    authors' PyTorch code): :math:`\theta` also loses :math:`\gamma\lambda\theta_k` and :math:`\psi` is untouched.
    Because the gradient enters only the :math:`\theta` line, scaled by :math:`\beta`, that is exactly L2 with
    :math:`\lambda' = \lambda/\beta`.
    """
    if weight_decay == 0:
        return 0.0
    return weight_decay / beta if decoupled_weight_decay else weight_decay


def rms_bias_correction(
    sigma: Any, step: Any, *, expm1: Callable[[Any], Any] = math.expm1, log: Callable[[Any], Any] = math.log
) -> Any:
    r"""INNAprop's (and Adam's) :math:`1/\sqrt{1 - \sigma^t}` at step :math:`t \ge 1`, so
    :math:`D_t = \sqrt{v_t}\cdot\texttt{rms\_bias\_correction} + \varepsilon`.

    It is computed as :math:`\big(-\mathrm{expm1}(t\ln\sigma)\big)^{-1/2}`, which keeps full relative accuracy
    where :math:`\sigma^t` is close to 1 (early steps, :math:`\sigma` near 1): the plain :math:`1 - \sigma^t`
    loses about :math:`-\log_2(1 - \sigma^t)` bits there, 7 bits of float32's 24 at :math:`\sigma = 0.99, t = 1`.
    :math:`\sigma = 0` gives 1 (RMSprop without memory).

    ``step`` may be an integer or a scalar array (a device step counter, for graph capture); with an array, pass the
    array library's ``expm1`` and ``log`` (``torch.expm1``, ``jnp.expm1``, ``keras.ops.expm1``, ...). The defaults
    are :mod:`math`'s, for Python numbers.
    """
    if isinstance(sigma, (int, float)) and sigma == 0:
        return step * 0 + 1.0  # the type of step, value 1
    return (-expm1(step * log(sigma))) ** -0.5


def power_decay_factor(step: Any, power: float, scale: float) -> Any:
    r"""The factor :math:`(1 + c\,k)^{-q}` of the power decay :math:`\gamma_k = \gamma_0 (1 + c\,k)^{-q}` at step
    :math:`k \ge 0` (``scale`` :math:`c`, ``power`` :math:`q`).

    With :math:`q = 1/2, c = 1` it is the paper's :math:`\gamma_0/\sqrt{k+1}` per iteration. INNA's theory needs
    only :math:`\sum_k\gamma_k = \infty` and :math:`\gamma_k = o(1/\log k)`, true for every :math:`q \in (0, 1]`;
    :math:`q = 0` is a constant step. ``step`` may be a number or a scalar array. The torch, optax and Keras
    schedules (:class:`inna.PowerDecayLR`, :func:`inna.optax.power_decay`, :class:`inna.keras.PowerDecay`) all
    call this.
    """
    return (1.0 + scale * step) ** -power


def check_power_decay_args(owner: str, **values: Any) -> None:
    """Raise ``ValueError`` naming the argument unless each of ``values`` (initial value, ``power``, ``scale``) is a
    finite real number ``>= 0``; ``owner`` names the schedule in the message."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"Invalid {name} value: {value!r} ({owner} requires 0 <= {name} < inf)")


def innaprop_decay_phase_shift(lr: Any, weight_decay: float, alpha: float, beta: float) -> Any:
    r"""The exact change of the phase when INNAprop's decay :math:`\theta \leftarrow (1 - \gamma\lambda)\theta` runs
    first: :math:`\tilde\phi = \phi + \gamma\lambda(\tfrac1\beta - \alpha)\,\theta` (``shift * theta``).

    The official code decays :math:`\theta` and leaves :math:`\psi` alone, so the phase
    :math:`(\alpha - 1/\beta)\theta + \psi/\beta` of the decayed point differs from the stored one by this term.
    """
    return lr * weight_decay * (1 / beta - alpha)


def stability_rule_broken(lr: float, alpha: float, beta: float, *, rtol: float = 0.0) -> bool:
    r"""INNA's linear-stability rule on quadratics, :math:`\gamma \le \beta` and :math:`\gamma\alpha < 2`, is broken
    beyond the rounding of the stored learning rate.

    With :math:`\gamma > \beta` every direction of curvature :math:`h \ge \alpha/(\gamma - \beta)` diverges
    (:math:`\det M = 1 - \gamma\alpha + \gamma h(\gamma - \beta) > 1`); with :math:`\gamma\alpha \ge 2` the flat
    directions do (eigenvalue :math:`1 - \gamma\alpha`). :mod:`inna.dynamics.stability` derives it and checks it
    against the exact spectral radius. For INNAprop the same rule holds in the RMSprop-scaled coordinates.

    ``rtol`` is the relative rounding of ``lr``: pass the machine epsilon of the dtype the learning rate was stored
    in (:func:`machine_epsilon`; e.g. ``2**-23`` for a float32 variable, where the documented ``lr = beta = 0.1``
    reads back as ``0.10000000149``). The rule then counts as broken only when every value within ``rtol`` of
    ``lr`` breaks it: :math:`\gamma > \beta(1 + \mathrm{rtol})` or :math:`\gamma\alpha \ge 2(1 + \mathrm{rtol})`.
    ``rtol=0`` (a Python float) is the exact rule.
    """
    if not (rtol >= 0 and math.isfinite(rtol)):
        raise ValueError(f"stability_rule_broken: rtol must be a finite number >= 0, got {rtol!r}")
    slack = 1.0 + rtol
    return lr > beta * slack or lr * alpha >= 2 * slack


#: The machine epsilon (the spacing of the numbers just above 1) of each floating dtype, by its name.
_MACHINE_EPSILON = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}


def machine_epsilon(dtype_name: str) -> float:
    """The machine epsilon of the floating dtype named ``dtype_name`` (``"float16"``, ``"bfloat16"``,
    ``"float32"``, ``"float64"``; a ``"torch."`` prefix is accepted): a value stored in that dtype is within half of
    it, relatively, of the number it was rounded from. ``ValueError`` for any other name."""
    name = str(dtype_name).removeprefix("torch.")
    if name not in _MACHINE_EPSILON:
        raise ValueError(f"machine_epsilon: {dtype_name!r} is not a floating dtype (one of {sorted(_MACHINE_EPSILON)})")
    return _MACHINE_EPSILON[name]


def unstable_curvature(lr: float, alpha: float, beta: float) -> float:
    r"""The smallest curvature that is linearly unstable when the rule is broken: :math:`\alpha/(\gamma - \beta)` for
    :math:`\gamma > \beta` (:math:`0` when :math:`\alpha = 0`), :math:`0` (the flat directions) when
    :math:`\gamma\alpha \ge 2`, and ``inf`` when the rule holds."""
    if lr * alpha >= 2:
        return 0.0
    if lr > beta:
        return alpha / (lr - beta)
    return math.inf


def stability_warning_message(name: str, where: str, lr: float, alpha: float, beta: float) -> str:
    """The text of the once-only :class:`INNAStabilityWarning` (``name``: the optimizer, ``where``: e.g. "param
    group 0")."""
    if lr > beta:
        limit, until = f"curvature above alpha/(lr - beta) = {alpha / (lr - beta):.4g}", "lr <= beta"
    else:
        limit, until = "zero curvature (flat ones)", "lr * alpha < 2"
    return (
        f"{name}: {where} has lr={lr:.4g} with alpha={alpha:.4g}, beta={beta:.4g}, which breaks the stability rule "
        f"lr <= beta and lr * alpha < 2: at this step, directions of {limit} are linearly unstable. With a decaying "
        f"lr this lasts until {until}. This warning is shown once; filter inna.INNAStabilityWarning to silence it."
    )
