"""inna.optax against the float64 references of tests/reference.py: INNA (the paper's θ, ψ form) and INNAprop (the
official ψ-form), to 1e-12 in float64 and 1e-5 relative in float32.

float64 runs inside ``jax.enable_x64(True)`` (a context, so the float32 tests of the same process are unaffected):
every array of those tests is created inside it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ReferenceINNA, ReferenceINNAprop

import inna.optax
from inna import formulas

SHAPES = [(5,), (3, 4), ()]


def gradient(theta: np.ndarray, k: int, i: int) -> np.ndarray:
    """A deterministic noisy gradient at ``theta`` (step ``k``, leaf ``i``), in NumPy float64."""
    rng = np.random.default_rng(1000 * k + i)
    return np.tanh(theta) + 0.3 * theta + 0.2 * rng.standard_normal(np.shape(theta))


def initial_thetas(shapes=SHAPES, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def cosine_with_warmup(peak: float, warmup: int = 10, total: int = 80) -> optax.Schedule:
    return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, total, end_value=0.1 * peak)


def run_optax(opt, thetas0, steps: int, dtype, *, negate: bool = False, jit: bool = True):
    """Run ``opt`` on a list of leaves; each step's gradient is :func:`gradient` at the current (jax) iterate."""
    params = [jnp.asarray(t, dtype) for t in thetas0]
    state = opt.init(params)

    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    step = jax.jit(step) if jit else step
    for k in range(steps):
        grads = [jnp.asarray((-1 if negate else 1) * gradient(np.asarray(p, np.float64), k, i), dtype) for i, p in
                 enumerate(params)]  # fmt: skip
        params, state = step(params, state, grads)
    return [np.asarray(p, np.float64) for p in params], state


def run_reference(ref, thetas0, steps: int, lrs=None):
    thetas = [t.copy() for t in thetas0]
    for k in range(steps):
        grads = [gradient(t, k, i) for i, t in enumerate(thetas)]
        ref.step(thetas, grads, lr=None if lrs is None else lrs(k))
    return thetas


INNA_CASES = {
    "default": dict(),
    "start_at_rest": dict(initial_speed=0.0),
    "sgd_first_step": dict(initial_speed=1.0),
    "speed_0.35": dict(initial_speed=0.35),
    "l2": dict(weight_decay=0.05),
    "l2_speed_1": dict(weight_decay=0.05, initial_speed=1.0),
    "decoupled": dict(weight_decay=0.05, decoupled_weight_decay=True),
    "decoupled_speed_1": dict(weight_decay=0.05, decoupled_weight_decay=True, initial_speed=1.0),
}


@pytest.mark.parametrize("schedule", ["constant", "power_decay"])
@pytest.mark.parametrize("case", list(INNA_CASES))
def test_inna_float64_matches_reference(case, schedule):
    kwargs = dict(alpha=0.7, beta=0.3, **INNA_CASES[case])
    lr0, steps = 0.08, 60
    if schedule == "constant":
        lr, lrs = lr0, None
    else:
        lr, lrs = inna.optax.power_decay(lr0), (lambda k: lr0 / math.sqrt(k + 1))  # written independently here
    thetas0 = initial_thetas()
    ref = ReferenceINNA(lr=lr0, **kwargs)
    expected = run_reference(ref, thetas0, steps, lrs)
    with jax.enable_x64(True):
        got, state = run_optax(inna.optax.inna(lr, **kwargs), thetas0, steps, jnp.float64)
        assert state.phase[0].dtype == jnp.float64
        for i, (g, e) in enumerate(zip(got, expected)):
            np.testing.assert_allclose(g, e, rtol=0, atol=1e-12)
            psi = formulas.psi_from_phase(g, np.asarray(state.phase[i]), kwargs["alpha"], kwargs["beta"])
            np.testing.assert_allclose(psi, ref.psi[i], rtol=0, atol=1e-12)
        assert int(state.count) == steps


def test_inna_maximize_is_a_negated_gradient():
    """optax has no ``maximize``: ``chain(scale(-1), inna)`` is the PyTorch ``maximize=True`` (φ₀ included)."""
    kwargs = dict(alpha=0.5, beta=0.2, initial_speed=1.0, weight_decay=0.02)
    thetas0 = initial_thetas()
    thetas = [t.copy() for t in thetas0]
    ref = ReferenceINNA(lr=0.05, maximize=True, **kwargs)
    for k in range(40):
        ref.step(thetas, [-gradient(t, k, i) for i, t in enumerate(thetas)])  # ascend -J: the same problem
    with jax.enable_x64(True):
        got, _ = run_optax(optax.chain(optax.scale(-1.0), inna.optax.inna(0.05, **kwargs)), thetas0, 40, jnp.float64,
                           negate=True)  # fmt: skip
    for g, e in zip(got, thetas):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-12)


