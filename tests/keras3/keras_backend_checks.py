"""The Keras checks of inna.keras, written once for every backend.

This module is not collected by the main pytest run (its name does not start with ``test_``): the parent,
``test_keras_backends.py``, runs it in one subprocess per backend with ``KERAS_BACKEND`` set and reports every
check by name. Run one backend by hand with::

    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 PYTHONPATH=src:tests \\
        python -m pytest --noconftest -q tests/keras3/keras_backend_checks.py

The ground truth is ``tests/reference.py`` (float64, the paper's and the official ψ-forms).
"""

from __future__ import annotations

import contextlib
import copy
import math
import pathlib
import re
import sys
import warnings

import keras

_BEFORE_INNA = set(sys.modules)
import inna.keras  # noqa: E402  (after keras: the check below records what importing inna.keras adds)

_ADDED_BY_INNA = set(sys.modules) - _BEFORE_INNA

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from contract.optim_db import OPTIM_DB  # noqa: E402
from keras import ops  # noqa: E402
from reference import ReferenceINNA, ReferenceINNAprop  # noqa: E402

from inna import INNAStabilityWarning  # noqa: E402
from inna.keras import INNA, INNAprop, PowerDecay  # noqa: E402

BACKEND = keras.backend.backend()
REPO = pathlib.Path(__file__).resolve().parents[2]

# ----------------------------------------------------------------------------------------------- helpers

SHAPES = [(3, 4), (5,), (), (2, 3, 2)]
NAMES = ["kernel_0", "bias_0", "scale", "kernel_1"]  # "bias" is excluded from weight decay in the cases below


