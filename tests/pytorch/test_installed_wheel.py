"""The built wheel carries the C loop's source (package data) and runs the C loop from an installed copy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inna.torch import _cbuild

ROOT = Path(__file__).resolve().parents[2]

_CHECK = """
import inna, torch
from inna.torch import _cbuild
assert inna.__file__.startswith({site!r}), inna.__file__
p = torch.randn(5, requires_grad=True)
p.grad = torch.ones(5)
inna.INNA([p], lr=0.1, fused=True).step()
assert _cbuild.stats["c_builds"] == 1 and _cbuild.stats["c_loads"] == 1, dict(_cbuild.stats)
print("ok")
"""


@pytest.mark.slow
@pytest.mark.skipif(_cbuild.library(torch.float32) is None, reason="no C compiler here")
def test_the_installed_wheel_builds_and_runs_the_c_loop(tmp_path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, ROOT], check=True, timeout=300)
    (wheel,) = wheels.glob("inna-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True, timeout=300)
    assert (site / "inna" / "torch" / "kernels" / "inna_kernels.c").is_file()
    env = {**os.environ, "PYTHONPATH": str(site), "INNA_KERNEL_CACHE": str(tmp_path / "cache")}
    env.pop("INNA_CPU_KERNEL", None)
    done = subprocess.run(
        [sys.executable, "-c", _CHECK.format(site=str(site))],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
