r"""The science of the INNA paper, runnable: DIN dynamics, Lyapunov energy, stability, D-criticality.

* :mod:`~inna.dynamics.objectives`: objectives from torch functions (autograd) or numpy (fun, grad).
* :mod:`~inna.dynamics.din`: integrate the lifted DIN system (:func:`integrate_din`) → :class:`Trajectory`.
* :mod:`~inna.dynamics.energy`: :math:`E = (1+\alpha\beta)J + \tfrac12\|(\alpha-1/\beta)\theta+\psi/\beta\|^2`,
  its dissipation and the :math:`O(1/t)` bound.
* :mod:`~inna.dynamics.discrete`: :class:`inna.INNA` iterates against DIN (error :math:`O(\gamma)`).
* :mod:`~inna.dynamics.stability`: spectral radius of INNA on a quadratic, the rule
  :math:`\gamma \le \beta`, heavy ball for comparison.
* :mod:`~inna.dynamics.toy`: the paper's 2-D nonsmooth picture.
* :mod:`~inna.dynamics.dcriticality`: D-critical points that are not critical.
* :mod:`~inna.dynamics.plots`: plot helpers and figures (matplotlib imported lazily).

Needs the ``dynamics`` extra (scipy, matplotlib, tqdm) for integration and plots.
"""

from __future__ import annotations

from .dcriticality import backprop_gradient, minibatch_run, relu_network_losses, relu_pair_losses, total_loss
from .din import Trajectory, initial_psi, integrate_din, lifted_field
from .discrete import inna_trajectory, tracking_errors
from .energy import dissipation, energy, phase, rate_bound
from .objectives import Objective, as_objective, log_cosh, quadratic, rosenbrock
from .stability import (
    heavy_ball_matrix,
    heavy_ball_spectral_radius,
    is_stable,
    iteration_matrix,
    lr_breaks_rule,
    spectral_radius,
    stable_curvature_interval,
)
from .toy import run_toy, toy_function, toy_objective, valley_crossings

__all__ = [
    "Objective",
    "Trajectory",
    "as_objective",
    "backprop_gradient",
    "dissipation",
    "energy",
    "heavy_ball_matrix",
    "heavy_ball_spectral_radius",
    "initial_psi",
    "inna_trajectory",
    "integrate_din",
    "is_stable",
    "iteration_matrix",
    "lifted_field",
    "log_cosh",
    "lr_breaks_rule",
    "minibatch_run",
    "phase",
    "quadratic",
    "rate_bound",
    "relu_network_losses",
    "relu_pair_losses",
    "rosenbrock",
    "run_toy",
    "spectral_radius",
    "stable_curvature_interval",
    "total_loss",
    "toy_function",
    "toy_objective",
    "tracking_errors",
    "valley_crossings",
]
