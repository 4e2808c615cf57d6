"""Sharded params (2 forced host devices, NamedSharding): the same iterates as unsharded, the state sharded like the
params. XLA_FLAGS must be set before jax initialises, so the check runs in a fresh process (with a timeout)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("optax_sharding_worker.py")


@pytest.mark.parametrize("name", ["inna", "innaprop", "scale_by_inna", "scale_by_innaprop"])
def test_sharded_params_match_unsharded_and_keep_their_sharding(name):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    result = subprocess.run(
        [sys.executable, str(WORKER), name], env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK {name}" in result.stdout