@settings(max_examples=15)
@given(
    alpha=st.floats(0.0, 2.0),
    beta=st.floats(0.05, 2.0),
    lr=st.floats(0.0, 0.2),
    s=st.one_of(st.none(), st.floats(0.0, 2.0)),
    wd=st.floats(0.0, 0.1),
    decoupled=st.booleans(),
    shapes=st.lists(st.lists(st.integers(1, 4), max_size=3).map(tuple), min_size=1, max_size=3),
)
def test_inna_float64_matches_reference_everywhere(alpha, beta, lr, s, wd, decoupled, shapes):
    kwargs = dict(alpha=alpha, beta=beta, initial_speed=s, weight_decay=wd, decoupled_weight_decay=decoupled)
    thetas0 = initial_thetas(shapes, seed=len(shapes))
    expected = run_reference(ReferenceINNA(lr=lr, **kwargs), thetas0, 25)
    with jax.enable_x64(True):
        got, _ = run_optax(inna.optax.inna(lr, **kwargs), thetas0, 25, jnp.float64, jit=False)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-11 * max(1.0, np.abs(e).max(initial=1.0)))


INNAPROP_CASES = {
    "defaults": dict(),
    "no_decay": dict(weight_decay=0.0),
    "strong_decay_22": dict(alpha=2.0, beta=2.0, weight_decay=0.3),
    "sigma_0.9_eps": dict(alpha=1.0, beta=1.0, sigma=0.9, eps=1e-3),
}


@pytest.mark.parametrize("schedule", ["constant", "cosine_with_warmup"])
@pytest.mark.parametrize("case", list(INNAPROP_CASES))
def test_innaprop_float64_matches_official_form(case, schedule):
    kwargs = INNAPROP_CASES[case]
    peak, steps = 0.05, 80
    thetas0 = initial_thetas()
    ref = ReferenceINNAprop(lr=peak, **kwargs)
    with jax.enable_x64(True):  # the schedule too is built in float64
        lr = peak if schedule == "constant" else cosine_with_warmup(peak, total=steps)
        # optax's schedules evaluate an int32 count in float32: the reference gets those very values (jitted, as
        # inside the update, since XLA may round a fused float32 expression differently from op-by-op)
        lrs = None if schedule == "constant" else (lambda k: float(jax.jit(lr)(jnp.int32(k))))
        expected = run_reference(ref, thetas0, steps, lrs)
        got, state = run_optax(inna.optax.innaprop(lr, **kwargs), thetas0, steps, jnp.float64)
    alpha, beta = kwargs.get("alpha", 0.1), kwargs.get("beta", 0.9)
    for i, (g, e) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-12)
        np.testing.assert_allclose(np.asarray(state.nu[i]), ref.v[i], rtol=1e-12, atol=1e-15)
        psi = formulas.psi_from_phase(g, np.asarray(state.phase[i]), alpha, beta)
        np.testing.assert_allclose(psi, ref.psi[i], rtol=0, atol=1e-12)


def test_innaprop_lr_above_beta_matches_official_form():
    """γ > β: the official form's sign flip is still its (unstable-rule) iterates; γ = β has no singularity here."""
    thetas0 = initial_thetas()
    expected = run_reference(ReferenceINNAprop(lr=0.5, beta=0.4, alpha=0.1), thetas0, 10)
    with jax.enable_x64(True):
        got, _ = run_optax(inna.optax.innaprop(0.5, beta=0.4, alpha=0.1), thetas0, 10, jnp.float64)
        at_beta, _ = run_optax(inna.optax.innaprop(0.4, beta=0.4), thetas0, 10, jnp.float64)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-10)
    assert all(np.isfinite(t).all() for t in at_beta)


def test_float32_inna_within_1e5_relative_of_float64_reference():
    kwargs = dict(alpha=0.7, beta=0.3, initial_speed=1.0, weight_decay=0.05)
    thetas0 = initial_thetas()
    expected = run_reference(ReferenceINNA(lr=0.08, **kwargs), thetas0, 80, lambda k: 0.08 / math.sqrt(k + 1))
    got, state = run_optax(inna.optax.inna(inna.optax.power_decay(0.08), **kwargs), thetas0, 80, jnp.float32)
    assert state.phase[0].dtype == jnp.float32
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5 * np.abs(e).max(initial=1.0))


def test_float32_innaprop_within_1e5_relative_of_float64_reference():
    schedule = cosine_with_warmup(0.05)
    jitted = jax.jit(schedule)
    thetas0 = initial_thetas()
    expected = run_reference(ReferenceINNAprop(weight_decay=0.1), thetas0, 80, lambda k: float(jitted(jnp.int32(k))))
    got, state = run_optax(inna.optax.innaprop(schedule, weight_decay=0.1), thetas0, 80, jnp.float32)
    assert state.phase[0].dtype == state.nu[0].dtype == jnp.float32
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5 * np.abs(e).max(initial=1.0))