def np_value(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


def reference_for(opt, decays: bool):
    """The float64 reference with ``opt``'s hyperparameters (weight decay off for excluded variables)."""
    wd = (opt.weight_decay or 0.0) if decays else 0.0
    if isinstance(opt, INNAprop):
        return ReferenceINNAprop(
            lr=0.0, alpha=opt.alpha, beta=opt.beta, sigma=opt.sigma, eps=opt.epsilon, weight_decay=wd
        )
    return ReferenceINNA(
        lr=0.0,
        alpha=opt.alpha,
        beta=opt.beta,
        initial_speed=opt.initial_speed,
        weight_decay=wd,
        decoupled_weight_decay=opt.decoupled_weight_decay,
    )


def current_lr(opt) -> float:
    """The learning rate the optimizer's next update will use, as a float64 of its own dtype."""
    return float(np_value(opt.learning_rate))


def run_against_reference(make_opt, dtype: str, steps: int = 30, exclude=("bias",), multi_tensor=None, seed=0):
    """Step a Keras optimizer and the float64 reference on the same gradients; return the worst relative errors
    of the weights and of ψ."""
    rng = np.random.default_rng(seed)
    theta0 = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    variables = [keras.Variable(t.astype(dtype), dtype=dtype, name=n) for t, n in zip(theta0, NAMES)]
    opt = make_opt()
    if exclude:
        opt.exclude_from_weight_decay(var_names=list(exclude))
    if multi_tensor is not None:
        opt._multi_tensor = multi_tensor
    decays = [not any(e in n for e in exclude) for n in NAMES]
    refs = {True: reference_for(opt, True), False: reference_for(opt, False)}
    ref_thetas = {d: [t.copy() for t, dd in zip(theta0, decays) if dd == d] for d in (True, False)}
    for k in range(steps):
        lr = current_lr(opt)
        opt.apply_gradients(zip([ops.convert_to_tensor(g.astype(dtype)) for g in grads[k]], variables))
        for d in (True, False):
            refs[d].step(ref_thetas[d], [g for g, dd in zip(grads[k], decays) if dd == d], lr=lr)
    theta_err = psi_err = 0.0
    position = {True: 0, False: 0}
    for var, d in zip(variables, decays):
        i = position[d]
        position[d] += 1
        ref_theta, ref_psi = ref_thetas[d][i], refs[d].psi[i]
        theta_err = max(theta_err, np.max(np.abs(np_value(var) - ref_theta)) / np.max(np.abs(ref_theta)))
        psi_err = max(psi_err, np.max(np.abs(np_value(opt.psi(var)) - ref_psi)) / np.max(np.abs(ref_psi)))
    return theta_err, psi_err, opt, variables


CASES = {
    "INNA": lambda: INNA(learning_rate=0.05),
    "INNA-speed1-decoupled-wd": lambda: INNA(learning_rate=0.05, initial_speed=1.0, weight_decay=0.1),
    "INNA-speed0-L2-wd-PowerDecay": lambda: INNA(
        learning_rate=PowerDecay(0.08), alpha=1.0, beta=0.5, initial_speed=0.0, weight_decay=0.05,
        decoupled_weight_decay=False,
    ),
    "INNAprop": lambda: INNAprop(learning_rate=0.01),
    "INNAprop-sigma0": lambda: INNAprop(learning_rate=0.01, sigma=0.0),  # RMSprop without memory: no correction
    "INNAprop-wd-cosine-warmup": lambda: INNAprop(
        learning_rate=keras.optimizers.schedules.CosineDecay(
            0.002, decay_steps=25, warmup_target=0.03, warmup_steps=5
        ),
        alpha=2.0, beta=2.0, sigma=0.99, weight_decay=0.1,
    ),
}  # fmt: skip

PATHS = [None, False] if BACKEND == "torch" else [None]  # torch: the multi-tensor path and update_step


def keras_class(info):
    return getattr(inna.keras, info.name)


def make(info, **overrides):
    """The table row's Keras optimizer with its test learning rate and options (``overrides`` in torch names)."""
    return keras_class(info)(**info.kwargs("keras", **{"lr": info.lr, **info.options, **overrides}))


OPTIMIZERS = pytest.mark.parametrize("info", OPTIM_DB, ids=str)


# ----------------------------------------------------------------------------------------------- import


def test_import_pulls_no_other_framework():
    others = {"tensorflow", "jax", "torch"} - {BACKEND}
    pulled = sorted({m.split(".")[0] for m in _ADDED_BY_INNA} & others)
    assert not pulled, f"importing inna.keras on the {BACKEND} backend imported {pulled}"


# ----------------------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("case", sorted(CASES))
def test_parity_float32(case):
    for path in PATHS:
        theta_err, psi_err, _, _ = run_against_reference(CASES[case], "float32", multi_tensor=path)
        assert theta_err < 1e-5 and psi_err < 1e-5, (path, theta_err, psi_err)


@pytest.fixture
def float64():
    """floatx float64 (so the learning rate and schedules are float64 too); JAX needs x64 switched on."""
    if BACKEND == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
    keras.config.set_floatx("float64")
    try:
        yield
    finally:
        keras.config.set_floatx("float32")
        if BACKEND == "jax":
            jax.config.update("jax_enable_x64", False)


@pytest.mark.parametrize("case", sorted(CASES))
def test_parity_float64(case, float64):
    for path in PATHS:
        theta_err, psi_err, opt, _ = run_against_reference(CASES[case], "float64", multi_tensor=path)
        assert str(opt._phases[0].dtype) == "float64"
        assert theta_err < 1e-12 and psi_err < 1e-12, (path, theta_err, psi_err)


@pytest.mark.parametrize("cpu_kernel", ["1", "0"], ids=["c-loop", "foreach"])
def test_torch_multi_tensor_path_equals_update_step(float64, cpu_kernel, monkeypatch):
    if BACKEND != "torch":
        pytest.skip("the multi-tensor path exists on the torch backend only")
    # on CPU the multi-tensor step runs inna.torch's C loop; INNA_CPU_KERNEL=0 takes its foreach fallback (GPUs')
    monkeypatch.setenv("INNA_CPU_KERNEL", cpu_kernel)
    from inna.torch import _fused

    calls = []
    one_pass = _fused.elementwise_update
    monkeypatch.setattr(_fused, "elementwise_update", lambda *a, **k: (calls.append(a[0]), one_pass(*a, **k)))
    for case in CASES:
        calls.clear()
        fast = run_against_reference(CASES[case], "float64", multi_tensor=True)
        assert bool(calls) == (cpu_kernel == "1"), (case, cpu_kernel)
        slow = run_against_reference(CASES[case], "float64", multi_tensor=False)
        assert fast[2]._multi_tensor and not slow[2]._multi_tensor
        for a, b in zip(fast[3] + fast[2].variables, slow[3] + slow[2].variables):
            np.testing.assert_allclose(np_value(a), np_value(b), rtol=1e-13, atol=1e-15, err_msg=case)


# ----------------------------------------------------------------------------- Keras's own test patterns


def test_config_round_trip():
    for opt in (
        INNA(learning_rate=0.05, alpha=0.3, beta=0.2, initial_speed=1.0, weight_decay=0.01, clipnorm=1.0),
        INNA(learning_rate=PowerDecay(0.1, power=0.25, scale=0.5), decoupled_weight_decay=False),
        INNAprop(learning_rate=3e-4, alpha=2.0, beta=2.0, sigma=0.99, epsilon=1e-6, weight_decay=0.1, use_ema=True),
    ):
        config = opt.get_config()
        again = type(opt).from_config(copy.deepcopy(config))  # from_config deserializes the schedule in place
        assert again.get_config() == config
        serialized = keras.optimizers.serialize(opt)
        assert serialized["registered_name"] == f"inna>{type(opt).__name__}"
        restored = keras.optimizers.deserialize(serialized)
        assert type(restored) is type(opt) and restored.get_config() == config
    schedule = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(PowerDecay(0.3, 0.7)))
    assert isinstance(schedule, PowerDecay) and schedule.get_config()["power"] == 0.7


