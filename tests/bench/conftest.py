"""Shared set-up of the inna.bench tests: skip without the bench extra, one torch thread, a private cache."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


from engines import long_reference, short_reference  # noqa: E402, F401 (fixtures of the executor tests)
