"""optax's own optimizer test (optax/_src/alias_test.py): each transformation minimises a parabola and the Rosenbrock
function under jit to the known optimum, in float32 and complex64 (10,000 steps, tolerance 3e-2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import inna.optax


def parabola(dtype):
    start = jnp.array([-1.0, 10.0, 1.0], dtype)
    optimum = jnp.array([1.0, -1.0, 1.0], dtype) * (1 + 1j if jnp.iscomplexobj(start) else 1)
    return start, optimum, lambda p: jnp.sum(jnp.abs(p - optimum) ** 2)


def rosenbrock(dtype):
    start = jnp.array([0.0, 0.0], dtype)
    a = 1 + 1j if jnp.iscomplexobj(start) else 1.0
    optimum = jnp.array([a, a**2], dtype)
    return start, optimum, lambda p: jnp.abs(a - p[0]) ** 2 + 100.0 * jnp.abs(p[1] - p[0] ** 2) ** 2


# Step sizes within INNA's stability rule for Rosenbrock's curvature (about 1000 at the optimum, 2000 in complex):
# lr * beta * h < 2 - lr * alpha. INNAprop decays its step (cosine), as RMS-scaled methods need to settle.
OPTIMIZERS = {
    "inna": lambda: inna.optax.inna(5e-3),
    "inna_sgd_first_step": lambda: inna.optax.inna(5e-3, initial_speed=1.0),
    "scale_by_inna": lambda: inna.optax.scale_by_inna(5e-3, alpha=1.0, initial_speed=0.0),
    "innaprop": lambda: inna.optax.innaprop(optax.cosine_decay_schedule(0.05, 10_000), weight_decay=0.0),
    "scale_by_innaprop": lambda: inna.optax.scale_by_innaprop(optax.cosine_decay_schedule(0.02, 10_000)),
}


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.complex64], ids=["float32", "complex64"])
@pytest.mark.parametrize("target", [parabola, rosenbrock])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_minimises_to_the_known_optimum(name, target, dtype):
    opt = OPTIMIZERS[name]()
    start, optimum, objective = target(dtype)

    def body(carry, _):
        params, state = carry
        grads = jax.grad(objective)(params).conj()  # optax's convention for complex parameters
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    run = jax.jit(lambda p, s: jax.lax.scan(body, (p, s), None, length=10_000)[0])
    params, state = run(start, opt.init(start))
    assert params.dtype == dtype and int(state.count) == 10_000
    np.testing.assert_allclose(np.asarray(params), np.asarray(optimum), rtol=3e-2, atol=3e-2)
