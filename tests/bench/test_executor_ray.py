"""`inna bench --executor ray` on a real local Ray instance: the records of a local run, also when a worker
dies mid-run."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from engines import LONG, SHORT, processes_named, ray_problem, records, require, run_cli, start_cli, wait_until

pytestmark = pytest.mark.slow

RAY = ["--executor", "ray"]


@pytest.fixture(autouse=True)
def ray() -> None:
    require("Ray", ray_problem())


@pytest.fixture(autouse=True)
def _no_outside_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # a local instance, started and shut down by the driver


def test_ray_records_are_the_local_records(short_reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_cli(["bench", *SHORT, *RAY, "--out", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "a local Ray instance started for this suite" in done.stdout
    assert records(out) == records(short_reference)


def test_a_killed_worker_is_retried_from_the_checkpoint(long_reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start_cli(["bench", *LONG, *RAY, "--out", str(out)])
    try:
        wait_until("a checkpoint of the running task", lambda: list((out / "checkpoints").glob("*.pt")), proc)
        busy = "ray::ray_run_pack"  # the busy worker, as Ray names it
        wait_until("the one busy Ray worker", lambda: len(processes_named(busy)) == 1, proc)
        (worker,) = processes_named(busy)
        os.kill(worker, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    assert records(out) == records(long_reference)
    assert not processes_named("ray::"), "the local Ray instance outlived its driver"
