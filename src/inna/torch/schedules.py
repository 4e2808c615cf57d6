r"""Step-size schedules used with INNA (and usable with any torch optimizer)."""

from __future__ import annotations

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ..formulas import check_power_decay_args, power_decay_factor

__all__ = ["PowerDecayLR"]


class PowerDecayLR(LRScheduler):
    r"""Power decay of the learning rate: :math:`\gamma_k = \gamma_0 / (1 + c\,k)^q`.

    With the defaults (:math:`q = 1/2`, :math:`c = 1`) this is the paper's :math:`\gamma_0/\sqrt{k+1}`,
    with :math:`k` the number of times :meth:`step` was called: call it once per *iteration*
    (mini-batch), as in the paper's experiments, where SGD is decayed the same way. INNA's convergence
    theory needs only :math:`\sum_k\gamma_k = \infty` and :math:`\gamma_k = o(1/\log k)`, which holds for every
    :math:`q \in (0, 1]`; the authors note that :math:`q = 1/4` or :math:`1/8` can train faster but is less
    robust to noise. ``power=0`` keeps the step constant. ``scale`` :math:`c` stretches the clock: stepping per
    iteration with ``scale=1/steps_per_epoch`` decays per epoch, smoothly.

    The schedule is chainable (it multiplies the current lr by
    :math:`((1 + c(k-1))/(1 + ck))^q`), so it composes with other schedulers, and a Tensor ``lr`` is updated in
    place (no recompilation under ``torch.compile``).

    Args:
        optimizer: the wrapped optimizer (any ``torch.optim.Optimizer``).
        power: :math:`q \ge 0` (default 0.5).
        scale: :math:`c \ge 0` (default 1.0).
        last_epoch: index of the last step taken, -1 to start (the torch convention).
    """

    def __init__(self, optimizer: Optimizer, power: float = 0.5, scale: float = 1.0, last_epoch: int = -1) -> None:
        check_power_decay_args("PowerDecayLR", power=power, scale=scale)
        self.power = float(power)
        self.scale = float(scale)
        super().__init__(optimizer, last_epoch)

    def _factor(self, k: int) -> float:
        """:func:`inna.formulas.power_decay_factor` at step ``k``."""
        return power_decay_factor(k, self.power, self.scale)

    def get_lr(self) -> list[float | Tensor]:  # type: ignore[override]
        """The learning rates after the current step, from the current ones (chainable form)."""
        k = self.last_epoch
        if k <= 0:
            return [group["lr"] for group in self.optimizer.param_groups]
        ratio = self._factor(k) / self._factor(k - 1)
        return [group["lr"] * ratio for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float | Tensor]:
        return [base_lr * self._factor(self.last_epoch) for base_lr in self.base_lrs]
