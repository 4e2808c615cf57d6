"""The `inna bench`, `inna report` and `inna sweep` commands, including the paper suite on fixture CIFAR files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_fixtures import make_cifar10_dir, make_cifar100_dir

from inna.cli import main

TINY_NIN = ["--width", "0.05", "--epochs", "1", "--tune-epochs", "1", "--seeds", "1", "--grid-points", "1",
            "--workers", "1", "--no-progress"]  # fmt: skip


def test_help_documents_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "bench" in out and "report" in out and "sweep" in out
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    for needle in ("--suite", "cpu-paper", "--data-dir", "--workers", "--device", "inna-libinit", "cifar100"):
        assert needle in out


def test_paper_suite_on_fixture_cifar100(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_cifar100_dir(tmp_path / "data", n_train=64, n_test=32)
    out = tmp_path / "out"
    code = main(["bench", "--suite", "paper", "--dataset", "cifar100", "--data-dir", str(data), "--out", str(out),
                 "--optimizers", "inna", "sgd", *TINY_NIN])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "cifar100-nin" in printed and "| INNA(0.5,0.1) |" in printed and "| SGD |" in printed
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    suite = next(r for r in records if r["type"] == "suite")
    assert suite["name"] == "paper" and suite["tasks"][0]["model"] == "nin" and suite["tasks"][0]["batch_size"] == 32
    start = next(r for r in records if r["type"] == "run_start")
    assert start["config"]["dataset"] == "cifar100" and start["config"]["epochs"] == 1
    first = next(r for r in records if r["type"] == "epoch" and r["epoch"] == 0)
    assert first["train_loss"] == pytest.approx(4.605, abs=0.1)  # ln 100: the paper's curves start at log10 ≈ 0.66
    assert (out / "report.md").is_file() and (out / "figures" / "cifar100-nin.png").is_file()


def test_paper_suite_on_fixture_cifar10_archive_with_fixed_lr(tmp_path: Path) -> None:
    data = make_cifar10_dir(tmp_path / "data", per_batch=8, n_test=16, archive=True)
    out = tmp_path / "out"
    code = main(["bench", "--suite", "paper", "--dataset", "cifar10", "--data-dir", str(data), "--out", str(out),
                 "--optimizers", "adam", "--lr", "adam=0.001", "--no-figures", *TINY_NIN])  # fmt: skip
    assert code == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    sel = next(r for r in records if r["type"] == "selection")
    assert sel["lr"] == 0.001 and sel["criterion"] == "fixed" and sel["tune_run_ids"] == []
    assert sum(r["type"] == "run_end" for r in records) == 1  # no tuning runs


def test_missing_data_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--suite", "paper", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"), *TINY_NIN])
    assert code == 2
    err = capsys.readouterr().err
    assert "cifar-100-python" in err and "--data-dir" in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["bench", "--workers", "0"], "positive integer"),
        (["bench", "--suite", "huge"], "invalid choice"),
        (["bench", "--lr", "adam"], "OPTIMIZER=GAMMA0"),
        (["report", "x", "--margin", "0"], "Invalid margin loss_fraction value: 0.0"),
        (["report", "x", "--margin", "0.1,a"], "expected numbers"),
        (["sweep", "--margin", "0.1,1,2"], "LOSS_FRACTION,ACC_POINTS"),
    ],
)
def test_bad_arguments_name_the_parameter(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert needle in capsys.readouterr().err


def test_bad_optimizer_and_dataset_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--optimizers", "lamb", "--out", str(tmp_path)]) == 2
    assert "allowed values: inna" in capsys.readouterr().err
    assert main(["bench", "--dataset", "svhn", "--out", str(tmp_path)]) == 2
    assert "allowed values: digits" in capsys.readouterr().err


def test_report_command_and_missing_rundir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["bench", "--dataset", "digits", "--optimizers", "inna:grid=0.3", "adagrad:grid=0.03",
                 "--epochs", "2", "--tune-epochs", "1", "--seeds", "2", "--out", str(out), "--workers", "1",
                 "--no-progress", "--no-figures"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["report", str(out), "--target-loss", "10", "--margin", "0.2,3"]) == 0
    printed = capsys.readouterr().out
    assert "Targets: digits-mlp ≤ 10 (given)" in printed and "Margins: ±" in printed and "±3 point(s)" in printed
    text = (out / "report.md").read_text()
    assert "![digits-mlp](figures/digits-mlp.png)" in text and (out / "figures" / "digits-mlp.png").is_file()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "results.jsonl" in capsys.readouterr().err


def test_sweep_heatmap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    code = main(["sweep", "--dataset", "digits", "--model", "mlp", "--alphas", "0.5,1", "--betas", "0.1",
                 "--powers", "0,0.5", "--epochs", "1", "--grid", "0.1,0.3", "--baselines", "sgd:grid=0.3",
                 "--train-subset", "300", "--out", str(out), "--workers", "1", "--no-progress",
                 "--grid-extensions", "0"])  # fmt: skip
    assert code == 0
    text = (out / "sweep.md").read_text()
    assert text.count("| INNA(") == 4 and "| SGD |" in text
    from inna.bench.sweep import sweep_table

    rows = sweep_table(out)
    assert {r["lr"] for r in rows if r["alpha"] is not None} <= {0.1, 0.3}
    assert {(r["alpha"], r["beta"], r["power"]) for r in rows if r["alpha"] is not None} == {
        (0.5, 0.1, 0.0),
        (1.0, 0.1, 0.0),
        (0.5, 0.1, 0.5),
        (1.0, 0.1, 0.5),
    }
    assert (out / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "report.md").is_file()
    assert main(["sweep", "--betas", "0", "--out", str(out)]) == 2
    assert "betas > 0" in capsys.readouterr().err


def test_help_states_the_out_defaults_the_code_uses(capsys: pytest.CaptureFixture[str]) -> None:
    """`inna sweep --help` said runs/<suite>[-<dataset>] where the sweep writes runs/sweep-<dataset>-<model>."""
    from inna.bench.cli import bench_out_default, sweep_model_default, sweep_out_default

    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines at hyphens
    assert f"default:{sweep_out_default('<dataset>', '<model>')}" in text
    assert str(sweep_out_default("mnist1d", sweep_model_default("mnist1d"))) == "runs/sweep-mnist1d-cnn1d"
    assert "runs/sweep-mnist1d-cnn1d" in text and "runs/<suite>" not in text
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = "".join(capsys.readouterr().out.split())
    assert str(bench_out_default("paper", ["cifar100"])) == "runs/paper-cifar100" and "runs/paper-cifar100" in text


def test_sweep_writes_where_its_help_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import inna.bench.sweep as S

    seen = {}

    def fake_run_sweep(task, out, **kw):
        seen["out"] = out
        raise ValueError("stop here")

    monkeypatch.setattr(S, "run_sweep", fake_run_sweep)
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--dataset", "digits", "--no-progress"]) == 2
    assert seen["out"] == Path("runs/sweep-digits-mlp")


def test_reading_results_imports_neither_torch_nor_the_training_code() -> None:
    """report.py and sweep.py imported the training module just to read results."""
    import os
    import subprocess
    import sys

    import inna

    code = ("import sys, inna.bench.report, inna.bench.sweep, inna.bench.records, inna.bench\n"
            "inna.bench.read_records\n"
            "bad = [m for m in ('torch', 'inna.bench.training', 'inna.bench.protocol') if m in sys.modules]\n"
            "assert not bad, bad")  # fmt: skip
    src = str(Path(inna.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
