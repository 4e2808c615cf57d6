"""Every script in examples/ runs as a user would run it (``python examples/X.py --smoke``), in a subprocess with a
timeout, and prints what it promises. A test whose framework is not installed skips locally and fails under
``CI=true``, where every extra is installed. One --smoke run per example is a fast test (together about a minute
of CPU time); the other options and the checkpoint round trip are ``slow``."""

from __future__ import annotations

import importlib.util
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def require(*modules: str) -> None:
    """Skip (locally) or fail (under CI=true) when one of ``modules`` is not installed."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    why = f"needs {', '.join(missing)} (pip install -e '.[dev]')"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{why}: CI installs every extra, so a missing one is an error")
    pytest.skip(why)


def run_example(name: str, *args: str, cwd: Path, timeout: float = 180, env: dict | None = None, ok: bool = True):
    """Run ``examples/name`` with ``args`` and ``env`` (a None value unsets the variable); return the completed
    process, checked to have succeeded when ``ok``."""
    # one thread: the examples' smoke runs are tiny, and two spinning threads on a busy 2-core machine are slower
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env = {key: value for key, value in full_env.items() if value is not None}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if ok:
        assert proc.returncode == 0, f"{name} {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def numbers_after(label: str, text: str) -> list[float]:
    """The numbers that follow ``label`` on each line of ``text`` (first one per line)."""
    return [float(m) for m in re.findall(re.escape(label) + r"\s*([-+0-9.eE]+|nan|inf)", text)]


# ------------------------------------------------------------------------------------------- compare.py


def test_compare_smoke_prints_the_table(tmp_path: Path):
    require("torch", "sklearn")
    out = run_example("compare.py", "--smoke", cwd=tmp_path).stdout
    rows = [line for line in out.splitlines() if line.startswith("| ") and "optimizer" not in line]
    assert [row.split("|")[1].strip() for row in rows] == ["INNA (0.5, 0.1)", "INNA (0.5, 0.5), q=1/4", "SGD", "Adam"]
    losses = [float(row.split("|")[3]) for row in rows]
    assert all(0 < loss < 2.31 for loss in losses)  # below ln 10, a uniform guess, after one epoch


# ------------------------------------------------------------------------------------------- cifar_resnet.py


def write_cifar10(root: Path, per_batch: int = 30, n_test: int = 64, seed: int = 0) -> Path:
    """CIFAR-10 in the official python format: cifar-10-batches-py/ with five pickled training batches and
    ``test_batch``, each a dict of uint8 ``b"data"`` (N, 3072) and a list of ``b"labels"``."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(i % 10) for i in range(n)]
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": [b"x.png"] * n}
        (folder / name).write_bytes(pickle.dumps(batch))
    return root


@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    require("torch")
    return write_cifar10(tmp_path / "cifar")


def test_cifar_resnet_smoke_inna_power_decay(cifar_dir: Path, tmp_path: Path):
    out = run_example("cifar_resnet.py", "--data-dir", str(cifar_dir), "--smoke", cwd=tmp_path).stdout
    assert "inna lr=0.1 alpha=0.5 beta=0.1, power schedule" in out
    assert len(numbers_after("train loss", out)) == 2  # two epochs
    (acc,) = numbers_after("final: test accuracy", out)
    assert 0 <= acc <= 100


