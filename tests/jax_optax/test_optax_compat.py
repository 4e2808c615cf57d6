"""inna.optax as an optax citizen: chain, inject_hyperparams, MultiSteps, masked / mask=, bf16 and complex params,
one trace under jit, the state's shapes and dtypes, "needs params" errors and hyperparameter validation."""

from __future__ import annotations

import zlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import inna.optax
from inna import INNAStabilityWarning

NEEDS_PARAMS = "requires the current value of parameters"


def tree_params():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    return {"w": jax.random.normal(k1, (4, 3)), "b": jax.random.normal(k2, (3,)), "s": jax.random.normal(k3, ())}


def grads_at(params, k: int):
    """A deterministic noisy gradient of a smooth objective, as a pytree like ``params``; a leaf's noise depends on
    its path and ``k`` only, so a subtree gets the same gradient as inside the whole tree."""

    def leaf(path, p):
        key = jax.random.fold_in(jax.random.key(100 + k), zlib.crc32(jax.tree_util.keystr(path).encode()))
        return (jnp.tanh(p) + 0.3 * p + 0.2 * jax.random.normal(key, p.shape)).astype(p.dtype)

    return jax.tree_util.tree_map_with_path(leaf, params)


def run(opt, params, steps: int, grad_fn=grads_at):
    state = opt.init(params)
    step = jax.jit(lambda p, s, g: _apply(opt, p, s, g))
    for k in range(steps):
        params, state = step(params, state, grad_fn(params, k))
    return params, state


def _apply(opt, params, state, grads):
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state


ALL = {
    "inna": lambda: inna.optax.inna(0.05),
    "inna_speed_wd": lambda: inna.optax.inna(0.05, initial_speed=1.0, weight_decay=0.01),
    "scale_by_inna": lambda: inna.optax.scale_by_inna(0.05, initial_speed=0.0),
    "innaprop": lambda: inna.optax.innaprop(1e-2),
    "scale_by_innaprop": lambda: inna.optax.scale_by_innaprop(1e-2),
}


# --- composition ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["inna_speed_wd", "innaprop"])
def test_chain_after_clip_by_global_norm_is_the_step_on_clipped_gradients(name):
    params = tree_params()
    chained, _ = run(optax.chain(optax.clip_by_global_norm(0.5), ALL[name]()), params, 10)

    def clipped(p, k):
        g = grads_at(p, k)
        return jax.tree.map(lambda x: x * jnp.minimum(1.0, 0.5 / optax.tree.norm(g)), g)

    manual, _ = run(ALL[name](), params, 10, grad_fn=clipped)
    chex.assert_trees_all_close(chained, manual, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "factory, fixed, changed",
    [
        (inna.optax.inna, dict(learning_rate=0.05, alpha=0.5, beta=0.1), dict(learning_rate=0.02, alpha=1.2, beta=0.3)),
        (inna.optax.innaprop, dict(learning_rate=1e-2, alpha=0.1, beta=0.9), dict(learning_rate=3e-3, alpha=2.0)),
    ],
    ids=["inna", "innaprop"],
)
def test_inject_hyperparams_changes_hyperparameters_without_recompiling(factory, fixed, changed):
    """Injected values give the same step as a transformation built with them, and the jitted update traces once."""
    params = tree_params()
    injected = optax.inject_hyperparams(factory)(**fixed)
    state = injected.init(params)
    traces = []

    @jax.jit
    def step(p, s, g):
        traces.append(1)
        return _apply(injected, p, s, g)

    expected_params, expected_state = params, factory(**fixed).init(params)
    for k in range(12):
        values = {**fixed, **(changed if k >= 6 else {})}
        if k == 6:
            for name, value in changed.items():
                state.hyperparams[name] = jnp.asarray(value, jnp.float32)
        grads = grads_at(params, k)
        params, state = step(params, state, grads)
        expected_params, expected_state = _apply(factory(**values), expected_params, expected_state, grads)
        chex.assert_trees_all_close(params, expected_params, rtol=1e-6, atol=1e-7)
        chex.assert_trees_all_close(state.inner_state, expected_state, rtol=1e-6, atol=1e-7)
    assert len(traces) == 1