def test_power_decay_values():
    schedule = PowerDecay(0.2, power=0.5)
    for k in (0, 1, 7, 1000):
        np.testing.assert_allclose(np_value(schedule(k)), 0.2 / math.sqrt(k + 1), rtol=1e-6)
    np.testing.assert_allclose(np_value(PowerDecay(0.2, power=1.0, scale=0.1)(10)), 0.1, rtol=1e-6)


def _golden(cls, kwargs, first_grad, grads, steps):
    ref = reference_for(cls(**kwargs), True)
    theta = np.ones(10)
    x = keras.Variable(np.ones(10, dtype="float32"))
    opt = cls(**kwargs)
    history = []
    for k in range(steps + 1):
        g = first_grad if k == 0 else grads
        lr = current_lr(opt)
        opt.apply_gradients(zip([ops.convert_to_tensor(g.astype("float32"))], [x]))
        ref.step([theta], [g], lr=lr)
        history.append((np_value(x), theta.copy()))
    return history


def test_single_step():
    grads, start = np.array([1.0, 6.0, 7.0, 2.0]), np.array([1.0, 2.0, 3.0, 4.0])
    for cls in (INNA, INNAprop):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", INNAStabilityWarning)  # lr 0.5 > beta 0.1 for INNA
            opt = cls(learning_rate=0.5)
            var = keras.Variable(start.astype("float32"))
            opt.apply_gradients(zip([ops.convert_to_tensor(grads.astype("float32"))], [var]))
        golden = start.copy()
        reference_for(opt, True).step([golden], [grads], lr=0.5)
        np.testing.assert_allclose(np_value(var), golden, rtol=1e-6, atol=1e-6)
        if cls is INNA:  # phi_0 = 0: theta_1 = theta_0 - lr * beta * g_0
            np.testing.assert_allclose(np_value(var), [0.95, 1.7, 2.65, 3.9], rtol=1e-6)


def test_correctness_with_golden():
    first, grads = np.full(10, 0.01), np.arange(0.1, 1.1, 0.1)
    for cls, kwargs in ((INNA, {}), (INNA, {"initial_speed": 1.0}), (INNAprop, {})):
        for ours, golden in _golden(cls, kwargs, first, grads, steps=5):
            np.testing.assert_allclose(ours, golden, rtol=1e-6, atol=1e-7)


def test_bad_input_names_the_parameter():
    for make, pattern in (
        (lambda: INNA(alpha=-1.0), r"Invalid alpha value: -1.0 \(INNA requires 0 <= alpha < inf\)"),
        (lambda: INNA(beta=0.0), r"Invalid beta value: 0.0 \(INNA requires 0 < beta < inf\)"),
        (lambda: INNA(learning_rate=-0.1), r"Invalid learning_rate value"),
        (lambda: INNA(learning_rate=float("nan")), r"Invalid learning_rate value: nan"),
        (lambda: INNA(initial_speed=-1.0), r"Invalid initial_speed value"),
        (lambda: INNA(weight_decay=-0.1), r"Invalid weight_decay value"),
        (lambda: INNAprop(sigma=1.0), r"Invalid sigma value: 1.0 \(INNAprop requires 0 <= sigma < 1\)"),
        (lambda: INNAprop(epsilon=-1e-8), r"Invalid epsilon value"),
        (lambda: INNAprop(beta=float("inf")), r"Invalid beta value: inf"),
        (lambda: PowerDecay(0.1, power=-1.0), r"Invalid power value: -1.0 \(PowerDecay requires"),
    ):
        with pytest.raises(ValueError, match=pattern):
            make()
    with pytest.raises(TypeError, match="alpha must be a real number"):
        INNA(alpha="0.5")


def test_stability_warning_once_at_build():
    var = keras.Variable(np.ones(3, dtype="float32"))
    with pytest.warns(INNAStabilityWarning, match=r"INNA: optimizer .* has lr=0.5 with alpha=0.5, beta=0.1"):
        INNA(learning_rate=0.5).build([var])
    with warnings.catch_warnings():
        warnings.simplefilter("error", INNAStabilityWarning)
        INNA(learning_rate=0.05).build([var])
        INNAprop(learning_rate=0.5).build([var])


