"""`inna bench` under faults: the same numbers however it runs, no orphans, one writer, no tracebacks.

The suite here is small but real: an MLP on fixture MNIST files (784-wide inputs: matrix products whose CPU
kernels round differently with another thread count), 2 optimizers, 3 tuning runs and 4 full runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from bench_fixtures import make_idx_dir

import inna
from inna.bench import checkpoints as C
from inna.bench import training as T
from inna.bench.records import read_records
from inna.bench.rundir import open_run_dir
from inna.cli import main

SRC = str(Path(inna.__file__).resolve().parents[1])
SUITE = ["--dataset", "mnist", "--model", "mlp", "--optimizers", "inna:grid=0.3,1",
         "adam:grid=0.001", "--epochs", "2", "--tune-epochs", "1", "--seeds", "2", "--no-progress",
         "--no-figures"]  # fmt: skip
TIMING = ("wall_time",)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_idx_dir(root / "mnist", n_train=1500, n_test=100)
    return root


def bench(data: Path, out: Path, *extra: str) -> list[str]:
    return ["bench", *SUITE, "--data-dir", str(data), "--out", str(out), *extra]


def keyed(path: Path) -> dict[tuple, list[str]]:
    """Every record of a results file, timings removed, as canonical JSON, grouped by what it is about."""
    out: dict[tuple, list[str]] = {}
    for r in read_records(path):
        if r["type"] == "selection":
            key: tuple = ("selection", r["task"], r["optimizer"])
        elif r["type"] == "suite":
            key = ("suite",)
        else:
            key = (r["type"], r["run_id"], r.get("epoch"))
        out.setdefault(key, []).append(json.dumps({k: v for k, v in r.items() if k not in TIMING}, sort_keys=True))
    return out


def assert_same_records(got: Path, ref: Path) -> None:
    """The same records (timings aside); a record written twice (a redone epoch) is the same both times."""
    a, b = keyed(got), keyed(ref)
    assert set(a) == set(b)
    for key, lines in a.items():
        assert set(lines) == {b[key][-1]}, key


@pytest.fixture(scope="module")
def reference(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite with --workers 1, every run in this process, which has 2 torch threads (as a parent would)."""
    out = tmp_path_factory.mktemp("ref") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(bench(data, out, "--workers", "1")) == 0
    finally:
        torch.set_num_threads(threads)
    return out / "results.jsonl"


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def start_cli(argv: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "inna.cli", *argv], env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)  # fmt: skip


def wait_for_epochs(proc: subprocess.Popen, results: Path, n: int, timeout: float = 120.0) -> None:
    """Wait until ``results`` holds ``n`` trained-epoch records (the suite is mid-way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate(timeout=30)
        try:
            lines = results.read_text().splitlines()
        except FileNotFoundError:
            lines = []
        if sum('"type": "epoch"' in line and '"epoch": 0,' not in line for line in lines) >= n:
            return
        time.sleep(0.01)
    proc.kill()
    pytest.fail(f"the suite wrote fewer than {n} epoch records in {timeout} s")


# --------------------------------------------------------------------------------------------------- 1. determinism


def test_workers_1_and_2_give_byte_identical_records(data: Path, reference: Path, tmp_path: Path) -> None:
    """Runs in the parent (2 torch threads before the fix) and in workers (1 thread) gave different numbers."""
    assert main(bench(data, tmp_path, "--workers", "2")) == 0
    assert_same_records(tmp_path / "results.jsonl", reference)


linux_only = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc")


@linux_only
def test_sigkill_mid_suite_leaves_no_orphans_and_resume_reproduces_everything(
    data: Path, reference: Path, tmp_path: Path
) -> None:
    """kill -9 of `inna bench` left its workers and the resource tracker running (parent pid 1); a run redone
    after a torn last line came back with other numbers."""
    results = tmp_path / "results.jsonl"
    proc = start_cli(bench(data, tmp_path, "--workers", "2"))
    try:
        wait_for_epochs(proc, results, 2)
        kids = children(proc.pid)
        assert len(kids) >= 2, kids  # the workers (and multiprocessing's resource tracker)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    deadline = time.monotonic() + 5.0
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [k for k in kids if alive(k)]
    for k in survivors:
        os.kill(k, signal.SIGKILL)
    assert not survivors, "worker processes outlived the killed parent"

    ends = sum(r["type"] == "run_end" for r in read_records(results))
    assert ends < sum(r["type"] == "run_end" for r in read_records(reference)), "killed after the suite ended"
    # tear the last record in half, as a crash in the middle of a write would
    raw = results.read_bytes()
    start = raw.rstrip(b"\n").rfind(b"\n") + 1
    results.write_bytes(raw[: start + (len(raw) - start) // 2])
    assert main(bench(data, tmp_path, "--workers", "2")) == 0
    assert_same_records(results, reference)


@linux_only
def test_ctrl_c_is_one_line_saying_how_to_resume(data: Path, tmp_path: Path) -> None:
    """Ctrl-C printed ~30 lines of KeyboardInterrupt tracebacks (parent and workers) and no hint."""
    # a budget far longer than the wait for the first epoch, so the interrupt always lands mid-suite (the 2-epoch
    # suite of the other tests can finish between the first epoch record and the signal on a fast machine)
    # SIGINT as a terminal's foreground job has it: a runner that started us in the background (a
    # non-interactive shell's `cmd &`) passes SIGINT down ignored, and a Python started so never gets Ctrl-C
    proc = start_cli(bench(data, tmp_path, "--workers", "2", "--epochs", "60"), start_new_session=True,
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        wait_for_epochs(proc, tmp_path / "results.jsonl", 1)
        kids = children(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does: the whole foreground group
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert err.strip().splitlines() == [
        f"inna bench: interrupted; rerun the same command to resume (--out {tmp_path}): finished runs and epochs "
        "are kept"
    ]
    time.sleep(0.5)
    assert not [k for k in kids if alive(k)]


def test_damaged_checkpoint_is_set_aside_and_its_run_restarts(
    data: Path, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A garbage checkpoint failed every rerun with UnpicklingError, without naming the file."""

    class Crash(BaseException):
        pass

    save = C.atomic_save

    def crash_after_saving(obj: object, path: Path) -> None:
        save(obj, path)
        raise Crash

    monkeypatch.setattr(T, "atomic_save", crash_after_saving)
    with pytest.raises(Crash):
        main(bench(data, tmp_path, "--workers", "1"))
    monkeypatch.setattr(T, "atomic_save", save)
    (ckpt,) = (tmp_path / "checkpoints").glob("*.pt")
    ckpt.write_bytes(b"\x80\x04garbage" * 10)
    capsys.readouterr()
    assert main(bench(data, tmp_path, "--workers", "1")) == 0
    warning = next(m for m in capsys.readouterr().out.splitlines() if "warning: checkpoint" in m)
    assert str(ckpt) in warning and "set aside as" in warning and "starts again" in warning
    assert (tmp_path / "checkpoints" / f"{ckpt.name}.damaged").is_file()
    assert_same_records(tmp_path / "results.jsonl", reference)