def test_inject_hyperparams_schedules_every_hyperparameter():
    opt = optax.inject_hyperparams(inna.optax.inna)(
        learning_rate=inna.optax.power_decay(0.05), alpha=lambda c: 0.5 + 0.01 * c, beta=0.1, initial_speed=1.0
    )
    params, state = run(opt, tree_params(), 5)
    assert float(state.hyperparams["alpha"]) == pytest.approx(0.54)  # the values of the last step (count 4)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.05 / 5**0.5)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))


@pytest.mark.parametrize("name", ["inna_speed_wd", "innaprop"])
def test_multisteps_is_one_step_on_the_mean_gradient(name):
    params = tree_params()
    k_steps = 3
    multi = optax.MultiSteps(ALL[name](), every_k_schedule=k_steps)
    state = multi.init(params)
    plain_params, plain_state = params, ALL[name]().init(params)
    step = jax.jit(lambda p, s, g: _apply(multi, p, s, g))
    for macro in range(3):
        micro = [grads_at(plain_params, 10 * macro + j) for j in range(k_steps)]
        for g in micro:
            params, state = step(params, state, g)
        mean = jax.tree.map(lambda *gs: sum(gs) / k_steps, *micro)
        plain_params, plain_state = _apply(ALL[name](), plain_params, plain_state, mean)
        chex.assert_trees_all_close(params, plain_params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(state.inner_opt_state, plain_state, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("factory", [inna.optax.inna, inna.optax.innaprop], ids=["inna", "innaprop"])
@pytest.mark.parametrize("as_callable", [False, True], ids=["tree", "callable"])
def test_mask_selects_the_decayed_leaves(factory, as_callable):
    params = tree_params()
    flags = {"w": True, "b": False, "s": False}
    mask = (lambda p: jax.tree.map(lambda x: x.ndim > 1, p)) if as_callable else flags
    masked, masked_state = run(factory(0.05, weight_decay=0.2, mask=mask), params, 8)
    decayed, _ = run(factory(0.05, weight_decay=0.2), params, 8)
    plain, _ = run(factory(0.05, weight_decay=0.0), params, 8)
    chex.assert_trees_all_close(masked["w"], decayed["w"], rtol=1e-6)
    chex.assert_trees_all_close((masked["b"], masked["s"]), (plain["b"], plain["s"]), rtol=1e-6)
    assert not np.allclose(decayed["w"], plain["w"], rtol=1e-4)  # the decay does act
    chex.assert_trees_all_equal_structs(masked_state, factory(0.05).init(params))


def test_mask_may_be_a_prefix_of_the_params():
    params = {"enc": tree_params(), "head": tree_params()}
    masked, _ = run(inna.optax.innaprop(0.05, weight_decay=0.2, mask={"enc": True, "head": False}), params, 5)
    decayed, _ = run(inna.optax.innaprop(0.05, weight_decay=0.2), params, 5)
    plain, _ = run(inna.optax.innaprop(0.05, weight_decay=0.0), params, 5)
    chex.assert_trees_all_close((masked["enc"], masked["head"]), (decayed["enc"], plain["head"]), rtol=1e-6)


def test_optax_masked_wraps_the_transformation():
    params = tree_params()
    opt = optax.chain(optax.masked(inna.optax.inna(0.05), {"w": True, "b": False, "s": False}), optax.scale(-0.01))
    got, _ = run(opt, params, 4)
    alone, _ = run(optax.chain(inna.optax.inna(0.05), optax.scale(-0.01)), {"w": params["w"]}, 4)
    chex.assert_trees_all_close(got["w"], alone["w"], rtol=1e-6)
    sgd, _ = run(optax.sgd(0.01), {"b": params["b"], "s": params["s"]}, 4)
    chex.assert_trees_all_close((got["b"], got["s"]), (sgd["b"], sgd["s"]), rtol=1e-6)


# --- dtypes ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ALL))
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32, jnp.complex64])
def test_updates_keep_the_gradient_dtype_and_the_state_keeps_shapes_and_dtypes(name, dtype):
    params = jax.tree.map(lambda x: x.astype(dtype), tree_params())
    opt = ALL[name]()
    state0 = opt.init(params)
    grads = grads_at(params, 0)
    updates, state1 = jax.jit(opt.update)(grads, state0, params)
    assert all(u.dtype == dtype for u in jax.tree.leaves(updates))
    chex.assert_trees_all_equal_shapes_and_dtypes(state0, state1)
    assert state1.count.dtype == jnp.int32 and state1.count.shape == ()
    # the documented state dtype: the params' own (a bf16 model keeps a bf16 phase and nu)
    assert all(x.dtype == dtype for x in jax.tree.leaves(state1)[1:])


