r"""INNA and INNAprop as Keras 3 optimizers, on the TensorFlow, JAX and PyTorch backends.

- :class:`INNA`: the Inertial Newton Algorithm (Castera, Bolte, Févotte, Pauwels, JMLR 2021);
- :class:`INNAprop`: INNA on the RMSprop-scaled gradient with decoupled weight decay (Bolte, Boustany,
  Pauwels, Purica, 2024), with the official code's semantics;
- :class:`PowerDecay`: the paper's step :math:`\gamma_0/(k+1)^q` as a ``LearningRateSchedule``.

All three are registered with Keras's serialization under the package name ``"inna"``: a ``.keras`` file saved with
them reloads, optimizer state included, with ``keras.saving.load_model(path)`` once ``inna.keras`` is imported
(no ``custom_objects``). Importing this module imports Keras (select the backend with ``KERAS_BACKEND`` first) and
never imports a framework Keras does not use: the multi-tensor path for the PyTorch backend is imported only there.
The math is :mod:`inna.formulas`, shared with :mod:`inna.torch` and :mod:`inna.optax`.
"""

from .optimizers import INNA, INNAprop
from .schedules import PowerDecay

__all__ = ["INNA", "INNAprop", "PowerDecay"]
