"""The JAX and Flax guide (docs/guides/jax.md) runs as written: its jax.jit loop fits the line, and its Flax
nnx.Optimizer snippet trains a small network with INNAprop (flax is in the test-jax extra)."""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guides" / "jax.md"
MARKER = "<!-- tested: tests/jax_optax/test_optax_flax.py runs this block -->"


def readme_blocks() -> list[str]:
    """The Python blocks that follow the marker in the guide, in order."""
    text = GUIDE.read_text(encoding="utf-8")
    return [m.group(1) for m in re.finditer(re.escape(MARKER) + r"\s*```python\n(.*?)```", text, flags=re.S)]


def test_readme_has_the_two_tested_blocks():
    assert len(readme_blocks()) == 2


def test_readme_jit_loop_fits_the_line():
    namespace: dict = {}
    exec(compile(readme_blocks()[0], "docs/guides/jax.md (jax.jit loop)", "exec"), namespace)
    params = namespace["params"]
    assert float(namespace["loss"](params)) < 1e-8
    assert jnp.allclose(params["w"], jnp.array([1.0, -2.0, 0.5]), atol=1e-4)
    assert int(namespace["state"].count) == 300


def test_readme_flax_nnx_optimizer_snippet_trains():
    pytest.importorskip("flax")
    namespace: dict = {}
    blocks = readme_blocks()
    imports = blocks[0].split("x = ")[0]  # jax, jnp, optax, inna
    exec(compile(imports, "docs/guides/jax.md (imports)", "exec"), namespace)
    exec(compile(blocks[1], "docs/guides/jax.md (flax)", "exec"), namespace)
    train_step, model, optimizer = namespace["train_step"], namespace["model"], namespace["optimizer"]
    x = jax.random.uniform(jax.random.key(0), (128, 2), minval=-2, maxval=2)
    y = jnp.sin(x[:, :1]) * jnp.cos(x[:, 1:])
    first = float(train_step(model, optimizer, x, y))
    for _ in range(299):
        last = float(train_step(model, optimizer, x, y))
    assert last < first / 10, (first, last)
    assert int(optimizer.opt_state.count[...]) == 300
