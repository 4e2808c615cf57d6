"""What the tests of the executors share: the real engines (skipped locally when absent, an error under
``CI=true``), tiny suites, their local reference records, and a CLI started as a subprocess.

No mocks: the Slurm tests submit to the one-node cluster that ``.ci/setup-slurm.sh`` starts, the Ray tests start a
real local Ray instance.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import inna
from inna.bench.records import comparable, read_records

SRC = str(Path(inna.__file__).resolve().parents[1])

#: 2 tuning runs (γ₀ 0.3 and 1, one epoch) and 2 full runs (two seeds, two epochs): records in about 10 s locally.
SHORT = ["--suite", "quick", "--dataset", "digits", "--optimizers", "inna:grid=0.3,1", "--seeds", "2", "--epochs",
         "2", "--tune-epochs", "1", "--grid-extensions", "0", "--train-subset", "400", "--no-figures",
         "--no-progress"]  # fmt: skip
#: One run of 200 epochs on the whole of digits (a fixed γ₀: no selection; 10 to 60 s here): long enough to
#: outlive the 2 s between scancel's SIGTERM (which submitit's jobs ignore) and its SIGKILL on the test cluster.
LONG = ["--suite", "quick", "--dataset", "digits", "--optimizers", "inna", "--lr", "inna=0.3", "--seeds", "1",
        "--epochs", "200", "--no-figures", "--no-progress"]  # fmt: skip


def require(engine: str, problem: str | None) -> None:
    """Skip (locally) or fail (``CI=true``, where CI must have set the engine up) when ``problem`` is not None."""
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{engine} is required under CI=true (.ci/run sets it up): {problem}")
    pytest.skip(f"{engine} is not available here: {problem}")


def slurm_problem() -> str | None:
    for command in ("sbatch", "squeue", "scancel", "sinfo"):
        if shutil.which(command) is None:
            return f"{command} is not on the PATH (run .ci/setup-slurm.sh as root)"
    if importlib.util.find_spec("submitit") is None:
        return "submitit is not installed (pip install 'inna[slurm]')"
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "sinfo does not answer (is slurmctld running?)"
    if not any(s.strip().rstrip("*") in ("idle", "mixed", "allocated", "completing") for s in done.stdout.split()):
        return f"no Slurm node is up (sinfo: {done.stdout.strip() or done.stderr.strip()})"
    return None


def ray_problem() -> str | None:
    if importlib.util.find_spec("ray") is None:
        return "ray is not installed (pip install 'inna[ray]')"
    return None


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def start_cli(argv: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "inna.cli", *argv], env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)  # fmt: skip


def run_cli(argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inna.cli", *argv], env=env(), capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def wait_until(what: str, condition, proc: subprocess.Popen | None = None, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate(timeout=30)
            pytest.fail(f"the driver ended (status {proc.returncode}) before {what}:\n{out[-2000:]}\n{err[-3000:]}")
        time.sleep(0.1)
    if proc is not None:
        proc.send_signal(signal.SIGKILL)
    pytest.fail(f"timed out waiting for {what}")


def records(out: Path) -> list[str]:
    """The results' records as the determinism contract compares them."""
    return comparable(read_records(out / "results.jsonl"))


def run_ends(out: Path) -> dict[str, int]:
    """run_id → how many run_end records the results file holds for it."""
    counts: dict[str, int] = {}
    for r in read_records(out / "results.jsonl"):
        if r["type"] == "run_end":
            counts[r["run_id"]] = counts.get(r["run_id"], 0) + 1
    return counts


def submissions(out: Path) -> list[dict]:
    """The recorded submissions of ``out``, oldest first."""
    items = [json.loads(p.read_text()) for p in (out / "slurm" / "submissions").glob("*.json")]
    return sorted(items, key=lambda item: item["created"])


def jobs_of(out: Path) -> dict[str, list[str]]:
    """run_id → the job ids it was submitted to (the submissions whose job id is known)."""
    jobs: dict[str, list[str]] = {}
    for item in submissions(out):
        for pack in item["packs"]:
            for rid in pack:
                if item.get("job_id") is not None:
                    jobs.setdefault(rid, []).append(item["job_id"])
    return jobs


def processes_named(prefix: str) -> list[int]:
    """The pids whose command line starts with ``prefix`` (Linux /proc: Ray names a busy worker ``ray::TASK``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmdline.startswith(prefix):
                pids.append(int(entry.name))
    return pids


@pytest.fixture(scope="session")
def short_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SHORT suite run locally in worker processes: the records every executor must reproduce."""
    out = tmp_path_factory.mktemp("short-ref") / "out"
    done = run_cli(["bench", *SHORT, "--out", str(out), "--workers", "2"], timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def long_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("long-ref") / "out"
    done = run_cli(["bench", *LONG, "--out", str(out), "--workers", "1"], timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out
