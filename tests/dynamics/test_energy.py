"""The Lyapunov energy: dissipation identity, monotonicity, O(1/t) bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inna.dynamics import dissipation, energy, integrate_din, log_cosh, rate_bound, rosenbrock, toy_objective

SMOOTH = [
    ("rosenbrock", rosenbrock, [-1.5, 2.0]),
    ("log_cosh", lambda: log_cosh([3.0, 1.0, 0.5], [0.5, -0.5, 1.0]), [-1.0, 1.0, 2.0]),
]


@pytest.mark.parametrize(("name", "make", "x0"), SMOOTH)
@pytest.mark.parametrize(("alpha", "beta"), [(0.5, 0.1), (1.3, 0.01), (0.0, 0.5)])
def test_dissipation_identity_along_solutions(name, make, x0, alpha, beta):
    obj = make()
    traj = integrate_din(obj, x0, 5.0, alpha=alpha, beta=beta, velocity0=np.ones(len(x0)), rtol=1e-11, atol=1e-12)
    eps = 1e-5
    for t in np.linspace(0.2, 4.8, 7):
        e_plus = energy(obj, *traj.at(t + eps), alpha, beta)
        e_minus = energy(obj, *traj.at(t - eps), alpha, beta)
        measured = (e_plus - e_minus) / (2 * eps)
        predicted = dissipation(obj, *traj.at(t), alpha, beta)
        assert predicted <= 0
        np.testing.assert_allclose(measured, predicted, rtol=1e-4, atol=1e-7)


@settings(max_examples=15)
@given(
    alpha=st.floats(0.0, 2.0),
    beta=st.floats(0.01, 1.0),
    x0=st.lists(st.floats(-3, 3), min_size=3, max_size=3),
    v0=st.floats(-3, 3),
)
def test_energy_non_increasing_and_rate_bound(alpha, beta, x0, v0):
    obj = log_cosh([3.0, 1.0, 0.5], [0.5, -0.5, 1.0])
    traj = integrate_din(obj, x0, 10.0, alpha=alpha, beta=beta, velocity0=[v0, 0.0, -v0], n_points=400)
    e = traj.energy
    assert np.all(np.diff(e) <= 1e-7 * (1 + abs(e[0])))
    running, bound = traj.rate_bound()
    assert np.all(running[1:] <= bound[1:] * (1 + 1e-6))
    # the bound uses the right constant: E0 - (1 + alpha beta) inf J, with inf J = 0 here
    np.testing.assert_allclose(bound[-1] * traj.t[-1], e[0])


def test_energy_equals_its_din_form():
    obj = rosenbrock()
    alpha, beta = 0.5, 0.1
    traj = integrate_din(obj, [-1.0, 1.0], 1.0, alpha=alpha, beta=beta, velocity0=[0.3, -2.0])
    other = (1 + alpha * beta) * traj.values + 0.5 * np.sum((traj.velocity + beta * traj.gradients) ** 2, axis=1)
    np.testing.assert_allclose(traj.energy, other, rtol=1e-10)
    # at (-1, 1): J = 4, grad J = (-4, 0), so theta' + beta grad J = (0.3 - 0.4, -2)
    assert traj.energy[0] == pytest.approx(1.05 * 4 + 0.5 * (0.1**2 + 2.0**2), rel=1e-12)


def test_energy_decreases_on_the_nonsmooth_toy_with_a_small_step():
    # Nonsmooth J, fixed-step scheme: E decreases up to O(dt) per step (net decrease, tiny increases).
    obj = toy_objective()
    traj = integrate_din(obj, [-1.0, 1.5], 3.0, alpha=0.5, beta=0.1, method="euler", dt=1e-3, n_points=301)
    e = traj.energy
    assert e[-1] < 0.05 * e[0]
    assert np.all(np.diff(e) <= 1e-2)
    running, bound = traj.rate_bound()
    assert np.all(running[1:] <= bound[1:])


def test_rate_bound_errors():
    with pytest.raises(ValueError, match="same shape"):
        rate_bound([0, 1], [1.0], 1.0, 0.0, 0.5, 0.1)
    with pytest.raises(ValueError, match="energy0 must be >="):
        rate_bound([0, 1], [1.0, 1.0], -1.0, 0.0, 0.5, 0.1)
    obj = log_cosh([1.0])
    obj.inf = None
    with pytest.raises(ValueError, match="inf_value is required"):
        integrate_din(obj, [1.0], 1.0).rate_bound()
