"""INNA, the Inertial Newton Algorithm for deep learning (Castera, Bolte, Févotte, Pauwels, JMLR 2021).

One algorithm, three frameworks, one set of formulas:

- :mod:`inna.formulas`: the math every implementation shares (no framework needed);
- :mod:`inna.torch`: ``torch.optim`` optimizers (``inna.INNA``, ``inna.INNAprop``, ``inna.PowerDecayLR`` are
  re-exported here);
- :mod:`inna.optax`: optax gradient transformations for JAX;
- :mod:`inna.keras`: Keras 3 optimizers (TensorFlow, JAX and PyTorch backends);
- :mod:`inna.dynamics` (the continuous-time science) and :mod:`inna.bench` (the paper's protocol).

``import inna`` needs no framework: the PyTorch names are imported on first use, and say which extra to
install when PyTorch is missing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .formulas import INNAStabilityWarning

__version__ = "0.3.0.dev0"  #: the one place the version lives (pyproject reads it); see CHANGELOG.md

#: Names re-exported from :mod:`inna.torch`, imported on first access so that ``import inna`` never needs torch.
_TORCH_NAMES = ("INNA", "INNAprop", "PowerDecayLR", "inna_update")

__all__ = ["INNA", "INNAStabilityWarning", "INNAprop", "PowerDecayLR", "__version__", "inna_update"]

if TYPE_CHECKING:  # pragma: no cover
    from .torch import INNA, INNAprop, PowerDecayLR, inna_update


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        try:
            module = importlib.import_module(".torch", __name__)
        except ModuleNotFoundError as err:
            if err.name == "torch" or (err.name or "").startswith("torch."):
                raise ImportError(
                    f"inna.{name} is the PyTorch optimizer and needs PyTorch, which is not installed: "
                    "pip install 'inna[torch]' (JAX users: inna.optax; Keras users: inna.keras)"
                ) from err
            raise
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'inna' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
