"""The executor seam without a cluster: one worker per device, `--plan`, the checks of what remote workers
report, and nothing read from disk running code (checkpoints, CIFAR pickles)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from bench_fixtures import make_cifar10_dir
from engines import SHORT, records, run_cli

from inna.bench import checkpoints as C
from inna.bench import training as T
from inna.bench.config import RunConfig
from inna.bench.devices import WorkerSlot, parse_devices, worker_slots
from inna.bench.execution import LocalExecutor
from inna.bench.optimizers import parse_optimizer
from inna.bench.remote import check_run_lines, check_shared_path, run_lines
from inna.cli import main


class CreatesAFile:
    """Unpickling this creates ``path``: what a malicious pickle does, harmlessly."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class RunsAShell:
    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


# --------------------------------------------------------------------------------------------------- devices


def test_devices_are_parsed_against_the_visible_gpus() -> None:
    assert parse_devices("auto", cuda_count=3) == ["cuda:0", "cuda:1", "cuda:2"]
    assert parse_devices("cuda:1, cuda:0,cpu,cuda", cuda_count=2) == ["cuda:1", "cuda:0", "cpu", "cuda:0"]
    with pytest.raises(ValueError, match="--devices auto: no CUDA device is visible"):
        parse_devices("auto", cuda_count=0)
    with pytest.raises(ValueError, match="--devices: cuda:2 does not exist here: torch sees 2 CUDA device"):
        parse_devices("cuda:0,cuda:2", cuda_count=2)
    with pytest.raises(ValueError, match="invalid device 'gpu1'"):
        parse_devices("gpu1", cuda_count=2)


def test_each_worker_is_pinned_to_its_own_gpu() -> None:
    slots = worker_slots(["cuda:0", "cuda:1", "cpu"], environ={})
    assert slots == [WorkerSlot("cuda:0", "cuda:0", {"CUDA_VISIBLE_DEVICES": "0"}),
                     WorkerSlot("cuda:1", "cuda:0", {"CUDA_VISIBLE_DEVICES": "1"}),
                     WorkerSlot("cpu", "cpu", {"CUDA_VISIBLE_DEVICES": ""})]  # fmt: skip
    # cuda:N counts the GPUs this process sees: under CUDA_VISIBLE_DEVICES=2,3, cuda:1 is the physical GPU 3
    slots = worker_slots(["cuda:0", "cuda:1"], environ={"CUDA_VISIBLE_DEVICES": "2,3"})
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["2", "3"]
    with pytest.raises(ValueError, match="cuda:2 is not among CUDA_VISIBLE_DEVICES=2,3"):
        worker_slots(["cuda:2"], environ={"CUDA_VISIBLE_DEVICES": "2,3"})
    assert LocalExecutor(devices=["cuda:0", "cuda:1"]).workers == 2


