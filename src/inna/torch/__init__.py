"""INNA for PyTorch: ``torch.optim`` optimizers, their functional updates and the paper's step-size decay.

``inna.torch.INNA`` and ``inna.torch.INNAprop`` (also ``inna.INNA``, ``inna.INNAprop``) are
``torch.optim.Optimizer`` s sharing their bookkeeping (:mod:`inna.torch._base`); :mod:`inna.torch.functional` and
:mod:`inna.torch.innaprop` hold their updates (a readable reference, a ``torch._foreach_*`` path and a fused
path each), :mod:`inna.torch._dispatch` picks the path; :class:`PowerDecayLR` is the
paper's :math:`\\gamma_0/\\sqrt{k+1}`. The math they share with the optax and Keras versions is in
:mod:`inna.formulas`. Needs PyTorch (``pip install 'inna[torch]'``).
"""

from ..formulas import INNAStabilityWarning
from .functional import inna as inna_update
from .innaprop import innaprop as innaprop_update
from .innaprop_optimizer import INNAprop
from .optimizer import INNA
from .schedules import PowerDecayLR

__all__ = ["INNA", "INNAStabilityWarning", "INNAprop", "PowerDecayLR", "inna_update", "innaprop_update"]