@pytest.mark.parametrize("factory", [inna.optax.inna, inna.optax.innaprop], ids=["inna", "innaprop"])
def test_bf16_params_follow_the_float32_trajectory_to_bf16_resolution(factory):
    """Half-precision leaves are computed in float32 and rounded once per step, so 20 bf16 steps stay within a few
    bf16 ulps of the float32 run (a bf16 computation of 1 - lr * alpha alone would be off by 0.4%)."""
    params = tree_params()
    opt = factory(0.05, weight_decay=0.01)
    low, state = run(opt, jax.tree.map(lambda x: x.astype(jnp.bfloat16), params), 20)
    high, _ = run(opt, params, 20)
    assert jax.tree.leaves(state)[1].dtype == jnp.bfloat16
    for lo, hi in zip(jax.tree.leaves(low), jax.tree.leaves(high)):
        np.testing.assert_allclose(np.asarray(lo, np.float32), hi, rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize(
    "make",
    [
        lambda: inna.optax.inna(0.05, initial_speed=1.0, weight_decay=0.02),
        lambda: inna.optax.inna(0.05, weight_decay=0.02, decoupled_weight_decay=True),
        lambda: inna.optax.innaprop(1e-2, weight_decay=0.05),
    ],
    ids=["inna_l2", "inna_decoupled", "innaprop"],
)
def test_complex_params_are_pairs_of_reals(make):
    """A complex leaf steps exactly as its (real, imag) pair would: INNA is linear, INNAprop scales per component."""
    params = tree_params()
    z = jax.tree.map(lambda x: (x + 1j * jnp.cos(3 * x)).astype(jnp.complex64), params)
    pairs = jax.tree.map(lambda c: jnp.stack([c.real, c.imag]), z)

    def complex_grads(p, k):
        as_pairs = grads_at(jax.tree.map(lambda c: jnp.stack([c.real, c.imag]), p), k)
        return jax.tree.map(lambda g: (g[0] + 1j * g[1]).astype(jnp.complex64), as_pairs)

    got, state = run(make(), z, 12, grad_fn=complex_grads)
    expected, _ = run(make(), pairs, 12)
    assert all(x.dtype == jnp.complex64 for x in jax.tree.leaves(state)[1:])
    chex.assert_trees_all_close(jax.tree.map(lambda c: jnp.stack([c.real, c.imag]), got), expected, rtol=1e-6,
                                atol=1e-7)  # fmt: skip


# --- jit -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["inna_speed_wd", "innaprop"])
def test_jitted_step_traces_once_over_many_steps_with_a_changing_schedule(name):
    schedule = optax.warmup_cosine_decay_schedule(0.0, 0.05, 10, 100)
    opt = {
        "inna_speed_wd": inna.optax.inna(schedule, initial_speed=1.0, weight_decay=0.01),
        "innaprop": inna.optax.innaprop(schedule),
    }[name]

    traces = []

    @jax.jit
    def step(p, s, g):
        traces.append(1)
        return _apply(opt, p, s, g)

    params = tree_params()
    state = opt.init(params)
    seen = set()
    for k in range(60):
        params, state = step(params, state, grads_at(params, k))
        seen.add(float(schedule(k)))
    assert len(traces) == 1 and len(seen) > 50 and int(state.count) == 60
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))


