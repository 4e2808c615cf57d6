"""inna.formulas against the float64 references: the phase form built from the shared formulas reproduces the
paper's (θ, ψ) INNA and the official ψ-form INNAprop. NumPy only, so it runs in every CI venv (with or without torch).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import ReferenceINNA, ReferenceINNAprop

from inna import formulas as F


def gradient(theta: np.ndarray, k: int) -> np.ndarray:
    rng = np.random.default_rng(k)
    return np.tanh(theta) + 0.3 * theta + 0.2 * rng.standard_normal(theta.shape)


def cosine_with_warmup(k: int, peak: float, warmup: int = 20, total: int = 200) -> float:
    if k < warmup:
        return peak * (k + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (k - warmup) / (total - warmup)))


@given(
    alpha=st.floats(0.0, 2.0),
    beta=st.floats(0.05, 2.0),
    lr=st.floats(0.0, 0.2),
    s=st.one_of(st.none(), st.floats(0.0, 2.0)),
    wd=st.floats(0.0, 0.1),
    decoupled=st.booleans(),
)
def test_inna_phase_form_matches_the_paper(alpha, beta, lr, s, wd, decoupled):
    theta0 = np.random.default_rng(0).standard_normal(7)
    ref = ReferenceINNA(
        lr=lr, alpha=alpha, beta=beta, initial_speed=s, weight_decay=wd, decoupled_weight_decay=decoupled
    )
    theta_ref = theta0.copy()
    theta, phase = theta0.copy(), None
    l2 = F.l2_coefficient(wd, beta, decoupled)
    for k in range(60):
        ref.step([theta_ref], [gradient(theta_ref, k)])
        g = gradient(theta, k)
        g_obj = g + (0.0 if decoupled else wd) * theta  # the initial velocity follows the objective's gradient
        if phase is None:
            phase = F.initial_phase_scale(beta, s) * g_obj
        g = g + l2 * theta
        c = F.inna_coefficients(lr, alpha, beta)
        theta, phase = theta - c.theta_phase * phase - c.theta_grad * g, c.phase_decay * phase + c.phase_grad * g
    np.testing.assert_allclose(theta, theta_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(F.psi_from_phase(theta, phase, alpha, beta), ref.psi[0], rtol=0, atol=1e-10)


@given(alpha=st.floats(0.0, 3.0), beta=st.floats(0.05, 3.0))
def test_psi_phase_round_trip(alpha, beta):
    theta, psi = np.array([0.3, -2.0, 5.0]), np.array([1.0, 0.25, -3.0])
    phase = F.phase_from_psi(theta, psi, alpha, beta)
    np.testing.assert_allclose(F.psi_from_phase(theta, phase, alpha, beta), psi, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("wd", [0.0, 0.01, 0.1])
@pytest.mark.parametrize(("alpha", "beta"), [(0.1, 0.9), (1.0, 1.0), (2.0, 2.0)])
def test_innaprop_phase_form_matches_the_official_form(alpha, beta, wd):
    """INNA's step on u = g/D with the exact decay shift of the phase equals the official ψ-form, under a cosine
    schedule with warmup, to float64 round-off."""
    sigma, eps, peak = 0.99, 1e-8, 0.05
    theta0 = np.random.default_rng(1).standard_normal(9)
    ref = ReferenceINNAprop(lr=peak, alpha=alpha, beta=beta, sigma=sigma, eps=eps, weight_decay=wd)
    theta_ref, theta = theta0.copy(), theta0.copy()
    phase, v = np.zeros_like(theta), np.zeros_like(theta)  # psi_0 = (1 - alpha beta) theta_0 <=> phase_0 = 0
    for k in range(200):
        lr = cosine_with_warmup(k, peak)
        ref.step([theta_ref], [gradient(theta_ref, k)], lr=lr)
        g = gradient(theta, k)
        v = sigma * v + (1 - sigma) * g * g
        u = g / (np.sqrt(v) * F.rms_bias_correction(sigma, k + 1) + eps)
        phase = phase + F.innaprop_decay_phase_shift(lr, wd, alpha, beta) * theta
        theta = (1 - lr * wd) * theta
        c = F.inna_coefficients(lr, alpha, beta)
        theta, phase = theta - c.theta_phase * phase - c.theta_grad * u, c.phase_decay * phase + c.phase_grad * u
    np.testing.assert_allclose(theta, theta_ref, rtol=0, atol=1e-11)
    np.testing.assert_allclose(F.psi_from_phase(theta, phase, alpha, beta), ref.psi[0], rtol=0, atol=1e-11)


def test_stability_rule_and_message():
    assert not F.stability_rule_broken(0.1, 0.5, 0.1)
    assert F.stability_rule_broken(0.15, 0.5, 0.1)
    assert F.stability_rule_broken(0.05, 50.0, 0.1)
    assert F.unstable_curvature(0.5, 0.5, 0.1) == pytest.approx(1.25)
    assert F.unstable_curvature(0.1, 0.5, 0.1) == math.inf
    assert F.unstable_curvature(0.05, 50.0, 0.1) == 0.0
    msg = F.stability_warning_message("INNA", "param group 0", 0.5, 0.5, 0.1)
    assert msg.startswith("INNA: param group 0 has lr=0.5 ") and "alpha/(lr - beta) = 1.25" in msg
    assert "flat ones" in F.stability_warning_message("INNAprop", "x", 0.05, 50.0, 0.1)


def test_rms_bias_correction_and_initial_phase_scale():
    assert F.rms_bias_correction(0.999, 1) == pytest.approx(1 / math.sqrt(0.001))
    assert F.rms_bias_correction(0.0, 1) == 1.0
    assert F.initial_phase_scale(0.1, None) == 0.0
    assert F.initial_phase_scale(0.1, 1.0) == pytest.approx(0.9)
    assert F.l2_coefficient(0.2, 0.5, decoupled_weight_decay=True) == pytest.approx(0.4)
    assert F.l2_coefficient(0.2, 0.5, decoupled_weight_decay=False) == 0.2
