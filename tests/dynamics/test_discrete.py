"""INNA iterates (inna.INNA) track DIN with a first-order global error."""

from __future__ import annotations

import numpy as np
import pytest

from inna.dynamics import inna_trajectory, integrate_din, log_cosh, rosenbrock, tracking_errors


@pytest.mark.parametrize("initial_speed", [0.0, 1.0])
def test_error_halves_when_the_step_halves(initial_speed):
    obj = log_cosh([3.0, 1.0], [0.5, -0.5])  # smooth, not quadratic
    lrs = [0.04, 0.02, 0.01, 0.005]
    err = tracking_errors(obj, [-1.0, 1.0], 4.0, lrs, alpha=0.5, beta=0.1, initial_speed=initial_speed)
    ratios = err[:-1] / err[1:]
    assert np.all((ratios > 1.7) & (ratios < 2.3)), ratios
    assert err[-1] < 0.05


def test_iterates_start_where_din_starts_and_psi_is_the_papers():
    obj = rosenbrock()
    alpha, beta, lr, s = 0.5, 0.1, 1e-3, 1.0
    it = inna_trajectory(obj, [-1.0, 1.5], lr, 3, alpha=alpha, beta=beta, initial_speed=s)
    g0 = obj.gradient([-1.0, 1.5])
    np.testing.assert_allclose(it.psi[0], (1 - alpha * beta) * it.theta[0] + beta * (s - beta) * g0)
    # the paper's update, written in (theta, psi), reproduces the optimizer's iterates
    th, ps = it.theta[0], it.psi[0]
    for k in range(3):
        c = (1 / beta - alpha) * th - ps / beta
        th, ps = th + lr * (c - beta * obj.gradient(th)), ps + lr * c
        np.testing.assert_allclose(it.theta[k + 1], th, rtol=1e-13)
        np.testing.assert_allclose(it.psi[k + 1], ps, rtol=1e-12, atol=1e-12)
    # the initial velocity -s grad J of INNA is DIN's velocity0
    din = integrate_din(obj, [-1.0, 1.5], 1.0, alpha=alpha, beta=beta, velocity0=-s * g0)
    np.testing.assert_allclose(din.psi[0], it.psi[0], rtol=1e-12)


def test_bad_steps_are_rejected():
    with pytest.raises(ValueError, match="divide horizon"):
        tracking_errors(log_cosh([1.0]), [1.0], 1.0, [0.3])
    with pytest.raises(ValueError, match="n_steps must be an int >= 1"):
        inna_trajectory(log_cosh([1.0]), [1.0], 0.1, 0)
