"""inna.formulas against the float64 references: the phase form built from the shared formulas reproduces the
paper's (θ, ψ) INNA and the official ψ-form INNAprop. NumPy only, so it runs in every CI venv (with or without torch).
"""

from __future__ import annotations

import math
from fractions import Fraction

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


# --------------------------------------------------------------------------------- the stability rule's tolerance

#: The significant bits (implicit bit included) of each floating dtype, to round a float as that dtype stores it.
SIGNIFICANT_BITS = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}

#: Every documented default (lr, alpha, beta) of the two optimizers, in every framework.
DOCUMENTED_DEFAULTS = {"INNA": (0.1, 0.5, 0.1), "INNAprop": (1e-3, 0.1, 0.9)}


def stored_as(value: float, dtype: str) -> float:
    """``value`` rounded to nearest as ``dtype`` stores it (no framework needed: normal numbers only)."""
    mantissa, exponent = math.frexp(value)
    bits = SIGNIFICANT_BITS[dtype]
    return math.ldexp(round(mantissa * 2**bits), exponent - bits)


def test_stored_as_rounds_like_numpy():
    for value in (0.1, 1e-3, 0.9, 0.5, 1 / 3):
        assert stored_as(value, "float32") == float(np.float32(value))
        assert stored_as(value, "float16") == float(np.float16(value))
        assert stored_as(value, "float64") == value


@pytest.mark.parametrize("dtype", sorted(SIGNIFICANT_BITS))
@pytest.mark.parametrize("name", sorted(DOCUMENTED_DEFAULTS))
def test_documented_defaults_keep_the_rule_in_every_dtype(name, dtype):
    """lr = beta = 0.1 stored in float32 reads back as 0.10000000149 > 0.1: with the dtype's epsilon as the
    tolerance, the documented defaults (and lr = beta, wherever each is stored) never break the rule."""
    lr, alpha, beta = DOCUMENTED_DEFAULTS[name]
    rtol = F.machine_epsilon(dtype)
    for stored_lr, stored_beta in ((stored_as(lr, dtype), beta), (stored_as(lr, dtype), stored_as(beta, dtype))):
        assert not F.stability_rule_broken(stored_lr, alpha, stored_beta, rtol=rtol)
    assert not F.stability_rule_broken(stored_as(beta, dtype), alpha, beta, rtol=rtol)  # lr = beta, the edge


def test_float32_lr_equal_to_beta_breaks_the_exact_rule_only():
    lr = float(np.float32(0.1))
    assert lr > 0.1 and F.stability_rule_broken(lr, 0.5, 0.1)
    assert not F.stability_rule_broken(lr, 0.5, 0.1, rtol=F.machine_epsilon("float32"))
    assert not F.stability_rule_broken(lr, 0.5, 0.1, rtol=F.machine_epsilon("torch.float32"))


@pytest.mark.parametrize("dtype", sorted(SIGNIFICANT_BITS))
def test_a_real_violation_is_broken_in_every_dtype(dtype):
    rtol = F.machine_epsilon(dtype)
    assert F.stability_rule_broken(stored_as(0.2, dtype), 0.5, 0.1, rtol=rtol)  # lr = 2 beta
    assert F.stability_rule_broken(stored_as(0.1 * (1 + 4 * rtol), dtype), 0.5, 0.1, rtol=rtol)  # just beyond
    assert F.stability_rule_broken(stored_as(0.05, dtype), 50.0, 0.1, rtol=rtol)  # lr alpha = 2.5


@given(lr=st.floats(0.0, 10.0), alpha=st.floats(0.0, 10.0), beta=st.floats(1e-3, 10.0), rtol=st.floats(0.0, 1e-2))
def test_the_tolerance_only_forgives_rounding(lr, alpha, beta, rtol):
    exact = lr > beta or lr * alpha >= 2
    assert F.stability_rule_broken(lr, alpha, beta) == exact
    if F.stability_rule_broken(lr, alpha, beta, rtol=rtol):
        assert exact  # a tolerance never invents a violation
    if exact and (lr > beta * (1 + 2 * rtol) or lr * alpha >= 2 * (1 + 2 * rtol)):
        assert F.stability_rule_broken(lr, alpha, beta, rtol=rtol)  # nor hides one beyond the rounding


