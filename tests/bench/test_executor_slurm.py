"""`inna bench --executor slurm` on a real one-node Slurm cluster (`.ci/setup-slurm.sh`): the records of a local
run, whatever happens to the driver, the jobs and the shards."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from engines import LONG, SHORT, jobs_of, records, require, run_cli, run_ends, slurm_problem, start_cli, wait_until

from inna.bench.executor_slurm import job_name

pytestmark = pytest.mark.slow

SLURM = ["--executor", "slurm", "--slurm-array-parallelism", "2", "--slurm-time", "30"]
ENDLESS = [*LONG, "--epochs", "5000"]  # a run that is still going whenever the test looks (it is cancelled)


@pytest.fixture(autouse=True)
def slurm() -> None:
    require("Slurm", slurm_problem())


def queued(out: Path) -> list[str]:
    """The tasks of ``out``'s jobs that are pending or running (squeue also lists ended ones for a while)."""
    done = subprocess.run(["squeue", "-h", "-r", "-n", job_name(out), "-t", "PD,CF,R,CG,S", "-o", "%i"],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return done.stdout.split()


def test_slurm_records_are_the_local_records(short_reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_cli(["bench", *SHORT, *SLURM, "--out", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "submitted 2 run(s) as job array" in done.stdout
    assert records(out) == records(short_reference)
    assert all(len(jobs) == 1 for jobs in jobs_of(out).values()) and len(jobs_of(out)) == 4
    assert sorted((out / "slurm" / "logs").iterdir())  # the jobs' logs under --out
    assert not list((out / "shards").glob("*.jsonl"))  # every shard merged, then deleted


def test_driver_sigkilled_mid_suite_then_rerun(short_reference: Path, tmp_path: Path) -> None:
    """A kill -9 of the driver while its jobs run: the rerun attaches, submits no finished run again, duplicates
    nothing, and writes the local records."""
    out = tmp_path / "out"
    proc = start_cli(["bench", *SHORT, *SLURM, "--out", str(out)])
    try:
        wait_until("the first job array", lambda: jobs_of(out), proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    before = jobs_of(out)
    done = run_cli(["bench", *SHORT, *SLURM, "--out", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert records(out) == records(short_reference)
    assert set(run_ends(out).values()) == {1}  # no run written twice
    after = jobs_of(out)
    for rid, jobs in before.items():
        assert after[rid] == jobs, f"run {rid} was submitted again"  # attached to, not resubmitted
    assert all(len(jobs) == 1 for jobs in after.values())


def test_scancel_of_a_running_job_resubmits_it_from_its_checkpoint(long_reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start_cli(["bench", *LONG, *SLURM, "--out", str(out)])
    try:
        wait_until("a checkpoint of the running job", lambda: list((out / "checkpoints").glob("*.pt")), proc)
        (job,) = {j for jobs in jobs_of(out).values() for j in jobs}
        subprocess.run(["scancel", job], check=True, timeout=60)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    assert "unfinished (cancelled, preempted, time limit or node failure): submitted again" in stdout
    (jobs,) = jobs_of(out).values()
    assert len(jobs) == 2 and jobs[0] == job
    assert records(out) == records(long_reference)


def test_a_damaged_shard_is_set_aside_and_its_run_redone(short_reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_cli(["bench", *SHORT, *SLURM, "--out", str(out), "--detach"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "detached: 2 run(s) go on in Slurm job(s)" in done.stdout and "Rerun the same command" in done.stdout
    wait_until("the detached jobs", lambda: not queued(out) and len(list((out / "shards").glob("*.jsonl"))) == 2)
    victim = sorted((out / "shards").glob("*.jsonl"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # torn, as a crash of the file system
    done = run_cli(["bench", *SHORT, *SLURM, "--out", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    warning = next(line for line in done.stdout.splitlines() if "warning: shard" in line)
    assert str(victim) in warning and "set aside as" in warning and f"run {victim.stem} is run again" in warning
    assert (victim.parent / f"{victim.name}.damaged").is_file()
    assert len(jobs_of(out)[victim.stem]) == 2  # redone
    assert records(out) == records(short_reference)
    assert set(run_ends(out).values()) == {1}


def test_ctrl_c_detaches_a_rerun_attaches_and_cancel_cancels(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # SIGINT as a terminal's foreground job has it (see test_faults.test_ctrl_c_is_one_line_saying_how_to_resume)
    proc = start_cli(["bench", *ENDLESS, *SLURM, "--out", str(out)], start_new_session=True,
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        wait_until("the job", lambda: jobs_of(out), proc)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in stderr
    (job,) = {j for jobs in jobs_of(out).values() for j in jobs}
    assert f"interrupted: detached: 1 run(s) go on in Slurm job(s) {job} without this driver" in stderr
    assert queued(out)  # the job goes on
    done = run_cli(["bench", *ENDLESS, *SLURM, "--out", str(out), "--detach"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "already submitted by an earlier driver" in done.stdout and f"job(s) {job} without" in done.stdout
    assert [j for jobs in jobs_of(out).values() for j in jobs] == [job]  # attached, not submitted again
    done = run_cli(["bench", *ENDLESS, *SLURM, "--out", str(out), "--cancel"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"cancelled job(s) {job}" in done.stdout
    wait_until("the cancelled job to leave the queue", lambda: not queued(out), timeout=120)
    assert "no job of" in run_cli(["bench", *ENDLESS, *SLURM, "--out", str(out), "--cancel"]).stdout
