r"""INNA and INNAprop as ``keras.optimizers.Optimizer`` subclasses.

Both store the *phase* :math:`\phi = (\alpha - 1/\beta)\theta + \psi/\beta` (see :mod:`inna.formulas`) and take the
step

.. math::

    \theta_{k+1} = \theta_k - \gamma_k\phi_k - \gamma_k\beta\,u_k, \qquad
    \phi_{k+1} = (1 - \gamma_k\alpha)\,\phi_k + \gamma_k(1 - \alpha\beta)\,u_k

with :math:`u_k` the gradient (INNA) or the RMSprop-scaled gradient (INNAprop). The update is written with
``keras.ops`` and ``self.assign*`` only, so it runs on every backend and on JAX's stateless path; on the PyTorch
backend the same update runs over all variables at once with ``torch._foreach_*`` kernels
(:mod:`inna.keras._torch`), as Keras does for its built-in optimizers.

Weight decay is applied inside ``update_step``, not by the base class: Keras's own rule
:math:`\theta \leftarrow \theta - \gamma\lambda\theta` leaves the phase alone, which in the paper's coordinates also
shrinks :math:`\psi` and is none of the published algorithms. ``exclude_from_weight_decay`` keeps its Keras meaning.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import keras
from keras import ops

from ..formulas import (
    INNAStabilityWarning,
    initial_phase_scale,
    inna_coefficients,
    innaprop_decay_phase_shift,
    l2_coefficient,
    machine_epsilon,
    psi_from_phase,
    rms_bias_correction,
    stability_rule_broken,
    stability_warning_message,
)

__all__ = ["INNA", "INNAprop"]

_BASE_ARGS = """weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency,
            loss_scale_factor, gradient_accumulation_steps, name: Keras's own optimizer options, with their Keras
            meaning (``weight_decay`` as described above). ``name`` defaults to ``"inna"`` / ``"innaprop"``, the
            prefix of the optimizer's variables."""


def _eager_learning_rate(learning_rate: Any) -> tuple[float, float] | None:
    """``(value, rtol)`` of a learning rate that has a value now: the value as a float and the machine epsilon of
    the dtype it is stored in (0 for a Python number). ``None`` inside a trace, where it has none yet."""
    if isinstance(learning_rate, (int, float)):  # a callable learning rate may return a Python number
        return float(learning_rate), 0.0
    if isinstance(learning_rate, keras.Variable):
        learning_rate = learning_rate.value  # the backend's variable or tensor
    if isinstance(learning_rate, keras.KerasTensor) or not _has_value(learning_rate):
        return None
    dtype = keras.backend.standardize_dtype(learning_rate.dtype)
    # float() of the backend's scalar (its own __float__): ops.convert_to_numpy goes through np.array, which NumPy 2
    # deprecates for tensors whose __array__ takes no copy= (TensorFlow's and PyTorch's today)
    value = float(ops.convert_to_tensor(learning_rate))
    return value, machine_epsilon(dtype) if "float" in dtype else 0.0


def _has_value(tensor: Any) -> bool:
    """Whether ``tensor`` has a concrete value: not inside ``tf.function`` on TensorFlow, not a tracer on JAX."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly()
    if backend == "jax":
        import jax

        return not isinstance(tensor, jax.core.Tracer)
    return True


def _check(owner: str, name: str, value: Any, allowed: str, ok: Any) -> float:
    """``value`` as a float, or a ValueError naming ``name`` and its allowed range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or not ok(v):
        raise ValueError(f"Invalid {name} value: {value!r} ({owner} requires {allowed})")
    return v