def test_weight_decay_with_exclusions():
    """Keras's pattern (wd 0.004, lr 1, zero gradients; exclusion by name and by variable), values from the
    reference; INNAprop's decay is the official one (phase shifted by the exact term)."""
    zero = ops.zeros(())
    for cls, kwargs in (
        (INNA, {}),
        (INNA, {"decoupled_weight_decay": False}),
        (INNAprop, {}),
    ):
        var1, var2, var3 = keras.Variable(2.0), keras.Variable(2.0, name="exclude"), keras.Variable(2.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", INNAStabilityWarning)
            opt1 = cls(learning_rate=1.0, weight_decay=0.004, **kwargs)
            opt1.apply_gradients(zip([zero], [var1]))
            opt2 = cls(learning_rate=1.0, weight_decay=0.004, **kwargs)
            opt2.exclude_from_weight_decay(var_names=["exclude"])
            opt2.apply_gradients(zip([zero, zero], [var1, var2]))
            opt3 = cls(learning_rate=1.0, weight_decay=0.004, **kwargs)
            opt3.exclude_from_weight_decay(var_list=[var3])
            opt3.apply_gradients(zip([zero, zero], [var1, var3]))
        expected = np.array(2.0)
        for _ in range(3):  # var1 took the first step of three fresh optimizers
            reference_for(opt1, True).step([expected], [np.array(0.0)], lr=1.0)
        np.testing.assert_allclose(np_value(var1), expected, rtol=1e-6)
        np.testing.assert_allclose(np_value(var2), 2.0, rtol=0)
        np.testing.assert_allclose(np_value(var3), 2.0, rtol=0)
    # the decoupled INNA shrinks theta by exactly (1 - lr wd) on a zero gradient at phi = 0
    var = keras.Variable(2.0)
    INNA(learning_rate=0.01, weight_decay=0.004).apply_gradients(zip([zero], [var]))
    np.testing.assert_allclose(np_value(var), 2.0 * (1 - 0.01 * 0.004), rtol=1e-7)


def _one_step(opt, grad, start):
    var = keras.Variable(np.asarray(start, dtype="float32"))
    opt.apply_gradients(zip([ops.convert_to_tensor(np.asarray(grad, dtype="float32"))], [var]))
    return np_value(var)


def test_clipping():
    grad, start = np.array([100.0, 100.0]), np.array([1.0, -1.0])
    for cls in (INNA, INNAprop):
        for option, clipped in (
            ({"clipnorm": 1.0}, grad / np.linalg.norm(grad)),
            ({"global_clipnorm": 1.0}, grad / np.linalg.norm(grad)),
            ({"clipvalue": 1.0}, np.clip(grad, -1, 1)),
        ):
            opt = cls(learning_rate=0.05, initial_speed=1.0, **option) if cls is INNA else cls(**option)
            np.testing.assert_allclose(np_value(opt._clip_gradients([ops.convert_to_tensor(grad)])[0]), clipped)
            expected = start.copy()
            reference_for(opt, True).step([expected], [clipped], lr=current_lr(opt))
            np.testing.assert_allclose(_one_step(opt, grad, start), expected, rtol=1e-6, atol=1e-7)


def test_ema():
    """Keras's EMA pattern (momentum 0.9, overwrite every 3 steps), values from the reference."""
    start, grad = np.array([[3.0, 4.0], [5.0, 6.0]]), np.ones((2, 2))
    for cls in (INNA, INNAprop):
        opt = cls(learning_rate=0.05, use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=3)
        var = keras.Variable(start.astype("float32"))
        ref, theta, average = reference_for(opt, True), start.copy(), None
        for k in range(3):
            opt.apply_gradients([(ops.convert_to_tensor(grad.astype("float32")), var)])
            ref.step([theta], [grad], lr=0.05)
            average = theta.copy() if k == 0 else 0.9 * average + 0.1 * theta
            np.testing.assert_allclose(np_value(opt._model_variables_moving_average[0]), average, rtol=1e-6)
        # the third step overwrote the weights with their average
        np.testing.assert_allclose(np_value(var), average, rtol=1e-6)


def test_gradient_accumulation():
    """Two micro-batches make one INNA step on their mean; the first *update* sets phi_0 and the bias correction
    counts updates."""
    rng = np.random.default_rng(1)
    micro = [rng.standard_normal(4) for _ in range(6)]
    for cls, kwargs in ((INNA, {"learning_rate": 0.05, "initial_speed": 1.0}), (INNAprop, {"learning_rate": 0.01})):
        opt = cls(gradient_accumulation_steps=2, **kwargs)
        var = keras.Variable(np.ones(4, dtype="float32"))
        ref, theta = reference_for(opt, True), np.ones(4)
        for k, g in enumerate(micro):
            opt.apply_gradients([(ops.convert_to_tensor(g.astype("float32")), var)])
            if k % 2 == 1:
                ref.step([theta], [(micro[k - 1] + g) / 2], lr=kwargs["learning_rate"])
            np.testing.assert_allclose(np_value(var), theta, rtol=1e-6)  # unchanged between updates
        assert int(np_value(opt.iterations)) == 3


# -------------------------------------------------------------------------------------- training, saving


def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(x, y.astype("int32"), test_size=0.25, random_state=0)


def mlp(seed=0, width=64):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(width, activation="relu"), keras.layers.Dense(10)])


LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

FIT = {
    # gamma_0 / sqrt(1 + epoch), smoothly (22 steps per epoch)
    "INNA": lambda: INNA(learning_rate=PowerDecay(0.5, scale=1 / 22), alpha=0.5, beta=1.0),
    "INNAprop": lambda: INNAprop(learning_rate=0.01, weight_decay=0.01),
}


@pytest.mark.parametrize("name", sorted(FIT))
def test_fit_digits(name):
    x_train, x_test, y_train, y_test = digits()
    model = mlp()
    model.compile(optimizer=FIT[name](), loss=LOSS, metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=8, batch_size=64, verbose=0)  # 184 steps
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.95, accuracy


SAVED = {
    "INNA": lambda: INNA(learning_rate=PowerDecay(0.05), initial_speed=1.0, weight_decay=0.01),
    "INNAprop": lambda: INNAprop(learning_rate=0.01, alpha=1.0, beta=1.0, weight_decay=0.1),
}


@pytest.mark.parametrize("name", sorted(SAVED))
def test_save_load_resumes_bit_exactly(name, tmp_path):
    x_train, _, y_train, _ = digits()
    batches = [(x_train[i : i + 32], y_train[i : i + 32]) for i in range(0, 8 * 32, 32)]
    model = mlp(width=16)
    model.compile(optimizer=SAVED[name](), loss=LOSS)
    model.optimizer.exclude_from_weight_decay(var_names=["bias"])
    for batch in batches[:4]:
        model.train_on_batch(*batch)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects: inna.keras registered the classes
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np_value(a), np_value(b))
    loaded.optimizer.exclude_from_weight_decay(var_names=["bias"])  # exclusions are not part of Keras's config
    for batch in batches[4:]:
        model.train_on_batch(*batch)
        loaded.train_on_batch(*batch)
    for a, b in zip(model.weights + model.optimizer.variables, loaded.weights + loaded.optimizer.variables):
        np.testing.assert_array_equal(np_value(a), np_value(b))
    assert int(np_value(loaded.optimizer.iterations)) == 8


def test_loss_scale_factor():
    """The base class scales the loss and unscales the gradients (by a power of two: exact)."""
    x_train, _, y_train, _ = digits()
    weights = []
    for factor in (None, 1024.0):
        model = mlp(width=16)
        model.compile(optimizer=INNAprop(learning_rate=0.01, loss_scale_factor=factor), loss=LOSS)
        model.fit(x_train[:256], y_train[:256], epochs=1, batch_size=64, verbose=0, shuffle=False)
        weights.append([np_value(w) for w in model.weights])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@OPTIMIZERS
def test_ema_with_fit(info):
    x_train, _, y_train, _ = digits()
    model = mlp(width=16)
    opt = make(info, use_ema=True, ema_momentum=0.9)
    model.compile(optimizer=opt, loss=LOSS)
    model.fit(x_train[:256], y_train[:256], epochs=2, batch_size=64, verbose=0)
    # fit ends with finalize_variable_values: the weights are their moving average
    for w, average in zip(model.trainable_weights, opt._model_variables_moving_average):
        np.testing.assert_array_equal(np_value(w), np_value(average))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision(policy):
    x_train, x_test, y_train, y_test = digits()
    keras.config.set_dtype_policy(policy)
    try:
        model = mlp(width=32)
        model.compile(optimizer=INNAprop(learning_rate=0.01), loss=LOSS, metrics=["accuracy"])
        history = model.fit(x_train, y_train, epochs=5, batch_size=64, verbose=0)
        opt = model.optimizer
        if policy == "mixed_float16":  # Keras wraps the optimizer in a dynamic loss scale
            assert isinstance(opt, keras.optimizers.LossScaleOptimizer)
            opt = opt.inner_optimizer
        assert isinstance(opt, INNAprop)
        assert all(str(v.dtype) == "float32" for v in opt._phases + opt._second_moments)
        losses = history.history["loss"]
        assert all(np.isfinite(losses)) and losses[-1] < 0.2 * losses[0], losses
        assert model.evaluate(x_test, y_test, verbose=0)[1] > 0.9  # float32: 0.95-0.96
    finally:
        keras.config.set_dtype_policy("float32")