def test_one_worker_per_device_gives_the_serial_records(
    short_reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two pinned workers (CPU entries here; `cuda:N` on a GPU machine, below) write the records of the others."""
    assert main(["bench", *SHORT, "--devices", "cpu,cpu", "--out", str(tmp_path)]) == 0
    assert "one worker per device (cpu, cpu)" in capsys.readouterr().out
    assert records(tmp_path) == records(short_reference)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_devices_auto_pins_one_worker_per_gpu(tmp_path: Path) -> None:
    done = run_cli(["bench", *SHORT, "--devices", "auto", "--out", str(tmp_path)])
    assert done.returncode == 0, done.stderr[-3000:]
    starts = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {r["config"]["device"] for r in starts if r["type"] == "run_start"} == {"cuda:0"}  # each its own GPU 0


# --------------------------------------------------------------------------------------------------- the CLI


def test_plan_runs_nothing_and_counts_the_rounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    argv = ["bench", "--plan", "--suite", "paper", "--dataset", "cifar100", "--out", str(out), "--step-cost", "0.004",
            "--executor", "slurm", "--slurm-gpus-per-task", "1", "--slurm-time", "2-0", "--slurm-partition", "gpu",
            "--slurm-array-parallelism", "45", "--slurm-sbatch", "account=abc"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert not out.exists()
    # 9 optimizers on cifar100: 5-point grids, 15 epochs; ≤ 3 extensions each; 5 seeds of 200 epochs;
    # 50,000 / 32 → 1,563 steps per epoch; 4 ms a step
    assert "| γ₀ selection, initial grids | cifar100-nin | 45 | 15 | 675 | 1,563 | 1,055,025 | 1.2 |" in text
    assert "| γ₀ selection, grid extensions | cifar100-nin | ≤ 27 | 15 | ≤ 405 |" in text
    assert "| full runs | cifar100-nin | 45 | 200 | 9,000 | 1,563 | 14,067,000 | 15.6 |" in text
    for line in ("#SBATCH --array=0-44%45", "#SBATCH --gpus-per-task=1", "#SBATCH --time=2880",
                 "#SBATCH --partition=gpu", "#SBATCH --account=abc"):  # fmt: skip
        assert line in text


def test_options_of_another_executor_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--slurm-partition", "gpu", "--out", str(tmp_path)]) == 2
    assert "--slurm-partition: option(s) of --executor slurm (this is --executor local)" in capsys.readouterr().err
    assert main(["bench", "--executor", "ray", "--devices", "auto", "--out", str(tmp_path)]) == 2
    assert "--devices: an option of --executor local" in capsys.readouterr().err
    assert main(["bench", "--executor", "ray", "--detach", "--out", str(tmp_path)]) == 2
    assert "--detach: option(s) of --executor slurm" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_the_data_dir_of_remote_runs_is_checked_before_submitting(tmp_path: Path) -> None:
    logs: list[str] = []
    with pytest.raises(ValueError, match=r"--data-dir .*/nowhere: no such directory"):
        check_shared_path(tmp_path / "nowhere", "--data-dir", logs.append)
    assert check_shared_path(tmp_path, "--data-dir", logs.append) == str(tmp_path.resolve())
    if str(tmp_path.resolve()).startswith("/tmp/"):
        assert "which other hosts do not share" in logs[0]


# --------------------------------------------------------------------------------------------------- reports


def _cfg(epochs: int = 2) -> RunConfig:
    return RunConfig("t", "digits", "mlp", 1.0, parse_optimizer("sgd"), 0.1, 0, epochs, 32, 64, 32)


def test_what_a_worker_reports_is_checked_before_it_is_written(tmp_path: Path) -> None:
    cfg = _cfg()
    lines = run_lines(cfg.to_json(), str(tmp_path))
    assert check_run_lines(cfg, lines) == ([json.loads(line) for line in lines], None)
    other = RunConfig("t", "digits", "mlp", 1.0, parse_optimizer("sgd"), 0.2, 0, 2, 32, 64, 32)
    assert "is about run" in check_run_lines(other, lines)[1]
    assert "not valid JSON" in check_run_lines(cfg, [*lines[:2], lines[2][:20], *lines[3:]])[1]
    assert "epochs are [0, 2]" in check_run_lines(cfg, [lines[0], lines[1], lines[3], lines[4]])[1]
    assert "does not end with exactly one run_end" in check_run_lines(cfg, lines[:-1])[1]


def test_a_resumed_remote_run_reports_its_whole_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run resumed from its checkpoint (its job or worker died) reports the records the checkpoint holds too."""
    cfg = _cfg(epochs=3)
    whole = run_lines(cfg.to_json(), str(tmp_path / "a"))

    class Died(BaseException):
        pass

    save = C.atomic_save

    def die_after_saving(obj: object, path: Path) -> None:
        save(obj, path)
        raise Died

    monkeypatch.setattr(T, "atomic_save", die_after_saving)
    with pytest.raises(Died):
        run_lines(cfg.to_json(), str(tmp_path / "b"))
    monkeypatch.setattr(T, "atomic_save", save)
    resumed = run_lines(cfg.to_json(), str(tmp_path / "b"))
    drop = ("wall_time",)
    assert [{k: v for k, v in json.loads(x).items() if k not in drop} for x in resumed] == [
        {k: v for k, v in json.loads(x).items() if k not in drop} for x in whole
    ]


# --------------------------------------------------------------------------------------------------- nothing runs


def test_malicious_checkpoints_are_refused_and_run_nothing(
    short_reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    rids = [json.loads(line)["run_id"] for line in (short_reference / "results.jsonl").read_text().splitlines()
            if '"run_start"' in line]  # fmt: skip
    planted = {}
    for rid, payload in zip(rids, (CreatesAFile, RunsAShell)):
        marker = tmp_path / f"pwned-{payload.__name__}"
        ckpt = out / "checkpoints" / f"{rid}.pt"
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"model": payload(marker), "optimizer": {}, "scheduler": None, "epoch": 1, "steps": 1,
                    "wall_time": 0.0, "records": []}, ckpt)  # fmt: skip
        with pytest.raises(C.CheckpointError, match="is refused, not loaded"):
            C.load_checkpoint(ckpt)
        planted[ckpt] = marker
    assert main(["bench", *SHORT, "--out", str(out), "--workers", "1"]) == 0
    printed = capsys.readouterr().out.splitlines()
    for ckpt, marker in planted.items():
        assert not marker.exists(), "unpickling the checkpoint ran its code"
        warning = next(line for line in printed if "warning: checkpoint" in line and str(ckpt) in line)
        assert "is refused, not loaded" in warning and "set aside" in warning
    assert records(out) == records(short_reference)


@pytest.mark.parametrize("payload", [CreatesAFile, RunsAShell])
def test_a_malicious_cifar_pickle_is_refused_and_runs_nothing(
    payload: type, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    data = make_cifar10_dir(tmp_path / "data", per_batch=10, n_test=10)
    victim = data / "cifar-10-batches-py" / "data_batch_2"
    victim.write_bytes(pickle.dumps({b"data": payload(marker), b"labels": [0] * 10}, protocol=2))
    code = main(["bench", "--suite", "paper", "--dataset", "cifar10", "--data-dir", str(data), "--out",
                 str(tmp_path / "out"), "--no-progress"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    module = f"{open.__module__}.open" if payload is CreatesAFile else f"{os.system.__module__}.system"
    assert err == (f"inna bench: error: {victim}: refused, not unpickled: the pickle imports {module}, which a CIFAR "
                   "python batch never does (only numpy arrays, lists, bytes and numbers are accepted)")  # fmt: skip
    assert not marker.exists(), "unpickling the batch ran its code"