class _InertialNewton(keras.optimizers.Optimizer):
    """What INNA and INNAprop share: validation, weight-decay bookkeeping, the stability warning, the torch path."""

    _state_names: tuple[str, ...] = ("phase",)

    def __init__(self, learning_rate: Any, alpha: float, beta: float, weight_decay: float | None, **kwargs: Any):
        owner = type(self).__name__
        if isinstance(learning_rate, int) and not isinstance(learning_rate, bool):
            learning_rate = float(learning_rate)
        if isinstance(learning_rate, float):
            _check(owner, "learning_rate", learning_rate, "0 <= learning_rate < inf", lambda v: v >= 0)
        alpha = _check(owner, "alpha", alpha, "0 <= alpha < inf", lambda v: v >= 0)
        beta = _check(owner, "beta", beta, "0 < beta < inf", lambda v: v > 0)
        if weight_decay is not None:
            weight_decay = _check(
                owner, "weight_decay", weight_decay, "0 <= weight_decay < inf or None", lambda v: v >= 0
            )
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, **kwargs)
        self.alpha = alpha
        self.beta = beta
        # The PyTorch backend runs the update as multi-tensor kernels; False runs Keras's per-variable loop over
        # update_step instead (the tests prove the two equal, the benchmark times both).
        self._multi_tensor = keras.backend.backend() == "torch"

    def build(self, var_list: list[Any]) -> None:
        if self.built:
            return
        super().build(var_list)
        state = self.add_optimizer_variables(var_list, list(self._state_names))
        for name, variables in zip(self._state_names, state):
            setattr(self, f"_{name}s", variables)
        self._warn_if_unstable()

    def _warn_if_unstable(self) -> None:
        """Warn once (at build) if the learning rate then breaks the linear-stability rule beyond its rounding in the
        dtype it is stored in (a float32 variable holds the default 0.1 as 0.10000000149)."""
        read = _eager_learning_rate(self.learning_rate)
        if read is None:  # built inside a trace (tf.function, jax.jit): the value is not known yet
            return
        lr, rtol = read
        if stability_rule_broken(lr, self.alpha, self.beta, rtol=rtol):
            where = f"optimizer {self.name!r} (learning rate at build)"
            warnings.warn(
                stability_warning_message(type(self).__name__, where, lr, self.alpha, self.beta),
                INNAStabilityWarning,
                stacklevel=3,
            )

    def _decay_of(self, variable: Any) -> float:
        """The weight decay that applies to ``variable`` (0 when unset or excluded)."""
        if not self.weight_decay or not self._use_weight_decay(variable):
            return 0.0
        return float(self.weight_decay)

    def _apply_weight_decay(self, variables: list[Any]) -> None:
        # The decay is part of update_step (see the module docstring): the base class must not apply it again.
        return None

    def _step_count(self) -> Any:
        """The number of updates taken before this one (Keras's ``iterations``, which counts accumulated steps)."""
        return self.iterations

    def _backend_update_step(self, grads: list[Any], trainable_variables: list[Any], learning_rate: Any) -> None:
        step = self._multi_tensor_step() if self._multi_tensor else None
        if step is not None:
            step(self, grads, trainable_variables, learning_rate)
            return
        super()._backend_update_step(grads, trainable_variables, learning_rate)

    def _multi_tensor_step(self) -> Any:
        """The PyTorch backend's all-variables step for this optimizer's update, or ``None`` for Keras's loop over
        ``update_step``.

        Found by class: the class in the MRO that defines the ``update_step`` in effect. When that is
        :class:`INNA` or :class:`INNAprop` (a subclass that leaves ``update_step`` alone, whatever its name), the
        fast step computes that update; a subclass with its own ``update_step`` gets its own update, per variable.
        """
        from . import _torch

        owner = next(cls for cls in type(self).__mro__ if "update_step" in vars(cls))
        if owner not in (INNA, INNAprop):
            return None
        return _torch.STEPS[owner.__name__]

    def psi(self, variable: Any) -> Any:
        r"""The paper's auxiliary variable :math:`\psi = (1 - \alpha\beta)\theta + \beta\phi` of ``variable``."""
        phase = self._phases[self._get_variable_index(variable)]
        return psi_from_phase(ops.convert_to_tensor(variable), ops.convert_to_tensor(phase), self.alpha, self.beta)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"alpha": self.alpha, "beta": self.beta})
        return config