# ----------------------------------------------------------- the optimizer table: Keras's generic optimizer cases


@contextlib.contextmanager
def floatx(dtype: str):
    """Keras's floatx set to ``dtype`` (float64 switches JAX's x64 on), restored afterwards."""
    x64 = BACKEND == "jax" and dtype == "float64"
    if x64:
        import jax

        jax.config.update("jax_enable_x64", True)
    keras.config.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx("float32")
        if x64:
            jax.config.update("jax_enable_x64", False)


@OPTIMIZERS
def test_defaults_and_name_are_the_documented_ones(info):
    opt = keras_class(info)()
    config = opt.get_config()
    documented = dict(info.defaults["keras"])
    assert config["learning_rate"] == float(np.float32(documented.pop("learning_rate")))  # held by a float32 variable
    assert {k: config[k] for k in documented} == documented
    opt.build([keras.Variable(np.ones(3, dtype="float32"))])
    assert opt.name == documented["name"]
    assert all(v.path.startswith(f"{documented['name']}/") for v in opt.variables), [v.path for v in opt.variables]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@OPTIMIZERS
def test_documented_defaults_never_warn_and_a_violation_does_in_every_floatx(info, dtype):
    """The documented defaults build without a warning whatever the dtype of the lr variable (float32 holds 0.1 as
    0.10000000149, above beta = 0.1), and reading the lr warns nothing either (NumPy 2 deprecates __array__ without
    copy=): both as errors. A real violation warns, in every dtype."""
    with floatx(dtype), warnings.catch_warnings():
        warnings.simplefilter("error", INNAStabilityWarning)
        warnings.simplefilter("error", DeprecationWarning)
        for opt in (keras_class(info)(), keras_class(info)(learning_rate=info.defaults["keras"]["beta"])):
            opt.build([keras.Variable(np.ones(3), dtype=dtype)])
            assert keras.backend.standardize_dtype(opt.learning_rate.dtype) == dtype
        bad = info.kwargs("keras", **info.unstable)
        with pytest.warns(INNAStabilityWarning, match=rf"{info.name}: optimizer .* has lr={info.unstable['lr']:.4g}"):
            keras_class(info)(**bad).build([keras.Variable(np.ones(3), dtype=dtype)])


@OPTIMIZERS
def test_stability_check_lets_real_errors_through(info):
    """No broad except around the check: an error computing the learning rate surfaces, a schedule's value at build
    is checked."""

    def broken():
        raise ZeroDivisionError("the user's learning-rate callable failed")

    with pytest.raises(ZeroDivisionError, match="learning-rate callable failed"):
        keras_class(info)(learning_rate=broken).build([keras.Variable(np.ones(3, dtype="float32"))])
    schedule = keras.optimizers.schedules.ExponentialDecay(info.unstable["lr"], decay_steps=10, decay_rate=0.5)
    bad = info.kwargs("keras", **{**info.unstable, "lr": schedule})
    with pytest.warns(INNAStabilityWarning, match=f"{info.name}: optimizer"):
        keras_class(info)(**bad).build([keras.Variable(np.ones(3, dtype="float32"))])


def test_stability_check_waits_inside_a_tf_function():
    if BACKEND != "tensorflow":
        pytest.skip("tf.function is TensorFlow's trace")
    import tensorflow as tf

    var = keras.Variable(np.ones(3, dtype="float32"))
    opt = INNA(learning_rate=PowerDecay(0.05))

    @tf.function
    def step(grad):
        opt.apply_gradients([(grad, var)])

    with warnings.catch_warnings():
        warnings.simplefilter("error", INNAStabilityWarning)
        step(tf.ones(3))  # the optimizer is built inside the trace, where the lr has no value yet
    assert opt.built and int(np_value(opt.iterations)) == 1


def _variables(seed=0):
    rng = np.random.default_rng(seed)
    return [keras.Variable(rng.standard_normal(s).astype("float32"), name=n) for s, n in zip(SHAPES, NAMES)]


def _grads(k):
    rng = np.random.default_rng(100 + k)
    return [ops.convert_to_tensor(rng.standard_normal(s).astype("float32")) for s in SHAPES]


@OPTIMIZERS
def test_iterations_count_updates(info):
    opt, variables = make(info), _variables()
    assert int(np_value(opt.iterations)) == 0
    for k in range(3):
        opt.apply_gradients(zip(_grads(k), variables))
        assert int(np_value(opt.iterations)) == k + 1
    opt.apply_gradients(zip([None, *_grads(3)[1:]], variables))  # a missing gradient still counts the update
    assert int(np_value(opt.iterations)) == 4


