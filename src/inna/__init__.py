"""INNA: the Inertial Newton Algorithm for deep learning (Castera, Bolte, Févotte, Pauwels, JMLR 2021).

``inna.INNA`` is a ``torch.optim.Optimizer``; ``inna.PowerDecayLR`` the paper's step-size decay;
``inna.functional.inna`` the functional update.
"""

from .functional import inna as inna_update
from .optimizer import INNA, INNAStabilityWarning
from .schedules import PowerDecayLR

__version__ = "0.1.0"

__all__ = ["INNA", "INNAStabilityWarning", "PowerDecayLR", "__version__", "inna_update"]