@pytest.mark.slow
def test_cifar_resnet_innaprop_amp_resumes_bit_exactly(cifar_dir: Path, tmp_path: Path):
    """Two epochs straight, and one epoch then a rerun of the same command, end on the same bits (model,
    INNAprop state, schedule); a rerun with other settings is refused before it trains."""
    import torch

    common = ["--data-dir", str(cifar_dir), "--smoke", "--optimizer", "innaprop", "--schedule", "cosine", "--amp"]
    straight, split = tmp_path / "straight.pt", tmp_path / "split.pt"
    run_example("cifar_resnet.py", *common, "--checkpoint", str(straight), cwd=tmp_path)
    first = run_example("cifar_resnet.py", *common, "--checkpoint", str(split), "--stop-after", "1", cwd=tmp_path)
    assert "stopped after epoch 1 of 2" in first.stdout
    second = run_example("cifar_resnet.py", *common, "--checkpoint", str(split), cwd=tmp_path)
    assert "resumed from" in second.stdout and "epoch 2/2" in second.stdout and "epoch 1/2" not in second.stdout

    a, b = (torch.load(p, weights_only=True) for p in (straight, split))
    assert a["epoch"] == b["epoch"] == 2
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for i, state in a["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][i][key]), (i, key)
    assert a["scheduler"] == b["scheduler"]

    refused = run_example(
        "cifar_resnet.py", *common, "--checkpoint", str(split), "--lr", "0.01", cwd=tmp_path, ok=False
    )
    assert refused.returncode != 0
    assert "written with lr=0.001, this run has 0.01" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_cifar_resnet_names_the_missing_data(tmp_path: Path):
    require("torch")
    proc = run_example("cifar_resnet.py", "--data-dir", str(tmp_path / "nowhere"), "--smoke", cwd=tmp_path, ok=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "cifar-10-python.tar.gz" in proc.stderr and "nowhere" in proc.stderr


# ------------------------------------------------------------------------------------------- lm_gpt.py


def test_lm_gpt_smoke_reports_both_optimizers_below_the_initial_loss(tmp_path: Path):
    require("torch")
    out = run_example("lm_gpt.py", "--smoke", cwd=tmp_path).stdout
    assert "Python's standard library" in out
    (initial,) = numbers_after("validation before training:", out)
    adamw, innaprop = numbers_after("AdamW: validation", out) + numbers_after("INNAprop: validation", out)
    assert all(np.isfinite([initial, adamw, innaprop]))
    assert adamw < initial and innaprop < initial  # 30 steps learn the character frequencies at least
    assert f"AdamW {adamw:.3f}, INNAprop {innaprop:.3f}" in out


@pytest.mark.slow
def test_lm_gpt_reads_a_text_file_and_names_a_missing_one(tmp_path: Path):
    require("torch")
    text = tmp_path / "poem.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 300, encoding="utf-8")
    out = run_example("lm_gpt.py", "--smoke", "--text", str(text), cwd=tmp_path).stdout
    assert f"{text}: 13,200 characters, 28 distinct" in out
    missing = run_example("lm_gpt.py", "--smoke", "--text", str(tmp_path / "nope.txt"), cwd=tmp_path, ok=False)
    assert missing.returncode == 2 and "nope.txt: no such file" in missing.stderr


# ------------------------------------------------------------------------------------------- flax_mnist1d.py


@pytest.mark.parametrize("optimizer", ["innaprop", pytest.param("inna", marks=pytest.mark.slow)])
def test_flax_mnist1d_smoke_learns(tmp_path: Path, optimizer: str):
    require("jax", "flax", "optax", "mnist1d")
    out = run_example("flax_mnist1d.py", "--smoke", "--optimizer", optimizer, cwd=tmp_path).stdout
    first, last = numbers_after("train loss", out)
    assert last < first < 2.5  # ln 10 = 2.30 is chance
    (acc,) = numbers_after("final: test accuracy", out)
    assert acc > 20 and "after 50 steps" in out  # chance is 10 %


# ------------------------------------------------------------------------------------------- keras_digits.py


def test_keras_digits_smoke_on_jax_saves_and_reloads(tmp_path: Path):
    require("keras", "jax", "sklearn")
    saved = tmp_path / "out" / "digits.keras"
    out = run_example("keras_digits.py", "--smoke", "--backend", "jax", "--save", str(saved), cwd=tmp_path).stdout
    assert "on jax: INNA, digits" in out
    (acc,) = numbers_after("final: test accuracy", out)
    assert acc > 50  # two epochs of the digits MLP; chance is 10 %
    assert saved.is_file() and "reloaded: INNA after 86 steps, same weights and optimizer state: True" in out


@pytest.mark.slow
@pytest.mark.parametrize(("keras_backend", "optimizer", "backend"), [("torch", "innaprop", "torch"),
                                                                       (None, "inna", "tensorflow")])  # fmt: skip
def test_keras_digits_honours_keras_backend(tmp_path: Path, keras_backend: str | None, optimizer: str, backend: str):
    """Without --backend, KERAS_BACKEND decides, and without it Keras's default (TensorFlow)."""
    require("keras", backend, "sklearn")
    env = {"KERAS_BACKEND": keras_backend}
    out = run_example("keras_digits.py", "--smoke", "--optimizer", optimizer, cwd=tmp_path, env=env).stdout
    assert f"on {backend}: {'INNAprop' if optimizer == 'innaprop' else 'INNA'}, digits" in out
    (acc,) = numbers_after("final: test accuracy", out)
    assert acc > 50


# ------------------------------------------------------------------------------------------- hf_trainer.py


def test_hf_trainer_smoke_trains_with_innaprop_and_its_scheduler(tmp_path: Path):
    require("torch", "transformers", "accelerate")
    out = run_example("hf_trainer.py", "--smoke", "--output-dir", str(tmp_path / "hf"), cwd=tmp_path).stdout
    (after,) = numbers_after("final: held-out loss", out)
    (before,) = numbers_after("(before training:", out)
    assert after < before <= 8.5  # 8 bits/byte is a uniform guess over bytes
    assert "after 20 steps" in out
    lrs = [float(v) for v in re.findall(r"'learning_rate': '?([0-9.e+-]+)", out)]
    assert len(lrs) == 5 and lrs == sorted(lrs, reverse=True)  # the Trainer stepped our cosine schedule
    assert "INNAprop's lr is now 0" in out  # ... on our optimizer, down to 0 at the last step


# ------------------------------------------------------------------------------------------- the helper itself


def test_require_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs no_such_framework_xyz"):
        require("no_such_framework_xyz")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI installs every extra"):
        require("no_such_framework_xyz")
    require("numpy")  # present: neither
