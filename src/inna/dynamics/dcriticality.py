r"""D-criticality: spurious stationary points of mini-batch methods on nonsmooth sums.

For :math:`J = \sum_n J_n`, mini-batch backpropagation returns an element of
:math:`D J_B(\theta) = \sum_{n \in B}\partial J_n(\theta)`, not of :math:`\partial J(\theta)`: there is no sum
rule, only :math:`\partial J(\theta) \subset \sum_n \partial J_n(\theta)`. A point is **D-critical** when
:math:`0 \in \sum_n \partial J_n(\theta)`. Every critical point is D-critical, not conversely; INNA's limit
points are D-critical (the paper's theorem), and so are SGD's.

**1-D example** (derived for this library, not the paper's own). :math:`J_1 = \mathrm{ReLU}(\theta)`,
:math:`J_2 = -\mathrm{ReLU}(-\theta)`, :math:`J_3 = \theta^2/2`. Then :math:`J_1 + J_2 = \theta`, so
:math:`J = \theta + \theta^2/2` is smooth with :math:`J'(0) = 1 \ne 0` and unique minimiser :math:`-1`. But
:math:`\partial J_1(0) = \partial J_2(0) = [0, 1]`, so :math:`0 \in [0, 2] + \{0\}`: :math:`\theta = 0` is
D-critical, and backprop (``relu'(0) = 0``) returns **exactly 0 for every mini-batch**, full batch included.

**ReLU network** :math:`f(x; w, v) = v\,\mathrm{ReLU}(w x)` on the data :math:`\{(1, 1), (-1, -1)\}` with the
squared loss: :math:`J(w, v) = (v\,\mathrm{ReLU}(w) - 1)^2 + (v\,\mathrm{ReLU}(-w) + 1)^2`. On the line
:math:`w = 0` both samples sit at the kink of the ReLU, so backprop gives 0 for :math:`w` and for :math:`v`
(the neuron outputs 0). Yet :math:`J` is differentiable there with :math:`\partial J/\partial w = -2v`: the
left and right slopes agree because the two samples see the two sides of the kink. Every :math:`(0, v)`,
:math:`v \ne 0`, is D-critical and not critical; the minimum :math:`J = 1` is on :math:`vw = 1`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from inna.torch import INNA, PowerDecayLR

__all__ = [
    "backprop_gradient",
    "minibatch_run",
    "relu_network_losses",
    "relu_pair_losses",
    "total_loss",
]

Array = NDArray[np.float64]
Loss = Callable[[torch.Tensor], torch.Tensor]


def relu_pair_losses() -> list[Loss]:
    r"""The 1-D per-sample losses :math:`[\mathrm{ReLU}(\theta), -\mathrm{ReLU}(-\theta), \theta^2/2]` on a
    tensor of shape ``(1,)``; their sum is :math:`\theta + \theta^2/2`."""
    return [
        lambda x: torch.relu(x).sum(),
        lambda x: -torch.relu(-x).sum(),
        lambda x: 0.5 * (x**2).sum(),
    ]


def relu_network_losses() -> list[Loss]:
    r"""Per-sample squared losses of :math:`f(x; w, v) = v\,\mathrm{ReLU}(wx)` on :math:`\{(1,1), (-1,-1)\}`,
    as functions of the parameter vector ``(w, v)``."""
    data = ((1.0, 1.0), (-1.0, -1.0))

    def loss(x_n: float, y_n: float) -> Loss:
        return lambda p: (p[1] * torch.relu(p[0] * x_n) - y_n) ** 2

    return [loss(x_n, y_n) for x_n, y_n in data]


def total_loss(losses: Sequence[Loss], theta: ArrayLike) -> float:
    """:math:`J(\\theta) = \\sum_n J_n(\\theta)` as a float."""
    x = torch.as_tensor(np.asarray(theta, dtype=np.float64))
    with torch.no_grad():
        return float(sum(f(x) for f in losses))


def backprop_gradient(losses: Sequence[Loss], theta: ArrayLike, batch: Sequence[int] | None = None) -> Array:
    r"""What backpropagation returns for :math:`\sum_{n\in B} J_n` at ``theta`` (all samples if ``batch`` is
    ``None``): an element of :math:`\sum_{n\in B}\partial J_n(\theta)`."""
    idx = range(len(losses)) if batch is None else batch
    x = torch.tensor(np.asarray(theta, dtype=np.float64), requires_grad=True)
    total = sum(losses[n](x) for n in idx)
    (g,) = torch.autograd.grad(total, x)
    return g.numpy()


def minibatch_run(
    losses: Sequence[Loss],
    theta0: ArrayLike,
    *,
    method: str = "sgd",
    lr: float = 0.1,
    n_steps: int = 2000,
    batch_size: int = 1,
    alpha: float = 0.5,
    beta: float = 0.1,
    seed: int = 0,
) -> Array:
    r"""Mini-batch SGD or INNA on :math:`J = \sum_n J_n`, with the paper's step :math:`\gamma_0/\sqrt{k+1}`.

    Each step draws ``batch_size`` samples uniformly without replacement and uses the unbiased estimate
    :math:`\frac{N}{|B|}\sum_{n\in B}\nabla J_n`. INNA starts with ``initial_speed=0`` (at rest).

    Returns:
        the iterates, shape ``(n_steps + 1, dim)``.
    """
    if method not in ("sgd", "inna"):
        raise ValueError(f"method must be 'sgd' or 'inna', got {method!r}")
    n = len(losses)
    if not (isinstance(batch_size, int) and 1 <= batch_size <= n):
        raise ValueError(f"batch_size must be an int in [1, {n}], got {batch_size}")
    if not (isinstance(n_steps, int) and n_steps >= 1):
        raise ValueError(f"n_steps must be an int >= 1, got {n_steps}")
    rng = np.random.default_rng(seed)
    p = torch.nn.Parameter(torch.tensor(np.atleast_1d(np.asarray(theta0, dtype=np.float64))))
    if method == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD([p], lr=lr)
    else:
        opt = INNA([p], lr=lr, alpha=alpha, beta=beta, initial_speed=0.0)
    sched = PowerDecayLR(opt, power=0.5)
    path = np.empty((n_steps + 1, p.numel()))
    path[0] = p.detach().numpy()
    for k in range(1, n_steps + 1):
        batch = rng.choice(n, size=batch_size, replace=False)
        opt.zero_grad()
        loss = (n / batch_size) * sum(losses[i](p) for i in batch)
        loss.backward()
        opt.step()
        sched.step()
        path[k] = p.detach().numpy()
    return path
