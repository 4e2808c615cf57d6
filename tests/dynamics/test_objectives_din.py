"""Objectives and DIN integration: against closed forms and the lifted system itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import expm

from inna.dynamics import (
    Objective,
    initial_psi,
    inna_trajectory,
    integrate_din,
    lifted_field,
    log_cosh,
    quadratic,
    rosenbrock,
)

floats = st.floats(-2.0, 2.0, allow_nan=False)


@settings(max_examples=20)
@given(st.lists(floats, min_size=1, max_size=4), st.data())
def test_autograd_gradient_matches_closed_form(x, data):
    s = data.draw(st.lists(st.floats(0.2, 3.0), min_size=len(x), max_size=len(x)))
    obj = log_cosh(s)
    s, x = np.array(s), np.array(x)
    np.testing.assert_allclose(obj.gradient(x), s * np.tanh(s * x), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(obj.value(x), np.sum(np.log(np.cosh(s * x))), rtol=1e-12, atol=1e-14)


def test_numpy_objective_and_errors():
    obj = rosenbrock()
    np.testing.assert_allclose(obj.gradient([1.0, 1.0]), [0.0, 0.0])
    eps = 1e-6
    x = np.array([-0.7, 0.3])
    fd = [(obj.value(x + eps * e) - obj.value(x - eps * e)) / (2 * eps) for e in np.eye(2)]
    np.testing.assert_allclose(obj.gradient(x), fd, rtol=1e-6)
    with pytest.raises(ValueError, match="scalar"):
        Objective(lambda t: t * 2).gradient([1.0, 2.0])
    with pytest.raises(ValueError, match="scalar tensor"):
        Objective(lambda t: 3.0).value([1.0])
    with pytest.raises(ValueError, match="grad returned shape"):
        Objective(lambda x: 0.0, lambda x: np.zeros(3)).gradient([1.0])
    with pytest.raises(ValueError, match="curvatures"):
        quadratic([1.0, -1.0])
    with pytest.raises(ValueError, match="1-D"):
        obj.value(np.zeros((2, 2)))


def test_autograd_selection_for_nonsmooth():
    obj = Objective(lambda x: x.abs().sum() + torch.relu(x).sum())
    np.testing.assert_array_equal(obj.gradient([0.0, 2.0, -1.0]), [0.0, 2.0, -1.0])


@settings(max_examples=15)
@given(
    h=st.floats(0.0, 20.0),
    alpha=st.floats(0.0, 2.0),
    beta=st.floats(0.01, 1.0),
    th0=floats,
    v0=floats,
)
def test_din_on_quadratic_matches_second_order_ode(h, alpha, beta, th0, v0):
    # DIN on J = h/2 theta^2 is theta'' + (alpha + beta h) theta' + h theta = 0: solve it by expm.
    traj = integrate_din(
        quadratic([h]), [th0], 3.0, alpha=alpha, beta=beta, velocity0=[v0], n_points=7, rtol=1e-10, atol=1e-12
    )
    a = np.array([[0.0, 1.0], [-h, -(alpha + beta * h)]])
    exact = np.array([expm(a * t) @ [th0, v0] for t in traj.t])
    np.testing.assert_allclose(traj.theta[:, 0], exact[:, 0], atol=1e-7)
    np.testing.assert_allclose(traj.velocity[:, 0], exact[:, 1], atol=1e-6)


@settings(max_examples=15)
@given(
    alpha=st.floats(0.0, 2.0),
    beta=st.floats(0.01, 1.0),
    x=st.lists(floats, min_size=2, max_size=2),
    v=st.lists(floats, min_size=2, max_size=2),
)
def test_initial_velocity_is_respected(alpha, beta, x, v):
    obj = log_cosh([2.0, 0.5])
    psi0 = initial_psi(obj, x, v, alpha, beta)
    np.testing.assert_allclose(
        psi0, (1 - alpha * beta) * np.array(x) - beta * np.array(v) - beta**2 * obj.gradient(x), atol=1e-14
    )
    # The lifted field at (theta0, psi0) gives back theta'(0) = v.
    rhs = lifted_field(obj, alpha, beta)(0.0, np.concatenate([x, psi0]))
    np.testing.assert_allclose(rhs[:2], v, atol=1e-12)


def test_returned_psi_solves_the_lifted_system():
    # The solver works in phase coordinates; the (theta, psi) it returns must satisfy the paper's system.
    obj = rosenbrock()
    alpha, beta = 0.7, 0.05
    traj = integrate_din(obj, [-1.0, 1.5], 2.0, alpha=alpha, beta=beta, rtol=1e-11, atol=1e-12)
    f = lifted_field(obj, alpha, beta)
    eps = 1e-5
    for t in (0.3, 1.0, 1.7):
        plus, minus = traj.at(t + eps), traj.at(t - eps)
        fd = (np.concatenate(plus) - np.concatenate(minus)) / (2 * eps)
        np.testing.assert_allclose(fd, f(t, np.concatenate(traj.at(t))), rtol=1e-5, atol=1e-5)


def test_euler_scheme_is_inna_and_converges_to_rk45():
    obj = log_cosh([2.0, 1.0], [0.3, -0.2])
    x0 = [-1.0, 1.0]
    euler = integrate_din(obj, x0, 2.0, method="euler", dt=0.01, n_points=201)
    it = inna_trajectory(obj, x0, 0.01, 200, initial_speed=0.0)
    np.testing.assert_allclose(euler.theta, it.theta, atol=1e-12)
    np.testing.assert_allclose(euler.psi, it.psi, atol=1e-12)
    ref = integrate_din(obj, x0, 2.0, rtol=1e-11, atol=1e-12)
    errs = [
        np.abs(integrate_din(obj, x0, 2.0, method="euler", dt=dt).at(2.0)[0] - ref.at(2.0)[0]).max()
        for dt in (0.01, 0.005)
    ]
    assert 1.7 < errs[0] / errs[1] < 2.3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(t_end=0.0), "t_end must be finite and > 0"),
        (dict(t_end=1.0, beta=0.0), "beta must be finite and > 0"),
        (dict(t_end=1.0, alpha=-1.0), "alpha must be finite and >= 0"),
        (dict(t_end=1.0, method="euler", dt=2.0), r"dt must be in \(0, t_end=1.0\]"),
        (dict(t_end=1.0, method="nope"), "method must be 'euler' or a solve_ivp method"),
        (dict(t_end=1.0, velocity0=[1.0, 2.0, 3.0]), "velocity0 must have the shape of theta0"),
        (dict(t_end=1.0, n_points=1), "n_points must be an int >= 2"),
    ],
)
def test_integrate_din_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        integrate_din(quadratic([1.0, 2.0]), [1.0, 1.0], **kwargs)


def test_trajectory_at_checks_range():
    traj = integrate_din(quadratic([1.0]), [1.0], 1.0)
    with pytest.raises(ValueError, match=r"t must be in \[0.0, 1.0\]"):
        traj.at(2.0)