@OPTIMIZERS
def test_empty_gradients(info):
    """A variable without a gradient is left alone (with Keras's warning) while the others step; no gradient at all
    is Keras's error; an empty list is a no-op."""
    opt, variables = make(info), _variables()
    before = [np_value(v) for v in variables]
    with pytest.warns(UserWarning, match="Gradients do not exist for variables"):
        opt.apply_gradients(zip([None, *_grads(0)[1:]], variables))
    np.testing.assert_array_equal(np_value(variables[0]), before[0])
    assert all(not np.array_equal(np_value(v), b) for v, b in zip(variables[1:], before[1:]))
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        opt.apply_gradients(zip([None] * len(variables), variables))
    opt.apply([])  # no gradients at all: nothing to do
    assert int(np_value(opt.iterations)) == 1


@OPTIMIZERS
def test_only_one_clip_argument(info):
    for pair in (("clipnorm", "clipvalue"), ("clipnorm", "global_clipnorm"), ("clipvalue", "global_clipnorm")):
        with pytest.raises(ValueError, match="Only one of `clipnorm`, `clipvalue` and `global_clipnorm`"):
            make(info, **{k: 1.0 for k in pair})


@OPTIMIZERS
def test_set_weights_continues_the_same_trajectory(info):
    """An optimizer given another's state with set_weights steps exactly as that one does from there on."""
    first, v1 = make(info), _variables()
    for k in range(3):
        first.apply_gradients(zip(_grads(k), v1))
    v2 = [keras.Variable(np_value(v).astype("float32"), name=n) for v, n in zip(v1, NAMES)]
    second = make(info)
    second.build(v2)
    second.set_weights([np_value(w).astype(keras.backend.standardize_dtype(w.dtype)) for w in first.variables])
    assert int(np_value(second.iterations)) == 3
    for k in range(3, 6):
        first.apply_gradients(zip(_grads(k), v1))
        second.apply_gradients(zip(_grads(k), v2))
    for a, b in zip(v1 + first.variables, v2 + second.variables):
        np.testing.assert_array_equal(np_value(a), np_value(b))
    with pytest.raises(ValueError, match="not compatible with provided weight shape"):
        second.set_weights([np.zeros((7,), dtype="float32") for _ in second.variables])


@OPTIMIZERS
def test_serialization_round_trips_and_the_copy_steps_alike(info):
    schedule = keras.optimizers.schedules.CosineDecay(info.lr, decay_steps=20)
    opt = make(info, lr=schedule, clipnorm=1.0)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(opt))
    assert type(again) is type(opt) and again.get_config() == opt.get_config()
    assert isinstance(again._learning_rate, keras.optimizers.schedules.CosineDecay)
    v1, v2 = _variables(), _variables()
    for k in range(4):
        opt.apply_gradients(zip(_grads(k), v1))
        again.apply_gradients(zip(_grads(k), v2))
    for a, b in zip(v1 + opt.variables, v2 + again.variables):
        np.testing.assert_array_equal(np_value(a), np_value(b))


@OPTIMIZERS
def test_tf_checkpoint_restores_and_training_continues_alike(info, tmp_path):
    if BACKEND != "tensorflow":
        pytest.skip("tf.train.Checkpoint is TensorFlow's")
    import tensorflow as tf

    x_train, _, y_train, _ = digits()
    batches = [(x_train[i : i + 32], y_train[i : i + 32]) for i in range(0, 6 * 32, 32)]
    model = mlp(width=16)
    model.compile(optimizer=make(info), loss=LOSS)
    for batch in batches[:3]:
        model.train_on_batch(*batch)
    path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(str(tmp_path / "ckpt"))
    for batch in batches[3:]:
        model.train_on_batch(*batch)
    restored = mlp(width=16, seed=1)  # other initial weights: everything must come from the checkpoint
    restored.compile(optimizer=make(info), loss=LOSS)
    restored.optimizer.build(restored.trainable_variables)
    tf.train.Checkpoint(model=restored, optimizer=restored.optimizer).restore(path).assert_consumed()
    assert int(np_value(restored.optimizer.iterations)) == 3
    for batch in batches[3:]:
        restored.train_on_batch(*batch)
    for a, b in zip(model.weights + model.optimizer.variables, restored.weights + restored.optimizer.variables):
        np.testing.assert_array_equal(np_value(a), np_value(b))


# --------------------------------------------------------------------------------------------- subclasses


class MyINNA(INNA):
    """A user's subclass that changes nothing: it keeps the fast update of INNA on the torch backend."""


class MyINNAprop(INNAprop):
    pass