@keras.saving.register_keras_serializable(package="inna")
class INNA(_InertialNewton):
    r"""INNA, the Inertial Newton Algorithm of Castera, Bolte, Févotte and Pauwels (JMLR 2021), for Keras 3.

    The explicit Euler scheme of DIN, :math:`\ddot\theta + \alpha\dot\theta + \beta\nabla^2 J(\theta)\dot\theta
    + \nabla J(\theta) = 0`, in the paper's coordinates

    .. math::

        \theta_{k+1} &= \theta_k + \gamma_k\big[(\tfrac1\beta - \alpha)\theta_k - \tfrac1\beta\psi_k
            - \beta g_k\big] \\
        \psi_{k+1} &= \psi_k + \gamma_k\big[(\tfrac1\beta - \alpha)\theta_k - \tfrac1\beta\psi_k\big],
        \qquad \psi_0 = (1 - \alpha\beta)\theta_0 + \beta(s - \beta)g_0,

    computed in the phase form of :mod:`inna.formulas` (one state variable per weight, ``"phase"``, the memory and
    traffic of SGD with momentum). Same algorithm and state as :class:`inna.INNA`. The paper decays the step as
    :math:`\gamma_0/\sqrt{k+1}`: pass ``learning_rate=inna.keras.PowerDecay(gamma0)``.

    Args:
        learning_rate: the step :math:`\gamma \ge 0` (default 0.1, the authors' PyTorch default), a
            ``LearningRateSchedule`` or a callable, as for every Keras optimizer.
        alpha: friction :math:`\alpha \ge 0` (default 0.5).
        beta: Newtonian damping :math:`\beta > 0` (default 0.1).
        initial_speed: :math:`s \ge 0` in :math:`\dot\theta_0 = -s\,g_0`, so :math:`\phi_0 = (s - \beta)g_0` is
            set from the first gradient at the first update (a jit-friendly select on the iteration count).
            ``None`` (default) means :math:`s = \beta`, :math:`\phi_0 = 0` (the authors' PyTorch code); ``1.0``
            makes the first step the SGD step (the authors' Keras code); ``0.0`` starts at rest.
        weight_decay: :math:`\lambda \ge 0` or ``None`` (default). With ``decoupled_weight_decay=True``
            (default, Keras's meaning of ``weight_decay``) every step also takes :math:`\gamma_k\lambda\theta_k`
            off :math:`\theta` and leaves :math:`\psi` untouched: the authors' decoupled form, equal to INNA on
            :math:`J + \tfrac{\lambda}{2\beta}\|\theta\|^2`. With ``False`` it is the L2 term of
            :math:`J + \tfrac\lambda2\|\theta\|^2` (the paper's framework, :class:`inna.INNA`'s default).
            ``exclude_from_weight_decay`` applies.
        decoupled_weight_decay: see ``weight_decay``.
        {base}

    The stability rule :math:`\gamma \le \beta`, :math:`\gamma\alpha < 2` is checked once, when the optimizer is
    built, on the learning rate at that time, up to the rounding of the dtype it is stored in
    (:func:`inna.formulas.stability_rule_broken`; the defaults' float32 :math:`\gamma = \beta` keeps it); breaking it
    warns :class:`inna.INNAStabilityWarning`.
    """

    def __init__(
        self,
        learning_rate: Any = 0.1,
        alpha: float = 0.5,
        beta: float = 0.1,
        initial_speed: float | None = None,
        decoupled_weight_decay: bool = True,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str = "inna",
        **kwargs: Any,
    ) -> None:
        if initial_speed is not None:
            initial_speed = _check(
                "INNA", "initial_speed", initial_speed, "0 <= initial_speed < inf or None", lambda v: v >= 0
            )
        super().__init__(
            learning_rate=learning_rate,
            alpha=alpha,
            beta=beta,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )
        self.initial_speed = initial_speed
        self.decoupled_weight_decay = bool(decoupled_weight_decay)
        self._initial_scale = initial_phase_scale(self.beta, initial_speed)

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        """One INNA step on ``variable`` (phase form; see the class docstring)."""
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        phase = self._phases[self._get_variable_index(variable)]
        wd = self._decay_of(variable)
        l2 = l2_coefficient(wd, self.beta, self.decoupled_weight_decay)
        g_hat = ops.add(g, ops.multiply(variable, l2)) if l2 else g
        phi = phase
        if self._initial_scale != 0.0:
            # phi_0 = (s - beta) g_0, with g_0 the objective's gradient (the decoupled decay is not part of it)
            g0 = g if self.decoupled_weight_decay else g_hat
            first = ops.equal(self._step_count(), 0)
            phi = ops.where(first, ops.multiply(g0, self._initial_scale), ops.convert_to_tensor(phase))
        c = inna_coefficients(lr, self.alpha, self.beta)
        # theta <- theta - lr * phi - lr * beta * g ;  phi <- (1 - lr * alpha) * phi + lr * (1 - alpha * beta) * g
        self.assign_sub(variable, ops.add(ops.multiply(phi, c.theta_phase), ops.multiply(g_hat, c.theta_grad)))
        self.assign(phase, ops.add(ops.multiply(phi, c.phase_decay), ops.multiply(g_hat, c.phase_grad)))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"initial_speed": self.initial_speed, "decoupled_weight_decay": self.decoupled_weight_decay})
        return config


