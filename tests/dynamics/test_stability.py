"""Linear stability of INNA: formula vs the optimizer itself, vs brute-force iteration, and the rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from inna import INNA
from inna.dynamics import (
    heavy_ball_matrix,
    heavy_ball_spectral_radius,
    is_stable,
    iteration_matrix,
    lr_breaks_rule,
    spectral_radius,
    stable_curvature_interval,
)
from inna.torch.functional import inna as inna_update
from inna.torch.functional import phase_from_psi, psi_from_phase

params = dict(lr=st.floats(1e-3, 2.0), alpha=st.floats(0.0, 3.0), beta=st.floats(1e-2, 2.0), h=st.floats(0.0, 500.0))


@settings(max_examples=30)
@given(**params)
def test_matrix_is_one_step_of_the_project_update(lr, alpha, beta, h):
    # apply the core's functional update to the basis vectors (theta, psi) = e1, e2
    cols = []
    for theta, psi in ((1.0, 0.0), (0.0, 1.0)):
        p = torch.tensor([theta], dtype=torch.float64)
        phase = phase_from_psi(p, torch.tensor([psi], dtype=torch.float64), alpha=alpha, beta=beta)
        inna_update([p], [h * p.clone()], [phase], lr=lr, alpha=alpha, beta=beta, foreach=False)
        cols.append([p.item(), psi_from_phase(p, phase, alpha=alpha, beta=beta).item()])
    m = iteration_matrix(lr, alpha, beta, h)
    np.testing.assert_allclose(np.array(cols).T, m, rtol=1e-9, atol=1e-9 * (1 + np.abs(m).max()))


@settings(max_examples=40)
@given(**params)
def test_closed_form_radius_is_the_eigenvalue_modulus(lr, alpha, beta, h):
    m = iteration_matrix(lr, alpha, beta, h)
    rho = max(abs(np.linalg.eigvals(m)))
    # eigvals of a (nearly) defective matrix are only accurate to ~sqrt(eps) * ||M||
    assert spectral_radius(lr, alpha, beta, h) == pytest.approx(rho, rel=1e-6, abs=1e-7 * (1 + np.abs(m).max()))


@settings(max_examples=60)
@given(**params)
def test_jury_conditions_agree_with_the_radius(lr, alpha, beta, h):
    rho = float(spectral_radius(lr, alpha, beta, h))
    assume(abs(rho - 1) > 1e-6)
    assert bool(is_stable(lr, alpha, beta, h)) == (rho < 1)


@pytest.mark.parametrize(
    ("lr", "alpha", "beta", "h"),
    [
        (0.1, 0.5, 0.1, 100.0),
        (0.15, 0.5, 0.1, 11.0),
        (0.05, 0.5, 0.1, 600.0),
        (0.2, 0.0, 0.1, 3.0),
        (0.02, 1.3, 0.01, 400.0),
        (0.01, 0.5, 0.02, 300.0),
        (0.3, 0.5, 0.1, 1.0),
    ],
)
def test_radius_against_brute_force_inna(lr, alpha, beta, h):
    # iterate the real optimizer on J = h/2 ||theta||^2 and measure the growth rate of (theta, psi)
    p = torch.nn.Parameter(torch.tensor([1.0, -0.3], dtype=torch.float64))
    opt = INNA([p], lr=lr, alpha=alpha, beta=beta, initial_speed=0.7)
    norms = []
    for _ in range(800):
        p.grad = h * p.detach().clone()
        opt.step()
        norms.append(torch.cat([p.detach(), opt.psi(p)]).norm().item())
    # peaks over windows longer than the rotation period, so complex eigenvalues do not blur the rate
    rate = (max(norms[-100:]) / max(norms[200:300])) ** (1 / 500)
    assert rate == pytest.approx(float(spectral_radius(lr, alpha, beta, h)), abs=5e-3)


def test_zero_curvature_eigenvalues_and_heavy_ball_equivalence():
    eig = np.sort(np.linalg.eigvals(iteration_matrix(0.3, 0.5, 0.1, 0.0)).real)
    np.testing.assert_allclose(eig, [1 - 0.3 * 0.5, 1.0])
    # gamma = beta: INNA is heavy ball with momentum 1 - alpha beta and step beta^2
    h = np.logspace(-2, 3, 50)
    np.testing.assert_allclose(spectral_radius(0.1, 0.5, 0.1, h), heavy_ball_spectral_radius(0.01, 0.95, h))
    m = heavy_ball_matrix(0.01, 0.9, 50.0)
    assert heavy_ball_spectral_radius(0.01, 0.9, 50.0) == pytest.approx(max(abs(np.linalg.eigvals(m))))


@settings(max_examples=40)
@given(lr=st.floats(1e-3, 1.0), alpha=st.floats(0.0, 3.0), beta=st.floats(1e-2, 1.0))
def test_stable_interval_endpoints(lr, alpha, beta):
    assume(lr != beta or alpha > 1e-12)  # lr == beta with alpha ~ 0 is marginal (rho == 1 up to round-off)
    lo, hi = stable_curvature_interval(lr, alpha, beta)
    grid = np.logspace(-4, 6, 400)
    stable = is_stable(lr, alpha, beta, grid)
    if np.isnan(lo):
        assert not stable.any()
        return
    inside = (grid > lo * (1 + 1e-9)) & (grid < hi * (1 - 1e-9))
    outside = (grid < lo * (1 - 1e-9)) | (grid > hi * (1 + 1e-9))
    assert stable[inside].all() and not stable[outside].any()


@settings(max_examples=60)
@given(lr=st.floats(1e-3, 1.0), alpha=st.floats(0.0, 3.0), beta=st.floats(1e-2, 1.0))
def test_the_practical_rule(lr, alpha, beta):
    if lr_breaks_rule(lr, alpha, beta):
        # some curvature diverges for sure
        h_bad = 0.0 if lr * alpha >= 2 else alpha / (lr - beta) * 1.01 + 1e-9
        assert spectral_radius(lr, alpha, beta, h_bad) >= 1
        assert not is_stable(lr, alpha, beta, h_bad)
    else:
        assume(lr < beta or alpha > 1e-12)  # lr == beta with alpha ~ 0 is marginal (rho == 1)
        # stable for every curvature up to the sufficient bound lr*beta*h < 2 - lr*alpha
        h = np.linspace(1e-6, (2 - lr * alpha) / (lr * beta), 200)[:-1]
        assert is_stable(lr, alpha, beta, h).all()


def test_defaults_numbers_in_the_docs():
    assert stable_curvature_interval(0.1, 0.5, 0.1)[1] == pytest.approx(390.0)
    assert stable_curvature_interval(0.15, 0.5, 0.1)[1] == pytest.approx(10.0)
    assert stable_curvature_interval(0.5, 0.5, 0.1)[1] == pytest.approx(1.25)
    assert not lr_breaks_rule(0.1, 0.5, 0.1) and lr_breaks_rule(0.11, 0.5, 0.1) and lr_breaks_rule(0.05, 50.0, 0.1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-0.1, 0.5, 0.1, 1.0), "lr must be finite and >= 0"),
        ((0.1, -1, 0.1, 1.0), "alpha must be finite and >= 0"),
        ((0.1, 0.5, 0.0, 1.0), "beta must be finite and > 0"),
        ((0.1, 0.5, 0.1, -2.0), "h must be finite and >= 0"),
    ],
)
def test_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        spectral_radius(*args)
    with pytest.raises(ValueError, match=message):
        iteration_matrix(*args)
