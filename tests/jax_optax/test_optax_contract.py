"""optax's conventions for an optimizer, checked for every public transformation of every row of the optimizer table
(``tests/contract/optim_db.py``): the documented defaults, hyperparameter errors, the stability warning in every
dtype, extra keyword arguments to ``update``, ``inject_hyperparams``, dtypes kept and declared, a state whose shapes,
dtypes and shardings do not change across steps, ``MultiSteps``. Written for inna; the cases follow the generic
optimizer tests optax runs on its own aliases."""

from __future__ import annotations

import inspect
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from contract.optim_db import OPTIM_DB

import inna.optax
from inna import INNAStabilityWarning

#: (row, transformation name): every public transformation of every optimizer.
TRANSFORMATIONS = [(info, name) for info in OPTIM_DB for name in info.optax]
IDS = [name for _, name in TRANSFORMATIONS]


def hyper(info, name: str, **overrides) -> dict:
    """The row's test learning rate and options, as ``name`` takes them (``scale_by_*`` has no weight decay)."""
    values = {"lr": info.lr, **info.options, **overrides}
    accepted = inspect.signature(getattr(inna.optax, name)).parameters
    return {k: v for k, v in info.kwargs("optax", **values).items() if k in accepted}


def build(info, name: str, **overrides) -> optax.GradientTransformationExtraArgs:
    return getattr(inna.optax, name)(**hyper(info, name, **overrides))


def params_like(dtype=jnp.float32):
    k1, k2 = jax.random.split(jax.random.key(3))
    return {"w": jax.random.normal(k1, (4, 3)).astype(dtype), "b": jax.random.normal(k2, (3,)).astype(dtype)}


def grads(params, k: int):
    return jax.tree.map(lambda p: (jnp.sin(p.astype(jnp.float32) + k) + 0.3 * p).astype(p.dtype), params)


def steps(opt, params, n: int, **extra):
    state = opt.init(params)

    @jax.jit
    def step(p, s, g):
        updates, s = opt.update(g, s, p, **extra)
        return optax.apply_updates(p, updates), s

    for k in range(n):
        params, state = step(params, state, grads(params, k))
    return params, state


# ---------------------------------------------------------------------------------- defaults and hyperparameters


@pytest.mark.parametrize("info, name", TRANSFORMATIONS, ids=IDS)
def test_signature_defaults_are_the_documented_ones(info, name):
    parameters = inspect.signature(getattr(inna.optax, name)).parameters
    documented = {k: v for k, v in info.defaults["optax"].items() if k in parameters}
    assert {k: parameters[k].default for k in documented} == documented
    assert set(documented) >= {"alpha", "beta"}


def _bad_cases():
    for info, name in TRANSFORMATIONS:
        accepted = inspect.signature(getattr(inna.optax, name)).parameters
        for arg, value, message in info.bad_hyperparameters("optax"):
            if arg in accepted:
                yield pytest.param(info, name, arg, value, message, id=f"{name}-{arg}={value}")


@pytest.mark.parametrize("info, name, arg, value, message", list(_bad_cases()))
def test_bad_hyperparameters_raise_naming_the_parameter_and_its_range(info, name, arg, value, message):
    with pytest.raises(ValueError, match=message):
        build(info, name, **{("lr" if arg == "learning_rate" else arg): value})


FLOATS = [jnp.bfloat16, jnp.float16, jnp.float32, jnp.float64]


def _stability_warnings(make) -> list[str]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        make()
    return [str(w.message) for w in seen if issubclass(w.category, INNAStabilityWarning)]


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("info, name", TRANSFORMATIONS, ids=IDS)
def test_documented_defaults_never_warn_in_any_dtype_and_a_violation_does(info, name, dtype):
    """The documented lr, alpha and beta held in any float dtype (a float32 array holds 0.1 as 0.10000000149, above
    beta = 0.1) keep the stability rule; the row's unstable setting warns in every dtype."""
    fn = getattr(inna.optax, name)
    d = info.defaults["optax"]
    lr = d.get("learning_rate", info.defaults["torch"]["lr"])
    with jax.enable_x64(dtype == jnp.float64):
        as_array = lambda v: jnp.asarray(v, dtype)  # noqa: E731
        assert not _stability_warnings(lambda: fn(as_array(lr)))
        assert not _stability_warnings(lambda: fn(as_array(lr), alpha=as_array(d["alpha"]), beta=as_array(d["beta"])))
        assert not _stability_warnings(lambda: fn(np.asarray(lr, dtype), beta=d["beta"]))
        bad = info.unstable
        found = _stability_warnings(lambda: fn(as_array(bad["lr"]), alpha=bad["alpha"], beta=bad["beta"]))
        assert len(found) == 1 and found[0].startswith(f"{info.name}: the constant learning_rate")
    assert not _stability_warnings(lambda: fn(lr))


@pytest.mark.parametrize("info, name", TRANSFORMATIONS, ids=IDS)
def test_injected_documented_defaults_never_warn(info, name):
    fn = getattr(inna.optax, name)
    lr = info.defaults["optax"].get("learning_rate", info.defaults["torch"]["lr"])
    assert not _stability_warnings(lambda: optax.inject_hyperparams(fn)(lr).init(params_like()))


# ------------------------------------------------------------------------------------------- calling convention


