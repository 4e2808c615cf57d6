"""The README's quickstart runs as written (it once used an undefined `loader`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart_code() -> str:
    section = README.read_text(encoding="utf-8").split("## Install and quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the quickstart section has no python block"
    return blocks[0]


@pytest.mark.needs_torch
def test_readme_quickstart_runs_as_written() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    namespace: dict[str, object] = {}
    exec(compile(quickstart_code(), str(README) + ":quickstart", "exec"), namespace)
    opt = namespace["opt"]
    assert opt.state and all(torch.isfinite(p).all() for p in namespace["model"].parameters())


def test_license_file_matches_pyproject() -> None:
    root = README.parent
    text = (root / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "Copyright (c) 2026 The inna developers" in text
    assert 'license = { text = "MIT" }' in (root / "pyproject.toml").read_text(encoding="utf-8")
