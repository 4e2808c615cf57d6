"""INNA for PyTorch: ``torch.optim`` optimizers, their functional updates and the paper's step-size decay.

``inna.torch.INNA`` (also ``inna.INNA``) is a ``torch.optim.Optimizer``; :mod:`inna.torch.functional` holds its
update (a readable reference, a ``torch._foreach_*`` path and a compiled path); :class:`PowerDecayLR` is the
paper's :math:`\\gamma_0/\\sqrt{k+1}`. The math they share with the optax and Keras versions is in
:mod:`inna.formulas`. Needs PyTorch (``pip install 'inna[torch]'``).
"""

from ..formulas import INNAStabilityWarning
from .functional import inna as inna_update
from .optimizer import INNA
from .schedules import PowerDecayLR

__all__ = ["INNA", "INNAStabilityWarning", "PowerDecayLR", "inna_update"]