# --- errors ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: inna.optax.inna(0.1, weight_decay=0.01),
        lambda: inna.optax.inna(0.1, weight_decay=0.01, decoupled_weight_decay=True),
        lambda: inna.optax.innaprop(),  # its default weight_decay is 0.01
        lambda: optax.inject_hyperparams(inna.optax.inna)(0.1),  # an injected weight_decay is an array
    ],
    ids=["inna_l2", "inna_decoupled", "innaprop", "inject"],
)
def test_update_without_params_when_they_are_needed_raises_optax_error(make):
    opt, params = make(), tree_params()
    with pytest.raises(ValueError, match=NEEDS_PARAMS):
        opt.update(grads_at(params, 0), opt.init(params))


@pytest.mark.parametrize(
    "make",
    [
        lambda: inna.optax.inna(0.1),
        lambda: inna.optax.inna(0.1, initial_speed=1.0),  # phi_0 = (s - beta) g_0 needs the gradient only
        lambda: inna.optax.scale_by_inna(0.1, initial_speed=0.0),
        lambda: inna.optax.innaprop(weight_decay=0.0),
        lambda: inna.optax.scale_by_innaprop(),
        lambda: optax.inject_hyperparams(inna.optax.inna, static_args="weight_decay")(0.1, initial_speed=0.5),
    ],
)
def test_update_without_params_works_when_they_are_not_needed(make):
    opt, params = make(), tree_params()
    updates, _ = jax.jit(opt.update)(grads_at(params, 0), opt.init(params))
    assert all(np.isfinite(u).all() for u in jax.tree.leaves(updates))


def test_bad_injected_hyperparameter_is_caught_at_init():
    opt = optax.inject_hyperparams(inna.optax.inna)(learning_rate=0.1, beta=-1.0)
    with pytest.raises(ValueError, match="Invalid beta value"):
        opt.init(tree_params())


def test_non_numbers_are_type_errors_and_schedules_are_accepted():
    with pytest.raises(TypeError, match="alpha must be a real number"):
        inna.optax.inna(0.1, alpha="0.5")
    with pytest.raises(TypeError, match="beta must be a real number, got bool"):
        inna.optax.innaprop(beta=True)
    with pytest.raises(ValueError, match="learning_rate must be a scalar"):
        inna.optax.inna(jnp.ones(2))
    inna.optax.inna(lambda count: -1.0)  # a schedule cannot be checked before it runs


def test_a_constant_lr_that_breaks_the_stability_rule_warns_at_the_callers_line():
    with pytest.warns(INNAStabilityWarning, match=r"lr <= beta and lr \* alpha < 2") as record:
        inna.optax.inna(0.5, beta=0.1)
    assert record[0].filename == __file__
    with pytest.warns(INNAStabilityWarning, match="INNAprop"):
        inna.optax.innaprop(1.0, beta=0.9)


@pytest.mark.parametrize(
    "kwargs", [dict(init_value=-1.0), dict(init_value=0.1, power=-0.5), dict(init_value=0.1, scale=float("nan"))]
)
def test_power_decay_validates(kwargs):
    with pytest.raises(ValueError, match="power_decay requires 0 <="):
        inna.optax.power_decay(**kwargs)


def test_power_decay_is_gamma0_over_k_plus_1_to_the_q():
    schedule = inna.optax.power_decay(0.3, 0.25, scale=0.5)
    got = jax.jit(jax.vmap(schedule))(jnp.arange(6))
    np.testing.assert_allclose(got, [0.3 / (1 + 0.5 * k) ** 0.25 for k in range(6)], rtol=1e-6)
    np.testing.assert_allclose(inna.optax.power_decay(0.1)(3), 0.05, rtol=1e-6)


def test_importing_inna_optax_never_imports_torch():
    import subprocess
    import sys

    code = "import sys, inna.optax; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120, check=False).returncode == 0