def test_checkpoint_that_does_not_fit_the_model_is_set_aside(tmp_path: Path) -> None:
    from inna.bench.config import RunConfig
    from inna.bench.optimizers import parse_optimizer

    cfg = RunConfig("t", "digits", "mlp", 1.0, parse_optimizer("sgd"), 0.1, 0, 1, 32, 64, 32)
    ckpt = C.checkpoint_path(tmp_path, cfg.run_id)
    C.atomic_save({"model": {"bogus": torch.zeros(1)}, "optimizer": {}, "scheduler": None, "epoch": 1,
                   "steps": 2, "wall_time": 0.0, "records": []}, ckpt)  # fmt: skip
    logs: list[str] = []
    records: list[dict] = []
    end = T.train_run(cfg, records.append, tmp_path, logs.append)
    assert end["status"] == "completed" and [r["type"] for r in records][:2] == ["run_start", "epoch"]
    assert "cannot be resumed from" in logs[0] and (tmp_path / f"{cfg.run_id}.pt.damaged").is_file()


# --------------------------------------------------------------------------------------------------- 3. one writer


def test_second_writer_exits_at_once_naming_the_holder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two `inna bench --out D` at once both ran every run (144 run_end records for 72 runs)."""
    with open_run_dir(tmp_path):
        t0 = time.monotonic()
        # no data there: the lock is checked before any data is loaded
        assert main(["bench", "--suite", "paper", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
        assert time.monotonic() - t0 < 5
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"inna bench: error: {tmp_path} is in use by another inna run (pid {os.getpid()}): one writer per results "
        "directory; wait for it to finish, stop it, or choose another --out"
    ]
    assert not (tmp_path / "results.jsonl").exists()


def test_lock_of_a_killed_process_does_not_block(tmp_path: Path) -> None:
    code = ("import sys, time; from inna.bench.rundir import open_run_dir\n"
            "with open_run_dir(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)")  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env(), stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(Exception, match=f"pid {holder.pid}"), open_run_dir(tmp_path):
            pass
        holder.kill()
        holder.wait(timeout=30)
    finally:
        holder.kill()
    assert (tmp_path / ".lock").read_text().strip() == str(holder.pid)  # the stale lock file is still there
    with open_run_dir(tmp_path):
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())


# --------------------------------------------------------------------------------------------------- 4. outputs


def test_out_naming_a_file_or_a_read_only_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--out on a file or on a read-only file system raised FileExistsError / OSError tracebacks."""
    (tmp_path / "f").write_text("")
    assert main(["bench", "--out", str(tmp_path / "f" / "sub"), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"inna bench: error: cannot use {tmp_path / 'f' / 'sub'} as the output directory: {tmp_path / 'f'} is a "
        "file, not a directory"
    )
    import errno

    def read_only(self: Path, *a: object, **k: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert main(["bench", "--out", str(tmp_path / "ro"), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"inna bench: error: cannot create the output directory {tmp_path / 'ro'}: the file system is read-only"
    )
    monkeypatch.undo()
    real_open = os.open

    def no_permission(path: object, *a: object, **k: object) -> int:
        if str(path).endswith(".lock"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", no_permission)
    assert main(["bench", "--out", str(tmp_path), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"inna bench: error: cannot write in the output directory {tmp_path}: permission denied"
    )


def test_bad_optimizer_spec_fails_before_any_data_or_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`inna:beta=0` surfaced only after the data was loaded and a suite record was written."""

    def no_loading(*a: object, **k: object) -> None:
        raise AssertionError("data loaded")

    monkeypatch.setattr(T, "load_dataset", no_loading)
    monkeypatch.setattr("inna.bench.protocol.load_dataset", no_loading)
    out = tmp_path / "out"
    assert main(["bench", "--optimizers", "inna:beta=0", "--out", str(out), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        "inna bench: error: Invalid optimizer 'inna:beta=0': Invalid beta value: 0.0 (INNA requires 0 < beta < inf)"
    )
    assert not out.exists()
    assert main(["bench", "--optimizers", "adam:eps=-1", "--out", str(out)]) == 2
    assert "Invalid optimizer 'adam:eps=-1': Invalid epsilon value: -1.0" in capsys.readouterr().err
