"""Run by test_optax_sharding.py in a fresh process: XLA_FLAGS must force 2 host devices before jax initialises."""

from __future__ import annotations

import os
import sys

assert "--xla_force_host_platform_device_count=2" in os.environ.get("XLA_FLAGS", "")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import inna.optax  # noqa: E402

OPTIMIZERS = {
    "inna": lambda: inna.optax.inna(inna.optax.power_decay(0.05), initial_speed=1.0, weight_decay=0.01),
    "innaprop": lambda: inna.optax.innaprop(optax.warmup_cosine_decay_schedule(0.0, 1e-2, 5, 50), weight_decay=0.1),
    "scale_by_inna": lambda: inna.optax.scale_by_inna(0.05, initial_speed=0.0),
    "scale_by_innaprop": lambda: inna.optax.scale_by_innaprop(1e-2, sigma=0.99),
}


def loss(params, x):
    return jnp.mean((jnp.tanh(x @ params["w"]) @ params["v"] - 1.0) ** 2) + 0.1 * jnp.sum(params["b"] ** 2)


def train(opt, params, steps=15):
    @jax.jit
    def step(p, s, x):
        updates, s = opt.update(jax.grad(loss)(p, x), s, p)
        return optax.apply_updates(p, updates), s

    state = opt.init(params)
    for k in range(steps):
        x = jax.random.normal(jax.random.key(k), (8, 16))
        params, state = step(params, state, x)
    return params, state


def main(name: str) -> None:
    assert jax.device_count() == 2, jax.devices()
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    params = {
        "w": jax.random.normal(k1, (16, 8)) / 4,
        "v": jax.random.normal(k2, (8, 4)) / 3,
        "b": jax.random.normal(k3, (4,)),
    }
    mesh = Mesh(np.array(jax.devices()), ("x",))
    specs = {"w": P("x", None), "v": P(None, "x"), "b": P()}
    shardings = {k: NamedSharding(mesh, s) for k, s in specs.items()}
    sharded = jax.tree.map(jax.device_put, params, shardings)

    expected, _ = train(OPTIMIZERS[name](), jax.device_put(params, jax.devices()[0]))
    got, state = train(OPTIMIZERS[name](), sharded)
    for key in params:
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(expected[key]), rtol=1e-5, atol=1e-6)
        assert got[key].sharding.is_equivalent_to(shardings[key], got[key].ndim), (key, got[key].sharding)
    # the state is sharded like the params, after init and after the jitted steps
    for tree in [s for s in (getattr(state, "phase", None), getattr(state, "nu", None)) if s is not None]:
        for key in params:
            assert tree[key].sharding.is_equivalent_to(shardings[key], tree[key].ndim), (key, tree[key].sharding)
    # stable across steps: each params-like field has the params' sharding after init as after the steps (the count is
    # an uncommitted scalar, placed wherever a computation needs it, as optax's own counts are)
    init_state = OPTIMIZERS[name]().init(sharded)
    for field in ("phase", "nu"):
        for key in params if hasattr(init_state, field) else ():
            before, after = getattr(init_state, field)[key], getattr(state, field)[key]
            assert before.sharding.is_equivalent_to(shardings[key], params[key].ndim), (field, key, before.sharding)
            assert before.sharding.is_equivalent_to(after.sharding, params[key].ndim), (field, key, after.sharding)
    print("OK", name)


if __name__ == "__main__":
    main(sys.argv[1])