class SignINNA(INNA):
    """A user's subclass with its own update (INNA on the sign of the gradient): it must get that update."""

    calls = 0

    def update_step(self, gradient, variable, learning_rate):
        type(self).calls += 1
        super().update_step(ops.sign(gradient), variable, learning_rate)


@pytest.mark.parametrize("parent, child", [(INNA, MyINNA), (INNAprop, MyINNAprop)], ids=["INNA", "INNAprop"])
def test_a_subclass_trains_on_every_backend_as_its_parent(parent, child):
    kwargs = dict(learning_rate=0.05, initial_speed=1.0) if parent is INNA else dict(learning_rate=0.01)
    results = []
    for cls in (parent, child):
        opt, variables = cls(**kwargs), _variables()
        for k in range(5):
            opt.apply_gradients(zip(_grads(k), variables))
        results.append([np_value(v) for v in variables + opt.variables])
        if BACKEND == "torch":
            from inna.keras import _torch

            assert opt._multi_tensor_step() is _torch.STEPS[parent.__name__]
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    x_train, _, y_train, _ = digits()
    model = mlp(width=16)
    model.compile(optimizer=child(**kwargs), loss=LOSS)
    history = model.fit(x_train[:256], y_train[:256], epochs=3, batch_size=64, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_a_subclass_that_overrides_update_step_gets_its_own_update():
    SignINNA.calls = 0
    opt, variables = SignINNA(learning_rate=0.05), _variables()
    plain, reference = INNA(learning_rate=0.05), _variables()
    if BACKEND == "torch":
        assert opt._multi_tensor_step() is None  # Keras's loop over update_step
    for k in range(3):
        grads = _grads(k)
        opt.apply_gradients(zip(grads, variables))
        plain.apply_gradients(zip([ops.sign(g) for g in grads], reference))
    assert SignINNA.calls == 3 * len(variables)
    for a, b in zip(variables, reference):
        np.testing.assert_allclose(np_value(a), np_value(b), rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------------------------ JAX


def test_jax_stateless_apply_under_jit():
    if BACKEND != "jax":
        pytest.skip("stateless_apply is the JAX backend's path (TensorFlow refuses it)")
    import jax

    for opt in (INNA(learning_rate=0.05, initial_speed=1.0, weight_decay=0.1), INNAprop(learning_rate=0.01)):
        rng = np.random.default_rng(0)
        stateful = [keras.Variable(rng.standard_normal(s).astype("float32")) for s in SHAPES]
        other = type(opt).from_config(opt.get_config())
        stateless = [keras.Variable(np_value(v).astype("float32")) for v in stateful]
        other.build(stateless)
        opt.build(stateful)
        step = jax.jit(other.stateless_apply)
        opt_values, var_values = [v.value for v in other.variables], [v.value for v in stateless]
        for _ in range(5):
            grads = [jax.numpy.asarray(rng.standard_normal(s), dtype="float32") for s in SHAPES]
            opt.apply_gradients(zip(grads, stateful))
            var_values, opt_values = step(opt_values, grads, var_values)
        for a, b in zip(stateful, var_values):
            np.testing.assert_allclose(np_value(a), np.asarray(b), rtol=1e-6, atol=1e-7)


def test_data_parallel_two_jax_devices():
    if BACKEND != "jax":
        pytest.skip("keras.distribution is implemented for the JAX backend")
    import jax

    devices = jax.devices("cpu")
    assert len(devices) == 2, "run with XLA_FLAGS=--xla_force_host_platform_device_count=2"
    x_train, _, y_train, _ = digits()
    results = {}
    for name, distribution in (("single", None), ("data-parallel", keras.distribution.DataParallel(devices=devices))):
        keras.distribution.set_distribution(distribution)
        try:
            model = mlp(width=32)
            opt = INNAprop(learning_rate=0.01, weight_decay=0.05)
            model.compile(optimizer=opt, loss=LOSS)
            model.fit(x_train[:512], y_train[:512], epochs=2, batch_size=64, verbose=0, shuffle=False)
            if distribution is not None:  # the state lives on both devices, like the weights
                for state in opt._phases + opt._second_moments:
                    assert state.value.sharding.device_set == set(devices)
            results[name] = [np_value(w) for w in model.weights + opt.variables]
        finally:
            keras.distribution.set_distribution(None)
    for a, b in zip(results["single"], results["data-parallel"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------- the Keras guide's example


def test_readme_example(tmp_path, monkeypatch):
    """The Keras guide's example (docs/guides/keras.md), run as written."""
    text = (REPO / "docs" / "guides" / "keras.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- keras-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/guides/keras.md has no block marked <!-- keras-example -->"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(match.group(1), "docs/guides/keras.md (Keras example)", "exec"), namespace)
    assert namespace["accuracy"] >= 0.93, namespace["accuracy"]