def test_machine_epsilon_and_bad_tolerances():
    assert F.machine_epsilon("float32") == np.finfo(np.float32).eps
    assert F.machine_epsilon("float64") == np.finfo(np.float64).eps
    assert F.machine_epsilon("float16") == np.finfo(np.float16).eps
    with pytest.raises(ValueError, match="'int32' is not a floating dtype"):
        F.machine_epsilon("int32")
    for bad in (-1e-7, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="rtol must be a finite number >= 0"):
            F.stability_rule_broken(0.1, 0.5, 0.1, rtol=bad)


# ------------------------------------------------------------------------------------ the accurate bias correction


def exact_bias_correction(sigma: float, t: int) -> float:
    """1/sqrt(1 - sigma^t) with 1 - sigma^t exact (fractions), then one rounding to double and a double sqrt."""
    return 1 / math.sqrt(float(1 - Fraction(sigma) ** t))


@pytest.mark.parametrize("sigma", [0.9, 0.99, 0.999, 0.9999])
def test_rms_bias_correction_is_accurate_in_float32(sigma):
    """In float32, with float32's expm1 and log, the expm1 form is within 4 float32 ulps (relative 2^-22) of the
    exact value for the stored sigma at every step; the plain (1 - sigma^t)^(-1/2) is off by up to hundreds of ulps
    for sigma near 1 (the reason the accurate form is the one every framework uses)."""
    ulp = 2.0**-24
    s32 = np.float32(sigma)
    worst_plain = 0.0
    for t in (1, 2, 3, 5, 10, 30, 100, 1000, 10000):
        got = F.rms_bias_correction(s32, np.float32(t), expm1=np.expm1, log=np.log)
        assert got.dtype == np.float32
        exact = exact_bias_correction(float(s32), t)
        assert abs(float(got) / exact - 1) <= 4 * ulp, (t, float(got), exact)
        plain = (np.float32(1) - s32 ** np.float32(t)) ** np.float32(-0.5)
        worst_plain = max(worst_plain, abs(float(plain) / exact - 1) / ulp)
    if sigma >= 0.999:
        assert worst_plain > 40, worst_plain


def test_rms_bias_correction_in_double_and_at_sigma_zero():
    for sigma in (0.9, 0.999, 0.99999):
        for t in (1, 2, 7, 100):
            assert F.rms_bias_correction(sigma, t) == pytest.approx(exact_bias_correction(sigma, t), rel=4e-16)
    assert F.rms_bias_correction(0.0, 5) == 1.0
    assert F.rms_bias_correction(0, np.float32(3)).dtype == np.float32  # the step's type


# ------------------------------------------------------------------------------------------------ the power decay


@given(step=st.integers(0, 10**6), power=st.floats(0.0, 2.0), scale=st.floats(0.0, 3.0))
def test_power_decay_factor_is_one_over_one_plus_ck_to_the_q(step, power, scale):
    assert F.power_decay_factor(step, power, scale) == pytest.approx((1 + scale * step) ** -power, rel=1e-15)
    assert F.power_decay_factor(0, power, scale) == 1.0


def test_power_decay_factor_on_arrays_and_the_paper_default():
    steps = np.arange(5, dtype=np.float32)
    got = F.power_decay_factor(steps, 0.5, 1.0)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, 1 / np.sqrt(np.arange(1, 6)), rtol=1e-7)


@pytest.mark.parametrize(
    "values, message",
    [
        (dict(power=-0.5), r"Invalid power value: -0.5 \(Owner requires 0 <= power < inf\)"),
        (dict(scale=float("nan")), r"Invalid scale value: nan \(Owner requires 0 <= scale < inf\)"),
        (dict(init_value=float("inf")), r"Invalid init_value value: inf"),
        (dict(power=True), r"Invalid power value: True"),
        (dict(power="0.5"), r"Invalid power value: '0.5'"),
    ],
)
def test_check_power_decay_args_names_the_argument(values, message):
    with pytest.raises(ValueError, match=message):
        F.check_power_decay_args("Owner", **values)
    F.check_power_decay_args("Owner", power=0.0, scale=1, init_value=0.5)  # good values pass