@keras.saving.register_keras_serializable(package="inna")
class INNAprop(_InertialNewton):
    r"""INNAprop (Bolte, Boustany, Pauwels, Purica, 2024) for Keras 3: INNA on the RMSprop-scaled gradient.

    The official update, at update :math:`t = 1, 2, \dots` (Keras's ``iterations + 1``), with
    :math:`\psi_0 = (1 - \alpha\beta)\theta_0` and :math:`v_0 = 0`:

    .. math::

        \theta &\leftarrow (1 - \gamma\lambda)\theta, \qquad v \leftarrow \sigma v + (1 - \sigma)g^2, \qquad
            D = \sqrt{v}/\sqrt{1 - \sigma^t} + \varepsilon \\
        \psi &\leftarrow (1 - \tfrac\gamma\beta)\psi + \gamma(\tfrac1\beta - \alpha)\theta, \qquad
        \theta \leftarrow \big(1 + \tfrac{\gamma(1 - \alpha\beta)}{\beta - \gamma}\big)\theta
            - \tfrac{\gamma}{\beta - \gamma}\psi - \gamma\beta\,\tfrac{g}{D}

    computed exactly as INNA's phase step on :math:`u = g/D` after the decay, whose effect on the phase is
    :math:`\phi \leftarrow \phi + \gamma\lambda(\tfrac1\beta - \alpha)\theta` (:math:`\theta` read before the decay).
    The phase form has no :math:`\gamma = \beta` singularity (the official form divides by :math:`\beta - \gamma`).
    State per weight: ``"phase"`` (:math:`\phi_0 = 0`) and ``"second_moment"`` (:math:`v`), the memory of AdamW.

    Args:
        learning_rate: :math:`\gamma \ge 0` (default 1e-3), a ``LearningRateSchedule`` or a callable.
        alpha: :math:`\alpha \ge 0` (default 0.1). The authors' pairs: (0.1, 0.9), (1, 1), (2, 2).
        beta: :math:`\beta > 0` (default 0.9).
        sigma: the second-moment decay :math:`\sigma \in [0, 1)` (default 0.999; 0.99 for language models).
        epsilon: :math:`\varepsilon \ge 0`, added outside the square root (default 1e-8).
        weight_decay: the decoupled decay :math:`\lambda \ge 0` (default 0.01, the official default), applied
            exactly as the official code does (before the step, :math:`\psi` untouched);
            ``exclude_from_weight_decay`` applies. ``None`` or 0 turns it off.
        {base}

    The bias correction uses Keras's global iteration count, as Keras's Adam does: a variable that received no
    gradient at some step is corrected as if it had (the official code counts per parameter).
    """

    _state_names = ("phase", "second_moment")

    def __init__(
        self,
        learning_rate: Any = 1e-3,
        alpha: float = 0.1,
        beta: float = 0.9,
        sigma: float = 0.999,
        epsilon: float = 1e-8,
        weight_decay: float | None = 0.01,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str = "innaprop",
        **kwargs: Any,
    ) -> None:
        sigma = _check("INNAprop", "sigma", sigma, "0 <= sigma < 1", lambda v: 0 <= v < 1)
        epsilon = _check("INNAprop", "epsilon", epsilon, "0 <= epsilon < inf", lambda v: v >= 0)
        super().__init__(
            learning_rate=learning_rate,
            alpha=alpha,
            beta=beta,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )
        self.sigma = sigma
        self.epsilon = epsilon

    def _bias_correction(self, dtype: str) -> Any:
        r""":math:`1/\sqrt{1 - \sigma^t}` by :func:`inna.formulas.rms_bias_correction` with ``keras.ops.expm1``:
        :math:`(-\mathrm{expm1}(t\ln\sigma))^{-1/2}`, with :math:`\ln\sigma` taken in double precision, keeps full
        relative accuracy in float32 (the float32 rounding of :math:`\sigma = 0.999` alone would move
        :math:`1 - \sigma` by 1.3e-5 relative)."""
        t = ops.cast(ops.add(self._step_count(), 1), dtype)
        return rms_bias_correction(self.sigma, t, expm1=ops.expm1)  # 1 at sigma = 0

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        """One INNAprop step on ``variable`` (official semantics, phase form; see the class docstring)."""
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        index = self._get_variable_index(variable)
        phase, v = self._phases[index], self._second_moments[index]
        wd = self._decay_of(variable)
        if wd:
            # the official decay theta <- (1 - lr wd) theta leaves psi alone: the phase gains lr wd (1/beta - alpha)
            # theta, with theta read before the decay
            phi = ops.add(phase, ops.multiply(variable, innaprop_decay_phase_shift(lr, wd, self.alpha, self.beta)))
            theta = ops.multiply(variable, ops.subtract(1.0, ops.multiply(lr, wd)))
        else:
            phi, theta = phase, variable
        v_new = ops.add(ops.multiply(v, self.sigma), ops.multiply(ops.square(g), 1 - self.sigma))
        denom = ops.add(ops.multiply(ops.sqrt(v_new), self._bias_correction(dtype)), self.epsilon)
        u = ops.divide(g, denom)
        c = inna_coefficients(lr, self.alpha, self.beta)
        self.assign(
            variable, ops.subtract(theta, ops.add(ops.multiply(phi, c.theta_phase), ops.multiply(u, c.theta_grad)))
        )
        self.assign(phase, ops.add(ops.multiply(phi, c.phase_decay), ops.multiply(u, c.phase_grad)))
        self.assign(v, v_new)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"sigma": self.sigma, "epsilon": self.epsilon})
        return config


INNA.__doc__ = (INNA.__doc__ or "").replace("{base}", _BASE_ARGS)
INNAprop.__doc__ = (INNAprop.__doc__ or "").replace("{base}", _BASE_ARGS)
