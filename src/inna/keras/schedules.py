r"""The paper's power decay of the step, :math:`\gamma_k = \gamma_0/(1 + c\,k)^q`, as a Keras schedule."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from ..formulas import check_power_decay_args, power_decay_factor

__all__ = ["PowerDecay"]


@keras.saving.register_keras_serializable(package="inna")
class PowerDecay(keras.optimizers.schedules.LearningRateSchedule):
    r"""Power decay of the learning rate: :math:`\gamma_k = \gamma_0 / (1 + c\,k)^q`.

    With the defaults (:math:`q = 1/2`, :math:`c = 1`) this is the paper's :math:`\gamma_0/\sqrt{k+1}`, with
    :math:`k` the optimizer's iteration count (Keras calls the schedule with it at every step). INNA's theory needs
    only :math:`\sum_k\gamma_k = \infty` and :math:`\gamma_k = o(1/\log k)`, true for every :math:`q \in (0, 1]`;
    ``power=0`` keeps the step constant; ``scale`` :math:`c` stretches the clock (``1/steps_per_epoch`` decays
    per epoch, smoothly). The Keras twin of :class:`inna.PowerDecayLR`; the factor is
    :func:`inna.formulas.power_decay_factor`.

    Args:
        initial_learning_rate: :math:`\gamma_0 \ge 0`.
        power: :math:`q \ge 0` (default 0.5).
        scale: :math:`c \ge 0` (default 1.0).
        name: the name of the schedule's operations.
    """

    def __init__(
        self, initial_learning_rate: float, power: float = 0.5, scale: float = 1.0, name: str = "PowerDecay"
    ) -> None:
        super().__init__()
        check_power_decay_args("PowerDecay", initial_learning_rate=initial_learning_rate, power=power, scale=scale)
        self.initial_learning_rate = float(initial_learning_rate)
        self.power = float(power)
        self.scale = float(scale)
        self.name = name

    def __call__(self, step: Any) -> Any:
        initial = ops.convert_to_tensor(self.initial_learning_rate)
        k = ops.cast(step, initial.dtype)
        return ops.multiply(initial, power_decay_factor(k, self.power, self.scale))

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "power": self.power,
            "scale": self.scale,
            "name": self.name,
        }
