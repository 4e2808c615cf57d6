"""INNA under torch.distributed on 2 CPU processes (gloo, loopback): DDP, ZeRO, FSDP2, DCP.

The assertions run inside the ranks (tests/integration/dist_workers.py); a failing one raises through
``mp.spawn`` and fails the test here. Every group of processes has a deadline (:data:`TIMEOUT`; the torchrun
example runs under ``subprocess.run(timeout=...)``): ranks that hang are killed and the test fails.
"""

from __future__ import annotations

import socket
import time

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from . import dist_workers

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo"),
]
STEPS = 4
#: Seconds a group of ranks may take before the test kills them and fails (a hang must not hold CI).
TIMEOUT = 300


def spawn(fn, args: tuple, nprocs: int = 2, timeout: float = TIMEOUT) -> None:
    """``mp.spawn`` with a deadline: a rank's failure raises here; ranks still running at the deadline are killed
    and the test fails."""
    context = mp.spawn(fn, args=args, nprocs=nprocs, join=False)
    deadline = time.monotonic() + timeout
    while not context.join(timeout=max(0.1, deadline - time.monotonic())):
        if time.monotonic() >= deadline:
            for p in context.processes:
                if p.is_alive():
                    p.kill()
            for p in context.processes:
                p.join(10)
            pytest.fail(f"{fn.__name__}: the ranks did not finish within {timeout} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_and_zero_redundancy_optimizer():
    """DDP: same parameters on both ranks after every step, equal to one process on the full batch (all
    three paths). ZeRO(optimizer_class=INNA): parity, sharded state, consolidate_state_dict round trip."""
    spawn(dist_workers.ddp_and_zero, (2, free_port(), STEPS))


def test_fsdp2_parity_sharded_state_and_dcp_resume(tmp_path):
    """FSDP2 (DTensor params): parity for all three paths, state sharded like the params; a DCP checkpoint
    (get_state_dict/set_state_dict) loaded into fresh processes continues exactly like the uninterrupted run."""
    ckpt = str(tmp_path / "ckpt")
    spawn(dist_workers.fsdp2, (2, free_port(), STEPS, ckpt))
    spawn(dist_workers.fsdp2_resume, (2, free_port(), STEPS, ckpt))


def test_example_runs_under_torchrun_and_resumes(tmp_path):
    """examples/distributed.py, as the README launches it: FSDP2, then a resume from its DCP checkpoint."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "distributed.py"
    ckpt = tmp_path / "ckpt"
    base = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(example)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(
        [*base, "--fsdp", "--steps", "20", "--checkpoint", str(ckpt)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert "FSDP2 on 2 ranks: 20 steps" in first.stdout
    second = subprocess.run(
        [*base, "--fsdp", "--resume", "--steps", "10", "--checkpoint", str(ckpt)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "FSDP2 on 2 ranks: 30 steps" in second.stdout


def test_hanging_ranks_are_killed_at_the_deadline():
    t0 = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="did not finish within 3 s"):
        spawn(dist_workers.hang, (120,), timeout=3)
    assert time.monotonic() - t0 < 60


def test_innaprop_ddp_zero_fsdp2_and_dcp_resume(tmp_path):
    """INNAprop, in one spawn: DDP and ZeRO parity, FSDP2 parity for all three paths with the state sharded like
    the params, and a DCP checkpoint that a fresh model and optimizer continue exactly."""
    spawn(dist_workers.innaprop_all, (2, free_port(), STEPS, str(tmp_path / "ckpt")))