@pytest.mark.parametrize("info, name", TRANSFORMATIONS, ids=IDS)
def test_update_accepts_and_ignores_extra_keyword_arguments(info, name):
    """optax's convention: update(..., value=loss, **anything) works on every transformation, jitted or not, alone,
    in a chain and injected, and changes nothing."""
    params = params_like()
    opt = build(info, name)
    assert isinstance(opt, optax.GradientTransformationExtraArgs)
    state = opt.init(params)
    g = grads(params, 0)
    for update in (opt.update, jax.jit(opt.update)):  # (jit may fuse differently from eager: compare like with like)
        plain = update(g, state, params)
        chex.assert_trees_all_equal(update(g, state, params, value=jnp.asarray(1.5), other=jnp.zeros(2)), plain)
    expected, _ = steps(opt, params, 5)
    for wrapped in (opt, optax.chain(optax.identity(), opt), optax.inject_hyperparams(getattr(inna.optax, name))(
        **hyper(info, name))):  # fmt: skip
        got, _ = steps(wrapped, params, 5, value=jnp.asarray(2.0))
        chex.assert_trees_all_close(got, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("info, name", TRANSFORMATIONS, ids=IDS)
def test_inject_hyperparams_gives_the_same_steps_and_traces_once(info, name):
    params = params_like()
    injected = optax.inject_hyperparams(getattr(inna.optax, name))(**hyper(info, name))
    traces = []

    @jax.jit
    def step(p, s, g):
        traces.append(1)
        updates, s = injected.update(g, s, p)
        return optax.apply_updates(p, updates), s

    state = injected.init(params)
    got = params
    for k in range(6):
        got, state = step(got, state, grads(got, k))
    expected, expected_state = steps(build(info, name), params, 6)
    chex.assert_trees_all_close(got, expected, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(state.inner_state, expected_state, rtol=1e-6, atol=1e-7)
    assert len(traces) == 1
    assert set(state.hyperparams) >= {"learning_rate", "alpha", "beta"}


# ------------------------------------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize("lr_kind", ["float", "float32 array", "float32 schedule"])
@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("info, name", TRANSFORMATIONS, ids=IDS)
def test_updates_and_state_keep_the_params_dtype_whatever_the_lr(info, name, dtype, lr_kind):
    """The updates have the params' dtype and the state declares it (the documented state dtype: the params' own;
    the count int32), whether the lr is a Python float, a float32 array or a float32 schedule."""
    lr = {"float": info.lr, "float32 array": jnp.asarray(info.lr, jnp.float32),
          "float32 schedule": optax.constant_schedule(jnp.asarray(info.lr, jnp.float32))}[lr_kind]  # fmt: skip
    with jax.enable_x64(dtype == jnp.float64):
        params = params_like(dtype)
        opt = build(info, name, lr=lr)
        state = opt.init(params)
        updates, new_state = jax.jit(opt.update)(grads(params, 0), state, params)
        assert all(u.dtype == dtype for u in jax.tree.leaves(updates))
        assert state.count.dtype == jnp.int32 and new_state.count.dtype == jnp.int32
        for field in info.state["optax"][1:]:
            assert all(x.dtype == dtype for x in jax.tree.leaves(getattr(new_state, field))), field
        new_params = optax.apply_updates(params, updates)
        assert all(p.dtype == dtype for p in jax.tree.leaves(new_params))


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("info, name", TRANSFORMATIONS, ids=IDS)
def test_state_shape_dtype_and_sharding_are_stable_across_steps(info, name, dtype):
    """Inside a jitted step the new state can replace the old one in a ``lax.cond`` (which demands the same tree,
    shapes, dtypes and shardings), with a loss of another dtype passed along; after the steps, the state has the
    tree, shapes, dtypes and shardings of ``init`` and its fields are the documented ones."""
    with jax.enable_x64(dtype == jnp.float64):
        params = params_like(dtype)
        opt = build(info, name)
        initial = opt.init(params)
        assert initial._fields == info.state["optax"]

        @jax.jit
        def step(p, s, k):
            loss = jnp.sum(p["b"].astype(jnp.float32) ** 2).astype(
                jnp.bfloat16 if dtype != jnp.bfloat16 else jnp.float16
            )
            updates, new = opt.update(grads(p, 0), s, p, value=loss)
            s = jax.lax.cond(k >= 0, lambda: new, lambda: s)  # raises unless new and s are of one type
            return optax.apply_updates(p, updates), s

        state = initial
        for k in range(4):
            params, state = step(params, state, k)
        chex.assert_trees_all_equal_shapes_and_dtypes(initial, state)
        chex.assert_trees_all_equal_structs(initial, state)
        for a, b in zip(jax.tree.leaves(initial), jax.tree.leaves(state)):
            assert a.sharding.is_equivalent_to(b.sharding, a.ndim), (a.sharding, b.sharding)
        assert int(state.count) == 4


@pytest.mark.parametrize("info, name", TRANSFORMATIONS, ids=IDS)
def test_multisteps_is_one_step_on_the_mean_gradient(info, name):
    k_steps = 3
    params = params_like()
    multi = optax.MultiSteps(build(info, name), every_k_schedule=k_steps)
    plain = build(info, name)
    state, plain_params, plain_state = multi.init(params), params, plain.init(params)
    for macro in range(3):
        micro = [grads(plain_params, 10 * macro + j) for j in range(k_steps)]
        start = params
        for j, g in enumerate(micro):
            updates, state = multi.update(g, state, params, value=jnp.asarray(1.0))
            params = optax.apply_updates(params, updates)
            if j < k_steps - 1:  # no move until the k-th micro-step
                chex.assert_trees_all_equal(params, start)
        mean = jax.tree.map(lambda *gs: sum(gs) / k_steps, *micro)
        updates, plain_state = plain.update(mean, plain_state, plain_params)
        plain_params = optax.apply_updates(plain_params, updates)
        chex.assert_trees_all_close(params, plain_params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(state.inner_opt_state, plain_state, rtol=1e-5, atol=1e-6)
    assert int(state.inner_opt_state.count) == 3
